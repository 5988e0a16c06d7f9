/**
 * The shared pre-step of every command: configuration → database (opened lazily, schema checked) →
 * repositories, key, clock, actor, SMS sender. Closed by `withContext` in a finally block.
 */
import { userInfo } from 'node:os';
import type { Config, ConfigSources } from './config.js';
import { loadConfig, redactUrl } from './config.js';
import { configError } from './core/errors.js';
import { AccountRepository, accountMapping, ensureReferenceMailboxTable, missingMailboxTableError, type AccountMapping } from './db/accounts.js';
import { openDatabase, mapDbError, type Database } from './db/connection.js';
import { LATEST_MIGRATION, migratorConfig } from './db/migrations.js';
import { tableNames, type Tables } from './db/schema.js';
import { loadMasterKey, loadOrCreateKeyFile, type MasterKey } from './crypto/keys.js';
import type { SmsSender } from './sms/transports.js';
import type { AuditWriter } from './core/audit.js';
import type { ForeignStore, StoreDeps } from './stores/types.js';

export interface ContextOptions extends ConfigSources {
  actor?: string;
  /** Injected clock (tests); defaults to Date.now. */
  clock?: () => number;
  /** Skip the schema check (for `migrate` and `doctor`, which look at it themselves). */
  skipSchemaCheck?: boolean;
  /** Injected SMS sender (library users, tests). */
  smsSender?: SmsSender;
  /** Injected randomness for stores (tests); defaults to node:crypto randomBytes. */
  randomBytes?: (n: number) => Buffer;
}

export interface Context extends AuditWriter {
  readonly config: Config;
  readonly tables: Tables;
  readonly mapping: AccountMapping;
  /** Things worth telling the user once (e.g. "created key file …"); rendered on stderr. */
  readonly notices: string[];
  db(): Promise<Database>;
  accounts(): Promise<AccountRepository>;
  masterKey(): MasterKey;
  sms(): Promise<SmsSender>;
  /** The configured foreign stores, in order (mail2fa's own store is not among them: it is always first). */
  stores(): Promise<ForeignStore[]>;
  close(): Promise<void>;
}

export function defaultActor(): string {
  try {
    return userInfo().username;
  } catch {
    return process.env.USER ?? 'unknown';
  }
}

export async function createContext(options: ContextOptions = {}): Promise<Context> {
  const config = await loadConfig(options);
  return contextFromConfig(config, options);
}

export function contextFromConfig(config: Config, options: ContextOptions = {}): Context {
  const tables = tableNames(config.tablePrefix);
  const mapping = accountMapping(config.accounts);
  const notices: string[] = [];
  const env = options.env ?? process.env;
  let dbPromise: Promise<Database> | undefined;
  let key: MasterKey | undefined;
  let sender: SmsSender | undefined = options.smsSender;
  let storesPromise: Promise<ForeignStore[]> | undefined;
  /** Databases opened for stores, by URL (a store on the mail database shares ctx.db()). */
  const storeDbs = new Map<string, Promise<Database>>();

  const ctx: Context = {
    config,
    tables,
    mapping,
    notices,
    actor: options.actor ?? defaultActor(),
    now: options.clock ?? Date.now,
    db() {
      dbPromise ??= (async () => {
        const db = await openDatabase(config.db);
        try {
          if (config.db.embedded) await prepareEmbedded(db, tables, mapping);
          else if (!options.skipSchemaCheck) await checkSchema(db, tables);
        } catch (err) {
          await db.close().catch(() => {});
          throw mapDbError(err, db.displayUrl);
        }
        return db;
      })();
      return dbPromise;
    },
    async accounts() {
      return new AccountRepository(await ctx.db(), mapping);
    },
    masterKey() {
      if (key) return key;
      key = loadKey(config, env, notices);
      return key;
    },
    async sms() {
      if (!sender) {
        const { createSmsSender } = await import('./sms/transports.js');
        sender = createSmsSender(config.sms, { dataDir: config.dataDir, env });
      }
      return sender;
    },
    stores() {
      storesPromise ??= (async () => {
        if (config.stores.length === 0) return [];
        const { storeDefinition } = await import('./stores/registry.js');
        const { randomBytes } = await import('node:crypto');
        const deps: StoreDeps = {
          openDatabase(url) {
            if (url === config.db.url) return ctx.db();
            let db = storeDbs.get(url);
            if (!db) {
              const target = config.stores.find((s) => s.db?.url === url)?.db;
              db = openDatabase({ url, connectTimeoutMs: target?.connectTimeoutMs ?? config.db.connectTimeoutMs });
              storeDbs.set(url, db);
            }
            return db;
          },
          mailDatabase: () => ctx.db(),
          now: ctx.now,
          randomBytes: options.randomBytes ?? ((n) => randomBytes(n)),
        };
        const opened: ForeignStore[] = [];
        for (const entry of config.stores) {
          const definition = await storeDefinition(entry.kind);
          if (!definition) throw configError('unknown_store', `unknown store kind "${entry.kind}" (store ${entry.name})`);
          opened.push(definition.open(entry, deps));
        }
        return opened;
      })();
      return storesPromise;
    },
    async close() {
      if (storesPromise) {
        const stores = await storesPromise.catch(() => [] as ForeignStore[]);
        for (const store of stores) await store.close().catch(() => {});
      }
      for (const db of storeDbs.values()) await (await db.catch(() => undefined))?.close();
      storeDbs.clear();
      if (dbPromise) {
        const db = await dbPromise.catch(() => undefined);
        await db?.close();
      }
    },
  };
  return ctx;
}

/** The embedded database keeps its own key file next to it, created on first use (PRODUCT.md §3.7). */
function embeddedKeyFile(config: Config): string | undefined {
  return config.db.url.startsWith('sqlite:') ? `${config.db.url.slice('sqlite:'.length)}.key` : undefined;
}

/** Files that hold (or would hold) a master key for this configuration: never to be read as anything else. */
export function keyFiles(config: Config): string[] {
  return [config.key.file, embeddedKeyFile(config)].filter((f): f is string => Boolean(f));
}

function loadKey(config: Config, env: NodeJS.ProcessEnv, notices: string[]): MasterKey {
  const embedded = embeddedKeyFile(config);
  if (env.MAIL2FA_KEY === undefined && !config.key.file && embedded) {
    const file = embedded;
    const { key, created } = loadOrCreateKeyFile(file);
    if (created) notices.push(`created a new master key file ${file} (mode 0600): back it up, without it stored secrets cannot be read`);
    return key;
  }
  return loadMasterKey({ file: config.key.file, env });
}

async function prepareEmbedded(db: Database, tables: Tables, mapping: AccountMapping): Promise<void> {
  await db.knex.migrate.latest(migratorConfig(tables, false));
  await ensureReferenceMailboxTable(db.knex, mapping, false);
}

/** The latest applied migration, or null when mail2fa's tables were never created. */
export async function schemaVersion(db: Database, tables: Tables): Promise<string | null> {
  if (!(await db.knex.schema.hasTable(tables.migrations))) return null;
  const row = (await db.knex(tables.migrations).orderBy('id', 'desc').first('name')) as { name: string } | undefined;
  return row?.name ?? null;
}

async function checkSchema(db: Database, tables: Tables): Promise<void> {
  const version = await schemaVersion(db, tables);
  if (version === LATEST_MIGRATION) return;
  // Migration names sort in order ("0001_…"): a later one means a newer mail2fa upgraded this database.
  if (version !== null && version > LATEST_MIGRATION) {
    throw configError('schema_newer', `the database schema (${version}) is newer than this mail2fa knows (${LATEST_MIGRATION})`, 'Upgrade mail2fa to the version that migrated this database.');
  }
  throw configError(
    'schema_outdated',
    version === null ? `mail2fa's tables do not exist in ${db.displayUrl}` : `the database schema is out of date (at ${version}, this version needs ${LATEST_MIGRATION})`,
    'Run `mail2fa migrate` (with the same --db / config).',
  );
}

/** Opens a context, runs `work`, and always closes the database. */
export async function withContext<T>(options: ContextOptions, work: (ctx: Context) => Promise<T>): Promise<T> {
  const ctx = await createContext(options);
  try {
    return await work(ctx);
  } catch (err) {
    // mail2fa's own tables were checked up front; a missing table now is the mail system's mailbox table.
    throw missingMailboxTableError(err, ctx.mapping, redactUrl(ctx.config.db.url)) ?? err;
  } finally {
    await ctx.close();
  }
}
