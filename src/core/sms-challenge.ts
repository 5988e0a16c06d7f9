/**
 * Sending an SMS code: 6 digits from the CSPRNG, stored as a keyed hash, valid 10 minutes,
 * single-use, only the newest valid, at most 3 sends per account per 15 minutes (counted in the database, so
 * the limit holds across processes). Runs inside the account's transaction: if the gateway fails, the code and
 * the send are removed again (nothing stored) and the failure is audited.
 */
import {
  activateChallenge,
  deleteChallenge,
  deleteOlderUnusedChallenges,
  deleteSmsSend,
  insertChallenge,
  insertSmsSend,
  newestUnusedChallengeId,
  recentSmsSends,
} from '../db/own-store.js';
import { randomDigits } from '../crypto/one-time-codes.js';
import { smsText, type SmsDelivery } from '../sms/transports.js';
import { Mail2faError, tempFail } from '../errors.js';
import { Refusal, type AccountTx } from './guard.js';
import { isoTime } from './time.js';

export const SMS_CODE_DIGITS = 6;
export const SMS_CODE_TTL_MS = 10 * 60 * 1000;
export const SMS_SEND_LIMIT = 3;
export const SMS_SEND_WINDOW_MS = 15 * 60 * 1000;

export interface SmsSent {
  delivery: SmsDelivery;
  expiresAt: string;
  maskedPhone: string;
}

/**
 * Where a code is valid: `sms` = sign-in/disable with the enrolled phone (what `verify` reads); `enrol-sms` =
 * confirming a phone being enrolled (never accepted at sign-in, and a sign-in code never confirms an enrolment).
 */
export type SmsChallengePurpose = 'sms' | 'enrol-sms';

/** At most SMS_SEND_LIMIT sends per account per 15 minutes; a refusal is audited. */
async function rateLimited(tx: AccountTx, phone: { masked: string }, action: string): Promise<Refusal | null> {
  const recent = await recentSmsSends(tx.trx, tx.ctx.tables, tx.account, tx.now - SMS_SEND_WINDOW_MS);
  if (recent.length < SMS_SEND_LIMIT) return null;
  const nextAt = recent[0]! + SMS_SEND_WINDOW_MS;
  await tx.audit({ action, outcome: 'refused', reason: 'rate limited', detail: { phone: phone.masked } });
  return new Refusal(
    tempFail(
      'rate_limited',
      `at most ${SMS_SEND_LIMIT} SMS codes per 15 minutes: try again after ${isoTime(nextAt)}`,
      'Use the newest code already sent; it is valid for 10 minutes.',
    ),
  );
}

/** Sends a fresh code to `phone` for the account of `tx`; `action` names the audit row (e.g. "sms-send"). */
export async function sendSmsChallenge(
  tx: AccountTx,
  phone: { e164: string; masked: string },
  action: string,
  purpose: SmsChallengePurpose = 'sms',
): Promise<SmsSent | Refusal> {
  const tables = tx.ctx.tables;
  const limited = await rateLimited(tx, phone, action);
  if (limited) return limited;
  const code = randomDigits(SMS_CODE_DIGITS);
  const expiresAt = tx.now + SMS_CODE_TTL_MS;
  const challengeId = await insertChallenge(tx.trx, tables, tx.db.dialect, {
    account: tx.account,
    purpose,
    code_hash: await tx.vault().hash(tx.trx, 'sms', tx.account, code),
    created_at: tx.now,
    expires_at: expiresAt,
  });
  const sendId = await insertSmsSend(tx.trx, tables, tx.db.dialect, tx.account, tx.now);
  let delivery: SmsDelivery;
  try {
    delivery = await (await tx.ctx.sms()).send({ to: phone.e164, text: smsText(tx.ctx.config.issuer, code) });
  } catch (err) {
    await deleteChallenge(tx.trx, tables, challengeId);
    await deleteSmsSend(tx.trx, tables, sendId);
    const error =
      err instanceof Mail2faError
        ? err
        : new Mail2faError('sms_unavailable', `SMS gateway failed: ${(err as Error).message}`, 69);
    await tx.audit({ action, outcome: 'failed', reason: error.code, detail: { phone: phone.masked } });
    return new Refusal(error);
  }
  // Only the newest code is valid: older unused ones go.
  await deleteOlderUnusedChallenges(tx.trx, tables, tx.account, purpose, challengeId);
  await tx.audit({ action, outcome: 'ok', detail: { phone: phone.masked, transport: delivery.transport } });
  return { delivery, expiresAt: isoTime(expiresAt)!, maskedPhone: phone.masked };
}

/**
 * The same, split so that no transaction stays open across the gateway call (on a busy or clustered database a
 * transaction held for a network round trip blocks every other change to the account, and an embedded database
 * entirely): `recordSmsChallenge` stores the code as PENDING (never accepted by anything) and counts the send;
 * the caller sends outside any transaction; then `activateSmsChallenge` makes it the newest valid code, or
 * `abandonSmsChallenge` removes it and the send again (nothing stored, the failure audited).
 */
export interface PendingSms {
  challengeId: number;
  sendId: number;
  code: string;
  expiresAt: number;
  phone: { e164: string; masked: string };
  purpose: SmsChallengePurpose;
  action: string;
}

const PENDING_PURPOSE: Record<SmsChallengePurpose, string> = { sms: 'sms-pending', 'enrol-sms': 'enrol-pending' };

export async function recordSmsChallenge(
  tx: AccountTx,
  phone: { e164: string; masked: string },
  action: string,
  purpose: SmsChallengePurpose = 'sms',
): Promise<PendingSms | Refusal> {
  const tables = tx.ctx.tables;
  const limited = await rateLimited(tx, phone, action);
  if (limited) return limited;
  const code = randomDigits(SMS_CODE_DIGITS);
  const expiresAt = tx.now + SMS_CODE_TTL_MS;
  const codeHash = await tx.vault().hash(tx.trx, 'sms', tx.account, code);
  const challengeId = await insertChallenge(tx.trx, tables, tx.db.dialect, {
    account: tx.account,
    purpose: PENDING_PURPOSE[purpose],
    code_hash: codeHash,
    created_at: tx.now,
    expires_at: expiresAt,
  });
  const sendId = await insertSmsSend(tx.trx, tables, tx.db.dialect, tx.account, tx.now);
  return { challengeId: Number(challengeId), sendId: Number(sendId), code, expiresAt, phone, purpose, action };
}

export async function activateSmsChallenge(
  tx: AccountTx,
  pending: PendingSms,
  delivery: SmsDelivery,
): Promise<SmsSent | Refusal> {
  const tables = tx.ctx.tables;
  if (
    !(await activateChallenge(
      tx.trx,
      tables,
      pending.challengeId,
      tx.account,
      PENDING_PURPOSE[pending.purpose],
      pending.purpose,
    ))
  ) {
    // Removed meanwhile (a recover or disable ran while the text was on its way): the code is not valid.
    await tx.audit({
      action: pending.action,
      outcome: 'failed',
      reason: 'account changed during the send',
      detail: { phone: pending.phone.masked },
    });
    return new Refusal(
      tempFail(
        'account_changed',
        'the account changed while the code was being sent; that code is not valid',
        'Request a new code.',
      ),
    );
  }
  // Only the newest code is valid: older unused ones go (a code recorded later but delivered sooner stays
  // the newest, so this one may be the one that goes).
  await deleteOlderUnusedChallenges(
    tx.trx,
    tables,
    tx.account,
    pending.purpose,
    await newestUnusedChallengeId(tx.trx, tables, tx.account, pending.purpose),
  );
  await tx.audit({
    action: pending.action,
    outcome: 'ok',
    detail: { phone: pending.phone.masked, transport: delivery.transport },
  });
  return { delivery, expiresAt: isoTime(pending.expiresAt)!, maskedPhone: pending.phone.masked };
}

export async function abandonSmsChallenge(tx: AccountTx, pending: PendingSms, err: unknown): Promise<Refusal> {
  const tables = tx.ctx.tables;
  await deleteChallenge(tx.trx, tables, pending.challengeId);
  await deleteSmsSend(tx.trx, tables, pending.sendId);
  const error =
    err instanceof Mail2faError
      ? err
      : new Mail2faError('sms_unavailable', `SMS gateway failed: ${(err as Error).message}`, 69);
  await tx.audit({
    action: pending.action,
    outcome: 'failed',
    reason: error.code,
    detail: { phone: pending.phone.masked },
  });
  return new Refusal(error);
}

/** Sends a recorded code; returns the delivery or the gateway's error (never throws). */
export async function deliverSmsChallenge(
  ctx: AccountTx['ctx'],
  pending: PendingSms,
): Promise<{ delivery: SmsDelivery } | { error: unknown }> {
  try {
    return {
      delivery: await (
        await ctx.sms()
      ).send({ to: pending.phone.e164, text: smsText(ctx.config.issuer, pending.code) }),
    };
  } catch (error) {
    return { error };
  }
}
