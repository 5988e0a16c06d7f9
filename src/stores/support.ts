/**
 * What the foreign store modules share: the store's database (opened once, closed by the core), byte-exact
 * matching on columns with case-insensitive collations, a compare-and-set transaction loop, base32 for the
 * plaintext secrets foreign stores keep, and the `doctor` probe for a read-only database user.
 */
import type { Knex } from 'knex';
import * as z from 'zod';
import type { Database, Dialect } from '../db/connection.js';
import { isRetryable, mapDbError } from '../db/connection.js';
import { configError, dataError, Mail2faError, tempFail } from '../errors.js';
import { MAX_SECRET_BYTES, MIN_SECRET_BYTES } from '../totp/totp.js';
import type { StoreAccountStatus, StoreCheck, StoreConfigBase, StoreDeps } from './types.js';

/** Table names in store options: plain SQL identifiers only. */
export const sqlIdentifier = z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_]{0,63}$/, 'must be a plain SQL identifier (letters, digits, _)');

/** The store's database: its own `db.url`, or the mail database. Opened on first use; the core closes it. */
export function lazyStoreDatabase(config: StoreConfigBase, deps: StoreDeps): () => Promise<Database> {
  let pending: Promise<Database> | undefined;
  return () => {
    pending ??= config.db ? deps.openDatabase(config.db.url) : deps.mailDatabase();
    // A failed open is not cached: the next call tries again.
    pending.catch(() => {
      pending = undefined;
    });
    return pending;
  };
}

/** `table` with the store's optional prefix. */
export function prefixed(config: StoreConfigBase, table: string): string {
  return `${config.tablePrefix ?? ''}${table}`;
}

/**
 * SQL comparing a column byte for byte with a Buffer parameter, whatever the column's collation: mailcow's and
 * SOGo's columns are case-insensitive and ignore trailing spaces, so `=` alone would also hit
 * 'User@Example.com' and 'user@example.com ' for 'user@example.com'.
 */
export function exactSql(dialect: Dialect): string {
  if (dialect === 'postgres') return "convert_to(CAST(?? AS text), 'UTF8') = ?";
  return dialect === 'mysql' ? 'CAST(CONVERT(?? USING utf8mb4) AS BINARY) = ?' : 'CAST(?? AS BLOB) = ?';
}

export function whereExact<Q extends Knex.QueryBuilder>(query: Q, dialect: Dialect, column: string, value: string): Q {
  return query.whereRaw(exactSql(dialect), [column, Buffer.from(value, 'utf8')]) as Q;
}

/** A row changed between read and write (another writer, e.g. the webmail itself): the attempt is retried. */
export class StoreConflict extends Error {
  constructor(what: string) {
    super(`changed while being written: ${what}`);
    this.name = 'StoreConflict';
  }
}

const ATTEMPTS = 4;

/**
 * Runs `work` in one transaction on the store's database; a `StoreConflict` or a deadlock rolls back and retries
 * (retried a few times, then exit 75). Typed errors (refusals) pass through untouched.
 *
 * `shared` (StoreWriteContext.sharedTransaction): the store lives in mail2fa's database and the core runs it inside
 * its own account transaction. `work` then runs in a savepoint of that transaction, so a conflict rolls back only
 * this store's statements before the retry, and the change commits or rolls back with mail2fa's audit row. A
 * deadlock there has already rolled back the whole transaction on MySQL: it goes up untouched for the core to retry.
 */
export async function storeTransaction<T>(
  db: Database,
  storeName: string,
  shared: Knex.Transaction | undefined,
  work: (trx: Knex.Transaction) => Promise<T>,
): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await (shared ? shared.transaction(work) : db.knex.transaction(work));
    } catch (caught) {
      const err = driverError(caught);
      // SQLite: a write after a read in a deferred transaction, when another connection wrote meanwhile, fails
      // with SQLITE_BUSY_SNAPSHOT at once (busy_timeout does not wait for it): the row changed, so re-read.
      const busy = isRetryable(err) || (err as { code?: string }).code === 'SQLITE_BUSY_SNAPSHOT';
      if (shared && busy) throw err;
      const retry = err instanceof StoreConflict || busy;
      if (retry && attempt < ATTEMPTS) {
        await new Promise((r) => setTimeout(r, 15 * attempt + Math.floor(Math.random() * 25)));
        continue;
      }
      if (retry) {
        throw tempFail(
          'store_busy',
          `store ${storeName}: the account's data kept changing while mail2fa wrote it (${attempt} attempts); nothing was changed`,
          'Retry in a moment.',
        );
      }
      if (err instanceof Mail2faError) throw err;
      throw readOnly(err, storeName) ?? mapDbError(err, db.displayUrl);
    }
  }
}

/** A write the database user may not make: a configuration problem of the store, named as such. */
function readOnly(err: unknown, storeName: string): Mail2faError | null {
  const code = (err as { code?: string }).code ?? '';
  if (!['ER_TABLEACCESS_DENIED_ERROR', 'ER_COLUMNACCESS_DENIED_ERROR', 'SQLITE_READONLY'].includes(code)) return null;
  return configError(
    'store_read_only',
    `store ${storeName}: the database user may not change the store (${code}); nothing was changed`,
    "Grant the store's database user write access to its table, or remove the store from this command's configuration.",
  );
}

/** Runs a read, mapping driver errors (unreachable, missing table) to typed errors. */
export async function storeRead<T>(db: Database, work: () => Promise<T>): Promise<T> {
  try {
    return await work();
  } catch (err) {
    throw mapDbError(driverError(err), db.displayUrl);
  }
}

/**
 * The driver's error without the SQL knex puts in front of its message (`<sql with bound values> - <message>`):
 * a bound value can be a plaintext secret (mailcow's `tfa.secret`) and must never reach an error message.
 */
export function driverError(err: unknown): unknown {
  if (!(err instanceof Error) || err instanceof Mail2faError || err instanceof StoreConflict) return err;
  const cause = err as Error & { code?: string; errno?: number; sqlMessage?: string };
  const cut = cause.message.lastIndexOf(' - ');
  const clean = new Error(cause.sqlMessage ?? (cut >= 0 ? cause.message.slice(cut + 3) : cause.message)) as Error & {
    code?: string;
    errno?: number;
  };
  clean.name = cause.name;
  if (cause.code !== undefined) clean.code = cause.code;
  if (cause.errno !== undefined) clean.errno = cause.errno;
  return clean;
}

/** A value in a foreign store that does not parse exactly: refused, never repaired (exit 65). */
export function unparsable(storeName: string, ref: string, problem: string) {
  return dataError(
    'store_value_unparsable',
    `store ${storeName}: ${ref}: ${problem}; nothing was changed`,
    'Fix or remove the value with the application that owns it; mail2fa does not repair foreign data.',
  );
}

// ---------------------------------------------------------------------------------------------------------------
// Base32 (RFC 4648) for the plaintext secrets of foreign stores.

const ALPHABET = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

/** Decodes a base32 secret strictly (either case, optional `=` padding, nothing else; 10-64 bytes as foreign stores hold them). Never echoes the secret. */
export function decodeBase32Secret(raw: string): { key: Buffer } | { problem: string } {
  if (raw.length > 1024) return { problem: 'not a base32 secret (far too long)' };
  const match = /^([A-Za-z2-7]*)(=*)$/.exec(raw);
  if (!match) return { problem: 'not a base32 secret (characters outside A-Z, 2-7)' };
  const body = match[1]!.toUpperCase();
  const padding = match[2]!;
  if (padding && (raw.length % 8 !== 0 || padding.length > 6))
    return { problem: 'not a base32 secret (wrong "=" padding)' };
  if ([1, 3, 6].includes(body.length % 8)) return { problem: 'not a base32 secret (impossible length)' };
  const out: number[] = [];
  let bits = 0;
  let value = 0;
  for (const ch of body) {
    value = (value << 5) | ALPHABET.indexOf(ch);
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out.push((value >>> bits) & 0xff);
    }
  }
  if (out.length < MIN_SECRET_BYTES || out.length > MAX_SECRET_BYTES) {
    return { problem: `secret is ${out.length} bytes; accepted are ${MIN_SECRET_BYTES}-${MAX_SECRET_BYTES}` };
  }
  return { key: Buffer.from(out) };
}

// ---------------------------------------------------------------------------------------------------------------
// doctor

/**
 * Whether the database user may run `statement` (a write matching no row, e.g. `DELETE … WHERE 1 = 0`): run in a
 * transaction that is always rolled back. MariaDB checks privileges before matching rows, so a read-only user
 * gets ER_TABLEACCESS_DENIED_ERROR / ER_COLUMNACCESS_DENIED_ERROR here.
 */
export async function mayWrite(
  db: Database,
  statement: (trx: Knex.Transaction) => Promise<unknown>,
): Promise<{ ok: true } | { ok: false; reason: string }> {
  const rollback = new Error('rollback');
  try {
    await db.knex.transaction(async (trx) => {
      await statement(trx);
      throw rollback;
    });
    return { ok: true };
  } catch (err) {
    if (err === rollback) return { ok: true };
    const cause = err as { code?: string; message?: string };
    return { ok: false, reason: `${cause.code ?? 'error'}: ${(cause.message ?? String(err)).split('\n')[0]}` };
  }
}

/**
 * The first `doctor` checks of a store: its database opens and `probe` (a `SELECT … LIMIT 0` of the columns the
 * store uses) runs. Returns the database and the checks so far; no database when a check failed.
 */
export async function doctorSchema(
  storeName: string,
  openDb: () => Promise<Database>,
  table: string,
  probe: (db: Database) => Promise<unknown>,
  hint: string,
): Promise<{ db?: Database; checks: StoreCheck[] }> {
  const name = `store ${storeName}: `;
  let db: Database;
  try {
    db = await openDb();
  } catch (err) {
    return { checks: [{ name: `${name}database`, status: 'fail', detail: (err as Error).message, exitCode: 69 }] };
  }
  try {
    await probe(db);
  } catch (err) {
    return {
      checks: [
        {
          name: `${name}schema`,
          status: 'fail',
          detail: `${table}: ${(err as Error).message.split('\n')[0]}`,
          hint,
          exitCode: 78,
        },
      ],
    };
  }
  return { db, checks: [{ name: `${name}schema`, status: 'ok', detail: `${table} has the expected columns` }] };
}

/**
 * `doctor`: the store's database, or the one failing check that says why it cannot be opened (exit 69 when the
 * server is unreachable, else 78).
 */
export async function doctorOpen(
  label: string,
  openDb: () => Promise<Database>,
): Promise<{ db: Database } | { checks: StoreCheck[] }> {
  try {
    return { db: await openDb() };
  } catch (err) {
    const error = err as Mail2faError;
    return {
      checks: [
        {
          name: label,
          status: 'fail',
          detail: error.message ?? String(err),
          hint: error.hint,
          exitCode: error.exitCode === 69 ? 69 : 78,
        },
      ],
    };
  }
}

/** `doctor`: whether the store's database user may write (`statement` matches no row and is rolled back). */
export async function doctorWriteAccess(
  storeName: string,
  db: Database,
  table: string,
  uses: string,
  statement: (trx: Knex.Transaction) => Promise<unknown>,
): Promise<StoreCheck> {
  const write = await mayWrite(db, statement);
  const name = `store ${storeName}: write access`;
  return write.ok
    ? { name, status: 'ok', detail: `the database user may change ${table} (${uses})` }
    : {
        name,
        status: 'warn',
        detail: `read-only for ${table} (${write.reason}): status and verify work; ${uses} fail (exit 78)`,
        hint: 'Grant the database user write access to the table if mail2fa should change it.',
      };
}

/**
 * The statuses of a store that reads its rows by address: the distinct addresses in chunks of `size`, every chunk
 * inside one store read (driver errors mapped); `readChunk` adds the chunk's statuses to `out`. No address, no
 * database opened.
 */
export async function statusInChunks(
  database: () => Promise<Database>,
  emails: readonly string[],
  size: number,
  readChunk: (db: Database, chunk: string[], out: Map<string, StoreAccountStatus>) => Promise<void>,
): Promise<Map<string, StoreAccountStatus>> {
  const out = new Map<string, StoreAccountStatus>();
  if (emails.length === 0) return out;
  const db = await database();
  return storeRead(db, async () => {
    for (const chunk of chunked([...new Set(emails)], size)) await readChunk(db, chunk, out);
    return out;
  });
}

/** Splits `items` into chunks of at most `size` (one query per chunk, never one per account). */
export function chunked<T>(items: readonly T[], size: number): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}
