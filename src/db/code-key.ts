/**
 * The code-hash key's row (one row, id 'code-hash'): the random key that hashes one-time codes, sealed under the
 * master key. Created once (insert-if-absent, committed on its own) and never changed except re-sealed by
 * `keys rotate`, so any committed version opens to the same key.
 */
import type { Knex } from 'knex';
import type { Tables } from './schema.js';

export const CODE_HASH_KEY_ID = 'code-hash';

export interface CodeKeyRow {
  key_ct: string;
  key_id: string;
}

export async function readCodeKeyRow(knex: Knex | Knex.Transaction, tables: Tables): Promise<CodeKeyRow | undefined> {
  return (await knex(tables.codeKey).where({ id: CODE_HASH_KEY_ID }).first('key_ct', 'key_id')) as
    CodeKeyRow | undefined;
}

/** Inserts the row unless one exists (a concurrent creator wins; its key is the one everybody reads). */
export async function insertCodeKeyIfAbsent(
  knex: Knex | Knex.Transaction,
  tables: Tables,
  row: CodeKeyRow & { created_at: number },
): Promise<void> {
  await knex(tables.codeKey)
    .insert({ id: CODE_HASH_KEY_ID, ...row })
    .onConflict('id')
    .ignore();
}
