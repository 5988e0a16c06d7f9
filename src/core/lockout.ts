/**
 * The shared attempt counter: 5 consecutive wrong codes or passwords lock the account for
 * 15 minutes, across processes; every kind of code counts on the same persisted counter; one audit row marks
 * the start of a lock. Callers hold the account's state row lock (lockAccountState) in the same transaction.
 */
import type { Knex } from 'knex';
import type { Tables } from '../db/schema.js';
import type { AccountStateRow } from '../db/tx.js';
import { setAttempts } from '../db/own-store.js';
import { writeAudit, type AuditWriter } from './audit-write.js';
import { tempFail } from '../errors.js';

export const MAX_FAILED_ATTEMPTS = 5;
export const LOCKOUT_MS = 15 * 60 * 1000;

export function isLocked(state: Pick<AccountStateRow, 'locked_until'>, now: number): boolean {
  return state.locked_until !== null && state.locked_until > now;
}

export function lockedError(lockedUntil: number) {
  return tempFail(
    'locked',
    `too many wrong attempts: the account is locked until ${new Date(lockedUntil).toISOString().replace(/\.\d{3}Z$/, 'Z')}`,
    'Wait until then, or ask customer service (`mail2fa recover`) to clear the lock.',
  );
}

/** Counts one failure; returns the new state. Writes the lock's audit row when this failure starts a lock. */
export async function recordFailure(
  trx: Knex.Transaction,
  tables: Tables,
  writer: AuditWriter,
  state: AccountStateRow,
): Promise<AccountStateRow> {
  const now = writer.now();
  // An expired lock starts a fresh count.
  const previous = state.locked_until !== null && state.locked_until <= now ? 0 : state.failed_attempts;
  const failed = previous + 1;
  const lockedUntil =
    failed >= MAX_FAILED_ATTEMPTS
      ? now + LOCKOUT_MS
      : state.locked_until !== null && state.locked_until <= now
        ? null
        : state.locked_until;
  await setAttempts(trx, tables, state.account, failed, lockedUntil);
  if (failed === MAX_FAILED_ATTEMPTS) {
    await writeAudit(trx, tables, writer, {
      action: 'lockout',
      account: state.account,
      outcome: 'ok',
      detail: { failedAttempts: failed, lockedUntil: new Date(lockedUntil!).toISOString() },
    });
  }
  return { ...state, failed_attempts: failed, locked_until: lockedUntil };
}

/** A correct code or password ends the run of failures. */
export async function recordSuccess(trx: Knex.Transaction, tables: Tables, state: AccountStateRow): Promise<void> {
  if (state.failed_attempts !== 0 || state.locked_until !== null) {
    await setAttempts(trx, tables, state.account, 0, null);
  }
}

/** Customer service clears the lock (recover). */
export async function clearLockout(trx: Knex.Transaction, tables: Tables, account: string): Promise<void> {
  await setAttempts(trx, tables, account, 0, null);
}
