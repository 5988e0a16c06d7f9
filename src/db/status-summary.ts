/**
 * The status summary: everything `status` shows of an account, kept in the account's state row (one row per
 * account with any 2FA history), so that bulk status is `mailbox LEFT JOIN account_state` — the minimal join —
 * instead of a join with the factor table, a recovery-code count and the temporary codes per mailbox.
 *
 * The detail tables stay the truth: the summary is recomputed from them, never adjusted by arithmetic, in the same
 * transaction as every change, under the account's state-row lock, so it cannot lag behind a commit. The writers in
 * own-store.ts mark which part of the summary their change touches (summaryTouched); accountTransaction then
 * recomputes those columns of the account it locked (refreshTouchedSummary) — none after a refused code (short of a
 * TOTP that lost a compare-and-set race), only last_used_at after an accepted one. The batch writers refresh their batch. `doctor` compares the summary with the
 * detail tables (summaryDrift), and `mail2fa migrate --refresh-summary` recomputes every row. Sign-in never reads
 * the summary: it is what `status` shows, not what is enforced.
 */
import type { Knex } from 'knex';
import type { Dialect } from './connection.js';
import type { Tables } from './schema.js';

/** The summary columns of the state row (besides locked_until, which is the state row's own). */
export const SUMMARY_COLUMNS = [
  'method',
  'phone_masked',
  'enrolled_at',
  'last_used_at',
  'codes_left',
  'temp_expires_at',
  'temp_used_at',
] as const;

export type SummaryColumn = (typeof SUMMARY_COLUMNS)[number];

/**
 * Each summary column as an expression computed from the detail tables for the state row `s` (the state table's
 * full name, quoted by the caller's `??` binding): the same values the old per-row status query read.
 */
function computed(tables: Tables): { sql: Record<SummaryColumn, string>; bindings: Record<SummaryColumn, string[]> } {
  const factor = (column: string) => `(SELECT f.${column} FROM ?? f WHERE f.account = s.account)`;
  const temp = (aggregate: string) =>
    `(SELECT ${aggregate} FROM ?? tc WHERE tc.account = s.account AND tc.purpose = 'temporary')`;
  return {
    sql: {
      method: factor('method'),
      phone_masked: factor('phone_masked'),
      enrolled_at: factor('enrolled_at'),
      last_used_at: factor('last_used_at'),
      // Counted only where a factor exists: codes_left means nothing without one.
      codes_left:
        'CASE WHEN EXISTS (SELECT 1 FROM ?? f WHERE f.account = s.account) ' +
        'THEN (SELECT COUNT(*) FROM ?? rc WHERE rc.account = s.account AND rc.used_at IS NULL) ELSE NULL END',
      temp_expires_at: temp('MAX(tc.expires_at)'),
      temp_used_at: temp('MAX(tc.used_at)'),
    },
    bindings: {
      method: [tables.factor],
      phone_masked: [tables.factor],
      enrolled_at: [tables.factor],
      last_used_at: [tables.factor],
      codes_left: [tables.factor, tables.recoveryCode],
      temp_expires_at: [tables.challenge],
      temp_used_at: [tables.challenge],
    },
  };
}

/**
 * Recomputes the summary of these accounts' state rows from the detail tables (all columns, or those given); the
 * rows must exist (the caller holds their locks). One statement.
 */
export async function refreshStatusSummary(
  trx: Knex.Transaction | Knex,
  tables: Tables,
  dialect: Dialect,
  accounts: readonly string[],
  columns: readonly SummaryColumn[] = SUMMARY_COLUMNS,
): Promise<void> {
  if (accounts.length === 0 || columns.length === 0) return;
  const { sql, bindings } = refreshSql(tables, `s.account IN (${accounts.map(() => '?').join(', ')})`, columns);
  await trx.raw(sql, [...bindings, ...accounts]);
}

/** The parts of the summary a write can touch, and the columns each part recomputes. */
export type SummaryPart = 'used' | 'factor' | 'codes' | 'temporary';

const PART_COLUMNS: Record<SummaryPart, readonly SummaryColumn[]> = {
  // An accepted code: the factor's last use.
  used: ['last_used_at'],
  // A factor stored or removed: its columns, and the recovery-code count that only exists beside a factor.
  factor: ['method', 'phone_masked', 'enrolled_at', 'last_used_at', 'codes_left'],
  codes: ['codes_left'],
  temporary: ['temp_expires_at', 'temp_used_at'],
};

/** Per transaction (its knex object), the parts its writes touched so far. */
const touched = new WeakMap<object, Set<SummaryPart>>();

/** Marks what a write in `trx` changed; every writer of the factor, recovery-code and challenge tables calls it. */
export function summaryTouched(trx: object, ...parts: SummaryPart[]): void {
  let set = touched.get(trx);
  if (!set) touched.set(trx, (set = new Set()));
  for (const part of parts) set.add(part);
}

/**
 * Recomputes the columns of `account`'s summary that the transaction's writes touched (nothing when it wrote none
 * of the detail tables): what accountTransaction runs before COMMIT.
 */
export async function refreshTouchedSummary(
  trx: Knex.Transaction,
  tables: Tables,
  dialect: Dialect,
  account: string,
): Promise<void> {
  const parts = touched.get(trx);
  if (!parts?.size) return;
  touched.delete(trx);
  const columns = SUMMARY_COLUMNS.filter((c) => [...parts].some((p) => PART_COLUMNS[p].includes(c)));
  await refreshStatusSummary(trx, tables, dialect, [account], columns);
}

/**
 * The accounts that have 2FA data the summary shows (a factor or a temporary code) and no state row: a FROM clause
 * (aliased `a`, column `account`) and its bindings, for the migration's fill, doctor's check and the repair.
 */
function withoutStateRow(tables: Tables): { from: string; bindings: string[] } {
  return {
    from:
      `FROM (SELECT account FROM ?? UNION SELECT account FROM ?? WHERE purpose = 'temporary') a ` +
      `WHERE NOT EXISTS (SELECT 1 FROM ?? s WHERE s.account = a.account)`,
    bindings: [tables.factor, tables.challenge, tables.accountState],
  };
}

/**
 * Recomputes the summary of every state row, first creating the rows missing for accounts that have a factor or a
 * temporary code (data written before the summary existed). For the migration and `migrate --refresh-summary`.
 * Returns how many state rows were recomputed.
 */
export async function refreshAllSummaries(
  knex: Knex | Knex.Transaction,
  tables: Tables,
  dialect: Dialect,
): Promise<number> {
  const missing = withoutStateRow(tables);
  const insert =
    dialect === 'mysql'
      ? `INSERT IGNORE INTO ?? (account, failed_attempts) SELECT a.account, 0 ${missing.from}`
      : `INSERT INTO ?? (account, failed_attempts) SELECT a.account, 0 ${missing.from} ON CONFLICT (account) DO NOTHING`;
  await knex.raw(insert, [tables.accountState, ...missing.bindings]);
  const { sql, bindings } = refreshSql(tables, null);
  const result = (await knex.raw(sql, bindings)) as unknown;
  return affectedRows(result, dialect);
}

function refreshSql(
  tables: Tables,
  where: string | null,
  columns: readonly SummaryColumn[] = SUMMARY_COLUMNS,
): { sql: string; bindings: string[] } {
  const { sql, bindings } = computed(tables);
  // The state table is aliased `s` for the correlated subqueries (`UPDATE t AS s` works on all three databases).
  const sets = columns.map((c) => `${c} = ${sql[c]}`).join(', ');
  return {
    sql: `UPDATE ?? AS s SET ${sets}${where ? ` WHERE ${where}` : ''}`,
    bindings: [tables.accountState, ...columns.flatMap((c) => bindings[c])],
  };
}

function affectedRows(result: unknown, dialect: Dialect): number {
  if (dialect === 'mysql') return Number((result as [{ affectedRows?: number }])[0]?.affectedRows ?? 0);
  if (dialect === 'postgres') return Number((result as { rowCount?: number }).rowCount ?? 0);
  return Number((result as { changes?: number }).changes ?? 0);
}

/** A state row whose summary disagrees with the detail tables (or an account with 2FA data and no state row). */
export interface SummaryDrift {
  account: string;
  columns: SummaryColumn[] | 'missing row';
}

/**
 * How many accounts' summaries disagree with the detail tables (or have 2FA data and no state row), and up to
 * `limit` of them with the columns that differ. Reads only; two scans of the state rows (what `doctor` runs).
 */
export async function summaryDrift(
  knex: Knex | Knex.Transaction,
  tables: Tables,
  dialect: Dialect,
  limit = 10,
): Promise<{ count: number; examples: SummaryDrift[] }> {
  limit = Math.max(0, Math.trunc(limit)); // spliced into LIMIT below: an integer, always
  const { sql, bindings } = computed(tables);
  // NULL-safe inequality on each database.
  const differs = (c: SummaryColumn) =>
    dialect === 'mysql'
      ? `NOT (s.${c} <=> ${sql[c]})`
      : dialect === 'postgres'
        ? `s.${c} IS DISTINCT FROM ${sql[c]}`
        : `s.${c} IS NOT ${sql[c]}`;
  const anyDiffers = SUMMARY_COLUMNS.map(differs).join(' OR ');
  const anyBindings = SUMMARY_COLUMNS.flatMap((c) => bindings[c]);
  const flags = SUMMARY_COLUMNS.map((c) => `CASE WHEN ${differs(c)} THEN 1 ELSE 0 END AS d_${c}`).join(', ');
  const { from: orphans, bindings: orphanBindings } = withoutStateRow(tables);

  const [drifted] = rowsOf(
    await knex.raw(`SELECT COUNT(*) AS n FROM ?? s WHERE ${anyDiffers}`, [tables.accountState, ...anyBindings]),
    dialect,
  ) as { n: number | string }[];
  const [missing] = rowsOf(await knex.raw(`SELECT COUNT(*) AS n ${orphans}`, orphanBindings), dialect) as {
    n: number | string;
  }[];
  const count = Number(drifted?.n ?? 0) + Number(missing?.n ?? 0);
  const examples: SummaryDrift[] = [];
  if (count === 0 || limit <= 0) return { count, examples };
  const rows = rowsOf(
    await knex.raw(`SELECT s.account, ${flags} FROM ?? s WHERE ${anyDiffers} ORDER BY s.account LIMIT ${limit}`, [
      ...anyBindings,
      tables.accountState,
      ...anyBindings,
    ]),
    dialect,
  ) as Record<string, unknown>[];
  for (const row of rows)
    examples.push({
      account: String(row.account),
      columns: SUMMARY_COLUMNS.filter((c) => Number(row[`d_${c}`]) === 1),
    });
  if (examples.length < limit) {
    const left = limit - examples.length;
    const orphanRows = rowsOf(
      await knex.raw(`SELECT a.account ${orphans} ORDER BY a.account LIMIT ${left}`, orphanBindings),
      dialect,
    ) as { account: string }[];
    for (const orphan of orphanRows) examples.push({ account: orphan.account, columns: 'missing row' });
  }
  return { count, examples };
}

function rowsOf(result: unknown, dialect: Dialect): unknown[] {
  if (dialect === 'mysql') return (result as [unknown[]])[0];
  if (dialect === 'postgres') return (result as { rows: unknown[] }).rows;
  return result as unknown[];
}

/** How many state rows there are (what `doctor` compared). */
export async function countStateRows(knex: Knex | Knex.Transaction, tables: Tables): Promise<number> {
  const [row] = (await knex(tables.accountState).count({ n: '*' })) as { n: number | string }[];
  return Number(row?.n ?? 0);
}

/**
 * One page of state-row accounts after `after` (keyset pagination, in the database's order of the key), for a
 * batch of `migrate --refresh-summary`. A plain read: the caller locks the page before it changes anything.
 */
export async function stateAccountsPage(
  knex: Knex | Knex.Transaction,
  tables: Tables,
  after: string | null,
  limit: number,
): Promise<string[]> {
  let query = knex(tables.accountState).select('account').orderBy('account').limit(limit);
  if (after !== null) query = query.where('account', '>', after);
  return ((await query) as { account: string }[]).map((r) => r.account);
}

/**
 * One page, after `after`, of the accounts that have a factor or a temporary code but no state row (data written
 * before the summary existed, or by hand): the rows `migrate --refresh-summary` creates.
 */
export async function accountsWithoutStateRow(
  knex: Knex | Knex.Transaction,
  tables: Tables,
  dialect: Dialect,
  after: string | null,
  limit: number,
): Promise<string[]> {
  limit = Math.max(1, Math.trunc(limit)); // spliced into LIMIT below: an integer, always
  const missing = withoutStateRow(tables);
  const rows = (await knex.raw(
    `SELECT a.account ${missing.from}` +
      (after !== null ? ' AND a.account > ?' : '') +
      ` ORDER BY a.account LIMIT ${limit}`,
    [...missing.bindings, ...(after !== null ? [after] : [])],
  )) as unknown;
  return (rowsOf(rows, dialect) as { account: string }[]).map((r) => r.account);
}

/**
 * The summary columns of these accounts' state rows, each value as text (null for NULL), for comparing a row
 * before and after a refresh. On MySQL/MariaDB and PostgreSQL a locking read: the caller holds the rows' locks,
 * and the locking read sees their latest committed version rather than the transaction's snapshot.
 */
export async function readSummaries(
  trx: Knex.Transaction,
  tables: Tables,
  dialect: Dialect,
  accounts: readonly string[],
): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  if (accounts.length === 0) return out;
  let query = trx(tables.accountState)
    .select('account', ...SUMMARY_COLUMNS)
    .whereIn('account', [...accounts]);
  if (dialect !== 'sqlite') query = query.forUpdate();
  for (const row of (await query) as Record<string, unknown>[])
    out.set(
      String(row.account),
      JSON.stringify(SUMMARY_COLUMNS.map((c) => (row[c] === null || row[c] === undefined ? null : String(row[c])))),
    );
  return out;
}
