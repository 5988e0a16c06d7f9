/**
 * `verify`: the check the webmail makes at every sign-in. Accepts a TOTP, the pending SMS
 * sign-in code, an unused recovery code or a temporary access code from customer service; each once.
 *
 * The answer is data, not an exception: accepted, rejected (wrong code, 2FA not enabled, mailbox inactive) or
 * locked. A rejection still commits its failure count and audit row. Malformed input (65) and unknown accounts
 * (67) are thrown as typed errors before anything is counted.
 *
 * Fail closed: if the "used" mark (or anything else in the transaction) cannot be written, the transaction rolls
 * back and an error is thrown: nothing is ever "accepted" that was not recorded as used.
 */
import type { Context } from '../context.js';
import { readAccountState } from '../db/own-store.js';
import { databaseErrorCode } from '../db/connection.js';
import { canonicalAddress } from './address.js';
import { Mail2faError, unavailable } from '../errors.js';
import { accountTransaction } from './guard.js';
import { isLocked } from './lockout.js';
import { foreignFactors } from './stores.js';
import { isoTime } from './time.js';
import {
  checkSecondFactor,
  parseCodeInput,
  recoveryCodesLeft,
  twoFactorRequired,
  type CodeKind,
} from './factor-check.js';

const ALL_KINDS: ReadonlySet<CodeKind> = new Set<CodeKind>(['totp', 'sms', 'recovery', 'temporary']);

export type RejectReason = 'wrong_code' | 'not_enabled' | 'inactive';

export type VerifyResult =
  | { outcome: 'accepted'; email: string; kind: CodeKind; recoveryCodesLeft: number; sessionsRevokedAt: string | null }
  | {
      outcome: 'rejected';
      email: string;
      reason: RejectReason;
      message: string;
      /** Consecutive wrong codes/passwords so far (5 lock the account). */
      failedAttempts: number;
      /** Set when this wrong code started a lock. */
      lockedUntil: string | null;
      sessionsRevokedAt: string | null;
    }
  | { outcome: 'locked'; email: string; lockedUntil: string; sessionsRevokedAt: string | null };

export const REJECT_MESSAGES: Record<RejectReason, string> = {
  wrong_code: 'wrong, expired or already used code',
  not_enabled: 'two-factor authentication is not enabled for this account: there is no code to check',
  inactive: 'the mailbox is inactive',
};

/** Checks one sign-in code. Throws 65 (malformed address or code) or 67 (unknown account) before counting anything. */
export async function verifySignInCode(ctx: Context, input: { email: string; code: string }): Promise<VerifyResult> {
  const address = canonicalAddress(input.email);
  const code = parseCodeInput(input.code);
  const mailbox = await (await ctx.accounts()).findExact(address);
  // What the foreign stores enforce, read before mail2fa's transaction (a store in mail2fa's own SQLite database
  // could not be read inside it); one that cannot be read fails closed.
  const foreign = await foreignFactors(await ctx.stores(), mailbox.email);
  try {
    return await accountTransaction(
      ctx,
      mailbox.email,
      async (tx): Promise<VerifyResult> => {
        const revoked = preciseTime(tx.state.sessions_revoked_at);
        const rejected = (reason: RejectReason): VerifyResult => ({
          outcome: 'rejected',
          email: tx.account,
          reason,
          message:
            reason === 'wrong_code' && isLocked(tx.state, tx.now)
              ? `${REJECT_MESSAGES.wrong_code}; too many wrong attempts: the account is now locked for 15 minutes`
              : REJECT_MESSAGES[reason],
          failedAttempts: tx.state.failed_attempts,
          lockedUntil: isLocked(tx.state, tx.now) ? isoTime(tx.state.locked_until) : null,
          sessionsRevokedAt: revoked,
        });
        if (await tx.refuseIfLocked('verify'))
          return {
            outcome: 'locked',
            email: tx.account,
            lockedUntil: isoTime(tx.state.locked_until)!,
            sessionsRevokedAt: revoked,
          };
        const factor = tx.locked!.factor;
        if (!(await twoFactorRequired(tx, factor, foreign))) {
          // Nothing to guess, so not counted; audited like every refused attempt.
          await tx.audit({ action: 'verify', outcome: 'refused', reason: 'not enabled' });
          return rejected('not_enabled');
        }
        if (!mailbox.active) {
          await tx.audit({ action: 'verify', outcome: 'refused', reason: 'mailbox inactive' });
          return rejected('inactive');
        }
        const kind = await checkSecondFactor(tx, factor, code, ALL_KINDS, foreign);
        if (!kind) {
          await tx.fail('verify', 'code');
          return rejected('wrong_code');
        }
        await tx.succeed();
        await tx.audit({ action: 'verify', outcome: 'ok', detail: { code: kind } });
        return {
          outcome: 'accepted',
          email: tx.account,
          kind,
          // Read with the lock; a recovery code (mail2fa's or a foreign store's) may have just been used: counted again.
          recoveryCodesLeft: kind === 'recovery' ? await recoveryCodesLeft(tx) : tx.locked!.recoveryCodesLeft,
          sessionsRevokedAt: revoked,
        };
      },
      { withFactor: true },
    );
  } catch (err) {
    throw failClosed(err);
  }
}

/**
 * A database that refuses a write (read-only file, missing privilege, a trigger) is reported as such, saying
 * that nothing was accepted; typed errors and bugs pass through unchanged.
 */
function failClosed(err: unknown): unknown {
  if (err instanceof Mail2faError) return err;
  const code = databaseErrorCode(err);
  if (code) {
    return unavailable(
      'db_write_failed',
      `the database refused to record the code as used (${code}): the code was NOT accepted`,
      "Check that mail2fa's database user may write its tables (`mail2fa doctor`).",
    );
  }
  return err;
}

/** When the account's sessions were last revoked (enable, disable, recover), ISO-8601 with milliseconds, or null (also for unknown accounts). */
export async function sessionsRevokedAt(ctx: Context, email: string): Promise<string | null> {
  const address = canonicalAddress(email);
  const db = await ctx.db();
  return preciseTime((await readAccountState(db.knex, ctx.tables, address))?.sessionsRevokedAt ?? null);
}

/** ISO-8601 with milliseconds: a session that started 300 ms before the revocation must still compare as older. */
export function preciseTime(ms: number | null): string | null {
  return ms === null ? null : new Date(ms).toISOString();
}
