/**
 * SMS sending for sign-in (`send-code`) and for enrolment, in-process against real SQLite and MariaDB and a real
 * HTTP gateway on 127.0.0.1: the rate limit, gateway failures storing nothing, refusals, integrity.
 */
import { afterAll, beforeAll, beforeEach, expect, it } from 'vitest';
import { confirmEnrolment, startEnrolment } from '../../src/core/enrolment.js';
import { sendSignInCode } from '../../src/core/send-code.js';
import { totpCode } from '../../src/totp/totp.js';
import { describeEachDb, useTestDb } from '../helpers/db.js';
import { addMailbox, testClock, testContext } from '../helpers/context.js';
import { closedPort, failure, SmsGateway, writeConfig } from '../helpers/enrolment.js';
import { accountRows, checkAtSignIn } from '../helpers/account-rows.js';
import { auditRows } from '../helpers/seed-2fa.js';

const PW = 'correct horse';
const AUTH = 'Bearer gw-token-5e6f';

describeEachDb('send-code and SMS gateways', (kind) => {
  let gateway: SmsGateway;
  let n = 0;
  const clock = testClock();
  // The gateway first: the configuration names its URL.
  beforeAll(async () => {
    gateway = await new SmsGateway().start();
  });
  afterAll(async () => {
    await gateway?.stop();
  });
  const scratch = useTestDb(kind, {
    context: (tdb) => ({
      clock,
      configPath: writeConfig(tdb.dir, 'webhook', {
        sms: {
          transport: 'webhook',
          timeoutMs: 2000,
          webhook: { url: gateway.url, authHeader: `Authorization: ${AUTH}` },
        },
      }),
    }),
  });
  beforeEach(() => {
    gateway.mode = 'ok';
  });

  const knex = async () => (await scratch.ctx.db()).knex;
  const rows = (table: string, account: string) => accountRows(scratch.ctx, table, account);
  const audit = (account: string) => auditRows(scratch.ctx, account);

  /** A mailbox with SMS 2FA on (+4520123456), enrolled through the real flow. */
  async function smsAccount(): Promise<string> {
    const email = `sms${++n}@example.com`;
    await addMailbox(scratch.ctx, email, PW);
    await startEnrolment(scratch.ctx, { email, password: PW, method: 'sms', phone: '011-45-20123456' });
    await confirmEnrolment(scratch.ctx, { email, code: gateway.lastCode() });
    clock.advance(15 * 60_000); // a fresh send window
    return email;
  }

  it('texts a sign-in code through the gateway; it verifies once at sign-in', async () => {
    const email = await smsAccount();
    const before = gateway.received.length;
    const sent = await sendSignInCode(scratch.ctx, { email });
    expect(sent).toMatchObject({ email, phone: '+45 ****3456', delivery: { transport: 'webhook' } });
    expect(gateway.received).toHaveLength(before + 1);
    const req = gateway.received.at(-1)!;
    expect(req.headers.authorization).toBe(AUTH);
    expect(req.headers['content-type']).toBe('application/json');
    expect(req.body.to).toBe('+4520123456');
    expect(req.body.text).toMatch(/^Your Webmail verification code is [0-9]{6}\. It expires in 10 minutes\.$/);
    const [challenge] = await rows(scratch.ctx.tables.challenge, email);
    expect(challenge).toMatchObject({ purpose: 'sms', used_at: null });
    expect(String(challenge!.code_hash)).not.toContain(gateway.lastCode());
    const check = (code: string) => checkAtSignIn(scratch.ctx, email, { form: 'digits', value: code }, ['sms']);
    expect(await check(gateway.lastCode())).toBe('sms');
    expect(await check(gateway.lastCode())).toBeNull();
    expect(await audit(email).then((a) => a.at(-1))).toMatchObject({
      action: 'send-code',
      outcome: 'ok',
      detail: '{"phone":"+45 ****3456","transport":"webhook"}',
    });
  });

  it('at most 3 sends per 15 minutes (75); resending does not reset the lockout counter', async () => {
    const email = await smsAccount();
    await (await knex())(scratch.ctx.tables.accountState).where({ account: email }).update({ failed_attempts: 2 });
    const sends = (await rows(scratch.ctx.tables.smsSend, email)).length; // the enrolment's, outside the window now
    for (let i = 0; i < 3; i++) await sendSignInCode(scratch.ctx, { email });
    const err = await failure(sendSignInCode(scratch.ctx, { email }));
    expect([err.exitCode, err.code]).toEqual([75, 'rate_limited']);
    expect(await rows(scratch.ctx.tables.smsSend, email)).toHaveLength(sends + 3);
    expect((await rows(scratch.ctx.tables.accountState, email))[0]!.failed_attempts).toBe(2);
    clock.advance(15 * 60_000);
    await sendSignInCode(scratch.ctx, { email });
  });

  for (const [what, arrange, reason] of [
    ['answers 500', () => (gateway.mode = 'error'), 'HTTP 500'],
    ['never answers (timeout)', () => (gateway.mode = 'hang'), 'no answer within 2000 ms'],
  ] as const) {
    it(`gateway ${what}: 69, nothing stored, the failure audited`, async () => {
      const email = await smsAccount();
      const challenges = await rows(scratch.ctx.tables.challenge, email);
      const sends = await rows(scratch.ctx.tables.smsSend, email);
      arrange();
      const err = await failure(sendSignInCode(scratch.ctx, { email }));
      expect([err.exitCode, err.code]).toEqual([69, 'sms_unavailable']);
      expect(err.message).toContain(reason);
      expect(err.message).not.toContain('20123456');
      expect(await rows(scratch.ctx.tables.challenge, email)).toEqual(challenges);
      expect(await rows(scratch.ctx.tables.smsSend, email)).toEqual(sends);
      expect((await audit(email)).at(-1)).toMatchObject({
        action: 'send-code',
        outcome: 'failed',
        reason: 'sms_unavailable',
      });

      // The same for an enrolment: no pending enrolment, no code, no send.
      const fresh = `fresh${++n}@example.com`;
      await addMailbox(scratch.ctx, fresh, PW);
      const enrolErr = await failure(
        startEnrolment(scratch.ctx, { email: fresh, password: PW, method: 'sms', phone: '+4520123456' }),
      );
      expect(enrolErr.exitCode).toBe(69);
      for (const table of [
        scratch.ctx.tables.enrolment,
        scratch.ctx.tables.challenge,
        scratch.ctx.tables.smsSend,
        scratch.ctx.tables.factor,
      ])
        expect(await rows(table, fresh)).toEqual([]);
      expect((await audit(fresh)).map((a) => [a.action, a.outcome, a.reason])).toEqual([
        ['enable-send-code', 'failed', 'sms_unavailable'],
      ]);
    });
  }

  it('connection refused: 69, nothing stored', async () => {
    const port = await closedPort();
    const config = writeConfig(scratch.tdb.dir, 'refused', {
      sms: { transport: 'webhook', timeoutMs: 2000, webhook: { url: `http://127.0.0.1:${port}/sms` } },
    });
    const other = await testContext(scratch.tdb, { clock, configPath: config });
    try {
      const email = await smsAccount();
      const sends = await rows(scratch.ctx.tables.smsSend, email);
      const err = await failure(sendSignInCode(other, { email }));
      expect([err.exitCode, err.code]).toEqual([69, 'sms_unavailable']);
      expect(err.message).toContain('connection refused');
      expect(await rows(scratch.ctx.tables.challenge, email)).toEqual([]);
      expect(await rows(scratch.ctx.tables.smsSend, email)).toEqual(sends);
    } finally {
      await other.close();
    }
  });

  it('refuses app accounts, accounts without 2FA, inactive, locked and unknown ones', async () => {
    const app = `app${++n}@example.com`;
    await addMailbox(scratch.ctx, app, PW);
    const started = await startEnrolment(scratch.ctx, { email: app, password: PW, method: 'totp' });
    await confirmEnrolment(scratch.ctx, { email: app, code: totpCode(started.totp!.secret, clock.now) });
    const off = `off${++n}@example.com`;
    await addMailbox(scratch.ctx, off, PW);
    const inactive = `inactive${++n}@example.com`;
    await addMailbox(scratch.ctx, inactive, PW, { active: false });
    const locked = await smsAccount();
    await (
      await knex()
    )(scratch.ctx.tables.accountState)
      .where({ account: locked })
      .update({ failed_attempts: 5, locked_until: clock.now + 60_000 });

    const before = gateway.received.length;
    const cases: Array<[string, number, string]> = [
      [app, 65, 'not_sms'],
      [off, 65, 'not_enabled'],
      [inactive, 65, 'mailbox_inactive'],
      [locked, 75, 'locked'],
    ];
    for (const [email, exitCode, code] of cases) {
      const err = await failure(sendSignInCode(scratch.ctx, { email }));
      expect([email, err.exitCode, err.code]).toEqual([email, exitCode, code]);
      expect((await audit(email)).at(-1)).toMatchObject({ action: 'send-code', outcome: 'refused' });
    }
    expect((await failure(sendSignInCode(scratch.ctx, { email: 'nobody@example.com' }))).exitCode).toBe(67);
    expect((await failure(sendSignInCode(scratch.ctx, { email: 'no-at-sign' }))).exitCode).toBe(65);
    expect(gateway.received).toHaveLength(before);
  });

  it('a sealed phone number copied to another account fails as an integrity error (78); nothing is sent', async () => {
    const a = await smsAccount();
    const b = await smsAccount();
    const [rowA] = await rows(scratch.ctx.tables.factor, a);
    await (await knex())(scratch.ctx.tables.factor).where({ account: b }).update({ phone_ct: rowA!.phone_ct });
    const before = gateway.received.length;
    const err = await failure(sendSignInCode(scratch.ctx, { email: b }));
    expect([err.exitCode, err.code]).toEqual([78, 'integrity']);
    expect(gateway.received).toHaveLength(before);
    expect(await rows(scratch.ctx.tables.challenge, b)).toEqual([]);
    // The original row still works.
    await sendSignInCode(scratch.ctx, { email: a });
  });
});
