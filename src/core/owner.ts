/**
 * Proving that the person acting owns the account, as turning 2FA off asks: the current
 * password plus a current one-time code (app, SMS or recovery code). Used by `disable` and `codes regenerate`.
 *
 * The password is hashed before the account's transaction (bcrypt/argon2 take tens of milliseconds; the row lock
 * should not wait for them); its result is only acted on inside the transaction, after the lockout check, where a
 * wrong password counts on the shared counter.
 */
import type { Context } from '../context.js';
import { verifyPassword } from '../crypto/passwords.js';
import type { Mailbox } from '../db/accounts.js';
import { canonicalAddress } from './address.js';
import { Mail2faError, ExitCode, usageError } from '../errors.js';
import { readFactor, type FactorRow } from './factors.js';
import { accountTransaction, Refusal, type AccountTx } from './guard.js';
import { sendSmsChallenge, type SmsSent } from './sms-challenge.js';
import { foreignFactors, NO_FOREIGN_FACTORS, type ForeignFactors } from './stores.js';
import { checkSecondFactor, hasTemporaryCodeMarker, type CodeKind, type ParsedCode } from './factor-check.js';

/** What the account's 2FA looks like before acting (lets the CLI say which code to type). No secrets. */
export interface FactorSummary {
  email: string;
  method: 'totp' | 'sms' | null;
  /** Masked, e.g. "+45 ****3456". */
  phone: string | null;
  /**
   * Customer service issued a temporary access code (`recover --temporary-code`) and no factor was enrolled since:
   * 2FA is still required. The code's row is the marker while it exists, pending, used or expired (see recover.ts).
   */
  temporaryCode: boolean;
  /** Foreign stores in which 2FA is on for the account (e.g. ["postfixadmin"]), in order. */
  foreignStores: string[];
  /** A foreign store enforces 2FA at sign-in for the account. */
  foreignRequired: boolean;
  /** mail2fa can check a code from a foreign store's authenticator app (its TOTP secret). */
  foreignTotp: boolean;
}

/** Canonical address → the one mailbox (67 if unknown) → its factor summary (every store). Reads only. */
export async function factorSummary(ctx: Context, email: string): Promise<FactorSummary> {
  const address = canonicalAddress(email);
  const mailbox = await (await ctx.accounts()).findExact(address);
  const db = await ctx.db();
  const factor = await readFactor(db.knex, ctx.tables, mailbox.email);
  const foreign = await foreignFactors(await ctx.stores(), mailbox.email);
  return {
    email: mailbox.email,
    method: factor?.method ?? null,
    phone: factor?.phone_masked ?? null,
    temporaryCode: await hasTemporaryCodeMarker(db.knex, ctx.tables, mailbox.email),
    foreignStores: foreign.stores,
    foreignRequired: foreign.required,
    foreignTotp: foreign.secrets.length > 0,
  };
}

/** Whether sign-in must ask this account for a code: in mail2fa's store, or in a foreign store that enforces it. */
export function summaryRequiresCode(summary: FactorSummary): boolean {
  return summary.method !== null || summary.temporaryCode || summary.foreignRequired;
}

/** Whether a temporary access code row exists, used or expired ones included: an expired code does not turn 2FA off (fail closed). */

// Lives with the code checks (src/core/factor-check.ts) so that `verify` need not load this module's password
// hashing and SMS sending; re-exported for the owner checks' callers.
export { twoFactorRequired } from './factor-check.js';

/** The mailbox and whether `password` matches its stored hash (unknown hash scheme → 78, from verifyPassword). */
export async function checkPassword(
  ctx: Context,
  email: string,
  password: string,
): Promise<{ mailbox: Mailbox; passwordOk: boolean }> {
  const address = canonicalAddress(email);
  const mailbox = await (await ctx.accounts()).findExact(address);
  return { mailbox, passwordOk: await verifyPassword(password, mailbox.passwordHash) };
}

/**
 * The code kinds that prove ownership: app, SMS or recovery code; a temporary access code only while it is the
 * account's sole second factor (once it is used or expired, no code can: enrol a new factor or ask customer service).
 */
export function ownerCodeKinds(
  factor: FactorRow | undefined,
  foreign: ForeignFactors = NO_FOREIGN_FACTORS,
): ReadonlySet<CodeKind> {
  if (factor) return new Set<CodeKind>(['totp', 'sms', 'recovery']);
  // A foreign store's authenticator app (and its own recovery codes) prove the owner as well.
  if (foreign.secrets.length || foreign.recoveryStores.length)
    return new Set<CodeKind>(['totp', 'recovery', 'temporary']);
  return new Set<CodeKind>(['temporary']);
}

/**
 * Inside the account's transaction: locked → Refusal (75); wrong password → Refusal (77, counted); then the code
 * (marked used when it matches) → its kind, or Refusal (77, counted). `action` names the refusal audit rows.
 */
export async function proveOwner(
  tx: AccountTx,
  action: string,
  factor: FactorRow | undefined,
  passwordOk: boolean,
  code: ParsedCode,
  foreign: ForeignFactors = NO_FOREIGN_FACTORS,
): Promise<CodeKind | Refusal> {
  const locked = await tx.refuseIfLocked(action);
  if (locked) return locked;
  if (!passwordOk) return tx.fail(action, 'password');
  const kind = await checkSecondFactor(tx, factor, code, ownerCodeKinds(factor, foreign), foreign);
  if (!kind) return tx.fail(action, 'code');
  await tx.succeed();
  return kind;
}

/**
 * Sends a fresh SMS code to the account's phone so that the owner can then prove ownership with it ("sent on
 * request" by `disable`). The password is checked first (counted when wrong), so nobody without it
 * can make the tool text the owner; the send limit of sms-challenge.ts applies.
 */
export async function sendOwnerSmsCode(
  ctx: Context,
  input: { email: string; password: string; action: string },
): Promise<SmsSent> {
  const { mailbox, passwordOk } = await checkPassword(ctx, input.email, input.password);
  return accountTransaction(ctx, mailbox.email, async (tx) => {
    const factor = await readFactor(tx.trx, ctx.tables, tx.account);
    if (factor?.method !== 'sms' || !factor.phone_ct) {
      throw usageError(
        `${tx.account} does not use SMS codes${factor ? ' (it uses an authenticator app)' : ' (2FA is off)'}: there is nothing to send`,
        factor ? 'Type the code from the authenticator app, or a recovery code.' : undefined,
      );
    }
    const locked = await tx.refuseIfLocked(`${input.action}-sms`);
    if (locked) return locked;
    if (!passwordOk) return tx.fail(`${input.action}-sms`, 'password');
    const e164 = tx.vault().open(ctx.tables.factor, 'phone_ct', tx.account, factor.phone_ct);
    return sendSmsChallenge(tx, { e164, masked: factor.phone_masked ?? '' }, `${input.action}-sms`);
  });
}

/** The error for commands that need 2FA to be on (e.g. `codes regenerate`). */
export function notEnabled(email: string, what: string): Mail2faError {
  return new Mail2faError(
    'not_enabled',
    `two-factor authentication is not enabled for ${email}: ${what}`,
    ExitCode.DATAERR,
    `Turn it on first: mail2fa enable ${email}`,
  );
}
