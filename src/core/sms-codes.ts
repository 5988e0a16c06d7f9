/**
 * Sending an SMS code (PRODUCT.md §3.5): 6 digits from the CSPRNG, stored as a keyed hash, valid 10 minutes,
 * single-use, only the newest valid, at most 3 sends per account per 15 minutes (counted in the database, so
 * the limit holds across processes). Runs inside the account's transaction: if the gateway fails, the code and
 * the send are removed again (nothing stored) and the failure is audited.
 */
import { deleteChallenge, deleteOlderUnusedChallenges, deleteSmsSend, insertChallenge, insertSmsSend, recentSmsSends } from '../db/ownStore.js';
import { randomDigits } from '../crypto/codes.js';
import { smsText, type SmsDelivery } from '../sms/transports.js';
import { Mail2faError, tempFail } from './errors.js';
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

/** Sends a fresh code to `phone` for the account of `tx`; `action` names the audit row (e.g. "sms-send"). */
export async function sendSmsChallenge(tx: AccountTx, phone: { e164: string; masked: string }, action: string, purpose: SmsChallengePurpose = 'sms'): Promise<SmsSent | Refusal> {
  const t = tx.ctx.tables;
  const since = tx.now - SMS_SEND_WINDOW_MS;
  const recent = await recentSmsSends(tx.trx, t, tx.account, since);
  if (recent.length >= SMS_SEND_LIMIT) {
    const nextAt = recent[0]! + SMS_SEND_WINDOW_MS;
    await tx.audit({ action, outcome: 'refused', reason: 'rate limited', detail: { phone: phone.masked } });
    return new Refusal(tempFail('rate_limited', `at most ${SMS_SEND_LIMIT} SMS codes per 15 minutes: try again after ${isoTime(nextAt)}`, 'Use the newest code already sent; it is valid for 10 minutes.'));
  }
  const code = randomDigits(SMS_CODE_DIGITS);
  const expiresAt = tx.now + SMS_CODE_TTL_MS;
  const challengeId = await insertChallenge(tx.trx, t, tx.db.dialect, { account: tx.account, purpose, code_hash: await tx.vault().hash(tx.trx, 'sms', tx.account, code), created_at: tx.now, expires_at: expiresAt });
  const sendId = await insertSmsSend(tx.trx, t, tx.db.dialect, tx.account, tx.now);
  let delivery: SmsDelivery;
  try {
    delivery = await (await tx.ctx.sms()).send({ to: phone.e164, text: smsText(tx.ctx.config.issuer, code) });
  } catch (err) {
    await deleteChallenge(tx.trx, t, challengeId);
    await deleteSmsSend(tx.trx, t, sendId);
    const error = err instanceof Mail2faError ? err : new Mail2faError('sms_unavailable', `SMS gateway failed: ${(err as Error).message}`, 69);
    await tx.audit({ action, outcome: 'failed', reason: error.code, detail: { phone: phone.masked } });
    return new Refusal(error);
  }
  // Only the newest code is valid: older unused ones go.
  await deleteOlderUnusedChallenges(tx.trx, t, tx.account, purpose, challengeId);
  await tx.audit({ action, outcome: 'ok', detail: { phone: phone.masked, transport: delivery.transport } });
  return { delivery, expiresAt: isoTime(expiresAt)!, maskedPhone: phone.masked };
}
