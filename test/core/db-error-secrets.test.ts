/**
 * No secrets in errors: a failed statement's error carries the SQL with its placeholders, never the bound values
 * (which may be a sealed secret, a code hash or an address), on every database.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { openDatabase, type Database } from '../../src/db/connection.js';
import { createTestDb, describeEachDb, type TestDb } from '../helpers/db.js';

describeEachDb('failed statements do not echo bound values', (kind) => {
  let t: TestDb;
  let db: Database;
  beforeAll(async () => {
    t = await createTestDb(kind);
    db = await openDatabase({ url: t.url, connectTimeoutMs: 5000 });
  });
  afterAll(async () => {
    await db.close();
    await t.drop();
  });

  it('the message names the statement with "?" and no value', async () => {
    const secret = 'JBSWY3DPEHPK3PXP-not-for-logs';
    const err = (await db
      .knex('mail2fa_no_such_table')
      .where({ secret_ct: secret })
      .first()
      .then(
        () => null,
        (e: unknown) => e as Error,
      ))!;
    expect(err).toBeInstanceOf(Error);
    expect(err.message).toMatch(/mail2fa_no_such_table/);
    expect(err.message).not.toContain(secret);
  });
});
