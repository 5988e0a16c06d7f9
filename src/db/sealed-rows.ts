/**
 * The SQL of `keys check` / `keys rotate` (src/core/keys.ts holds the rules): the tables holding sealed values,
 * read in keyset-paginated pages, counted, locked in batches and written back.
 */
import type { Knex } from 'knex';
import type { Database } from './connection.js';
import type { Tables } from './schema.js';

export type Row = Record<string, unknown>;

/** Rows read per page. */
const PAGE_SIZE = 1000;

/** A table holding sealed values: the AAD "account" of each value is the row's primary key. */
export interface SealedTable {
  table: string;
  pk: string;
  columns: string[];
}

export function sealedTables(tables: Tables): SealedTable[] {
  return [
    { table: tables.factor, pk: 'account', columns: ['secret_ct', 'phone_ct'] },
    { table: tables.enrolment, pk: 'account', columns: ['secret_ct', 'phone_ct'] },
    { table: tables.codeKey, pk: 'id', columns: ['key_ct'] },
  ];
}

export async function* pages(
  knex: Knex | Knex.Transaction,
  spec: SealedTable,
  options: { wholeRows: boolean; forUpdate: boolean },
): AsyncGenerator<Row[]> {
  let last: string | undefined;
  for (;;) {
    const query = knex(spec.table).orderBy(spec.pk).limit(PAGE_SIZE);
    if (options.wholeRows) query.select('*');
    else query.select([spec.pk, 'key_id', ...spec.columns]);
    if (last !== undefined) query.where(spec.pk, '>', last);
    if (options.forUpdate) query.forUpdate();
    const rows = (await query) as Row[];
    if (rows.length === 0) return;
    yield rows;
    if (rows.length < PAGE_SIZE) return;
    last = String(rows[rows.length - 1]![spec.pk]);
  }
}

export async function countRows(knex: Knex | Knex.Transaction, specs: SealedTable[]): Promise<number> {
  let total = 0;
  for (const spec of specs) {
    const row = (await knex(spec.table).count({ n: '*' }).first()) as { n: number | string } | undefined;
    total += Number(row?.n ?? 0);
  }
  return total;
}

/** The first non-null value of `column` (a sample for "does this key read this database"). */
export async function firstSealedValue(db: Database, spec: SealedTable, column: string): Promise<Row | undefined> {
  return (await db.knex(spec.table).whereNotNull(column).orderBy(spec.pk).first([spec.pk, column])) as Row | undefined;
}

/** How many rows of the table are not (yet) under the key `keyId`. */
export async function countNotUnderKey(trx: Knex.Transaction, spec: SealedTable, keyId: string): Promise<number> {
  const row = (await trx(spec.table).whereNot('key_id', keyId).count({ n: '*' }).first()) as
    { n: number | string } | undefined;
  return Number(row?.n ?? 0);
}

/** Up to `limit` whole rows not under `keyId`, locked for the transaction (SQLite: inTransaction holds the write lock). */
export async function lockRowsNotUnderKey(
  trx: Knex.Transaction,
  dialect: Database['dialect'],
  spec: SealedTable,
  keyId: string,
  limit: number,
): Promise<Row[]> {
  const query = trx(spec.table).whereNot('key_id', keyId).orderBy(spec.pk).limit(limit).select('*');
  if (dialect !== 'sqlite') query.forUpdate();
  return (await query) as Row[];
}

/** Writes whole rows back in one statement (their sealed columns and key id). */
export async function writeSealedRows(trx: Knex.Transaction, spec: SealedTable, rows: Row[]): Promise<void> {
  await trx(spec.table)
    .insert(rows)
    .onConflict(spec.pk)
    .merge([...spec.columns, 'key_id']);
}
