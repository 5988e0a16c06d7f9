/**
 * One command's changes = one transaction (PRODUCT.md §3.10). Deadlocks are retried; SQLite takes the write
 * lock up front so that two processes serialise instead of failing on a read→write upgrade.
 */
import type { Knex } from 'knex';
import type { Database } from './connection.js';
import { isRetryable, mapDbError } from './connection.js';
import type { Tables } from './schema.js';

export type Trx = Knex.Transaction;

const MAX_ATTEMPTS = 4;

export async function inTransaction<T>(db: Database, tables: Tables, work: (trx: Trx) => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await db.knex.transaction(async (trx) => {
        if (db.dialect === 'sqlite') {
          // A write statement (even one touching no row) takes SQLite's RESERVED lock now, waiting up to
          // busy_timeout for another process: the equivalent of BEGIN IMMEDIATE.
          await trx(tables.accountState).where('account', '').update({ failed_attempts: 0 });
        }
        return work(trx);
      });
    } catch (err) {
      if (attempt < MAX_ATTEMPTS && isRetryable(err)) {
        await new Promise((r) => setTimeout(r, 20 * attempt + Math.floor(Math.random() * 30)));
        continue;
      }
      throw mapDbError(err, db.displayUrl);
    }
  }
}

/**
 * Locks the account's state row for the rest of the transaction (creating it if missing) and returns it.
 * Every change to an account goes through here first, so two changes to one account serialise.
 */
export interface AccountStateRow {
  account: string;
  failed_attempts: number;
  locked_until: number | null;
  sessions_revoked_at: number | null;
}

export async function lockAccountState(trx: Trx, tables: Tables, dialect: Database['dialect'], account: string): Promise<AccountStateRow> {
  await trx(tables.accountState).insert({ account, failed_attempts: 0 }).onConflict('account').ignore();
  let query = trx(tables.accountState).where({ account }).first();
  if (dialect === 'mysql') query = query.forUpdate();
  const row = (await query) as AccountStateRow | undefined;
  if (!row) throw new Error(`account state row for ${account} vanished`);
  return {
    account: row.account,
    failed_attempts: Number(row.failed_attempts),
    locked_until: row.locked_until === null ? null : Number(row.locked_until),
    sessions_revoked_at: row.sessions_revoked_at === null ? null : Number(row.sessions_revoked_at),
  };
}
