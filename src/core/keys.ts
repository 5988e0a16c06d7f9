/**
 * `keys check` and `keys rotate` (PRODUCT.md §3.7): every value sealed under the master key — TOTP secrets and
 * phone numbers of factors and pending enrolments, and the code-hash key (so every keyed hash of a one-time code
 * stays valid after a rotation: the hashes themselves need no change) — checked, or re-encrypted under a new key
 * in ONE transaction: all rows or none.
 *
 * Rows are read in pages by primary key (locked with FOR UPDATE on MySQL/MariaDB; SQLite's write lock is taken
 * by inTransaction) and written back in batches, so 100,000 rows take seconds, not minutes. Nothing here ever
 * puts a plaintext or a ciphertext into a message: failures name the table, column and account only.
 */
import type { Knex } from 'knex';
import type { Context } from '../context.js';
import { open, seal, sealedKeyId } from '../crypto/box.js';
import { loadMasterKey, writeNewKeyFile, type MasterKey } from '../crypto/keys.js';
import type { Database } from '../db/connection.js';
import type { Tables } from '../db/schema.js';
import { inTransaction } from '../db/tx.js';
import { writeAudit } from './audit.js';
import { configError, internalError, Mail2faError, usageError } from './errors.js';

/** A table holding sealed values: the AAD "account" of each value is the row's primary key. */
export interface SealedTable {
  table: string;
  pk: string;
  columns: string[];
}

export function sealedTables(t: Tables): SealedTable[] {
  return [
    { table: t.factor, pk: 'account', columns: ['secret_ct', 'phone_ct'] },
    { table: t.enrolment, pk: 'account', columns: ['secret_ct', 'phone_ct'] },
    { table: t.codeKey, pk: 'id', columns: ['key_ct'] },
  ];
}

export interface KeyProgress {
  done: number;
  total: number;
}
export type ProgressListener = (p: KeyProgress) => void;

/** Rows read per page. */
const PAGE_SIZE = 1000;
/** Rows written per statement (SQLite's compound SELECT limit is 500; knex builds multi-row inserts with it). */
const WRITE_BATCH = 200;
/** Failures listed in a report or an error (the counts are always complete). */
const MAX_LISTED = 50;

type Row = Record<string, unknown>;

async function* pages(q: Knex | Knex.Transaction, spec: SealedTable, o: { wholeRows: boolean; forUpdate: boolean }): AsyncGenerator<Row[]> {
  let last: string | undefined;
  for (;;) {
    const query = q(spec.table).orderBy(spec.pk).limit(PAGE_SIZE);
    if (o.wholeRows) query.select('*');
    else query.select([spec.pk, 'key_id', ...spec.columns]);
    if (last !== undefined) query.where(spec.pk, '>', last);
    if (o.forUpdate) query.forUpdate();
    const rows = (await query) as Row[];
    if (rows.length === 0) return;
    yield rows;
    if (rows.length < PAGE_SIZE) return;
    last = String(rows[rows.length - 1]![spec.pk]);
  }
}

async function countRows(q: Knex | Knex.Transaction, specs: SealedTable[]): Promise<number> {
  let total = 0;
  for (const spec of specs) {
    const row = (await q(spec.table).count({ n: '*' }).first()) as { n: number | string } | undefined;
    total += Number(row?.n ?? 0);
  }
  return total;
}

/** Why a value did not open: a short, secret-free reason. */
function failureReason(err: unknown, sealed: string): string {
  if (err instanceof Mail2faError && err.code === 'key_mismatch') return `sealed with another key (${sealedKeyId(sealed)})`;
  if (err instanceof Mail2faError && err.code === 'integrity') return 'failed its integrity check (tampered, copied from another account, or not a sealed value)';
  throw err;
}

export interface ColumnCount {
  table: string;
  column: string;
  ok: number;
  failed: number;
}

export interface KeyFailure {
  table: string;
  column: string;
  account: string;
  reason: string;
}

export interface KeyCheckReport {
  ok: boolean;
  keyId: string;
  /** Stored values that decrypt / do not decrypt with the loaded key. */
  decrypted: number;
  failed: number;
  columns: ColumnCount[];
  /** The first MAX_LISTED failures (never a secret). */
  failures: KeyFailure[];
  failuresTruncated: boolean;
}

/**
 * Decrypts every stored sealed value with the loaded key and counts the results per table and column. A row
 * whose key_id column disagrees with the key its values are sealed under counts as a failure of that column.
 */
export async function checkKeys(ctx: Context, o: { onProgress?: ProgressListener } = {}): Promise<KeyCheckReport> {
  const key = ctx.masterKey();
  const db = await ctx.db();
  const specs = sealedTables(ctx.tables);
  const total = await countRows(db.knex, specs);
  const columns: ColumnCount[] = [];
  const failures: KeyFailure[] = [];
  let failed = 0;
  let decrypted = 0;
  let done = 0;
  o.onProgress?.({ done, total });
  for (const spec of specs) {
    const counts = new Map(spec.columns.map((c) => [c, { table: spec.table, column: c, ok: 0, failed: 0 }]));
    for await (const rows of pages(db.knex, spec, { wholeRows: false, forUpdate: false })) {
      for (const row of rows) {
        const account = String(row[spec.pk]);
        for (const column of spec.columns) {
          const value = row[column];
          if (value === null || value === undefined) continue;
          const count = counts.get(column)!;
          let reason: string | undefined;
          try {
            open(key, { table: spec.table, column, account }, String(value));
            if (row.key_id !== key.id) reason = `its key_id column says ${String(row.key_id)}, but it is sealed with ${key.id}`;
          } catch (err) {
            reason = failureReason(err, String(value));
          }
          if (reason) {
            count.failed++;
            failed++;
            if (failures.length < MAX_LISTED) failures.push({ table: spec.table, column, account, reason });
          } else {
            count.ok++;
            decrypted++;
          }
        }
      }
      done += rows.length;
      o.onProgress?.({ done, total });
    }
    columns.push(...counts.values());
  }
  return { ok: failed === 0, keyId: key.id, decrypted, failed, columns, failures, failuresTruncated: failed > failures.length };
}

/**
 * Opens one stored value of each kind (the first row of each table) with the loaded key: `doctor`'s quick
 * "does this key read this database" test. Returns how many were tried, and the first failure.
 */
export async function sampleDecrypt(db: Database, tables: Tables, key: MasterKey): Promise<{ tried: number; failure?: KeyFailure }> {
  let tried = 0;
  for (const spec of sealedTables(tables)) {
    for (const column of spec.columns) {
      const row = (await db.knex(spec.table).whereNotNull(column).orderBy(spec.pk).first([spec.pk, column])) as Row | undefined;
      if (!row) continue;
      tried++;
      const account = String(row[spec.pk]);
      try {
        open(key, { table: spec.table, column, account }, String(row[column]));
      } catch (err) {
        return { tried, failure: { table: spec.table, column, account, reason: failureReason(err, String(row[column])) } };
      }
    }
  }
  return { tried };
}

export interface RotateReport {
  ok: true;
  fromKeyId: string;
  toKeyId: string;
  /** Values re-encrypted under the new key. */
  reencrypted: number;
  /** Values that were already sealed under the new key (a repeated or resumed rotation): checked, kept. */
  alreadyNew: number;
  rows: number;
  columns: Array<{ table: string; column: string; reencrypted: number; alreadyNew: number }>;
  elapsedMs: number;
}

/** Loads the key a rotation re-encrypts to, from a key file only (never from MAIL2FA_KEY or argv). */
export function loadNewKey(file: string): MasterKey {
  try {
    return loadMasterKey({ file, env: {} });
  } catch (err) {
    if (err instanceof Mail2faError && err.code === 'key_missing') {
      throw configError(err.code, `new key file ${file} does not exist`, `Create it first: mail2fa keys generate ${file}`);
    }
    throw err;
  }
}

/** Creates a new key file (mode 0600), refusing to overwrite anything. */
export function generateKeyFile(file: string): { file: string; keyId: string } {
  const key = writeNewKeyFile(file);
  const keyId = key.id;
  key.bytes.fill(0);
  return { file, keyId };
}

/**
 * Re-encrypts every sealed value under `newKey` in one transaction and sets key_id on every row. A value that
 * does not open with the current key (nor with the new key: a repeated rotation) fails the whole rotation:
 * every such value is collected, then the transaction is rolled back and the error names them (table, column,
 * account). One audit row records a successful rotation.
 */
export async function rotateKeys(ctx: Context, newKey: MasterKey, o: { onProgress?: ProgressListener } = {}): Promise<RotateReport> {
  const oldKey = ctx.masterKey();
  if (oldKey.id === newKey.id) {
    throw usageError(`the new key file holds the key already in use (${oldKey.id}); nothing to do`, 'Create a new key with `mail2fa keys generate FILE` and pass that file.');
  }
  const db = await ctx.db();
  const specs = sealedTables(ctx.tables);
  const started = Date.now();
  return inTransaction(db, ctx.tables, async (trx) => {
    const forUpdate = db.dialect !== 'sqlite'; // SQLite: inTransaction holds the write lock
    const total = await countRows(trx, specs);
    const failures: KeyFailure[] = [];
    let failed = 0;
    let done = 0;
    let rowsSeen = 0;
    const columns: RotateReport['columns'] = [];
    o.onProgress?.({ done, total });

    for (const spec of specs) {
      const counts = new Map(spec.columns.map((c) => [c, { table: spec.table, column: c, reencrypted: 0, alreadyNew: 0 }]));
      let batch: Row[] = [];
      const flush = async () => {
        if (batch.length === 0) return;
        await trx(spec.table).insert(batch).onConflict(spec.pk).merge([...spec.columns, 'key_id']);
        batch = [];
      };
      for await (const rows of pages(trx, spec, { wholeRows: true, forUpdate })) {
        for (const row of rows) {
          const account = String(row[spec.pk]);
          const updated: Row = { ...row };
          let changed = row.key_id !== newKey.id;
          for (const column of spec.columns) {
            const value = row[column];
            if (value === null || value === undefined) continue;
            const sealed = String(value);
            const box = { table: spec.table, column, account };
            const count = counts.get(column)!;
            try {
              if (sealedKeyId(sealed) === newKey.id) {
                open(newKey, box, sealed); // written under the new key already: verify, keep
                count.alreadyNew++;
              } else {
                updated[column] = seal(newKey, box, open(oldKey, box, sealed));
                changed = true;
                count.reencrypted++;
              }
            } catch (err) {
              failed++;
              if (failures.length < MAX_LISTED) failures.push({ table: spec.table, column, account, reason: failureReason(err, sealed) });
            }
          }
          // After the first failure nothing more is written (it will all be rolled back), but every row is
          // still checked so that the error lists every bad value at once.
          if (changed && failed === 0) {
            updated.key_id = newKey.id;
            batch.push(updated);
            if (batch.length >= WRITE_BATCH) await flush();
          }
        }
        rowsSeen += rows.length;
        done += rows.length;
        o.onProgress?.({ done, total });
      }
      if (failed === 0) await flush();
      columns.push(...counts.values());
    }

    if (failed > 0) throw rotationFailed(failed, failures);

    // Belt and braces: every row now names the new key, and the pages saw every row.
    for (const spec of specs) {
      const stale = (await trx(spec.table).whereNot('key_id', newKey.id).count({ n: '*' }).first()) as { n: number | string } | undefined;
      if (Number(stale?.n ?? 0) !== 0) throw internalError(`key rotation left ${Number(stale?.n)} row(s) of ${spec.table} under another key; rolled back`);
    }
    if (rowsSeen !== total) throw internalError(`key rotation saw ${rowsSeen} rows of ${total}; rolled back`);

    const reencrypted = columns.reduce((n, c) => n + c.reencrypted, 0);
    const alreadyNew = columns.reduce((n, c) => n + c.alreadyNew, 0);
    await writeAudit(trx, ctx.tables, ctx, {
      action: 'keys-rotate',
      account: null,
      outcome: 'ok',
      detail: { fromKeyId: oldKey.id, toKeyId: newKey.id, rows: rowsSeen, reencrypted, alreadyNew },
    });
    return { ok: true as const, fromKeyId: oldKey.id, toKeyId: newKey.id, reencrypted, alreadyNew, rows: rowsSeen, columns, elapsedMs: Date.now() - started };
  });
}

function rotationFailed(failed: number, failures: KeyFailure[]): Mail2faError {
  const lines = failures.map((f) => `${f.table}.${f.column} of ${f.account}: ${f.reason}`);
  if (failed > failures.length) lines.push(`… and ${failed - failures.length} more`);
  return configError(
    'rotate_failed',
    `key rotation failed: ${failed} stored value${failed === 1 ? '' : 's'} cannot be decrypted with the current key; nothing was changed (rolled back):\n  ${lines.join('\n  ')}`,
    'Run `mail2fa keys check` for the whole list. Load the key those rows were written with, or reset the affected accounts (`mail2fa recover`), then rotate again.',
  );
}
