/**
 * The single-statement reads behind a sign-in check and every command's start: the account's locking read that
 * brings its factor and unused recovery codes along (lockAccountWithFactor) must answer exactly what the separate
 * reads answer, and the schema version is read in one statement, a missing migrations table meaning "none".
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Context } from '../../src/context.js';
import { LATEST_MIGRATION, readSchemaVersion } from '../../src/db/migrations.js';
import { countUnusedRecoveryCodes, readFactorRow } from '../../src/db/own-store.js';
import { inTransaction, lockAccountState, lockAccountWithFactor } from '../../src/db/tx.js';
import { openDatabase } from '../../src/db/connection.js';
import { tableNames } from '../../src/db/schema.js';
import { verifySignInCode } from '../../src/core/sign-in.js';
import { createTestDb, describeEachDb, type TestDb } from '../helpers/db.js';
import { testClock, testContext } from '../helpers/context.js';
import { enrolSms, enrolTotp } from '../helpers/seed-2fa.js';

describeEachDb('locked account read', (kind) => {
  let tdb: TestDb;
  let ctx: Context;
  const clock = testClock();

  beforeAll(async () => {
    tdb = await createTestDb(kind);
    ctx = await testContext(tdb, { clock });
  });
  afterAll(async () => {
    await ctx?.close();
    await tdb?.drop();
  });

  /** The combined read and the three separate ones, each in a transaction of its own. */
  async function bothReads(account: string) {
    const db = await ctx.db();
    const combined = await inTransaction(db, ctx.tables, (trx) =>
      lockAccountWithFactor(trx, ctx.tables, db.dialect, account),
    );
    const separate = await inTransaction(db, ctx.tables, async (trx) => ({
      state: await lockAccountState(trx, ctx.tables, db.dialect, account),
      factor: await readFactorRow(trx, ctx.tables, account),
      recoveryCodesLeft: await countUnusedRecoveryCodes(trx, ctx.tables, account),
    }));
    return { combined, separate };
  }

  it('an app account with used recovery codes: state, factor (types included) and count as read separately', async () => {
    const { email, recoveryCodes } = await enrolTotp(ctx, 'app.user@example.com');
    for (const code of recoveryCodes.slice(0, 3)) {
      expect((await verifySignInCode(ctx, { email, code })).outcome).toBe('accepted');
    }
    expect((await verifySignInCode(ctx, { email, code: '000000' })).outcome).toBe('rejected');
    const { combined, separate } = await bothReads(email);
    expect(combined).toEqual(separate);
    expect(combined.recoveryCodesLeft).toBe(7);
    expect(combined.state.failed_attempts).toBe(1);
    expect(combined.factor).toMatchObject({ account: email, method: 'totp', last_totp_step: null, version: 0 });
    expect(typeof combined.factor!.enrolled_at).toBe('number');
    expect(typeof combined.factor!.last_used_at).toBe('number');
  });

  it('an SMS account, and an address with no factor and no state row yet (created by the read)', async () => {
    const sms = await enrolSms(ctx, 'sms.user@example.com');
    const reads = await bothReads(sms.email);
    expect(reads.combined).toEqual(reads.separate);
    expect(reads.combined.factor?.phone_masked).toMatch(/\*{4}/);

    const bare = await bothReads('nobody.yet@example.com');
    expect(bare.combined).toEqual(bare.separate);
    expect(bare.combined).toMatchObject({
      factor: undefined,
      recoveryCodesLeft: 0,
      state: { account: 'nobody.yet@example.com', failed_attempts: 0, locked_until: null, sessions_revoked_at: null },
    });
  });

  it('the schema version in one statement: the latest migration here, null where mail2fa has no tables', async () => {
    const db = await ctx.db();
    expect(await readSchemaVersion(db.knex, ctx.tables)).toBe(LATEST_MIGRATION);
    // Another prefix names tables that do not exist in this database.
    expect(await readSchemaVersion(db.knex, tableNames('absent_'))).toBeNull();
    const empty = await createTestDb(kind);
    const other = await openDatabase({ url: empty.url, connectTimeoutMs: 5000 }, { ping: false });
    try {
      expect(await readSchemaVersion(other.knex, ctx.tables)).toBeNull();
    } finally {
      await other.close();
      await empty.drop();
    }
  });
});
