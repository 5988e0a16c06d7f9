/**
 * Key rotation at scale: thousands of stored secrets re-encrypted in short batches (25 of them at the default
 * size) and verified by `keys check`; one corrupt row deep in a late batch rolls everything back, byte-identical.
 * Seeded with multi-row inserts of sealed values (as enrolment would store them), not one CLI call per account.
 * MAIL2FA_KEYS_SCALE_ROWS=100000 runs it at the size docs/operations.md reports timings for.
 */
import { join } from 'node:path';
import { readFileSync } from 'node:fs';
import { beforeAll, expect, it } from 'vitest';
import { seal } from '../../src/crypto/box.js';
import { Mail2faError } from '../../src/errors.js';
import { checkKeys, generateKeyFile, loadNewKey, rotateKeys } from '../../src/core/keys.js';
import { Vault } from '../../src/core/vault.js';
import { generateTotpSecret } from '../../src/totp/totp.js';
import { describeEachDb, useTestDb } from '../helpers/db.js';
import { dbSnapshot } from '../helpers/db-snapshot.js';
import { testContext } from '../helpers/context.js';

const ROWS = Number(process.env.MAIL2FA_KEYS_SCALE_ROWS ?? 5_000);
/** 73.421 % of the way in: neither in the first batch nor on a batch boundary (73,421 at 100,000 rows). */
const CORRUPT_AT = Math.floor((ROWS * 73_421) / 100_000);
const ROWS_TEXT = ROWS.toLocaleString('en-US');
const account = (i: number) => `u${String(i).padStart(6, '0')}@scale.example`;

describeEachDb(`keys rotate at ${ROWS_TEXT} rows`, (kind) => {
  const scratch = useTestDb(kind);
  beforeAll(async () => {
    const db = await scratch.ctx.db();
    const key = scratch.ctx.masterKey();
    const t = scratch.ctx.tables;
    const started = Date.now();
    await new Vault(key, t, scratch.ctx.now).codeHashKey(db.knex);
    const batchSize = kind === 'sqlite' ? 400 : 2000;
    let batch: Record<string, unknown>[] = [];
    for (let i = 0; i < ROWS; i++) {
      const a = account(i);
      const sms = i % 2 === 1;
      batch.push({
        account: a,
        method: sms ? 'sms' : 'totp',
        secret_ct: sms ? null : seal(key, { table: t.factor, column: 'secret_ct', account: a }, generateTotpSecret()),
        phone_ct: sms
          ? seal(
              key,
              { table: t.factor, column: 'phone_ct', account: a },
              `+452012${String(i).padStart(4, '0').slice(-4)}`,
            )
          : null,
        phone_masked: sms ? '+45 ****3456' : null,
        key_id: key.id,
        enrolled_at: 1_700_000_000_000,
        last_used_at: null,
        last_totp_step: null,
        version: 0,
      });
      if (batch.length === batchSize) {
        await db.knex(t.factor).insert(batch);
        batch = [];
      }
    }
    if (batch.length) await db.knex(t.factor).insert(batch);
    console.log(`[${kind}] seeded ${ROWS} sealed factors in ${Date.now() - started} ms`);
  }, 600_000);

  it(`one corrupt row in ${ROWS_TEXT} rolls the whole rotation back, byte-identical`, async () => {
    const db = await scratch.ctx.db();
    const t = scratch.ctx.tables;
    const victim = account(CORRUPT_AT);
    const donor = (await db
      .knex(t.factor)
      .where({ account: account(CORRUPT_AT - 1) })
      .first()) as { secret_ct: string; phone_ct: string };
    const original = (await db.knex(t.factor).where({ account: victim }).first()) as {
      secret_ct: string | null;
      phone_ct: string | null;
    };
    // A ciphertext copied from another account (its AAD names that account): an integrity failure.
    await db
      .knex(t.factor)
      .where({ account: victim })
      .update({ secret_ct: donor.secret_ct ?? donor.phone_ct, phone_ct: null });
    try {
      const before = await dbSnapshot(scratch.ctx);
      const file = join(scratch.tdb.dir, 'never-used.key');
      generateKeyFile(file);
      const started = Date.now();
      const err = await rotateKeys(scratch.ctx, loadNewKey(file)).catch((e: unknown) => e);
      console.log(`[${kind}] failed rotation (corrupt row ${CORRUPT_AT}) rolled back after ${Date.now() - started} ms`);
      expect((err as Mail2faError).code).toBe('rotate_failed');
      expect((err as Mail2faError).message).toContain(`mail2fa_factor.secret_ct of ${victim}`);
      expect((err as Mail2faError).message).toContain('1 stored value cannot');
      expect(await dbSnapshot(scratch.ctx)).toEqual(before);
    } finally {
      await db.knex(t.factor).where({ account: victim }).update(original);
    }
  }, 600_000);

  it(`re-encrypts ${ROWS} stored secrets in short batches, verified by keys check`, async () => {
    const file = join(scratch.tdb.dir, 'new.key');
    const { keyId } = generateKeyFile(file);
    let started = Date.now();
    const report = await rotateKeys(scratch.ctx, loadNewKey(file));
    const rotateMs = Date.now() - started;
    expect(report).toMatchObject({ toKeyId: keyId, reencrypted: ROWS + 1, rows: ROWS + 1, alreadyNew: 0 });

    const next = await testContext(scratch.tdb, { env: { MAIL2FA_KEY: readFileSync(file, 'utf8').trim() } });
    try {
      started = Date.now();
      const check = await checkKeys(next);
      const checkMs = Date.now() - started;
      console.log(`[${kind}] rotated ${ROWS + 1} sealed values in ${rotateMs} ms; keys check of them in ${checkMs} ms`);
      expect(check).toMatchObject({ ok: true, decrypted: ROWS + 1, failed: 0 });
      const db = await next.db();
      const ids = (await db.knex(next.tables.factor).distinct('key_id')) as { key_id: string }[];
      expect(ids).toEqual([{ key_id: keyId }]);
    } finally {
      await next.close();
    }
    // The old key reads none of them any more.
    const stale = await checkKeys(scratch.ctx);
    expect(stale.failed).toBe(ROWS + 1);
    expect(stale.failures).toHaveLength(50);
    expect(stale.failuresTruncated).toBe(true);
  }, 600_000);
});
