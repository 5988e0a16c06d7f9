/**
 * Secrets at rest (PRODUCT.md §3.6): TOTP secrets and phone numbers sealed with AES-256-GCM bound to their
 * table, column and account; one-time codes stored as keyed hashes. The hash key is random, kept in the
 * database sealed under the master key, so that `keys rotate` re-encrypts it and every stored hash stays valid.
 */
import type { Knex } from 'knex';
import { open, seal } from '../crypto/box.js';
import { codeHash, hashesEqual, newHashKey } from '../crypto/codes.js';
import type { MasterKey } from '../crypto/keys.js';
import type { Tables } from '../db/schema.js';

export type { CodePurpose } from '../crypto/codes.js';
import type { CodePurpose } from '../crypto/codes.js';
const HASH_KEY_ID = 'code-hash';

export class Vault {
  private hashKey?: Buffer;

  constructor(
    readonly key: MasterKey,
    private readonly tables: Tables,
    private readonly now: () => number,
  ) {}

  seal(table: string, column: string, account: string, plaintext: string): string {
    return seal(this.key, { table, column, account }, plaintext);
  }

  open(table: string, column: string, account: string, sealed: string): string {
    return open(this.key, { table, column, account }, sealed);
  }

  /** The hash key, created on first use (insert-if-absent, so concurrent first uses agree on one key). */
  async codeHashKey(db: Knex | Knex.Transaction): Promise<Buffer> {
    if (this.hashKey) return this.hashKey;
    const ctx = { table: this.tables.codeKey, column: 'key_ct', account: HASH_KEY_ID };
    let row = (await db(this.tables.codeKey).where({ id: HASH_KEY_ID }).first()) as { key_ct: string } | undefined;
    if (!row) {
      const fresh = newHashKey();
      await db(this.tables.codeKey)
        .insert({ id: HASH_KEY_ID, key_ct: seal(this.key, ctx, fresh.toString('base64')), key_id: this.key.id, created_at: this.now() })
        .onConflict('id')
        .ignore();
      row = (await db(this.tables.codeKey).where({ id: HASH_KEY_ID }).first()) as { key_ct: string };
    }
    this.hashKey = Buffer.from(open(this.key, ctx, row.key_ct), 'base64');
    return this.hashKey;
  }

  async hash(db: Knex | Knex.Transaction, purpose: CodePurpose, account: string, code: string): Promise<string> {
    return codeHash(await this.codeHashKey(db), purpose, account, code);
  }

  static equal(a: string, b: string): boolean {
    return hashesEqual(a, b);
  }
}
