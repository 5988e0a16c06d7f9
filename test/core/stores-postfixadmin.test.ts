/**
 * PostfixAdmin's own TOTP (mailbox.totp_secret) made whole through the store seam. Before it, status
 * showed such an account as enabled while verify answered "not enabled", requiresCode() returned false, disable
 * said "already off", and enable --start enrolled a second factor with the password alone. Each of those is a test
 * here, on SQLite and MariaDB, with PostfixAdmin's real table (latin1_general_ci username on MariaDB) configured the
 * way existing sites do it: `accounts.preset: postfixadmin` (mapped onto a store named "postfixadmin").
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import type { Context } from '../../src/context.js';
import { disableTwoFactor } from '../../src/core/disable.js';
import { enrolmentPreflight, startEnrolment } from '../../src/core/enrolment.js';
import type { Mail2faError } from '../../src/errors.js';
import { factorSummary } from '../../src/core/owner.js';
import { recoverAccount } from '../../src/core/recover.js';
import { parseCodeInput } from '../../src/core/factor-check.js';
import { verifySignInCode } from '../../src/core/sign-in.js';
import { hashPassword } from '../../src/crypto/passwords.js';
import { openMail2fa, type Mail2fa } from '../../src/index.js';
import { totpCode } from '../../src/totp/totp.js';
import {
  base32,
  postfixadminMailboxRow,
  postfixadminPlaintext,
  resetPostfixadminMailbox,
} from '../fixtures/postfixadmin.js';
import { testClock, testContext, testEnv } from '../helpers/context.js';
import { dbSnapshot } from '../helpers/db-snapshot.js';
import { createTestDb, describeEachDb, type TestDb } from '../helpers/db.js';

const PASSWORD = 'correct horse battery';

describeEachDb('PostfixAdmin TOTP through the store seam', (kind) => {
  let tdb: TestDb;
  let ctx: Context;
  let configPath: string;
  const clock = testClock();
  let hash: string;
  const secrets = {
    jane: base32(randomBytes(64)), // what PostfixAdmin 4 (OTPHP) generates
    old: base32(randomBytes(10)), // 80 bits, as other stores generate: weak, but it must verify
  };

  beforeAll(async () => {
    tdb = await createTestDb(kind);
    configPath = join(tdb.dir, 'mail2fa.json');
    writeFileSync(configPath, JSON.stringify({ accounts: { preset: 'postfixadmin' } }));
    ctx = await testContext(tdb, { clock, configPath });
    hash = await hashPassword(PASSWORD, 'SHA512-CRYPT');
  });
  afterAll(async () => {
    await ctx?.close();
    await tdb?.drop();
  });

  const mailbox = (username: string, secret: string | null, active = 1) =>
    postfixadminMailboxRow(username, { password: hash, totp: secret, active });

  beforeEach(async () => {
    await resetPostfixadminMailbox(ctx);
    const db = await ctx.db();
    await db
      .knex('mailbox')
      .insert([
        mailbox('Jane@example.com', secrets.jane),
        mailbox('old@example.com', secrets.old),
        mailbox('plain@example.com', null),
      ]);
    clock.advance(60_000); // a fresh time step per test
  });

  const plaintext = (username: string) => postfixadminPlaintext(ctx, username);
  const code = (secret: string, offsetMs = 0) => totpCode(secret, clock.now + offsetMs);
  /** Runs `work` with the library opened on this suite's config and database, and closes it after. */
  async function withLibrary(work: (mail2fa: Mail2fa) => Promise<void>): Promise<void> {
    const mail2fa = await openMail2fa({
      config: configPath,
      db: tdb.url,
      env: { ...process.env, ...testEnv(tdb) },
      clock: () => clock.now,
    });
    try {
      await work(mail2fa);
    } finally {
      await mail2fa.close();
    }
  }

  it('verify accepts the code of PostfixAdmin\'s secret (was: "not enabled"), once; wrong codes count in mail2fa\'s lockout', async () => {
    const ok = await verifySignInCode(ctx, { email: 'Jane@example.com', code: code(secrets.jane) });
    expect(ok).toMatchObject({ outcome: 'accepted', kind: 'totp' });
    // Replay protection lives in mail2fa's own tables: the same code (and the previous step's) is refused.
    expect(await verifySignInCode(ctx, { email: 'Jane@example.com', code: code(secrets.jane) })).toMatchObject({
      outcome: 'rejected',
      reason: 'wrong_code',
    });
    expect(await verifySignInCode(ctx, { email: 'Jane@example.com', code: code(secrets.jane, -30_000) })).toMatchObject(
      { outcome: 'rejected', reason: 'wrong_code', failedAttempts: 2 },
    );
    // The next step's code is new: accepted, and it ends the run of failures.
    clock.advance(30_000);
    expect(await verifySignInCode(ctx, { email: 'Jane@example.com', code: code(secrets.jane) })).toMatchObject({
      outcome: 'accepted',
    });
    // Five wrong codes lock the account (mail2fa's counter: PostfixAdmin has none), and a right one is then refused.
    let last;
    for (let i = 0; i < 5; i++)
      last = await verifySignInCode(ctx, {
        email: 'Jane@example.com',
        code: '000000' === code(secrets.jane) ? '111111' : '000000',
      });
    expect(last).toMatchObject({ outcome: 'rejected', failedAttempts: 5 });
    clock.advance(30_000);
    expect(await verifySignInCode(ctx, { email: 'Jane@example.com', code: code(secrets.jane) })).toMatchObject({
      outcome: 'locked',
    });
    const db = await ctx.db();
    const audit = (await db
      .knex(ctx.tables.audit)
      .where({ account: 'Jane@example.com' })
      .select('action', 'outcome', 'detail')) as { detail: string | null }[];
    expect(audit.length).toBeGreaterThan(5);
    for (const row of audit) expect(row.detail ?? '').not.toContain(secrets.jane.slice(0, 12));
    // PostfixAdmin's column is only read.
    expect(await plaintext('Jane@example.com')).toBe(secrets.jane);
  });

  it('an 80-bit secret verifies (and status flags it weak)', async () => {
    expect(await verifySignInCode(ctx, { email: 'old@example.com', code: code(secrets.old) })).toMatchObject({
      outcome: 'accepted',
      kind: 'totp',
    });
    await withLibrary(async (mail2fa) => {
      const row = await mail2fa.status('old@example.com');
      expect(row).toMatchObject({ enabled: true, enforced: true, sources: ['postfixadmin'] });
      expect(row.stores[0]!.factors[0]).toMatchObject({ kind: 'totp', weak: true });
    });
  });

  it('requiresCode() is true for a PostfixAdmin TOTP account (was: false); false without one', async () => {
    await withLibrary(async (mail2fa) => {
      expect(await mail2fa.requiresCode('Jane@example.com')).toBe(true);
      expect(await mail2fa.requiresCode('plain@example.com')).toBe(false);
      const accepted = await mail2fa.verifyCode('Jane@example.com', code(secrets.jane));
      expect(accepted).toMatchObject({ ok: true, outcome: 'accepted' });
    });
    // An inactive mailbox is not enforced by PostfixAdmin: no code is asked for (status says why).
    const db = await ctx.db();
    await db.knex('mailbox').where({ username: 'old@example.com' }).update({ active: 0 });
    expect((await factorSummary(ctx, 'old@example.com')).foreignRequired).toBe(false);
  });

  it('disable with password + current code clears the column (was: "already off"), compare-and-set, audited per store', async () => {
    const before = await factorSummary(ctx, 'Jane@example.com');
    expect(before).toMatchObject({
      method: null,
      foreignStores: ['postfixadmin'],
      foreignRequired: true,
      foreignTotp: true,
    });
    // Wrong code: refused (77), counted, nothing cleared.
    const wrong = await disableTwoFactor(ctx, {
      email: 'Jane@example.com',
      password: PASSWORD,
      code: parseCodeInput('000000' === code(secrets.jane) ? '111111' : '000000'),
    }).catch((e: unknown) => e);
    expect((wrong as Mail2faError).exitCode).toBe(77);
    expect(await plaintext('Jane@example.com')).toBe(secrets.jane);
    // Wrong password with the right code: refused too.
    const badPassword = await disableTwoFactor(ctx, {
      email: 'Jane@example.com',
      password: 'nope',
      code: parseCodeInput(code(secrets.jane)),
    }).catch((e: unknown) => e);
    expect((badPassword as Mail2faError).exitCode).toBe(77);
    expect(await plaintext('Jane@example.com')).toBe(secrets.jane);

    const r = await disableTwoFactor(ctx, {
      email: 'Jane@example.com',
      password: PASSWORD,
      code: parseCodeInput(code(secrets.jane)),
    });
    expect(r).toMatchObject({ changed: true, codeKind: 'totp', complete: true, exitCode: 0 });
    expect(r.changed && r.stores.map((c) => [c.store, c.outcome])).toEqual([
      ['mail2fa', 'nothing'],
      ['postfixadmin', 'changed'],
    ]);
    expect(await plaintext('Jane@example.com')).toBeNull();
    expect(await plaintext('old@example.com')).toBe(secrets.old);
    const db = await ctx.db();
    const row = (await db
      .knex(ctx.tables.audit)
      .where({ account: 'Jane@example.com', action: 'disable', outcome: 'ok' })
      .first()) as { detail: string };
    expect(JSON.parse(row.detail)).toMatchObject({
      code: 'totp',
      'store:mail2fa': 'nothing',
      'store:postfixadmin': 'changed',
    });
    // Now it is off everywhere: requiresCode false, a second disable has nothing to do.
    expect((await factorSummary(ctx, 'Jane@example.com')).foreignRequired).toBe(false);
  });

  it("enable --start refuses while PostfixAdmin's secret is active (was: a second factor with the password alone); nothing stored", async () => {
    const before = await dbSnapshot(ctx);
    const pre = await enrolmentPreflight(ctx, { email: 'Jane@example.com' }).catch((e: unknown) => e);
    expect(pre).toMatchObject({ code: 'already_enabled', exitCode: 65 });
    expect((pre as Mail2faError).message).toContain('store postfixadmin (postfixadmin)');
    expect((pre as Mail2faError).hint).toContain('migrate-from postfixadmin');
    const start = await startEnrolment(ctx, { email: 'Jane@example.com', password: PASSWORD, method: 'totp' }).catch(
      (e: unknown) => e,
    );
    expect(start).toMatchObject({ code: 'already_enabled', exitCode: 65 });
    // --force does not get around it either: it would still leave two independent factors.
    const forced = await startEnrolment(ctx, {
      email: 'Jane@example.com',
      password: PASSWORD,
      method: 'totp',
      force: true,
    }).catch((e: unknown) => e);
    expect(forced).toMatchObject({ code: 'already_enabled' });
    const db = await ctx.db();
    expect(await db.knex(ctx.tables.enrolment).count({ n: '*' }).first()).toMatchObject({ n: 0 });
    const refusals = await db
      .knex(ctx.tables.audit)
      .where({
        account: 'Jane@example.com',
        action: 'enable',
        outcome: 'refused',
        reason: 'already enabled in another store',
      })
      .count({ n: '*' })
      .first();
    expect(Number((refusals as { n: number }).n)).toBe(3);
    // Apart from those audit rows, nothing changed.
    const volatile = [
      ctx.tables.audit,
      ctx.tables.accountState,
      `CHECKSUM ${ctx.tables.audit}`,
      `CHECKSUM ${ctx.tables.accountState}`,
    ];
    const without = (snap: Record<string, string>) =>
      Object.fromEntries(Object.entries(snap).filter(([k]) => !volatile.includes(k)));
    expect(without(await dbSnapshot(ctx))).toEqual(without(before));
    // --store names a store that cannot enrol: 78, the store named; an unknown store is 64.
    const viaStore = await startEnrolment(ctx, {
      email: 'plain@example.com',
      password: PASSWORD,
      method: 'totp',
      store: 'postfixadmin',
    }).catch((e: unknown) => e);
    expect(viaStore).toMatchObject({ code: 'store_capability', exitCode: 78 });
    expect((viaStore as Mail2faError).message).toContain('store "postfixadmin" (postfixadmin) cannot enrol a factor');
    const unknownStore = await startEnrolment(ctx, {
      email: 'plain@example.com',
      password: PASSWORD,
      method: 'totp',
      store: 'nope',
    }).catch((e: unknown) => e);
    expect(unknownStore).toMatchObject({ exitCode: 64 });
    // Without a foreign secret, enrolment into mail2fa's own store (the default) works as before.
    const ok = await startEnrolment(ctx, {
      email: 'plain@example.com',
      password: PASSWORD,
      method: 'totp',
      store: 'mail2fa',
    });
    expect(ok.totp?.secret).toHaveLength(32); // 20 random bytes: mail2fa keeps generating 160-bit secrets
  });

  it("recover resets PostfixAdmin's column and reports it per store; a re-run finds nothing", async () => {
    const r = await recoverAccount(ctx, { email: 'Jane@example.com', ticket: 'T-13' }, async (summary) => {
      expect(summary.stores).toEqual([
        {
          store: 'postfixadmin',
          kind: 'postfixadmin',
          status: expect.objectContaining({ activated: true, enforced: true }),
        },
      ]);
    });
    expect(r).toMatchObject({ outcome: 'recovered', complete: true, exitCode: 0 });
    expect(r.outcome === 'recovered' && r.stores.map((c) => [c.store, c.outcome])).toEqual([
      ['mail2fa', 'nothing'],
      ['postfixadmin', 'changed'],
    ]);
    expect(await plaintext('Jane@example.com')).toBeNull();
    const again = await recoverAccount(ctx, { email: 'Jane@example.com', ticket: 'T-13' }, async () => {});
    expect(again.outcome).toBe('nothing-to-recover');
  });
});
