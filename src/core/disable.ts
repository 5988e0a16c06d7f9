/**
 * `disable`: the user's "Disable Two-Factor Authentication" flow. Password plus a current code — from
 * mail2fa's factor or from a foreign store's (PostfixAdmin's authenticator app …) — then in ONE transaction of
 * mail2fa's store: factor, recovery codes, pending enrolments and challenges removed, sessions revoked, one audit
 * row. 2FA is turned off in every store that holds it: mail2fa's first, then each foreign
 * store in order while the account's lock is held (their databases cannot join the transaction); the audit row
 * names each store and its outcome. The sign-out command (if configured) runs after the commit.
 */
import type { Context } from '../context.js';
import type { StoreChange } from '../stores/types.js';
import { readFactor, removeFactor, revokeSessions, runSignOutCommand } from './factors.js';
import { accountTransaction, Refusal } from './guard.js';
import { checkPassword, proveOwner, twoFactorRequired } from './owner.js';
import {
  activatedIn,
  auditOutcomes,
  failedChange,
  foreignFactors,
  missingCapability,
  OWN_STORE,
  partialExitCode,
  readStores,
  requireReadings,
  storeWriteContext,
} from './stores.js';
import { isoTime } from './time.js';
import type { CodeKind, ParsedCode } from './factor-check.js';
import { preciseTime } from './sign-in.js';

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
      /** Every store acted on (mail2fa's first) and its outcome. */
      stores: StoreChange[];
      /** False when a foreign store could not be changed: 2FA is still on there (exitCode 69/75; run again). */
      complete: boolean;
      exitCode: number;
    };

export async function disableTwoFactor(ctx: Context, input: DisableInput): Promise<DisableResult> {
  const { mailbox, passwordOk } = await checkPassword(ctx, input.email, input.password);
  const stores = await ctx.stores();
  // Every store must be readable, and able to turn 2FA off where it is on, before any code is used up.
  const readings = await readStores(stores, mailbox.email);
  requireReadings(readings);
  const targets = activatedIn(readings);
  for (const r of targets)
    if (!r.store.disable || !r.store.capabilities.has('disable'))
      throw missingCapability(r.store, 'disable', `2FA is on there for ${mailbox.email}`);
  // Read before mail2fa's transaction: a store in mail2fa's own SQLite database could not be read inside it.
  const foreign = await foreignFactors(stores, mailbox.email);

  const done = await accountTransaction(ctx, mailbox.email, async (tx) => {
    const factor = await readFactor(tx.trx, ctx.tables, tx.account);
    if (!(await twoFactorRequired(tx, factor, foreign)) && foreign.stores.length === 0)
      return { changed: false as const, email: tx.account };
    const kind = await proveOwner(tx, 'disable', factor, passwordOk, input.code, foreign);
    if (kind instanceof Refusal) return kind;
    const ownRemoved = await removeFactor(tx.trx, ctx.tables, tx.account);
    await revokeSessions(tx.trx, ctx.tables, ctx.config.signOut, tx.account, tx.now);
    const changes: StoreChange[] = [
      {
        store: OWN_STORE,
        kind: 'mail2fa',
        outcome: ownRemoved ? 'changed' : 'nothing',
        detail: ownRemoved
          ? `removed the ${factor?.method === 'sms' ? 'SMS phone' : 'authenticator app'} and its recovery codes`
          : 'no factor',
      },
    ];
    for (const target of targets) {
      try {
        changes.push(
          await target.store.disable!(
            tx.account,
            storeWriteContext(ctx.config, target.store, tx.trx, tx.now, ctx.actor),
          ),
        );
      } catch (err) {
        changes.push(failedChange(target.store, err));
      }
    }
    const complete = changes.every((c) => c.outcome !== 'failed');
    await tx.audit({
      action: 'disable',
      outcome: complete ? 'ok' : 'failed',
      detail: { method: factor?.method ?? null, code: kind, ...(stores.length ? auditOutcomes(changes) : {}) },
    });
    return {
      changed: true as const,
      email: tx.account,
      method: factor?.method ?? null,
      codeKind: kind,
      at: tx.now,
      changes,
      complete,
    };
  });
  if (!done.changed) return done;
  const signOut = await runSignOutCommand(ctx.config.signOut, done.email);
  if (!signOut.ok) ctx.notices.push(`2FA is off, but ${signOut.detail}: sign the user out by hand`);
  return {
    changed: true,
    email: done.email,
    method: done.method,
    codeKind: done.codeKind,
    disabledAt: isoTime(done.at)!,
    sessionsRevokedAt: preciseTime(done.at)!,
    signOut,
    stores: done.changes,
    complete: done.complete,
    exitCode: done.complete ? 0 : partialExitCode(done.changes),
  };
}
