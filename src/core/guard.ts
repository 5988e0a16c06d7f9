/**
 * The frame of every change to one account: one transaction, the account's state row locked first (so two
 * processes acting on one account serialise), the lockout enforced, and refusals recorded.
 *
 * A refusal (wrong password or code, locked) must still COMMIT its failure count and audit row, and only then
 * fail the command. So `work` returns a Refusal instead of throwing; accountTransaction commits and throws it.
 */
import type { Context } from '../context.js';
import type { Database } from '../db/connection.js';
import type { FactorRow } from '../db/own-store.js';
import { inTransaction, lockAccountState, lockAccountWithFactor, type AccountStateRow, type Trx } from '../db/tx.js';
import { refreshTouchedSummary } from '../db/status-summary.js';
import { writeAudit, type AuditEvent } from './audit-write.js';
import { Mail2faError, noPerm } from '../errors.js';
import { isLocked, lockedError, recordFailure, recordSuccess } from './lockout.js';
import { Vault } from './vault.js';

export class Refusal {
  constructor(readonly error: Mail2faError) {}
}

export interface AccountTx {
  readonly trx: Trx;
  readonly db: Database;
  readonly ctx: Context;
  readonly account: string;
  /** The state row as locked at the start of the transaction (updated by fail/succeed). */
  state: AccountStateRow;
  /**
   * With the option `withFactor`: the account's factor and its count of unused recovery codes, read together with
   * the state row's lock (one round trip on MySQL/MariaDB and SQLite); as they were before `work` changed anything.
   */
  readonly locked?: { factor: FactorRow | undefined; recoveryCodesLeft: number };
  readonly now: number;
  vault(): Vault;
  audit(event: Omit<AuditEvent, 'account'> & { account?: string | null }): Promise<void>;
  /** Refuses when the account is locked (audit row `action`, outcome refused). */
  refuseIfLocked(action: string, detail?: AuditEvent['detail']): Promise<Refusal | null>;
  /** Counts a wrong password/code (shared counter), writes the refusal's audit row, returns the Refusal. */
  fail(action: string, what: 'password' | 'code', detail?: AuditEvent['detail']): Promise<Refusal>;
  /** A correct password/code: ends the run of failures. */
  succeed(): Promise<void>;
}

export async function accountTransaction<T>(
  ctx: Context,
  account: string,
  work: (tx: AccountTx) => Promise<T | Refusal>,
  options: { withFactor?: boolean } = {},
): Promise<T> {
  const db = await ctx.db();
  await Vault.prefetch(ctx, db);
  // The action being checked (named by refuseIfLocked/fail), for the audit row of a refusal that rolls back.
  let action: string | undefined;
  let result: T | Refusal;
  try {
    result = await inTransaction(db, ctx.tables, async (trx) => {
      // One Vault per attempt: nothing derived inside a transaction outlives its rollback.
      let vault: Vault | undefined;
      let state: AccountStateRow;
      let locked: AccountTx['locked'];
      if (options.withFactor) {
        const read = await lockAccountWithFactor(trx, ctx.tables, db.dialect, account);
        state = read.state;
        locked = { factor: read.factor, recoveryCodesLeft: read.recoveryCodesLeft };
      } else state = await lockAccountState(trx, ctx.tables, db.dialect, account);
      const now = ctx.now();
      const tx: AccountTx = {
        trx,
        db,
        ctx,
        account,
        state,
        locked,
        now,
        vault: () => (vault ??= Vault.forContext(ctx, db)),
        audit: (event) =>
          writeAudit(trx, ctx.tables, ctx, {
            ...event,
            account: event.account === undefined ? account : event.account,
          }),
        async refuseIfLocked(checking, detail) {
          action = checking;
          if (!isLocked(tx.state, now)) return null;
          await tx.audit({ action: checking, outcome: 'refused', reason: 'locked', detail });
          return new Refusal(lockedError(tx.state.locked_until!));
        },
        async fail(checking, what, detail) {
          action = checking;
          tx.state = await recordFailure(trx, ctx.tables, ctx, tx.state);
          await tx.audit({
            action: checking,
            outcome: 'refused',
            reason: what === 'password' ? 'wrong password' : 'wrong code',
            detail,
          });
          const lockedNow = isLocked(tx.state, now);
          const message = what === 'password' ? 'wrong password' : 'wrong or expired code';
          return new Refusal(
            noPerm(
              what === 'password' ? 'wrong_password' : 'wrong_code',
              lockedNow ? `${message}; too many wrong attempts: the account is now locked for 15 minutes` : message,
              lockedNow ? undefined : 'Five wrong attempts in a row lock the account for 15 minutes.',
            ),
          );
        },
        async succeed() {
          await recordSuccess(trx, ctx.tables, tx.state);
          tx.state = { ...tx.state, failed_attempts: 0, locked_until: null };
        },
      };
      const outcome = await work(tx);
      // The status summary follows every change in the same transaction (and under the same lock): the columns
      // the writes touched, recomputed from the detail tables.
      await refreshTouchedSummary(trx, ctx.tables, db.dialect, account);
      return outcome;
    });
  } catch (err) {
    await auditRolledBackRefusal(ctx, db, account, action, err);
    throw err;
  }
  if (result instanceof Refusal) throw result.error;
  return result;
}

/** Refusals that throw (and so roll back) but must still leave their audit row (every refused attempt is audited). */
const AUDITED_THROWS = new Set(['integrity', 'key_mismatch']);

/**
 * A stored secret that fails its integrity check (tampered, copied from another account, another key) rolls the
 * transaction back; its refused attempt is then recorded in a transaction of its own. Counting it as a wrong code
 * would be wrong (it is not the user's fault), so only the audit row is written. A failure to write it is ignored:
 * the original error is what the caller must see.
 */
async function auditRolledBackRefusal(
  ctx: Context,
  db: Database,
  account: string,
  action: string | undefined,
  err: unknown,
): Promise<void> {
  if (!(err instanceof Mail2faError) || !AUDITED_THROWS.has(err.code)) return;
  try {
    await inTransaction(db, ctx.tables, (trx) =>
      writeAudit(trx, ctx.tables, ctx, {
        action: action ?? 'unknown',
        account,
        outcome: 'refused',
        reason: err.code === 'integrity' ? 'integrity check failed' : 'key mismatch',
      }),
    );
  } catch {
    // Reported through the original error.
  }
}
