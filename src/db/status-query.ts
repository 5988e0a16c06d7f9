/**
 * The one query behind `status`: mailbox rows joined with mail2fa's factor and state rows. Bulk reads stream
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
  temp_expires_at?: number | string | null;
  temp_used_at?: number | string | null;
}

export type StatusWhere = { kind: 'all' } | { kind: 'domain'; domain: string } | { kind: 'emails'; emails: string[] };

/** The status SQL (native placeholders) for a selection; exported so that `npm run bench` runs the very same SQL. */
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
  // join is exact (and legal across collations); the lookup still uses the primary keys of our tables.
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
  const join = (alias: string) =>
    mysql ? `${alias}.account = ${key} AND LENGTH(${alias}.account) = LENGTH(${key})` : `${alias}.account = ${key}`;
  const joinBindings = mysql ? [mapping.email, mapping.email] : [mapping.email];
  if (db.dialect === 'postgres' && where.kind === 'all') return postgresAllSql(knex, tables, mapping, key);
  // Temporary access codes are rare (a handful per thousand accounts), yet two correlated subqueries per mailbox
  // row cost MariaDB about twice the rest of the query together and SQLite a third of it. On MariaDB and SQLite the
  // bulk read (--all / --domain) therefore leaves them out and reads them with temporaryCodesSql, once, beside it
  // (streamStatusRows merges them in by exact account); grouped derived tables are no way out on MariaDB: a
  // utf8mb4 VARCHAR(320) key is too long for the key of a materialised derived table, which is then scanned per row.
  const separate = where.kind !== 'emails' && (db.dialect === 'mysql' || db.dialect === 'sqlite');
  // A list of addresses reads the temporary codes of its own batch once, as a grouped derived table joined to the
  // rows (a handful of rows at most, so MariaDB's block-nested-loop join of it costs nothing), in the same
  // statement and hence the same snapshot: no per-row subquery, no second query.
  const listed = where.kind === 'emails';
  // --all leaves out the domain column: one string less to decode per row, and nothing reads it there.
  const withDomain = where.kind !== 'all';
  const bindings: unknown[] = withDomain
    ? [mapping.email, mapping.domain, mapping.active]
    : [mapping.email, mapping.active];
  bindings.push(tables.recoveryCode);
  if (!separate && !listed) bindings.push(tables.challenge, ...joinBindings, tables.challenge, ...joinBindings);
  bindings.push(mapping.table, tables.factor, ...joinBindings, tables.accountState, ...joinBindings);
  if (listed) bindings.push(tables.challenge, ...where.emails, ...joinBindings);
  let sql =
    `SELECT m.?? AS email, ${withDomain ? 'm.?? AS domain, ' : ''}m.?? AS active, f.method AS method, f.phone_masked AS phone_masked, ` +
    `f.enrolled_at AS enrolled_at, f.last_used_at AS last_used_at, s.locked_until AS locked_until, ` +
    // Counted only where a factor exists (a quarter of the rows, typically): codes_left means nothing without one.
    `CASE WHEN f.account IS NULL THEN NULL ELSE (SELECT COUNT(*) FROM ?? rc WHERE rc.account = f.account AND rc.used_at IS NULL) END AS codes_left` +
    (listed
      ? ', tc.expires_at AS temp_expires_at, tc.used_at AS temp_used_at '
      : separate
        ? ' '
        : `, (SELECT MAX(tc.expires_at) FROM ?? tc WHERE ${join('tc')} AND tc.purpose = 'temporary') AS temp_expires_at, ` +
          `(SELECT MAX(tc.used_at) FROM ?? tc WHERE ${join('tc')} AND tc.purpose = 'temporary') AS temp_used_at `) +
    `FROM ?? m LEFT JOIN ?? f ON ${join('f')} LEFT JOIN ?? s ON ${join('s')}` +
    (listed
      ? ` LEFT JOIN (SELECT account, MAX(expires_at) AS expires_at, MAX(used_at) AS used_at FROM ?? ` +
        `WHERE purpose = 'temporary' AND account IN (${where.emails.map(() => '?').join(', ')}) GROUP BY account) tc ` +
        `ON ${join('tc')}`
      : '');
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

/**
 * `--all` on PostgreSQL: the same columns, with the per-row subqueries as joins on grouped tables. PostgreSQL runs
 * a correlated subquery once per row (three million index probes at a million mailboxes, and a cost estimate
 * that also switches its JIT compiler on for seconds); aggregating each table once and hash-joining is several
 * times faster for the whole table. (For a domain or a list of addresses the per-row form reads less.)
 */
function postgresAllSql(
  knex: Knex,
  tables: Tables,
  mapping: AccountMapping,
  key: string,
): { sql: string; bindings: unknown[] } {
  const sql =
    `SELECT m.?? AS email, m.?? AS active, f.method AS method, f.phone_masked AS phone_masked, ` +
    `f.enrolled_at AS enrolled_at, f.last_used_at AS last_used_at, s.locked_until AS locked_until, ` +
    `CASE WHEN f.account IS NULL THEN NULL ELSE COALESCE(rc.n, 0) END AS codes_left, ` +
    `tc.expires_at AS temp_expires_at, tc.used_at AS temp_used_at ` +
    `FROM ?? m LEFT JOIN ?? f ON f.account = ${key} LEFT JOIN ?? s ON s.account = ${key} ` +
    `LEFT JOIN (SELECT account, COUNT(*) AS n FROM ?? WHERE used_at IS NULL GROUP BY account) rc ON rc.account = f.account ` +
    `LEFT JOIN (SELECT account, MAX(expires_at) AS expires_at, MAX(used_at) AS used_at FROM ?? WHERE purpose = 'temporary' GROUP BY account) tc ON tc.account = ${key}`;
  const bindings = [
    mapping.email,
    mapping.active,
    mapping.table,
    tables.factor,
    mapping.email,
    tables.accountState,
    mapping.email,
    tables.recoveryCode,
    tables.challenge,
    mapping.email,
  ];
  const native = knex
    .raw(sql, bindings as Knex.RawBinding[])
    .toSQL()
    .toNative();
  return { sql: native.sql, bindings: [...native.bindings] };
}

const SQL_NAME = /^[A-Za-z0-9_]{1,64}$/;

/**
 * The temporary access codes of every account, one row per account (latest expiry, latest use): what the bulk
 * status SQL leaves out on MariaDB and SQLite (see statusSql). As many rows as accounts holding such a code.
 */
export function temporaryCodesSql(knex: Knex, tables: Tables): { sql: string; bindings: unknown[] } {
  const native = knex
    .raw(
      `SELECT tc.account AS account, MAX(tc.expires_at) AS temp_expires_at, MAX(tc.used_at) AS temp_used_at FROM ?? tc WHERE tc.purpose = 'temporary' GROUP BY tc.account`,
      [tables.challenge],
    )
    .toSQL()
    .toNative();
  return { sql: native.sql, bindings: [...native.bindings] };
}

interface TemporaryCodeRow {
  account: string;
  temp_expires_at: number | string | null;
  temp_used_at: number | string | null;
}

/**
 * The temporary-code columns of a status row, from the map read with temporaryCodesSql. Keyed by the exact
 * account string: the same match as the join it replaces (utf8mb4_bin with equal length on MariaDB, BINARY on
 * SQLite, both byte-exact), so that a mailbox row never borrows another spelling's code.
 */
function withTemporaryCode(row: StatusDbRow, codes: Map<string, TemporaryCodeRow>): StatusDbRow {
  const code = codes.get(row.email);
  row.temp_expires_at = code ? code.temp_expires_at : null;
  row.temp_used_at = code ? code.temp_used_at : null;
  return row;
}

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
        // One read transaction, so that the temporary codes and the rows come from the same snapshot (a recover
        // in between must not show an account with neither its factor nor its new temporary code).
        const own = !conn.inTransaction;
        if (own) conn.prepare('BEGIN').run();
        try {
          const temp = temporaryCodesSql(db.knex, tables);
          client.emit('query', { method: 'raw', sql: temp.sql, bindings: temp.bindings }); // still visible to knex's query log
          const codes = new Map<string, TemporaryCodeRow>();
          for (const code of sqliteRows(
            conn,
            temp.sql,
            temp.bindings,
          ) as Iterable<unknown> as Iterable<TemporaryCodeRow>)
            codes.set(code.account, code);
          const restore = smallPageCache(conn);
          try {
            for (const row of sqliteRows(conn, sql, bindings)) {
              batch.push(withTemporaryCode(row, codes));
              if (batch.length >= batchSize) {
                yield batch;
                batch = [];
              }
            }
          } finally {
            restore();
          }
        } finally {
          if (own && conn.inTransaction) conn.prepare('COMMIT').run();
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
      // The temporary codes first, in the same consistent snapshot as the rows (see the SQLite branch).
      let codes: Map<string, TemporaryCodeRow>;
      try {
        await mysqlQuery(conn, 'START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY', []);
        const temp = temporaryCodesSql(db.knex, tables);
        client.emit('query', { method: 'raw', sql: temp.sql, bindings: temp.bindings }); // still visible to knex's query log
        codes = new Map((await mysqlQuery<TemporaryCodeRow>(conn, temp.sql, temp.bindings)).map((c) => [c.account, c]));
      } catch (err) {
        conn.destroy(); // possibly mid-transaction: never reused
        await client.releaseConnection(conn);
        throw err;
      }
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
            batch.push(withTemporaryCode(row, codes));
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
        await mysqlQuery(conn, 'COMMIT', []);
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
  query(sql: string, values: unknown[], callback: (err: Error | null, rows: unknown) => void): unknown;
  destroy(): void;
}

/** One query on a raw mysql2 connection (its callback API): the rows. */
function mysqlQuery<R>(conn: MysqlConn, sql: string, values: unknown[]): Promise<R[]> {
  return new Promise((resolve, reject) =>
    conn.query(sql, values, (err, rows) => (err ? reject(err) : resolve(rows as R[]))),
  );
}

interface PgConn {
  query<R>(query: string | { text: string; values: unknown[] }): Promise<{ rows: R[] }>;
  /** knex's mark for a connection its pool must not hand out again. */
  __knex__disposed?: unknown;
}

interface SqliteConn {
  readonly inTransaction: boolean;
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
