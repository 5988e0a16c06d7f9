/**
 * Real lock conflicts, produced on the real servers, through mail2fa's error mapping (src/db/connection.ts):
 * a deadlock (MariaDB 1213, PostgreSQL 40P01) is retried by inTransaction and, once retries are exhausted, is
 * "busy, retry" (75) — never 69 or 70; a lock-wait timeout (MariaDB 1205, PostgreSQL 55P03) is 75 too; and on
 * PostgreSQL a missing database, a refused login and a refused connection are 69, mail2fa's missing tables 78;
 * SQLite's busy is 75.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Mail2faError } from '../../src/errors.js';
import { isRetryable, mapDbError, openDatabase, type Database } from '../../src/db/connection.js';
import { inTransaction } from '../../src/db/tx.js';
import { tableNames } from '../../src/db/schema.js';
import { createTestDb, describeEachDb, type TestDb } from '../helpers/db.js';

const tables = tableNames('mail2fa_');

describeEachDb('lock conflicts and connection failures through the error mapping', (kind) => {
  let tdb: TestDb;
  let a: Database;
  let b: Database;
  beforeAll(async () => {
    if (kind === 'sqlite') return;
    tdb = await createTestDb(kind);
    a = await openDatabase({ url: tdb.url, connectTimeoutMs: 5000 });
    b = await openDatabase({ url: tdb.url, connectTimeoutMs: 5000 });
    await a.knex.schema.createTable('locks', (t) => {
      t.integer('id').primary();
      t.integer('n').notNullable();
    });
    await a.knex('locks').insert([
      { id: 1, n: 0 },
      { id: 2, n: 0 },
    ]);
  });
  afterAll(async () => {
    await a?.close();
    await b?.close();
    await tdb?.drop();
  });

  /** Two transactions locking rows 1 and 2 in opposite orders: the server kills one of them as the deadlock victim. */
  async function deadlock(): Promise<unknown> {
    let release!: () => void;
    const bothHoldOne = new Promise<void>((r) => (release = r));
    let holding = 0;
    const hold = () => {
      if (++holding === 2) release();
      return bothHoldOne;
    };
    const tx = (db: Database, first: number, second: number) =>
      db.knex.transaction(async (trx) => {
        await trx('locks').where({ id: first }).update({ n: first });
        await hold();
        await trx('locks').where({ id: second }).update({ n: second });
      });
    const results = await Promise.allSettled([tx(a, 1, 2), tx(b, 2, 1)]);
    const failures = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
    expect(failures).toHaveLength(1);
    return failures[0]!.reason;
  }

  it.skipIf(kind === 'sqlite')('a real deadlock is retryable and maps to 75 busy', async () => {
    const err = await deadlock();
    expect((err as { code?: string }).code).toBe(kind === 'postgres' ? '40P01' : 'ER_LOCK_DEADLOCK');
    expect(isRetryable(err)).toBe(true);
    expect(mapDbError(err, 'test')).toMatchObject({ code: 'busy', exitCode: 75 });
  });

  it.skipIf(kind === 'sqlite')(
    'inTransaction: a deadlock in every attempt is retried, then ends as 75 busy (never 69/70)',
    async () => {
      const real = await deadlock();
      let attempts = 0;
      const err = await inTransaction(a, tables, async (trx) => {
        attempts++;
        await trx('locks').where({ id: 1 }).update({ n: attempts });
        throw real; // the server's own error object, as the driver raised it
      }).then(
        () => null,
        (e: unknown) => e,
      );
      expect(attempts).toBe(4);
      expect(err).toBeInstanceOf(Mail2faError);
      expect(err).toMatchObject({ code: 'busy', exitCode: 75 });
      // Every attempt was rolled back.
      expect(Number(((await a.knex('locks').where({ id: 1 }).first('n')) as { n: number }).n)).not.toBe(4);
    },
  );

  it.skipIf(kind === 'sqlite')('a lock-wait timeout maps to 75 busy', async () => {
    const err = await a.knex
      .transaction(async (holder) => {
        await holder('locks').where({ id: 1 }).update({ n: 7 });
        await b.knex.transaction(async (waiter) => {
          await waiter.raw(
            kind === 'postgres' ? 'SET LOCAL lock_timeout = 200' : 'SET SESSION innodb_lock_wait_timeout = 1',
          );
          await waiter('locks').where({ id: 1 }).update({ n: 8 });
        });
      })
      .then(
        () => null,
        (e: unknown) => e,
      );
    expect((err as { code?: string }).code).toBe(kind === 'postgres' ? '55P03' : 'ER_LOCK_WAIT_TIMEOUT');
    expect(mapDbError(err, 'test')).toMatchObject({ code: 'busy', exitCode: 75 });
  });

  it.runIf(kind === 'sqlite')(
    'SQLite: a writer that finds the database locked (SQLITE_BUSY) maps to 75 busy and is retryable',
    async () => {
      const { default: Sqlite } = await import('better-sqlite3');
      const dir = await createTestDb('sqlite');
      const file = dir.url.slice('sqlite:'.length);
      const holder = new Sqlite(file);
      const other = new Sqlite(file, { timeout: 0 });
      try {
        holder.exec('CREATE TABLE t (id INTEGER PRIMARY KEY)');
        holder.exec('BEGIN IMMEDIATE');
        let err: unknown = null;
        try {
          other.exec('BEGIN IMMEDIATE');
        } catch (e) {
          err = e;
        }
        expect((err as { code?: string }).code).toBe('SQLITE_BUSY');
        expect(isRetryable(err)).toBe(true);
        expect(mapDbError(err, 'test')).toMatchObject({ code: 'busy', exitCode: 75 });
      } finally {
        holder.close();
        other.close();
        await dir.drop();
      }
    },
  );

  it.runIf(kind === 'postgres')(
    'PostgreSQL: missing database and refused connection are 69; missing tables 78',
    async () => {
      const url = new URL(tdb.url);
      const open = (u: string) =>
        openDatabase({ url: u, connectTimeoutMs: 3000 }).then(
          () => null,
          (e: unknown) => e,
        );
      url.pathname = '/mail2fa_no_such_database';
      expect(await open(url.toString())).toMatchObject({ code: 'db_missing', exitCode: 69 });
      const role = new URL(tdb.url);
      role.username = 'mail2fa_no_such_role';
      expect(await open(role.toString())).toMatchObject({ code: 'db_access_denied', exitCode: 69 });
      const closed = new URL(tdb.url);
      closed.port = '1';
      expect(await open(closed.toString())).toMatchObject({ code: 'db_unavailable', exitCode: 69 });
      const missing = await a
        .knex('mail2fa_factor')
        .select()
        .then(
          () => null,
          (e: unknown) => e,
        );
      expect(mapDbError(missing, 'test')).toMatchObject({ code: 'schema_mismatch', exitCode: 78 });
    },
  );
});
