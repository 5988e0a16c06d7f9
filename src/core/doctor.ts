/**
 * `doctor`: every check in one report, each ok / warn / fail (or skip, when what it needs is broken) with a
 * hint. Checks never throw: a broken piece becomes a failed check, so one run shows everything that is wrong —
 * an invalid configuration, a stopped database or an unreadable key included.
 */
import { columnsOf, serverVersion, tableEngines } from '../db/inspect.js';
import { accessSync, constants as fsc, statSync } from 'node:fs';
import { join } from 'node:path';
import { loadConfig } from '../config.js';
import type { Context, ContextOptions } from '../context.js';
import { contextFromConfig, schemaVersion } from '../context.js';
import type { MasterKey } from '../crypto/keys.js';
import { openDatabase, type Database } from '../db/connection.js';
import { readGaleraState } from '../db/galera.js';
import { missingMailboxTableHint } from '../db/accounts.js';
import { LATEST_MIGRATION } from '../db/migrations.js';
import { countStateRows, summaryDrift } from '../db/status-summary.js';
import { ExitCode, Mail2faError } from '../errors.js';
import { escapeControl } from '../text.js';
import { sampleDecrypt } from './keys.js';

export interface Check {
  name: string;
  status: 'ok' | 'warn' | 'fail' | 'skip';
  detail: string;
  hint?: string;
  /** For failures: which exit code this failure stands for (69 unavailable, 78 configuration). */
  exitCode?: number;
}

export interface DoctorReport {
  checks: Check[];
  /** Things worth telling once (e.g. "created key file …"). */
  notices: string[];
}

const fail = (name: string, err: unknown, fallbackCode: number = ExitCode.CONFIG): Check => {
  if (err instanceof Mail2faError)
    return {
      name,
      status: 'fail',
      detail: err.message,
      hint: err.hint,
      exitCode: err.exitCode === ExitCode.UNAVAILABLE ? ExitCode.UNAVAILABLE : ExitCode.CONFIG,
    };
  return {
    name,
    status: 'fail',
    detail: (err as Error).message?.split('\n')[0] ?? String(err),
    exitCode: fallbackCode,
  };
};

const skip = (name: string, why: string): Check => ({ name, status: 'skip', detail: `not checked: ${why}` });

/** The exit code a report stands for: 0, or 69 when anything is unavailable, else 78. */
export function doctorExitCode(checks: Check[]): number {
  const failed = checks.filter((c) => c.status === 'fail');
  if (failed.length === 0) return ExitCode.OK;
  return failed.some((c) => c.exitCode === ExitCode.UNAVAILABLE) ? ExitCode.UNAVAILABLE : ExitCode.CONFIG;
}

/** Loads the configuration itself, so that an invalid one is reported as a failed check rather than aborting. */
export async function doctor(options: ContextOptions): Promise<DoctorReport> {
  let ctx: Context;
  try {
    ctx = contextFromConfig(await loadConfig(options), {
      ...options,
      skipSchemaCheck: true,
      existingDatabaseOnly: true,
    });
  } catch (err) {
    const names = ['database', 'schema', 'account mapping', 'status summary', 'key', 'sms gateway', 'sign-out action'];
    return { checks: [fail('config', err), ...names.map((n) => skip(n, 'the configuration is invalid'))], notices: [] };
  }
  try {
    const checks = await runDoctor(ctx);
    return { checks, notices: ctx.notices };
  } finally {
    await ctx.close();
  }
}

export async function runDoctor(ctx: Context): Promise<Check[]> {
  const checks: Check[] = [];
  const cfg = ctx.config;
  checks.push({
    name: 'config',
    status: 'ok',
    detail: cfg.configPath ? `loaded ${cfg.configPath}` : 'no config file; defaults and environment',
  });

  let db: Database | undefined;
  let dbError: unknown;
  try {
    db = await ctx.db();
    const version =
      db.dialect === 'sqlite'
        ? `SQLite ${await serverVersion(db)}, file ${db.file}${cfg.db.embedded ? ' (embedded default)' : ''}`
        : `${await serverVersion(db)} at ${db.displayUrl}`;
    checks.push({ name: 'database', status: 'ok', detail: version });
  } catch (err) {
    checks.push(fail('database', err, ExitCode.UNAVAILABLE));
    dbError = err;
  }
  if (/^(mysql|mariadb):/.test(cfg.db.url)) {
    const galera = await galeraCheck(ctx, db, dbError);
    if (galera) checks.push(galera);
  }

  let schemaOk = false;
  if (!db) {
    checks.push(skip('schema', 'the database is unavailable'));
    if (/^(mysql|mariadb):/.test(cfg.db.url)) checks.push(skip('storage engine', 'the database is unavailable'));
    checks.push(skip('account mapping', 'the database is unavailable'));
    checks.push(skip('status summary', 'the database is unavailable'));
  } else {
    try {
      const version = await schemaVersion(db, ctx.tables);
      schemaOk = version === LATEST_MIGRATION;
      if (schemaOk)
        checks.push({
          name: 'schema',
          status: 'ok',
          detail: `up to date (${version}), tables prefixed ${cfg.tablePrefix}`,
        });
      else
        checks.push({
          name: 'schema',
          status: 'fail',
          detail: version ? `out of date (${version}, needs ${LATEST_MIGRATION})` : "mail2fa's tables do not exist",
          hint: 'Run `mail2fa migrate`.',
          exitCode: ExitCode.CONFIG,
        });
    } catch (err) {
      checks.push(fail('schema', err));
    }
    if (db.dialect === 'mysql') checks.push(await storageEngineCheck(ctx, db));
    checks.push(...(await mappingChecks(ctx, db)));
    checks.push(schemaOk ? await summaryCheck(ctx, db) : skip('status summary', 'the schema is not up to date'));
  }

  checks.push(
    await keyCheck(ctx, schemaOk ? db : undefined, db ? 'the schema is not up to date' : 'the database is unavailable'),
  );

  try {
    const sms = await ctx.sms();
    const result = await sms.check();
    const detail = result.detail.startsWith(`${sms.transport}:`) ? result.detail : `${sms.transport}: ${result.detail}`;
    checks.push(
      result.ok
        ? { name: 'sms gateway', status: 'ok', detail }
        : {
            name: 'sms gateway',
            status: 'fail',
            detail,
            hint: 'Check sms.* in the config.',
            exitCode: ExitCode.UNAVAILABLE,
          },
    );
  } catch (err) {
    checks.push(fail('sms gateway', err, ExitCode.UNAVAILABLE));
  }

  checks.push(signOutCheck(ctx));
  checks.push(...(await storeChecks(ctx)));
  return checks;
}

/** Each configured foreign store checks itself (reachable, schema, read-only user, plaintext secrets, bypasses). */
async function storeChecks(ctx: Context): Promise<Check[]> {
  if (ctx.config.stores.length === 0) return [{ name: 'stores', status: 'ok', detail: "mail2fa's own store only" }];
  const checks: Check[] = [
    {
      name: 'stores',
      status: 'ok',
      detail: `mail2fa, then ${ctx.config.stores.map((s) => `${s.name} (${s.kind})`).join(', ')}`,
    },
  ];
  let stores;
  try {
    stores = await ctx.stores();
  } catch (err) {
    return [fail('stores', err)];
  }
  for (const store of stores) {
    try {
      checks.push(...(await store.doctor()));
    } catch (err) {
      checks.push(fail(`store ${store.name}`, err));
    }
    if (store.plaintextSecrets) {
      const entry = ctx.config.stores.find((s) => s.name === store.name);
      checks.push({
        name: `store ${store.name} secrets`,
        status: 'warn',
        detail: `${store.kind} keeps TOTP secrets in PLAINTEXT${entry?.allowPlaintextWrites ? '; allowPlaintextWrites: mail2fa may write secrets there' : '; mail2fa never writes secrets there'}`,
        hint: 'Anyone who can read that database can compute the codes; consider `mail2fa migrate-from` into the encrypted store.',
      });
    }
  }
  return checks;
}

/**
 * On a Galera node: wsrep_ready and wsrep_cluster_status (and whether reads wait for the cluster). A node outside
 * the primary component refuses mail2fa's sessions, so it is asked again on a connection that only reads status.
 */
async function galeraCheck(ctx: Context, db: Database | undefined, dbError: unknown): Promise<Check | null> {
  let probe = db;
  let opened: Database | undefined;
  try {
    if (!probe) {
      if (!(dbError instanceof Mail2faError && dbError.code === 'db_not_ready')) return null;
      probe = opened = await openDatabase({ ...ctx.config.db, refuseNotReadyNode: false });
    }
    const state = await readGaleraState(probe);
    if (!state) return null;
    const detail = `node ${state.node} at ${probe.displayUrl}: wsrep_ready ${state.ready}, wsrep_cluster_status ${state.clusterStatus}, cluster size ${state.clusterSize}, ${state.localState}`;
    if (state.ready !== 'ON' || state.clusterStatus !== 'Primary') {
      return {
        name: 'galera',
        status: 'fail',
        detail,
        hint: `This node is outside the cluster's primary component: point --db / MAIL2FA_DB_URL at another node, or bring ${state.node} back into the cluster.`,
        exitCode: ExitCode.UNAVAILABLE,
      };
    }
    return {
      name: 'galera',
      status: 'ok',
      detail: `${detail}; reads wait for the cluster (wsrep_sync_wait=${state.syncWait})`,
    };
  } catch (err) {
    return fail('galera', err, ExitCode.UNAVAILABLE);
  } finally {
    await opened?.close();
  }
}

async function storageEngineCheck(ctx: Context, db: Database): Promise<Check> {
  try {
    const tables = ctx.tables;
    const rows = await tableEngines(db, [
      tables.factor,
      tables.recoveryCode,
      tables.enrolment,
      tables.challenge,
      tables.smsSend,
      tables.accountState,
      tables.audit,
      tables.codeKey,
      tables.migrations,
      ctx.mapping.table,
    ]);
    const bad = rows.filter((r) => r.engine !== 'InnoDB');
    return bad.length
      ? {
          name: 'storage engine',
          status: 'fail',
          detail: `not InnoDB: ${bad.map((r) => `${r.name} (${r.engine})`).join(', ')}`,
          hint: 'ALTER TABLE … ENGINE=InnoDB: transactions and row locks need it.',
          exitCode: ExitCode.CONFIG,
        }
      : { name: 'storage engine', status: 'ok', detail: `all ${rows.length} tables are InnoDB` };
  } catch (err) {
    return fail('storage engine', err);
  }
}

/** Accounts named in a failed summary check; the count says how many more there are. */
const SUMMARY_EXAMPLES = 5;

/**
 * The status summary in the state rows (src/db/status-summary.ts) against the detail tables it is computed from.
 * Every change keeps it current in its own transaction, so drift means something bypassed mail2fa: rows edited
 * by hand, a restore of some tables only, or a writer of an older mail2fa still running after the upgrade.
 * `status` would show the stale values; `migrate --refresh-summary` recomputes them. A failure is 78, like the
 * schema check's: the database needs a mail2fa command run against it, nothing is unavailable.
 */
async function summaryCheck(ctx: Context, db: Database): Promise<Check> {
  try {
    const rows = await countStateRows(db.knex, ctx.tables);
    const drift = await summaryDrift(db.knex, ctx.tables, db.dialect, SUMMARY_EXAMPLES);
    if (drift.count === 0)
      return {
        name: 'status summary',
        status: 'ok',
        detail: `matches the 2FA tables in all ${rows} account state row(s)`,
      };
    // Accounts are data (rows edited by hand, even): escaped here so that one cannot break the line or the
    // report (the renderer escapes again, which leaves these alone), and cut to a sane length.
    const lines = drift.examples.map(
      (e) =>
        `${escapeControl(e.account.slice(0, 320))}: ${e.columns === 'missing row' ? 'no state row' : e.columns.join(', ')}`,
    );
    const more = drift.count - drift.examples.length;
    if (more > 0) lines.push(`… and ${more} more`);
    return {
      name: 'status summary',
      status: 'fail',
      detail: [
        `${drift.count} account(s) whose summary disagrees with the 2FA tables (${rows} state row(s) compared):`,
        ...lines,
      ].join('\n'),
      hint: 'Run `mail2fa migrate --refresh-summary` (safe while mail2fa runs); until then `status` shows the stale values.',
      exitCode: ExitCode.CONFIG,
    };
  } catch (err) {
    return fail('status summary', err);
  }
}

async function mappingChecks(ctx: Context, db: Database): Promise<Check[]> {
  const mapping = ctx.mapping;
  let info: Record<string, unknown>;
  try {
    info = await columnsOf(db, mapping.table);
  } catch (err) {
    return [fail('account mapping', err)];
  }
  const wanted = [
    mapping.email,
    mapping.password,
    mapping.active,
    mapping.domain,
    mapping.alternateEmail,
    mapping.totpSecret,
  ].filter((c): c is string => Boolean(c));
  const missing = wanted.filter((c) => !(c in info));
  if (Object.keys(info).length === 0) {
    return [
      {
        name: 'account mapping',
        status: 'fail',
        detail: `table ${mapping.table} not found (preset ${mapping.preset})`,
        hint: missingMailboxTableHint(mapping),
        exitCode: ExitCode.CONFIG,
      },
    ];
  }
  if (missing.length) {
    return [
      {
        name: 'account mapping',
        status: 'fail',
        detail: `table ${mapping.table} lacks column(s) ${missing.join(', ')} (preset ${mapping.preset})`,
        hint: 'Set accounts.columns in the config (null for optional columns the table lacks).',
        exitCode: ExitCode.CONFIG,
      },
    ];
  }
  const checks: Check[] = [
    {
      name: 'account mapping',
      status: 'ok',
      detail: `${mapping.table}(${wanted.join(', ')}), preset ${mapping.preset}`,
    },
  ];
  return checks;
}

function keySource(ctx: Context, key: MasterKey): string {
  const embedded = `${ctx.config.db.url.slice('sqlite:'.length)}.key`;
  const file = key.source === 'file' && ctx.config.key.file ? ctx.config.key.file : embedded;
  if (key.source === 'env') return 'MAIL2FA_KEY (environment)';
  let mode = '';
  try {
    mode = `, mode ${(statSync(file).mode & 0o777).toString(8).padStart(4, '0')}`;
  } catch {
    /* the loader read it a moment ago; a vanished file is reported by the next command */
  }
  return `${key.source === 'created' ? 'new key file ' : ''}${file}${mode}`;
}

async function keyCheck(ctx: Context, db: Database | undefined, whyNoSample: string): Promise<Check> {
  let key: MasterKey;
  try {
    key = ctx.masterKey();
  } catch (err) {
    return fail('key', err);
  }
  const detail = `key ${key.id} from ${keySource(ctx, key)}`;
  if (!db)
    return { name: 'key', status: 'ok', detail: `${detail}; not tested against stored secrets (${whyNoSample})` };
  try {
    const sample = await sampleDecrypt(db, ctx.tables, key);
    if (sample.failure) {
      const failure = sample.failure;
      return {
        name: 'key',
        status: 'fail',
        detail: `${detail} does NOT decrypt stored secrets: ${failure.table}.${failure.column} of ${failure.account} ${failure.reason}`,
        hint: 'Load the key this database was encrypted with (MAIL2FA_KEY_FILE / key.file); `mail2fa keys check` lists every value.',
        exitCode: ExitCode.CONFIG,
      };
    }
    return {
      name: 'key',
      status: 'ok',
      detail: sample.tried
        ? `${detail}; decrypts a sample of ${sample.tried} stored secret(s)`
        : `${detail}; no stored secrets yet to test it against`,
    };
  } catch (err) {
    return fail('key', err);
  }
}

function findProgram(file: string): string | null {
  const candidates = file.includes('/')
    ? [file]
    : (process.env.PATH ?? '')
        .split(':')
        .filter(Boolean)
        .map((dir) => join(dir, file));
  for (const path of candidates) {
    try {
      accessSync(path, fsc.X_OK);
      if (statSync(path).isFile()) return path;
    } catch {
      /* not here */
    }
  }
  return null;
}

function signOutCheck(ctx: Context): Check {
  const so = ctx.config.signOut;
  if (so.action === 'none') {
    return {
      name: 'sign-out action',
      status: 'warn',
      detail: 'none configured: mail2fa records the revocation time only',
      hint: 'Set signOut.action to "sql" (delete webmail sessions) or "command" (e.g. doveadm kick -- {email}).',
    };
  }
  if (so.action === 'sql') {
    const sql = so.sql ?? '';
    return /\?|:email\b/.test(sql)
      ? { name: 'sign-out action', status: 'ok', detail: `SQL: ${sql}` }
      : {
          name: 'sign-out action',
          status: 'warn',
          detail: `SQL without a ? or :email placeholder: ${sql}`,
          hint: 'The statement runs for every account as it is; bind the address with ? or :email.',
        };
  }
  const argv = so.command ?? [];
  const program = findProgram(argv[0] ?? '');
  if (!program) {
    return {
      name: 'sign-out action',
      status: 'fail',
      detail: `command ${argv[0]} not found or not executable${argv[0]?.includes('/') ? '' : ' in PATH'}`,
      hint: 'Fix signOut.command (an absolute path is safest).',
      exitCode: ExitCode.CONFIG,
    };
  }
  // An address may begin with "-" (-f@example.com is valid): as an argument of its own, the program would read
  // it as an option unless "--" ends the options first.
  const email = argv.findIndex((a, i) => i > 0 && a.startsWith('{email}'));
  if (email > 0 && !argv.slice(1, email).includes('--')) {
    return {
      name: 'sign-out action',
      status: 'warn',
      detail: `command: ${argv.join(' ')} (${program}): no "--" before {email}`,
      hint: 'An address may begin with "-" and would then be read as an option: put "--" before it, e.g. [doveadm, kick, "--", "{email}"].',
    };
  }
  return { name: 'sign-out action', status: 'ok', detail: `command: ${argv.join(' ')} (${program})` };
}
