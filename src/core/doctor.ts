/**
 * `doctor`: every check in one report, each ok / warn / fail with a hint. Checks never throw: a broken piece
 * becomes a failed check, so one run shows everything that is wrong.
 */
import { statSync } from 'node:fs';
import type { Context } from '../context.js';
import { schemaVersion } from '../context.js';
import type { Database } from '../db/connection.js';
import { LATEST_MIGRATION } from '../db/migrations.js';
import { ExitCode, Mail2faError } from './errors.js';

export interface Check {
  name: string;
  status: 'ok' | 'warn' | 'fail' | 'skip';
  detail: string;
  hint?: string;
  /** For failures: which exit code this failure stands for (69 unavailable, 78 configuration). */
  exitCode?: number;
}

const fail = (name: string, err: unknown, fallbackCode: number = ExitCode.CONFIG): Check => {
  if (err instanceof Mail2faError) return { name, status: 'fail', detail: err.message, hint: err.hint, exitCode: err.exitCode === ExitCode.UNAVAILABLE ? ExitCode.UNAVAILABLE : ExitCode.CONFIG };
  return { name, status: 'fail', detail: (err as Error).message?.split('\n')[0] ?? String(err), exitCode: fallbackCode };
};

export async function runDoctor(ctx: Context): Promise<{ checks: Check[] }> {
  const checks: Check[] = [];
  const cfg = ctx.config;
  checks.push({ name: 'config', status: 'ok', detail: cfg.configPath ? `loaded ${cfg.configPath}` : 'no config file; defaults and environment' });

  let db: Database | undefined;
  try {
    db = await ctx.db();
    const version = db.dialect === 'sqlite'
      ? `SQLite ${((await db.knex.raw('select sqlite_version() as v')) as { v: string }[])[0]!.v}, file ${db.file}${cfg.db.embedded ? ' (embedded default)' : ''}`
      : `${((await db.knex.raw('select version() as v')) as [{ v: string }[]])[0][0]!.v} at ${db.displayUrl}`;
    checks.push({ name: 'database', status: 'ok', detail: version });
  } catch (err) {
    checks.push(fail('database', err, ExitCode.UNAVAILABLE));
  }

  if (db) {
    try {
      const version = await schemaVersion(db, ctx.tables);
      if (version === LATEST_MIGRATION) checks.push({ name: 'schema', status: 'ok', detail: `up to date (${version}), tables prefixed ${cfg.tablePrefix}` });
      else checks.push({ name: 'schema', status: 'fail', detail: version ? `out of date (${version}, needs ${LATEST_MIGRATION})` : "mail2fa's tables do not exist", hint: 'Run `mail2fa migrate`.', exitCode: ExitCode.CONFIG });
    } catch (err) {
      checks.push(fail('schema', err));
    }
    if (db.dialect === 'mysql') {
      try {
        const [rows] = (await db.knex.raw(
          'SELECT TABLE_NAME AS name, ENGINE AS engine FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME IN (?, ?, ?, ?, ?, ?, ?, ?, ?)',
          [ctx.tables.factor, ctx.tables.recoveryCode, ctx.tables.enrolment, ctx.tables.challenge, ctx.tables.smsSend, ctx.tables.accountState, ctx.tables.audit, ctx.tables.codeKey, ctx.mapping.table],
        )) as [{ name: string; engine: string }[]];
        const bad = rows.filter((r) => r.engine !== 'InnoDB');
        checks.push(bad.length
          ? { name: 'storage engine', status: 'fail', detail: `not InnoDB: ${bad.map((r) => `${r.name} (${r.engine})`).join(', ')}`, hint: 'ALTER TABLE … ENGINE=InnoDB: transactions and row locks need it.', exitCode: ExitCode.CONFIG }
          : { name: 'storage engine', status: 'ok', detail: `all ${rows.length} tables are InnoDB` });
      } catch (err) {
        checks.push(fail('storage engine', err));
      }
    }
    try {
      const m = ctx.mapping;
      const info = (await db.knex(m.table).columnInfo()) as Record<string, unknown>;
      const wanted = [m.email, m.password, m.active, m.domain, m.alternateEmail, m.totpSecret].filter((c): c is string => Boolean(c));
      const missing = wanted.filter((c) => !(c in info));
      if (Object.keys(info).length === 0) checks.push({ name: 'account mapping', status: 'fail', detail: `table ${m.table} not found (preset ${m.preset})`, hint: 'Set accounts.preset / accounts.table / accounts.tablePrefix in the config.', exitCode: ExitCode.CONFIG });
      else if (missing.length) checks.push({ name: 'account mapping', status: 'fail', detail: `table ${m.table} lacks column(s) ${missing.join(', ')} (preset ${m.preset})`, hint: 'Set accounts.columns in the config (null for optional columns the table lacks).', exitCode: ExitCode.CONFIG });
      else checks.push({ name: 'account mapping', status: 'ok', detail: `${m.table}(${wanted.join(', ')}), preset ${m.preset}` });
    } catch (err) {
      checks.push(fail('account mapping', err));
    }
  }

  try {
    const key = ctx.masterKey();
    const source = process.env.MAIL2FA_KEY ? 'MAIL2FA_KEY' : (cfg.key.file ?? `${cfg.db.url.slice('sqlite:'.length)}.key`);
    let detail = `key ${key.id} from ${source}`;
    if (!process.env.MAIL2FA_KEY && cfg.key.file) detail += ` (mode ${(statSync(cfg.key.file).mode & 0o777).toString(8)})`;
    checks.push({ name: 'key', status: 'ok', detail });
  } catch (err) {
    checks.push(fail('key', err));
  }

  try {
    const sms = await ctx.sms();
    const result = await sms.check();
    checks.push(result.ok ? { name: 'sms gateway', status: 'ok', detail: `${sms.transport}: ${result.detail}` } : { name: 'sms gateway', status: 'fail', detail: `${sms.transport}: ${result.detail}`, hint: 'Check sms.* in the config.', exitCode: ExitCode.UNAVAILABLE });
  } catch (err) {
    checks.push(fail('sms gateway', err, ExitCode.UNAVAILABLE));
  }

  const so = cfg.signOut;
  checks.push(so.action === 'none'
    ? { name: 'sign-out action', status: 'warn', detail: 'none configured: mail2fa records the revocation time only', hint: 'Set signOut.action to "sql" (delete webmail sessions) or "command" (e.g. doveadm kick {email}).' }
    : { name: 'sign-out action', status: 'ok', detail: so.action === 'sql' ? `SQL: ${so.sql}` : `command: ${so.command!.join(' ')}` });
  return { checks };
}
