/**
 * `disable`: the help article's "Disable Two-Factor Authentication" flow. Password plus a current code, then in
 * ONE transaction: factor, recovery codes, pending enrolments and challenges removed, sessions revoked, one audit
 * row (PRODUCT.md §3.9–3.11). The sign-out command (if configured) runs after the commit.
 */
import type { Context } from '../context.js';
import { readFactor, removeFactor, revokeSessions, runSignOutCommand } from './factors.js';
import { accountTransaction, Refusal } from './guard.js';
import { checkPassword, proveOwner, twoFactorRequired } from './owner.js';
import { isoTime } from './time.js';
import type { CodeKind, ParsedCode } from './verification.js';
import { preciseTime } from './verify.js';

export interface DisableInput {
  email: string;
  password: string;
  /** Already parsed with parseCodeInput (strict: malformed input is 65 before anything is checked). */
  code: ParsedCode;
}

export type DisableResult =
  | { changed: false; email: string }
  | {
      changed: true;
      email: string;
      /** The factor that was removed (null: only a temporary access code from customer service was pending). */
      method: 'totp' | 'sms' | null;
      /** Which kind of code proved ownership. */
      codeKind: CodeKind;
      disabledAt: string;
      sessionsRevokedAt: string;
      signOut: { ok: boolean; detail: string };
    };

export async function disableTwoFactor(ctx: Context, input: DisableInput): Promise<DisableResult> {
  const { mailbox, passwordOk } = await checkPassword(ctx, input.email, input.password);
  const done = await accountTransaction(ctx, mailbox.email, async (tx) => {
    const factor = await readFactor(tx.trx, ctx.tables, tx.account);
    if (!(await twoFactorRequired(tx, factor))) return { changed: false as const, email: tx.account };
    const kind = await proveOwner(tx, 'disable', factor, passwordOk, input.code);
    if (kind instanceof Refusal) return kind;
    await removeFactor(tx.trx, ctx.tables, tx.account);
    await revokeSessions(tx.trx, ctx.tables, ctx.config.signOut, tx.account, tx.now);
    await tx.audit({ action: 'disable', outcome: 'ok', detail: { method: factor?.method ?? null, code: kind } });
    return { changed: true as const, email: tx.account, method: factor?.method ?? null, codeKind: kind, at: tx.now };
  });
  if (!done.changed) return done;
  const signOut = await runSignOutCommand(ctx.config.signOut, done.email);
  if (!signOut.ok) ctx.notices.push(`2FA is off, but ${signOut.detail}: sign the user out by hand`);
  return { changed: true, email: done.email, method: done.method, codeKind: done.codeKind, disabledAt: isoTime(done.at)!, sessionsRevokedAt: preciseTime(done.at)!, signOut };
}
