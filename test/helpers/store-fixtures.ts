/**
 * Foreign-store fixtures: StoreDeps over a test database, and the schemas of mailcow's `tfa`/`mailbox` and SOGo's
 * `sogo_user_profile` as their projects create them — on MariaDB with utf8mb4's
 * case-insensitive, PAD SPACE collation; on SQLite with COLLATE NOCASE, the nearest thing.
 */
import { randomBytes } from 'node:crypto';
import { openDatabase, type Database } from '../../src/db/connection.js';
import type { StoreDeps } from '../../src/stores/types.js';
import type { TestDb } from './db.js';

export interface StoreHarness {
  deps: StoreDeps;
  db: Database;
  close(): Promise<void>;
}

export async function storeHarness(
  testDb: TestDb,
  now = () => Date.UTC(2026, 10, 27, 12, 0, 0),
): Promise<StoreHarness> {
  const opened: Database[] = [];
  const open = async (url: string) => {
    const db = await openDatabase({ url, connectTimeoutMs: 3000 });
    opened.push(db);
    return db;
  };
  const db = await open(testDb.url);
  const deps: StoreDeps = { openDatabase: open, mailDatabase: async () => db, now, randomBytes: (n) => randomBytes(n) };
  return { deps, db, close: async () => void (await Promise.all(opened.map((d) => d.close()))) };
}

export async function createMailcowSchema(db: Database): Promise<void> {
  if (db.dialect === 'mysql') {
    // init_db.inc.php's `tfa` and the columns of `mailbox` mail2fa reads.
    await db.knex.raw(`CREATE TABLE tfa (
      id INT NOT NULL AUTO_INCREMENT,
      key_id VARCHAR(255) NOT NULL,
      username VARCHAR(255) NOT NULL,
      authmech ENUM('yubi_otp', 'u2f', 'hotp', 'totp', 'webauthn'),
      secret VARCHAR(255) DEFAULT NULL,
      keyHandle VARCHAR(1023) DEFAULT NULL,
      publicKey VARCHAR(4096) DEFAULT NULL,
      counter INT NOT NULL DEFAULT '0',
      certificate TEXT,
      active TINYINT(1) NOT NULL DEFAULT '0',
      PRIMARY KEY (id)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci ROW_FORMAT=DYNAMIC`);
    await db.knex.raw(`CREATE TABLE mailbox (
      username VARCHAR(255) NOT NULL,
      password VARCHAR(255) NOT NULL,
      active TINYINT(1) NOT NULL DEFAULT '1',
      domain VARCHAR(255) NOT NULL,
      attributes JSON,
      PRIMARY KEY (username)
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci`);
    return;
  }
  await db.knex.raw(`CREATE TABLE tfa (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    key_id TEXT NOT NULL,
    username TEXT NOT NULL COLLATE NOCASE,
    authmech TEXT,
    secret TEXT,
    keyHandle TEXT,
    publicKey TEXT,
    counter INTEGER NOT NULL DEFAULT 0,
    certificate TEXT,
    active INTEGER NOT NULL DEFAULT 0
  )`);
  await db.knex.raw(`CREATE TABLE mailbox (
    username TEXT NOT NULL PRIMARY KEY COLLATE NOCASE,
    password TEXT NOT NULL,
    active INTEGER NOT NULL DEFAULT 1,
    domain TEXT NOT NULL,
    attributes TEXT
  )`);
}

export async function createSogoSchema(db: Database): Promise<void> {
  if (db.dialect === 'postgres') {
    // SOGo's own PostgreSQL profile table (created by SOGo on first use).
    await db.knex.raw(`CREATE TABLE sogo_user_profile (
      c_uid VARCHAR(255) NOT NULL PRIMARY KEY,
      c_defaults TEXT,
      c_settings TEXT
    )`);
    return;
  }
  if (db.dialect === 'mysql') {
    await db.knex.raw(`CREATE TABLE sogo_user_profile (
      c_uid VARCHAR(255) NOT NULL PRIMARY KEY,
      c_defaults LONGTEXT,
      c_settings LONGTEXT
    ) ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci`);
    return;
  }
  await db.knex.raw(`CREATE TABLE sogo_user_profile (
    c_uid TEXT NOT NULL PRIMARY KEY COLLATE NOCASE,
    c_defaults TEXT,
    c_settings TEXT
  )`);
}

export const writeCtx = { now: Date.UTC(2026, 10, 27, 12, 0, 0), actor: 'test-agent' };

/** The typed error `p` rejects with (fails the test when it resolves or throws something else). */
export { failure as refusal } from './enrolment.js';
