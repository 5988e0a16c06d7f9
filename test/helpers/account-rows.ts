/**
 * Reading one account's rows in mail2fa's own tables the way the tests check them: every row of a table, the
 * "nothing stored" check, a sealed factor column opened, and a code checked as sign-in does.
 */
import { expect } from 'vitest';
import type { Context } from '../../src/context.js';
import { checkSecondFactor, type CodeKind, type ParsedCode } from '../../src/core/factor-check.js';
import { readFactor } from '../../src/core/factors.js';
import { accountTransaction } from '../../src/core/guard.js';
import { Vault } from '../../src/core/vault.js';

/** Every row, every column, that `account` has in one of mail2fa's tables. */
export async function accountRows(ctx: Context, table: string, account: string): Promise<Record<string, unknown>[]> {
  return (await (await ctx.db()).knex(table).where({ account }).select('*')) as Record<string, unknown>[];
}

/** Fails unless the account has no factor, recovery code, enrolment or challenge row. */
export async function expectNothingStored(ctx: Context, account: string): Promise<void> {
  for (const table of [ctx.tables.factor, ctx.tables.recoveryCode, ctx.tables.enrolment, ctx.tables.challenge])
    expect(await accountRows(ctx, table, account), table).toEqual([]);
}

/** A sealed column of the account's factor row (its TOTP secret or phone), opened with the context's master key. */
export function openFactorColumn(
  ctx: Context,
  email: string,
  column: 'secret_ct' | 'phone_ct',
  sealed: string,
): string {
  return new Vault(ctx.masterKey(), ctx.tables, ctx.now).open(ctx.tables.factor, column, email, sealed);
}

/** Checks a code as sign-in does, in the account's own transaction: the kind it matched, or null. */
export function checkAtSignIn(
  ctx: Context,
  email: string,
  code: ParsedCode,
  allow: readonly CodeKind[],
): Promise<CodeKind | null> {
  return accountTransaction(ctx, email, async (tx) =>
    checkSecondFactor(tx, await readFactor(tx.trx, ctx.tables, email), code, new Set(allow)),
  );
}
