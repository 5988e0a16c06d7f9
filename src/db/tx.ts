/**
 * One command's changes = one transaction: all or nothing. Deadlocks and serialization failures are retried;
 * when the retries run out the command fails as "busy, retry" (75), never as an outage or a bug. SQLite takes the
 * write lock up front so that two processes serialise instead of failing on a read→write upgrade.
 */
import type { Knex } from 'knex';
import type { Database } from './connection.js';
import { isRetryable, mapDbError } from './connection.js';
import type { Tables } from './schema.js';
import { countUnusedRecoveryCodes, readFactorRow, type FactorRow } from './own-store.js';

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

export async function lockAccountState(
  trx: Trx,
  tables: Tables,
  dialect: Database['dialect'],
  account: string,
): Promise<AccountStateRow> {
  let row: AccountStateRow | undefined;
  if (dialect === 'postgres') {
    // One statement: inserts the row, or takes the existing row's lock (DO UPDATE locks it like FOR UPDATE, and
    // waits for a concurrent insert of the same key to finish) and returns its latest committed version.
    const result = (await trx.raw(
      `INSERT INTO ?? (account, failed_attempts) VALUES (?, 0) ON CONFLICT (account) DO UPDATE SET account = EXCLUDED.account RETURNING account, failed_attempts, locked_until, sessions_revoked_at`,
      [tables.accountState, account],
    )) as { rows: AccountStateRow[] };
    row = result.rows[0];
  } else {
    await insertStateRow(trx, tables, dialect, account);
    let query = trx(tables.accountState).where({ account }).first();
    // Already locked exclusively: the locking read cannot wait, and reads the latest version, not the snapshot.
    if (dialect === 'mysql') query = query.forUpdate();
    row = (await query) as AccountStateRow | undefined;
  }
  if (!row) throw new Error(`account state row for ${account} vanished`);
  return stateRow(row);
}

/** MySQL/MariaDB and SQLite: creates the account's state row if missing, holding its exclusive lock from now on. */
async function insertStateRow(trx: Trx, tables: Tables, dialect: Database['dialect'], account: string): Promise<void> {
  if (dialect === 'mysql') {
    // INSERT … ON DUPLICATE KEY UPDATE takes the row's exclusive lock at once, whether it inserts or finds the
    // row. (INSERT IGNORE takes a shared lock on a duplicate; two transactions each holding it and then asking
    // for FOR UPDATE deadlock on the upgrade.)
    await trx.raw('INSERT INTO ?? (account, failed_attempts) VALUES (?, 0) ON DUPLICATE KEY UPDATE account = account', [
      tables.accountState,
      account,
    ]);
  } else {
    // SQLite: inTransaction already holds the database's write lock, so nothing can interleave.
    await trx(tables.accountState).insert({ account, failed_attempts: 0 }).onConflict('account').ignore();
  }
}

function stateRow(row: AccountStateRow): AccountStateRow {
  return {
    account: row.account,
    failed_attempts: Number(row.failed_attempts),
    locked_until: row.locked_until === null ? null : Number(row.locked_until),
    sessions_revoked_at: row.sessions_revoked_at === null ? null : Number(row.sessions_revoked_at),
  };
}

/** The account's locked state row, with its factor and unused recovery codes as read under that lock. */
export interface LockedAccount {
  state: AccountStateRow;
  factor: FactorRow | undefined;
  recoveryCodesLeft: number;
}

const FACTOR_COLUMNS = [
  'account',
  'method',
  'secret_ct',
  'phone_ct',
  'phone_masked',
  'key_id',
  'enrolled_at',
  'last_used_at',
  'last_totp_step',
  'version',
] as const;

/**
 * lockAccountState, plus the account's factor and its count of unused recovery codes (what a sign-in check reads
 * first). On MySQL/MariaDB and SQLite the locking read of the state row brings them along — one round trip instead
 * of three, which matters for `mail2fa serve`; the factor row is then locked too (a locking read of a join locks
 * every row it reads), which the check does anyway when it marks a code used. The count comes from a subquery:
 * a plain read, as before. PostgreSQL locks in its own single statement and reads the two as before.
 */
export async function lockAccountWithFactor(
  trx: Trx,
  tables: Tables,
  dialect: Database['dialect'],
  account: string,
): Promise<LockedAccount> {
  if (dialect === 'postgres') {
    const state = await lockAccountState(trx, tables, dialect, account);
    const factor = await readFactorRow(trx, tables, account);
    return { state, factor, recoveryCodesLeft: await countUnusedRecoveryCodes(trx, tables, account) };
  }
  await insertStateRow(trx, tables, dialect, account);
  const factorColumns = FACTOR_COLUMNS.map((c) => `f.${c} AS f_${c}`).join(', ');
  const sql =
    `SELECT s.account, s.failed_attempts, s.locked_until, s.sessions_revoked_at, ${factorColumns}, ` +
    '(SELECT COUNT(*) FROM ?? r WHERE r.account = ? AND r.used_at IS NULL) AS recovery_codes_left ' +
    'FROM ?? s LEFT JOIN ?? f ON f.account = ? WHERE s.account = ?' +
    (dialect === 'mysql' ? ' FOR UPDATE' : '');
  const result = (await trx.raw(sql, [
    tables.recoveryCode,
    account,
    tables.accountState,
    tables.factor,
    account,
    account,
  ])) as [Record<string, unknown>[]] | Record<string, unknown>[];
  // mysql2 answers [rows, fields]; better-sqlite3 the rows.
  const row = (
    dialect === 'mysql' ? (result as [Record<string, unknown>[]])[0] : (result as Record<string, unknown>[])
  )[0];
  if (!row) throw new Error(`account state row for ${account} vanished`);
  const factor =
    row.f_account === null || row.f_account === undefined
      ? undefined
      : ({
          ...Object.fromEntries(FACTOR_COLUMNS.map((c) => [c, row[`f_${c}`]])),
          enrolled_at: Number(row.f_enrolled_at),
          last_used_at: nullableNumber(row.f_last_used_at),
          last_totp_step: nullableNumber(row.f_last_totp_step),
          version: Number(row.f_version),
        } as FactorRow);
  return {
    state: stateRow(row as unknown as AccountStateRow),
    factor,
    recoveryCodesLeft: Number(row.recovery_codes_left),
  };
}

function nullableNumber(v: unknown): number | null {
  return v === null || v === undefined ? null : Number(v);
}

/**
 * Locks (creating missing ones) the state rows of several accounts at once, for batch operations; in sorted
 * order, so that two batches over overlapping accounts queue instead of deadlocking. Takes the exclusive lock
 * directly, as lockAccountState does.
 */
export async function lockAccountStates(
  trx: Trx,
  tables: Tables,
  dialect: Database['dialect'],
  accounts: string[],
): Promise<void> {
  const sorted = [...new Set(accounts)].sort();
  if (sorted.length === 0) return;
  const values = sorted.map(() => '(?, 0)').join(', ');
  if (dialect === 'postgres') {
    await trx.raw(
      `INSERT INTO ?? (account, failed_attempts) VALUES ${values} ON CONFLICT (account) DO UPDATE SET account = EXCLUDED.account`,
      [tables.accountState, ...sorted],
    );
  } else if (dialect === 'mysql') {
    await trx.raw(
      `INSERT INTO ?? (account, failed_attempts) VALUES ${values} ON DUPLICATE KEY UPDATE account = account`,
      [tables.accountState, ...sorted],
    );
  } else {
    await trx(tables.accountState)
      .insert(sorted.map((account) => ({ account, failed_attempts: 0 })))
      .onConflict('account')
      .ignore();
  }
}

/** Inserts one row into a table with a generated `id` and returns that id, on every database. */
export async function insertReturningId(
  trx: Trx,
  dialect: Database['dialect'],
  table: string,
  row: Record<string, unknown>,
): Promise<number> {
  if (dialect === 'postgres') {
    const [inserted] = (await trx(table).insert(row).returning('id')) as { id: number | string }[];
    return Number(inserted!.id);
  }
  const [id] = (await trx(table).insert(row)) as number[];
  return Number(id);
}
