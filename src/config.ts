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
import { accountMapping } from './db/accounts.js';
import { knownStoreKinds, storeDefinition } from './stores/registry.js';
import type { StoreConfigBase } from './stores/types.js';

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

/**
 * A foreign store the site's sign-in enforces (PRODUCT.md §2, §9; docs/stores.md). `options` are the store's own,
 * validated by its module's schema; `db` defaults to the mail database.
 */
const StoreEntrySchema = z.strictObject({
  name: z.string().regex(/^[a-z][a-z0-9_-]{0,31}$/, 'must be lower-case letters, digits, - or _ (at most 32), starting with a letter'),
  kind: z.string().min(1),
  db: z
    .strictObject({
      url: z.string().min(1),
      connectTimeoutMs: z.number().int().min(100).max(120_000).optional(),
    })
    .optional(),
  tablePrefix: prefix.optional(),
  /** The site allows mail2fa to write secrets into this store although it keeps them in plaintext. */
  allowPlaintextWrites: z.boolean().default(false),
  options: z.unknown().optional(),
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
  /** Foreign stores, in the order commands act on them (after mail2fa's own store, which is always first). */
  stores: z.array(StoreEntrySchema).default([]),
});
export type ConfigFile = z.infer<typeof ConfigFileSchema>;

/** A configured foreign store: options validated by its own schema, database URL resolved. */
export type ConfiguredStore = StoreConfigBase & { options: unknown; db?: { url: string; connectTimeoutMs: number } };

/** The name of mail2fa's own store in status, audit rows and `--store`. */
export const OWN_STORE_NAME = 'mail2fa';

export interface Config extends Omit<ConfigFile, 'stores'> {
  db: ConfigFile['db'] & { url: string; embedded: boolean };
  stores: ConfiguredStore[];
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
  // Each store entry is checked on its own too, so that one bad setting elsewhere does not hide the stores' problems.
  const rawStores = (raw as { stores?: unknown }).stores;
  const storeEntries = file ? file.stores : Array.isArray(rawStores) ? rawStores.map((e) => StoreEntrySchema.safeParse(e).data) : [];
  const storeOptions = await checkStores(storeEntries, source, problems);
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
  const stores: ConfiguredStore[] = file.stores.map((entry, i) => {
    const storeUrl = entry.db?.url.startsWith('sqlite:') ? `sqlite:${fromFile(entry.db.url.slice('sqlite:'.length))}` : entry.db?.url;
    return {
      name: entry.name,
      kind: entry.kind as ConfiguredStore['kind'],
      ...(storeUrl ? { db: { url: storeUrl, connectTimeoutMs: entry.db?.connectTimeoutMs ?? file.db.connectTimeoutMs } } : {}),
      ...(entry.tablePrefix !== undefined ? { tablePrefix: entry.tablePrefix } : {}),
      allowPlaintextWrites: entry.allowPlaintextWrites,
      options: storeOptions[i],
    };
  });
  stores.push(...legacyPostfixadminStore(file, stores));
  return {
    ...file,
    stores,
    db: { ...file.db, url, embedded: url === defaultDbUrl(dataDir) },
    key: { file: keyFile },
    sms,
    dataDir,
    configPath,
  };
}

/**
 * Each store entry: a known kind (not mail2fa's own, which is always on), a unique name, a valid database URL,
 * and options accepted by the store's own schema. Problems are collected (reported at once); returns the parsed
 * options per entry.
 */
async function checkStores(entries: ReadonlyArray<ConfigFile['stores'][number] | undefined>, source: string, problems: string[]): Promise<unknown[]> {
  const seen = new Set<string>([OWN_STORE_NAME]);
  const parsed: unknown[] = [];
  for (const [i, entry] of entries.entries()) {
    const where = `${source}: stores.${i}`;
    if (!entry) {
      parsed.push(undefined); // its own problems are reported by the schema
      continue;
    }
    if (seen.has(entry.name)) problems.push(`${where}.name: "${entry.name}" is ${entry.name === OWN_STORE_NAME ? "the name of mail2fa's own store" : 'used twice'}`);
    seen.add(entry.name);
    if (entry.db?.url !== undefined) problems.push(...checkDbUrl(entry.db.url, `${where}.db.url`));
    if (entry.kind === OWN_STORE_NAME) {
      problems.push(`${where}.kind: mail2fa's own store is always on (and first); list only foreign stores here`);
      parsed.push(undefined);
      continue;
    }
    const definition = await storeDefinition(entry.kind);
    if (!definition) {
      problems.push(escapeControl(`${where}.kind: unknown store kind "${entry.kind}" (known: ${knownStoreKinds().join(', ')})`));
      parsed.push(undefined);
      continue;
    }
    const options = definition.optionsSchema.safeParse(entry.options ?? {});
    if (options.success) parsed.push(options.data);
    else {
      problems.push(...formatIssues(options.error, source).map((line) => line.replace(`${source}: `, `${where}.options.`).replace(/\.options\.\(top level\)/, '.options')));
      parsed.push(undefined);
    }
  }
  return parsed;
}

/**
 * Before stores were configurable, `accounts.preset: postfixadmin` (or `accounts.columns.totpSecret`) made mail2fa
 * read PostfixAdmin's totp_secret column. Such configs keep working: the column becomes a store named
 * "postfixadmin" on the mail database, unless a postfixadmin store is configured explicitly.
 */
function legacyPostfixadminStore(file: ConfigFile, stores: ConfiguredStore[]): ConfiguredStore[] {
  const mapping = accountMapping(file.accounts);
  if (!mapping.totpSecret || stores.some((s) => s.kind === 'postfixadmin' || s.name === 'postfixadmin')) return [];
  return [{
    name: 'postfixadmin',
    kind: 'postfixadmin',
    tablePrefix: '',
    allowPlaintextWrites: false,
    options: { table: mapping.table, usernameColumn: mapping.email, secretColumn: mapping.totpSecret, activeColumn: mapping.active, totpEnabled: true },
  }];
}

function checkDbUrl(url: string, source: string): string[] {
  if (/^sqlite:.+/.test(url)) return [];
  if (/^(mysql|mariadb):\/\/[^/]+\/[^/?]+/.test(url)) {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      return [`${source}: not a valid URL`];
    }
    return percentEncodingProblems(parsed, source);
  }
  return [`${source}: expected sqlite:PATH, mysql://USER:PASS@HOST:PORT/DATABASE or mariadb://… (got "${redactUrl(url)}")`];
}

/**
 * The URL parser keeps a stray "%" (e.g. a password "pa%ss"), but decoding it later fails ("URI malformed"): say
 * which part it is in and how to write it, without showing the part itself.
 */
function percentEncodingProblems(url: URL, source: string): string[] {
  const parts: Array<[string, string]> = [['user name', url.username], ['password', url.password], ['database name', url.pathname.slice(1)]];
  const problems: string[] = [];
  for (const [name, value] of parts) {
    try {
      decodeURIComponent(value);
    } catch {
      problems.push(`${source}: the ${name} holds a "%" that is not followed by two hex digits: percent-encode it (write "%" as %25, "@" as %40, ":" as %3A, "/" as %2F)`);
    }
  }
  return problems;
}

/** Hides the password of a database URL, for messages. */
export function redactUrl(url: string): string {
  return url.replace(/^([a-z]+:\/\/[^:/@]*:)[^@]*@/i, '$1****@');
}
