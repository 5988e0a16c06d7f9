/**
 * The account's factor and everything hanging off it: storing a confirmed factor with fresh recovery codes,
 * removing it (disable/recover), and signing the user out (PRODUCT.md §3.11). Callers run these inside the
 * command's single transaction, after lockAccountState.
 */
import { execFile } from 'node:child_process';
import type { Knex } from 'knex';
import type { Config } from '../config.js';
import { newRecoveryCode } from '../crypto/codes.js';
import type { Tables } from '../db/schema.js';
import type { Vault } from './vault.js';

export const RECOVERY_CODE_COUNT = 10;

export interface FactorRow {
  account: string;
  method: 'totp' | 'sms';
  secret_ct: string | null;
  phone_ct: string | null;
  phone_masked: string | null;
  key_id: string;
  enrolled_at: number;
  last_used_at: number | null;
  last_totp_step: number | null;
  version: number;
}

export async function readFactor(db: Knex | Knex.Transaction, tables: Tables, account: string): Promise<FactorRow | undefined> {
  const row = (await db(tables.factor).where({ account }).first()) as FactorRow | undefined;
  if (!row) return undefined;
  return {
    ...row,
    enrolled_at: Number(row.enrolled_at),
    last_used_at: row.last_used_at === null ? null : Number(row.last_used_at),
    last_totp_step: row.last_totp_step === null ? null : Number(row.last_totp_step),
    version: Number(row.version),
  };
}

export interface NewFactor {
  account: string;
  method: 'totp' | 'sms';
  /** Plaintext base32 secret; sealed here for the factor table (its AAD names table, column and account). */
  totpSecret?: string;
  phoneE164?: string;
  phoneMasked?: string;
}

/** Stores a confirmed factor (replacing any old one) and ten fresh recovery codes; returns the codes, once. */
export async function storeFactor(trx: Knex.Transaction, tables: Tables, vault: Vault, now: number, factor: NewFactor): Promise<string[]> {
  await removeFactor(trx, tables, factor.account);
  await trx(tables.factor).insert({
    account: factor.account,
    method: factor.method,
    secret_ct: factor.totpSecret ? vault.seal(tables.factor, 'secret_ct', factor.account, factor.totpSecret) : null,
    phone_ct: factor.phoneE164 ? vault.seal(tables.factor, 'phone_ct', factor.account, factor.phoneE164) : null,
    phone_masked: factor.phoneMasked ?? null,
    key_id: vault.key.id,
    enrolled_at: now,
    last_used_at: null,
    last_totp_step: null,
    version: 0,
  });
  return replaceRecoveryCodes(trx, tables, vault, now, factor.account);
}

export async function replaceRecoveryCodes(trx: Knex.Transaction, tables: Tables, vault: Vault, now: number, account: string): Promise<string[]> {
  await trx(tables.recoveryCode).where({ account }).delete();
  const codes = Array.from({ length: RECOVERY_CODE_COUNT }, () => newRecoveryCode());
  const rows = [];
  for (const code of codes) rows.push({ account, code_hash: await vault.hash(trx, 'recovery', account, code), created_at: now, used_at: null });
  await trx(tables.recoveryCode).insert(rows);
  return codes;
}

/** Removes the factor, its recovery codes, pending enrolments and challenges. Returns whether a factor existed. */
export async function removeFactor(trx: Knex.Transaction, tables: Tables, account: string, keep: { temporary?: boolean } = {}): Promise<boolean> {
  const removed = await trx(tables.factor).where({ account }).delete();
  await trx(tables.recoveryCode).where({ account }).delete();
  await trx(tables.enrolment).where({ account }).delete();
  const challenges = trx(tables.challenge).where({ account });
  if (keep.temporary) challenges.whereNot({ purpose: 'temporary' });
  await challenges.delete();
  return removed > 0;
}

/**
 * Signs the user out: records the revocation time (read by `verify` and the library) and, for the `sql`
 * action, runs the configured statement in the same transaction. The `command` action runs after commit
 * (see runSignOutCommand): a program cannot be rolled back.
 */
export async function revokeSessions(trx: Knex.Transaction, tables: Tables, signOut: Config['signOut'], account: string, now: number): Promise<void> {
  await trx(tables.accountState).where({ account }).update({ sessions_revoked_at: now });
  if (signOut.action === 'sql' && signOut.sql) {
    // `:email` (named) or `?` (positional) is bound to the address: never spliced into the SQL text.
    if (signOut.sql.includes(':email')) await trx.raw(signOut.sql, { email: account });
    else await trx.raw(signOut.sql, [account]);
  }
}

/** Runs the `command` sign-out action without a shell; `{email}` in an argument becomes the address. */
export function runSignOutCommand(signOut: Config['signOut'], account: string, timeoutMs = 15_000): Promise<{ ok: boolean; detail: string }> {
  if (signOut.action !== 'command' || !signOut.command) return Promise.resolve({ ok: true, detail: 'no command configured' });
  const [file, ...args] = signOut.command.map((a) => a.split('{email}').join(account));
  return new Promise((resolve) => {
    execFile(file!, args, { shell: false, timeout: timeoutMs, windowsHide: true }, (err) => {
      if (err) resolve({ ok: false, detail: `sign-out command ${signOut.command![0]} failed: ${(err as NodeJS.ErrnoException).code ?? err.message.split('\n')[0]}` });
      else resolve({ ok: true, detail: `ran ${signOut.command![0]}` });
    });
  });
}
