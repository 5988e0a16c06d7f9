/**
 * `mail2fa enable` through the BUILT binary (run `npm run build` first), on SQLite and MariaDB: the scriptable
 * two-step form for both methods, every exit code it can give, replay from parallel processes, and a real SMS
 * webhook on 127.0.0.1.
 */
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, beforeEach, describe, expect, it, vi } from 'vitest';
import { readFactor } from '../../src/core/factors.js';
import { totpCode } from '../../src/totp/totp.js';
import { runCli, runModuleProgram } from '../helpers/cli.js';
import { describeEachDb, useTestDb } from '../helpers/db.js';
import { addMailbox } from '../helpers/context.js';
import { SmsGateway, closedPort, writeConfig, jsonDocument as json } from '../helpers/enrolment.js';
import { accountRows, expectNothingStored, openFactorColumn } from '../helpers/account-rows.js';

// Each test spawns several processes; on a loaded machine that takes longer than the default 30 s.
vi.setConfig({ testTimeout: 120_000 });

const PW = 'pässwörd ünïcode';
const DIST = fileURLToPath(new URL('../../dist/', import.meta.url));

/** A second process checking a code at sign-in, straight through the built core (as `verify` or the library would). */
function signInFromAnotherProcess(env: Record<string, string>, email: string, code: string): Promise<string | null> {
  const script = `
    const { createContext } = await import(${JSON.stringify(join(DIST, 'context.js'))});
    const { accountTransaction } = await import(${JSON.stringify(join(DIST, 'core/guard.js'))});
    const { readFactor } = await import(${JSON.stringify(join(DIST, 'core/factors.js'))});
    const { checkSecondFactor } = await import(${JSON.stringify(join(DIST, 'core/factor-check.js'))});
    const [email, code] = process.argv.slice(1);
    const ctx = await createContext({ env: process.env });
    try {
      const kind = await accountTransaction(ctx, email, async (tx) =>
        checkSecondFactor(tx, await readFactor(tx.trx, ctx.tables, email), { form: 'digits', value: code }, new Set(['totp'])));
      process.stdout.write(JSON.stringify({ kind }));
    } finally { await ctx.close(); }`;
  return runModuleProgram(script, [email, code], env).then((r) =>
    r.code === 0
      ? (JSON.parse(r.stdout) as { kind: string | null }).kind
      : Promise.reject(new Error(`sign-in process failed (${r.code}): ${r.stderr}`)),
  );
}

describe('enable --help', () => {
  it('documents both methods, the two-step form with examples, and the exit codes', async () => {
    const r = await runCli(['enable', '--help']);
    expect(r.code).toBe(0);
    for (const s of [
      '--method',
      '--phone',
      '--password-stdin',
      '--start',
      '--confirm',
      '--code',
      '--cancel',
      '--force',
      'Examples:',
      '--start --password-stdin --json',
      '011-45-20123456',
      'Exit codes:',
      '77',
    ])
      expect(r.stdout).toContain(s);
  });
});

describeEachDb('enable (built binary)', (kind) => {
  const scratch = useTestDb(kind);
  let n = 0;

  async function mailbox(o: { active?: boolean } = {}): Promise<string> {
    const email = `cli${++n}@example.com`;
    await addMailbox(scratch.ctx, email, PW, o);
    return email;
  }
  const knex = async () => (await scratch.ctx.db()).knex;
  const rows = (table: string, account: string) => accountRows(scratch.ctx, table, account);
  const nothingStored = (account: string) => expectNothingStored(scratch.ctx, account);
  const cli = (args: string[], input?: string, extraEnv: Record<string, string> = {}) =>
    runCli(args, { env: { ...scratch.env, ...extraEnv }, input });
  const startApp = async (email: string) => {
    const r = await cli(['enable', email, '--start', '--password-stdin', '--json'], PW);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    return json(r);
  };

  it('two steps for the app: start prints the one-time view, confirm stores the factor and prints the recovery codes', async () => {
    const email = await mailbox();
    const started = await startApp(email);
    expect(started).toMatchObject({
      ok: true,
      email,
      method: 'totp',
      replacing: null,
      issuer: 'Webmail',
      label: email,
    });
    expect(started.enrolmentId).toMatch(/^[0-9a-f]{24}$/);
    expect(started.secret).toMatch(/^[A-Z2-7]{32}$/);
    expect(started.otpauthUri).toBe(
      `otpauth://totp/Webmail:${encodeURIComponent(email)}?secret=${started.secret}&issuer=Webmail&algorithm=SHA1&digits=6&period=30`,
    );
    expect(Date.parse(started.expiresAt) - Date.now()).toBeGreaterThan(9 * 60_000);
    expect(Date.parse(started.expiresAt) - Date.now()).toBeLessThanOrEqual(10 * 60_000);
    expect(await rows(scratch.ctx.tables.factor, email)).toEqual([]);

    const done = await cli([
      'enable',
      email,
      '--confirm',
      '--code',
      totpCode(started.secret, Date.now()),
      '--enrolment',
      started.enrolmentId,
      '--json',
    ]);
    expect(done.code, done.stderr).toBe(0);
    const doc = json(done);
    expect(doc).toMatchObject({
      ok: true,
      email,
      method: 'totp',
      phone: null,
      replaced: null,
      signOut: { action: 'none', ok: true },
    });
    expect(doc.recoveryCodes).toHaveLength(10);
    expect(Date.parse(doc.sessionsRevokedAt)).toBeGreaterThan(Date.now() - 60_000);
    const factor = (await readFactor(await knex(), scratch.ctx.tables, email))!;
    expect(openFactorColumn(scratch.ctx, email, 'secret_ct', factor.secret_ct!)).toBe(started.secret);
    expect(await rows(scratch.ctx.tables.enrolment, email)).toEqual([]);
    expect((await rows(scratch.ctx.tables.accountState, email))[0]!.sessions_revoked_at).not.toBeNull();
  });

  it('human output of the two steps: QR code, grouped key, how to confirm; then codes and the closing message', async () => {
    const email = await mailbox();
    const r = await cli(['enable', email, '--start', '--password-stdin'], PW);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).not.toContain('\x1b'); // a pipe gets the QR block without colour escapes
    const key = /Key: +((?:[A-Z2-7]{4} ){7}[A-Z2-7]{4})\n/.exec(r.stdout)![1]!.replace(/ /g, '');
    expect(r.stdout).toContain(`mail2fa enable ${email} --confirm --code CODE`);
    // The code may also come on stdin.
    const done = await cli(['enable', email, '--confirm'], `${totpCode(key, Date.now())}\n`);
    expect(done.code, done.stderr).toBe(0);
    expect(done.stdout).toContain(`Two-factor authentication is now on for ${email} (authenticator app).`);
    expect(done.stdout).toContain('You have been signed out and will be asked to sign in once more.');
    expect(done.stdout).toContain('enter the code every time you sign in.');
    expect(done.stdout.match(/^ +[0-9]+\. [0-9a-z]{5}-[0-9a-z]{5}/gm)).toHaveLength(5); // two codes per line
    expect(done.stdout.match(/[0-9a-z]{5}-[0-9a-z]{5}/g)).toHaveLength(10);
  });

  it('a confirmation code is accepted once: parallel confirms, then sign-in from another process', async () => {
    const email = await mailbox();
    const started = await startApp(email);
    const code = totpCode(started.secret, Date.now());
    const results = await Promise.all([0, 1].map(() => cli(['enable', email, '--confirm', '--code', code, '--json'])));
    expect(results.map((r) => r.code).sort()).toEqual([0, 65]);
    expect(json(results.find((r) => r.code === 65)!).error.code).toBe('no_pending_enrolment');
    expect(await rows(scratch.ctx.tables.recoveryCode, email)).toHaveLength(10);
    // The confirmation code's step is used up for sign-in too; a later step is accepted (the check can pass).
    expect(await signInFromAnotherProcess(scratch.env, email, code)).toBeNull();
    expect(await signInFromAnotherProcess(scratch.env, email, totpCode(started.secret, Date.now() + 30_000))).toBe(
      'totp',
    );
  });

  it('wrong password: 77, counted, audited, nothing stored', async () => {
    const email = await mailbox();
    const r = await cli(['enable', email, '--start', '--password-stdin', '--json'], 'pässwörd ünïcode ');
    expect(r.code).toBe(77);
    expect(json(r)).toEqual({
      ok: false,
      error: { code: 'wrong_password', message: 'wrong password', hint: expect.any(String) },
    });
    expect((await rows(scratch.ctx.tables.accountState, email))[0]!.failed_attempts).toBe(1);
    expect((await rows(scratch.ctx.tables.audit, email)).map((a) => [a.action, a.outcome, a.reason])).toEqual([
      ['enable', 'refused', 'wrong password'],
    ]);
    await nothingStored(email);
  });

  it('three wrong confirmation codes (77 each) cancel the enrolment; nothing stored', async () => {
    const email = await mailbox();
    const started = await startApp(email);
    const valid = new Set([-30_000, 0, 30_000, 60_000].map((d) => totpCode(started.secret, Date.now() + d)));
    const wrong = ['000000', '111111', '222222', '333333', '444444'].find((c) => !valid.has(c))!;
    const codes = [];
    for (let i = 0; i < 3; i++) {
      const r = await cli(['enable', email, '--confirm', '--code', wrong, '--json']);
      expect(r.code).toBe(77);
      codes.push(json(r).error.code);
    }
    expect(codes).toEqual(['wrong_code', 'wrong_code', 'enrolment_cancelled']);
    await nothingStored(email);
    expect((await rows(scratch.ctx.tables.accountState, email))[0]!.failed_attempts).toBe(3);
  });

  it('usage errors (64) change nothing', async () => {
    const email = await mailbox();
    const cases: Array<[string[], string]> = [
      [['enable', email, '--json'], 'interactive terminal'],
      [['enable', email], 'interactive terminal'],
      [['enable', email, '--password-stdin'], '--password-stdin goes with --start'],
      [['enable', email, '--start', '--confirm'], 'exclude each other'],
      [['enable', email, '--code', '123456'], '--code goes with --confirm'],
      [['enable', email, '--method', 'app', '--phone', '+4520123456', '--start'], '--phone is for --method sms'],
      [['enable', email, '--method', 'sms', '--start', '--password-stdin'], '--phone'],
      [['enable', email, '--confirm', '--method', 'sms', '--code', '123456'], 'only when starting'],
      [['enable', email, '--method', 'email', '--start'], 'email'],
      [['enable', email, '--start', '--json'], '--password-stdin'],
    ];
    const results = await Promise.all(cases.map(([args]) => cli(args, PW)));
    for (const [i, [args, message]] of cases.entries()) {
      expect([args.join(' '), results[i]!.code]).toEqual([args.join(' '), 64]);
      expect(results[i]!.stderr + results[i]!.stdout).toContain(message);
    }
    expect(await rows(scratch.ctx.tables.accountState, email)).toEqual([]);
    await nothingStored(email);
  });

  it('bad input (65), unknown account (67): clear errors, nothing stored', async () => {
    const email = await mailbox();
    const cases: Array<[string[], number, string]> = [
      [['enable', 'nobody@example.com', '--start', '--password-stdin'], 67, 'unknown account'],
      [['enable', `${email} `, '--start', '--password-stdin'], 65, 'trailing whitespace'],
      [['enable', 'no-at-sign', '--start', '--password-stdin'], 65, 'no "@"'],
      [
        ['enable', email, '--start', '--password-stdin', '--method', 'sms', '--phone', '011-45-12345678'],
        65,
        'not a valid number for Denmark',
      ],
      [['enable', email, '--start', '--password-stdin', '--phone', '45 20123456'], 65, 'invalid phone number'],
      [['enable', email, '--confirm', '--code', '12345'], 65, 'malformed confirmation code'],
      [['enable', email, '--confirm', '--code', '１２３４５６'], 65, 'malformed confirmation code'],
      [['enable', email, '--confirm', '--code', '123456'], 65, 'no enrolment is pending'],
      [
        ['enable', email, '--confirm', '--code', '123456', '--enrolment', 'x\u0085\u202eFORGED\u009b31m'],
        65,
        'malformed enrolment id',
      ],
    ];
    const results = await Promise.all(cases.map(([args]) => cli(args, PW)));
    for (const [i, [args, code, message]] of cases.entries()) {
      expect([args.join(' '), results[i]!.code]).toEqual([args.join(' '), code]);
      expect(results[i]!.stderr).toContain(message);
    }
    expect(existsSync(join(scratch.tdb.dir, 'home', 'sms-outbox.ndjson'))).toBe(false);
    await nothingStored(email);
    expect((await rows(scratch.ctx.tables.accountState, email)).map((s) => s.failed_attempts)).toEqual([0]);
  });

  it('already enabled: 65 with a hint; --force replaces it only with the password AND a current code', async () => {
    const email = await mailbox();
    const first = await startApp(email);
    expect((await cli(['enable', email, '--confirm', '--code', totpCode(first.secret, Date.now())])).code).toBe(0);
    const again = await cli(['enable', email, '--start', '--password-stdin', '--json'], PW);
    expect(again.code).toBe(65);
    expect(json(again).error).toMatchObject({ code: 'already_enabled', hint: expect.stringContaining('--force') });
    const noCode = await cli(['enable', email, '--start', '--password-stdin', '--force', '--json'], PW);
    expect(noCode.code).toBe(64);
    expect(json(noCode).error.hint).toContain('--current-code');
    const forced = await cli(
      [
        'enable',
        email,
        '--start',
        '--password-stdin',
        '--force',
        '--current-code',
        totpCode(first.secret, Date.now() + 30_000),
        '--json',
      ],
      PW,
    );
    expect(forced.code).toBe(0);
    const second = json(forced);
    expect(second.replacing).toBe('totp');
    const done = await cli([
      'enable',
      email,
      '--confirm',
      '--code',
      totpCode(second.secret, Date.now() + 30_000),
      '--json',
    ]);
    expect(json(done)).toMatchObject({ ok: true, replaced: 'totp' });
  });

  it('inactive mailbox: 65, nothing stored', async () => {
    const email = await mailbox({ active: false });
    const r = await cli(['enable', email, '--start', '--password-stdin'], PW);
    expect(r.code).toBe(65);
    expect(r.stderr).toContain('inactive');
    await nothingStored(email);
  });

  it('--cancel drops the pending enrolment', async () => {
    const email = await mailbox();
    await startApp(email);
    const r = await cli(['enable', email, '--cancel', '--json']);
    expect(json(r)).toEqual({ ok: true, email, cancelled: true, method: 'totp' });
    await nothingStored(email);
    expect((await cli(['enable', email, '--cancel'])).stdout).toContain('nothing changed');
  });

  describe('SMS through a webhook on 127.0.0.1', () => {
    let gateway: SmsGateway;
    let webhookEnv: Record<string, string>;
    beforeAll(async () => {
      gateway = await new SmsGateway().start();
      webhookEnv = {
        MAIL2FA_CONFIG: writeConfig(scratch.tdb.dir, 'webhook', {
          issuer: 'Example Mail',
          sms: { transport: 'webhook', timeoutMs: 2000, webhook: { url: gateway.url } },
        }),
        MAIL2FA_SMS_WEBHOOK_AUTH_HEADER: 'X-Api-Key: k-123',
      };
    });
    afterAll(async () => gateway?.stop());
    beforeEach(() => {
      gateway.mode = 'ok';
    });

    it('start sends the code; confirm with it stores the SMS factor', async () => {
      const email = await mailbox();
      const r = await cli(
        ['enable', email, '--method', 'sms', '--phone', '011-45-20123456', '--start', '--password-stdin', '--json'],
        PW,
        webhookEnv,
      );
      expect(r.code, r.stderr).toBe(0);
      expect(json(r)).toMatchObject({ ok: true, method: 'sms', phone: '+45 ****3456', sms: { transport: 'webhook' } });
      expect(r.stdout).not.toContain('20123456');
      const req = gateway.received.at(-1)!;
      expect(req.headers['x-api-key']).toBe('k-123');
      expect(req.body.to).toBe('+4520123456');
      expect(req.body.text).toMatch(/^Your Example Mail verification code is [0-9]{6}\. It expires in 10 minutes\.$/);
      const done = await cli(
        ['enable', email, '--confirm', '--code', gateway.lastCode(), '--json'],
        undefined,
        webhookEnv,
      );
      expect(json(done)).toMatchObject({ ok: true, method: 'sms', phone: '+45 ****3456' });
      expect(done.stdout).not.toContain('20123456');
      expect((await readFactor(await knex(), scratch.ctx.tables, email))!.method).toBe('sms');
    });

    for (const failure of ['error', 'hang', 'refused'] as const) {
      it(`gateway ${failure === 'error' ? 'answers 500' : failure === 'hang' ? 'times out' : 'refuses the connection'}: 69, nothing stored, failure audited`, async () => {
        const email = await mailbox();
        let runEnv = webhookEnv;
        if (failure === 'refused')
          runEnv = {
            ...webhookEnv,
            MAIL2FA_CONFIG: writeConfig(scratch.tdb.dir, 'refused', {
              sms: { transport: 'webhook', webhook: { url: `http://127.0.0.1:${await closedPort()}/` } },
            }),
          };
        else gateway.mode = failure;
        const r = await cli(
          ['enable', email, '--method', 'sms', '--phone', '+4520123456', '--start', '--password-stdin', '--json'],
          PW,
          runEnv,
        );
        expect(r.code).toBe(69);
        expect(json(r).error.code).toBe('sms_unavailable');
        expect(r.stdout).not.toContain('20123456');
        await nothingStored(email);
        expect(await rows(scratch.ctx.tables.smsSend, email)).toEqual([]);
        expect((await rows(scratch.ctx.tables.audit, email)).map((a) => [a.action, a.outcome, a.reason])).toEqual([
          ['enable-send-code', 'failed', 'sms_unavailable'],
        ]);
      });
    }
  });
});
