/**
 * Configuration: defaults < config file (YAML or JSON) < environment < flags. Validated with zod; every problem
 * is reported at once (exit 78). Nothing here opens a database or reads a key.
 */
import { readFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, isAbsolute, join, resolve } from 'node:path';
import { configError } from './errors.js';
import { escapeControl } from './text.js';
import { accountMapping } from './db/accounts.js';
import type { StoreConfigBase } from './stores/types.js';

import type { ConfigFile } from './config-schema.js';
export type { ConfigFile } from './config-schema.js';

/**
 * The settings when no config file (or object) gives any: exactly what the schema's defaults produce (a unit test
 * holds the two equal), without loading the schema.
 */
export function defaultConfigFile(): ConfigFile {
  return {
    db: { connectTimeoutMs: 5000 },
    tablePrefix: 'mail2fa_',
    accounts: { preset: 'mail2fa', tablePrefix: '', columns: {} },
    key: {},
    issuer: 'Webmail',
    sms: {
      transport: 'outbox',
      timeoutMs: 10_000,
      outbox: {},
      webhook: {},
      twilio: { baseUrl: 'https://api.twilio.com' },
    },
    signOut: { action: 'none' },
    ticketPattern: '^[A-Za-z0-9][A-Za-z0-9._:#/-]{0,63}$',
    stores: [],
  };
}

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
  const base =
    env.XDG_DATA_HOME && isAbsolute(env.XDG_DATA_HOME) ? env.XDG_DATA_HOME : join(homedir(), '.local', 'share');
  return join(base, 'mail2fa');
}

export function defaultDbUrl(dataDir: string): string {
  return `sqlite:${join(dataDir, 'mail2fa.sqlite')}`;
}

async function readConfigFile(path: string): Promise<unknown> {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    throw configError(
      'config_unreadable',
      `cannot read config file ${path}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
      'Check the path given with --config or MAIL2FA_CONFIG.',
    );
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
  const dbUrl = sources.dbUrl ?? (env.MAIL2FA_DB_URL || undefined);
  if (dbUrl !== undefined) problems.push(...checkDbUrl(dbUrl, sources.dbUrl !== undefined ? '--db' : 'MAIL2FA_DB_URL'));
  let file: ConfigFile | undefined = defaultConfigFile();
  let storeOptions: unknown[] = [];
  // Settings to check: only then is the schema (and zod) loaded.
  if (Object.keys(raw).length) {
    const { validateConfigFile } = await import('./config-schema.js');
    ({ file, storeOptions } = await validateConfigFile(raw, source, problems, dbUrl === undefined));
  }
  if (problems.length || !file) {
    throw configError(
      'config_invalid',
      `invalid configuration (${problems.length} problem${problems.length === 1 ? '' : 's'}):\n  ${problems.join('\n  ')}`,
      'Fix the settings above; see README "Configuration".',
    );
  }

  const dataDir = defaultDataDir(env);
  // Relative paths written in a config file are relative to that file, wherever the command runs from.
  const baseDir = configPath ? dirname(resolve(configPath)) : process.cwd();
  const fromFile = (path: string | undefined) => (path === undefined ? undefined : resolve(baseDir, path));
  const fileDbUrl = file.db.url?.startsWith('sqlite:')
    ? `sqlite:${fromFile(file.db.url.slice('sqlite:'.length))}`
    : file.db.url;
  const url = dbUrl ?? fileDbUrl ?? defaultDbUrl(dataDir);
  const keyFile = env.MAIL2FA_KEY_FILE || fromFile(file.key.file);
  const sms: ConfigFile['sms'] = {
    ...file.sms,
    outbox: { ...file.sms.outbox, path: fromFile(file.sms.outbox.path) },
    webhook: { ...file.sms.webhook, authHeaderFile: fromFile(file.sms.webhook.authHeaderFile) },
    twilio: { ...file.sms.twilio, authTokenFile: fromFile(file.sms.twilio.authTokenFile) },
  };
  const stores: ConfiguredStore[] = file.stores.map((entry, index) => {
    const storeUrl = entry.db?.url.startsWith('sqlite:')
      ? `sqlite:${fromFile(entry.db.url.slice('sqlite:'.length))}`
      : entry.db?.url;
    return {
      name: entry.name,
      kind: entry.kind as ConfiguredStore['kind'],
      ...(storeUrl
        ? { db: { url: storeUrl, connectTimeoutMs: entry.db?.connectTimeoutMs ?? file.db.connectTimeoutMs } }
        : {}),
      ...(entry.tablePrefix !== undefined ? { tablePrefix: entry.tablePrefix } : {}),
      allowPlaintextWrites: entry.allowPlaintextWrites,
      options: storeOptions[index],
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
 * Before stores were configurable, `accounts.preset: postfixadmin` (or `accounts.columns.totpSecret`) made mail2fa
 * read PostfixAdmin's totp_secret column. Such configs keep working: the column becomes a store named
 * "postfixadmin" on the mail database, unless a postfixadmin store is configured explicitly.
 */
function legacyPostfixadminStore(file: ConfigFile, stores: ConfiguredStore[]): ConfiguredStore[] {
  const mapping = accountMapping(file.accounts);
  if (!mapping.totpSecret || stores.some((s) => s.kind === 'postfixadmin' || s.name === 'postfixadmin')) return [];
  return [
    {
      name: 'postfixadmin',
      kind: 'postfixadmin',
      tablePrefix: '',
      allowPlaintextWrites: false,
      options: {
        table: mapping.table,
        usernameColumn: mapping.email,
        secretColumn: mapping.totpSecret,
        activeColumn: mapping.active,
        totpEnabled: true,
      },
    },
  ];
}

export function checkDbUrl(url: string, source: string): string[] {
  if (/^sqlite:.+/.test(url)) return [];
  if (/^(mysql|mariadb|postgres|postgresql):\/\/[^/]+\/[^/?]+/.test(url)) {
    let parsed: URL;
    try {
      parsed = new URL(url);
    } catch {
      return [`${source}: not a valid URL`];
    }
    return percentEncodingProblems(parsed, source);
  }
  return [
    `${source}: expected sqlite:PATH, mysql://USER:PASS@HOST:PORT/DATABASE, mariadb://… or postgres://USER:PASS@HOST:PORT/DATABASE (got "${redactUrl(url)}")`,
  ];
}

/**
 * The URL parser keeps a stray "%" (e.g. a password "pa%ss"), but decoding it later fails ("URI malformed"): say
 * which part it is in and how to write it, without showing the part itself.
 */
function percentEncodingProblems(url: URL, source: string): string[] {
  const parts: Array<[string, string]> = [
    ['user name', url.username],
    ['password', url.password],
    ['database name', url.pathname.slice(1)],
  ];
  const problems: string[] = [];
  for (const [name, value] of parts) {
    try {
      decodeURIComponent(value);
    } catch {
      problems.push(
        `${source}: the ${name} holds a "%" that is not followed by two hex digits: percent-encode it (write "%" as %25, "@" as %40, ":" as %3A, "/" as %2F)`,
      );
    }
  }
  return problems;
}

/** Hides the password of a database URL, for messages. */
export function redactUrl(url: string): string {
  return url.replace(/^([a-z]+:\/\/[^:/@]*:)[^@]*@/i, '$1****@');
}
