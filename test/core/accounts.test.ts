/** Exact single-account lookups (findExact) on a PostfixAdmin-shaped table: latin1, case- and pad-insensitive. */
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Context } from '../../src/context.js';
import { Mail2faError } from '../../src/errors.js';
import { createTestDb, describeEachDb, type TestDb } from '../helpers/db.js';
import { testContext } from '../helpers/context.js';
import { createPostfixAdminMailbox, insertPostfixAdminMailbox, postfixAdminConfig } from '../fixtures/postfixadmin.js';

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
    for (const a of ['alice@example.com', 'Mixed.Case@example.com', 'twin@example.com', 'Twin@example.com'])
      await insertPostfixAdminMailbox(db.knex, 'mailbox', a);
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

  const hintOf = async (address: string) => {
    const err = await (await ctx.accounts()).findExact(address).catch((e: unknown) => e);
    expect(err).toMatchObject({ exitCode: 67 });
    return (err as Mail2faError).hint;
  };

  // A wrong-case address: the hint names the mailbox instead of a bare 'unknown'.
  it('names the one lower-case mailbox; a case-insensitive column also finds mixed-case rows; two candidates: no guess', async () => {
    expect(await hintOf('Alice@example.com')).toBe(
      'did you mean alice@example.com? Addresses are matched exactly, case included.',
    );
    expect(await hintOf('ALICE@example.com')).toMatch(/^did you mean alice@example\.com\?/);
    // A mixed-case row is found through the column's case-insensitive collation (latin1_general_ci on MariaDB,
    // NOCASE on SQLite, as PostfixAdmin's tables have); a binary column offers the all-lower-case form only.
    expect(await hintOf('mixed.case@example.com')).toMatch(/^did you mean Mixed\.Case@example\.com\?/);
    expect(await hintOf('TWIN@example.com')).not.toMatch(/did you mean/);
    expect(await hintOf('nobody@example.com')).not.toMatch(/did you mean/);
  });
});
