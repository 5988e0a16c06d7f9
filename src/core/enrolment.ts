/**
 * Turning 2FA on (`enable`, the user's "Enable Two-Factor Authentication"), as two steps
 * that the interactive command and the scriptable form (`--start`, `--confirm`) share:
 *
 * - start: the current password is checked (a wrong one counts toward the lockout), then a PENDING enrolment is
 *   stored — the new TOTP secret or phone number sealed for the enrolment table, expiring after 10 minutes — and
 *   for SMS a confirmation code is sent. A pending enrolment is not a factor: sign-in never looks at it.
 * - confirm: the code is checked against the pending secret (TOTP) or the newest enrolment SMS code; then, in one
 *   transaction, the factor is stored with ten recovery codes, the pending enrolment removed, sessions revoked
 *   and the audit row written. Three wrong codes since the start cancel the enrolment.
 *
 * No transaction is held while a person reads a QR code or waits for a text message: each step is one short
 * transaction under the account's lock. Nothing here prints, prompts or exits.
 */
import {
  countEnrolmentWrongCodes,
  deleteChallengesOf,
  deleteEnrolment,
  insertEnrolment,
  newestChallenge,
  readEnrolment,
  setFactorStep,
  useChallenge,
} from '../db/own-store.js';
import { randomBytes } from 'node:crypto';
import type { Context } from '../context.js';
import type { Mailbox } from '../db/accounts.js';
import { parsePhone, type Phone } from '../sms/phone.js';
import type { SmsDelivery } from '../sms/transports.js';
import {
  TOTP_DIGITS,
  base32Decode,
  generateTotpSecret,
  isWellFormedCode,
  otpauthUri,
  verifyTotp,
} from '../totp/totp.js';
import { useStoreTotpStep } from '../db/store-replay.js';
import type { ForeignStore } from '../stores/types.js';
import { canonicalAddress } from './address.js';
import { writeAudit } from './audit-write.js';
import { Mail2faError, dataError, noPerm, usageError } from '../errors.js';
import { readFactor, revokeSessions, runSignOutCommand, storeFactor, type FactorRow } from './factors.js';
import { Refusal, accountTransaction, type AccountTx } from './guard.js';
import { isLocked } from './lockout.js';
import { checkPassword, proveOwner } from './owner.js';
import { refuseInactiveMailbox } from './mailbox-state.js';
import { sendSmsChallenge } from './sms-challenge.js';
import { isoTime } from './time.js';
import {
  activatedIn,
  auditOutcomes,
  missingCapability,
  OWN_STORE,
  readStores,
  requireReadings,
  storeWriteContext,
  type StoreReading,
} from './stores.js';
import { parseCodeInput } from './factor-check.js';
import { Vault } from './vault.js';

export type FactorMethod = FactorRow['method'];

/** How long a started enrolment can be confirmed. */
export const ENROLMENT_TTL_MS = 10 * 60 * 1000;
/** Wrong confirmation codes allowed per enrolment (each also counts toward the shared lockout). */
export const CONFIRM_TRIES = 3;
/** The challenge purpose of enrolment SMS codes: never accepted at sign-in (see sms-challenge.ts). */
const ENROL_SMS = 'enrol-sms';

export interface EnrolmentTarget {
  email: string;
  /** Replace an existing factor (only once the new one is confirmed). */
  force?: boolean;
  /** The store to enrol into (`--store`); default: the first writable one, mail2fa's own. */
  store?: string;
}

/**
 * `--store`: mail2fa's own store (the default, and the first writable one), or a foreign store that can enrol
 * (Roundcube's plugin): it must exist (64) and declare 'enable' (78, store named). A foreign store takes an
 * authenticator app only, and never replaces anything (`--force` is for mail2fa's own factor).
 */
async function targetStore(
  ctx: Context,
  target: { store?: string; force?: boolean; method?: FactorMethod },
): Promise<ForeignStore | null> {
  const name = target.store;
  if (name === undefined || name === OWN_STORE) return null;
  const stores = await ctx.stores();
  const store = stores.find((s) => s.name === name);
  if (!store)
    throw usageError(
      `--store: no store named "${name}"`,
      `Configured stores: ${[OWN_STORE, ...stores.map((s) => s.name)].join(', ')}.`,
    );
  if (!store.enrol || !store.capabilities.has('enable')) throw missingCapability(store, 'enable');
  if (target.method === 'sms')
    throw usageError(
      `store "${name}" (${store.kind}) takes an authenticator app only`,
      'Leave out --method sms / --phone.',
    );
  if (target.force)
    throw usageError(
      `--force replaces mail2fa's own factor; it does not apply to store "${name}"`,
      `Turn 2FA off first (mail2fa disable), then enable with --store ${name}.`,
    );
  return store;
}

/** Recovery codes in the form the Roundcube plugin generates and its settings page shows (4 of 10 characters). */
const STORE_RECOVERY_CODES = 4;
const BASE32_ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
function storeRecoveryCode(): string {
  return [...randomBytes(10)].map((b) => BASE32_ALPHABET[b & 31]).join('');
}

/** Foreign stores in which 2FA is already on for the account (a store that cannot be read fails: 69). */
async function foreignOn(ctx: Context, email: string): Promise<StoreReading[]> {
  const readings = await readStores(await ctx.stores(), email);
  requireReadings(readings);
  return activatedIn(readings);
}

/**
 * 2FA on in a foreign store: enrolling in mail2fa would give the account a second, independent factor with the
 * password alone. Refused (65, audited) with the way out for that store.
 */
async function refuseForeign(tx: AccountTx, on: StoreReading[]): Promise<Refusal | null> {
  if (on.length === 0) return null;
  const names = on.map((r) => `${r.store.name} (${r.store.kind})`).join(', ');
  await tx.audit({
    action: 'enable',
    outcome: 'refused',
    reason: 'already enabled in another store',
    detail: Object.fromEntries(on.map((r) => [`store:${r.store.name}`, 'on'])),
  });
  const pfa = on.find((r) => r.store.kind === 'postfixadmin');
  return new Refusal(
    dataError(
      'already_enabled',
      `two-factor authentication is already on for ${tx.account} in store ${names}: sign-in asks for that code already`,
      pfa
        ? `PostfixAdmin's own TOTP is active for this mailbox. Move it into mail2fa with \`mail2fa migrate-from postfixadmin\` (the user keeps their app), or turn it off first with \`mail2fa disable ${tx.account}\` (password + a current code).`
        : `Turn it off first with \`mail2fa disable ${tx.account}\` (password + a current code), then enable again.`,
    ),
  );
}

export interface StartEnrolmentInput extends EnrolmentTarget {
  password: string;
  method: FactorMethod;
  /** For SMS: `011-<country code>-<number>` or `+<country code><number>`. */
  phone?: string;
  /**
   * A current code of the existing second factor (app, SMS or recovery code), or customer service's pending
   * temporary code: required when 2FA is already required for the account (replacing with --force, or after
   * `recover --temporary-code`), so that the password alone never swaps the factor.
   */
  currentCode?: string;
}

export interface StartedEnrolment {
  email: string;
  enrolmentId: string;
  method: FactorMethod;
  expiresAt: string;
  /** The method of the factor that confirming will replace (`--force`), or null. */
  replacing: FactorMethod | null;
  /** The enrolling user's one-time view of the new secret (shown once, never logged). */
  totp?: { secret: string; otpauthUri: string; issuer: string; label: string };
  sms?: { phone: string; delivery: SmsDelivery };
  /** The foreign store the factor goes into once confirmed (`--store`, given again at the confirmation). */
  store?: string;
}

export interface ConfirmEnrolmentInput {
  email: string;
  code: string;
  /** When given, the pending enrolment must be this one (a newer start supersedes an older one). */
  enrolmentId?: string;
  /** The store to write the confirmed factor into (as at the start); default mail2fa's own. */
  store?: string;
}

export interface CompletedEnrolment {
  email: string;
  method: FactorMethod;
  /** Masked, for SMS. */
  phone: string | null;
  /** Shown once; stored only as keyed hashes. */
  recoveryCodes: string[];
  replaced: FactorMethod | null;
  sessionsRevokedAt: string;
  signOut: SignOutResult;
  /** The foreign store the factor was written into (`--store`); absent for mail2fa's own. */
  store?: string;
}

export interface SignOutResult {
  action: Context['config']['signOut']['action'];
  ok: boolean;
  detail: string;
}

interface PendingRow {
  account: string;
  id: string;
  method: FactorMethod;
  secret_ct: string | null;
  phone_ct: string | null;
  phone_masked: string | null;
  created_at: number | string;
  expires_at: number | string;
}

/**
 * The checks that need no password, run first so that nobody types a password for an account that cannot be
 * enrolled: known (67), active, not locked, no factor yet unless `force`. Refusals are audited.
 */
export async function enrolmentPreflight(
  ctx: Context,
  target: EnrolmentTarget,
): Promise<{ email: string; replacing: FactorMethod | null; currentCode: 'factor' | 'temporary' | null }> {
  const email = canonicalAddress(target.email);
  const mailbox = await (await ctx.accounts()).findExact(email);
  await targetStore(ctx, target);
  const on = await foreignOn(ctx, email);
  return accountTransaction(ctx, email, async (tx) => {
    const checked = await checkEnrollable(tx, mailbox, Boolean(target.force));
    if (checked instanceof Refusal) return checked;
    const foreign = await refuseForeign(tx, on);
    if (foreign) return foreign;
    const proof = await requiredProof(tx, checked);
    if (proof instanceof Refusal) return proof;
    return { email, replacing: checked?.method ?? null, currentCode: proof };
  });
}

/**
 * Read-only: whether enrolmentPreflight would refuse the account as inactive or already enabled (65), so that a
 * caller without a terminal hears that first instead of "needs a terminal". Throws 65/67 for a malformed or unknown
 * address; writes nothing (the refusal itself, audited, comes from enrolmentPreflight).
 */
export async function enrolmentWouldBeRefused(ctx: Context, target: EnrolmentTarget): Promise<boolean> {
  const email = canonicalAddress(target.email);
  const mailbox = await (await ctx.accounts()).findExact(email);
  if (!mailbox.active) return true;
  const factor = await readFactor((await ctx.db()).knex, ctx.tables, email);
  return Boolean(factor && !target.force);
}

/** Step 1: password, then a pending enrolment (and for SMS a code sent). */
export async function startEnrolment(ctx: Context, input: StartEnrolmentInput): Promise<StartedEnrolment> {
  const email = canonicalAddress(input.email);
  // Bad input is refused before anything is looked up or counted.
  const phone: Phone | undefined = input.method === 'sms' ? parsePhone(input.phone ?? '') : undefined;
  // Hashed before the transaction (slow hashes must not hold the account's lock), acted on inside it.
  const currentCode = input.currentCode === undefined ? undefined : parseCodeInput(input.currentCode);
  const foreignTarget = await targetStore(ctx, input);
  const { mailbox, passwordOk } = await checkPassword(ctx, email, input.password);
  const on = await foreignOn(ctx, email);
  const tables = ctx.tables;
  return accountTransaction(ctx, email, async (tx) => {
    const existing = await checkEnrollable(tx, mailbox, Boolean(input.force));
    if (existing instanceof Refusal) return existing;
    const foreign = await refuseForeign(tx, on);
    if (foreign) return foreign;
    const proof = await requiredProof(tx, existing);
    if (proof instanceof Refusal) return proof;
    if (proof) {
      // 2FA is already required: the password AND a current code (marked used) prove the owner, as for disable.
      if (currentCode === undefined) {
        await tx.audit({
          action: 'enable',
          outcome: 'refused',
          reason: 'current code missing',
          detail: { method: input.method },
        });
        return new Refusal(
          usageError(
            `${tx.account} already requires a second factor: replacing it needs a current code too`,
            proof === 'temporary'
              ? 'Give the temporary access code customer service sent: --current-code CODE.'
              : 'Give a code from the current app or phone, or a recovery code: --current-code CODE.',
          ),
        );
      }
      const kind = await proveOwner(tx, 'enable', existing, passwordOk, currentCode);
      if (kind instanceof Refusal) return kind;
    } else if (!passwordOk) return tx.fail('enable', 'password', { method: input.method });
    // No tx.succeed() for the password alone: it must not reset the lockout counter (it guards the second factor).

    let sms: StartedEnrolment['sms'];
    if (phone) {
      // Sent first: when the limit or the gateway refuses, an earlier pending enrolment (and its code) stays valid.
      const sent = await sendSmsChallenge(tx, phone, 'enable-send-code', ENROL_SMS);
      if (sent instanceof Refusal) return sent;
      sms = { phone: sent.maskedPhone, delivery: sent.delivery };
      await deleteEnrolment(tx.trx, tables, email);
    } else {
      await discardPending(tx);
    }
    const vault = tx.vault();
    const enrolmentId = randomBytes(12).toString('hex');
    const expiresAt = tx.now + ENROLMENT_TTL_MS;
    const secret = input.method === 'totp' ? generateTotpSecret() : undefined;
    await insertEnrolment(tx.trx, tables, {
      account: email,
      id: enrolmentId,
      method: input.method,
      secret_ct: secret ? vault.seal(tables.enrolment, 'secret_ct', email, secret) : null,
      phone_ct: phone ? vault.seal(tables.enrolment, 'phone_ct', email, phone.e164) : null,
      phone_masked: phone?.masked ?? null,
      key_id: vault.key.id,
      created_at: tx.now,
      expires_at: expiresAt,
    });
    const replacing = existing?.method ?? null;
    await tx.audit({
      action: 'enable-start',
      outcome: 'ok',
      detail: { method: input.method, enrolment: enrolmentId, replacing, ...(phone ? { phone: phone.masked } : {}) },
    });
    const issuer = ctx.config.issuer;
    return {
      email,
      enrolmentId,
      method: input.method,
      expiresAt: isoTime(expiresAt)!,
      replacing,
      ...(secret
        ? { totp: { secret, otpauthUri: otpauthUri({ issuer, label: email, secret }), issuer, label: email } }
        : {}),
      ...(sms ? { sms } : {}),
      ...(foreignTarget ? { store: foreignTarget.name } : {}),
    };
  });
}

/** Step 2: the code from the app or the text message; on success the factor is stored and the user signed out. */
export async function confirmEnrolment(ctx: Context, input: ConfirmEnrolmentInput): Promise<CompletedEnrolment> {
  const email = canonicalAddress(input.email);
  // Strict input: malformed codes are refused as such, not counted as wrong ones.
  if (!isWellFormedCode(input.code, TOTP_DIGITS)) {
    throw dataError(
      'bad_code',
      input.code === '' ? 'no confirmation code given' : 'malformed confirmation code',
      `A confirmation code is exactly ${TOTP_DIGITS} digits (0-9), nothing else: no spaces.`,
    );
  }
  await (await ctx.accounts()).findExact(email);
  const foreignTarget = await targetStore(ctx, { store: input.store });
  const tables = ctx.tables;
  const done = await accountTransaction(ctx, email, async (tx) => {
    const locked = await tx.refuseIfLocked('enable');
    if (locked) return locked;
    const pending = await usablePending(tx, input.enrolmentId);
    if (pending instanceof Refusal) return pending;

    // Decrypt before checking the code: a tampered or copied row is an integrity error (78), never a wrong code.
    const vault = tx.vault();
    const secret =
      pending.method === 'totp'
        ? vault.open(tables.enrolment, 'secret_ct', email, required(pending.secret_ct, 'secret'))
        : undefined;
    const phoneE164 =
      pending.method === 'sms'
        ? vault.open(tables.enrolment, 'phone_ct', email, required(pending.phone_ct, 'phone'))
        : undefined;

    let acceptedStep: number | null = null;
    if (secret !== undefined) {
      const match = verifyTotp({ secret, token: input.code, nowMs: tx.now });
      if (!match) return wrongCode(tx, pending);
      acceptedStep = match.timeStep;
    } else if (!(await useEnrolmentSmsCode(tx, input.code))) {
      return wrongCode(tx, pending);
    }
    await tx.succeed();

    const previous = await readFactor(tx.trx, tables, email);
    if (foreignTarget) {
      if (pending.method !== 'totp' || secret === undefined || acceptedStep === null)
        throw usageError(`store "${foreignTarget.name}" takes an authenticator app only`);
      if (previous)
        return new Refusal(
          dataError(
            'already_enabled',
            `${email} has 2FA in mail2fa's own store already`,
            `Turn it off first (mail2fa disable ${email}).`,
          ),
        );
      // The plugin keeps its recovery codes in its own value (plaintext inside it, as it compares them): shown once.
      const recoveryCodes = Array.from({ length: STORE_RECOVERY_CODES }, storeRecoveryCode);
      await discardPending(tx);
      const change = await foreignTarget.enrol!(
        email,
        { key: base32Decode(secret), recoveryCodes },
        storeWriteContext(ctx.config, foreignTarget, tx.trx, tx.now, ctx.actor),
      );
      // The confirmation code's step is used up for the store's secret too (mail2fa's replay table).
      await useStoreTotpStep(tx.trx, tables, email, acceptedStep, tx.now);
      await revokeSessions(tx.trx, tables, ctx.config.signOut, email, tx.now);
      await tx.audit({
        action: 'enable',
        outcome: 'ok',
        detail: { method: 'totp', enrolment: pending.id, store: foreignTarget.name, ...auditOutcomes([change]) },
      });
      return {
        email,
        method: pending.method,
        phone: null,
        recoveryCodes,
        replaced: null,
        sessionsRevokedAt: isoTime(tx.now)!,
        store: foreignTarget.name,
      };
    }
    // storeFactor replaces any old factor and removes the pending enrolment and its challenges with it.
    const recoveryCodes = await storeFactor(tx.trx, tables, vault, tx.now, {
      account: email,
      method: pending.method,
      ...(secret !== undefined ? { totpSecret: secret } : {}),
      ...(phoneE164 !== undefined ? { phoneE164, phoneMasked: pending.phone_masked ?? undefined } : {}),
    });
    // The confirmation code's step is used up: it cannot be replayed at the first sign-in.
    if (acceptedStep !== null) await setFactorStep(tx.trx, tables, email, acceptedStep);
    await revokeSessions(tx.trx, tables, ctx.config.signOut, email, tx.now);
    await tx.audit({
      action: 'enable',
      outcome: 'ok',
      detail: {
        method: pending.method,
        enrolment: pending.id,
        replaced: previous?.method ?? null,
        ...(pending.phone_masked ? { phone: pending.phone_masked } : {}),
      },
    });
    return {
      email,
      method: pending.method,
      phone: pending.phone_masked,
      recoveryCodes,
      replaced: previous?.method ?? null,
      sessionsRevokedAt: new Date(tx.now).toISOString(),
    };
  });
  return { ...done, signOut: await signOutAfterCommit(ctx, email) };
}

/** Drops the pending enrolment (e.g. the person cancelled at the prompt). With `enrolmentId`, only that one. */
export async function cancelEnrolment(
  ctx: Context,
  input: { email: string; enrolmentId?: string },
): Promise<{ email: string; cancelled: boolean; method: FactorMethod | null }> {
  const email = canonicalAddress(input.email);
  await (await ctx.accounts()).findExact(email);
  return accountTransaction(ctx, email, async (tx) => {
    const pending = await readPending(tx);
    if (!pending || (input.enrolmentId !== undefined && pending.id !== input.enrolmentId))
      return { email, cancelled: false, method: null };
    await discardPending(tx);
    await tx.audit({
      action: 'enable-cancel',
      outcome: 'ok',
      reason: 'cancelled',
      detail: { method: pending.method, enrolment: pending.id },
    });
    return { email, cancelled: true, method: pending.method };
  });
}

// ---------------------------------------------------------------------------------------------------------------

/** Locked, inactive or already enabled (without force) → Refusal; otherwise the factor `force` will replace. */
async function checkEnrollable(
  tx: AccountTx,
  mailbox: Mailbox,
  force: boolean,
): Promise<FactorRow | undefined | Refusal> {
  const locked = await tx.refuseIfLocked('enable');
  if (locked) return locked;
  const inactive = await refuseInactiveMailbox(tx, mailbox, 'enable');
  if (inactive) return inactive;
  const factor = await readFactor(tx.trx, tx.ctx.tables, tx.account);
  if (factor && !force) {
    await tx.audit({
      action: 'enable',
      outcome: 'refused',
      reason: 'already enabled',
      detail: { method: factor.method },
    });
    return new Refusal(
      dataError(
        'already_enabled',
        `two-factor authentication is already on for ${tx.account} (${methodLabel(factor.method)}${factor.phone_masked ? `, ${factor.phone_masked}` : ''})`,
        'Turn it off first (`mail2fa disable`), or add --force to replace it: the old factor stays until the new one is confirmed.',
      ),
    );
  }
  return factor;
}

/**
 * What proves the owner before a new factor may be enrolled: nothing when 2FA is not required; the existing
 * factor's code ('factor'); or customer service's temporary code while it is pending ('temporary'). A temporary
 * code already used at sign-in means the owner signed in with it: the password then suffices. One that expired
 * unused keeps 2FA required and cannot be used: refused, back to customer service.
 */
async function requiredProof(
  tx: AccountTx,
  factor: FactorRow | undefined,
): Promise<'factor' | 'temporary' | null | Refusal> {
  if (factor) return 'factor';
  const temp = await newestChallenge(tx.trx, tx.ctx.tables, tx.account, 'temporary');
  if (!temp || temp.used_at !== null) return null;
  if (temp.expires_at > tx.now) return 'temporary';
  await tx.audit({ action: 'enable', outcome: 'refused', reason: 'temporary code expired' });
  return new Refusal(
    dataError(
      'temporary_code_expired',
      `customer service's temporary access code for ${tx.account} expired unused: 2FA stays required`,
      'Ask customer service for a new temporary code (mail2fa recover … --temporary-code).',
    ),
  );
}

export function methodLabel(method: FactorMethod): string {
  return method === 'totp' ? 'authenticator app' : 'SMS';
}

async function readPending(tx: AccountTx): Promise<PendingRow | undefined> {
  return readEnrolment(tx.trx, tx.ctx.tables, tx.account);
}

/** The pending enrolment a code may confirm, or the (audited) refusal saying why there is none. */
async function usablePending(tx: AccountTx, enrolmentId: string | undefined): Promise<PendingRow | Refusal> {
  const start = `Start again: mail2fa enable ${tx.account} (or --start for the two-step form).`;
  const pending = await readPending(tx);
  if (!pending || (enrolmentId !== undefined && pending.id !== enrolmentId)) {
    const superseded = pending !== undefined;
    await tx.audit({
      action: 'enable',
      outcome: 'refused',
      reason: superseded ? 'enrolment superseded' : 'no pending enrolment',
      detail: enrolmentId ? { enrolment: enrolmentId } : undefined,
    });
    return new Refusal(
      superseded
        ? dataError(
            'enrolment_superseded',
            `enrolment ${enrolmentId} of ${tx.account} is no longer pending: a newer one (${pending.id}) replaced it`,
            'Confirm the newer enrolment with the code for it, or start again.',
          )
        : dataError(
            'no_pending_enrolment',
            `no enrolment is pending for ${tx.account} (never started, already confirmed, cancelled, or expired and cleaned up)`,
            start,
          ),
    );
  }
  if (Number(pending.expires_at) <= tx.now) {
    await discardPending(tx);
    await tx.audit({
      action: 'enable',
      outcome: 'refused',
      reason: 'enrolment expired',
      detail: { method: pending.method, enrolment: pending.id },
    });
    return new Refusal(
      dataError(
        'enrolment_expired',
        `the enrolment started at ${isoTime(Number(pending.created_at))} has expired (it must be confirmed within 10 minutes); nothing was stored`,
        start,
      ),
    );
  }
  return pending;
}

/** Counts a wrong confirmation code; the third since the start (or a lock) cancels the enrolment. */
async function wrongCode(tx: AccountTx, pending: PendingRow): Promise<Refusal> {
  const refusal = await tx.fail('enable', 'code', { method: pending.method, enrolment: pending.id });
  const wrong = await wrongCodesFor(tx, pending);
  const locked = isLocked(tx.state, tx.now);
  if (wrong < CONFIRM_TRIES && !locked) {
    const left = CONFIRM_TRIES - wrong;
    return new Refusal(
      noPerm(
        'wrong_code',
        `wrong code (${left} ${left === 1 ? 'try' : 'tries'} left)`,
        pending.method === 'totp'
          ? 'Type the code your authenticator app shows now for this account.'
          : 'Type the code from the newest text message.',
      ),
    );
  }
  await discardPending(tx);
  await tx.audit({
    action: 'enable-cancel',
    outcome: 'ok',
    reason: locked ? 'account locked' : `${CONFIRM_TRIES} wrong codes`,
    detail: { method: pending.method, enrolment: pending.id },
  });
  const message = `${refusal.error.message}; ${locked ? 'the enrolment was cancelled' : `${wrong} wrong codes: the enrolment was cancelled`} and nothing was stored`;
  return new Refusal(
    new Mail2faError(
      'enrolment_cancelled',
      message,
      refusal.error.exitCode,
      locked ? refusal.error.hint : `Start again: mail2fa enable ${tx.account}`,
    ),
  );
}

/**
 * This enrolment's wrong codes so far, counted from its refusal audit rows (written in the same transaction as
 * each count): the shared lockout counter cannot tell them apart from other wrong codes and is never reset by a
 * password alone.
 */
async function wrongCodesFor(tx: AccountTx, pending: PendingRow): Promise<number> {
  return countEnrolmentWrongCodes(tx.trx, tx.ctx.tables, tx.account, Number(pending.created_at), pending.id);
}

/** The newest enrolment SMS code, if `code` matches it and it is unused and unexpired; marked used (compare-and-set). */
async function useEnrolmentSmsCode(tx: AccountTx, code: string): Promise<boolean> {
  const tables = tx.ctx.tables;
  const newest = await newestChallenge(tx.trx, tables, tx.account, ENROL_SMS);
  if (!newest || newest.used_at !== null || newest.expires_at <= tx.now) return false;
  if (!Vault.equal(await tx.vault().hash(tx.trx, 'sms', tx.account, code), newest.code_hash)) return false;
  return useChallenge(tx.trx, tables, newest.id, tx.now);
}

async function discardPending(tx: AccountTx): Promise<void> {
  const tables = tx.ctx.tables;
  await deleteEnrolment(tx.trx, tables, tx.account);
  await deleteChallengesOf(tx.trx, tables, tx.account, ENROL_SMS);
}

function required(sealed: string | null, what: string): string {
  if (sealed === null) throw new Error(`pending enrolment has no ${what}`);
  return sealed;
}

/**
 * The `command` sign-out action runs after the commit (a program cannot be rolled back). Its failure does not
 * undo the enrolment; it is audited and reported, since the old sessions may still be open.
 */
async function signOutAfterCommit(ctx: Context, email: string): Promise<SignOutResult> {
  const signOut = ctx.config.signOut;
  if (signOut.action !== 'command') {
    return {
      action: signOut.action,
      ok: true,
      detail:
        signOut.action === 'sql'
          ? 'sign-out statement ran in the same transaction'
          : 'revocation time recorded (no sign-out action configured)',
    };
  }
  const result = await runSignOutCommand(signOut, email);
  if (!result.ok) {
    ctx.notices.push(`warning: 2FA is on, but ${result.detail}: existing sessions of ${email} may still be open`);
    const db = await ctx.db();
    await writeAudit(db.knex, ctx.tables, ctx, {
      action: 'sign-out',
      account: email,
      outcome: 'failed',
      reason: result.detail,
    }).catch(() => {});
  }
  return { action: 'command', ok: result.ok, detail: result.detail };
}
