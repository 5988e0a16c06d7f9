/**
 * The answer to one sign-in code as the library and `serve` give it: the core's result with times as Date
 * objects, and malformed input / unknown accounts as data. One function, so both answer byte for byte alike.
 */
import type { Context } from './context.js';
import { Mail2faError } from './errors.js';
import type { CodeKind } from './core/factor-check.js';
import { verifySignInCode, type RejectReason } from './core/sign-in.js';

/** The answer to one sign-in code. Only `ok: true` means "let the user in". Times are Date objects. */
export type VerifyCodeResult =
  | {
      ok: true;
      outcome: 'accepted';
      email: string;
      kind: CodeKind;
      recoveryCodesLeft: number;
      sessionsRevokedAt: Date | null;
    }
  | {
      ok: false;
      outcome: 'rejected';
      email: string;
      reason: RejectReason;
      message: string;
      failedAttempts: number;
      lockedUntil: Date | null;
      sessionsRevokedAt: Date | null;
    }
  | { ok: false; outcome: 'locked'; email: string; message: string; lockedUntil: Date; sessionsRevokedAt: Date | null }
  /** The code (or address) is not well-formed: nothing was checked or counted. */
  | { ok: false; outcome: 'malformed'; email: string; message: string }
  | { ok: false; outcome: 'unknown_account'; email: string; message: string };

const toDate = (iso: string | null): Date | null => (iso === null ? null : new Date(iso));

export async function verifyCodeAnswer(ctx: Context, email: string, code: string): Promise<VerifyCodeResult> {
  let result;
  try {
    result = await verifySignInCode(ctx, { email, code });
  } catch (err) {
    if (err instanceof Mail2faError && (err.code === 'bad_code' || err.code === 'bad_address'))
      return { ok: false, outcome: 'malformed', email, message: err.message };
    if (err instanceof Mail2faError && err.code === 'unknown_account')
      return { ok: false, outcome: 'unknown_account', email, message: err.message };
    throw err;
  }
  const revoked = toDate(result.sessionsRevokedAt);
  switch (result.outcome) {
    case 'accepted':
      return {
        ok: true,
        outcome: 'accepted',
        email: result.email,
        kind: result.kind,
        recoveryCodesLeft: result.recoveryCodesLeft,
        sessionsRevokedAt: revoked,
      };
    case 'rejected':
      return {
        ok: false,
        outcome: 'rejected',
        email: result.email,
        reason: result.reason,
        message: result.message,
        failedAttempts: result.failedAttempts,
        lockedUntil: toDate(result.lockedUntil),
        sessionsRevokedAt: revoked,
      };
    case 'locked':
      return {
        ok: false,
        outcome: 'locked',
        email: result.email,
        message: `too many wrong attempts: locked until ${result.lockedUntil}`,
        lockedUntil: new Date(result.lockedUntil),
        sessionsRevokedAt: revoked,
      };
  }
}
