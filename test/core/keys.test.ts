import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, expect, it } from 'vitest';
import type { Context } from '../../src/context.js';
import { open, seal } from '../../src/crypto/box.js';
import { Mail2faError } from '../../src/errors.js';
import { storeFactor } from '../../src/core/factors.js';
import { checkKeys, generateKeyFile, loadNewKey, rotateKeys } from '../../src/core/keys.js';
import { Vault } from '../../src/core/vault.js';
import { inTransaction, lockAccountState } from '../../src/db/tx.js';
import { parsePhone } from '../../src/sms/phone.js';
import { generateTotpSecret } from '../../src/totp/totp.js';
import { describeEachDb, useTestDb } from '../helpers/db.js';
import { dbSnapshot } from '../helpers/db-snapshot.js';
import { addMailbox, testClock, testContext } from '../helpers/context.js';

/** A context whose master key is the one in `file` (instead of the test key). */
function keyEnv(file: string): Record<string, string> {
  return { MAIL2FA_KEY: readFileSync(file, 'utf8').trim() };
}

interface Seeded {
  totp: Record<string, string>;
  phone: string;
  pendingSecret: string;
  recoveryCode: string;
}

async function seed(ctx: Context): Promise<Seeded> {
  const db = await ctx.db();
  const vault = new Vault(ctx.masterKey(), ctx.tables, ctx.now);
  const totp: Record<string, string> = {
    'ann@example.com': generateTotpSecret(),
    'ben@example.com': generateTotpSecret(),
  };
  const phone = parsePhone('011-45-20123456');
  const pendingSecret = generateTotpSecret();
  let recoveryCode = '';
  for (const e of [...Object.keys(totp), 'sms@example.com', 'pending@example.com']) await addMailbox(ctx, e);
  await inTransaction(db, ctx.tables, async (trx) => {
    for (const [account, secret] of Object.entries(totp)) {
      await lockAccountState(trx, ctx.tables, db.dialect, account);
      const codes = await storeFactor(trx, ctx.tables, vault, ctx.now(), {
        account,
        method: 'totp',
        totpSecret: secret,
      });
      recoveryCode ||= codes[0]!;
    }
    await lockAccountState(trx, ctx.tables, db.dialect, 'sms@example.com');
    await storeFactor(trx, ctx.tables, vault, ctx.now(), {
      account: 'sms@example.com',
      method: 'sms',
      phoneE164: phone.e164,
      phoneMasked: phone.masked,
    });
    await trx(ctx.tables.enrolment).insert({
      account: 'pending@example.com',
      id: 'enr-1',
      method: 'totp',
      secret_ct: vault.seal(ctx.tables.enrolment, 'secret_ct', 'pending@example.com', pendingSecret),
      phone_ct: null,
      phone_masked: null,
      key_id: vault.key.id,
      created_at: ctx.now(),
      expires_at: ctx.now() + 600_000,
    });
  });
  return { totp, phone: phone.e164, pendingSecret, recoveryCode };
}

describeEachDb('keys check / rotate', (kind) => {
  let seeded: Seeded;
  const clock = testClock();
  const scratch = useTestDb(kind, { context: { clock } });
  beforeAll(async () => {
    seeded = await seed(scratch.ctx);
  });

  it('checks every sealed value, counted per table and column', async () => {
    const report = await checkKeys(scratch.ctx);
    expect(report.ok).toBe(true);
    expect(report.failed).toBe(0);
    expect(report.decrypted).toBe(5);
    const by = Object.fromEntries(report.columns.map((c) => [`${c.table}.${c.column}`, [c.ok, c.failed]]));
    expect(by).toEqual({
      'mail2fa_factor.secret_ct': [2, 0],
      'mail2fa_factor.phone_ct': [1, 0],
      'mail2fa_enrolment.secret_ct': [1, 0],
      'mail2fa_enrolment.phone_ct': [0, 0],
      'mail2fa_code_key.key_ct': [1, 0],
    });
    expect(JSON.stringify(report)).not.toContain(seeded.totp['ann@example.com']!);
  });

  it('a corrupt row makes rotate roll back, byte-identical, naming every bad row and no secret', async () => {
    const db = await scratch.ctx.db();
    const t = scratch.ctx.tables;
    const ann = (await db.knex(t.factor).where({ account: 'ann@example.com' }).first()) as { secret_ct: string };
    const ben = (await db.knex(t.factor).where({ account: 'ben@example.com' }).first()) as { secret_ct: string };
    const pending = (await db.knex(t.enrolment).where({ account: 'pending@example.com' }).first()) as {
      secret_ct: string;
    };
    // ben: ann's (valid) ciphertext copied over; the pending enrolment: one flipped character. The factor table is
    // re-encrypted and written before the enrolment table is reached, so the rollback has real work to undo.
    const last = pending.secret_ct.at(-1) === 'A' ? 'B' : 'A';
    await db.knex(t.factor).where({ account: 'ben@example.com' }).update({ secret_ct: ann.secret_ct });
    await db
      .knex(t.enrolment)
      .where({ account: 'pending@example.com' })
      .update({ secret_ct: pending.secret_ct.slice(0, -1) + last });
    try {
      const before = await dbSnapshot(scratch.ctx);
      const file = join(scratch.tdb.dir, 'corrupt-case.key');
      generateKeyFile(file);
      const err = await rotateKeys(scratch.ctx, loadNewKey(file)).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(Mail2faError);
      const e = err as Mail2faError;
      expect(e.code).toBe('rotate_failed');
      expect(e.exitCode).toBe(78);
      expect(e.message).toContain('mail2fa_factor.secret_ct of ben@example.com');
      expect(e.message).toContain('mail2fa_enrolment.secret_ct of pending@example.com');
      expect(e.message).toContain('2 stored values');
      expect(e.message).not.toContain(ann.secret_ct.slice(20, 40));
      for (const s of [...Object.values(seeded.totp), seeded.pendingSecret])
        expect(`${e.message}${e.hint}`).not.toContain(s);
      expect(await dbSnapshot(scratch.ctx)).toEqual(before);

      const check = await checkKeys(scratch.ctx);
      expect(check.ok).toBe(false);
      expect(check.failed).toBe(2);
      expect(check.failures.map((f) => f.account).sort()).toEqual(['ben@example.com', 'pending@example.com']);
    } finally {
      await db.knex(t.factor).where({ account: 'ben@example.com' }).update({ secret_ct: ben.secret_ct });
      await db.knex(t.enrolment).where({ account: 'pending@example.com' }).update({ secret_ct: pending.secret_ct });
    }
    expect((await checkKeys(scratch.ctx)).ok).toBe(true);
  });

  it('rotates everything to the new key: secrets, phone, enrolment, code-hash key; hashes of codes stay valid', async () => {
    const file = join(scratch.tdb.dir, 'new.key');
    const created = generateKeyFile(file);
    const oldId = scratch.ctx.masterKey().id;
    const progress: number[] = [];
    const report = await rotateKeys(scratch.ctx, loadNewKey(file), { onProgress: (p) => progress.push(p.done) });
    expect(report).toMatchObject({
      ok: true,
      fromKeyId: oldId,
      toKeyId: created.keyId,
      reencrypted: 5,
      alreadyNew: 0,
      rows: 5,
    });
    expect(progress.at(-1)).toBe(5);

    const db = await scratch.ctx.db();
    const t = scratch.ctx.tables;
    for (const table of [t.factor, t.enrolment, t.codeKey]) {
      const ids = (await db.knex(table).distinct('key_id')) as { key_id: string }[];
      expect(ids.map((r) => r.key_id)).toEqual([created.keyId]);
    }
    // The old key reads nothing any more; the new one reads everything.
    const stale = await checkKeys(scratch.ctx);
    expect(stale.failed).toBe(5);
    expect(stale.failures[0]!.reason).toContain(`sealed with another key (${created.keyId})`);
    const next = await testContext(scratch.tdb, { clock, env: keyEnv(file) });
    try {
      expect(next.masterKey().id).toBe(created.keyId);
      expect((await checkKeys(next)).ok).toBe(true);
      const ann = (await db.knex(t.factor).where({ account: 'ann@example.com' }).first()) as { secret_ct: string };
      expect(
        open(next.masterKey(), { table: t.factor, column: 'secret_ct', account: 'ann@example.com' }, ann.secret_ct),
      ).toBe(seeded.totp['ann@example.com']);
      const sms = (await db.knex(t.factor).where({ account: 'sms@example.com' }).first()) as { phone_ct: string };
      expect(
        open(next.masterKey(), { table: t.factor, column: 'phone_ct', account: 'sms@example.com' }, sms.phone_ct),
      ).toBe(seeded.phone);
      const pending = (await db.knex(t.enrolment).where({ account: 'pending@example.com' }).first()) as {
        secret_ct: string;
      };
      expect(
        open(
          next.masterKey(),
          { table: t.enrolment, column: 'secret_ct', account: 'pending@example.com' },
          pending.secret_ct,
        ),
      ).toBe(seeded.pendingSecret);
      // The recovery code handed out before the rotation still matches its stored hash.
      const hash = await new Vault(next.masterKey(), t, next.now).hash(
        db.knex,
        'recovery',
        'ann@example.com',
        seeded.recoveryCode,
      );
      const row = await db.knex(t.recoveryCode).where({ account: 'ann@example.com', code_hash: hash }).first();
      expect(row).toBeTruthy();

      // Rotating to the key already in use is refused (64), nothing changed.
      const before = await dbSnapshot(next);
      const same = await rotateKeys(next, loadNewKey(file)).catch((e: unknown) => e);
      expect((same as Mail2faError).exitCode).toBe(64);
      expect(await dbSnapshot(next)).toEqual(before);

      // One audit row for the rotation, with the key ids only.
      const audits = (await db.knex(t.audit).where({ action: 'keys-rotate' })) as { detail: string; outcome: string }[];
      expect(audits).toHaveLength(1);
      expect(JSON.parse(audits[0]!.detail)).toMatchObject({ fromKeyId: oldId, toKeyId: created.keyId, reencrypted: 5 });
    } finally {
      await next.close();
    }
  });

  it('a repeated rotation finishes rows a stale writer sealed under the old key, keeping those already rotated', async () => {
    const file = join(scratch.tdb.dir, 'new.key');
    const newKey = loadNewKey(file);
    const db = await scratch.ctx.db();
    const t = scratch.ctx.tables;
    // A process still holding the old key enrols someone after the rotation committed.
    const late = generateTotpSecret();
    await addMailbox(scratch.ctx, 'late@example.com');
    await db.knex(t.factor).insert({
      account: 'late@example.com',
      method: 'totp',
      secret_ct: seal(
        scratch.ctx.masterKey(),
        { table: t.factor, column: 'secret_ct', account: 'late@example.com' },
        late,
      ),
      phone_ct: null,
      phone_masked: null,
      key_id: scratch.ctx.masterKey().id,
      enrolled_at: scratch.ctx.now(),
      last_used_at: null,
      last_totp_step: null,
      version: 0,
    });
    const next = await testContext(scratch.tdb, { clock, env: keyEnv(file) });
    try {
      const check = await checkKeys(next);
      expect(check.failed).toBe(1);
      expect(check.failures[0]).toMatchObject({ table: t.factor, column: 'secret_ct', account: 'late@example.com' });
      // Run again with the OLD key loaded and the new key as target.
      const report = await rotateKeys(scratch.ctx, newKey);
      expect(report).toMatchObject({ reencrypted: 1, alreadyNew: 5, rows: 6 });
      expect((await checkKeys(next)).ok).toBe(true);
    } finally {
      await next.close();
    }
  });

  it('refuses a missing or group-readable new key file (78) and changes nothing', async () => {
    const before = await dbSnapshot(scratch.ctx);
    expect(() => loadNewKey(join(scratch.tdb.dir, 'nope.key'))).toThrow(/does not exist/);
    try {
      loadNewKey(join(scratch.tdb.dir, 'nope.key'));
    } catch (e) {
      expect((e as Mail2faError).hint).toContain('mail2fa keys generate');
      expect((e as Mail2faError).exitCode).toBe(78);
    }
    const { chmodSync } = await import('node:fs');
    const file = join(scratch.tdb.dir, 'loose.key');
    generateKeyFile(file);
    chmodSync(file, 0o640);
    expect(() => loadNewKey(file)).toThrow(/group or others/);
    expect(await dbSnapshot(scratch.ctx)).toEqual(before);
  });
});
