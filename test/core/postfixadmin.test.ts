/**
 * PostfixAdmin's own TOTP against its real `mailbox` table (test/fixtures/postfixadmin.ts): status
 * reports it, the reset hook clears it, migrate-from moves it — with exact address matching on MariaDB's
 * latin1_general_ci (case-insensitive, PAD SPACE) collation.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Context } from '../../src/context.js';
import { doctor } from '../../src/core/doctor.js';
import { Mail2faError } from '../../src/errors.js';
import { readFactor } from '../../src/core/factors.js';
import { accountTransaction } from '../../src/core/guard.js';
import { migrateFromPostfixadmin } from '../../src/core/postfixadmin.js';
import { parsePostfixadminSecret } from '../../src/stores/postfixadmin.js';
import { recoverAccount } from '../../src/core/recover.js';
import type { StatusSelection } from '../../src/core/status.js';
import { checkSecondFactor, factorSecret } from '../../src/core/factor-check.js';
import { totpCode } from '../../src/totp/totp.js';
import { createTestDb, describeEachDb, type TestDb } from '../helpers/db.js';
import { dbSnapshot } from '../helpers/db-snapshot.js';
import { collectStatusRows } from '../helpers/status-seed.js';
import { testClock, testContext, testEnv } from '../helpers/context.js';
import { base32, postfixadminMailboxRow, resetPostfixadminMailbox } from '../fixtures/postfixadmin.js';
import { storeTotpFactor } from '../helpers/seed-2fa.js';

describe('parsePostfixadminSecret', () => {
  it('accepts base32 of 10-64 bytes (either case, optional padding), returns the canonical form, flags < 16 bytes weak', () => {
    const s64 = base32(randomBytes(64));
    expect(s64).toHaveLength(103);
    expect(parsePostfixadminSecret(s64)).toEqual({ secret: s64, bytes: 64, weak: false });
    const s20 = base32(randomBytes(20));
    expect(parsePostfixadminSecret(s20.toLowerCase())).toEqual({ secret: s20, bytes: 20, weak: false });
    const s16 = base32(randomBytes(16)); // 26 chars: padded to 32
    expect(parsePostfixadminSecret(`${s16}======`)).toEqual({ secret: s16, bytes: 16, weak: false });
    const s10 = base32(randomBytes(10)); // 80 bits, as the Roundcube plugin and mailcow generate
    expect(parsePostfixadminSecret(s10)).toEqual({ secret: s10, bytes: 10, weak: true });
  });

  it.each([
    ['9 bytes (72 bits)', base32(randomBytes(9)), /9 bytes; mail2fa accepts 10-64/],
    ['65 bytes', base32(randomBytes(65)), /65 bytes/],
    ['a space', `${base32(randomBytes(20)).slice(0, 16)} ${base32(randomBytes(20)).slice(16)}`, /whitespace/],
    ['a digit 1', `1${base32(randomBytes(20)).slice(1)}`, /outside A-Z, 2-7/],
    ['bad padding', `${base32(randomBytes(20))}=`, /padding/],
    ['an impossible length', base32(randomBytes(20)).slice(0, 30), /impossible length/],
    ['empty', '', /0 bytes/],
  ])('refuses %s without echoing it', (_what, input, problem) => {
    const r = parsePostfixadminSecret(input);
    expect(r).toHaveProperty('problem');
    const text = (r as { problem: string }).problem;
    expect(text).toMatch(problem);
    if (input.length > 8) expect(text).not.toContain(input.slice(0, 8));
  });
});

interface Fixture {
  secrets: Record<string, string>;
}

describeEachDb('PostfixAdmin TOTP', (kind) => {
  let tdb: TestDb;
  let ctx: Context;
  let configPath: string;
  const clock = testClock();
  let fx: Fixture;

  beforeAll(async () => {
    tdb = await createTestDb(kind);
    configPath = join(tdb.dir, 'mail2fa.json');
    writeFileSync(configPath, JSON.stringify({ accounts: { preset: 'postfixadmin' } }));
    ctx = await testContext(tdb, { clock, configPath });
  });
  afterAll(async () => {
    await ctx?.close();
    await tdb?.drop();
  });

  const mailbox = (username: string, secret: string | null, active = 1) =>
    postfixadminMailboxRow(username, {
      password: '{SHA512-CRYPT}$6$rounds=5000$abcdefgh$notarealhash',
      totp: secret,
      active,
      domain: username.split('@')[1]!.trim(),
    });

  beforeEach(async () => {
    await resetPostfixadminMailbox(ctx);
    const db = await ctx.db();
    const secrets: Record<string, string> = {
      'jane@example.com': base32(randomBytes(64)), // what PostfixAdmin 4 (OTPHP) generates
      'User@example.com': base32(randomBytes(20)),
      'idle@example.com': base32(randomBytes(20)).toLowerCase(),
      'short@example.com': base32(randomBytes(10)), // 80 bits: accepted, flagged weak
      'tiny@example.com': base32(randomBytes(8)), // 64 bits: refused
      'junk@example.com': 'not-base32!',
      'Mixed@Example.COM': base32(randomBytes(20)),
      'trail@example.com ': base32(randomBytes(20)),
      'enrolled@example.com': base32(randomBytes(20)),
    };
    const rows = [
      ...Object.entries(secrets).map(([u, s]) => mailbox(u, s, u === 'idle@example.com' ? 0 : 1)),
      mailbox('bob@example.com', null),
      mailbox('empty@example.com', ''),
    ];
    // SQLite's binary collation and PostgreSQL's deterministic one let both spellings exist side by side;
    // MariaDB's latin1_general_ci does not.
    if (kind !== 'mariadb') rows.push(mailbox('user@example.com', null));
    await db.knex('mailbox').insert(rows);
    await storeTotpFactor(ctx, 'enrolled@example.com');
    fx = { secrets };
  });

  const collect = (selection: StatusSelection) => collectStatusRows(ctx, selection);

  const plaintext = async (username: string): Promise<string | null | undefined> => {
    const db = await ctx.db();
    const rows = (await db.knex('mailbox').select('username', 'totp_secret')) as {
      username: string;
      totp_secret: string | null;
    }[];
    return rows.find((r) => r.username === username)?.totp_secret;
  };

  if (kind === 'mariadb') {
    it('the table is the real thing: latin1_general_ci, case-insensitive and PAD SPACE on username', async () => {
      const db = await ctx.db();
      const [cols] = (await db.knex.raw('SHOW FULL COLUMNS FROM mailbox')) as [
        { Field: string; Collation: string | null }[],
      ];
      const by = Object.fromEntries(cols.map((c) => [c.Field, c.Collation]));
      expect(by.username).toBe('latin1_general_ci');
      expect(by.totp_secret).toMatch(/^utf8mb4_/);
      expect(cols.map((c) => c.Field)).toEqual([
        'username',
        'password',
        'name',
        'maildir',
        'quota',
        'local_part',
        'domain',
        'created',
        'modified',
        'active',
        'smtp_active',
        'phone',
        'email_other',
        'token',
        'token_validity',
        'password_expiry',
        'totp_secret',
      ]);
      // Both of these collide with existing rows under the collation.
      await expect(db.knex('mailbox').insert(mailbox('user@example.com', null))).rejects.toThrow(/Duplicate entry/);
      await expect(db.knex('mailbox').insert(mailbox('jane@example.com ', null))).rejects.toThrow(/Duplicate entry/);
    });
  }

  it('status reports PostfixAdmin TOTP as enabled (method totp, source postfixadmin), exactly per address', async () => {
    const all = Object.fromEntries(
      (await collect({ kind: 'all' })).map((r) => [r.email, [r.enabled, r.method, r.source]]),
    );
    expect(all['jane@example.com']).toEqual([true, 'totp', 'postfixadmin']);
    expect(all['User@example.com']).toEqual([true, 'totp', 'postfixadmin']);
    expect(all['bob@example.com']).toEqual([false, null, null]);
    expect(all['empty@example.com']).toEqual([false, null, null]);
    expect(all['enrolled@example.com']).toEqual([true, 'totp', 'mail2fa']);

    // Per store: sources, weak (80-bit) secrets, activated vs enforced, unparsable values.
    const byEmail = new Map((await collect({ kind: 'all' })).map((r) => [r.email, r]));
    const short = byEmail.get('short@example.com')!;
    expect([short.sources, short.enforced, short.stores[0]!.factors]).toEqual([
      ['postfixadmin'],
      true,
      [{ kind: 'totp', active: true, weak: true, ref: 'mailbox.totp_secret' }],
    ]);
    expect(byEmail.get('jane@example.com')!.stores[0]!.factors[0]!.weak).toBeUndefined();
    const idle = byEmail.get('idle@example.com')!;
    expect([idle.enabled, idle.enforced, idle.stores[0]!.notEnforced]).toEqual([
      true,
      false,
      ['the mailbox is inactive: nobody signs in to it'],
    ]);
    expect(byEmail.get('tiny@example.com')!.stores[0]!.problems).toEqual([
      'mailbox.totp_secret: secret is 8 bytes; mail2fa accepts 10-64 bytes (80-512 bits)',
    ]);
    // Enrolled in mail2fa AND still holding a PostfixAdmin secret: both stores enforce a code; mail2fa's comes first.
    const enrolled = byEmail.get('enrolled@example.com')!;
    expect([enrolled.source, enrolled.sources]).toEqual(['mail2fa', ['mail2fa', 'postfixadmin']]);
    expect(enrolled.stores[0]).toEqual({
      store: 'mail2fa',
      kind: 'mail2fa',
      activated: true,
      enforced: true,
      factors: [{ kind: 'totp', active: true }],
    });
    expect(byEmail.get('bob@example.com')).toMatchObject({ sources: [], stores: [], enforced: false });

    const rows = await collect({
      kind: 'emails',
      emails: ['user@example.com', 'User@example.com', 'trail@example.com', 'mixed@example.com', 'JANE@example.com'],
    });
    expect(rows.map((r) => [r.email, r.state, r.enabled, r.source])).toEqual([
      kind !== 'mariadb' ? ['user@example.com', 'ok', false, null] : ['user@example.com', 'unknown', null, null],
      ['User@example.com', 'ok', true, 'postfixadmin'],
      ['trail@example.com', 'unknown', null, null],
      ['mixed@example.com', 'unknown', null, null],
      ['JANE@example.com', 'unknown', null, null],
    ]);
  });

  const pfaStore = async () => {
    const stores = await ctx.stores();
    expect(stores.map((s) => [s.name, s.kind])).toEqual([['postfixadmin', 'postfixadmin']]); // from accounts.preset
    return stores[0]!;
  };
  const hasPostfixadminTotp = async (email: string) => Boolean((await (await pfaStore()).account(email))?.activated);

  it('the store reset clears exactly one account: never a case- or space-variant of it', async () => {
    const store = await pfaStore();
    const w = { now: clock.now, actor: 'test' };
    for (const other of ['user@example.com', 'trail@example.com', 'JANE@example.com']) {
      expect(await hasPostfixadminTotp(other)).toBe(false);
      const change = await store.reset!(other, w);
      expect(change.outcome).toBe('nothing');
    }
    expect(await plaintext('User@example.com')).toBe(fx.secrets['User@example.com']);
    expect(await plaintext('trail@example.com ')).toBe(fx.secrets['trail@example.com ']);
    expect(await plaintext('jane@example.com')).toBe(fx.secrets['jane@example.com']);

    expect(await hasPostfixadminTotp('User@example.com')).toBe(true);
    const cleared = await store.reset!('User@example.com', w);
    expect(cleared).toMatchObject({ store: 'postfixadmin', outcome: 'changed' });
    expect(await plaintext('User@example.com')).toBeNull();
    expect(await hasPostfixadminTotp('User@example.com')).toBe(false);
    expect((await store.reset!('User@example.com', w)).outcome).toBe('nothing'); // idempotent
    const [row] = await collect({ kind: 'emails', emails: ['User@example.com'] });
    expect([row!.enabled, row!.source]).toEqual([false, null]);
    expect(await plaintext('jane@example.com')).toBe(fx.secrets['jane@example.com']);
  });

  it('recover resets PostfixAdmin TOTP with an audit row — and both copies after a migration kept the plaintext', async () => {
    const db = await ctx.db();
    const t = ctx.tables;
    const go = async () => {};
    // Lower-case spelling: MariaDB has no such mailbox (67); SQLite and PostgreSQL have one without 2FA. None touches User@.
    const lower = await recoverAccount(ctx, { email: 'user@example.com', ticket: 'T-100' }, go).catch(
      (e: unknown) => e,
    );
    if (kind === 'mariadb') expect((lower as Mail2faError).exitCode).toBe(67);
    else expect(lower).toMatchObject({ outcome: 'nothing-to-recover' });
    expect(await plaintext('User@example.com')).toBe(fx.secrets['User@example.com']);

    const r = await recoverAccount(ctx, { email: 'User@example.com', ticket: 'T-101', reason: 'lost phone' }, go);
    expect(r).toMatchObject({
      outcome: 'recovered',
      before: { postfixadminTotp: true },
      removed: { method: null, postfixadminTotp: true },
    });
    expect(await plaintext('User@example.com')).toBeNull();
    const audit = (await db.knex(t.audit).where({ action: 'recover', account: 'User@example.com' }).first()) as {
      ticket: string;
      detail: string;
    };
    expect(audit.ticket).toBe('T-101');
    expect(JSON.parse(audit.detail)).toMatchObject({
      postfixadminTotpCleared: true,
      'store:mail2fa': 'nothing',
      'store:postfixadmin': 'changed',
    });
    expect(audit.detail).not.toContain(fx.secrets['User@example.com']!);

    // jane: migrated without clearing, so the lost phone's secret lives in both places; recover removes both.
    await migrateFromPostfixadmin(ctx, { dryRun: false, clearPlaintext: false, skipInvalid: true });
    expect(await readFactor(db.knex, t, 'jane@example.com')).toBeDefined();
    const both = await recoverAccount(ctx, { email: 'jane@example.com', ticket: 'T-102' }, go);
    expect(both).toMatchObject({ outcome: 'recovered', removed: { method: 'totp', postfixadminTotp: true } });
    expect(await readFactor(db.knex, t, 'jane@example.com')).toBeUndefined();
    expect(await plaintext('jane@example.com')).toBeNull();
    const [row] = await collect({ kind: 'emails', emails: ['jane@example.com'] });
    expect(row!.enabled).toBe(false);
    expect(await plaintext('trail@example.com ')).toBe(fx.secrets['trail@example.com ']);
  });

  it('dry run: reports per account (no secrets) what would happen, refuses for invalid rows, changes nothing', async () => {
    const before = await dbSnapshot(ctx);
    const r = await migrateFromPostfixadmin(ctx, { dryRun: true, clearPlaintext: true, skipInvalid: false });
    expect(r).toMatchObject({
      ok: false,
      dryRun: true,
      refused: true,
      found: 9,
      migrated: 0,
      skipped: 1,
      invalid: 4,
      cleared: 0,
      source: 'mailbox.totp_secret',
    });
    const outcome = Object.fromEntries(r.accounts.map((a) => [a.email, a.outcome]));
    expect(outcome).toEqual({
      'User@example.com': 'migrate',
      'jane@example.com': 'migrate',
      'idle@example.com': 'migrate',
      'enrolled@example.com': 'enrolled',
      'short@example.com': 'migrate',
      'tiny@example.com': 'invalid',
      'junk@example.com': 'invalid',
      'Mixed@Example.COM': 'invalid',
      'trail@example.com ': 'invalid',
    });
    expect(r.accounts.find((a) => a.email === 'Mixed@Example.COM')!.problem).toContain('should be Mixed@example.com');
    expect(r.accounts.find((a) => a.email === 'trail@example.com ')!.problem).toContain('whitespace');
    expect(r.accounts.find((a) => a.email === 'idle@example.com')!.active).toBe(false);
    const json = JSON.stringify(r);
    for (const s of Object.values(fx.secrets)) if (s.length > 8) expect(json).not.toContain(s);

    const skipping = await migrateFromPostfixadmin(ctx, { dryRun: true, clearPlaintext: false, skipInvalid: true });
    expect(skipping).toMatchObject({ ok: true, refused: false, migrated: 4, skipped: 1, invalid: 4 });
    expect(await dbSnapshot(ctx)).toEqual(before);
  });

  it('invalid rows refuse the real run too: nothing changed', async () => {
    const before = await dbSnapshot(ctx);
    const r = await migrateFromPostfixadmin(ctx, { dryRun: false, clearPlaintext: true, skipInvalid: false });
    expect(r).toMatchObject({ refused: true, migrated: 0, cleared: 0 });
    expect(await dbSnapshot(ctx)).toEqual(before);
  });

  it('migrates valid secrets into encrypted storage, no recovery codes, plaintext kept; the old codes keep working', async () => {
    const db = await ctx.db();
    const t = ctx.tables;
    const enrolledBefore = await readFactor(db.knex, t, 'enrolled@example.com');
    const r = await migrateFromPostfixadmin(ctx, { dryRun: false, clearPlaintext: false, skipInvalid: true });
    expect(r).toMatchObject({ ok: true, migrated: 4, skipped: 1, invalid: 4, cleared: 0 });

    for (const account of ['jane@example.com', 'User@example.com', 'idle@example.com', 'short@example.com']) {
      const factor = await readFactor(db.knex, t, account);
      expect(factor).toMatchObject({
        method: 'totp',
        key_id: ctx.masterKey().id,
        phone_ct: null,
        last_totp_step: null,
      });
      expect(factor!.secret_ct).not.toContain(fx.secrets[account]!.slice(0, 12));
      expect(await plaintext(account)).toBe(fx.secrets[account]); // still there: PostfixAdmin still enforces it
      const codes = await db.knex(t.recoveryCode).where({ account }).count({ n: '*' }).first();
      expect(Number((codes as { n: number }).n)).toBe(0);
      // The code the user's authenticator shows today (from PostfixAdmin's secret) is accepted by mail2fa.
      const code = totpCode(fx.secrets[account]!.toUpperCase(), clock.now);
      const kindMatched = await accountTransaction(ctx, account, async (tx) => {
        const f = await readFactor(tx.trx, t, account);
        expect(factorSecret(tx, f!)).toBe(fx.secrets[account]!.toUpperCase());
        return checkSecondFactor(tx, f, { form: 'digits', value: code }, new Set(['totp']));
      });
      expect(kindMatched).toBe('totp');
    }
    expect(await readFactor(db.knex, t, 'user@example.com')).toBeUndefined();
    expect(await readFactor(db.knex, t, 'enrolled@example.com')).toEqual(enrolledBefore);
    for (const invalid of ['tiny@example.com', 'Mixed@Example.COM', 'trail@example.com ', 'trail@example.com'])
      expect(await readFactor(db.knex, t, invalid)).toBeUndefined();

    const audits = (await db.knex(t.audit).where({ action: 'migrate-from' }).orderBy('id')) as {
      account: string | null;
      detail: string;
      outcome: string;
    }[];
    expect(audits.map((a) => a.account)).toEqual([
      'User@example.com',
      'idle@example.com',
      'jane@example.com',
      'short@example.com',
      null,
    ]);
    expect(JSON.parse(audits[4]!.detail)).toMatchObject({ found: 9, migrated: 4, skipped: 1, invalid: 4, cleared: 0 });
    for (const a of audits)
      for (const s of Object.values(fx.secrets)) if (s.length > 8) expect(a.detail).not.toContain(s);

    const rows = Object.fromEntries((await collect({ kind: 'all' })).map((row) => [row.email, row.source]));
    expect(rows).toMatchObject({
      'jane@example.com': 'mail2fa',
      'User@example.com': 'mail2fa',
      'idle@example.com': 'mail2fa',
      'junk@example.com': 'postfixadmin',
    });

    // A second run finds them enrolled: nothing to do, no new audit rows.
    const again = await migrateFromPostfixadmin(ctx, { dryRun: false, clearPlaintext: false, skipInvalid: true });
    expect(again).toMatchObject({ migrated: 0, skipped: 5 });
    expect(await db.knex(t.audit).where({ action: 'migrate-from' }).count({ n: '*' }).first()).toMatchObject({ n: 5 });
  });

  it('--clear-plaintext empties exactly the migrated rows (PostfixAdmin TOTP off for them), leaving the rest', async () => {
    const r = await migrateFromPostfixadmin(ctx, { dryRun: false, clearPlaintext: true, skipInvalid: true });
    expect(r).toMatchObject({ ok: true, migrated: 4, cleared: 4 });
    for (const account of ['jane@example.com', 'User@example.com', 'idle@example.com', 'short@example.com'])
      expect(await plaintext(account)).toBeNull();
    for (const kept of [
      'tiny@example.com',
      'junk@example.com',
      'Mixed@Example.COM',
      'trail@example.com ',
      'enrolled@example.com',
    ])
      expect(await plaintext(kept)).toBe(fx.secrets[kept]);
    if (kind !== 'mariadb') expect(await plaintext('user@example.com')).toBeNull();

    const report = await doctor({ configPath, dbUrl: tdb.url, env: { ...process.env, ...testEnv(tdb) } });
    const check = report.checks.find((c) => c.name === 'postfixadmin totp')!;
    expect(check.status).toBe('warn');
    expect(check.detail).toContain('5 mailbox(es) keep a PLAINTEXT TOTP secret in mailbox.totp_secret');
  });

  it('needs a TOTP column in the mapping (78)', async () => {
    const plain = await testContext(tdb, { clock });
    try {
      const err = await migrateFromPostfixadmin(plain, {
        dryRun: true,
        clearPlaintext: false,
        skipInvalid: false,
      }).catch((e: unknown) => e);
      expect((err as Mail2faError).code).toBe('no_totp_column');
      expect((err as Mail2faError).exitCode).toBe(78);
    } finally {
      await plain.close();
    }
  });
});
