/**
 * Test databases: a fresh SQLite file, and a fresh database per suite on the machine's MariaDB and PostgreSQL
 * servers. Without a server, its suites are skipped with a visible notice, unless MAIL2FA_REQUIRE_MARIADB=1 /
 * MAIL2FA_REQUIRE_POSTGRES=1 (CI), where its absence fails the run.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { describe } from 'vitest';

export type DbKind = 'sqlite' | 'mariadb' | 'postgres';

export const MARIADB_ADMIN_URL = process.env.MAIL2FA_TEST_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/test';
export const POSTGRES_ADMIN_URL = process.env.MAIL2FA_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';
const REQUIRE_MARIADB = process.env.MAIL2FA_REQUIRE_MARIADB === '1';
const REQUIRE_POSTGRES = process.env.MAIL2FA_REQUIRE_POSTGRES === '1';

async function adminConnection() {
  const mysql = await import('mysql2/promise');
  const u = new URL(MARIADB_ADMIN_URL);
  return mysql.createConnection({
    host: u.hostname,
    port: Number(u.port || 3306),
    user: decodeURIComponent(u.username || 'root'),
    password: decodeURIComponent(u.password),
    connectTimeout: 3000,
    multipleStatements: true,
  });
}

/** A connected pg client as the admin, on `database` (default: the admin URL's own). Call `.end()`. */
export async function postgresAdminConnection(database?: string) {
  const { default: pg } = await import('pg');
  const u = new URL(POSTGRES_ADMIN_URL);
  const client = new pg.Client({
    host: u.hostname || '127.0.0.1',
    port: Number(u.port || 5432),
    user: decodeURIComponent(u.username || 'postgres'),
    password: decodeURIComponent(u.password),
    database: database ?? decodeURIComponent(u.pathname.slice(1) || 'postgres'),
    connectionTimeoutMillis: 3000,
  });
  client.on('error', () => {}); // a server-side disconnect surfaces on the next query instead
  await client.connect();
  return client;
}

async function probe(
  connect: () => Promise<{ query(sql: string): Promise<unknown>; end(): Promise<void> }>,
): Promise<string | null> {
  try {
    const c = await connect();
    await c.query('select 1');
    await c.end();
    return null;
  } catch (err) {
    return (err as Error).message || String((err as { code?: string }).code ?? err);
  }
}

const [mariadbProblem, postgresProblem] = await Promise.all([
  probe(adminConnection),
  probe(() => postgresAdminConnection()),
]);
if (mariadbProblem && !REQUIRE_MARIADB) {
  process.stderr.write(
    `\n*** NOTICE: MariaDB not reachable at ${MARIADB_ADMIN_URL} (${mariadbProblem}): MariaDB suites are SKIPPED. Set MAIL2FA_REQUIRE_MARIADB=1 to make this a failure. ***\n\n`,
  );
}
if (postgresProblem && !REQUIRE_POSTGRES) {
  process.stderr.write(
    `\n*** NOTICE: PostgreSQL not reachable at ${POSTGRES_ADMIN_URL} (${postgresProblem}): PostgreSQL suites are SKIPPED. Set MAIL2FA_REQUIRE_POSTGRES=1 to make this a failure. ***\n\n`,
  );
}

export const DB_KINDS: DbKind[] = ['sqlite', 'mariadb', 'postgres'];

/** Whether suites that need MariaDB beside another database run (reachable, or required: then absence fails). */
export const MARIADB_SUITES = mariadbProblem === null || REQUIRE_MARIADB;

export interface TestDb {
  kind: DbKind;
  url: string;
  /** A scratch directory (key files, outbox, MAIL2FA_HOME). */
  dir: string;
  /** Drops the scratch database (and directory). */
  drop(): Promise<void>;
}

export async function createTestDb(kind: DbKind): Promise<TestDb> {
  const dir = mkdtempSync(join(tmpdir(), 'mail2fa-test-'));
  if (kind === 'sqlite') {
    return {
      kind,
      url: `sqlite:${join(dir, 'mail.sqlite')}`,
      dir,
      drop: async () => rmSync(dir, { recursive: true, force: true }),
    };
  }
  const name = `mail2fa_t_${randomBytes(5).toString('hex')}`;
  if (kind === 'postgres') {
    if (postgresProblem)
      throw new Error(`PostgreSQL required (MAIL2FA_REQUIRE_POSTGRES=1) but not reachable: ${postgresProblem}`);
    const c = await postgresAdminConnection();
    await c.query(`CREATE DATABASE "${name}" ENCODING 'UTF8' TEMPLATE template0`);
    await c.end();
    const u = new URL(POSTGRES_ADMIN_URL);
    u.pathname = `/${name}`;
    return {
      kind,
      url: u.toString(),
      dir,
      drop: async () => {
        const c2 = await postgresAdminConnection();
        await c2.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
        await c2.end();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }
  if (mariadbProblem)
    throw new Error(`MariaDB required (MAIL2FA_REQUIRE_MARIADB=1) but not reachable: ${mariadbProblem}`);
  const c = await adminConnection();
  await c.query(`CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci`);
  await c.end();
  const u = new URL(MARIADB_ADMIN_URL);
  u.pathname = `/${name}`;
  return {
    kind,
    url: u.toString(),
    dir,
    drop: async () => {
      const c2 = await adminConnection();
      await c2.query(`DROP DATABASE IF EXISTS \`${name}\``);
      await c2.end();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** True when `kind`'s suites are skipped here (server absent and not required). */
export function dbSkipped(kind: DbKind): boolean {
  if (kind === 'mariadb') return mariadbProblem !== null && !REQUIRE_MARIADB;
  if (kind === 'postgres') return postgresProblem !== null && !REQUIRE_POSTGRES;
  return false;
}

/** describe() once per database kind (`kinds`: a subset, for a store that exists on some only); a server's suites are skipped (with the notice above) when absent and not required. */
export function describeEachDb(title: string, body: (kind: DbKind) => void, kinds: readonly DbKind[] = DB_KINDS): void {
  for (const kind of kinds) {
    (dbSkipped(kind) ? describe.skip : describe)(`${title} [${kind}]`, () => body(kind));
  }
}

/** describe() on MariaDB only (suites of sites that only run on MariaDB/MySQL); skipped like describeEachDb's. */
export function describeMariadb(title: string, body: (kind: DbKind) => void): void {
  const skip = mariadbProblem !== null && !REQUIRE_MARIADB;
  (skip ? describe.skip : describe)(`${title} [mariadb]`, () => body('mariadb'));
}
