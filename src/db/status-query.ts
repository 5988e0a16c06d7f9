/**
 * The one query behind `status`: mailbox rows joined with their state rows, which carry the status summary. Bulk reads stream
 * (mysql2's row stream; a server-side cursor on PostgreSQL; better-sqlite3's iterate(), since knex's .stream()
 * on it loads every row first) and are handed out in batches; address lists are looked up with one `IN (…)`
 * query per batch, never one per account.
 */
import type { Readable } from 'node:stream';
import type { Knex } from 'knex';
import { emailColumnCollation, type AccountMapping, type ColumnCollation } from './accounts.js';
import type { Database } from './connection.js';
import { mapDbError } from './connection.js';
import type { Tables } from './schema.js';

export interface StatusDbRow {
  email: string;
  /** Read only where it is needed: for --domain (exact match) and address lists; not for --all. */
  domain?: string;
  active: unknown;
  method: string | null;
  phone_masked: string | null;
  enrolled_at: number | string | null;
  last_used_at: number | string | null;
  locked_until: number | string | null;
  codes_left: number | string | null;
  /** The account's temporary access code from `recover --temporary-code` (the "2FA still required" marker). */
  temp_expires_at: number | string | null;
  temp_used_at: number | string | null;
}

export type StatusWhere = { kind: 'all' } | { kind: 'domain'; domain: string } | { kind: 'emails'; emails: string[] };

/**
 * The status SQL (native placeholders) for a selection: the mailbox rows joined with their state rows, which carry
 * the status summary (src/db/status-summary.ts) — one primary-key join per mailbox, no subquery. Exported so that
 * `npm run bench` runs the very same SQL.
 */
export function statusSql(
  knex: Knex,
  db: Pick<Database, 'dialect'>,
  tables: Tables,
  mapping: AccountMapping,
  where: StatusWhere,
  emailColumn?: ColumnCollation | null,
): { sql: string; bindings: unknown[] } {
  const mysql = db.dialect === 'mysql';
  // On MySQL the mailbox column may be latin1 and/or case-insensitive: compare in utf8mb4_bin so that the
  // join is exact (and legal across collations); the lookup still uses the primary key of our table.
  // utf8mb4_bin is PAD SPACE ("a" = "a "): the equal byte length makes the join exact for a mailbox row with
  // a trailing space too, so it never borrows the factor of the address without it.
  // On PostgreSQL the mailbox column may carry a non-deterministic (e.g. case-insensitive ICU) collation or be
  // citext: compare as text in the database's default collation, which is always deterministic (equal means
  // byte-equal) and is the collation of mail2fa's own keys, so their primary keys still serve the join.
  const key = mysql
    ? 'CONVERT(m.?? USING utf8mb4) COLLATE utf8mb4_bin'
    : db.dialect === 'postgres'
      ? 'CAST(m.?? AS text) COLLATE "default"'
      : 'm.??';
  const join = mysql ? `s.account = ${key} AND LENGTH(s.account) = LENGTH(${key})` : `s.account = ${key}`;
  const joinBindings = mysql ? [mapping.email, mapping.email] : [mapping.email];
  // --all leaves out the domain column: one string less to decode per row, and nothing reads it there.
  const withDomain = where.kind !== 'all';
  const bindings: unknown[] = withDomain
    ? [mapping.email, mapping.domain, mapping.active]
    : [mapping.email, mapping.active];
  bindings.push(mapping.table, tables.accountState, ...joinBindings);
  let sql =
    `SELECT m.?? AS email, ${withDomain ? 'm.?? AS domain, ' : ''}m.?? AS active, s.method AS method, ` +
    `s.phone_masked AS phone_masked, s.enrolled_at AS enrolled_at, s.last_used_at AS last_used_at, ` +
    `s.locked_until AS locked_until, s.codes_left AS codes_left, s.temp_expires_at AS temp_expires_at, ` +
    `s.temp_used_at AS temp_used_at FROM ?? m LEFT JOIN ?? s ON ${join}`;
  if (where.kind === 'domain') {
    sql += ' WHERE m.?? = ?';
    bindings.push(mapping.domain, where.domain);
  } else if (where.kind === 'emails') {
    const convert =
      mysql &&
      emailColumn &&
      emailColumn.charset !== 'utf8mb4' &&
      SQL_NAME.test(emailColumn.charset) &&
      SQL_NAME.test(emailColumn.collation);
    const placeholder = convert ? `CONVERT(? USING ${emailColumn.charset}) COLLATE ${emailColumn.collation}` : '?';
    sql += ` WHERE m.?? IN (${where.emails.map(() => placeholder).join(', ')})`;
    bindings.push(mapping.email, ...where.emails);
  }
  const native = knex
    .raw(sql, bindings as Knex.RawBinding[])
    .toSQL()
    .toNative();
  return { sql: native.sql, bindings: [...native.bindings] };
}

const SQL_NAME = /^[A-Za-z0-9_]{1,64}$/;

/** Streams rows for --all / --domain in batches of `batchSize`. */
export async function* streamStatusRows(
  db: Database,
  tables: Tables,
  mapping: AccountMapping,
  where: StatusWhere,
  batchSize = 500,
): AsyncGenerator<StatusDbRow[]> {
  const { sql, bindings } = statusSql(db.knex, db, tables, mapping, where);
  let batch: StatusDbRow[] = [];
  try {
    if (db.dialect === 'sqlite') {
      const client = poolClient<SqliteConn>(db);
      const conn = await client.acquireConnection();
      try {
        const restore = smallPageCache(conn);
        try {
          client.emit('query', { method: 'raw', sql, bindings }); // still visible to knex's query log
          for (const row of sqliteRows(conn, sql, bindings)) {
            batch.push(row);
            if (batch.length >= batchSize) {
              yield batch;
              batch = [];
            }
          }
        } finally {
          restore();
        }
      } finally {
        await client.releaseConnection(conn);
      }
    } else if (db.dialect === 'postgres') {
      yield* postgresCursorBatches(db, sql, bindings, batchSize);
    } else {
      // mysql2's own row stream, drained synchronously batch by batch: knex's .stream() adds a Transform stream
      // and `for await` a promise per row, together most of the client's time at a million rows. Backpressure
      // stays: mysql2 pauses the socket while `batchSize` rows wait unread.
      const client = poolClient<MysqlConn>(db);
      const conn = await client.acquireConnection();
      client.emit('query', { method: 'raw', sql, bindings }); // still visible to knex's query log
      const stream = conn.query({ sql }, bindings).stream({ highWaterMark: batchSize });
      let failure: unknown = null;
      let wake: (() => void) | null = null;
      const notify = () => {
        const resume = wake;
        wake = null;
        resume?.();
      };
      stream
        .on('readable', notify)
        .on('end', notify)
        .on('close', notify)
        .on('error', (err) => {
          failure ??= err;
          notify();
        });
      let finished = false;
      try {
        for (;;) {
          let row: StatusDbRow | null;
          while ((row = stream.read() as StatusDbRow | null) !== null) {
            batch.push(row);
            if (batch.length >= batchSize) {
              yield batch;
              batch = [];
            }
          }
          if (failure) throw failure;
          if (stream.readableEnded) break;
          if (stream.destroyed) throw new Error('the result stream closed before its end');
          await new Promise<void>((resolve) => (wake = resolve));
        }
        finished = true;
      } finally {
        if (!finished) {
          // Abandoned half-way: the rest of the result set is still on the wire, so the connection is not reusable.
          stream.destroy();
          conn.destroy();
        }
        await client.releaseConnection(conn);
      }
    }
  } catch (err) {
    throw mapDbError(err, db.displayUrl);
  }
  if (batch.length) yield batch;
}

/** One query for a batch of canonical addresses; the caller matches rows exactly. */
export async function lookupStatusRows(
  db: Database,
  tables: Tables,
  mapping: AccountMapping,
  emails: string[],
): Promise<StatusDbRow[]> {
  if (emails.length === 0) return [];
  const { sql, bindings } = statusSql(
    db.knex,
    db,
    tables,
    mapping,
    { kind: 'emails', emails },
    await emailColumnCollation(db, mapping),
  );
  try {
    if (db.dialect === 'sqlite') {
      const client = poolClient<SqliteConn>(db);
      const conn = await client.acquireConnection();
      try {
        client.emit('query', { method: 'raw', sql, bindings }); // still visible to knex's query log
        return withSmallPageCache(conn, () => [...sqliteRows(conn, sql, bindings)]);
      } finally {
        await client.releaseConnection(conn);
      }
    }
    if (db.dialect === 'postgres') {
      // The SQL is in pg's native form ($1, $2 …), which knex.raw would not bind: run it on a pool connection.
      const client = poolClient<PgConn>(db);
      const conn = await client.acquireConnection();
      try {
        client.emit('query', { method: 'raw', sql, bindings }); // still visible to knex's query log
        return (await conn.query<StatusDbRow>({ text: sql, values: bindings })).rows;
      } finally {
        await client.releaseConnection(conn);
      }
    }
    const result = await db.knex.raw(sql, bindings as Knex.RawBinding[]);
    return result[0] as StatusDbRow[];
  } catch (err) {
    throw mapDbError(err, db.displayUrl);
  }
}

/**
 * PostgreSQL: a server-side cursor (DECLARE … NO SCROLL CURSOR in a read-only transaction), fetched `batchSize`
 * rows at a time, so that the client holds two batches, never the whole result (pg's plain query buffers every row).
 * Abandoned half-way, the transaction is rolled back, which closes the cursor, and the connection is reused.
 */
async function* postgresCursorBatches(
  db: Database,
  sql: string,
  bindings: unknown[],
  batchSize: number,
): AsyncGenerator<StatusDbRow[]> {
  const client = poolClient<PgConn>(db);
  const conn = await client.acquireConnection();
  let open = false;
  let next: Promise<{ rows: StatusDbRow[] }> | null = null;
  try {
    client.emit('query', { method: 'raw', sql, bindings }); // still visible to knex's query log
    await conn.query('BEGIN READ ONLY');
    open = true;
    await conn.query({ text: `DECLARE mail2fa_status NO SCROLL CURSOR FOR ${sql}`, values: bindings });
    const size = Math.max(1, Math.floor(batchSize));
    const fetch = `FETCH FORWARD ${size} FROM mail2fa_status`;
    // One batch ahead: the server produces the next batch while the consumer formats this one (two batches in
    // memory at most).
    let pending: Promise<{ rows: StatusDbRow[] }> = conn.query<StatusDbRow>(fetch);
    next = pending;
    for (;;) {
      const rows: StatusDbRow[] = (await pending).rows;
      const more = rows.length === size;
      if (more) next = pending = conn.query<StatusDbRow>(fetch);
      else next = null;
      if (rows.length) yield rows;
      if (!more) break;
    }
    open = false;
    await conn.query('COMMIT');
  } finally {
    // Also reached when the consumer stops early (the generator's return) or on an error: end the transaction,
    // which closes the cursor; a connection that cannot is dropped from the pool, never reused mid-transaction.
    await next?.catch(() => {});
    if (open) {
      await conn.query('ROLLBACK').catch((err: unknown) => {
        conn.__knex__disposed = err;
      });
    }
    await client.releaseConnection(conn);
  }
}

/** knex's client: its connection pool (for queries outside knex's own row handling) and its query event. */
interface PoolClient<C> {
  acquireConnection(): Promise<C>;
  releaseConnection(connection: C): Promise<void>;
  emit(event: 'query', query: object): void;
}

function poolClient<C>(db: Database): PoolClient<C> {
  return (db.knex as unknown as { client: PoolClient<C> }).client;
}

interface MysqlConn {
  query(options: { sql: string }, values: unknown[]): { stream(options: { highWaterMark: number }): Readable };
  destroy(): void;
}

interface PgConn {
  query<R>(query: string | { text: string; values: unknown[] }): Promise<{ rows: R[] }>;
  /** knex's mark for a connection its pool must not hand out again. */
  __knex__disposed?: unknown;
}

interface SqliteConn {
  prepare(sql: string): {
    run(...params: unknown[]): unknown;
    get(...params: unknown[]): unknown;
    columns(): { name: string }[];
    raw(on: boolean): unknown;
    iterate(...params: unknown[]): IterableIterator<unknown>;
  };
}

/**
 * Rows of a SELECT on the better-sqlite3 connection, outside knex. better-sqlite3 12 on Node 20 builds each row
 * object with one V8 API call per cell, which costs more than the query itself; rows as arrays (raw mode) made
 * into objects here cost less (about a sixth of the bulk time at a million rows). Same keys, same values.
 */
function* sqliteRows(conn: SqliteConn, sql: string, bindings: unknown[]): Generator<StatusDbRow> {
  const statement = conn.prepare(sql);
  const columns = statement.columns().map((c) => c.name);
  statement.raw(true);
  for (const cells of statement.iterate(...bindings) as Iterable<unknown[]>) {
    const row: Record<string, unknown> = {};
    for (let i = 0; i < columns.length; i++) row[columns[i]!] = cells[i];
    yield row as unknown as StatusDbRow;
  }
}

/**
 * SQLite's page cache for a status read: 2 MB (SQLite's own default, what the `sqlite3` client uses) instead of
 * better-sqlite3's 16 MB. A long address list touches pages all over the tables, and the larger cache filling up
 * is what made peak RSS grow with the list (about 120 MB at 150,000 addresses, 103-107 MB with this); the CPU
 * stays the same, the operating system's cache serving the pages. The previous size is put back afterwards (a
 * long-running process keeps its own).
 */
function smallPageCache(conn: SqliteConn): () => void {
  const previous = (conn.prepare('PRAGMA cache_size').get() as { cache_size: number }).cache_size;
  conn.prepare('PRAGMA cache_size = -2000').run();
  return () => {
    conn.prepare(`PRAGMA cache_size = ${Math.trunc(Number(previous))}`).run();
  };
}

function withSmallPageCache<T>(conn: SqliteConn, read: () => T): T {
  const restore = smallPageCache(conn);
  try {
    return read();
  } finally {
    restore();
  }
}
