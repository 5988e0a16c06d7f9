#!/usr/bin/env node
/**
 * `npm run bench` — benchmarks at mail-host scale. Not a test: it prints numbers.
 *
 * Seeds MariaDB and the embedded SQLite default with N mailboxes (LOAD DATA / one SQLite transaction), then
 * measures the BUILT binary against the databases' own command-line clients:
 *   - `status --all --format ndjson`                    vs `mariadb --batch --quick` / `sqlite3 -batch` running the
 *                                                          minimal join (mailbox LEFT JOIN the factor table), and
 *                                                          running mail2fa's own SQL (a second line)
 *   - `status --file - --format ndjson` (address list)  vs the minimal join restricted by the same batched `IN (…)`,
 *                                                          and mail2fa's own batched SQL (a second line)
 *   - single-account `status` and `verify`              vs bare `node -e 0`
 * and PostgreSQL (seeded with COPY) for the bulk read and the address list: `status --all` / `status --file -` vs
 * `psql` running the minimal query (the mailbox table LEFT JOIN mail2fa's factor table; for the list in the same
 * batches), and mail2fa's own SQL (a second line).
 * Every result's row count is checked (mail2fa's summary and line count, the clients' row count): a wrong result
 * is reported as WRONG and the bench exits 1. Before measuring, the seeded data is checked against mail2fa's own
 * rules (schema at the latest migration, the status summary in the state rows agreeing with the detail tables):
 * wrong data stops the bench.
 * Each command runs `--runs` times after one warm-up run, medians reported; peak RSS from GNU time. Results are printed and
 * written between the markers of docs/benchmarks.md, with the machine described.
 *
 * Options: --size N (default 1000000) · --list N (default 100000) · --runs N (default 5)
 *          · --db all|both|mariadb|sqlite|postgres (all = the three; both = MariaDB and SQLite)
 *          · --mariadb-url mysql://root@127.0.0.1:3306/mail2fa_bench (the database is DROPPED and recreated)
 *          · --pg-url postgres://postgres@127.0.0.1:5432/mail2fa_bench (likewise DROPPED and recreated)
 *          · --keep (keep the seeded data) · --reuse (skip seeding when --keep left data of the same size)
 *          · --no-write (do not touch docs/benchmarks.md) · --bin PATH (measure another build's bin/mail2fa.js against
 *            the same data, e.g. a copy of an older checkout: before/after comparisons)
 */
import { execFileSync, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { COLUMNS, METHOD_SMS, makeDataset, rows, writeTsv } from './dataset.mjs';
import {
  haveGnuTime,
  loadAverage,
  machine,
  mariadbClient,
  measureSet,
  printHeaderHelp,
  psqlClient,
  runOnce,
} from './measure.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const DOC = join(ROOT, 'docs', 'benchmarks.md');
const dist = (p) => import(pathToFileURL(join(ROOT, 'dist', p)).href);
const NODE = process.execPath;
/** Bumped when the seeded rows change, so that --reuse never measures data seeded by an older bench. */
const GENERATOR_VERSION = 3;
/** Addresses per lookup query: the batch size of src/core/status.ts (LOOKUP_BATCH). */
const LOOKUP_BATCH = 500;

const { values: opt } = parseArgs({
  options: {
    size: { type: 'string', default: '1000000' },
    list: { type: 'string', default: '100000' },
    runs: { type: 'string', default: '5' },
    db: { type: 'string', default: 'all' },
    'mariadb-url': {
      type: 'string',
      default: process.env.MAIL2FA_BENCH_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/mail2fa_bench',
    },
    'pg-url': {
      type: 'string',
      default: process.env.MAIL2FA_BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/mail2fa_bench',
    },
    keep: { type: 'boolean', default: false },
    reuse: { type: 'boolean', default: false },
    'no-write': { type: 'boolean', default: false },
    bin: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
});
if (opt.help) {
  printHeaderHelp(import.meta.url);
  process.exit(0);
}
/** The binary measured: this checkout's build, or (--bin) another build of mail2fa, for before/after comparisons. */
const BIN = resolve(opt.bin ?? join(ROOT, 'bin', 'mail2fa.js'));
const SIZE = Number(opt.size);
const RUNS = Number(opt.runs);
const LIST = Math.min(Number(opt.list), SIZE);
if (
  !Number.isInteger(SIZE) ||
  SIZE < 1000 ||
  !Number.isInteger(RUNS) ||
  RUNS < 1 ||
  !Number.isInteger(LIST) ||
  LIST < 1 ||
  !['all', 'both', 'mariadb', 'sqlite', 'postgres'].includes(opt.db)
) {
  process.stderr.write(
    'usage: npm run bench -- [--size N>=1000] [--list N] [--runs N] [--db all|both|mariadb|sqlite|postgres] [--mariadb-url URL] [--pg-url URL] [--keep] [--reuse] [--no-write] [--bin PATH]\n',
  );
  process.exit(64);
}
const WARMUP = 1;

const log = (s) => process.stderr.write(`${s}\n`);
const secs = (ms) => `${(ms / 1000).toFixed(1)} s`;
const step = async (what, fn) => {
  const t = performance.now();
  log(`… ${what}`);
  const r = await fn();
  log(`  done in ${secs(performance.now() - t)}`);
  return r;
};
function have(cmd) {
  return spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;
}

/* ---------------------------------------------------------------------------------------------------- */
/* Preconditions                                                                                         */

if (!existsSync(join(ROOT, 'dist', 'main.js'))) {
  log('dist/ is missing: run `npm run build` first (npm run bench does).');
  process.exit(69);
}
const timeBin = haveGnuTime();
if (!timeBin)
  log('NOTE: GNU time (/usr/bin/time) is not installed, so peak RSS cannot be measured: apt-get install -y time');
const wantMariadb = ['all', 'both', 'mariadb'].includes(opt.db);
const wantSqlite = ['all', 'both', 'sqlite'].includes(opt.db);
const wantPostgres = ['all', 'postgres'].includes(opt.db);
if (wantPostgres && !have('psql')) {
  log('the `psql` command-line client is missing (apt-get install -y postgresql-client); or run with --db both');
  process.exit(69);
}
if (wantMariadb && !have('mariadb')) {
  log('the `mariadb` command-line client is missing (apt-get install -y mariadb-client); or run with --db sqlite');
  process.exit(69);
}
const sqlite3Cli = have('sqlite3');
if (wantSqlite && !sqlite3Cli)
  log(
    'NOTE: the sqlite3 command-line client is missing (apt-get install -y sqlite3): the SQLite bulk ratios are skipped',
  );

const WORK = join(tmpdir(), 'mail2fa-bench');
mkdirSync(WORK, { recursive: true, mode: 0o700 });
/**
 * The master key the measured commands run with. Kept beside data that --keep leaves behind (the code-hash key in
 * the database is sealed with it), so that a --reuse run can read it; otherwise a fresh one per run.
 */
const KEY_FILE = join(WORK, 'master.key');
const KEY =
  opt.reuse && existsSync(KEY_FILE) ? readFileSync(KEY_FILE, 'utf8').trim() : randomBytes(32).toString('base64');
if (opt.keep) writeFileSync(KEY_FILE, `${KEY}\n`, { mode: 0o600 });
/** The environment of every measured mail2fa: no config from the caller, a fixed key, a scratch home. */
function childEnv(extra = {}) {
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('MAIL2FA_')) delete env[k];
  return { ...env, MAIL2FA_KEY: KEY, NO_COLOR: '1', ...extra };
}

const mysqlUrl = new URL(opt['mariadb-url']);
const DBNAME = decodeURIComponent(mysqlUrl.pathname.slice(1));
if (!/^[A-Za-z0-9_]+$/.test(DBNAME)) {
  log(`--mariadb-url: database name must be a plain identifier (got "${DBNAME}")`);
  process.exit(64);
}
const { args: mariadbConn, env: mariadbEnv } = mariadbClient(mysqlUrl);
function mariadb(sql, { db = DBNAME, extra = [] } = {}) {
  return execFileSync('mariadb', [...mariadbConn, ...extra, '--batch', '-N', ...(db ? [db] : []), '-e', sql], {
    env: mariadbEnv,
    encoding: 'utf8',
    maxBuffer: 1 << 26,
  });
}
const pgUrl = new URL(opt['pg-url']);
const PG_DBNAME = decodeURIComponent(pgUrl.pathname.slice(1));
if (wantPostgres && !/^[A-Za-z0-9_]+$/.test(PG_DBNAME)) {
  log(`--pg-url: database name must be a plain identifier (got "${PG_DBNAME}")`);
  process.exit(64);
}
const { args: psqlConn, env: psqlEnv } = psqlClient(pgUrl);
/** psql on the bench database (or `db`), stopping at the first error; -c may be given several times. */
function psql(commands, { db = PG_DBNAME } = {}) {
  return execFileSync(
    'psql',
    [...psqlConn, '-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1', '-d', db, ...commands.flatMap((c) => ['-c', c])],
    { env: psqlEnv, encoding: 'utf8', maxBuffer: 1 << 26 },
  );
}
function mail2faSync(args, env) {
  const r = spawnSync(NODE, [join(ROOT, 'bin', 'mail2fa.js'), ...args], { env, encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`mail2fa ${args.join(' ')} exited ${r.status}: ${r.stderr.trim()}`);
  return r.stdout;
}

/* ---------------------------------------------------------------------------------------------------- */
/* Data                                                                                                  */

const now = Date.now();
const RESERVE = WARMUP + RUNS + 2;
const ds = await step(`building the dataset (${SIZE.toLocaleString('en')} mailboxes)`, () =>
  makeDataset(SIZE, now, { reserve: RESERVE }),
);
const exp = ds.expected;
log(
  `  ${exp.enabled.toLocaleString('en')} with 2FA (${exp.totp.toLocaleString('en')} app, ${exp.sms.toLocaleString('en')} SMS, ${exp.temporaryCode} temporary codes), ${exp.recoveryCodes.toLocaleString('en')} recovery codes, ${exp.challenges.toLocaleString('en')} challenges, ${exp.stateRows.toLocaleString('en')} state rows (${exp.locked} locked)`,
);

const { masterKeyFromBytes } = await dist('crypto/keys.js');
const { seal } = await dist('crypto/box.js');
const masterKey = masterKeyFromBytes(Buffer.from(KEY, 'base64'));
const sealed = {
  keyId: masterKey.id,
  secret: seal(
    masterKey,
    { table: 'mail2fa_factor', column: 'secret_ct', account: 'template@bench.example' },
    'JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP',
  ),
  phone: seal(
    masterKey,
    { table: 'mail2fa_factor', column: 'phone_ct', account: 'template@bench.example' },
    '+4520123456',
  ),
};
const meta = JSON.stringify({ generator: GENERATOR_VERSION, size: SIZE });

/** The address list for --file -: LIST addresses in random order, 1 % of them unknown. */
function addressList() {
  let seed = 7;
  const rand = () => (seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 4294967296;
  const unknown = Math.floor(LIST / 100);
  const stride = ds.n / (LIST - unknown);
  const list = [];
  for (let k = 0; k < LIST - unknown; k++) list.push(ds.emails[Math.floor(k * stride)]);
  for (let k = 0; k < unknown; k++) list.push(`nobody.${k}@${ds.domains[k % ds.domains.length]}`);
  for (let i = list.length - 1; i > 0; i--) {
    const j = Math.floor(rand() * (i + 1));
    [list[i], list[j]] = [list[j], list[i]];
  }
  const file = join(WORK, 'list.txt');
  writeFileSync(file, `${list.join('\n')}\n`);
  return { file, list, known: LIST - unknown, unknown };
}
const addresses = addressList();
const smsAccount = ds.emails[ds.method.findIndex((m, i) => m === METHOD_SMS && !ds.isReserved[i])];

/**
 * The references' SQL: the minimal join (MINIMAL_SQL), and mail2fa's own statusSql (src/db/status-query.ts, from
 * dist: mailbox LEFT JOIN the state row carrying the status summary), values inlined for the CLI clients.
 */
async function referenceSql(client) {
  const { default: knexFactory } = await import('knex');
  const { statusSql } = await dist('db/status-query.js');
  const { tableNames } = await dist('db/schema.js');
  const { accountMapping } = await dist('db/accounts.js');
  const knex = knexFactory(
    client === 'mysql' ? { client: 'mysql2' } : { client: 'better-sqlite3', useNullAsDefault: true },
  );
  const tables = tableNames('mail2fa_');
  const mapping = accountMapping({ preset: 'mail2fa', tablePrefix: '', columns: {} });
  const build = (where) => {
    const { sql, bindings } = statusSql(knex, { dialect: client }, tables, mapping, where);
    return knex.raw(sql, bindings).toString();
  };
  const all = build({ kind: 'all' });
  const batches = [];
  const minimalBatches = [];
  for (let i = 0; i < addresses.list.length; i += LOOKUP_BATCH) {
    const emails = addresses.list.slice(i, i + LOOKUP_BATCH);
    batches.push(`${build({ kind: 'emails', emails })};`);
    minimalBatches.push(
      `${knex.raw(`${MINIMAL_SQL} WHERE m.email IN (${emails.map(() => '?').join(', ')})`, emails).toString()};`,
    );
  }
  const listFile = join(WORK, `list-${client}.sql`);
  writeFileSync(listFile, `${batches.join('\n')}\n`);
  const minimalListFile = join(WORK, `list-minimal-${client}.sql`);
  writeFileSync(minimalListFile, `${minimalBatches.join('\n')}\n`);
  await knex.destroy();
  return { all, listFile, minimal: MINIMAL_SQL, minimalListFile };
}

/**
 * The minimal query that could answer a bulk status: the mailbox table LEFT JOIN one 2FA table, the
 * factor table, with what a status line shows of it (method, masked phone, enrolled / last used). What mail2fa adds
 * beyond it (recovery codes left, temporary access codes, lock state, exact-byte matching across collations) is
 * its own cost; the bench also compares against the client running mail2fa's very SQL.
 */
const MINIMAL_SQL =
  'SELECT m.email, m.domain, m.active, f.method, f.phone_masked, f.enrolled_at, f.last_used_at FROM mailbox m LEFT JOIN mail2fa_factor f ON f.account = m.email';

/** A check of a reference client's output: its exit code and its row count (one line per row, no header). */
function rowCheck(want) {
  return (r) => {
    if (r.code !== 0) return `exit ${r.code}: ${r.stderr.trim().split('\n').slice(-2).join(' | ')}`;
    if (r.lines !== want) return `printed ${r.lines} rows, expected ${want}`;
    return null;
  };
}

/** mail2fa's own check: its summary line, and one NDJSON line per address looked up. */
function statusCheck(want, lines) {
  const summary = summaryCheck(want);
  return (r) => summary(r) ?? (r.lines === lines ? null : `printed ${r.lines} lines, expected ${lines}`);
}

/* ---------------------------------------------------------------------------------------------------- */
/* Seeding                                                                                               */

async function seedMariadb() {
  const url = opt['mariadb-url'];
  if (opt.reuse) {
    try {
      if (mariadb('SELECT v FROM bench_meta WHERE k = "meta"').trim() === meta) {
        log(`  reusing ${DBNAME} (seeded by an earlier --keep run)`);
        return;
      }
    } catch {}
  }
  mariadb(
    `DROP DATABASE IF EXISTS \`${DBNAME}\`; CREATE DATABASE \`${DBNAME}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_bin`,
    { db: null },
  );
  mail2faSync(['--db', url, 'migrate', '--with-mailbox-table'], childEnv());
  const tables = {
    mailbox: 'mailbox',
    factor: 'mail2fa_factor',
    recovery_code: 'mail2fa_recovery_code',
    account_state: 'mail2fa_account_state',
    challenge: 'mail2fa_challenge',
  };
  const statements = ['SET SESSION unique_checks = 0', 'SET SESSION foreign_key_checks = 0'];
  for (const [name, table] of Object.entries(tables)) {
    const file = join(WORK, `${name}.tsv`);
    const count = writeTsv(file, rows(ds, name, sealed));
    log(`  ${table}: ${count.toLocaleString('en')} rows`);
    statements.push(
      `LOAD DATA LOCAL INFILE '${file}' INTO TABLE \`${table}\` CHARACTER SET utf8mb4 FIELDS TERMINATED BY '\\t' LINES TERMINATED BY '\\n' (${COLUMNS[name].map((c) => `\`${c}\``).join(', ')})`,
    );
  }
  statements.push(
    `ANALYZE TABLE ${Object.values(tables)
      .map((t) => `\`${t}\``)
      .join(', ')}`,
  );
  statements.push(
    `CREATE TABLE bench_meta (k VARCHAR(16) PRIMARY KEY, v TEXT) ENGINE=InnoDB`,
    `INSERT INTO bench_meta VALUES ('meta', '${meta}')`,
  );
  try {
    mariadb(statements.join(';\n'), { extra: ['--local-infile=1'] });
  } catch (err) {
    throw new Error(
      `LOAD DATA LOCAL INFILE failed (the server needs local_infile=ON: SET GLOBAL local_infile = 1): ${err.stderr || err.message}`,
      { cause: err },
    );
  } finally {
    for (const name of Object.keys(tables)) rmSync(join(WORK, `${name}.tsv`), { force: true });
  }
}

async function seedPostgres() {
  if (opt.reuse) {
    try {
      if (psql(["SELECT v FROM bench_meta WHERE k = 'meta'"]).trim() === meta) {
        log(`  reusing ${PG_DBNAME} (seeded by an earlier --keep run)`);
        return;
      }
    } catch {}
  }
  const admin = 'postgres';
  psql([`DROP DATABASE IF EXISTS "${PG_DBNAME}" WITH (FORCE)`], { db: admin });
  psql([`CREATE DATABASE "${PG_DBNAME}" ENCODING 'UTF8' TEMPLATE template0`], { db: admin });
  mail2faSync(['--db', opt['pg-url'], 'migrate', '--with-mailbox-table'], childEnv());
  const tables = {
    mailbox: 'mailbox',
    factor: 'mail2fa_factor',
    recovery_code: 'mail2fa_recovery_code',
    account_state: 'mail2fa_account_state',
    challenge: 'mail2fa_challenge',
  };
  try {
    for (const [name, table] of Object.entries(tables)) {
      const file = join(WORK, `${name}.tsv`);
      const count = writeTsv(file, rows(ds, name, sealed));
      log(`  ${table}: ${count.toLocaleString('en')} rows`);
      // COPY's text format: tab-separated, \N for NULL, 1/0 accepted for booleans — the TSV MariaDB loads.
      psql([`\\copy "${table}" (${COLUMNS[name].map((c) => `"${c}"`).join(', ')}) FROM '${file}'`]);
    }
  } finally {
    for (const name of Object.keys(tables)) rmSync(join(WORK, `${name}.tsv`), { force: true });
  }
  psql([
    'VACUUM ANALYZE',
    'CREATE TABLE bench_meta (k VARCHAR(16) PRIMARY KEY, v TEXT)',
    `INSERT INTO bench_meta VALUES ('meta', '${meta}')`,
  ]);
}

/**
 * PostgreSQL: bulk status and the address list, against psql running the minimal join (mailbox LEFT JOIN one 2FA
 * table; for the list, in the same batches), and mail2fa's own SQL as a second line.
 */
async function measurePostgres() {
  const env = childEnv();
  const common = { env, tmp: WORK, timeBin };
  const minimal = MINIMAL_SQL;
  // The dataset counts the verify accounts as enrolled (the other databases enrol them to measure verify).
  await step('enrolling the reserved accounts through the library', () =>
    enrolVerifyAccounts({ dbUrl: opt['pg-url'] }),
  );
  await step('checking the seeded data (schema version, state rows, status summary)', () =>
    checkSeededData({ dbUrl: opt['pg-url'] }),
  );
  // Also mail2fa's own status SQL (src/db/status-query.ts, from dist; on PostgreSQL `--all` binds no values): what
  // the server itself needs for the whole answer, beside the minimal join.
  const { default: knexFactory } = await import('knex');
  const { statusSql } = await dist('db/status-query.js');
  const { tableNames } = await dist('db/schema.js');
  const { accountMapping } = await dist('db/accounts.js');
  const pgKnex = knexFactory({ client: 'pg' });
  const same = statusSql(
    pgKnex,
    { dialect: 'postgres' },
    tableNames('mail2fa_'),
    accountMapping({ preset: 'mail2fa', tablePrefix: '', columns: {} }),
    { kind: 'all' },
  );
  // The list: mail2fa's batches of LOOKUP_BATCH addresses, as files of SQL for psql (values inlined by knex).
  const minimalBatches = [];
  const sameBatches = [];
  for (let i = 0; i < addresses.list.length; i += LOOKUP_BATCH) {
    const emails = addresses.list.slice(i, i + LOOKUP_BATCH);
    minimalBatches.push(
      `${pgKnex.raw(`${MINIMAL_SQL} WHERE m.email IN (${emails.map(() => '?').join(', ')})`, emails).toString()};`,
    );
    const batch = statusSql(
      pgKnex,
      { dialect: 'postgres' },
      tableNames('mail2fa_'),
      accountMapping({ preset: 'mail2fa', tablePrefix: '', columns: {} }),
      { kind: 'emails', emails },
    );
    // pg's native placeholders ($1 …) back to knex's, to inline the values.
    sameBatches.push(`${pgKnex.raw(batch.sql.replace(/\$\d+/g, '?'), batch.bindings).toString()};`);
  }
  const minimalListFile = join(WORK, 'list-minimal-postgres.sql');
  writeFileSync(minimalListFile, `${minimalBatches.join('\n')}\n`);
  const sameListFile = join(WORK, 'list-postgres.sql');
  writeFileSync(sameListFile, `${sameBatches.join('\n')}\n`);
  await pgKnex.destroy();
  if (same.bindings.length) throw new Error('the PostgreSQL --all status SQL unexpectedly has bound values');
  const bulk = [
    {
      label: 'status --all',
      cmd: NODE,
      args: () => [BIN, '--db', opt['pg-url'], 'status', '--all', '--format', 'ndjson'],
      ...common,
      countLines: true,
      check: statusCheck(
        {
          accounts: exp.accounts,
          enabled: exp.enabled,
          totp: exp.totp,
          sms: exp.sms,
          temporaryCode: exp.temporaryCode,
        },
        exp.accounts,
      ),
    },
    {
      label: 'psql',
      cmd: 'psql',
      args: () => [...psqlConn, '-X', '-At', '-d', PG_DBNAME, '-c', minimal],
      ...common,
      env: psqlEnv,
      countLines: true,
      check: rowCheck(exp.accounts),
    },
    {
      label: 'psql (same SQL)',
      cmd: 'psql',
      args: () => [...psqlConn, '-X', '-At', '-d', PG_DBNAME, '-c', same.sql],
      ...common,
      env: psqlEnv,
      countLines: true,
      check: rowCheck(exp.accounts),
    },
  ];
  const [all, allRef, sameRef] = await step(
    `postgres: status --all --format ndjson vs psql (minimal LEFT JOIN; mail2fa's own SQL), ${WARMUP + RUNS} rounds`,
    () => measureSet(bulk, { runs: RUNS, warmup: WARMUP }),
  );
  const what = `status --all --format ndjson (${SIZE.toLocaleString('en')} rows)`;

  // The list: mail2fa prints a line per address (unknown ones too); psql a row per known address.
  const psqlFile = (label, file, check) => ({
    label,
    cmd: 'psql',
    args: () => [...psqlConn, '-X', '-At', '-d', PG_DBNAME, '-f', file],
    ...common,
    env: psqlEnv,
    countLines: true,
    check,
  });
  const list = [
    {
      label: 'status --file -',
      cmd: NODE,
      args: () => [BIN, '--db', opt['pg-url'], 'status', '--file', '-', '--format', 'ndjson'],
      ...common,
      stdinFile: addresses.file,
      countLines: true,
      check: statusCheck({ accounts: addresses.known, unknown: addresses.unknown }, LIST),
    },
    psqlFile('psql (minimal join)', minimalListFile, rowCheck(addresses.known)),
    psqlFile('psql (same SQL)', sameListFile, rowCheck(addresses.known)),
  ];
  const batches = Math.ceil(LIST / LOOKUP_BATCH);
  const [file, fileRef, fileSame] = await step(
    `postgres: status --file - (${LIST.toLocaleString('en')} addresses) vs psql (${batches} IN (…) queries: minimal join; mail2fa's own SQL), ${WARMUP + RUNS} rounds`,
    () => measureSet(list, { runs: RUNS, warmup: WARMUP }),
  );
  const listWhat = `status --file - (${LIST.toLocaleString('en')} addresses on stdin)`;
  return {
    kind: 'postgres',
    rows: [
      { what, m: all, ref: allRef, refName: 'psql, mailbox LEFT JOIN factor', target: 1.5, rssTarget: 120 * 1024 },
      { what, m: all, ref: sameRef, refName: 'psql, same SQL', target: 2, rssTarget: 120 * 1024 },
      {
        what: listWhat,
        m: file,
        ref: fileRef,
        refName: `psql, minimal join, same ${batches} batches`,
        target: 1.5,
        rssTarget: 120 * 1024,
      },
      { what: listWhat, m: file, ref: fileSame, refName: 'psql, same SQL', target: 2, rssTarget: 120 * 1024 },
    ],
  };
}

const SQLITE_HOME = join(WORK, 'sqlite-home');
const SQLITE_FILE = join(SQLITE_HOME, 'mail2fa.sqlite');

async function seedSqlite() {
  const { default: Database } = await import('better-sqlite3');
  if (opt.reuse && existsSync(SQLITE_FILE)) {
    const db = new Database(SQLITE_FILE, { readonly: true });
    try {
      if (db.prepare("SELECT v FROM bench_meta WHERE k = 'meta'").pluck().get() === meta) {
        log(`  reusing ${SQLITE_FILE} (seeded by an earlier --keep run)`);
        return;
      }
    } catch {
    } finally {
      db.close();
    }
  }
  rmSync(SQLITE_HOME, { recursive: true, force: true });
  // The embedded default creates its own schema (and the reference mailbox table) on first use.
  mail2faSync(['migrate', '--with-mailbox-table'], childEnv({ MAIL2FA_HOME: SQLITE_HOME }));
  const db = new Database(SQLITE_FILE);
  db.pragma('synchronous = OFF');
  const tables = {
    mailbox: 'mailbox',
    factor: 'mail2fa_factor',
    recovery_code: 'mail2fa_recovery_code',
    account_state: 'mail2fa_account_state',
    challenge: 'mail2fa_challenge',
  };
  db.transaction(() => {
    for (const [name, table] of Object.entries(tables)) {
      const insert = db.prepare(
        `INSERT INTO "${table}" (${COLUMNS[name].map((c) => `"${c}"`).join(', ')}) VALUES (${COLUMNS[name].map(() => '?').join(', ')})`,
      );
      let count = 0;
      for (const row of rows(ds, name, sealed)) {
        insert.run(row);
        count++;
      }
      log(`  ${table}: ${count.toLocaleString('en')} rows`);
    }
    db.exec('CREATE TABLE bench_meta (k TEXT PRIMARY KEY, v TEXT)');
    db.prepare("INSERT INTO bench_meta VALUES ('meta', ?)").run(meta);
  })();
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.close();
}

/** The verify accounts get a real TOTP factor (sealed with the bench key) through mail2fa's own library. */
async function enrolVerifyAccounts(configSources) {
  const { loadConfig } = await dist('config.js');
  const { contextFromConfig } = await dist('context.js');
  const { accountTransaction } = await dist('core/guard.js');
  const { storeFactor } = await dist('core/factors.js');
  const { generateTotpSecret } = await dist('totp/totp.js');
  const env = childEnv(configSources.env);
  const config = await loadConfig({ dbUrl: configSources.dbUrl, env });
  const ctx = contextFromConfig(config, { env, actor: 'bench' });
  const secrets = new Map();
  try {
    for (const i of ds.reserved) {
      const account = ds.emails[i];
      const secret = generateTotpSecret();
      await accountTransaction(ctx, account, (tx) =>
        storeFactor(tx.trx, ctx.tables, tx.vault(), tx.now, { account, method: 'totp', totpSecret: secret }),
      );
      secrets.set(account, secret);
    }
  } finally {
    await ctx.close();
  }
  return secrets;
}

/**
 * The seeded data against mail2fa's own rules, before anything is measured: the schema at mail2fa's latest
 * migration (`mail2fa migrate` recorded it, as on a real install), as many state rows as seeded, and the status
 * summary of every state row agreeing with the detail tables — summaryDrift, what `doctor` checks, which also
 * finds an account with a factor or a temporary code but no state row. Run after the verify accounts were enrolled,
 * so it covers the rows mail2fa's library wrote too. Wrong data throws: no numbers come from it.
 */
async function checkSeededData(configSources) {
  const { loadConfig } = await dist('config.js');
  const { contextFromConfig } = await dist('context.js');
  const { LATEST_MIGRATION, readSchemaVersion } = await dist('db/migrations.js');
  const { summaryDrift } = await dist('db/status-summary.js');
  const env = childEnv(configSources.env);
  const config = await loadConfig({ dbUrl: configSources.dbUrl, env });
  const ctx = contextFromConfig(config, { env, actor: 'bench' });
  const problems = [];
  try {
    const db = await ctx.db();
    const version = await readSchemaVersion(db.knex, ctx.tables);
    if (version !== LATEST_MIGRATION) problems.push(`schema at ${version}, mail2fa's latest is ${LATEST_MIGRATION}`);
    const [{ n: stateRows }] = await db.knex(ctx.tables.accountState).count({ n: '*' });
    if (Number(stateRows) !== exp.stateRows) problems.push(`${stateRows} state rows, seeded ${exp.stateRows}`);
    const drift = await summaryDrift(db.knex, ctx.tables, db.dialect, 5);
    if (drift.count)
      problems.push(
        `the status summary disagrees with the detail tables for ${drift.count} accounts, e.g. ${drift.examples
          .map((e) => `${e.account} (${Array.isArray(e.columns) ? e.columns.join(', ') : e.columns})`)
          .join('; ')}`,
      );
  } finally {
    await ctx.close();
  }
  if (problems.length) throw new Error(`WRONG seeded data: ${problems.join('; ')}`);
}

/* ---------------------------------------------------------------------------------------------------- */
/* Measuring                                                                                             */

const SUMMARY =
  /^(\d+) accounts?, (\d+) with 2FA \((\d+) app, (\d+) SMS(?:, (\d+) temporary codes?)?\), (\d+) without(?:, (\d+) unknown)?/m;

/** Checks mail2fa's summary line (stderr) against what was seeded: a fast wrong answer is no result. */
function summaryCheck(want) {
  return (r) => {
    if (r.code !== 0) return `exit ${r.code}: ${r.stderr.trim().split('\n').slice(-2).join(' | ')}`;
    const m = SUMMARY.exec(r.stderr);
    if (!m) return null; // the wording changed: nothing to compare
    const got = {
      accounts: +m[1],
      enabled: +m[2],
      totp: +m[3],
      sms: +m[4],
      temporaryCode: +(m[5] ?? 0),
      unknown: +(m[7] ?? 0),
    };
    for (const [k, v] of Object.entries(want)) if (got[k] !== v) return `summary says ${k} = ${got[k]}, seeded ${v}`;
    return null;
  };
}

async function verifyAvailable(env) {
  const r = await runOnce(NODE, [BIN, 'verify', '--help'], { env, captureStdout: true, tmp: WORK, timeBin: false });
  return r.code === 0 && !/not (yet )?implemented/i.test(r.stdout + r.stderr);
}

async function measureDb(kind) {
  const mysql = kind === 'mariadb';
  const dbArgs = mysql ? ['--db', opt['mariadb-url']] : [];
  const env = childEnv(mysql ? {} : { MAIL2FA_HOME: SQLITE_HOME });
  const common = { env, tmp: WORK, timeBin };
  const rounds = { runs: RUNS, warmup: WARMUP };
  const ref = await referenceSql(mysql ? 'mysql' : 'sqlite');
  const refName = mysql ? 'mariadb' : 'sqlite3';
  const haveRef = mysql || sqlite3Cli;
  const refSpec = (label, args, extra = {}) =>
    mysql
      ? {
          label,
          cmd: 'mariadb',
          args: () => [...mariadbConn, '--batch', '--quick', '--skip-column-names', DBNAME, ...args],
          ...common,
          env: mariadbEnv,
          ...extra,
        }
      : { label, cmd: 'sqlite3', args: () => ['-batch', SQLITE_FILE, ...args], ...common, ...extra };
  const out = { kind, rows: [] };

  let secrets = null;
  let verifyNote = null;
  if (await verifyAvailable(env)) {
    try {
      secrets = await step('enrolling the verify accounts through the library', () =>
        enrolVerifyAccounts(mysql ? { dbUrl: opt['mariadb-url'] } : { env: { MAIL2FA_HOME: SQLITE_HOME } }),
      );
    } catch (err) {
      verifyNote = `verify not measured: enrolling its accounts failed: ${err.message.split('\n')[0]}`;
    }
  } else
    verifyNote =
      '`mail2fa verify` is not implemented yet in this build: not measured (the bench measures it as soon as it exists)';
  await step('checking the seeded data (schema version, state rows, status summary)', () =>
    checkSeededData(mysql ? { dbUrl: opt['mariadb-url'] } : { env: { MAIL2FA_HOME: SQLITE_HOME } }),
  );

  // Bulk: mail2fa and the client alternate, run by run. Every command's row count is checked (a fast wrong answer
  // is no result): mail2fa prints one NDJSON line per mailbox, the clients one line per row (no header).
  const bulk = [
    {
      label: 'status --all',
      cmd: NODE,
      args: () => [BIN, ...dbArgs, 'status', '--all', '--format', 'ndjson'],
      ...common,
      countLines: true,
      check: statusCheck(
        {
          accounts: exp.accounts,
          enabled: exp.enabled,
          totp: exp.totp,
          sms: exp.sms,
          temporaryCode: exp.temporaryCode,
        },
        exp.accounts,
      ),
    },
  ];
  if (haveRef) {
    bulk.push(
      refSpec(`${refName} (minimal join)`, mysql ? ['-e', ref.minimal] : [ref.minimal], {
        countLines: true,
        check: rowCheck(exp.accounts),
      }),
    );
    bulk.push(
      refSpec(`${refName} (same SQL)`, mysql ? ['-e', ref.all] : [ref.all], {
        countLines: true,
        check: rowCheck(exp.accounts),
      }),
    );
  }
  const [all, allRef = null, allSame = null] = await step(
    `${kind}: status --all --format ndjson${haveRef ? ` vs ${refName} (minimal LEFT JOIN; mail2fa's own SQL)` : ''}, ${WARMUP + RUNS} rounds`,
    () => measureSet(bulk, rounds),
  );
  const bulkWhat = `status --all --format ndjson (${SIZE.toLocaleString('en')} rows)`;
  out.rows.push({
    what: bulkWhat,
    m: all,
    ref: allRef,
    refName: `${refName}, mailbox LEFT JOIN factor`,
    target: 1.5,
    rssTarget: 120 * 1024,
  });
  if (allSame)
    out.rows.push({
      what: bulkWhat,
      m: all,
      ref: allSame,
      refName: `${refName}, same SQL`,
      target: 2,
      rssTarget: 120 * 1024,
    });

  // The list: mail2fa prints a line per address (unknown ones too); the clients a row per known address.
  const list = [
    {
      label: 'status --file -',
      cmd: NODE,
      args: () => [BIN, ...dbArgs, 'status', '--file', '-', '--format', 'ndjson'],
      ...common,
      stdinFile: addresses.file,
      countLines: true,
      check: statusCheck({ accounts: addresses.known, unknown: addresses.unknown }, LIST),
    },
  ];
  if (haveRef) {
    list.push(
      refSpec(`${refName} (minimal join)`, [], {
        stdinFile: ref.minimalListFile,
        countLines: true,
        check: rowCheck(addresses.known),
      }),
    );
    list.push(
      refSpec(`${refName} (same SQL)`, [], {
        stdinFile: ref.listFile,
        countLines: true,
        check: rowCheck(addresses.known),
      }),
    );
  }
  const batches = Math.ceil(LIST / LOOKUP_BATCH);
  const [file, fileRef = null, fileSame = null] = await step(
    `${kind}: status --file - (${LIST.toLocaleString('en')} addresses)${haveRef ? ` vs ${refName} (${batches} IN (…) queries: minimal join; mail2fa's own SQL)` : ''}, ${WARMUP + RUNS} rounds`,
    () => measureSet(list, rounds),
  );
  const listWhat = `status --file - (${LIST.toLocaleString('en')} addresses on stdin)`;
  out.rows.push({
    what: listWhat,
    m: file,
    ref: fileRef,
    refName: `${refName}, minimal join, same ${batches} batches`,
    target: 1.5,
    rssTarget: 120 * 1024,
  });
  if (fileSame)
    out.rows.push({
      what: listWhat,
      m: file,
      ref: fileSame,
      refName: `${refName}, same SQL`,
      target: 2,
      rssTarget: 120 * 1024,
    });

  // Start-up: bare node, one status, one verify, alternating.
  const single = [
    { label: 'node -e 0', cmd: NODE, args: () => ['-e', '0'], ...common },
    { label: 'status <address>', cmd: NODE, args: () => [BIN, ...dbArgs, 'status', smsAccount], ...common },
  ];
  if (secrets) {
    const { totpCode } = await dist('totp/totp.js');
    const accounts = [...secrets.keys()];
    single.push({
      label: 'verify <address>',
      cmd: NODE,
      args: (i) => [BIN, ...dbArgs, 'verify', accounts[i]],
      ...common,
      // One account per run: a TOTP code is accepted once per time step (replay protection).
      before: (i) => ({ stdinText: `${totpCode(secrets.get(accounts[i]), Date.now())}\n` }),
    });
  }
  const [node, one, verify = null] = await step(
    `${kind}: node -e 0 / status <address>${secrets ? ' / verify <address> (TOTP on stdin)' : ''}, ${WARMUP + RUNS} rounds`,
    () => measureSet(single, rounds),
  );
  out.rows.push({ what: 'status <one address>', m: one, ref: node, refName: 'node -e 0', target: 2 });
  if (verify)
    out.rows.push({
      what: 'verify <one address> (correct TOTP)',
      m: verify,
      ref: node,
      refName: 'node -e 0',
      target: 2,
    });
  if (verifyNote) out.note = verifyNote;
  return out;
}

/* ---------------------------------------------------------------------------------------------------- */
/* Run                                                                                                   */

const started = performance.now();
const info = machine({ mariadbArgs: wantMariadb ? mariadbConn : null, sqlite3: wantSqlite && sqlite3Cli });
if (wantPostgres) {
  try {
    info.postgres = psql(['SELECT version()'], { db: 'postgres' })
      .trim()
      .replace(/ on .*$/, '');
  } catch {
    info.postgres = 'PostgreSQL (version unknown)';
  }
}
{
  const { default: Database } = await import('better-sqlite3');
  const mem = new Database(':memory:');
  info.sqliteLib = mem.prepare('SELECT sqlite_version()').pluck().get();
  mem.close();
}
const loadBefore = loadAverage();

/**
 * Start-up anatomy: what loading each library costs on its own (bare node, then node importing the libraries a
 * single-account `status` needs, cumulatively, the way the built CLI loads them: commander, then knex and the
 * MariaDB driver from the bundle's CommonJS files with their code cache, the SQLite addon from node_modules). It
 * shows how much of the start-up no code of mail2fa can win back. zod is not among them: it loads only with a
 * config file that has settings.
 */
async function startupAnatomy() {
  const bundle = join(ROOT, 'bundle');
  const loader = pathToFileURL(join(ROOT, 'scripts', 'code-cache-loader.mjs')).href;
  const script = (lines) => ['--input-type=module', '-e', lines.join(' ')];
  const withKnex = [
    "await import('commander');",
    `const { loadCommonJs } = await import('${loader}');`,
    `const knex = loadCommonJs('${join(bundle, 'knex.cjs')}');`,
  ];
  const steps = [
    ['node -e 0', ['-e', '0']],
    ['+ commander', script(["await import('commander');"])],
    ['+ knex (bundle/knex.cjs, code cache)', script(withKnex)],
    ...(wantMariadb
      ? [
          [
            '+ mysql2 (bundle/mysql2.cjs, code cache)',
            script([...withKnex, `loadCommonJs('${join(bundle, 'mysql2.cjs')}');`]),
          ],
        ]
      : []),
    ...(wantSqlite
      ? [['+ better-sqlite3 (SQLite addon)', script([...withKnex, "await import('better-sqlite3');"])]]
      : []),
  ];
  const specs = steps.map(([label, args]) => ({
    label,
    cmd: NODE,
    args: () => args,
    env: childEnv(),
    tmp: WORK,
    timeBin,
    cwd: ROOT,
  }));
  return measureSet(specs, { runs: RUNS, warmup: WARMUP });
}

const results = [];
const seedTimes = {};
let anatomy;
try {
  if (wantMariadb) {
    const t = performance.now();
    await step(`seeding MariaDB ${DBNAME}`, seedMariadb);
    seedTimes.mariadb = performance.now() - t;
    results.push(await measureDb('mariadb'));
  }
  if (wantSqlite) {
    const t = performance.now();
    await step(`seeding SQLite ${SQLITE_FILE}`, seedSqlite);
    seedTimes.sqlite = performance.now() - t;
    results.push(await measureDb('sqlite'));
  }
  if (wantPostgres) {
    const t = performance.now();
    await step(`seeding PostgreSQL ${PG_DBNAME}`, seedPostgres);
    seedTimes.postgres = performance.now() - t;
    results.push(await measurePostgres());
  }
  anatomy = await step(`start-up anatomy, ${WARMUP + RUNS} rounds`, startupAnatomy);
} finally {
  if (!opt.keep) {
    if (wantMariadb) {
      try {
        mariadb(`DROP DATABASE IF EXISTS \`${DBNAME}\``, { db: null });
      } catch {}
    }
    if (wantPostgres) {
      try {
        psql([`DROP DATABASE IF EXISTS "${PG_DBNAME}" WITH (FORCE)`], { db: 'postgres' });
      } catch {}
    }
    rmSync(WORK, { recursive: true, force: true });
  } else
    log(
      `kept: MariaDB database ${DBNAME}, PostgreSQL database ${PG_DBNAME}, ${WORK} (rerun with --reuse to skip seeding)`,
    );
}
const totalMs = performance.now() - started;
const loadAfter = loadAverage();

/* ---------------------------------------------------------------------------------------------------- */
/* Report                                                                                                */

const fmtMs = (ms) =>
  ms >= 10_000 ? `${(ms / 1000).toFixed(1)} s` : ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${Math.round(ms)} ms`;
const fmtMb = (kb) => (kb === null ? 'n/a' : `${Math.round(kb / 1024)} MB`);
const fmtCpu = (s) => (s === null ? 'n/a' : `${s.toFixed(2)} s`);
let failed = false;
const table = [];
for (const r of results) {
  for (const row of r.rows) {
    const ratio = row.ref ? row.m.ms / row.ref.ms : null;
    const cpuRatio = row.ref && row.m.cpuS !== null && row.ref.cpuS ? row.m.cpuS / row.ref.cpuS : null;
    const timeOk = ratio === null ? null : ratio <= row.target;
    const rssOk = row.rssTarget && row.m.rssKb !== null ? row.m.rssKb <= row.rssTarget : null;
    const problem = row.m.problem ?? row.ref?.problem ?? null;
    const verdict = problem
      ? `WRONG: ${problem}`
      : [timeOk, rssOk].includes(false)
        ? 'MISSED'
        : timeOk === null
          ? '(no reference)'
          : 'met';
    if (problem) failed = true;
    table.push({
      db: { mariadb: 'MariaDB', sqlite: 'SQLite (embedded)', postgres: 'PostgreSQL' }[r.kind],
      what: row.what,
      mail2fa: fmtMs(row.m.ms),
      reference: row.ref ? `${fmtMs(row.ref.ms)} (${row.refName})` : `— (${row.refName} missing)`,
      ratio: ratio === null ? '—' : `${ratio.toFixed(2)}×`,
      target: `≤ ${row.target}×${row.rssTarget ? `, ≤ ${row.rssTarget / 1024} MB` : ''}`,
      rss: fmtMb(row.m.rssKb),
      cpu: `${fmtCpu(row.m.cpuS)} / ${row.ref ? fmtCpu(row.ref.cpuS) : '—'}${cpuRatio === null ? '' : ` (${cpuRatio.toFixed(1)}×)`}`,
      verdict,
      runs: `mail2fa ${row.m.times.map((t) => Math.round(t)).join(', ')}${row.ref ? `; ${row.refName} ${row.ref.times.map((t) => Math.round(t)).join(', ')}` : ''}`,
    });
  }
}
const HEAD = {
  db: 'database',
  what: 'measurement',
  mail2fa: 'mail2fa',
  reference: 'reference',
  ratio: 'ratio',
  target: 'target',
  rss: 'peak RSS',
  cpu: 'CPU mail2fa / ref.',
  verdict: 'verdict',
};
const keys = Object.keys(HEAD);
const widths = keys.map((k) => Math.max(HEAD[k].length, ...table.map((t) => t[k].length)));
const line = (r) =>
  keys
    .map((k, i) => r[k].padEnd(widths[i]))
    .join('  ')
    .trimEnd();
process.stdout.write(
  `\n${line(HEAD)}\n${line(Object.fromEntries(keys.map((k, i) => [k, '-'.repeat(widths[i])])))}\n${table.map(line).join('\n')}\n`,
);
for (const r of results) if (r.note) process.stdout.write(`${r.kind}: ${r.note}\n`);
process.stdout.write(
  `\nstart-up anatomy (wall median / CPU median): ${anatomy.map((a) => `${a.label} ${fmtMs(a.ms)} / ${fmtCpu(a.cpuS)}`).join('; ')}\n`,
);
process.stdout.write(
  `\nwall-time medians of ${RUNS} rounds after ${WARMUP} warm-up round; CPU = user+sys; load average ${loadBefore ?? '?'} before, ${loadAfter ?? '?'} after; whole bench ${secs(totalMs)}\n`,
);

if (!opt['no-write'] && !opt.bin) {
  const md = [];
  md.push(
    `Run of \`npm run bench${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}\` on ${info.date}: ${SIZE.toLocaleString('en')} mailboxes, of which ${exp.totp.toLocaleString('en')} with app 2FA, ${exp.sms.toLocaleString('en')} with SMS and ${exp.temporaryCode.toLocaleString('en')} with a temporary access code, ${exp.recoveryCodes.toLocaleString('en')} recovery codes, ${exp.challenges.toLocaleString('en')} challenges, ${exp.stateRows.toLocaleString('en')} account-state rows (${exp.locked.toLocaleString('en')} locked); address list ${LIST.toLocaleString('en')} (1 % unknown, random order). Wall-time medians of ${RUNS} rounds after ${WARMUP} warm-up round (mail2fa and its reference alternate within a round); CPU = user+sys of the process; whole bench ${secs(totalMs)}${seedTimes.mariadb ? `, seeding MariaDB ${secs(seedTimes.mariadb)}` : ''}${seedTimes.sqlite ? `, seeding SQLite ${secs(seedTimes.sqlite)}` : ''}${seedTimes.postgres ? `, seeding PostgreSQL ${secs(seedTimes.postgres)}` : ''}.`,
  );
  md.push('');
  md.push(
    `Machine: ${info.cores} cores (${info.cpuModel}), ${info.memoryGb} GiB memory, ${info.os}; Node ${info.node}; MariaDB ${info.mariadb}${info.innodbBufferPoolMb ? ` (innodb_buffer_pool_size ${info.innodbBufferPoolMb} MB)` : ''}; SQLite ${info.sqliteLib} (better-sqlite3, what mail2fa uses)${info.sqlite ? `, sqlite3 CLI ${info.sqlite}` : ''}${info.postgres ? `; ${info.postgres}` : ''}. Load average (1 min) ${loadBefore ?? '?'} at the start, ${loadAfter ?? '?'} at the end: other work on the machine during the run slows every command, the references too.`,
  );
  md.push('');
  md.push(
    '| database | measurement | mail2fa | reference | ratio | target | mail2fa peak RSS | CPU mail2fa / reference | verdict |',
  );
  md.push('|---|---|---:|---:|---:|---|---:|---:|---|');
  for (const t of table)
    md.push(
      `| ${t.db} | ${t.what} | ${t.mail2fa} | ${t.reference} | ${t.ratio} | ${t.target} | ${t.rss} | ${t.cpu} | ${t.verdict} |`,
    );
  md.push('');
  md.push('Start-up anatomy (the libraries a single-account `status` loads, imported by bare node, cumulatively):');
  md.push('');
  md.push('| step | wall (median) | CPU (median) |');
  md.push('|---|---:|---:|');
  for (const a of anatomy) md.push(`| ${a.label} | ${fmtMs(a.ms)} | ${fmtCpu(a.cpuS)} |`);
  md.push('');
  md.push('Wall times of every counted run (ms), in order:');
  md.push('');
  for (const t of table) md.push(`- ${t.db}, ${t.what}: ${t.runs}`);
  for (const r of results)
    if (r.note) md.push(`- ${{ mariadb: 'MariaDB', sqlite: 'SQLite', postgres: 'PostgreSQL' }[r.kind]}: ${r.note}`);
  const START = '<!-- bench:results:start (written by bench/run.mjs) -->';
  const END = '<!-- bench:results:end -->';
  const block = `${START}\n${md.join('\n')}\n${END}`;
  let doc = existsSync(DOC) ? readFileSync(DOC, 'utf8') : `# Benchmarks\n\n## Latest run\n\n${START}\n${END}\n`;
  if (!doc.includes(START) || !doc.includes(END)) doc += `\n## Latest run\n\n${START}\n${END}\n`;
  doc = doc.slice(0, doc.indexOf(START)) + block + doc.slice(doc.indexOf(END) + END.length);
  writeFileSync(DOC, doc);
  log(`written to ${DOC}`);
}
process.exitCode = failed ? 1 : 0;

// The store adapters (bench/stores.mjs, its own section of docs/benchmarks.md) after the core measurements.
if (!opt.bin) {
  const stores = spawnSync(
    NODE,
    [join(ROOT, 'bench', 'stores.mjs'), '--runs', String(RUNS), ...(opt['no-write'] ? ['--no-write'] : [])],
    {
      stdio: 'inherit',
    },
  );
  if (stores.status !== 0) process.exitCode = 1;
}
