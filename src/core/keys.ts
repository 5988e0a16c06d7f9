/**
 * `keys check` and `keys rotate`: every value sealed under the master key — TOTP secrets and
 * phone numbers of factors and pending enrolments, and the code-hash key (so every keyed hash of a one-time code
 * stays valid after a rotation: the hashes themselves need no change) — checked, or re-encrypted under a new key
 * in ONE transaction: all rows or none.
 *
 * Rows are read in pages by primary key (locked with FOR UPDATE on MySQL/MariaDB/PostgreSQL; SQLite's write lock is taken
 * by inTransaction) and written back in batches, so 100,000 rows take seconds, not minutes. Nothing here ever
 * puts a plaintext or a ciphertext into a message: failures name the table, column and account only.
 */
import type { Knex } from 'knex';
import type { Context } from '../context.js';
import { open, seal, sealedKeyId } from '../crypto/box.js';
import { loadMasterKey, previousKeyFile, writeNewKeyFile, type KeyRing, type MasterKey } from '../crypto/keys.js';
import { isRetryable, type Database } from '../db/connection.js';
import type { Tables } from '../db/schema.js';
import {
  countNotUnderKey,
  countRows,
  firstSealedValue,
  lockRowsNotUnderKey,
  pages,
  sealedTables,
  writeSealedRows,
  type Row,
  type SealedTable,
} from '../db/sealed-rows.js';
import { inTransaction } from '../db/tx.js';
import { writeAudit } from './audit-write.js';
import { configError, Mail2faError, tempFail, usageError } from '../errors.js';

export interface KeyProgress {
  done: number;
  total: number;
}
export type ProgressListener = (progress: KeyProgress) => void;

/** Failures listed in a report or an error (the counts are always complete). */
const MAX_LISTED = 50;

/** Why a value did not open: a short, secret-free reason. */
function failureReason(err: unknown, sealed: string): string {
  if (err instanceof Mail2faError && err.code === 'key_mismatch')
    return `sealed with another key (${sealedKeyId(sealed)})`;
  if (err instanceof Mail2faError && err.code === 'integrity')
    return 'failed its integrity check (tampered, copied from another account, or not a sealed value)';
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
export async function checkKeys(
  ctx: Context,
  options: { onProgress?: ProgressListener } = {},
): Promise<KeyCheckReport> {
  const key = ctx.masterKey();
  const db = await ctx.db();
  const specs = sealedTables(ctx.tables);
  const total = await countRows(db.knex, specs);
  const columns: ColumnCount[] = [];
  const failures: KeyFailure[] = [];
  let failed = 0;
  let decrypted = 0;
  let done = 0;
  options.onProgress?.({ done, total });
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
            if (row.key_id !== key.id)
              reason = `its key_id column says ${String(row.key_id)}, but it is sealed with ${key.id}`;
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
      options.onProgress?.({ done, total });
    }
    columns.push(...counts.values());
  }
  return {
    ok: failed === 0,
    keyId: key.id,
    decrypted,
    failed,
    columns,
    failures,
    failuresTruncated: failed > failures.length,
  };
}

/**
 * Opens one stored value of each kind (the first row of each table) with the loaded key: `doctor`'s quick
 * "does this key read this database" test. Returns how many were tried, and the first failure.
 */
export async function sampleDecrypt(
  db: Database,
  tables: Tables,
  key: MasterKey,
): Promise<{ tried: number; failure?: KeyFailure }> {
  let tried = 0;
  for (const spec of sealedTables(tables)) {
    for (const column of spec.columns) {
      const row = await firstSealedValue(db, spec, column);
      if (!row) continue;
      tried++;
      const account = String(row[spec.pk]);
      try {
        open(key, { table: spec.table, column, account }, String(row[column]));
      } catch (err) {
        return {
          tried,
          failure: { table: spec.table, column, account, reason: failureReason(err, String(row[column])) },
        };
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
      throw configError(
        err.code,
        `new key file ${file} does not exist`,
        `Create it first: mail2fa keys generate ${file}`,
      );
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

/** Rows re-encrypted per transaction: short, so that sign-ins on other Galera nodes rarely conflict with one. */
const ROTATE_BATCH = 200;
/** A batch that keeps losing conflicts to sign-ins is tried again this often (it is idempotent) before 75. */
const BATCH_ATTEMPTS = 25;

/** Runs one idempotent batch again while it fails as busy (deadlock, Galera certification failure, lock wait). */
async function batchWithPatience<T>(run: () => Promise<T>): Promise<T> {
  for (let attempt = 1; ; attempt++) {
    try {
      return await run();
    } catch (err) {
      const busy = (err instanceof Mail2faError && err.exitCode === 75) || isRetryable(err);
      if (!busy || attempt >= BATCH_ATTEMPTS)
        throw busy && !(err instanceof Mail2faError)
          ? tempFail(
              'busy',
              'key rotation: a batch kept conflicting with other changes; every row is readable, run `mail2fa keys rotate` again to finish',
              'Run `mail2fa keys rotate` (without --new-key-file) to finish.',
            )
          : err;
      await new Promise((r) => setTimeout(r, 20 + Math.floor(Math.random() * 80 * Math.min(attempt, 5))));
    }
  }
}
/** Passes over the tables before giving up on rows that keep appearing under another key. */
const MAX_PASSES = 5;

/**
 * Re-encrypts every sealed value under `newKey` (or, without one, finishes a rotation: every value still under
 * the previous key) on a LIVE database (docs/keys.md):
 *
 * 1. a read-only pass opens every value with the keys held (current, previous, new): any that does not open
 *    fails the rotation before anything is changed (78, naming table, column and account);
 * 2. with a key file, the new key is installed in its place atomically, the replaced key kept as
 *    `<key file>.old`: from then on every mail2fa process seals under the new key and opens both;
 * 3. rows not yet under the new key are re-encrypted in short transactions of ROTATE_BATCH rows (each row
 *    locked, re-read and rewritten: a concurrent change is retried, never overwritten);
 * 4. a final check finds no row left under another key, and one audit row records the rotation.
 *
 * An interruption leaves every row readable (under the old or the new key); `keys rotate` again finishes it.
 */
export async function rotateKeys(
  ctx: Context,
  newKey: MasterKey | undefined,
  options: { onProgress?: ProgressListener; install?: (ring: KeyRing) => void } = {},
): Promise<RotateReport> {
  const ring = ctx.keyRing();
  const fromKey = newKey ? ring.current : ring.previous;
  const target = newKey ?? ring.current;
  if (newKey && ring.current.id === newKey.id) {
    throw usageError(
      `the new key file holds the key already in use (${newKey.id}); nothing to do`,
      'To finish a rotation that was interrupted, run `mail2fa keys rotate` without --new-key-file.',
    );
  }
  const keys = [ring.current, ring.previous, newKey].filter((k): k is MasterKey => !!k);
  const db = await ctx.db();
  const specs = sealedTables(ctx.tables);
  const started = Date.now();

  // 1. Everything must open with the keys held; nothing is changed otherwise.
  const survey = await surveySealed(db, specs, keys, target, options.onProgress);
  if (survey.failed > 0) throw rotationFailed(survey.failed, survey.failures);
  if (newKey && ring.previous && survey.underKey.get(ring.previous.id)) {
    throw configError(
      'rotation_unfinished',
      `${survey.underKey.get(ring.previous.id)} stored value(s) are still sealed under the previous key ${ring.previous.id} (${ring.file ? previousKeyFile(ring.file) : 'previous key'}): an earlier rotation has not finished`,
      'Finish it first: run `mail2fa keys rotate` without --new-key-file; then rotate to the new key.',
    );
  }
  if (!newKey && survey.toReencrypt === 0 && !ring.previous) {
    throw usageError(
      'no rotation to finish: every stored value is sealed under the current key',
      'To rotate to a new key: mail2fa keys generate FILE, then mail2fa keys rotate --new-key-file FILE.',
    );
  }

  // 2. Install the new key where every process reads it (key file), keeping the old one.
  if (newKey) options.install?.(ring);

  // 3. Short batches, until a pass finds nothing left under another key.
  const columns = new Map<string, { table: string; column: string; reencrypted: number; alreadyNew: number }>();
  for (const spec of specs)
    for (const column of spec.columns)
      columns.set(`${spec.table}.${column}`, {
        table: spec.table,
        column,
        reencrypted: 0,
        alreadyNew: survey.alreadyNew.get(`${spec.table}.${column}`) ?? 0,
      });
  let done = 0;
  for (let pass = 1; ; pass++) {
    let changed = 0;
    for (const spec of specs) {
      for (;;) {
        const moved = await batchWithPatience(() =>
          inTransaction(db, ctx.tables, (trx) => reencryptBatch(trx, db, spec, keys, target, columns)),
        );
        changed += moved;
        done += moved;
        options.onProgress?.({ done: Math.min(done, survey.toReencrypt), total: survey.toReencrypt });
        if (moved < ROTATE_BATCH) break;
      }
    }
    // 4. The final check and the audit row, together.
    const left = await inTransaction(db, ctx.tables, async (trx) => {
      let stale = 0;
      for (const spec of specs) {
        stale += await countNotUnderKey(trx, spec, target.id);
      }
      if (stale > 0) return stale;
      const reencrypted = [...columns.values()].reduce((n, c) => n + c.reencrypted, 0);
      await writeAudit(trx, ctx.tables, ctx, {
        action: 'keys-rotate',
        account: null,
        outcome: 'ok',
        detail: {
          fromKeyId: fromKey?.id ?? null,
          toKeyId: target.id,
          rows: survey.rows,
          reencrypted,
          alreadyNew: survey.alreadyNewTotal,
        },
      });
      return 0;
    });
    if (left === 0) break;
    if (pass >= MAX_PASSES || changed === 0) {
      throw tempFail(
        'rotation_incomplete',
        `${left} row(s) are still sealed under another key after ${pass} pass(es): a process still writes with the old key`,
        'Make sure every host has the new key file (see docs/keys.md), then run `mail2fa keys rotate` again to finish.',
      );
    }
  }
  const list = [...columns.values()];
  const reencrypted = list.reduce((n, c) => n + c.reencrypted, 0);
  return {
    ok: true as const,
    fromKeyId: fromKey?.id ?? target.id,
    toKeyId: target.id,
    reencrypted,
    alreadyNew: survey.alreadyNewTotal,
    rows: survey.rows,
    columns: list,
    elapsedMs: Date.now() - started,
  };
}

interface Survey {
  rows: number;
  failed: number;
  failures: KeyFailure[];
  toReencrypt: number;
  alreadyNew: Map<string, number>;
  alreadyNewTotal: number;
  /** Values per key id (how many still need the previous key). */
  underKey: Map<string, number>;
}

/** Read-only: opens every sealed value with the key it names (among `keys`), counting what a rotation has to do. */
async function surveySealed(
  db: Database,
  specs: SealedTable[],
  keys: MasterKey[],
  target: MasterKey,
  onProgress?: ProgressListener,
): Promise<Survey> {
  const total = await countRows(db.knex, specs);
  const survey: Survey = {
    rows: 0,
    failed: 0,
    failures: [],
    toReencrypt: 0,
    alreadyNew: new Map(),
    alreadyNewTotal: 0,
    underKey: new Map(),
  };
  onProgress?.({ done: 0, total });
  for (const spec of specs) {
    for await (const rows of pages(db.knex, spec, { wholeRows: false, forUpdate: false })) {
      for (const row of rows) {
        const account = String(row[spec.pk]);
        let stale = row.key_id !== target.id;
        for (const column of spec.columns) {
          const value = row[column];
          if (value === null || value === undefined) continue;
          const sealed = String(value);
          const id = sealedKeyId(sealed);
          const key = keys.find((k) => k.id === id) ?? keys[0]!;
          try {
            open(key, { table: spec.table, column, account }, sealed);
          } catch (err) {
            survey.failed++;
            if (survey.failures.length < MAX_LISTED)
              survey.failures.push({ table: spec.table, column, account, reason: failureReason(err, sealed) });
            continue;
          }
          survey.underKey.set(key.id, (survey.underKey.get(key.id) ?? 0) + 1);
          if (key.id === target.id) {
            survey.alreadyNew.set(
              `${spec.table}.${column}`,
              (survey.alreadyNew.get(`${spec.table}.${column}`) ?? 0) + 1,
            );
            survey.alreadyNewTotal++;
          } else stale = true;
        }
        if (stale) survey.toReencrypt++;
      }
      survey.rows += rows.length;
      onProgress?.({ done: survey.rows, total });
    }
  }
  return survey;
}

/**
 * One short transaction: up to ROTATE_BATCH rows not yet under `target`, locked (FOR UPDATE on MySQL/MariaDB;
 * SQLite's write lock is taken by inTransaction), re-sealed and written back in one statement. A change by
 * another node meanwhile fails this transaction at COMMIT (Galera certification) and the batch runs again.
 * Returns how many rows it rewrote (fewer than a batch: the table is done).
 */
async function reencryptBatch(
  trx: Knex.Transaction,
  db: Database,
  spec: SealedTable,
  keys: MasterKey[],
  target: MasterKey,
  columns: Map<string, { reencrypted: number }>,
): Promise<number> {
  const rows = await lockRowsNotUnderKey(trx, db.dialect, spec, target.id, ROTATE_BATCH);
  if (rows.length === 0) return 0;
  const updated: Row[] = [];
  for (const row of rows) {
    const account = String(row[spec.pk]);
    const next: Row = { ...row, key_id: target.id };
    for (const column of spec.columns) {
      const value = row[column];
      if (value === null || value === undefined) continue;
      const sealed = String(value);
      const id = sealedKeyId(sealed);
      if (id === target.id) continue;
      const key = keys.find((k) => k.id === id);
      const box = { table: spec.table, column, account };
      if (!key)
        throw rotationFailed(1, [{ table: spec.table, column, account, reason: `sealed with another key (${id})` }]);
      next[column] = seal(target, box, open(key, box, sealed));
      columns.get(`${spec.table}.${column}`)!.reencrypted++;
    }
    updated.push(next);
  }
  await writeSealedRows(trx, spec, updated);
  return rows.length;
}

function rotationFailed(failed: number, failures: KeyFailure[]): Mail2faError {
  const lines = failures.map((f) => `${f.table}.${f.column} of ${f.account}: ${f.reason}`);
  if (failed > failures.length) lines.push(`… and ${failed - failures.length} more`);
  return configError(
    'rotate_failed',
    `key rotation failed: ${failed} stored value${failed === 1 ? '' : 's'} cannot be decrypted with the current key; nothing was changed (rolled back):\n  ${lines.join('\n  ')}`,
    'Run `mail2fa keys check` for the whole list. Those rows were sealed under a key this mail2fa does not hold: load that key (as the key file, or its previous key <key file>.old) and rotate again.',
  );
}
