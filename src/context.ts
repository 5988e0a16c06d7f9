/**
 * The shared pre-step of every command: configuration → database (opened lazily, schema checked) →
 * repositories, key, clock, actor, SMS sender. Closed by `withContext` in a finally block.
 */
import { existsSync } from 'node:fs';
import { userInfo } from 'node:os';
import type { Config, ConfigSources } from './config.js';
import { loadConfig, redactUrl } from './config.js';
import { configError } from './errors.js';
import {
  AccountRepository,
  accountMapping,
  ensureReferenceMailboxTable,
  missingMailboxTableError,
  type AccountMapping,
} from './db/accounts.js';
import { openDatabase, mapDbError, sqliteFile, type Database } from './db/connection.js';
import { LATEST_MIGRATION, migrateOrBusy, readSchemaVersion } from './db/migrations.js';
import { ensureCodeHashKey } from './core/vault.js';
import { tableNames, type Tables } from './db/schema.js';
import {
  loadMasterKey,
  loadOrCreateKeyFile,
  loadPreviousKey,
  previousKeyFile,
  type KeyRing,
  type MasterKey,
} from './crypto/keys.js';
import type { SmsSender } from './sms/transports.js';
import type { AuditWriter } from './core/audit-write.js';
import type { ForeignStore, StoreDeps } from './stores/types.js';

export interface ContextOptions extends ConfigSources {
  actor?: string;
  /** Injected clock (tests); defaults to Date.now. */
  clock?: () => number;
  /** Skip the schema check (for `migrate` and `doctor`, which look at it themselves). */
  skipSchemaCheck?: boolean;
  /**
   * Refuse a missing SQLite file instead of creating it (`doctor` looks at a database without changing it). Every
   * command that needs mail2fa's tables refuses one anyway; only `migrate` and `demo` create the file.
   */
  existingDatabaseOnly?: boolean;
  /** Injected SMS sender (library users, tests). */
  smsSender?: SmsSender;
  /** Injected randomness for stores (tests); defaults to node:crypto randomBytes. */
  randomBytes?: (size: number) => Buffer;
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
  /** The current key plus the previous one during a rotation (docs/keys.md); `reload` re-reads the key files. */
  keyRing(reload?: boolean): KeyRing;
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
  let ring: KeyRing | undefined;
  let sender: SmsSender | undefined = options.smsSender;
  let storesPromise: Promise<ForeignStore[]> | undefined;
  /** Databases opened for stores, by URL (a store on the mail database shares ctx.db(), on SQLite a second handle to it). */
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
        // The schema check (or the embedded database's preparation) is the first query: no separate ping.
        const checked = config.db.embedded || !options.skipSchemaCheck;
        // Opening a SQLite path creates the file (and its directory): a command that needs mail2fa's tables
        // refuses a missing file before that, so that a mistyped --db leaves nothing behind.
        if (
          !config.db.embedded &&
          (!options.skipSchemaCheck || options.existingDatabaseOnly) &&
          config.db.url.startsWith('sqlite:')
        ) {
          const file = sqliteFile(config.db.url);
          if (!existsSync(file)) throw schemaMissing(`${config.db.url} (no such file)`);
        }
        const db = await openDatabase(config.db, { ping: !checked });
        try {
          if (config.db.embedded) await prepareEmbedded(db, tables, mapping, ctx);
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
      return ctx.keyRing().current;
    },
    keyRing(reload = false) {
      if (ring && !reload) return ring;
      ring = loadKeyRing(config, env, notices, !(options.existingDatabaseOnly && !config.db.embedded));
      return ring;
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
        // SQLite has one connection per handle, and bulk status holds the mail database's while it streams the
        // mailbox rows: a store in that file asking the same handle for its batch would wait forever. Stores read
        // it through a second handle instead (WAL: readers side by side); their writes still join mail2fa's own
        // transaction (StoreWriteContext.sharedTransaction).
        let storeSide: Promise<Database> | undefined;
        const mailDatabase = (): Promise<Database> => {
          if (!config.db.url.startsWith('sqlite:') || config.db.url.includes(':memory:')) return ctx.db();
          storeSide ??= ctx.db().then(() => openDatabase(config.db));
          storeDbs.set(config.db.url, storeSide);
          return storeSide;
        };
        const deps: StoreDeps = {
          openDatabase(url) {
            if (url === config.db.url) return mailDatabase();
            let db = storeDbs.get(url);
            if (!db) {
              const target = config.stores.find((s) => s.db?.url === url)?.db;
              db = openDatabase({ url, connectTimeoutMs: target?.connectTimeoutMs ?? config.db.connectTimeoutMs });
              storeDbs.set(url, db);
            }
            return db;
          },
          mailDatabase,
          now: ctx.now,
          randomBytes: options.randomBytes ?? ((n) => randomBytes(n)),
        };
        const opened: ForeignStore[] = [];
        for (const entry of config.stores) {
          const definition = await storeDefinition(entry.kind);
          if (!definition)
            throw configError('unknown_store', `unknown store kind "${entry.kind}" (store ${entry.name})`);
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

/** The embedded database keeps its own key file next to it, created on first use (mode 0600), and says so. */
function embeddedKeyFile(config: Config): string | undefined {
  return config.db.url.startsWith('sqlite:') ? `${config.db.url.slice('sqlite:'.length)}.key` : undefined;
}

/** Files that hold (or would hold) a master key for this configuration: never to be read as anything else. */
export function keyFiles(config: Config): string[] {
  const files = [config.key.file, embeddedKeyFile(config)].filter((f): f is string => Boolean(f));
  return [...files, ...files.map(previousKeyFile)];
}

/** The key file the configuration names (the embedded default's `<database>.key`), or undefined for MAIL2FA_KEY. */
export function configuredKeyFile(config: Config, env: NodeJS.ProcessEnv = process.env): string | undefined {
  if (env.MAIL2FA_KEY !== undefined) return undefined;
  return config.key.file || embeddedKeyFile(config);
}

function loadKeyRing(config: Config, env: NodeJS.ProcessEnv, notices: string[], mayCreate: boolean): KeyRing {
  const file = configuredKeyFile(config, env);
  if (file && !config.key.file && mayCreate) {
    // The embedded database keeps its own key file next to it, created on first use (mode 0600), and says so.
    const { key, created } = loadOrCreateKeyFile(file);
    if (created)
      notices.push(
        `created a new master key file ${file} (mode 0600): back it up, without it stored secrets cannot be read`,
      );
    return ringOf(key, file);
  }
  return ringOf(loadMasterKey({ file, env }), file);
}

function ringOf(current: MasterKey, file: string | undefined): KeyRing {
  if (!file) return { current };
  const previous = loadPreviousKey(file);
  return previous && previous.id !== current.id ? { current, previous, file } : { current, file };
}

/**
 * The embedded database migrates itself, but only when it is behind: an up-to-date schema is checked by reading
 * (no migrations lock taken by every command, which made a busy embedded database fail). A fresh schema gets its
 * code-hash key at once, committed before any command uses it.
 */
async function prepareEmbedded(db: Database, tables: Tables, mapping: AccountMapping, ctx: Context): Promise<void> {
  const version = await schemaVersion(db, tables);
  if (version !== null && version > LATEST_MIGRATION) throw schemaNewer(version);
  if (version !== LATEST_MIGRATION) {
    const { applied } = await migrateOrBusy(db, tables);
    if (applied.length) await ensureCodeHashKey(db, tables, ctx.masterKey(), ctx.now);
  }
  await ensureReferenceMailboxTable(db.knex, mapping, false);
}

/** The latest applied migration, or null when mail2fa's tables were never created. */
export async function schemaVersion(db: Database, tables: Tables): Promise<string | null> {
  return readSchemaVersion(db.knex, tables);
}

function schemaNewer(version: string) {
  return configError(
    'schema_newer',
    `the database schema (${version}) is newer than this mail2fa knows (${LATEST_MIGRATION})`,
    'Upgrade mail2fa to the version that migrated this database.',
  );
}

async function checkSchema(db: Database, tables: Tables): Promise<void> {
  const version = await schemaVersion(db, tables);
  if (version === LATEST_MIGRATION) return;
  // Migration names sort in order ("0001_…"): a later one means a newer mail2fa upgraded this database.
  if (version !== null && version > LATEST_MIGRATION) throw schemaNewer(version);
  if (version === null) throw schemaMissing(db.displayUrl);
  throw configError(
    'schema_outdated',
    `the database schema is out of date (at ${version}, this version needs ${LATEST_MIGRATION})`,
    MIGRATE_HINT,
  );
}

const MIGRATE_HINT = 'Run `mail2fa migrate` (with the same --db / config).';

function schemaMissing(where: string) {
  return configError('schema_outdated', `mail2fa's tables do not exist in ${where}`, MIGRATE_HINT);
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
