/** Exact single-account lookups (findExact) on a PostfixAdmin-shaped table: latin1, case- and pad-insensitive. */
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Context } from '../../src/context.js';
import { Mail2faError } from '../../src/core/errors.js';
import { createTestDb, describeEachDb, type TestDb } from '../helpers/db.js';
import { testContext } from '../helpers/context.js';
import { createPostfixAdminMailbox, insertPostfixAdminMailbox, postfixAdminConfig } from '../helpers/status-seed.js';

describeEachDb('findExact on a PostfixAdmin mailbox table', (kind) => {
  let tdb: TestDb;
  let ctx: Context;
  beforeAll(async () => {
    tdb = await createTestDb(kind);
    ctx = await testContext(tdb, { configPath: postfixAdminConfig(tdb.dir) });
    const db = await ctx.db();
    await createPostfixAdminMailbox(db.knex, kind, 'mailbox', false);
    await insertPostfixAdminMailbox(db.knex, 'mailbox', 'User@example.com');
    await insertPostfixAdminMailbox(db.knex, 'mailbox', 'pad@example.com ');
    await insertPostfixAdminMailbox(db.knex, 'mailbox', 'jürgen@example.com');
  });
  afterAll(async () => {
    await ctx?.close();
    await tdb?.drop();
  });

  const exitOf = async (address: string) => {
    try {
      await (await ctx.accounts()).findExact(address);
      return 0;
    } catch (err) {
      if (err instanceof Mail2faError) return err.exitCode;
      throw err;
    }
  };

  it('finds the exact row only', async () => {
    expect((await (await ctx.accounts()).findExact('User@example.com')).email).toBe('User@example.com');
    expect((await (await ctx.accounts()).findExact('jürgen@example.com')).email).toBe('jürgen@example.com');
  });

  it('never matches by case folding or trailing-space padding', async () => {
    expect(await exitOf('user@example.com')).toBe(67);
    expect(await exitOf('pad@example.com')).toBe(67);
  });

  it('answers "unknown" for an address the column charset cannot hold (no collation error)', async () => {
    expect(await exitOf('δ@example.com')).toBe(67);
    expect(await exitOf('用户@example.com')).toBe(67);
  });
});
