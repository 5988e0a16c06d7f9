/**
 * The one query behind `status`: mailbox rows joined with mail2fa's factor and state rows. Bulk reads stream
 * (mysql2's row stream; better-sqlite3's iterate(), since knex's .stream() on it loads every row first) and are
 * handed out in batches; address lists are looked up with one `IN (…)` query per batch, never one per account.
 */
import type { Knex } from 'knex';
import type { AccountMapping } from './accounts.js';
import type { Database } from './connection.js';
import { mapDbError } from './connection.js';
import type { Tables } from './schema.js';

export interface StatusDbRow {
  email: string;
  domain: string;
  active: unknown;
  method: string | null;
  phone_masked: string | null;
  enrolled_at: number | string | null;
  last_used_at: number | string | null;
  locked_until: number | string | null;
  codes_left: number | string | null;
  pfa_totp?: number | string | null;
}

export type StatusWhere = { kind: 'all' } | { kind: 'domain'; domain: string } | { kind: 'emails'; emails: string[] };

function statusSql(knex: Knex, db: Database, tables: Tables, m: AccountMapping, where: StatusWhere): { sql: string; bindings: unknown[] } {
  // On MySQL the mailbox column may be latin1 and/or case-insensitive: compare in utf8mb4_bin so that the
  // join is exact (and legal across collations); the lookup still uses the primary keys of our tables.
  const key = db.dialect === 'mysql' ? 'CONVERT(m.?? USING utf8mb4) COLLATE utf8mb4_bin' : 'm.??';
  const pfa = m.totpSecret ? `, CASE WHEN m.?? IS NOT NULL AND m.?? <> '' THEN 1 ELSE 0 END AS pfa_totp` : '';
  const bindings: unknown[] = [m.email, m.domain, m.active];
  if (m.totpSecret) bindings.push(m.totpSecret, m.totpSecret);
  bindings.push(tables.recoveryCode, m.table, tables.factor, m.email, tables.accountState, m.email);
  let sql =
    `SELECT m.?? AS email, m.?? AS domain, m.?? AS active${pfa}, f.method AS method, f.phone_masked AS phone_masked, ` +
    `f.enrolled_at AS enrolled_at, f.last_used_at AS last_used_at, s.locked_until AS locked_until, ` +
    `(SELECT COUNT(*) FROM ?? rc WHERE rc.account = f.account AND rc.used_at IS NULL) AS codes_left ` +
    `FROM ?? m LEFT JOIN ?? f ON f.account = ${key} LEFT JOIN ?? s ON s.account = ${key}`;
  if (where.kind === 'domain') {
    sql += ' WHERE m.?? = ?';
    bindings.push(m.domain, where.domain);
  } else if (where.kind === 'emails') {
    sql += ` WHERE m.?? IN (${where.emails.map(() => '?').join(', ')})`;
    bindings.push(m.email, ...where.emails);
  }
  const native = knex.raw(sql, bindings as Knex.RawBinding[]).toSQL().toNative();
  return { sql: native.sql, bindings: [...native.bindings] };
}

/** Streams rows for --all / --domain in batches of `batchSize`. */
export async function* streamStatusRows(db: Database, tables: Tables, mapping: AccountMapping, where: StatusWhere, batchSize = 2000): AsyncGenerator<StatusDbRow[]> {
  const { sql, bindings } = statusSql(db.knex, db, tables, mapping, where);
  let batch: StatusDbRow[] = [];
  try {
    if (db.dialect === 'sqlite') {
      const client = (db.knex as unknown as { client: { acquireConnection(): Promise<SqliteConn>; releaseConnection(c: SqliteConn): Promise<void> } }).client;
      const conn = await client.acquireConnection();
      try {
        for (const row of conn.prepare(sql).iterate(...bindings) as Iterable<StatusDbRow>) {
          batch.push(row);
          if (batch.length >= batchSize) {
            yield batch;
            batch = [];
          }
        }
      } finally {
        await client.releaseConnection(conn);
      }
    } else {
      const stream = db.knex.raw(sql, bindings as Knex.RawBinding[]).stream({ highWaterMark: batchSize });
      for await (const row of stream as AsyncIterable<StatusDbRow>) {
        batch.push(row);
        if (batch.length >= batchSize) {
          yield batch;
          batch = [];
        }
      }
    }
  } catch (err) {
    throw mapDbError(err, db.displayUrl);
  }
  if (batch.length) yield batch;
}

/** One query for a batch of canonical addresses; the caller matches rows exactly. */
export async function lookupStatusRows(db: Database, tables: Tables, mapping: AccountMapping, emails: string[]): Promise<StatusDbRow[]> {
  if (emails.length === 0) return [];
  const { sql, bindings } = statusSql(db.knex, db, tables, mapping, { kind: 'emails', emails });
  try {
    const result = await db.knex.raw(sql, bindings as Knex.RawBinding[]);
    return (db.dialect === 'mysql' ? result[0] : result) as StatusDbRow[];
  } catch (err) {
    throw mapDbError(err, db.displayUrl);
  }
}

interface SqliteConn {
  prepare(sql: string): { iterate(...params: unknown[]): IterableIterator<unknown> };
}
