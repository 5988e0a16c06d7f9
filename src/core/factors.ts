/**
 * The account's factor and everything hanging off it: storing a confirmed factor with fresh recovery codes,
 * removing it (disable/recover), and signing the user out (the revocation time, then the sign-out action).
 * Callers run these inside the command's single transaction, after lockAccountState.
 */
import { execFile } from 'node:child_process';
import type { Knex } from 'knex';
import type { Config } from '../config.js';
import { newRecoveryCode } from '../crypto/one-time-codes.js';
import {
  deleteFactorAndCodes,
  insertFactorRows,
  readFactorRow,
  replaceRecoveryCodeRows,
  runSignOutSql,
  setSessionsRevoked,
  type FactorRow,
} from '../db/own-store.js';
import type { Tables } from '../db/schema.js';
import type { Vault } from './vault.js';

export type { FactorRow } from '../db/own-store.js';

export const RECOVERY_CODE_COUNT = 10;

export function readFactor(
  db: Knex | Knex.Transaction,
  tables: Tables,
  account: string,
): Promise<FactorRow | undefined> {
  return readFactorRow(db, tables, account);
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
export async function storeFactor(
  trx: Knex.Transaction,
  tables: Tables,
  vault: Vault,
  now: number,
  factor: NewFactor,
): Promise<string[]> {
  await removeFactor(trx, tables, factor.account);
  await insertFactorRows(trx, tables, [
    {
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
    },
  ]);
  return replaceRecoveryCodes(trx, tables, vault, now, factor.account);
}

export async function replaceRecoveryCodes(
  trx: Knex.Transaction,
  tables: Tables,
  vault: Vault,
  now: number,
  account: string,
): Promise<string[]> {
  const codes = Array.from({ length: RECOVERY_CODE_COUNT }, () => newRecoveryCode());
  const rows = [];
  for (const code of codes) rows.push({ code_hash: await vault.hash(trx, 'recovery', account, code), created_at: now });
  await replaceRecoveryCodeRows(trx, tables, account, rows);
  return codes;
}

/** Removes the factor, its recovery codes, pending enrolments and challenges. Returns whether a factor existed. */
export function removeFactor(
  trx: Knex.Transaction,
  tables: Tables,
  account: string,
  keep: { temporary?: boolean } = {},
): Promise<boolean> {
  return deleteFactorAndCodes(trx, tables, account, keep);
}

/**
 * Signs the user out: records the revocation time (read by `verify` and the library) and, for the `sql`
 * action, runs the configured statement in the same transaction. The `command` action runs after commit
 * (see runSignOutCommand): a program cannot be rolled back.
 */
export async function revokeSessions(
  trx: Knex.Transaction,
  tables: Tables,
  signOut: Config['signOut'],
  account: string,
  now: number,
): Promise<void> {
  await setSessionsRevoked(trx, tables, account, now);
  // `:email` (named) or `?` (positional) is bound to the address: never spliced into the SQL text.
  if (signOut.action === 'sql' && signOut.sql) await runSignOutSql(trx, signOut.sql, account);
}

/** Runs the `command` sign-out action without a shell; `{email}` in an argument becomes the address. */
export function runSignOutCommand(
  signOut: Config['signOut'],
  account: string,
  timeoutMs = 15_000,
): Promise<{ ok: boolean; detail: string }> {
  if (signOut.action !== 'command' || !signOut.command)
    return Promise.resolve({ ok: true, detail: 'no command configured' });
  const [file, ...args] = signOut.command.map((a) => a.split('{email}').join(account));
  return new Promise((resolve) => {
    execFile(file!, args, { shell: false, timeout: timeoutMs, windowsHide: true }, (err) => {
      if (err)
        resolve({
          ok: false,
          detail: `sign-out command ${signOut.command![0]} failed: ${(err as NodeJS.ErrnoException).code ?? err.message.split('\n')[0]}`,
        });
      else resolve({ ok: true, detail: `ran ${signOut.command![0]}` });
    });
  });
}
