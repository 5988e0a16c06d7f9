/**
 * `mail2fa migrate --refresh-summary`: recomputes every account's status summary (src/db/status-summary.ts) from
 * the detail tables — the repair for the drift `doctor` reports.
 *
 * It runs beside live traffic (`mail2fa serve`, enrolments), so it works in batches of BATCH accounts, one short
 * transaction each, never one statement over the whole table: each batch first locks its state rows the way every
 * change does (lockAccountStates, in sorted order), so it queues behind a change to one of them instead of racing
 * it, and a change that comes after sees the repaired row. First the state rows that are missing for accounts
 * with a factor or a temporary code are created (and filled); then every state row is visited once, by keyset
 * pagination on the account (an offset would skip or repeat rows when rows are added meanwhile).
 */
import type { Context } from '../context.js';
import {
  accountsWithoutStateRow,
  readSummaries,
  refreshStatusSummary,
  stateAccountsPage,
} from '../db/status-summary.js';
import { inTransaction, lockAccountStates } from '../db/tx.js';
import { writeAudit } from './audit-write.js';

/** Accounts per transaction: short enough that a sign-in waiting for one of them barely notices. */
export const BATCH = 500;

export interface SummaryRefresh {
  /** State rows visited (created ones included). */
  checked: number;
  /** State rows whose summary differed from the detail tables and was rewritten (created ones included). */
  changed: number;
  /** State rows created for accounts that had a factor or a temporary code and no state row. */
  created: number;
}

export async function refreshSummaries(ctx: Context, options: { batch?: number } = {}): Promise<SummaryRefresh> {
  const batch = options.batch ?? BATCH;
  const db = await ctx.db();
  const { tables } = ctx;
  const result: SummaryRefresh = { checked: 0, changed: 0, created: 0 };

  // The missing rows first, so that the pass below visits them with the rest. A row someone else creates between
  // the read and the lock is counted here too: it was missing when looked at, and is filled either way.
  for (let after: string | null = null; ;) {
    const page: string[] = await inTransaction(db, tables, async (trx) => {
      const accounts = await accountsWithoutStateRow(trx, tables, db.dialect, after, batch);
      await lockAccountStates(trx, tables, db.dialect, accounts);
      await refreshStatusSummary(trx, tables, db.dialect, accounts);
      return accounts;
    });
    if (page.length === 0) break;
    result.created += page.length;
    result.changed += page.length;
    after = page[page.length - 1]!;
  }

  for (let after: string | null = null; ;) {
    const page: { accounts: string[]; changed: number } = await inTransaction(db, tables, async (trx) => {
      const accounts = await stateAccountsPage(trx, tables, after, batch);
      if (accounts.length === 0) return { accounts, changed: 0 };
      await lockAccountStates(trx, tables, db.dialect, accounts);
      const before = await readSummaries(trx, tables, db.dialect, accounts);
      await refreshStatusSummary(trx, tables, db.dialect, accounts);
      const now = await readSummaries(trx, tables, db.dialect, accounts);
      return { accounts, changed: accounts.filter((a) => before.get(a) !== now.get(a)).length };
    });
    if (page.accounts.length === 0) break;
    result.checked += page.accounts.length;
    result.changed += page.changed;
    after = page.accounts[page.accounts.length - 1]!;
  }

  // One audit row for the run, also when nothing changed: that the repair ran (and found nothing) is worth
  // knowing when the summary is questioned later.
  await inTransaction(db, tables, (trx) =>
    writeAudit(trx, tables, ctx, {
      action: 'refresh-summary',
      account: null,
      outcome: 'ok',
      detail: { ...result },
    }),
  );
  return result;
}
