/**
 * Test databases: a fresh SQLite file, and a fresh MariaDB database per suite on the machine's server.
 * Without MariaDB, its suites are skipped with a visible notice, unless MAIL2FA_REQUIRE_MARIADB=1 (CI), where
 * its absence fails the run.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { describe } from 'vitest';

export type DbKind = 'sqlite' | 'mariadb';

export const MARIADB_ADMIN_URL = process.env.MAIL2FA_TEST_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/test';
const REQUIRE_MARIADB = process.env.MAIL2FA_REQUIRE_MARIADB === '1';

async function adminConnection() {
  const mysql = await import('mysql2/promise');
  const u = new URL(MARIADB_ADMIN_URL);
  return mysql.createConnection({ host: u.hostname, port: Number(u.port || 3306), user: decodeURIComponent(u.username || 'root'), password: decodeURIComponent(u.password), connectTimeout: 3000, multipleStatements: true });
}

async function probe(): Promise<string | null> {
  try {
    const c = await adminConnection();
    await c.query('select 1');
    await c.end();
    return null;
  } catch (err) {
    return (err as Error).message;
  }
}

const mariadbProblem = await probe();
if (mariadbProblem && !REQUIRE_MARIADB) {
  process.stderr.write(`\n*** NOTICE: MariaDB not reachable at ${MARIADB_ADMIN_URL} (${mariadbProblem}): MariaDB suites are SKIPPED. Set MAIL2FA_REQUIRE_MARIADB=1 to make this a failure. ***\n\n`);
}

export const DB_KINDS: DbKind[] = ['sqlite', 'mariadb'];

/** Whether suites that need MariaDB beside another database run (reachable, or required: then absence fails). */
export const MARIADB_SUITES = mariadbProblem === null || REQUIRE_MARIADB;

export interface TestDb {
  kind: DbKind;
  url: string;
  /** A scratch directory (key files, outbox, MAIL2FA_HOME). */
  dir: string;
  /** Runs SQL as the admin on this database (MariaDB) — for setup of foreign tables like PostfixAdmin's. */
  drop(): Promise<void>;
}

export async function createTestDb(kind: DbKind): Promise<TestDb> {
  const dir = mkdtempSync(join(tmpdir(), 'mail2fa-test-'));
  if (kind === 'sqlite') {
    return { kind, url: `sqlite:${join(dir, 'mail.sqlite')}`, dir, drop: async () => rmSync(dir, { recursive: true, force: true }) };
  }
  if (mariadbProblem) throw new Error(`MariaDB required (MAIL2FA_REQUIRE_MARIADB=1) but not reachable: ${mariadbProblem}`);
  const name = `mail2fa_t_${randomBytes(5).toString('hex')}`;
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

/** describe() once per database kind; MariaDB's is skipped (with the notice above) when absent and not required. */
export function describeEachDb(title: string, body: (kind: DbKind) => void): void {
  for (const kind of DB_KINDS) {
    const skip = kind === 'mariadb' && mariadbProblem !== null && !REQUIRE_MARIADB;
    (skip ? describe.skip : describe)(`${title} [${kind}]`, () => body(kind));
  }
}

/** describe() on MariaDB only (suites of sites that only run on MariaDB/MySQL); skipped like describeEachDb's. */
export function describeMariadb(title: string, body: (kind: DbKind) => void): void {
  const skip = mariadbProblem !== null && !REQUIRE_MARIADB;
  (skip ? describe.skip : describe)(`${title} [mariadb]`, () => body('mariadb'));
}
