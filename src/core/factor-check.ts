/**
 * Checking a second factor: strict input, then one of TOTP (with the persisted last
 * step, compare-and-set), the newest pending SMS code, an unused recovery code or a temporary access code.
 * Every kind is single-use; the "used" mark is written with a compare-and-set update in the caller's
 * transaction — if it cannot be written, the error propagates and nothing is accepted (fail closed).
 */
import type { Knex } from 'knex';
import { parseRecoveryCode, parseTemporaryCode } from '../crypto/one-time-codes.js';
import {
  advanceFactorStep,
  countUnusedRecoveryCodes,
  newestChallenge,
  touchFactor,
  useChallenge,
  useRecoveryCode,
} from '../db/own-store.js';
import { lastStoreTotpStep, useStoreTotpStep } from '../db/store-replay.js';
import { TOTP_DIGITS, base32Encode, isWellFormedCode, verifyTotp } from '../totp/totp.js';
import { dataError } from '../errors.js';
import type { Tables } from '../db/schema.js';
import type { FactorRow } from './factors.js';
import type { AccountTx } from './guard.js';
import { asMail2faError, NO_FOREIGN_FACTORS, storeFailure, storeWriteContext, type ForeignFactors } from './stores.js';
import { Vault } from './vault.js';

/** Whether customer service left a temporary access code for the account (its marker challenge row). */
export async function hasTemporaryCodeMarker(
  db: Knex | Knex.Transaction,
  tables: Tables,
  account: string,
): Promise<boolean> {
  return (await newestChallenge(db, tables, account, 'temporary')) !== undefined;
}

/**
 * Whether 2FA is required for the account inside `tx`: a factor, customer service's temporary-code marker, or a
 * foreign store that enforces it.
 */
export async function twoFactorRequired(
  tx: AccountTx,
  factor: FactorRow | undefined,
  foreign: ForeignFactors = NO_FOREIGN_FACTORS,
): Promise<boolean> {
  return factor !== undefined || foreign.required || (await hasTemporaryCodeMarker(tx.trx, tx.ctx.tables, tx.account));
}

export type CodeKind = 'totp' | 'sms' | 'recovery' | 'temporary';

export type ParsedCode =
  | { form: 'digits'; value: string }
  | { form: 'recovery'; value: string }
  | { form: 'temporary'; value: string }
  /** A foreign store's own recovery code, in the form its store generates (checked and consumed there only). */
  | { form: 'store-recovery'; value: string };

/** The Roundcube twofactor_gauthenticator plugin's generated recovery codes: 10 upper-case base32 characters. */
const STORE_RECOVERY_RE = /^[A-Z2-7]{10}$/;

export const CODE_FORMS_HINT = `A code is ${TOTP_DIGITS} digits (app or SMS), a recovery code like abcde-fghjk, or a temporary code like abcd-efgh-jkmn-pqrs; no spaces.`;

/** Strict: exactly 6 ASCII digits, or the canonical recovery / temporary forms. Anything else → 65. */
export function parseCodeInput(input: string): ParsedCode {
  if (input.length <= 32) {
    if (isWellFormedCode(input, TOTP_DIGITS)) return { form: 'digits', value: input };
    const recovery = parseRecoveryCode(input);
    if (recovery) return { form: 'recovery', value: recovery };
    const temporary = parseTemporaryCode(input);
    if (temporary) return { form: 'temporary', value: temporary };
    if (STORE_RECOVERY_RE.test(input)) return { form: 'store-recovery', value: input };
  }
  throw dataError('bad_code', input.length === 0 ? 'no code given' : 'malformed code', CODE_FORMS_HINT);
}

/** Decrypts the factor's TOTP secret (integrity errors propagate: a tampered row is not a "wrong code"). */
export function factorSecret(tx: AccountTx, factor: FactorRow): string {
  if (!factor.secret_ct) throw new Error(`factor of ${factor.account} has no secret`);
  return tx.vault().open(tx.ctx.tables.factor, 'secret_ct', factor.account, factor.secret_ct);
}

/** TOTP against the stored factor, with replay protection across processes (compare-and-set on the last step). */
async function checkTotp(tx: AccountTx, factor: FactorRow, token: string, floor: number | null): Promise<boolean> {
  const match = verifyTotp({
    secret: factorSecret(tx, factor),
    token,
    nowMs: tx.now,
    afterTimeStep: maxStep(factor.last_totp_step, floor),
  });
  if (!match) return false;
  return advanceFactorStep(tx.trx, tx.ctx.tables, factor.account, match.timeStep, tx.now, tx.db.dialect);
}

function maxStep(first: number | null, second: number | null): number | null {
  return first === null ? second : second === null ? first : Math.max(first, second);
}

/** The newest unused, unexpired challenge of a purpose; marks it used when the code matches. */
async function checkChallenge(tx: AccountTx, purpose: 'sms' | 'temporary', code: string): Promise<boolean> {
  const tables = tx.ctx.tables;
  const newest = await newestChallenge(tx.trx, tables, tx.account, purpose);
  if (!newest || newest.used_at !== null || newest.expires_at <= tx.now) return false;
  const hash = await tx.vault().hash(tx.trx, purpose, tx.account, code);
  if (!Vault.equal(hash, newest.code_hash)) return false;
  const used = await useChallenge(tx.trx, tables, newest.id, tx.now);
  if (used && purpose === 'sms') await touchFactor(tx.trx, tables, tx.account, tx.now);
  return used;
}

async function checkRecovery(tx: AccountTx, code: string): Promise<boolean> {
  const tables = tx.ctx.tables;
  const hash = await tx.vault().hash(tx.trx, 'recovery', tx.account, code);
  const used = await useRecoveryCode(tx.trx, tables, tx.account, hash, tx.now);
  if (used) await touchFactor(tx.trx, tables, tx.account, tx.now);
  return used;
}

/**
 * A TOTP of a foreign store's secret (PostfixAdmin, …). The store keeps no replay state: mail2fa's own table does
 * (src/db/store-replay.ts), so a code is accepted once here too; window ±1 step at most, whatever the store allows.
 */
async function checkForeignTotp(
  tx: AccountTx,
  foreign: ForeignFactors,
  token: string,
  after: number | null,
): Promise<boolean> {
  if (foreign.secrets.length === 0) return false;
  const tables = tx.ctx.tables;
  for (const secret of foreign.secrets) {
    const match = verifyTotp({ secret: base32Encode(secret.key), token, nowMs: tx.now, afterTimeStep: after });
    if (match) return useStoreTotpStep(tx.trx, tables, tx.account, match.timeStep, tx.now);
  }
  return false;
}

/** One of a foreign store's own recovery codes (consumed there, compare-and-set). */
async function checkForeignRecovery(tx: AccountTx, foreign: ForeignFactors, code: string): Promise<boolean> {
  for (const store of foreign.recoveryStores) {
    try {
      if (
        await store.consumeRecoveryCode!(
          tx.account,
          code,
          storeWriteContext(tx.ctx.config, store, tx.trx, tx.now, tx.ctx.actor),
        )
      )
        return true;
    } catch (err) {
      throw storeFailure(store, asMail2faError(err));
    }
  }
  return false;
}

/**
 * Checks `code` for the account in `tx`; returns the kind that matched (and was marked used) or null.
 * `allow` limits the kinds (e.g. disable takes app/SMS/recovery codes, not a temporary code). `foreign`: the
 * factors of foreign stores (their TOTP secrets and recovery codes) that sign-in accepts too.
 */
export async function checkSecondFactor(
  tx: AccountTx,
  factor: FactorRow | undefined,
  code: ParsedCode,
  allow: ReadonlySet<CodeKind>,
  foreign: ForeignFactors = NO_FOREIGN_FACTORS,
): Promise<CodeKind | null> {
  switch (code.form) {
    case 'digits': {
      // One replay floor for every TOTP of the account: after a migration without --clear-plaintext the same secret
      // lives in mail2fa's store and in the foreign one, and a code used through one must not pass through the other.
      const storeStep =
        foreign === NO_FOREIGN_FACTORS ? null : await lastStoreTotpStep(tx.trx, tx.ctx.tables, tx.account);
      if (factor?.method === 'totp' && allow.has('totp') && (await checkTotp(tx, factor, code.value, storeStep)))
        return 'totp';
      if (factor?.method === 'sms' && allow.has('sms') && (await checkChallenge(tx, 'sms', code.value))) return 'sms';
      const ownStep = factor?.method === 'totp' ? factor.last_totp_step : null;
      return allow.has('totp') && (await checkForeignTotp(tx, foreign, code.value, maxStep(storeStep, ownStep)))
        ? 'totp'
        : null;
    }
    case 'recovery':
      if (!allow.has('recovery')) return null;
      if (factor && (await checkRecovery(tx, code.value))) return 'recovery';
      return (await checkForeignRecovery(tx, foreign, code.value)) ? 'recovery' : null;
    case 'temporary':
      return allow.has('temporary') && (await checkChallenge(tx, 'temporary', code.value)) ? 'temporary' : null;
    case 'store-recovery':
      return allow.has('recovery') && (await checkForeignRecovery(tx, foreign, code.value)) ? 'recovery' : null;
  }
}

/** How many unused recovery codes the account has left. */
export async function recoveryCodesLeft(tx: AccountTx): Promise<number> {
  return countUnusedRecoveryCodes(tx.trx, tx.ctx.tables, tx.account);
}
