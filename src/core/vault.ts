/**
 * Secrets at rest: TOTP secrets and phone numbers sealed with AES-256-GCM bound to their
 * table, column and account; one-time codes stored as keyed hashes. The hash key is random, kept in the
 * database sealed under the master key, so that `keys rotate` re-encrypts it and every stored hash stays valid.
 *
 * Values are sealed under the current key and opened with whichever key of the ring they name (the previous key
 * stays readable while a rotation re-encrypts: docs/keys.md).
 *
 * The code-hash key is only ever taken from a COMMITTED row: `migrate` creates it, and a first use creates it in
 * its own committed statement, never inside the caller's transaction. A key created inside a transaction that
 * is then rolled back (a deadlock, a Galera certification failure) would otherwise hash codes that no committed
 * key matches. A Vault lives for one transaction attempt.
 */
import type { Knex } from 'knex';
import type { Context } from '../context.js';
import { open, seal, sealedKeyId } from '../crypto/box.js';
import { codeHash, hashesEqual, newHashKey } from '../crypto/one-time-codes.js';
import type { KeyRing, MasterKey } from '../crypto/keys.js';
import { CODE_HASH_KEY_ID, insertCodeKeyIfAbsent, readCodeKeyRow } from '../db/code-key.js';
import { isRetryable, type Database } from '../db/connection.js';
import type { Tables } from '../db/schema.js';
import { internalError } from '../errors.js';

export type { CodePurpose } from '../crypto/one-time-codes.js';
import type { CodePurpose } from '../crypto/one-time-codes.js';

/** Code-hash keys read from committed rows, per database (pool): safe to share across transactions and requests. */
const committedHashKeys = new WeakMap<Database, Buffer>();

export class Vault {
  private hashKey?: Buffer;
  private reloaded = false;
  private ring: KeyRing;

  constructor(
    keys: KeyRing | MasterKey,
    private readonly tables: Tables,
    private readonly now: () => number,
    /** The database, for reading the code-hash key as committed (outside the caller's transaction). */
    private readonly db?: Database,
    /** Re-reads the key files: a value sealed under a key this process does not hold yet (a rotation began). */
    private readonly reload?: () => KeyRing,
  ) {
    this.ring = 'current' in keys ? keys : { current: keys };
  }

  static forContext(ctx: Context, db?: Database): Vault {
    return new Vault(ctx.keyRing(), ctx.tables, ctx.now, db, () => ctx.keyRing(true));
  }

  /** The key new values are sealed under. */
  get key(): MasterKey {
    return this.ring.current;
  }

  seal(table: string, column: string, account: string, plaintext: string): string {
    return seal(this.ring.current, { table, column, account }, plaintext);
  }

  open(table: string, column: string, account: string, sealed: string): string {
    return open(this.keyFor(sealedKeyId(sealed)), { table, column, account }, sealed);
  }

  /** The ring's key a sealed value names; re-reads the key files once when it names none of them. */
  private keyFor(id: string | null): MasterKey {
    const pick = () => [this.ring.current, this.ring.previous].find((k) => k && k.id === id);
    let key = pick();
    if (!key && id && this.reload && !this.reloaded) {
      this.reloaded = true;
      this.ring = this.reload();
      key = pick();
    }
    return key ?? this.ring.current; // box.open then reports key_mismatch
  }

  /**
   * The hash key, from the committed row. On MySQL/MariaDB/PostgreSQL it is read on the pool (not in `q`, the
   * caller's transaction, whose snapshot may predate the key); SQLite has one connection and serialises writers,
   * so `q` sees every committed row — a key it has to create there is not cached, since the transaction that
   * created it may still roll back.
   */
  async codeHashKey(knex: Knex | Knex.Transaction): Promise<Buffer> {
    if (this.hashKey) return this.hashKey;
    const outside = this.db && this.db.dialect !== 'sqlite' ? this.db : undefined;
    const known = outside && committedHashKeys.get(outside);
    if (known) return (this.hashKey = known);
    let row = await readCodeKeyRow(outside?.knex ?? knex, this.tables);
    let cache = true;
    if (!row) {
      if (outside) await ensureCodeHashKey(outside, this.tables, this.ring.current, this.now);
      else {
        await insertCodeKeyIfAbsent(knex, this.tables, newCodeKeyRow(this.ring.current, this.tables, this.now));
        cache = false;
      }
      row = await readCodeKeyRow(outside?.knex ?? knex, this.tables);
      if (!row) throw internalError('the code-hash key was created but cannot be read back');
    }
    const key = Buffer.from(this.open(this.tables.codeKey, 'key_ct', CODE_HASH_KEY_ID, row.key_ct), 'base64');
    if (cache) {
      this.hashKey = key;
      // Read from the committed row on the pool: it never changes (keys rotate re-seals the same bytes).
      if (outside) committedHashKeys.set(outside, key);
    }
    return key;
  }

  /**
   * Reads the code-hash key on the pool BEFORE a transaction takes a connection, so that the transaction never
   * needs a second one: under concurrent requests (`mail2fa serve`, pool of 4) transactions each waiting for one
   * more connection starve the pool. Once per process and database; best effort (a failure here is met again, and
   * reported, where the key is really needed).
   */
  static async prefetch(ctx: Context, db: Database): Promise<void> {
    if (db.dialect === 'sqlite' || committedHashKeys.has(db)) return;
    try {
      await Vault.forContext(ctx, db).codeHashKey(db.knex);
    } catch {
      // reported by the use that needs it
    }
  }

  async hash(db: Knex | Knex.Transaction, purpose: CodePurpose, account: string, code: string): Promise<string> {
    return codeHash(await this.codeHashKey(db), purpose, account, code);
  }

  static equal(first: string, second: string): boolean {
    return hashesEqual(first, second);
  }
}

/** A fresh random code-hash key, sealed under `key`. */
function newCodeKeyRow(
  key: MasterKey,
  tables: Tables,
  now: () => number,
): { key_ct: string; key_id: string; created_at: number } {
  const fresh = newHashKey();
  const row = {
    key_ct: seal(key, { table: tables.codeKey, column: 'key_ct', account: CODE_HASH_KEY_ID }, fresh.toString('base64')),
    key_id: key.id,
    created_at: now(),
  };
  fresh.fill(0);
  return row;
}

/**
 * Creates the code-hash key unless it exists, in a statement of its own (committed before anything uses it):
 * `migrate`, `demo` and the embedded database's auto-migrate call this, and so does a first use on a database
 * migrated without a key. Concurrent creators (on several Galera nodes too) agree: the first committed row wins.
 */
export async function ensureCodeHashKey(
  db: Database,
  tables: Tables,
  key: MasterKey,
  now: () => number,
): Promise<boolean> {
  for (let attempt = 1; ; attempt++) {
    try {
      if (await readCodeKeyRow(db.knex, tables)) return false;
      await insertCodeKeyIfAbsent(db.knex, tables, newCodeKeyRow(key, tables, now));
      return true;
    } catch (err) {
      if (attempt < 4 && isRetryable(err)) continue;
      throw err;
    }
  }
}
