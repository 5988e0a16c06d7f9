/**
 * Configuration: defaults < config file (YAML or JSON) < environment < flags. Validated with zod; every problem
 * is reported at once (exit 78). Nothing here opens a database or reads a key.
 */
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { z } from 'zod';
import { configError } from './core/errors.js';
import { escapeControl } from './core/text.js';

const identifier = z.string().regex(/^[A-Za-z_][A-Za-z0-9_]{0,63}$/, 'must be a plain SQL identifier (letters, digits, _)');
const prefix = z.string().regex(/^[A-Za-z0-9_]{0,32}$/, 'may hold only letters, digits and _ (at most 32)');

const AccountsSchema = z.strictObject({
  /** `mail2fa`: the reference `mailbox` table; `postfixadmin`: PostfixAdmin's `mailbox` table. */
  preset: z.enum(['mail2fa', 'postfixadmin']).default('mail2fa'),
  /** Prefix of the mail system's tables (PostfixAdmin's $CONF['database_prefix']). */
  tablePrefix: prefix.default(''),
  table: identifier.optional(),
  columns: z
    .strictObject({
      email: identifier,
      password: identifier,
      active: identifier,
      domain: identifier,
      alternateEmail: identifier.nullable(),
      totpSecret: identifier.nullable(),
    })
    .partial()
    .default({}),
});

const SmsSchema = z.strictObject({
  transport: z.enum(['outbox', 'webhook', 'twilio']).default('outbox'),
  timeoutMs: z.number().int().min(100).max(120_000).default(10_000),
  outbox: z.strictObject({ path: z.string().min(1).optional() }).default({}),
  webhook: z
    .strictObject({
      url: z.url().optional(),
      /** e.g. "Authorization: Bearer abc"; or from a file / env (MAIL2FA_SMS_WEBHOOK_AUTH_HEADER[_FILE]). */
      authHeader: z.string().optional(),
      authHeaderFile: z.string().optional(),
    })
    .default({}),
  twilio: z
    .strictObject({
      baseUrl: z.url().default('https://api.twilio.com'),
      accountSid: z.string().optional(),
      authToken: z.string().optional(),
      authTokenFile: z.string().optional(),
      from: z.string().optional(),
    })
    .default({ baseUrl: 'https://api.twilio.com' }),
});

const SignOutSchema = z.strictObject({
  action: z.enum(['none', 'sql', 'command']).default('none'),
  /** Parameterised statement; `?` (or `:email`) is bound to the address. Runs in the command's transaction. */
  sql: z.string().optional(),
  /** argv of a program run without a shell; the string "{email}" in any argument is replaced by the address. */
  command: z.array(z.string().min(1)).min(1).optional(),
});

export const ConfigFileSchema = z.strictObject({
  db: z
    .strictObject({
      url: z.string().min(1).optional(),
      connectTimeoutMs: z.number().int().min(100).max(120_000).default(5000),
    })
    .default({ connectTimeoutMs: 5000 }),
  /** Prefix of mail2fa's own tables. */
  tablePrefix: prefix.default('mail2fa_'),
  accounts: AccountsSchema.default({ preset: 'mail2fa', tablePrefix: '', columns: {} }),
  key: z.strictObject({ file: z.string().min(1).optional() }).default({}),
  issuer: z.string().min(1).max(64).default('Webmail'),
  sms: SmsSchema.default(SmsSchema.parse({})),
  signOut: SignOutSchema.default({ action: 'none' }),
  /** Regular expression a customer-service ticket ID must match. */
  ticketPattern: z.string().default('^[A-Za-z0-9][A-Za-z0-9._:#/-]{0,63}$'),
});
export type ConfigFile = z.infer<typeof ConfigFileSchema>;

export interface Config extends ConfigFile {
  db: ConfigFile['db'] & { url: string; embedded: boolean };
  /** Where the embedded default keeps its files (database, key, SMS outbox). */
  dataDir: string;
  /** Where the config came from, for `doctor`. */
  configPath?: string;
}

export interface ConfigSources {
  /** --config */
  configPath?: string;
  /** The settings of a config file given as an object (library users); ignored when configPath is set. */
  configObject?: unknown;
  /** --db */
  dbUrl?: string;
  env?: NodeJS.ProcessEnv;
}

export function defaultDataDir(env: NodeJS.ProcessEnv): string {
  if (env.MAIL2FA_HOME) return resolve(env.MAIL2FA_HOME);
  const base = env.XDG_DATA_HOME && isAbsolute(env.XDG_DATA_HOME) ? env.XDG_DATA_HOME : join(homedir(), '.local', 'share');
  return join(base, 'mail2fa');
}

export function defaultDbUrl(dataDir: string): string {
  return `sqlite:${join(dataDir, 'mail2fa.sqlite')}`;
}

function formatIssues(error: z.ZodError, source: string): string[] {
  // Keys come from the file as written: escaped, so a key cannot forge a line of the report.
  return error.issues.map((issue) => escapeControl(`${source}: ${issue.path.length ? issue.path.map(String).join('.') : '(top level)'}: ${issue.message}`));
}

async function readConfigFile(path: string): Promise<unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw configError('config_unreadable', `cannot read config file ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, 'Check the path given with --config or MAIL2FA_CONFIG.');
  }
  const json = /\.json$/i.test(path);
  let syntaxErrors: string[];
  try {
    if (json) return JSON.parse(text);
    const { parseDocument } = await import('yaml');
    const doc = parseDocument(text);
    syntaxErrors = doc.errors.map((e) => e.message.split('\n')[0]!.replace(/:$/, ''));
    if (!syntaxErrors.length) return doc.toJS() ?? {};
  } catch (err) {
    syntaxErrors = [(err as Error).message.split('\n')[0]!];
  }
  // Every syntax error the parser found, at once (YAML); JSON.parse stops at its first.
  throw configError(
    'config_syntax',
    `config file ${path} is not valid ${json ? 'JSON' : 'YAML'} (${syntaxErrors.length} error${syntaxErrors.length === 1 ? '' : 's'}):\n  ${syntaxErrors.map((e) => escapeControl(e)).join('\n  ')}`,
    'Fix the syntax above; see README "Configuration".',
  );
}

/** Loads and validates the configuration. All problems are reported at once in one exit-78 error. */
export async function loadConfig(sources: ConfigSources = {}): Promise<Config> {
  const env = sources.env ?? process.env;
  const configPath = sources.configPath ?? (env.MAIL2FA_CONFIG || undefined);
  const problems: string[] = [];
  let raw: unknown = {};
  if (configPath) raw = await readConfigFile(configPath);
  else if (sources.configObject !== undefined) raw = sources.configObject;
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) {
    throw configError('config_invalid', `config file ${configPath}: must hold a mapping of settings`);
  }
  const source = configPath ?? 'config';
  const parsed = ConfigFileSchema.safeParse(raw);
  if (!parsed.success) problems.push(...formatIssues(parsed.error, source));

  const dbUrl = sources.dbUrl ?? (env.MAIL2FA_DB_URL || undefined);
  if (dbUrl !== undefined) problems.push(...checkDbUrl(dbUrl, sources.dbUrl !== undefined ? '--db' : 'MAIL2FA_DB_URL'));
  const file = parsed.success ? parsed.data : undefined;
  if (file?.db.url !== undefined && dbUrl === undefined) problems.push(...checkDbUrl(file.db.url, `${source}: db.url`));
  if (file) {
    try {
      new RegExp(file.ticketPattern);
    } catch {
      problems.push(`${source}: ticketPattern: not a valid regular expression`);
    }
    if (file.signOut.action === 'sql' && !file.signOut.sql) problems.push(`${source}: signOut.sql: required when signOut.action is "sql"`);
    if (file.signOut.action === 'command' && !file.signOut.command) problems.push(`${source}: signOut.command: required when signOut.action is "command"`);
    if (file.sms.transport === 'webhook' && !file.sms.webhook.url) problems.push(`${source}: sms.webhook.url: required when sms.transport is "webhook"`);
    if (file.sms.transport === 'twilio') {
      for (const k of ['accountSid', 'from'] as const) if (!file.sms.twilio[k]) problems.push(`${source}: sms.twilio.${k}: required when sms.transport is "twilio"`);
    }
  }
  if (problems.length || !file) {
    throw configError('config_invalid', `invalid configuration (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n  ${problems.join('\n  ')}`, 'Fix the settings above; see README "Configuration".');
  }

  const dataDir = defaultDataDir(env);
  // Relative paths written in a config file are relative to that file, wherever the command runs from.
  const baseDir = configPath ? dirname(resolve(configPath)) : process.cwd();
  const fromFile = (path: string | undefined) => (path === undefined ? undefined : resolve(baseDir, path));
  const fileDbUrl = file.db.url?.startsWith('sqlite:') ? `sqlite:${fromFile(file.db.url.slice('sqlite:'.length))}` : file.db.url;
  const url = dbUrl ?? fileDbUrl ?? defaultDbUrl(dataDir);
  const keyFile = env.MAIL2FA_KEY_FILE || fromFile(file.key.file);
  const sms: ConfigFile['sms'] = {
    ...file.sms,
    outbox: { ...file.sms.outbox, path: fromFile(file.sms.outbox.path) },
    webhook: { ...file.sms.webhook, authHeaderFile: fromFile(file.sms.webhook.authHeaderFile) },
    twilio: { ...file.sms.twilio, authTokenFile: fromFile(file.sms.twilio.authTokenFile) },
  };
  return {
    ...file,
    db: { ...file.db, url, embedded: url === defaultDbUrl(dataDir) },
    key: { file: keyFile },
    sms,
    dataDir,
    configPath,
  };
}

function checkDbUrl(url: string, source: string): string[] {
  if (/^sqlite:.+/.test(url)) return [];
  if (/^(mysql|mariadb|postgres|postgresql):\/\/[^/]+\/[^/?]+/.test(url)) {
    try {
      new URL(url);
      return [];
    } catch {
      return [`${source}: not a valid URL`];
    }
  }
  return [`${source}: expected sqlite:PATH, mysql://USER:PASS@HOST:PORT/DATABASE, mariadb://… or postgres://USER:PASS@HOST:PORT/DATABASE (got "${redactUrl(url)}")`];
}

/** Hides the password of a database URL, for messages. */
export function redactUrl(url: string): string {
  return url.replace(/^([a-z]+:\/\/[^:/@]*:)[^@]*@/i, '$1****@');
}
