/**
 * `recover`: customer service resets 2FA for someone who lost their phone.
 * Two steps, so that the agent decides on what they saw:
 *
 *  1. look: the account's 2FA summary (no secrets) and a snapshot of what a recovery would change;
 *  2. after the agent confirmed (a callback: the CLI prompts, a library caller decides), ONE account transaction
 *     re-reads the snapshot — if anything changed since the look (another agent, an enrolment, a sign-in) the
 *     recovery is refused with 75 "look again" — then removes the factor, recovery codes, enrolments and
 *     challenges, clears the lockout, revokes sessions, optionally issues a temporary access code, and writes
 *     the audit row (actor, ticket, reason; never a code). The sign-out command runs after the commit.
 *
 * "2FA required, no factor" (after `--temporary-code`): the account's temporary challenge row is the marker.
 * While one exists — pending, used or expired — 2FA stays required (status shows it enabled): an unused code
 * that expires does NOT turn 2FA off (fail closed). Enrolling a new factor (storeFactor) removes the marker, as
 * does a recovery without `--temporary-code` or `disable`.
 */
import type { Context } from '../context.js';
import { newTemporaryCode, TEMPORARY_CODE_BITS } from '../crypto/one-time-codes.js';
import type { Mailbox } from '../db/accounts.js';
import {
  countChallenges,
  countUnusedRecoveryCodes,
  hasEnrolment,
  insertChallenge,
  newestChallenge,
  readAccountState,
  type Q,
} from '../db/own-store.js';
import { lookupStatusRows } from '../db/status-query.js';
import { writeAudit } from './audit-write.js';
import { canonicalAddress, preview } from './address.js';
import { dataError, tempFail, usageError } from '../errors.js';
import { readFactor, removeFactor, revokeSessions, runSignOutCommand } from './factors.js';
import { accountTransaction, Refusal } from './guard.js';
import { clearLockout, isLocked } from './lockout.js';
import { temporaryCodeState, toStatusRow, type TemporaryCodeState } from './status.js';
import {
  activatedIn,
  auditOutcomes,
  failedChange,
  missingCapability,
  OWN_STORE,
  partialExitCode,
  readStores,
  storeWriteContext,
  usesOneLoginBypass,
  type StoreReading,
} from './stores.js';
import { isoTime } from './time.js';
import type { StoreAccountStatus, StoreChange } from '../stores/types.js';

export const TEMPORARY_CODE_DEFAULT_TTL_MS = 24 * 3_600_000;
export const TEMPORARY_CODE_MIN_TTL_MS = 5 * 60_000;
export const TEMPORARY_CODE_MAX_TTL_MS = 7 * 86_400_000;
export const MAX_TICKET_LENGTH = 64;
export const MAX_REASON_LENGTH = 500;

/** What the agent sees before confirming. No secrets: the phone is masked, codes are counted, never shown. */
export interface RecoverySummary {
  email: string;
  /** The mailbox's own active flag. */
  active: boolean;
  /** 2FA is on, or required (a temporary access code was issued and no new factor enrolled yet). */
  enabled: boolean;
  method: 'totp' | 'sms' | null;
  phone: string | null;
  enrolledAt: string | null;
  lastUsedAt: string | null;
  recoveryCodesLeft: number | null;
  lockedUntil: string | null;
  failedAttempts: number;
  temporaryCode: TemporaryCodeState | null;
  /** A PostfixAdmin store holds a TOTP secret for the account (kept for scripts; see `stores`). */
  postfixadminTotp: boolean;
  /**
   * What each configured foreign store holds for the account (no secrets), in order. A store that could not be
   * read has `error`: recover still tries to reset it (a reset of nothing is a no-op) and reports the outcome.
   */
  stores: RecoveryStoreView[];
  /** The mailbox's alternate contact address (mapping column), where the reply can be sent. */
  alternateEmail: string | null;
}

export interface RecoveryStoreView {
  store: string;
  kind: string;
  status: StoreAccountStatus | null;
  error?: { code: string; message: string; exitCode: number };
  /** The store has a one-login bypass of its own, used instead of a reset with `--temporary-code` (mailcow). */
  oneLoginBypass?: boolean;
}

/** What the agent looked at; the recovery transaction refuses (75) if the account no longer matches it. */
export interface RecoverySnapshot {
  factor: { method: string; enrolledAt: number; version: number; lastUsedAt: number | null; keyId: string } | null;
  temporary: { id: number; expiresAt: number; usedAt: number | null } | null;
  lockedUntil: number | null;
  sessionsRevokedAt: number | null;
}

export interface RecoverInput {
  email: string;
  ticket: string | undefined;
  reason?: string | null;
  /** Issue a temporary access code valid this long (2FA stays required); null/undefined: turn 2FA off. */
  temporaryCodeTtlMs?: number | null;
}

export interface RecoveryDone {
  outcome: 'recovered';
  email: string;
  ticket: string;
  reason: string | null;
  actor: string;
  /** The account as the agent saw it before the recovery. */
  before: RecoverySummary;
  removed: {
    method: 'totp' | 'sms' | null;
    recoveryCodes: number;
    challenges: number;
    enrolment: boolean;
    postfixadminTotp: boolean;
  };
  /**
   * Every store acted on, in order — mail2fa's own store first — and its outcome. Stores in other databases cannot
   * share mail2fa's transaction: when one failed, `complete` is false and the same command run again completes it.
   */
  stores: StoreChange[];
  complete: boolean;
  /** 0 when complete; else 69 (a store unavailable) or 75 (changed meanwhile, busy), for the command's exit. */
  exitCode: number;
  lockCleared: boolean;
  sessionsRevokedAt: string;
  /** 2FA still required afterwards (a temporary access code was issued). */
  twoFactorRequired: boolean;
  /** Shown once; stored only as a keyed hash. */
  temporaryCode: { code: string; expiresAt: string; bits: number } | null;
  signOut: { ok: boolean; detail: string };
}

export interface NothingToRecover {
  outcome: 'nothing-to-recover';
  email: string;
  ticket: string;
  reason: string | null;
  actor: string;
  before: RecoverySummary;
}

export type RecoveryResult = RecoveryDone | NothingToRecover;

/**
 * Called with the summary when there is something to recover; resolves to go ahead, or throws to stop
 * (e.g. cancelled at a prompt). Nothing has been changed when it runs.
 */
export type ConfirmRecovery = (summary: RecoverySummary, plan: { temporaryCodeTtlMs: number | null }) => Promise<void>;

/** 64 when no ticket ID was given (checked before anything else). */
export function requireTicket(ticket: string | undefined): asserts ticket is string {
  if (ticket === undefined || ticket === '') {
    throw usageError(
      'a ticket ID is required: recover --ticket ID',
      'Every recovery is tied to the customer-service ticket that asked for it (it goes into the audit log).',
    );
  }
}

/** The ticket is mandatory (64 when missing) and must match the configured pattern as a whole (65 otherwise). */
export function checkTicket(ticket: string | undefined, pattern: string): string {
  requireTicket(ticket);
  const bad = (why: string) =>
    dataError(
      'bad_ticket',
      `invalid ticket ID "${preview(ticket, 40)}": ${why}`,
      `Ticket IDs must match the configured ticketPattern ${pattern}`,
    );
  if (ticket.length > MAX_TICKET_LENGTH) throw bad(`longer than ${MAX_TICKET_LENGTH} characters`);
  if (!new RegExp(`^(?:${pattern})$`, 'u').test(ticket)) throw bad('does not match the ticket pattern');

  if (/[\u0000-\u001f\u007f-\u009f]/u.test(ticket)) throw bad('contains control characters');
  return ticket;
}

/** The optional reason: free text for the audit log (control characters are escaped when stored). */
export function checkReason(reason: string | null | undefined): string | null {
  if (reason === undefined || reason === null || reason === '') return null;
  if (reason.length > MAX_REASON_LENGTH)
    throw dataError(
      'bad_reason',
      `the reason is longer than ${MAX_REASON_LENGTH} characters`,
      'Keep it short; the ticket holds the details.',
    );
  return reason;
}

/** Checks a --ttl for the temporary access code: between 5 minutes and 7 days. */
export function checkTemporaryCodeTtl(ms: number, flag = '--ttl'): number {
  if (ms < TEMPORARY_CODE_MIN_TTL_MS || ms > TEMPORARY_CODE_MAX_TTL_MS) {
    throw usageError(
      `${flag}: a temporary access code must be valid between 5 minutes and 7 days`,
      'For example --ttl 24h (the default) or --ttl 3d.',
    );
  }
  return ms;
}

/** The account's newest temporary access code row (the "2FA required" marker), if any. */
async function newestTemporary(
  db: Q,
  ctx: Context,
  account: string,
): Promise<{ id: number; expiresAt: number; usedAt: number | null } | null> {
  const row = await newestChallenge(db, ctx.tables, account, 'temporary');
  return row ? { id: row.id, expiresAt: row.expires_at, usedAt: row.used_at } : null;
}

async function readSnapshot(db: Q, ctx: Context, account: string): Promise<RecoverySnapshot> {
  const factor = await readFactor(db, ctx.tables, account);
  const temporary = await newestTemporary(db, ctx, account);
  const state = await readAccountState(db, ctx.tables, account);
  return {
    factor: factor
      ? {
          method: factor.method,
          enrolledAt: factor.enrolled_at,
          version: factor.version,
          lastUsedAt: factor.last_used_at,
          keyId: factor.key_id,
        }
      : null,
    temporary,
    lockedUntil: state?.lockedUntil ?? null,
    sessionsRevokedAt: state?.sessionsRevokedAt ?? null,
  };
}

function sameSnapshot(current: RecoverySnapshot, seen: RecoverySnapshot): boolean {
  return JSON.stringify(current) === JSON.stringify(seen);
}

/** Step 1: the summary the agent confirms, and the snapshot the transaction compares against. Reads only. */
export async function lookAtAccount(
  ctx: Context,
  mailbox: Mailbox,
): Promise<{
  summary: RecoverySummary;
  snapshot: RecoverySnapshot;
  somethingToRecover: boolean;
  readings: StoreReading[];
}> {
  const db = await ctx.db();
  const now = ctx.now();
  const snapshot = await readSnapshot(db.knex, ctx, mailbox.email);
  const readings = await readStores(await ctx.stores(), mailbox.email);
  const foreignOn = activatedIn(readings);
  const rows = (await lookupStatusRows(db, ctx.tables, ctx.mapping, [mailbox.email])).filter(
    (r) => r.email === mailbox.email,
  );
  const status = rows[0] ? toStatusRow(rows[0], now) : undefined;
  const failed = (await readAccountState(db.knex, ctx.tables, mailbox.email))?.failedAttempts ?? 0;
  const temporary = snapshot.temporary;
  const locked = isLocked({ locked_until: snapshot.lockedUntil }, now);
  const ours = snapshot.factor ? (snapshot.factor.method as 'totp' | 'sms') : null;
  const summary: RecoverySummary = {
    email: mailbox.email,
    active: mailbox.active,
    enabled: ours !== null || temporary !== null || foreignOn.length > 0,
    method: ours,
    phone: ours === 'sms' ? (status?.phone ?? null) : null,
    enrolledAt: isoTime(snapshot.factor?.enrolledAt),
    lastUsedAt: isoTime(snapshot.factor?.lastUsedAt),
    recoveryCodesLeft: ours ? (status?.recoveryCodesLeft ?? 0) : null,
    lockedUntil: locked ? isoTime(snapshot.lockedUntil) : null,
    failedAttempts: failed,
    temporaryCode: temporary ? temporaryCodeState(temporary, now) : null,
    postfixadminTotp: foreignOn.some((r) => r.store.kind === 'postfixadmin'),
    stores: readings.map((reading) => ({
      store: reading.store.name,
      kind: reading.store.kind,
      status: reading.status,
      ...(reading.error
        ? { error: { code: reading.error.code, message: reading.error.message, exitCode: reading.error.exitCode } }
        : {}),
      ...(usesOneLoginBypass(reading.store, true) ? { oneLoginBypass: true } : {}),
    })),
    alternateEmail: mailbox.alternateEmail || null,
  };
  const unreadable = readings.some((r) => r.error);
  return {
    summary,
    snapshot,
    readings,
    somethingToRecover: ours !== null || temporary !== null || locked || foreignOn.length > 0 || unreadable,
  };
}

/**
 * `mail2fa recover`: ticket checked (64/65) before anything is read; unknown account 67; nothing to recover →
 * an audit row for the lookup and outcome 'nothing-to-recover'; otherwise `confirm`, then one transaction.
 */
export async function recoverAccount(
  ctx: Context,
  input: RecoverInput,
  confirm: ConfirmRecovery,
): Promise<RecoveryResult> {
  const ticket = checkTicket(input.ticket, ctx.config.ticketPattern);
  const reason = checkReason(input.reason);
  const ttl = input.temporaryCodeTtlMs == null ? null : checkTemporaryCodeTtl(input.temporaryCodeTtlMs);
  const address = canonicalAddress(input.email);
  const mailbox = await (await ctx.accounts()).findExact(address);
  const look = await lookAtAccount(ctx, mailbox);
  const base = { email: mailbox.email, ticket, reason, actor: ctx.actor, before: look.summary };

  if (!look.somethingToRecover) {
    const db = await ctx.db();
    await writeAudit(db.knex, ctx.tables, ctx, {
      action: 'recover-lookup',
      account: mailbox.email,
      outcome: 'ok',
      ticket,
      reason,
      detail: {
        result: 'nothing to recover',
        ...Object.fromEntries(look.readings.map((r) => [`store:${r.store.name}`, r.status?.activated ? 'on' : 'off'])),
      },
    });
    return { outcome: 'nothing-to-recover', ...base };
  }

  // Every store that holds 2FA (or could not be read) is reset; one that cannot reset is refused before anything.
  const targets = look.readings.filter((r) => r.status?.activated || r.error);
  const bypass = (r: StoreReading) => usesOneLoginBypass(r.store, ttl !== null);
  for (const r of targets)
    if (!bypass(r) && (!r.store.reset || !r.store.capabilities.has('recover')))
      throw missingCapability(r.store, 'recover', `2FA is on there for ${mailbox.email}`);

  await confirm(look.summary, { temporaryCodeTtlMs: ttl });

  const done = await accountTransaction(ctx, mailbox.email, async (tx) => {
    const tables = ctx.tables;
    const now = await readSnapshot(tx.trx, ctx, tx.account);
    if (!sameSnapshot(now, look.snapshot)) {
      await tx.audit({
        action: 'recover',
        outcome: 'refused',
        ticket,
        reason,
        detail: { refused: 'changed since the summary was shown' },
      });
      return new Refusal(
        tempFail(
          'changed',
          `the 2FA state of ${tx.account} changed since it was shown (by someone else, or by the user): nothing was changed`,
          'Look again: run the same recover command once more and check the summary.',
        ),
      );
    }
    const codesLeft = await countUnusedRecoveryCodes(tx.trx, tables, tx.account);
    const challenges = await countChallenges(tx.trx, tables, tx.account);
    const enrolment = await hasEnrolment(tx.trx, tables, tx.account);
    const lockCleared = isLocked(tx.state, tx.now) || tx.state.failed_attempts > 0;

    const ownRemoved = await removeFactor(tx.trx, tables, tx.account);
    await clearLockout(tx.trx, tables, tx.account);
    await revokeSessions(tx.trx, tables, ctx.config.signOut, tx.account, tx.now);
    let temporaryCode: RecoveryDone['temporaryCode'] = null;
    if (ttl !== null) {
      // removeFactor deleted every older challenge, so this code replaces any earlier temporary code.
      const code = newTemporaryCode();
      const expiresAt = tx.now + ttl;
      await insertChallenge(tx.trx, tables, tx.db.dialect, {
        account: tx.account,
        purpose: 'temporary',
        code_hash: await tx.vault().hash(tx.trx, 'temporary', tx.account, code),
        created_at: tx.now,
        expires_at: expiresAt,
      });
      temporaryCode = { code, expiresAt: isoTime(expiresAt)!, bits: TEMPORARY_CODE_BITS };
    }
    const own: StoreChange = {
      store: OWN_STORE,
      kind: 'mail2fa',
      outcome:
        ownRemoved || codesLeft > 0 || challenges > 0 || enrolment || lockCleared || temporaryCode
          ? 'changed'
          : 'nothing',
      detail: ownRemoved
        ? `removed the ${look.snapshot.factor?.method === 'sms' ? 'SMS phone' : 'authenticator app'} and its recovery codes`
        : 'no factor',
    };
    // Then each foreign store, in order, while mail2fa's account lock is held (so a second agent waits): their
    // databases cannot join this transaction. Each reset is idempotent; a failure is recorded and the others run.
    const changes: StoreChange[] = [own];
    for (const target of targets) {
      try {
        const wctx = storeWriteContext(ctx.config, target.store, tx.trx, tx.now, ctx.actor);
        changes.push(
          await (bypass(target)
            ? target.store.temporaryBypass!(tx.account, wctx)
            : target.store.reset!(tx.account, wctx)),
        );
      } catch (err) {
        changes.push(failedChange(target.store, err));
      }
    }
    const postfixadminTotp = changes.some((c) => c.kind === 'postfixadmin' && c.outcome === 'changed');
    const removed = {
      method: (look.snapshot.factor?.method ?? null) as 'totp' | 'sms' | null,
      recoveryCodes: codesLeft,
      challenges,
      enrolment,
      postfixadminTotp,
    };
    const complete = changes.every((c) => c.outcome !== 'failed');
    await tx.audit({
      action: 'recover',
      outcome: complete ? 'ok' : 'failed',
      ticket,
      reason,
      detail: {
        method: removed.method,
        phone: look.summary.phone,
        recoveryCodesRemoved: removed.recoveryCodes,
        postfixadminTotpCleared: postfixadminTotp,
        lockCleared,
        temporaryCode: temporaryCode !== null,
        temporaryCodeExpiresAt: temporaryCode?.expiresAt ?? null,
        ...auditOutcomes(changes),
        ...(complete ? {} : { incomplete: 'run the same recover command again to complete it' }),
      },
    });
    return { removed, lockCleared, at: tx.now, temporaryCode, changes, complete };
  });

  const signOut = await runSignOutCommand(ctx.config.signOut, mailbox.email);
  if (!signOut.ok) ctx.notices.push(`2FA was reset, but ${signOut.detail}: sign the user out by hand`);
  return {
    outcome: 'recovered',
    ...base,
    removed: done.removed,
    stores: done.changes,
    complete: done.complete,
    exitCode: done.complete ? 0 : partialExitCode(done.changes),
    lockCleared: done.lockCleared,
    sessionsRevokedAt: new Date(done.at).toISOString(),
    twoFactorRequired: done.temporaryCode !== null,
    temporaryCode: done.temporaryCode,
    signOut,
  };
}
