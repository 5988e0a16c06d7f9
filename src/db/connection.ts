/**
 * Opens the database through knex. Drivers are imported only when used (start-up time matters for an admin
 * CLI). knex's own console logging is silenced: failures surface as one typed error, never a stack on stdout.
 */
import { existsSync, mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, resolve } from 'node:path';
import type { Knex } from 'knex';
import { configError, Mail2faError, tempFail, unavailable } from '../errors.js';
import { redactUrl } from '../config.js';

export type Dialect = 'sqlite' | 'mysql' | 'postgres';

export interface DatabaseTarget {
  url: string;
  connectTimeoutMs: number;
  /** Galera: refuse a node outside the primary component (default); `doctor` turns it off to report on it. */
  refuseNotReadyNode?: boolean;
}

export interface Database {
  knex: Knex;
  dialect: Dialect;
  /** For messages: the URL without its password. */
  displayUrl: string;
  /** SQLite only: the database file. */
  file?: string;
  /** MySQL/MariaDB: the server is a Galera node (wsrep on), detected on the first connection. */
  galera?: boolean;
  close(): Promise<void>;
}

const silentLog = { warn() {}, error() {}, deprecate() {}, debug() {} };
/**
 * Every knex instance: no console logging, and a failed query's message keeps its "?" placeholders, so bound values
 * (a sealed secret, a code hash, an address) never end up in an error message, a log line or --verbose output
 * (no secrets in output or logs).
 */
const QUIET = { log: silentLog, compileSqlOnError: false } as const;

/**
 * The path of better-sqlite3's compiled addon where npm builds it, or undefined (better-sqlite3 then finds it itself).
 * Why: without a path, better-sqlite3 locates its addon with the `bindings` package, which reads a stack trace and
 * probes a dozen candidate paths: ≈ 4 ms of every SQLite command's start-up (docs/benchmarks.md).
 */
function sqliteAddon(): string | undefined {
  try {
    const addon = createRequire(import.meta.url).resolve('better-sqlite3/build/Release/better_sqlite3.node');
    return existsSync(addon) ? addon : undefined;
  } catch {
    return undefined;
  }
}

export function sqliteFile(url: string): string {
  return resolve(url.slice('sqlite:'.length));
}

/**
 * Opens the database and, unless `ping` is false, checks it answers (`select 1`), so that an unreachable server is
 * reported at once as such. A caller whose next statement is a query of its own (the schema check) passes false:
 * that query's failure is mapped the same way, and a single-account command saves the round trip.
 */
export async function openDatabase(target: DatabaseTarget, { ping: probe = true } = {}): Promise<Database> {
  const { default: knexFactory } = await import('knex');
  if (target.url.startsWith('sqlite:')) {
    const file = sqliteFile(target.url);
    try {
      mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    } catch (err) {
      throw unavailable(
        'db_unavailable',
        `cannot create the directory for ${file}: ${(err as NodeJS.ErrnoException).code}`,
      );
    }
    const knex = knexFactory({
      client: 'better-sqlite3',
      connection: { filename: file, options: { nativeBinding: sqliteAddon() } },
      useNullAsDefault: true,
      ...QUIET,
      pool: {
        min: 1,
        max: 1,
        afterCreate(conn: { pragma(text: string): unknown }, done: (err: Error | null, conn: unknown) => void) {
          try {
            // WAL lets readers run beside a writer in another process; busy_timeout makes writers wait
            // (up to 5 s) instead of failing at once.
            conn.pragma('busy_timeout = 5000');
            conn.pragma('journal_mode = WAL');
            conn.pragma('synchronous = NORMAL');
            done(null, conn);
          } catch (err) {
            done(err as Error, conn);
          }
        },
      },
    });
    const db: Database = { knex, dialect: 'sqlite', displayUrl: target.url, file, close: () => knex.destroy() };
    if (probe) await ping(db);
    return db;
  }

  if (/^postgres(ql)?:\/\//.test(target.url)) {
    const db: Database = {
      knex: knexFactory(postgresConfig(target)),
      dialect: 'postgres',
      displayUrl: redactUrl(target.url),
      close: () => db.knex.destroy(),
    };
    if (probe) await ping(db);
    return db;
  }

  const url = new URL(target.url);
  const knex = knexFactory({
    client: 'mysql2',
    connection: {
      host: url.hostname || '127.0.0.1',
      port: url.port ? Number(url.port) : 3306,
      user: decodeURIComponent(url.username || 'root'),
      password: decodeURIComponent(url.password),
      database: decodeURIComponent(url.pathname.slice(1)),
      connectTimeout: target.connectTimeoutMs,
      charset: 'utf8mb4',
      supportBigNumbers: true,
      bigNumberStrings: false,
      timezone: 'Z',
      ...(url.searchParams.get('socket') ? { socketPath: url.searchParams.get('socket')! } : {}),
    },
    ...QUIET,
    acquireConnectionTimeout: target.connectTimeoutMs + 1000,
    pool: {
      min: 0,
      max: 4,
      afterCreate: galeraSession((galera) => (db.galera = galera), target.refuseNotReadyNode !== false),
    },
  });
  const db: Database = { knex, dialect: 'mysql', displayUrl: redactUrl(target.url), close: () => knex.destroy() };
  if (probe) await ping(db);
  return db;
}

/** One query per new connection: is this a Galera node, and is it ready (in the primary component)? */
const GALERA_PROBE =
  "SELECT @@wsrep_on AS wsrep_on, (SELECT VARIABLE_VALUE FROM information_schema.GLOBAL_STATUS WHERE VARIABLE_NAME = 'WSREP_READY') AS wsrep_ready";

interface RawMysqlConnection {
  query(sql: string, cb: (err: Error | null, rows?: unknown) => void): void;
}

/**
 * On a Galera node every mail2fa session reads causally (wsrep_sync_wait bit 1: SELECT, SHOW and BEGIN wait
 * until the node has applied every write the cluster committed before): a decision made on node 2 — is the
 * code used, is the account locked, when were sessions revoked — sees a change committed on node 1 a moment
 * ago. A node outside the primary component is refused here (1047, exit 69) instead of having each read time
 * out. Servers without wsrep (plain MariaDB, MySQL) are left as they are.
 */
function galeraSession(detected: (galera: boolean) => void, refuseNotReady: boolean) {
  return (conn: RawMysqlConnection, done: (err: Error | null, conn: unknown) => void) => {
    conn.query(GALERA_PROBE, (err, rows) => {
      const row =
        !err && Array.isArray(rows) ? (rows[0] as { wsrep_on: unknown; wsrep_ready: unknown } | undefined) : undefined;
      if (!row || Number(row.wsrep_on) !== 1) {
        detected(false);
        return done(null, conn);
      }
      detected(true);
      if (String(row.wsrep_ready).toUpperCase() !== 'ON') {
        if (!refuseNotReady) return done(null, conn);
        // The pool does not close a connection whose set-up failed: close it here, or it keeps the process alive.
        (conn as RawMysqlConnection & { destroy?: () => void }).destroy?.();
        return done(
          Object.assign(new Error('WSREP has not yet prepared node for application use'), {
            code: 'ER_UNKNOWN_COM_ERROR',
            errno: 1047,
          }),
          conn,
        );
      }
      conn.query('SET SESSION wsrep_sync_wait = @@global.wsrep_sync_wait | 1', (setErr) => done(setErr, conn));
    });
  };
}

/**
 * PostgreSQL through knex's `pg` client. BIGINT (int8) columns — mail2fa's millisecond times, ids and COUNT(*) —
 * arrive as numbers like on the other databases (as strings only beyond 2^53, which no such value reaches).
 * `lock_timeout` bounds a wait for a row lock (PostgreSQL waits forever by default; InnoDB 50 s): past it the
 * command fails as busy (75) instead of hanging. `?host=/run/postgresql` connects through a Unix socket.
 */
function postgresConfig(target: DatabaseTarget): Knex.Config {
  const url = new URL(target.url);
  const socket = url.searchParams.get('host');
  return {
    client: 'pg',
    connection: {
      host: socket || url.hostname || '127.0.0.1',
      port: url.port ? Number(url.port) : 5432,
      user: decodeURIComponent(url.username || 'postgres'),
      password: decodeURIComponent(url.password),
      database: decodeURIComponent(url.pathname.slice(1)),
      connectionTimeoutMillis: target.connectTimeoutMs,
      lock_timeout: 30_000,
      application_name: 'mail2fa',
      types: { getTypeParser: pgTypeParser },
    } as Knex.PgConnectionConfig,
    ...QUIET,
    acquireConnectionTimeout: target.connectTimeoutMs + 1000,
    pool: { min: 0, max: 4 },
  };
}

const PG_INT8 = 20;
let pgTypes: typeof import('pg').types | undefined;

/** pg's own parsers, except int8 → number when exact. Loaded with the driver (knex imports `pg` on first use). */
function pgTypeParser(oid: number, format?: string): (value: string) => unknown {
  if (oid === PG_INT8 && format !== 'binary') {
    return (value: string) => {
      const number = Number(value);
      return Number.isSafeInteger(number) ? number : value;
    };
  }
  pgTypes ??= requirePg().types;
  return pgTypes.getTypeParser(oid, (format ?? 'text') as 'text') as (value: string) => unknown;
}

function requirePg(): typeof import('pg') {
  return createRequire(import.meta.url)('pg') as typeof import('pg');
}

async function ping(db: Database): Promise<void> {
  try {
    await db.knex.raw('select 1');
  } catch (err) {
    await db.close().catch(() => {});
    throw mapDbError(err, db.displayUrl);
  }
}

/** Turns a driver error into a typed error: connection problems → 69, busy → 75, everything else kept. */
export function mapDbError(err: unknown, where: string): Error {
  if (err instanceof Mail2faError) return err;
  const driverError = err as { code?: string; errno?: number; message?: string; name?: string };
  const code = driverError.code ?? '';
  const message = (driverError.message ?? String(err)).split('\n')[0]!;
  // A connection that died inside a transaction (server restart, KILL) surfaces through knex's ROLLBACK/COMMIT as
  // mysql2's code-less "Can't add new command when connection is in closed state"; ER_CONNECTION_KILLED is 1927.
  // pg: a dropped or timed-out connection is a code-less "Connection terminated …"; SQLSTATE class 08 is a
  // connection exception, 57P01–57P03 a server shutting down, restarting or starting up. knex puts the statement
  // in front of a failed query's message ("ROLLBACK - Connection terminated unexpectedly"): match after it too.
  const closed =
    /Can't add new command when connection is in closed state|(?:^| - )Connection terminated|is not queryable|(?:^| - )timeout expired/.test(
      message,
    ) ||
    code === 'ER_CONNECTION_KILLED' ||
    /^08...$/.test(code) ||
    ['57P01', '57P02', '57P03'].includes(code);
  if (
    closed ||
    [
      'ECONNREFUSED',
      'ETIMEDOUT',
      'ENOTFOUND',
      'EHOSTUNREACH',
      'ECONNRESET',
      'EPIPE',
      'PROTOCOL_CONNECTION_LOST',
      'EAI_AGAIN',
    ].includes(code) ||
    driverError.name === 'KnexTimeoutError'
  ) {
    return unavailable(
      'db_unavailable',
      `database unavailable at ${where}: ${code || (closed ? 'connection lost' : 'timeout')}`,
      'Is the server running and reachable? Check --db / MAIL2FA_DB_URL.',
    );
  }
  if (code === 'ER_UNKNOWN_COM_ERROR' || driverError.errno === 1047) {
    // Galera: the node is not in the cluster's primary component (it lost its peers, or is still joining).
    return unavailable(
      'db_not_ready',
      `the database node at ${where} is not ready: it is not part of the Galera cluster's primary component (${message})`,
      `Point --db / MAIL2FA_DB_URL at a node of the primary component, or wait until ${nodeOf(where)} rejoins; \`mail2fa doctor\` shows wsrep_ready and wsrep_cluster_status.`,
    );
  }
  if (code === '53300') {
    return unavailable(
      'db_unavailable',
      `database unavailable at ${where}: too many connections`,
      'Retry later, or raise max_connections.',
    );
  }
  // PostgreSQL 28P01 wrong password, 28000 no pg_hba.conf entry / unknown role.
  if (
    code === 'ER_ACCESS_DENIED_ERROR' ||
    code === 'ER_ACCESS_DENIED_NO_PASSWORD_ERROR' ||
    code === 'ER_DBACCESS_DENIED_ERROR' ||
    code === '28P01' ||
    code === '28000'
  ) {
    return unavailable(
      'db_access_denied',
      `database refused the login at ${where}: ${message}`,
      'Check the user and password in the database URL.',
    );
  }
  if (code === 'ER_BAD_DB_ERROR' || code === '3D000') {
    return unavailable(
      'db_missing',
      `database does not exist at ${where}: ${message}`,
      'Create it, or fix the database name in the URL.',
    );
  }
  if (isBusy(err)) {
    return tempFail('busy', 'the account is busy (another change is in progress); retry', 'Retry in a moment.');
  }
  if (code === 'SQLITE_CANTOPEN' || code === 'SQLITE_NOTADB' || code === 'SQLITE_READONLY') {
    return unavailable('db_unavailable', `cannot open the SQLite database ${where}: ${code}`);
  }
  // PostgreSQL 42P01 undefined table, 42703 undefined column.
  if (
    code === 'ER_NO_SUCH_TABLE' ||
    code === 'ER_BAD_FIELD_ERROR' ||
    code === '42P01' ||
    code === '42703' ||
    /no such (table|column)/.test(message)
  ) {
    return configError(
      'schema_mismatch',
      `database schema does not match: ${message}`,
      'Run `mail2fa migrate`, and check the account mapping (accounts.preset / accounts.columns) with `mail2fa doctor`.',
    );
  }
  return err as Error;
}

/** host:port of a database URL, for messages. */
function nodeOf(where: string): string {
  try {
    const url = new URL(where);
    return url.host ? `the node ${url.host}` : 'the node';
  } catch {
    return 'the node';
  }
}

/**
 * Lock conflicts that a later attempt can win: deadlocks (MySQL 1213, PostgreSQL 40P01), serialization failures
 * (PostgreSQL 40001; a Galera certification conflict also surfaces as 1213), lock-wait timeouts (MySQL 1205,
 * PostgreSQL 55P03) and SQLite's busy. Once retries are exhausted they are "busy, retry" (75), never a bug (70) or
 * an outage (69).
 */
export function isBusy(err: unknown): boolean {
  const driverError = err as { code?: string; errno?: number } | null;
  const code = driverError?.code;
  return (
    code === 'ER_LOCK_DEADLOCK' ||
    code === 'ER_LOCK_WAIT_TIMEOUT' ||
    driverError?.errno === 1213 ||
    driverError?.errno === 1205 ||
    code === '40001' ||
    code === '40P01' ||
    code === '55P03' ||
    code === 'SQLITE_BUSY' ||
    code === 'SQLITE_BUSY_SNAPSHOT' ||
    code === 'SQLITE_LOCKED'
  );
}

/** True for errors worth retrying the whole transaction for (deadlocks, serialization failures, busy). */
export function isRetryable(err: unknown): boolean {
  const code = (err as { code?: string } | null)?.code;
  return isBusy(err) && code !== '55P03';
}

/** The driver's code of an error the database server (or SQLite) raised, e.g. SQLITE_READONLY, ER_…, or a SQLSTATE. */
export function databaseErrorCode(err: unknown): string | null {
  const driverError = err as { code?: unknown; severity?: unknown } | null;
  const code = driverError?.code;
  if (typeof code !== 'string') return null;
  if (/^(SQLITE_|ER_)/.test(code)) return code;
  // pg's DatabaseError: a five-character SQLSTATE with the server's severity.
  if (/^[0-9A-Z]{5}$/.test(code) && typeof driverError?.severity === 'string') return code;
  return null;
}
