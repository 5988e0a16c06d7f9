/**
 * Test databases: a fresh SQLite file, and a fresh database per suite on the machine's MariaDB and PostgreSQL
 * servers. Without a server, its suites are skipped with a visible notice, unless MAIL2FA_REQUIRE_MARIADB=1 /
 * MAIL2FA_REQUIRE_POSTGRES=1 (CI), where its absence fails the run.
 */
import { copyFileSync, mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, inject } from 'vitest';
import type { Context } from '../../src/context.js';
import { testContext, testEnv, type TestContextOptions } from './context.js';
import {
  MARIADB_ADMIN_URL,
  POSTGRES_ADMIN_URL,
  databaseUrl,
  mariadbAdminConnection,
  postgresAdminConnection,
  probe,
} from './db-servers.js';

export { MARIADB_ADMIN_URL, POSTGRES_ADMIN_URL, postgresAdminConnection };

export type DbKind = 'sqlite' | 'mariadb' | 'postgres';

const REQUIRE_MARIADB = process.env.MAIL2FA_REQUIRE_MARIADB === '1';
const REQUIRE_POSTGRES = process.env.MAIL2FA_REQUIRE_POSTGRES === '1';

const [mariadbProblem, postgresProblem] = await Promise.all([
  probe(mariadbAdminConnection),
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

/**
 * A scratch database of `kind`: empty, or with `migrated`, a copy of the run's migrated template (mail2fa's
 * schema and the reference mailbox table, as testContext would create them; see db-template.ts). Where the
 * global setup made no template (a server it could not reach) the copy falls back to an empty database, which
 * testContext then migrates.
 */
export async function createTestDb(kind: DbKind, options: { migrated?: boolean } = {}): Promise<TestDb> {
  const dir = mkdtempSync(join(tmpdir(), 'mail2fa-test-'));
  const template = options.migrated ? inject('mail2faDbTemplates')?.[kind] : undefined;
  if (kind === 'sqlite') {
    const file = join(dir, 'mail.sqlite');
    if (typeof template === 'string') copyFileSync(template, file);
    return { kind, url: `sqlite:${file}`, dir, drop: async () => rmSync(dir, { recursive: true, force: true }) };
  }
  const name = `mail2fa_t_${randomBytes(5).toString('hex')}`;
  if (kind === 'postgres') {
    if (postgresProblem)
      throw new Error(`PostgreSQL required (MAIL2FA_REQUIRE_POSTGRES=1) but not reachable: ${postgresProblem}`);
    const admin = await postgresAdminConnection();
    try {
      await admin.query(
        `CREATE DATABASE "${name}" ENCODING 'UTF8' TEMPLATE ${typeof template === 'string' ? `"${template}"` : 'template0'}`,
      );
    } finally {
      await admin.end();
    }
    return {
      kind,
      url: databaseUrl(POSTGRES_ADMIN_URL, name),
      dir,
      drop: async () => {
        const dropper = await postgresAdminConnection();
        await dropper.query(`DROP DATABASE IF EXISTS "${name}" WITH (FORCE)`);
        await dropper.end();
        rmSync(dir, { recursive: true, force: true });
      },
    };
  }
  if (mariadbProblem)
    throw new Error(`MariaDB required (MAIL2FA_REQUIRE_MARIADB=1) but not reachable: ${mariadbProblem}`);
  const admin = await mariadbAdminConnection();
  try {
    await admin.query(`CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci`);
    if (Array.isArray(template)) await admin.query([`USE \`${name}\``, ...template].join(';\n'));
  } finally {
    await admin.end();
  }
  return {
    kind,
    url: databaseUrl(MARIADB_ADMIN_URL, name),
    dir,
    drop: async () => {
      const dropper = await mariadbAdminConnection();
      await dropper.query(`DROP DATABASE IF EXISTS \`${name}\``);
      await dropper.end();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

export interface TestDbFixture {
  /** The scratch database (its URL and scratch directory). */
  readonly tdb: TestDb;
  /** An in-process context on it (testContext), closed after the suite. */
  readonly ctx: Context;
  /** The environment to run the built binary with on it: testEnv(tdb) plus the fixture's `env`. */
  readonly env: Record<string, string>;
}

/**
 * The suite's database: a migrated scratch database of `kind` created before the suite's tests (beforeAll) with a
 * context on it, closed and dropped after them (afterAll). Read its parts inside hooks and tests.
 */
export function useTestDb(
  kind: DbKind,
  options: {
    context?: TestContextOptions | ((tdb: TestDb) => TestContextOptions);
    env?: Record<string, string> | ((tdb: TestDb) => Record<string, string>);
  } = {},
): TestDbFixture {
  let state: { tdb: TestDb; ctx?: Context; env: Record<string, string> } | undefined;
  beforeAll(async () => {
    // A configuration of its own may name other tables or a mail system's mailbox table: migrate afresh then.
    const tdb = await createTestDb(kind, { migrated: !options.context });
    state = { tdb, env: {} };
    const contextOptions = typeof options.context === 'function' ? options.context(tdb) : options.context;
    state.ctx = await testContext(tdb, contextOptions);
    state.env = testEnv(tdb, typeof options.env === 'function' ? options.env(tdb) : options.env);
  });
  afterAll(async () => {
    await state?.ctx?.close();
    await state?.tdb.drop();
  });
  const ready = () => {
    if (!state?.ctx) throw new Error('useTestDb: read the fixture inside a hook or test, after its beforeAll');
    return state as { tdb: TestDb; ctx: Context; env: Record<string, string> };
  };
  return {
    get tdb() {
      return ready().tdb;
    },
    get ctx() {
      return ready().ctx;
    },
    get env() {
      return ready().env;
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
