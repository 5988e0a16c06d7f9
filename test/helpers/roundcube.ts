/**
 * Real Roundcube for tests: Debian's roundcube-core 1.6 under /var/lib/roundcube, driven
 * through test/php/roundcube-oracle.php (one php process per batch of cases, JSON in and out), and scratch
 * Roundcube databases created from the package's own SQL files.
 */
import { spawn, spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe } from 'vitest';
import { createTestDb, describeEachDb, type DbKind } from './db.js';

const ORACLE = fileURLToPath(new URL('../php/roundcube-oracle.php', import.meta.url));
const SQL_DIR = '/usr/share/roundcube/SQL';
const DEFAULTS = '/etc/roundcube/defaults.inc.php';

const REQUIRE_ROUNDCUBE = process.env.MAIL2FA_REQUIRE_ROUNDCUBE === '1';

function probe(): string | null {
  for (const f of [
    '/var/lib/roundcube/program/include/clisetup.php',
    DEFAULTS,
    join(SQL_DIR, 'sqlite.initial.sql'),
    join(SQL_DIR, 'mysql.initial.sql'),
  ]) {
    if (!existsSync(f)) return `${f} missing (Debian packages roundcube-core, roundcube-sqlite3, roundcube-mysql)`;
  }
  const php = spawnSync(
    'php',
    ['-r', 'echo extension_loaded("pdo_sqlite") && extension_loaded("pdo_mysql") ? "ok" : "no";'],
    { encoding: 'utf8' },
  );
  if (php.error) return `php not found (Debian package php-cli): ${php.error.message}`;
  if (php.stdout !== 'ok') return 'php lacks pdo_sqlite or pdo_mysql (Debian packages php-sqlite3, php-mysql)';
  return null;
}

/** Why real Roundcube cannot run here (null: it can). */
export const ROUNDCUBE_PROBLEM = probe();
if (ROUNDCUBE_PROBLEM && !REQUIRE_ROUNDCUBE) {
  process.stderr.write(
    `\n*** NOTICE: real Roundcube unavailable (${ROUNDCUBE_PROBLEM}): Roundcube suites are SKIPPED. Set MAIL2FA_REQUIRE_ROUNDCUBE=1 to make this a failure. ***\n\n`,
  );
}
const skipRoundcube = ROUNDCUBE_PROBLEM !== null && !REQUIRE_ROUNDCUBE;

/** describe() that needs Debian's Roundcube and php-cli: skipped with a notice when absent, unless required (CI). */
export function describeRoundcube(title: string, body: () => void): void {
  (skipRoundcube ? describe.skip : describe)(title, body);
}

/**
 * describeEachDb() that also needs Debian's Roundcube and php-cli. SQLite and MariaDB only: the Roundcube store
 * refuses PostgreSQL ("not supported yet", src/stores/roundcube.ts).
 */
export function describeRoundcubeEachDb(title: string, body: (kind: DbKind) => void): void {
  if (skipRoundcube) describe.skip(title, () => body('sqlite'));
  else describeEachDb(title, body, ['sqlite', 'mariadb']);
}

/** A config dir for the oracle: Debian's defaults plus logs and temp files in the scratch dir. */
export function roundcubeConfigDir(): { dir: string; cleanup(): void } {
  if (skipRoundcube) return { dir: '', cleanup() {} };
  if (ROUNDCUBE_PROBLEM)
    throw new Error(`real Roundcube required (MAIL2FA_REQUIRE_ROUNDCUBE=1) but unavailable: ${ROUNDCUBE_PROBLEM}`);
  const dir = mkdtempSync(join(tmpdir(), 'mail2fa-rc-'));
  copyFileSync(DEFAULTS, join(dir, 'defaults.inc.php'));
  writeFileSync(
    join(dir, 'config.inc.php'),
    `<?php\n$config = [];\n$config['log_dir'] = '${dir}/';\n$config['temp_dir'] = '${dir}/';\n$config['plugins'] = [];\n$config['db_dsnw'] = 'sqlite:///${dir}/unused.sqlite?mode=0600';\n`,
  );
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

export type OracleCase = Record<string, unknown> & { op: string };

export async function runOracle<T = Record<string, unknown>>(configDir: string, cases: OracleCase[]): Promise<T[]> {
  const child = spawn(
    'php',
    [
      '-d',
      'opcache.enable_cli=0',
      '-d',
      'display_errors=stderr',
      '-d',
      'error_reporting=E_ALL & ~E_DEPRECATED',
      ORACLE,
    ],
    { stdio: ['pipe', 'pipe', 'pipe'] },
  );
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on('data', (d: Buffer) => out.push(d));
  child.stderr.on('data', (d: Buffer) => err.push(d));
  child.stdin.end(JSON.stringify({ configDir, cases }));
  const code = await new Promise<number>((resolve) => child.on('close', (c) => resolve(c ?? -1)));
  const text = Buffer.concat(out).toString('utf8');
  if (code !== 0)
    throw new Error(`php oracle exited ${code}: ${Buffer.concat(err).toString('utf8')}\n${text.slice(0, 2000)}`);
  try {
    return JSON.parse(text) as T[];
  } catch {
    throw new Error(`php oracle printed no JSON: ${Buffer.concat(err).toString('utf8')}\n${text.slice(0, 2000)}`);
  }
}

export interface RoundcubeDb {
  kind: DbKind;
  /** mail2fa's URL for it (sqlite:… / mysql://…). */
  url: string;
  /** Roundcube's DSN for the same database. */
  dsn: string;
  /** Runs SQL on it (setup only). */
  exec(sql: string, params?: unknown[]): Promise<unknown[]>;
  drop(): Promise<void>;
}

/** A scratch Roundcube database (schema from the package's `<kind>.initial.sql`), with an optional table prefix. */
export async function createRoundcubeDb(kind: DbKind, prefix = ''): Promise<RoundcubeDb> {
  const base = await createTestDb(kind);
  const file = kind === 'sqlite' ? 'sqlite.initial.sql' : 'mysql.initial.sql';
  let sql = readFileSync(join(SQL_DIR, file), 'utf8');
  if (prefix) sql = withPrefix(sql, prefix, kind);
  if (kind === 'sqlite') {
    const { default: Database } = await import('better-sqlite3');
    const path = base.url.slice('sqlite:'.length);
    const db = new Database(path);
    db.exec(sql);
    db.close();
    return {
      kind,
      url: base.url,
      dsn: `sqlite:///${path}?mode=0600`,
      async exec(q, params = []) {
        const c = new Database(path);
        try {
          const st = c.prepare(q);
          return st.reader ? st.all(...params) : [st.run(...params)];
        } finally {
          c.close();
        }
      },
      drop: base.drop,
    };
  }
  const mysql = await import('mysql2/promise');
  const u = new URL(base.url);
  const conn = () =>
    mysql.createConnection({
      host: u.hostname,
      port: Number(u.port || 3306),
      user: decodeURIComponent(u.username || 'root'),
      database: u.pathname.slice(1),
      multipleStatements: true,
      charset: 'utf8mb4',
    });
  const c = await conn();
  await c.query(sql);
  await c.end();
  return {
    kind,
    url: base.url,
    dsn: `mysql://${decodeURIComponent(u.username || 'root')}:@${u.hostname}:${u.port || 3306}/${u.pathname.slice(1)}`,
    async exec(q, params = []) {
      const c2 = await conn();
      try {
        const [rows] = await c2.query(q, params);
        return Array.isArray(rows) ? rows : [rows];
      } finally {
        await c2.end();
      }
    },
    drop: base.drop,
  };
}

/** Prefixes the tables of Roundcube's initial SQL (what an install with `db_prefix` has). */
function withPrefix(sql: string, prefix: string, kind: DbKind): string {
  const tables = [
    'session',
    'users',
    'cache',
    'cache_shared',
    'cache_index',
    'cache_thread',
    'cache_messages',
    'contacts',
    'contactgroups',
    'contactgroupmembers',
    'identities',
    'dictionary',
    'searches',
    'filestore',
    'responses',
    'collected_addresses',
    'system',
  ];
  let out = sql;
  for (const t of tables) {
    const q = kind === 'mariadb' ? '`' : '';
    out = out.replace(
      new RegExp(`(TABLE|INTO|REFERENCES|ON|EXISTS)\\s+${q}${t}${q}(?=[\\s(;])`, 'g'),
      `$1 ${q}${prefix}${t}${q}`,
    );
  }
  return out;
}
