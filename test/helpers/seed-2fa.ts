/**
 * Accounts in a given 2FA state, stored exactly as the real flows store them (storeFactor inside the account's
 * transaction, sendSmsChallenge through the configured outbox transport), plus readers for the rows tests assert on.
 */
import { join } from 'node:path';
import type { Context } from '../../src/context.js';
import { newTemporaryCode } from '../../src/crypto/one-time-codes.js';
import { readFactor, removeFactor, storeFactor } from '../../src/core/factors.js';
import { accountTransaction } from '../../src/core/guard.js';
import { sendSmsChallenge } from '../../src/core/sms-challenge.js';
import { parsePhone } from '../../src/sms/phone.js';
import { generateTotpSecret, totpCode } from '../../src/totp/totp.js';
import { addMailbox } from './context.js';
import { lastOutboxCode } from './enrolment.js';

export { lastOutboxCode };

export const PASSWORD = 'correct horse';

export interface Enrolled {
  email: string;
  secret?: string;
  recoveryCodes: string[];
}

/** Stores an app factor for `email` (its mailbox already there) as enrolment does; returns the secret and codes. */
export async function storeTotpFactor(
  ctx: Context,
  email: string,
  secret = generateTotpSecret(),
): Promise<{ secret: string; recoveryCodes: string[] }> {
  const recoveryCodes = await accountTransaction(ctx, email, (tx) =>
    storeFactor(tx.trx, ctx.tables, tx.vault(), tx.now, { account: email, method: 'totp', totpSecret: secret }),
  );
  return { secret, recoveryCodes };
}

/** Stores an SMS factor for `email` (its mailbox already there) as enrolment does; returns the phone and codes. */
export async function storeSmsFactor(
  ctx: Context,
  email: string,
  phone = '011-45-20123456',
): Promise<{ e164: string; masked: string; recoveryCodes: string[] }> {
  const parsed = parsePhone(phone);
  const recoveryCodes = await accountTransaction(ctx, email, (tx) =>
    storeFactor(tx.trx, ctx.tables, tx.vault(), tx.now, {
      account: email,
      method: 'sms',
      phoneE164: parsed.e164,
      phoneMasked: parsed.masked,
    }),
  );
  return { e164: parsed.e164, masked: parsed.masked, recoveryCodes };
}

/** A mailbox (password PASSWORD) with app 2FA on. */
export async function enrolTotp(
  ctx: Context,
  email: string,
  o: { mailbox?: boolean; active?: boolean } = {},
): Promise<Enrolled & { secret: string }> {
  if (o.mailbox !== false) await addMailbox(ctx, email, PASSWORD, { active: o.active });
  return { email, ...(await storeTotpFactor(ctx, email)) };
}

/** A mailbox (password PASSWORD) with SMS 2FA on. */
export async function enrolSms(ctx: Context, email: string, phone = '011-45-20123456'): Promise<Enrolled> {
  await addMailbox(ctx, email, PASSWORD);
  const { recoveryCodes } = await storeSmsFactor(ctx, email, phone);
  return { email, recoveryCodes };
}

/** The outbox file of the embedded default SMS transport (the test contexts' transport). */
export function outboxFile(ctx: Context): string {
  return join(ctx.config.dataDir, 'sms-outbox.ndjson');
}

/** A sign-in SMS code, sent as `send-code` sends it; returns the code read back from the outbox. */
export async function sendSignInCode(ctx: Context, email: string): Promise<string> {
  await accountTransaction(ctx, email, async (tx) => {
    const factor = await readFactor(tx.trx, ctx.tables, email);
    const e164 = tx.vault().open(ctx.tables.factor, 'phone_ct', email, factor!.phone_ct!);
    return sendSmsChallenge(tx, { e164, masked: factor!.phone_masked! }, 'sms-send');
  });
  return lastOutboxCode(outboxFile(ctx));
}

/**
 * What `recover --temporary-code` leaves behind: the lost factor removed, one temporary access code (hashed) that
 * expires after `ttlMs`. Returns the code.
 */
export async function issueTemporaryCode(ctx: Context, email: string, ttlMs = 24 * 3600_000): Promise<string> {
  const code = newTemporaryCode();
  await accountTransaction(ctx, email, async (tx) => {
    await removeFactor(tx.trx, ctx.tables, email);
    await tx.trx(ctx.tables.challenge).insert({
      account: email,
      purpose: 'temporary',
      code_hash: await tx.vault().hash(tx.trx, 'temporary', email, code),
      created_at: tx.now,
      expires_at: tx.now + ttlMs,
      used_at: null,
    });
  });
  return code;
}

/** A code for `secret` at `now` that is NOT valid in the ±1 step window (a wrong code). */
export function wrongTotp(secret: string, now: number): string {
  const valid = new Set([-1, 0, 1].map((d) => totpCode(secret, now + d * 30_000)));
  for (let n = 0; ; n++) {
    const c = String((Number(totpCode(secret, now)) + 1 + n) % 1_000_000).padStart(6, '0');
    if (!valid.has(c)) return c;
  }
}

export async function accountState(
  ctx: Context,
  email: string,
): Promise<{ failed: number; lockedUntil: number | null; sessionsRevokedAt: number | null }> {
  const db = await ctx.db();
  const row = (await db.knex(ctx.tables.accountState).where({ account: email }).first()) as
    Record<string, unknown> | undefined;
  const n = (v: unknown) => (v === null || v === undefined ? null : Number(v));
  return {
    failed: Number(row?.failed_attempts ?? 0),
    lockedUntil: n(row?.locked_until),
    sessionsRevokedAt: n(row?.sessions_revoked_at),
  };
}

export interface AuditRow {
  action: string;
  outcome: string;
  reason: string | null;
  detail: string | null;
  actor: string;
}

export async function auditRows(ctx: Context, email: string): Promise<AuditRow[]> {
  const db = await ctx.db();
  return (await db
    .knex(ctx.tables.audit)
    .where({ account: email })
    .orderBy('id')
    .select('action', 'outcome', 'reason', 'detail', 'actor')) as AuditRow[];
}

/** Rows the account has in each 2FA table. */
export async function twoFactorRows(
  ctx: Context,
  email: string,
): Promise<{ factor: number; recoveryCodes: number; enrolments: number; challenges: number }> {
  const db = await ctx.db();
  const count = async (table: string) =>
    Number(((await db.knex(table).where({ account: email }).count({ n: '*' }).first()) as { n: number | string }).n);
  const t = ctx.tables;
  return {
    factor: await count(t.factor),
    recoveryCodes: await count(t.recoveryCode),
    enrolments: await count(t.enrolment),
    challenges: await count(t.challenge),
  };
}

/** A pending enrolment row, as `enable`'s two-step form leaves one behind between start and confirm. */
export async function addPendingEnrolment(ctx: Context, email: string): Promise<void> {
  await accountTransaction(ctx, email, async (tx) => {
    await tx.trx(ctx.tables.enrolment).insert({
      account: email,
      id: `e${Date.now().toString(36)}${Math.random().toString(36).slice(2, 8)}`,
      method: 'totp',
      secret_ct: tx.vault().seal(ctx.tables.enrolment, 'secret_ct', email, generateTotpSecret()),
      phone_ct: null,
      phone_masked: null,
      key_id: tx.vault().key.id,
      created_at: tx.now,
      expires_at: tx.now + 600_000,
    });
  });
}
