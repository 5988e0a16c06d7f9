/** Opening the Roundcube store module directly on a scratch Roundcube database (tests of src/stores/roundcube.ts). */
import { randomBytes } from 'node:crypto';
import { openDatabase, type Database } from '../../src/db/connection.js';
import { rcubeEncrypt, type RcubeCipher } from '../../src/stores/rcube-crypto.js';
import { pluginJson } from '../../src/stores/roundcube-plugin.js';
import { RoundcubeOptions, RoundcubeStore, roundcubeStore } from '../../src/stores/roundcube.js';
import type { StoreDeps, StoreWriteContext } from '../../src/stores/types.js';
import type { RoundcubeDb } from './roundcube.js';

export const WRITE_CTX: StoreWriteContext = { now: Date.now(), actor: 'test' };

export interface OpenedStore {
  store: RoundcubeStore;
  /** The store's database (as the core would hand it over). */
  db(): Promise<Database>;
  close(): Promise<void>;
}

export function openRoundcubeStore(
  rc: RoundcubeDb,
  options: Record<string, unknown>,
  extra: { allowPlaintextWrites?: boolean; tablePrefix?: string; random?: (n: number) => Buffer } = {},
): OpenedStore {
  let dbPromise: Promise<Database> | undefined;
  const open = () => (dbPromise ??= openDatabase({ url: rc.url, connectTimeoutMs: 3000 }));
  const deps: StoreDeps = {
    openDatabase: open,
    mailDatabase: open,
    now: () => Date.now(),
    randomBytes: extra.random ?? randomBytes,
  };
  const store = roundcubeStore.open(
    {
      name: 'roundcube',
      kind: 'roundcube',
      db: { url: rc.url },
      tablePrefix: extra.tablePrefix ?? '',
      allowPlaintextWrites: extra.allowPlaintextWrites ?? false,
      options: RoundcubeOptions.parse(options),
    },
    deps,
  ) as RoundcubeStore;
  return {
    store,
    db: open,
    close: async () => {
      if (dbPromise) await (await dbPromise).close();
    },
  };
}

/**
 * The plugin's preference value as Roundcube keeps it encrypted: a serialized PHP string holding the plugin's
 * JSON encrypted with `desKey` and `cipher`.
 */
export function encryptedPluginValue(
  desKey: string,
  cipher: RcubeCipher,
  plugin: { secret: string; activate?: boolean; recoveryCodes?: string[] },
): string {
  const json = pluginJson({
    secret: plugin.secret,
    activate: plugin.activate ?? true,
    recoveryCodes: plugin.recoveryCodes ?? [],
    order: [],
  });
  const blob = rcubeEncrypt({ desKey: Buffer.from(desKey), cipher }, Buffer.from(json), randomBytes);
  return `s:${blob.length}:"${blob}";`;
}

/** Inserts a Roundcube users row with exactly these preference bytes (NULL when null); returns its user_id. */
export async function insertUser(
  rc: RoundcubeDb,
  username: string,
  mailHost: string,
  prefs: Buffer | string | null,
  prefix = '',
): Promise<number> {
  const bytes = prefs === null ? null : Buffer.isBuffer(prefs) ? prefs : Buffer.from(prefs, 'utf8');
  if (rc.kind === 'sqlite') {
    const [r] = (await rc.exec(
      `INSERT INTO ${prefix}users (username, mail_host, created, preferences) VALUES (?, ?, '2024-01-01 00:00:00', CAST(? AS TEXT))`,
      [username, mailHost, bytes],
    )) as Array<{ lastInsertRowid: number }>;
    return Number(r!.lastInsertRowid);
  }
  const [r] = (await rc.exec(
    `INSERT INTO ${prefix}users (username, mail_host, created, preferences) VALUES (?, ?, NOW(), CONVERT(? USING utf8mb4))`,
    [username, mailHost, bytes],
  )) as Array<{ insertId: number }>;
  return Number(r!.insertId);
}

/** The exact bytes of a row's preferences. */
export async function preferencesOf(rc: RoundcubeDb, userId: number, prefix = ''): Promise<Buffer | null> {
  const sql =
    rc.kind === 'sqlite'
      ? `SELECT CAST(preferences AS BLOB) AS p FROM ${prefix}users WHERE user_id = ?`
      : `SELECT CAST(preferences AS BINARY) AS p FROM ${prefix}users WHERE user_id = ?`;
  const [row] = (await rc.exec(sql, [userId])) as Array<{ p: Buffer | null }>;
  return row?.p ?? null;
}
