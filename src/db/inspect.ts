/** What `doctor` asks the database server about itself (version, storage engines, a table's columns). Read-only. */
import type { Database } from './connection.js';

/** "SQLite 3.x" / the server's version string. */
export async function serverVersion(db: Database): Promise<string> {
  if (db.dialect === 'sqlite') return ((await db.knex.raw('select sqlite_version() as v')) as { v: string }[])[0]!.v;
  if (db.dialect === 'postgres')
    return ((await db.knex.raw('select version() as v')) as { rows: { v: string }[] }).rows[0]!.v.replace(
      / on .*$/,
      '',
    );
  return ((await db.knex.raw('select version() as v')) as [{ v: string }[]])[0][0]!.v;
}

/** MySQL/MariaDB: the storage engine of each of `tables` that exists in the current database. */
export async function tableEngines(
  db: Database,
  tables: readonly string[],
): Promise<{ name: string; engine: string }[]> {
  const [rows] = (await db.knex.raw(
    `SELECT TABLE_NAME AS name, ENGINE AS engine FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN (${tables.map(() => '?').join(', ')})`,
    [...tables],
  )) as [{ name: string; engine: string }[]];
  return rows;
}

/** The columns of `table` (empty when the table does not exist). */
export async function columnsOf(db: Database, table: string): Promise<Record<string, unknown>> {
  return (await db.knex(table).columnInfo()) as Record<string, unknown>;
}
