/**
 * Opens the database through knex. Drivers are imported only when used (start-up time matters for an admin
 * CLI). knex's own console logging is silenced: failures surface as one typed error, never a stack on stdout.
 */
import { mkdirSync } from 'node:fs';
import { dirname, resolve } from 'node:path';
import type { Knex } from 'knex';
import { configError, Mail2faError, tempFail, unavailable } from '../core/errors.js';
import { redactUrl } from '../config.js';

export type Dialect = 'sqlite' | 'mysql';

export interface DatabaseTarget {
  url: string;
  connectTimeoutMs: number;
}

export interface Database {
  knex: Knex;
  dialect: Dialect;
  /** For messages: the URL without its password. */
  displayUrl: string;
  /** SQLite only: the database file. */
  file?: string;
  close(): Promise<void>;
}

const silentLog = { warn() {}, error() {}, deprecate() {}, debug() {} };

export function sqliteFile(url: string): string {
  return resolve(url.slice('sqlite:'.length));
}

export async function openDatabase(target: DatabaseTarget): Promise<Database> {
  const { default: knexFactory } = await import('knex');
  if (target.url.startsWith('sqlite:')) {
    const file = sqliteFile(target.url);
    try {
      mkdirSync(dirname(file), { recursive: true, mode: 0o700 });
    } catch (err) {
      throw unavailable('db_unavailable', `cannot create the directory for ${file}: ${(err as NodeJS.ErrnoException).code}`);
    }
    const knex = knexFactory({
      client: 'better-sqlite3',
      connection: { filename: file },
      useNullAsDefault: true,
      log: silentLog,
      pool: {
        min: 1,
        max: 1,
        afterCreate(conn: { pragma(s: string): unknown }, done: (err: Error | null, conn: unknown) => void) {
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
    await ping(db);
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
    log: silentLog,
    acquireConnectionTimeout: target.connectTimeoutMs + 1000,
    pool: { min: 0, max: 4 },
  });
  const db: Database = { knex, dialect: 'mysql', displayUrl: redactUrl(target.url), close: () => knex.destroy() };
  await ping(db);
  return db;
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
  const e = err as { code?: string; errno?: number; message?: string; name?: string };
  const code = e.code ?? '';
  const message = (e.message ?? String(err)).split('\n')[0]!;
  // A connection that died inside a transaction (server restart, KILL) surfaces through knex's ROLLBACK/COMMIT as
  // mysql2's code-less "Can't add new command when connection is in closed state"; ER_CONNECTION_KILLED is 1927.
  const closed = /Can't add new command when connection is in closed state/.test(message) || code === 'ER_CONNECTION_KILLED';
  if (closed || ['ECONNREFUSED', 'ETIMEDOUT', 'ENOTFOUND', 'EHOSTUNREACH', 'ECONNRESET', 'EPIPE', 'PROTOCOL_CONNECTION_LOST', 'EAI_AGAIN'].includes(code) || e.name === 'KnexTimeoutError') {
    return unavailable('db_unavailable', `database unavailable at ${where}: ${code || (closed ? 'connection lost' : 'timeout')}`, 'Is the server running and reachable? Check --db / MAIL2FA_DB_URL.');
  }
  if (code === 'ER_ACCESS_DENIED_ERROR' || code === 'ER_ACCESS_DENIED_NO_PASSWORD_ERROR' || code === 'ER_DBACCESS_DENIED_ERROR') {
    return unavailable('db_access_denied', `database refused the login at ${where}: ${message}`, 'Check the user and password in the database URL.');
  }
  if (code === 'ER_BAD_DB_ERROR') {
    return unavailable('db_missing', `database does not exist at ${where}: ${message}`, 'Create it, or fix the database name in the URL.');
  }
  if (code === 'SQLITE_BUSY' || code === 'ER_LOCK_WAIT_TIMEOUT') {
    return tempFail('busy', 'the account is busy (another change is in progress); retry', 'Retry in a moment.');
  }
  if (code === 'SQLITE_CANTOPEN' || code === 'SQLITE_NOTADB' || code === 'SQLITE_READONLY') {
    return unavailable('db_unavailable', `cannot open the SQLite database ${where}: ${code}`);
  }
  if (code === 'ER_NO_SUCH_TABLE' || code === 'ER_BAD_FIELD_ERROR' || /no such (table|column)/.test(message)) {
    return configError('schema_mismatch', `database schema does not match: ${message}`, 'Run `mail2fa migrate`, and check the account mapping (accounts.preset / accounts.columns) with `mail2fa doctor`.');
  }
  return err as Error;
}

/** True for errors worth retrying the whole transaction for (deadlocks). */
export function isRetryable(err: unknown): boolean {
  const code = (err as { code?: string }).code;
  return code === 'ER_LOCK_DEADLOCK' || code === 'ER_LOCK_WAIT_TIMEOUT' || code === 'SQLITE_BUSY';
}
