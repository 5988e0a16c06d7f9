/**
 * The status summary (src/db/status-summary.ts) against the detail tables it summarises, on every database: each
 * writer driven through its real core flow, then summaryDrift must find nothing AND `status` (which reads only the
 * summary) must show the expected values. Also: a rolled-back transaction leaves the summary as it was, migration
 * 0002 fills it from data written before it existed (and its `down` works), and summaryDrift does report a summary
 * that was changed by hand or a state row that is missing.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import type { Context } from '../../src/context.js';
import { seedDemo } from '../../src/core/demo.js';
import { confirmEnrolment, startEnrolment } from '../../src/core/enrolment.js';
import { parseCodeInput } from '../../src/core/factor-check.js';
import { storeFactor } from '../../src/core/factors.js';
import { disableTwoFactor } from '../../src/core/disable.js';
import { accountTransaction } from '../../src/core/guard.js';
import { LOCKOUT_MS, MAX_FAILED_ATTEMPTS } from '../../src/core/lockout.js';
import { migrateFromStore, sourceStore } from '../../src/core/migrate-store.js';
import { migrateFromPostfixadmin } from '../../src/core/postfixadmin.js';
import { regenerateRecoveryCodes } from '../../src/core/recovery-codes.js';
import { sendSignInCode } from '../../src/core/send-code.js';
import { verifySignInCode } from '../../src/core/sign-in.js';
import type { StatusRow } from '../../src/core/status.js';
import { isoTime } from '../../src/core/time.js';
import { Vault } from '../../src/core/vault.js';
import { LATEST_MIGRATION, migrateToLatest, migratorConfig, readSchemaVersion } from '../../src/db/migrations.js';
import {
  insertChallenge,
  insertFactorRows,
  setAttempts,
  touchFactor,
  useChallenge,
  useFirstRecoveryCodes,
} from '../../src/db/own-store.js';
import {
  refreshAllSummaries,
  refreshStatusSummary,
  summaryDrift,
  SUMMARY_COLUMNS,
  type SummaryColumn,
} from '../../src/db/status-summary.js';
import { inTransaction, lockAccountState } from '../../src/db/tx.js';
import { parsePhone } from '../../src/sms/phone.js';
import { base32 } from '../../src/stores/roundcube-plugin.js';
import { generateTotpSecret, totpCode } from '../../src/totp/totp.js';
import { createTestDb, describeEachDb, useTestDb, type TestDb } from '../helpers/db.js';
import { addMailbox, testClock, testContext, type TestClock } from '../helpers/context.js';
import { createRoundcubeDb, describeRoundcubeEachDb, type RoundcubeDb } from '../helpers/roundcube.js';
import { encryptedPluginValue, insertUser, openRoundcubeStore } from '../helpers/roundcube-store.js';
import { collectStatusRows } from '../helpers/status-seed.js';
import { recoverYes } from './recover-support.js';
import { lastOutboxCode, outboxFile, PASSWORD, storeTotpFactor, wrongTotp } from '../helpers/seed-2fa.js';
import { postfixadminMailboxRow, resetPostfixadminMailbox } from '../fixtures/postfixadmin.js';

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const PHONE = '011-45-20123456';
const MASKED = parsePhone(PHONE).masked;

/** What `status` shows of mail2fa's own store: every field the summary feeds. */
type Shown = Pick<
  StatusRow,
  'enabled' | 'method' | 'phone' | 'enrolledAt' | 'lastUsedAt' | 'recoveryCodesLeft' | 'lockedUntil' | 'temporaryCode'
>;

const OFF: Shown = {
  enabled: false,
  method: null,
  phone: null,
  enrolledAt: null,
  lastUsedAt: null,
  recoveryCodesLeft: null,
  lockedUntil: null,
  temporaryCode: null,
};

/** An account with a factor enrolled at `enrolledAt`, ten unused recovery codes unless `more` says otherwise. */
function on(method: 'totp' | 'sms', enrolledAt: number, more: Partial<Shown> = {}): Shown {
  return {
    ...OFF,
    enabled: true,
    method,
    phone: method === 'sms' ? MASKED : null,
    enrolledAt: isoTime(enrolledAt),
    recoveryCodesLeft: 10,
    ...more,
  };
}

function shown(row: StatusRow): Shown {
  const { enabled, method, phone, enrolledAt, lastUsedAt, recoveryCodesLeft, lockedUntil, temporaryCode } = row;
  return { enabled, method, phone, enrolledAt, lastUsedAt, recoveryCodesLeft, lockedUntil, temporaryCode };
}

async function drift(ctx: Context, limit?: number): ReturnType<typeof summaryDrift> {
  const db = await ctx.db();
  return summaryDrift(db.knex, ctx.tables, db.dialect, limit);
}

/** What `status` shows for each address (an address list, as `status a@… b@…` reads it). */
async function statusOf(ctx: Context, emails: string[]): Promise<Record<string, Shown>> {
  const rows = await collectStatusRows(ctx, { kind: 'emails', emails });
  expect(rows.map((r) => [r.email, r.state])).toEqual(emails.map((e) => [e, 'ok']));
  return Object.fromEntries(rows.map((r) => [r.email, shown(r)]));
}

/** The check after every step: no drift anywhere in the database, and `status` shows exactly `expected`. */
async function expectSummary(ctx: Context, expected: Record<string, Shown>): Promise<void> {
  expect(await drift(ctx)).toEqual({ count: 0, examples: [] });
  expect(await statusOf(ctx, Object.keys(expected))).toEqual(expected);
}

async function expectRejected<T>(p: Promise<T>, code: string): Promise<void> {
  await expect(p).rejects.toMatchObject({ code });
}

/** `enable` for an app in its two steps (password, then the app's code); returns the secret and recovery codes. */
async function enableApp(
  ctx: Context,
  clock: TestClock,
  email: string,
  o: { force?: boolean; currentCode?: string } = {},
): Promise<{ secret: string; recoveryCodes: string[] }> {
  const started = await startEnrolment(ctx, { email, password: PASSWORD, method: 'totp', ...o });
  const secret = started.totp!.secret;
  clock.advance(10_000);
  const done = await confirmEnrolment(ctx, { email, code: totpCode(secret, clock.now) });
  return { secret, recoveryCodes: done.recoveryCodes };
}

describeEachDb('status summary through the real flows', (kind) => {
  const clock = testClock();
  const scratch = useTestDb(kind, { context: { clock, actor: 'agent-alice' } });
  const ctx = () => scratch.ctx;
  /** The next TOTP step, so that a code is never a replay of the previous one. */
  const nextStep = () => clock.advance(30_000);

  it('app: enable, verify, wrong codes to the lock and its end, recovery code, codes regenerate, recover, temporary code, re-enrol, disable', async () => {
    const email = 'app@example.com';
    await addMailbox(ctx(), email, PASSWORD);
    await expectSummary(ctx(), { [email]: OFF });

    // enable: a pending enrolment changes nothing status shows; the confirmation stores the factor.
    const started = await startEnrolment(ctx(), { email, password: PASSWORD, method: 'totp' });
    await expectSummary(ctx(), { [email]: OFF });
    clock.advance(10_000);
    await confirmEnrolment(ctx(), { email, code: totpCode(started.totp!.secret, clock.now) });
    const enrolledAt = clock.now;
    const secret = started.totp!.secret;
    await expectSummary(ctx(), { [email]: on('totp', enrolledAt) });

    // verify with a correct code: last used.
    nextStep();
    expect(await verifySignInCode(ctx(), { email, code: totpCode(secret, clock.now) })).toMatchObject({
      outcome: 'accepted',
      kind: 'totp',
    });
    let usedAt = clock.now;
    await expectSummary(ctx(), { [email]: on('totp', enrolledAt, { lastUsedAt: isoTime(usedAt) }) });

    // wrong codes: counted, the fifth locks the account for 15 minutes.
    for (let i = 1; i <= MAX_FAILED_ATTEMPTS; i++) {
      clock.advance(1000);
      expect(await verifySignInCode(ctx(), { email, code: wrongTotp(secret, clock.now) })).toMatchObject({
        outcome: 'rejected',
        failedAttempts: i,
      });
      const lockedUntil = i === MAX_FAILED_ATTEMPTS ? isoTime(clock.now + LOCKOUT_MS) : null;
      await expectSummary(ctx(), { [email]: on('totp', enrolledAt, { lastUsedAt: isoTime(usedAt), lockedUntil }) });
    }
    const lockedUntil = isoTime(clock.now + LOCKOUT_MS);
    // Locked: even the right code is refused, and nothing changes.
    nextStep();
    expect(await verifySignInCode(ctx(), { email, code: totpCode(secret, clock.now) })).toMatchObject({
      outcome: 'locked',
    });
    await expectSummary(ctx(), { [email]: on('totp', enrolledAt, { lastUsedAt: isoTime(usedAt), lockedUntil }) });

    // The lock ends by time alone (no write); the next correct code is accepted.
    clock.advance(LOCKOUT_MS);
    await expectSummary(ctx(), { [email]: on('totp', enrolledAt, { lastUsedAt: isoTime(usedAt) }) });
    expect(await verifySignInCode(ctx(), { email, code: totpCode(secret, clock.now) })).toMatchObject({
      outcome: 'accepted',
    });
    usedAt = clock.now;
    await expectSummary(ctx(), { [email]: on('totp', enrolledAt, { lastUsedAt: isoTime(usedAt) }) });

    // A recovery code: one fewer left, and it counts as a use.
    clock.advance(MINUTE);
    const codes = (
      await regenerateRecoveryCodes(ctx(), {
        email,
        password: PASSWORD,
        code: parseCodeInput(totpCode(secret, clock.now)),
      })
    ).recoveryCodes;
    usedAt = clock.now; // the TOTP that proved the owner
    await expectSummary(ctx(), { [email]: on('totp', enrolledAt, { lastUsedAt: isoTime(usedAt) }) });
    clock.advance(MINUTE);
    expect(await verifySignInCode(ctx(), { email, code: codes[0]! })).toMatchObject({
      outcome: 'accepted',
      kind: 'recovery',
      recoveryCodesLeft: 9,
    });
    usedAt = clock.now;
    await expectSummary(ctx(), {
      [email]: on('totp', enrolledAt, { lastUsedAt: isoTime(usedAt), recoveryCodesLeft: 9 }),
    });
    clock.advance(MINUTE);
    expect(await verifySignInCode(ctx(), { email, code: codes[1]! })).toMatchObject({ recoveryCodesLeft: 8 });
    usedAt = clock.now;
    await expectSummary(ctx(), {
      [email]: on('totp', enrolledAt, { lastUsedAt: isoTime(usedAt), recoveryCodesLeft: 8 }),
    });

    // codes regenerate: refused with a wrong password (the refusal commits its count), then ten fresh codes.
    nextStep();
    await expectRejected(
      regenerateRecoveryCodes(ctx(), { email, password: 'wrong', code: parseCodeInput(totpCode(secret, clock.now)) }),
      'wrong_password',
    );
    await expectSummary(ctx(), {
      [email]: on('totp', enrolledAt, { lastUsedAt: isoTime(usedAt), recoveryCodesLeft: 8 }),
    });
    await regenerateRecoveryCodes(ctx(), {
      email,
      password: PASSWORD,
      code: parseCodeInput(totpCode(secret, clock.now)),
    });
    usedAt = clock.now;
    await expectSummary(ctx(), { [email]: on('totp', enrolledAt, { lastUsedAt: isoTime(usedAt) }) });

    // recover without a temporary code: 2FA off.
    clock.advance(HOUR);
    expect(await recover(ctx(), email)).toMatchObject({ outcome: 'recovered' });
    await expectSummary(ctx(), { [email]: OFF });

    // enable again, then recover with a temporary code: 2FA stays required, with no factor.
    const second = await enableApp(ctx(), clock, email);
    await expectSummary(ctx(), { [email]: on('totp', clock.now) });
    clock.advance(HOUR);
    const temporary = await recover(ctx(), email, 24 * HOUR);
    const code = temporary.temporaryCode!.code;
    const expiresAt = isoTime(clock.now + 24 * HOUR)!;
    await expectSummary(ctx(), {
      [email]: { ...OFF, enabled: true, temporaryCode: { state: 'pending', expiresAt } },
    });
    // The old app's code no longer works (and is counted): the summary still says "temporary code pending".
    nextStep();
    expect(await verifySignInCode(ctx(), { email, code: totpCode(second.secret, clock.now) })).toMatchObject({
      outcome: 'rejected',
    });
    await expectSummary(ctx(), {
      [email]: { ...OFF, enabled: true, temporaryCode: { state: 'pending', expiresAt } },
    });

    // verify with the temporary code: used (2FA still required until a new factor is enrolled).
    clock.advance(MINUTE);
    expect(await verifySignInCode(ctx(), { email, code })).toMatchObject({ outcome: 'accepted', kind: 'temporary' });
    await expectSummary(ctx(), {
      [email]: { ...OFF, enabled: true, temporaryCode: { state: 'used', expiresAt } },
    });

    // re-enrol after that (the password suffices now): the temporary code is gone.
    clock.advance(MINUTE);
    const third = await enableApp(ctx(), clock, email);
    const reEnrolledAt = clock.now;
    await expectSummary(ctx(), { [email]: on('totp', reEnrolledAt) });

    // disable: password + current code.
    nextStep();
    expect(
      await disableTwoFactor(ctx(), {
        email,
        password: PASSWORD,
        code: parseCodeInput(totpCode(third.secret, clock.now)),
      }),
    ).toMatchObject({ changed: true, method: 'totp' });
    await expectSummary(ctx(), { [email]: OFF });
  });

  it('SMS: enrol by text message, sign in with a sent code, replace by an app (--force), temporary code that expires unused', async () => {
    const email = 'sms@example.com';
    await addMailbox(ctx(), email, PASSWORD);
    const started = await startEnrolment(ctx(), { email, password: PASSWORD, method: 'sms', phone: PHONE });
    expect(started.sms?.phone).toBe(MASKED);
    await expectSummary(ctx(), { [email]: OFF });
    clock.advance(MINUTE);
    await confirmEnrolment(ctx(), { email, code: lastOutboxCode(outboxFile(ctx())) });
    const enrolledAt = clock.now;
    await expectSummary(ctx(), { [email]: on('sms', enrolledAt) });

    // send-code then verify: the SMS code is a use of the factor.
    clock.advance(MINUTE);
    await sendSignInCode(ctx(), { email });
    await expectSummary(ctx(), { [email]: on('sms', enrolledAt) });
    clock.advance(MINUTE);
    expect(await verifySignInCode(ctx(), { email, code: lastOutboxCode(outboxFile(ctx())) })).toMatchObject({
      outcome: 'accepted',
      kind: 'sms',
    });
    await expectSummary(ctx(), { [email]: on('sms', enrolledAt, { lastUsedAt: isoTime(clock.now) }) });

    // Replaced by an app: the phone goes, the enrolment time is the new one, the codes are fresh.
    clock.advance(MINUTE);
    await sendSignInCode(ctx(), { email });
    await enableApp(ctx(), clock, email, { force: true, currentCode: lastOutboxCode(outboxFile(ctx())) });
    await expectSummary(ctx(), { [email]: on('totp', clock.now) });

    // A temporary code that nobody uses: pending, then expired (by time alone: still 2FA required).
    clock.advance(HOUR);
    await recover(ctx(), email, HOUR);
    const expiresAt = isoTime(clock.now + HOUR)!;
    await expectSummary(ctx(), { [email]: { ...OFF, enabled: true, temporaryCode: { state: 'pending', expiresAt } } });
    clock.advance(HOUR + 1);
    await expectSummary(ctx(), { [email]: { ...OFF, enabled: true, temporaryCode: { state: 'expired', expiresAt } } });
    // recover again without one: 2FA off, the marker gone.
    await recover(ctx(), email);
    await expectSummary(ctx(), { [email]: OFF });
  });

  it('concurrent flows on many accounts (and twice on each) leave no drift', async () => {
    const emails = Array.from({ length: 8 }, (_, i) => `busy${i}@example.com`);
    for (const e of emails) await addMailbox(ctx(), e, PASSWORD);
    const enrolled = await Promise.all(emails.map((e) => storeTotpFactor(ctx(), e)));
    const enrolledAt = clock.now;
    clock.advance(MINUTE);
    // Per account: two recovery codes and a TOTP at once (they serialise on the account's lock); all accounts at once.
    const results = await Promise.all(
      emails.flatMap((email, i) => [
        verifySignInCode(ctx(), { email, code: enrolled[i]!.recoveryCodes[0]! }),
        verifySignInCode(ctx(), { email, code: enrolled[i]!.recoveryCodes[1]! }),
        verifySignInCode(ctx(), { email, code: totpCode(enrolled[i]!.secret, clock.now) }),
      ]),
    );
    expect(results.every((r) => r.outcome === 'accepted')).toBe(true);
    await expectSummary(
      ctx(),
      Object.fromEntries(
        emails.map((e) => [e, on('totp', enrolledAt, { lastUsedAt: isoTime(clock.now), recoveryCodesLeft: 8 })]),
      ),
    );
  });

  it('a rolled-back account transaction leaves the summary as it was', async () => {
    const email = 'rollback@example.com';
    await addMailbox(ctx(), email, PASSWORD);
    // No state row yet: the one the transaction creates goes with the rollback.
    await expect(
      accountTransaction(ctx(), email, async (tx) => {
        await storeFactor(tx.trx, tx.ctx.tables, tx.vault(), tx.now, {
          account: email,
          method: 'totp',
          totpSecret: generateTotpSecret(),
        });
        throw new Error('boom after storeFactor');
      }),
    ).rejects.toThrow('boom after storeFactor');
    await expectSummary(ctx(), { [email]: OFF });
    const db = await ctx().db();
    expect(await db.knex(ctx().tables.accountState).where({ account: email })).toEqual([]);

    const { secret } = await storeTotpFactor(ctx(), email);
    const enrolledAt = clock.now;
    clock.advance(MINUTE);
    await verifySignInCode(ctx(), { email, code: totpCode(secret, clock.now) });
    const before = on('totp', enrolledAt, { lastUsedAt: isoTime(clock.now) });
    await expectSummary(ctx(), { [email]: before });

    // An SMS factor replaces the app and the summary is refreshed inside the transaction; then it fails.
    clock.advance(MINUTE);
    await expect(
      accountTransaction(ctx(), email, async (tx) => {
        const phone = parsePhone(PHONE);
        await storeFactor(tx.trx, tx.ctx.tables, tx.vault(), tx.now, {
          account: email,
          method: 'sms',
          phoneE164: phone.e164,
          phoneMasked: phone.masked,
        });
        await refreshStatusSummary(tx.trx, tx.ctx.tables, tx.db.dialect, [email]);
        throw new Error('boom after the refresh');
      }),
    ).rejects.toThrow('boom after the refresh');
    await expectSummary(ctx(), { [email]: before });
  });

  it('demo: the sample accounts, and demo --reset after they were used', async () => {
    const first = await seedDemo(ctx(), { reset: false });
    const seededAt = clock.now;
    expect(first.created).toBe(true);
    const expected = (at: number): Record<string, Shown> => ({
      'alice@example.com': OFF,
      'bob@example.com': on('totp', at),
      'carol@example.com': on('sms', at),
      'dave@example.org': on('totp', at, { lockedUntil: isoTime(at + LOCKOUT_MS) }),
      'erin@example.org': OFF,
      'frank@example.net': on('totp', at, { recoveryCodesLeft: 3 }),
    });
    await expectSummary(ctx(), expected(seededAt));

    // bob signs in, frank uses a recovery code... then demo --reset puts every sample back.
    clock.advance(MINUTE);
    const bob = first.accounts.find((a) => a.email === 'bob@example.com')!;
    await verifySignInCode(ctx(), { email: bob.email, code: totpCode(bob.totpSecret!, clock.now) });
    await expectSummary(ctx(), {
      ...expected(seededAt),
      'bob@example.com': on('totp', seededAt, { lastUsedAt: isoTime(clock.now) }),
    });
    clock.advance(HOUR);
    expect((await seedDemo(ctx(), { reset: true })).created).toBe(true);
    await expectSummary(ctx(), expected(clock.now));
  });

  it('summaryDrift reports exactly the accounts and columns that disagree, and refreshAllSummaries repairs them', async () => {
    const db = await ctx().db();
    const state = ctx().tables.accountState;
    const app = 'drift-app@example.com';
    const sms = 'drift-sms@example.com';
    const temp = 'drift-temp@example.com';
    for (const e of [app, sms, temp]) await addMailbox(ctx(), e, PASSWORD);
    await storeTotpFactor(ctx(), app);
    await enableSms(ctx(), clock, sms);
    clock.advance(MINUTE);
    await sendSignInCode(ctx(), { email: sms });
    await verifySignInCode(ctx(), { email: sms, code: lastOutboxCode(outboxFile(ctx())) });
    await storeTotpFactor(ctx(), temp);
    await recover(ctx(), temp, HOUR);
    clock.advance(MINUTE);
    expect(await drift(ctx())).toEqual({ count: 0, examples: [] });

    // Each column on its own, in both directions (NULL where a value belongs, a value where NULL belongs).
    const corruptions: Array<[string, SummaryColumn, unknown]> = [
      [app, 'method', 'sms'],
      [sms, 'method', null],
      [app, 'phone_masked', '+45 ****0000'],
      [sms, 'phone_masked', null],
      [app, 'enrolled_at', 1],
      [sms, 'enrolled_at', null],
      [app, 'last_used_at', 1],
      [sms, 'last_used_at', null],
      [app, 'codes_left', 9],
      [sms, 'codes_left', null],
      [temp, 'codes_left', 0],
      [app, 'temp_expires_at', 1],
      [temp, 'temp_expires_at', null],
      [temp, 'temp_used_at', 1],
    ];
    expect(new Set(corruptions.map((c) => c[1]))).toEqual(new Set(SUMMARY_COLUMNS));
    for (const [account, column, value] of corruptions) {
      await db
        .knex(state)
        .where({ account })
        .update({ [column]: value });
      expect(await drift(ctx()), `${account} ${column}`).toEqual({
        count: 1,
        examples: [{ account, columns: [column] }],
      });
      await refreshStatusSummary(db.knex, ctx().tables, db.dialect, [account]);
      expect(await drift(ctx())).toEqual({ count: 0, examples: [] });
    }

    // One column changed by hand and one state row missing: status believes the summary, drift names both.
    await db.knex(state).where({ account: app }).update({ codes_left: 3 });
    await db.knex(state).where({ account: sms }).delete();
    expect((await statusOf(ctx(), [app, sms]))[app]!.recoveryCodesLeft).toBe(3);
    expect((await statusOf(ctx(), [app, sms]))[sms]).toEqual(OFF);
    expect(await drift(ctx())).toEqual({
      count: 2,
      examples: [
        { account: app, columns: ['codes_left'] },
        { account: sms, columns: 'missing row' },
      ],
    });
    expect(await drift(ctx(), 1)).toEqual({ count: 2, examples: [{ account: app, columns: ['codes_left'] }] });
    expect(await drift(ctx(), 0)).toEqual({ count: 2, examples: [] });
    // A temporary code without a state row is missing too.
    await db.knex(state).where({ account: temp }).delete();
    expect((await drift(ctx())).examples.at(-1)).toEqual({ account: temp, columns: 'missing row' });

    // The repair: every row recomputed, the missing ones created.
    await refreshAllSummaries(db.knex, ctx().tables, db.dialect);
    expect(await drift(ctx())).toEqual({ count: 0, examples: [] });
    const shownNow = await statusOf(ctx(), [app, sms, temp]);
    expect([shownNow[app]!.recoveryCodesLeft, shownNow[sms]!.method, shownNow[temp]!.temporaryCode?.state]).toEqual([
      10,
      'sms',
      'pending',
    ]);
  });
});

/** recover with an auto-confirm (as --yes does), optionally issuing a temporary code valid `ttlMs`. */
async function recover(ctx: Context, email: string, ttlMs?: number) {
  const result = await recoverYes(ctx, {
    email,
    ticket: 'T-1001',
    reason: 'lost phone',
    temporaryCodeTtlMs: ttlMs ?? null,
  });
  if (result.outcome !== 'recovered') throw new Error(`nothing to recover for ${email}`);
  return result;
}

async function enableSms(ctx: Context, clock: TestClock, email: string): Promise<void> {
  await startEnrolment(ctx, { email, password: PASSWORD, method: 'sms', phone: PHONE });
  clock.advance(10_000);
  await confirmEnrolment(ctx, { email, code: lastOutboxCode(outboxFile(ctx)) });
}

describeEachDb('status summary: migration 0002 fills it from older data, and goes down', (kind) => {
  const clock = testClock();
  let tdb: TestDb;
  let ctx: Context;
  beforeAll(async () => {
    tdb = await createTestDb(kind);
    ctx = await testContext(tdb, { clock, migrate: false });
  });
  afterAll(async () => {
    await ctx?.close();
    await tdb?.drop();
  });

  it('data written under 0001_initial: latest gives drift 0 and the right status; down drops the columns, up fills again', async () => {
    const db = await ctx.db();
    const t = ctx.tables;
    const mysql = db.dialect === 'mysql';
    await db.knex.migrate.up(migratorConfig(t, mysql));
    expect(await readSchemaVersion(db.knex, t)).toBe('0001_initial');
    for (const c of SUMMARY_COLUMNS) expect(await db.knex.schema.hasColumn(t.accountState, c), c).toBe(false);

    const now = clock.now;
    const vault = Vault.forContext(ctx, db);
    const emails = {
      used: 'used@example.com', // app, 3 of 10 recovery codes used, last used an hour ago
      locked: 'locked@example.com', // SMS, locked
      bare: 'bare@example.com', // app factor but no state row
      temp: 'temp@example.com', // a pending temporary code, no state row
      tempUsed: 'temp-used@example.com', // a used temporary code, no state row
      idle: 'idle@example.com', // a state row (2 wrong codes) and nothing else
      smsOnly: 'sms-only@example.com', // an SMS sign-in challenge, no factor (not part of the summary)
    };
    for (const e of Object.values(emails)) await addMailbox(ctx, e, PASSWORD);
    // The writers of the time: the same store functions, with no summary to keep.
    await inTransaction(db, t, async (trx) => {
      const challenge = (account: string, purpose: string, expiresAt: number) =>
        insertChallenge(trx, t, db.dialect, {
          account,
          purpose,
          code_hash: 'x'.repeat(64),
          created_at: now,
          expires_at: expiresAt,
        });
      await lockAccountState(trx, t, db.dialect, emails.used);
      await storeFactor(trx, t, vault, now - 2 * HOUR, {
        account: emails.used,
        method: 'totp',
        totpSecret: generateTotpSecret(),
      });
      await useFirstRecoveryCodes(trx, t, emails.used, 3, now - HOUR);
      await touchFactor(trx, t, emails.used, now - HOUR);

      await lockAccountState(trx, t, db.dialect, emails.locked);
      const phone = parsePhone(PHONE);
      await storeFactor(trx, t, vault, now, {
        account: emails.locked,
        method: 'sms',
        phoneE164: phone.e164,
        phoneMasked: phone.masked,
      });
      await setAttempts(trx, t, emails.locked, MAX_FAILED_ATTEMPTS, now + LOCKOUT_MS);

      await insertFactorRows(trx, t, [
        {
          account: emails.bare,
          method: 'totp',
          secret_ct: vault.seal(t.factor, 'secret_ct', emails.bare, generateTotpSecret()),
          phone_ct: null,
          phone_masked: null,
          key_id: vault.key.id,
          enrolled_at: now - 3 * HOUR,
          last_used_at: null,
          last_totp_step: null,
          version: 0,
        },
      ]);
      await challenge(emails.temp, 'temporary', now + 24 * HOUR);
      await useChallenge(trx, t, await challenge(emails.tempUsed, 'temporary', now + HOUR), now - MINUTE);
      await lockAccountState(trx, t, db.dialect, emails.idle);
      await setAttempts(trx, t, emails.idle, 2, null);
      await challenge(emails.smsOnly, 'sms', now + 10 * MINUTE);
    });

    const expected: Record<string, Shown> = {
      [emails.used]: on('totp', now - 2 * HOUR, { lastUsedAt: isoTime(now - HOUR), recoveryCodesLeft: 7 }),
      [emails.locked]: on('sms', now, { lockedUntil: isoTime(now + LOCKOUT_MS) }),
      [emails.bare]: on('totp', now - 3 * HOUR, { recoveryCodesLeft: 0 }),
      [emails.temp]: {
        ...OFF,
        enabled: true,
        temporaryCode: { state: 'pending', expiresAt: isoTime(now + 24 * HOUR)! },
      },
      [emails.tempUsed]: { ...OFF, enabled: true, temporaryCode: { state: 'used', expiresAt: isoTime(now + HOUR)! } },
      [emails.idle]: OFF,
      [emails.smsOnly]: OFF,
    };
    const stateRows = async () =>
      ((await db.knex(t.accountState).orderBy('account').select('account')) as { account: string }[]).map(
        (r) => r.account,
      );

    // The migration `mail2fa migrate` runs: the state rows missing for a factor or a temporary code are created.
    expect(await migrateToLatest(db.knex, t, mysql)).toEqual({ applied: ['0002_status_summary'] });
    expect(await readSchemaVersion(db.knex, t)).toBe(LATEST_MIGRATION);
    expect(await stateRows()).toEqual(
      [emails.bare, emails.idle, emails.locked, emails.temp, emails.tempUsed, emails.used].sort(),
    );
    await expectSummary(ctx, expected);

    // down: the summary columns go, everything else stays.
    const [, reverted] = (await db.knex.migrate.down(migratorConfig(t, mysql))) as [number, string[]];
    expect(reverted).toEqual(['0002_status_summary']);
    expect(await readSchemaVersion(db.knex, t)).toBe('0001_initial');
    for (const c of SUMMARY_COLUMNS) expect(await db.knex.schema.hasColumn(t.accountState, c), c).toBe(false);
    const locked = (await db.knex(t.accountState).where({ account: emails.locked }).first()) as Record<string, unknown>;
    expect([Number(locked.failed_attempts), Number(locked.locked_until)]).toEqual([
      MAX_FAILED_ATTEMPTS,
      now + LOCKOUT_MS,
    ]);
    expect(Number(((await db.knex(t.factor).count({ n: '*' }).first()) as { n: number | string }).n)).toBe(3);

    // Changes made while at 0001 (a code used, the lock cleared) are in the summary after the next migration.
    await inTransaction(db, t, async (trx) => {
      await useFirstRecoveryCodes(trx, t, emails.used, 5, now);
      await setAttempts(trx, t, emails.locked, 0, null);
    });
    // A 0002 that stopped after adding its columns (MySQL/MariaDB commit DDL at once, outside the migration's
    // transaction) is applied again: the columns are found, the fill runs.
    await db.knex.schema.alterTable(t.accountState, (table) => {
      table.string('method', 8).nullable();
      table.string('phone_masked', 32).nullable();
      table.bigInteger('enrolled_at').nullable();
      table.bigInteger('last_used_at').nullable();
      table.integer('codes_left').nullable();
      table.bigInteger('temp_expires_at').nullable();
      table.bigInteger('temp_used_at').nullable();
    });
    expect(await migrateToLatest(db.knex, t, mysql)).toEqual({ applied: ['0002_status_summary'] });
    await expectSummary(ctx, {
      ...expected,
      [emails.used]: on('totp', now - 2 * HOUR, { lastUsedAt: isoTime(now - HOUR), recoveryCodesLeft: 5 }),
      [emails.locked]: on('sms', now),
    });
  });
});

describeEachDb('status summary: migrate-from postfixadmin', (kind) => {
  const clock = testClock();
  let tdb: TestDb;
  let ctx: Context;
  beforeAll(async () => {
    tdb = await createTestDb(kind);
    const configPath = join(tdb.dir, 'mail2fa.json');
    writeFileSync(configPath, JSON.stringify({ accounts: { preset: 'postfixadmin' } }));
    ctx = await testContext(tdb, { clock, configPath });
  });
  afterAll(async () => {
    await ctx?.close();
    await tdb?.drop();
  });

  const secrets = { a: base32(randomBytes(20)), b: base32(randomBytes(20)), enrolled: base32(randomBytes(20)) };
  let enrolledAt: number;
  beforeEach(async () => {
    await resetPostfixadminMailbox(ctx);
    const db = await ctx.db();
    const row = (username: string, totp: string | null) =>
      postfixadminMailboxRow(username, { password: '{SHA512-CRYPT}$6$rounds=5000$abcdefgh$notarealhash', totp });
    await db
      .knex('mailbox')
      .insert([
        row('a@example.com', secrets.a),
        row('b@example.com', secrets.b),
        row('enrolled@example.com', secrets.enrolled),
        row('plain@example.com', null),
      ]);
    // Enrolled in mail2fa already (another secret): skipped by both migrations, its summary untouched.
    await storeTotpFactor(ctx, 'enrolled@example.com');
    enrolledAt = clock.now;
    clock.advance(HOUR);
  });
  const emails = ['a@example.com', 'b@example.com', 'enrolled@example.com', 'plain@example.com'];

  it('migrate-from postfixadmin --clear-plaintext: the migrated accounts show their factor (no recovery codes)', async () => {
    const report = await migrateFromPostfixadmin(ctx, { dryRun: false, clearPlaintext: true, skipInvalid: false });
    expect(report).toMatchObject({ ok: true, migrated: 2, skipped: 1, cleared: 2 });
    const migratedAt = clock.now;
    await expectSummary(ctx, {
      'a@example.com': on('totp', migratedAt, { recoveryCodesLeft: 0 }),
      'b@example.com': on('totp', migratedAt, { recoveryCodesLeft: 0 }),
      'enrolled@example.com': on('totp', enrolledAt),
      'plain@example.com': OFF,
    });
    // The migrated secret signs in: a use like any other.
    clock.advance(MINUTE);
    expect(await verifySignInCode(ctx, { email: 'a@example.com', code: totpCode(secrets.a, clock.now) })).toMatchObject(
      { outcome: 'accepted' },
    );
    await expectSummary(ctx, {
      'a@example.com': on('totp', migratedAt, { recoveryCodesLeft: 0, lastUsedAt: isoTime(clock.now) }),
      'b@example.com': on('totp', migratedAt, { recoveryCodesLeft: 0 }),
      'enrolled@example.com': on('totp', enrolledAt),
      'plain@example.com': OFF,
    });
  });

  it('migrate-from over the PostfixAdmin store module (src/core/migrate-store.ts, on every database)', async () => {
    const report = await migrateFromStore(ctx, await sourceStore(ctx, 'postfixadmin'), {
      dryRun: false,
      clear: false,
      skipInvalid: false,
    });
    expect(report).toMatchObject({ ok: true, migrated: 2, skipped: 1 });
    await expectSummary(
      ctx,
      Object.fromEntries(
        emails.map((e) => [
          e,
          e === 'plain@example.com'
            ? OFF
            : e === 'enrolled@example.com'
              ? on('totp', enrolledAt)
              : on('totp', clock.now, { recoveryCodesLeft: 0 }),
        ]),
      ),
    );
  });
});

describeRoundcubeEachDb('status summary: migrate-from roundcube', (kind) => {
  const clock = testClock();
  const scratch = useTestDb(kind, { context: { clock } });
  const DES_KEY = 'Rc-test-des-key-0123456!';
  let rc: RoundcubeDb;
  beforeAll(async () => {
    rc = await createRoundcubeDb(kind);
  });
  afterAll(async () => {
    await rc?.drop();
  });

  it('the migrated accounts show their factor; skipped and unknown ones are left as they were', async () => {
    const ctx = scratch.ctx;
    const secrets = { a: base32(randomBytes(20)), b: base32(randomBytes(10)) };
    for (const e of ['a@example.com', 'b@example.com', 'enrolled@example.com', 'plain@example.com'])
      await addMailbox(ctx, e, PASSWORD);
    await storeTotpFactor(ctx, 'enrolled@example.com');
    const enrolledAt = clock.now;
    const value = (secret: string) =>
      `a:1:{s:24:"twofactor_gauthenticator";${encryptedPluginValue(DES_KEY, 'aes-256-cbc', { secret })}}`;
    await insertUser(rc, 'a@example.com', 'localhost', value(secrets.a));
    await insertUser(rc, 'b@example.com', 'localhost', value(secrets.b));
    await insertUser(rc, 'enrolled@example.com', 'localhost', value(base32(randomBytes(20))));
    await insertUser(rc, 'gone@example.com', 'localhost', value(base32(randomBytes(20))));
    clock.advance(HOUR);

    const s = openRoundcubeStore(rc, { des_key: DES_KEY, cipher_method: 'AES-256-CBC', pref_encrypt: true });
    try {
      const run = await migrateFromStore(ctx, s.store, { dryRun: false, clear: true, skipInvalid: false });
      expect(run).toMatchObject({ ok: true, migrated: 2, skipped: 1, noMailbox: 1, cleared: 2 });
    } finally {
      await s.close();
    }
    const migratedAt = clock.now;
    const expected = {
      'a@example.com': on('totp', migratedAt, { recoveryCodesLeft: 0 }),
      'b@example.com': on('totp', migratedAt, { recoveryCodesLeft: 0 }),
      'enrolled@example.com': on('totp', enrolledAt),
      'plain@example.com': OFF,
    };
    await expectSummary(ctx, expected);
    clock.advance(MINUTE);
    await verifySignInCode(ctx, { email: 'b@example.com', code: totpCode(secrets.b, clock.now) });
    await expectSummary(ctx, {
      ...expected,
      'b@example.com': on('totp', migratedAt, { recoveryCodesLeft: 0, lastUsedAt: isoTime(clock.now) }),
    });
  });
});
