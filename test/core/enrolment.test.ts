/**
 * Enrolment (enable) in-process against real SQLite and MariaDB: both methods, the two steps, and every way it
 * can fail leaving nothing stored. Time comes from an injected clock; SMS codes are read from the real outbox file.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, describe, expect, it } from 'vitest';
import {
  CONFIRM_TRIES,
  ENROLMENT_TTL_MS,
  cancelEnrolment,
  confirmEnrolment,
  enrolmentPreflight,
  startEnrolment,
  type StartedEnrolment,
} from '../../src/core/enrolment.js';
import { readFactor } from '../../src/core/factors.js';
import { accountTransaction } from '../../src/core/guard.js';
import { sendSignInCode } from '../../src/core/send-code.js';
import { checkSecondFactor } from '../../src/core/factor-check.js';
import { recoverAccount } from '../../src/core/recover.js';
import { timeStep, totpCode } from '../../src/totp/totp.js';
import { describeEachDb, useTestDb } from '../helpers/db.js';
import { addMailbox, testClock, testContext } from '../helpers/context.js';
import { failure, lastOutboxCode, outboxMessages, writeConfig } from '../helpers/enrolment.js';
import { accountRows, checkAtSignIn, expectNothingStored, openFactorColumn } from '../helpers/account-rows.js';
import { auditRows } from '../helpers/seed-2fa.js';

const PW = 'correct horse';

describeEachDb('enrolment core', (kind) => {
  let outbox: string;
  let n = 0;
  const clock = testClock();
  const scratch = useTestDb(kind, {
    context: (tdb) => ({
      clock,
      configPath: writeConfig(tdb.dir, 'signout', {
        issuer: 'Example Mail',
        signOut: { action: 'sql', sql: 'DELETE FROM webmail_session WHERE email = ?' },
      }),
    }),
  });

  beforeAll(async () => {
    const db = await scratch.ctx.db();
    await db.knex.schema.createTable('webmail_session', (t) => {
      t.string('id', 32).primary();
      t.string('email', 320).notNullable();
    });
    outbox = join(scratch.tdb.dir, 'home', 'sms-outbox.ndjson');
  });

  /** A fresh mailbox per test, so tests do not share lockout counters or rate limits. */
  async function mailbox(o: { active?: boolean } = {}): Promise<string> {
    const email = `user${++n}@example.com`;
    await addMailbox(scratch.ctx, email, PW, o);
    return email;
  }
  const knex = async () => (await scratch.ctx.db()).knex;
  const rows = (table: string, account: string) => accountRows(scratch.ctx, table, account);
  const state = async (account: string) =>
    (await rows(scratch.ctx.tables.accountState, account))[0] as
      { failed_attempts: number; locked_until: unknown; sessions_revoked_at: unknown } | undefined;
  const audit = async (account: string) =>
    (await auditRows(scratch.ctx, account)).map((r) => [r.action, r.outcome, r.reason]);
  const nothingStored = (account: string) => expectNothingStored(scratch.ctx, account);
  const startApp = (email: string, o: { force?: boolean; password?: string; currentCode?: string } = {}) =>
    startEnrolment(scratch.ctx, {
      email,
      password: o.password ?? PW,
      method: 'totp',
      force: o.force,
      currentCode: o.currentCode,
    });
  const codeFor = (started: StartedEnrolment, at = clock.now) => totpCode(started.totp!.secret, at);
  /** A code that is not valid now (±1 step) for the secret. */
  const wrongCodeFor = (started: StartedEnrolment) => {
    const valid = new Set([-1, 0, 1].map((d) => totpCode(started.totp!.secret, clock.now + d * 30_000)));
    for (let i = 0; ; i++) {
      const c = String(i).padStart(6, '0');
      if (!valid.has(c)) return c;
    }
  };

  describe('authenticator app', () => {
    it('start stores only a sealed, expiring pending enrolment; confirm stores the factor, codes, revokes sessions', async () => {
      const email = await mailbox();
      await (
        await knex()
      )('webmail_session').insert([
        { id: `s-${email}`, email },
        { id: 'other', email: 'someone@else.org' },
      ]);
      const started = await startApp(email);
      expect(started.totp!.secret).toMatch(/^[A-Z2-7]{32}$/);
      expect(started.totp!.otpauthUri).toBe(
        `otpauth://totp/Example%20Mail:${encodeURIComponent(email)}?secret=${started.totp!.secret}&issuer=Example%20Mail&algorithm=SHA1&digits=6&period=30`,
      );
      expect(started.expiresAt).toBe(new Date(clock.now + ENROLMENT_TTL_MS).toISOString().replace(/\.000Z$/, 'Z'));
      const [pending] = await rows(scratch.ctx.tables.enrolment, email);
      expect(pending).toMatchObject({ id: started.enrolmentId, method: 'totp', phone_ct: null });
      expect(String(pending!.secret_ct)).not.toContain(started.totp!.secret);
      expect(await rows(scratch.ctx.tables.factor, email)).toEqual([]);
      expect((await state(email))!.sessions_revoked_at).toBeNull();

      clock.advance(20_000);
      const code = codeFor(started);
      const done = await confirmEnrolment(scratch.ctx, { email, code, enrolmentId: started.enrolmentId });
      expect(done).toMatchObject({
        email,
        method: 'totp',
        phone: null,
        replaced: null,
        signOut: { action: 'sql', ok: true },
      });
      expect(done.recoveryCodes).toHaveLength(10);
      for (const c of done.recoveryCodes) expect(c).toMatch(/^[0-9a-hjkmnp-tv-z]{5}-[0-9a-hjkmnp-tv-z]{5}$/);

      const factor = (await readFactor(await knex(), scratch.ctx.tables, email))!;
      expect(factor.method).toBe('totp');
      expect(openFactorColumn(scratch.ctx, email, 'secret_ct', factor.secret_ct!)).toBe(started.totp!.secret);
      expect(factor.last_totp_step).toBe(timeStep(clock.now));
      expect(await rows(scratch.ctx.tables.enrolment, email)).toEqual([]);
      expect(await rows(scratch.ctx.tables.recoveryCode, email)).toHaveLength(10);
      expect(Number((await state(email))!.sessions_revoked_at)).toBe(clock.now);
      // The sign-out statement ran in the same transaction, for this address only.
      expect(
        ((await (await knex())('webmail_session').select('email')) as { email: string }[]).map((r) => r.email),
      ).toEqual(['someone@else.org']);
      expect(await audit(email)).toEqual([
        ['enable-start', 'ok', null],
        ['enable', 'ok', null],
      ]);
    });

    it('the confirmation code cannot be replayed at sign-in; the next step is accepted', async () => {
      const email = await mailbox();
      const started = await startApp(email);
      const code = codeFor(started);
      await confirmEnrolment(scratch.ctx, { email, code });
      const check = (c: string) => checkAtSignIn(scratch.ctx, email, { form: 'digits', value: c }, ['totp']);
      expect(await check(code)).toBeNull();
      clock.advance(30_000);
      expect(await check(codeFor(started))).toBe('totp');
    });

    it('a wrong password: 77, counted toward the lockout, audited, nothing stored', async () => {
      const email = await mailbox();
      const err = await failure(startApp(email, { password: 'wrong horse' }));
      expect([err.exitCode, err.code]).toEqual([77, 'wrong_password']);
      expect((await state(email))!.failed_attempts).toBe(1);
      expect(await audit(email)).toEqual([['enable', 'refused', 'wrong password']]);
      await nothingStored(email);
    });

    it('three wrong confirmation codes cancel the enrolment; each counts; nothing stored', async () => {
      const email = await mailbox();
      const started = await startApp(email);
      const wrong = wrongCodeFor(started);
      const first = await failure(confirmEnrolment(scratch.ctx, { email, code: wrong }));
      expect([first.exitCode, first.code, first.message]).toEqual([77, 'wrong_code', 'wrong code (2 tries left)']);
      const second = await failure(confirmEnrolment(scratch.ctx, { email, code: wrong }));
      expect(second.message).toBe('wrong code (1 try left)');
      expect(await rows(scratch.ctx.tables.enrolment, email)).toHaveLength(1);
      const third = await failure(confirmEnrolment(scratch.ctx, { email, code: wrong }));
      expect([third.exitCode, third.code]).toEqual([77, 'enrolment_cancelled']);
      expect(third.message).toContain(
        `${CONFIRM_TRIES} wrong codes: the enrolment was cancelled and nothing was stored`,
      );
      expect((await state(email))!.failed_attempts).toBe(3);
      await nothingStored(email);
      // Even the right code is too late now.
      const late = await failure(confirmEnrolment(scratch.ctx, { email, code: codeFor(started) }));
      expect([late.exitCode, late.code]).toEqual([65, 'no_pending_enrolment']);
      await nothingStored(email);
      expect((await audit(email)).map((a) => a.slice(0, 3))).toEqual([
        ['enable-start', 'ok', null],
        ['enable', 'refused', 'wrong code'],
        ['enable', 'refused', 'wrong code'],
        ['enable', 'refused', 'wrong code'],
        ['enable-cancel', 'ok', '3 wrong codes'],
        ['enable', 'refused', 'no pending enrolment'],
      ]);
    });

    it('malformed codes are refused as input (65) and not counted', async () => {
      const email = await mailbox();
      const started = await startApp(email);
      for (const bad of [
        '12345',
        '1234567',
        '123 456',
        ' 123456',
        '123456 ',
        '１２３４５６',
        '1e5',
        '-12345',
        '',
        'x'.repeat(1_000_000),
      ]) {
        const err = await failure(confirmEnrolment(scratch.ctx, { email, code: bad }));
        expect([err.exitCode, err.code]).toEqual([65, 'bad_code']);
      }
      expect((await state(email))!.failed_attempts).toBe(0);
      await confirmEnrolment(scratch.ctx, { email, code: codeFor(started) });
    });

    it('expires after 10 minutes: refused (65), the pending enrolment removed, nothing stored', async () => {
      const email = await mailbox();
      const started = await startApp(email);
      clock.advance(ENROLMENT_TTL_MS - 1000);
      // Still pending a second before: a wrong code is counted, not "expired" (control for the assertion below).
      expect((await failure(confirmEnrolment(scratch.ctx, { email, code: wrongCodeFor(started) }))).code).toBe(
        'wrong_code',
      );
      clock.advance(1000);
      const err = await failure(confirmEnrolment(scratch.ctx, { email, code: codeFor(started) }));
      expect([err.exitCode, err.code]).toEqual([65, 'enrolment_expired']);
      await nothingStored(email);
      expect((await audit(email)).at(-1)).toEqual(['enable', 'refused', 'enrolment expired']);
    });

    it('a newer start supersedes an older one', async () => {
      const email = await mailbox();
      const older = await startApp(email);
      const newer = await startApp(email);
      expect(newer.totp!.secret).not.toBe(older.totp!.secret);
      const err = await failure(
        confirmEnrolment(scratch.ctx, { email, code: codeFor(older), enrolmentId: older.enrolmentId }),
      );
      expect([err.exitCode, err.code]).toEqual([65, 'enrolment_superseded']);
      // The older secret's code is simply wrong for the newer enrolment.
      expect((await failure(confirmEnrolment(scratch.ctx, { email, code: codeFor(older) }))).code).toBe('wrong_code');
      await confirmEnrolment(scratch.ctx, { email, code: codeFor(newer), enrolmentId: newer.enrolmentId });
    });

    it('cancel drops the pending enrolment only', async () => {
      const email = await mailbox();
      const started = await startApp(email);
      expect(await cancelEnrolment(scratch.ctx, { email, enrolmentId: 'someotherid' })).toEqual({
        email,
        cancelled: false,
        method: null,
      });
      expect(await cancelEnrolment(scratch.ctx, { email, enrolmentId: started.enrolmentId })).toEqual({
        email,
        cancelled: true,
        method: 'totp',
      });
      await nothingStored(email);
      expect(await cancelEnrolment(scratch.ctx, { email })).toEqual({ email, cancelled: false, method: null });
    });

    it('already enabled: refused with a hint before the password; --force replaces only after password and code', async () => {
      const email = await mailbox();
      const first = await startApp(email);
      await confirmEnrolment(scratch.ctx, { email, code: codeFor(first) });
      const oldFactor = await readFactor(await knex(), scratch.ctx.tables, email);

      for (const attempt of [
        () => startApp(email),
        () => enrolmentPreflight(scratch.ctx, { email }),
        () => startApp(email, { password: 'wrong' }),
      ]) {
        const err = await failure(attempt());
        expect([err.exitCode, err.code]).toEqual([65, 'already_enabled']);
        expect(err.hint).toContain('--force');
      }
      expect((await state(email))!.failed_attempts).toBe(0);

      // The password alone never swaps the factor: a current code of the existing factor is required too.
      const noCode = await failure(startApp(email, { force: true }));
      expect([noCode.exitCode, noCode.code]).toEqual([64, 'usage']);
      expect(noCode.hint).toContain('--current-code');
      const wrongCode = await failure(startApp(email, { force: true, currentCode: '000000' }));
      expect([wrongCode.exitCode, wrongCode.code]).toEqual([77, 'wrong_code']);
      clock.advance(30_000);
      const wrongPw = await failure(startApp(email, { force: true, password: 'wrong', currentCode: codeFor(first) }));
      expect(wrongPw.exitCode).toBe(77);
      expect(await readFactor(await knex(), scratch.ctx.tables, email)).toEqual(oldFactor);
      expect(await enrolmentPreflight(scratch.ctx, { email, force: true })).toEqual({
        email,
        replacing: 'totp',
        currentCode: 'factor',
      });
      const second = await startApp(email, { force: true, currentCode: codeFor(first) });
      expect(second.replacing).toBe('totp');
      // Until confirmed, the old factor is untouched (but for the current code just used: its step is recorded).
      expect({
        ...(await readFactor(await knex(), scratch.ctx.tables, email))!,
        last_totp_step: null,
        last_used_at: null,
      }).toEqual({ ...oldFactor!, last_totp_step: null, last_used_at: null });
      clock.advance(30_000);
      const done = await confirmEnrolment(scratch.ctx, { email, code: codeFor(second) });
      expect(done.replaced).toBe('totp');
      const factor = (await readFactor(await knex(), scratch.ctx.tables, email))!;
      expect(openFactorColumn(scratch.ctx, email, 'secret_ct', factor.secret_ct!)).toBe(second.totp!.secret);
      expect(await rows(scratch.ctx.tables.recoveryCode, email)).toHaveLength(10);
    });

    it('locked, inactive, unknown and malformed accounts are refused', async () => {
      const locked = await mailbox();
      await (
        await knex()
      )(scratch.ctx.tables.accountState).insert({
        account: locked,
        failed_attempts: 5,
        locked_until: clock.now + 60_000,
      });
      const lockedErr = await failure(startApp(locked));
      expect([lockedErr.exitCode, lockedErr.code]).toEqual([75, 'locked']);

      const inactive = await mailbox({ active: false });
      for (const attempt of [() => startApp(inactive), () => enrolmentPreflight(scratch.ctx, { email: inactive })]) {
        const err = await failure(attempt());
        expect([err.exitCode, err.code]).toEqual([65, 'mailbox_inactive']);
      }
      await nothingStored(inactive);
      expect(await audit(inactive)).toEqual([
        ['enable', 'refused', 'mailbox inactive'],
        ['enable', 'refused', 'mailbox inactive'],
      ]);

      expect((await failure(startApp('nobody@example.com'))).exitCode).toBe(67);
      expect((await failure(startApp('USER1@example.com'))).exitCode).toBe(67);
      expect((await failure(startApp(' user1@example.com'))).exitCode).toBe(65);
      expect(
        (await failure(confirmEnrolment(scratch.ctx, { email: 'nobody@example.com', code: '123456' }))).exitCode,
      ).toBe(67);
      expect(await rows(scratch.ctx.tables.accountState, 'nobody@example.com')).toEqual([]);
    });

    it('a sealed secret copied to another account fails as an integrity error (78), not as a wrong code', async () => {
      const a = await mailbox();
      const b = await mailbox();
      const fromA = await startApp(a);
      await startApp(b);
      const [rowA] = await rows(scratch.ctx.tables.enrolment, a);
      await (await knex())(scratch.ctx.tables.enrolment).where({ account: b }).update({ secret_ct: rowA!.secret_ct });
      const err = await failure(confirmEnrolment(scratch.ctx, { email: b, code: codeFor(fromA) }));
      expect([err.exitCode, err.code]).toEqual([78, 'integrity']);
      expect((await state(b))!.failed_attempts).toBe(0);
      expect(await rows(scratch.ctx.tables.factor, b)).toEqual([]);
    });
  });

  describe("after customer service's recover --temporary-code (2FA stays required)", () => {
    const recoverWithCode = async (email: string) => {
      // Customer service acts on an account with 2FA on.
      await confirmEnrolment(scratch.ctx, { email, code: codeFor(await startApp(email)) });
      const r = await recoverAccount(
        scratch.ctx,
        { email, ticket: 'T-77', temporaryCodeTtlMs: 3_600_000 },
        async () => {},
      );
      return (r as { temporaryCode: { code: string } }).temporaryCode.code;
    };

    it('the password alone does not enrol while the temporary code is pending; the temporary code does', async () => {
      const email = await mailbox();
      const temporary = await recoverWithCode(email);
      expect(await enrolmentPreflight(scratch.ctx, { email })).toEqual({
        email,
        replacing: null,
        currentCode: 'temporary',
      });
      const noCode = await failure(startApp(email));
      expect([noCode.exitCode, noCode.code]).toEqual([64, 'usage']);
      const wrong = await failure(startApp(email, { currentCode: 'aaaa-bbbb-cccc-dddd' }));
      expect(wrong.exitCode).toBe(77);
      const started = await startApp(email, { currentCode: temporary });
      await confirmEnrolment(scratch.ctx, { email, code: codeFor(started) });
      expect((await readFactor(await knex(), scratch.ctx.tables, email))!.method).toBe('totp');
    });

    it('once the temporary code was used at sign-in, the password suffices; expired unused, it is refused', async () => {
      const used = await mailbox();
      const temporary = await recoverWithCode(used);
      expect(
        await accountTransaction(scratch.ctx, used, async (tx) =>
          checkSecondFactor(tx, undefined, { form: 'temporary', value: temporary }, new Set(['temporary'])),
        ),
      ).toBe('temporary');
      expect((await enrolmentPreflight(scratch.ctx, { email: used })).currentCode).toBeNull();
      await startApp(used);

      const expired = await mailbox();
      await recoverWithCode(expired);
      clock.advance(3_600_001);
      const err = await failure(startApp(expired));
      expect([err.exitCode, err.code]).toEqual([65, 'temporary_code_expired']);
      expect(await readFactor(await knex(), scratch.ctx.tables, expired)).toBeUndefined();
      expect(await rows(scratch.ctx.tables.enrolment, expired)).toEqual([]);
    });
  });

  describe('SMS', () => {
    it('sends a code to the phone (outbox), confirms with it, stores the phone sealed and masked', async () => {
      const email = await mailbox();
      const started = await startEnrolment(scratch.ctx, {
        email,
        password: PW,
        method: 'sms',
        phone: '011-45-20123456',
      });
      expect(started.sms).toEqual({ phone: '+45 ****3456', delivery: { transport: 'outbox', where: outbox } });
      expect(started.totp).toBeUndefined();
      const message = outboxMessages(outbox).at(-1)!;
      expect(message.to).toBe('+4520123456');
      expect(message.text).toMatch(/^Your Example Mail verification code is [0-9]{6}\. It expires in 10 minutes\.$/);
      const [pending] = await rows(scratch.ctx.tables.enrolment, email);
      expect(pending).toMatchObject({ method: 'sms', secret_ct: null, phone_masked: '+45 ****3456' });
      expect(String(pending!.phone_ct)).not.toContain('20123456');

      clock.advance(60_000);
      const done = await confirmEnrolment(scratch.ctx, { email, code: lastOutboxCode(outbox) });
      expect(done).toMatchObject({ method: 'sms', phone: '+45 ****3456', replaced: null });
      const factor = (await readFactor(await knex(), scratch.ctx.tables, email))!;
      expect(factor).toMatchObject({
        method: 'sms',
        secret_ct: null,
        phone_masked: '+45 ****3456',
        last_totp_step: null,
      });
      expect(openFactorColumn(scratch.ctx, email, 'phone_ct', factor.phone_ct!)).toBe('+4520123456');
      expect(await rows(scratch.ctx.tables.challenge, email)).toEqual([]);
      expect(await rows(scratch.ctx.tables.enrolment, email)).toEqual([]);
      expect((await audit(email)).map((a) => a[0])).toEqual(['enable-send-code', 'enable-start', 'enable']);
    });

    it('a bad phone number is refused (65) saying why, before anything is checked, sent or stored', async () => {
      const email = await mailbox();
      const before = outboxMessages(outbox).length;
      const err = await failure(
        startEnrolment(scratch.ctx, { email, password: 'wrong too', method: 'sms', phone: '011-45-12345678' }),
      );
      expect([err.exitCode, err.code]).toEqual([65, 'bad_phone']);
      expect(err.message).toContain('Denmark');
      expect(err.message).not.toContain('12345678');
      expect((await failure(startEnrolment(scratch.ctx, { email, password: PW, method: 'sms' }))).code).toBe(
        'bad_phone',
      );
      await nothingStored(email);
      expect(await rows(scratch.ctx.tables.smsSend, email)).toEqual([]);
      expect(await state(email)).toBeUndefined();
      expect(outboxMessages(outbox)).toHaveLength(before);
    });

    it('the enrolment code is not a sign-in code, and a sign-in code does not confirm a new phone', async () => {
      const email = await mailbox();
      const first = await startEnrolment(scratch.ctx, { email, password: PW, method: 'sms', phone: '+4520123456' });
      expect(first.sms).toBeDefined();
      const firstDone = await confirmEnrolment(scratch.ctx, { email, code: lastOutboxCode(outbox) });

      // --force: a new phone (proved with a recovery code of the current factor); its code goes to the new number.
      await startEnrolment(scratch.ctx, {
        email,
        password: PW,
        method: 'sms',
        phone: '+4531123456',
        force: true,
        currentCode: firstDone.recoveryCodes[0],
      });
      const enrolCode = lastOutboxCode(outbox);
      expect(outboxMessages(outbox).at(-1)!.to).toBe('+4531123456');
      const signIn = (c: string) => checkAtSignIn(scratch.ctx, email, { form: 'digits', value: c }, ['sms']);
      expect(await signIn(enrolCode)).toBeNull();

      // A sign-in code texted to the OLD phone (send-code) cannot confirm the new one.
      await sendSignInCode(scratch.ctx, { email });
      const signInCode = lastOutboxCode(outbox);
      expect(outboxMessages(outbox).at(-1)!.to).toBe('+4520123456');
      expect((await failure(confirmEnrolment(scratch.ctx, { email, code: signInCode }))).code).toBe('wrong_code');
      // The enrolment code still confirms (only the newest enrolment code is valid, and sign-in sends do not touch it).
      const done = await confirmEnrolment(scratch.ctx, { email, code: enrolCode });
      expect(done).toMatchObject({ phone: '+45 ****3456', replaced: 'sms' });
      const factor = (await readFactor(await knex(), scratch.ctx.tables, email))!;
      expect(openFactorColumn(scratch.ctx, email, 'phone_ct', factor.phone_ct!)).toBe('+4531123456');
    });

    it('only the newest enrolment code is valid; a used one is not accepted twice', async () => {
      const email = await mailbox();
      await startEnrolment(scratch.ctx, { email, password: PW, method: 'sms', phone: '+4520123456' });
      const older = lastOutboxCode(outbox);
      await startEnrolment(scratch.ctx, { email, password: PW, method: 'sms', phone: '+4520123456' });
      const newer = lastOutboxCode(outbox);
      if (older !== newer)
        expect((await failure(confirmEnrolment(scratch.ctx, { email, code: older }))).code).toBe('wrong_code');
      await confirmEnrolment(scratch.ctx, { email, code: newer });
      expect((await failure(confirmEnrolment(scratch.ctx, { email, code: newer }))).code).toBe('no_pending_enrolment');
    });

    it('sends count toward the shared limit: the 4th start within 15 minutes is refused (75), changing nothing', async () => {
      const email = await mailbox();
      let third: StartedEnrolment | undefined;
      for (let i = 0; i < 3; i++)
        third = await startEnrolment(scratch.ctx, { email, password: PW, method: 'sms', phone: '+4520123456' });
      const sent = outboxMessages(outbox).length;
      const pendingBefore = await rows(scratch.ctx.tables.enrolment, email);
      const challengesBefore = await rows(scratch.ctx.tables.challenge, email);
      const err = await failure(
        startEnrolment(scratch.ctx, { email, password: PW, method: 'sms', phone: '+4531123456' }),
      );
      expect([err.exitCode, err.code]).toEqual([75, 'rate_limited']);
      expect(outboxMessages(outbox)).toHaveLength(sent);
      expect(await rows(scratch.ctx.tables.smsSend, email)).toHaveLength(3);
      // The third enrolment and its code are untouched and still confirm.
      expect(await rows(scratch.ctx.tables.enrolment, email)).toEqual(pendingBefore);
      expect(await rows(scratch.ctx.tables.challenge, email)).toEqual(challengesBefore);
      await confirmEnrolment(scratch.ctx, { email, code: lastOutboxCode(outbox), enrolmentId: third!.enrolmentId });
      expect((await audit(email)).filter((a) => a[0] === 'enable-send-code').map((a) => a[1])).toEqual([
        'ok',
        'ok',
        'ok',
        'refused',
      ]);
    });

    it('after the 15-minute window, sending works again', async () => {
      const email = await mailbox();
      for (let i = 0; i < 3; i++)
        await startEnrolment(scratch.ctx, { email, password: PW, method: 'sms', phone: '+4520123456' });
      clock.advance(15 * 60_000);
      await startEnrolment(scratch.ctx, { email, password: PW, method: 'sms', phone: '+4520123456' });
      await confirmEnrolment(scratch.ctx, { email, code: lastOutboxCode(outbox) });
    });
  });

  it('the sign-out command runs after the commit, without a shell, with the address as an argument', async () => {
    const marker = join(scratch.tdb.dir, 'signed-out.txt');
    const config = writeConfig(scratch.tdb.dir, 'command', {
      signOut: {
        action: 'command',
        command: [
          process.execPath,
          '-e',
          'require("fs").appendFileSync(process.argv[1], process.argv[2] + "\\n")',
          marker,
          '{email}',
        ],
      },
    });
    const other = await testContext(scratch.tdb, { clock, configPath: config });
    try {
      const email = await mailbox();
      const started = await startEnrolment(other, { email, password: PW, method: 'totp' });
      const done = await confirmEnrolment(other, { email, code: totpCode(started.totp!.secret, clock.now) });
      expect(done.signOut).toMatchObject({ action: 'command', ok: true });
      expect(readFileSync(marker, 'utf8')).toBe(`${email}\n`);

      const broken = writeConfig(scratch.tdb.dir, 'broken', {
        signOut: { action: 'command', command: [join(scratch.tdb.dir, 'no-such-program'), '{email}'] },
      });
      const third = await testContext(scratch.tdb, { clock, configPath: broken });
      try {
        const email2 = await mailbox();
        const s2 = await startEnrolment(third, { email: email2, password: PW, method: 'totp' });
        const d2 = await confirmEnrolment(third, { email: email2, code: totpCode(s2.totp!.secret, clock.now) });
        // The enrolment stands; the failure is reported and audited.
        expect(d2.signOut).toMatchObject({ action: 'command', ok: false });
        expect(third.notices.join('\n')).toContain('existing sessions');
        expect(await readFactor(await knex(), scratch.ctx.tables, email2)).toBeDefined();
        expect((await audit(email2)).at(-1)).toEqual(['sign-out', 'failed', expect.stringContaining('ENOENT')]);
      } finally {
        await third.close();
      }
    } finally {
      await other.close();
    }
    expect(existsSync(marker)).toBe(true);
  });
});
