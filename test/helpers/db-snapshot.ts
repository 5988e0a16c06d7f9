/**
 * Snapshots of a test database, to prove that a failed or refused command left it unchanged (or changed exactly
 * what it should): each table's rows in a stable order, and a fingerprint of them.
 */
import { createHash } from 'node:crypto';
import type { Knex } from 'knex';
import type { Context } from '../../src/context.js';
import type { DbKind } from './db.js';

export type Row = Record<string, unknown>;
export type RowSnapshot = Record<string, Row[]>;

/** A row with its columns in name order, bigints as numbers and binary values as hex: comparable across drivers. */
function normalRow(row: Row): Row {
  return Object.fromEntries(
    Object.entries(row)
      .sort(([a], [b]) => a.localeCompare(b))
      .map(([column, value]) => [
        column,
        Buffer.isBuffer(value) ? value.toString('hex') : typeof value === 'bigint' ? Number(value) : value,
      ]),
  );
}

/** Every row of each of `tables`, sorted by its text: equal snapshots hold the same rows. */
export async function tableRows(knex: Knex, tables: readonly string[]): Promise<RowSnapshot> {
  const out: RowSnapshot = {};
  for (const table of tables) {
    const rows = ((await knex(table).select('*')) as Row[]).map(normalRow);
    out[table] = rows
      .map((row) => ({ row, text: JSON.stringify(row) }))
      .sort((a, b) => (a.text < b.text ? -1 : a.text > b.text ? 1 : 0))
      .map(({ row }) => row);
  }
  return out;
}

/** mail2fa's own tables (without its migrations table) and the mailbox table, as `ctx` names them. */
export function mail2faTables(ctx: Context): string[] {
  const t = ctx.tables;
  return [
    t.factor,
    t.recoveryCode,
    t.enrolment,
    t.challenge,
    t.smsSend,
    t.accountState,
    t.audit,
    t.codeKey,
    ctx.mapping.table,
  ];
}

/** The rows of mail2fa's tables and the mailbox table, plus `extraTables` (a webmail session table, say). */
export async function rowSnapshot(ctx: Context, extraTables: readonly string[] = []): Promise<RowSnapshot> {
  return tableRows((await ctx.db()).knex, [...mail2faTables(ctx), ...extraTables]);
}

/**
 * A fingerprint of every table mail2fa touches (its own tables, its migrations table and the mailbox table): a
 * hash of each table's sorted rows, and on MariaDB also the server's own CHECKSUM TABLE.
 */
export async function dbSnapshot(ctx: Context): Promise<Record<string, string>> {
  const db = await ctx.db();
  const names = [...mail2faTables(ctx), ctx.tables.migrations];
  const rows = await tableRows(db.knex, names);
  const out: Record<string, string> = {};
  for (const name of names) {
    const lines = rows[name]!.map((row) => JSON.stringify(row));
    out[name] = `${lines.length}:${createHash('sha256').update(lines.join('\n')).digest('hex')}`;
  }
  if (db.dialect === 'mysql') {
    const [checksums] = (await db.knex.raw(`CHECKSUM TABLE ${names.map((n) => `\`${n}\``).join(', ')}`)) as [
      { Table: string; Checksum: number | string | null }[],
    ];
    for (const r of checksums) out[`CHECKSUM ${r.Table.split('.').pop()}`] = String(r.Checksum);
  }
  return out;
}

/** Every base table of the test database, sorted. */
export async function tableNamesOf(knex: Knex, kind: DbKind): Promise<string[]> {
  if (kind === 'sqlite')
    return (
      (await knex.raw(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
      )) as { name: string }[]
    ).map((r) => r.name);
  if (kind === 'postgres') {
    return (
      (await knex.raw(
        "SELECT table_name AS name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY table_name",
      )) as { rows: { name: string }[] }
    ).rows.map((r) => r.name);
  }
  return (
    (await knex.raw(
      'SELECT TABLE_NAME AS name FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_NAME',
    )) as [{ name: string }[]]
  )[0].map((r) => r.name);
}

/** The rows of every table of the database, whoever made it. */
export async function allTablesSnapshot(knex: Knex, kind: DbKind): Promise<RowSnapshot> {
  return tableRows(knex, await tableNamesOf(knex, kind));
}
