/**
 * The BUILT binary (run `npm run build` first) in a real pseudo-terminal, driven as a person would:
 * the password typed at the masked prompt, the QR code read off the screen and decoded, the code computed from the
 * decoded secret and typed; for SMS the code read from the outbox file or from a real webhook on 127.0.0.1. Then
 * the database is checked, on SQLite and MariaDB.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { readFactor } from '../../src/core/factors.js';
import { totpCode } from '../../src/totp/totp.js';
import { Terminal } from '../helpers/terminal.js';
import { describeEachDb, useTestDb } from '../helpers/db.js';
import { addMailbox } from '../helpers/context.js';
import { SmsGateway, lastOutboxCode, writeConfig } from '../helpers/enrolment.js';
import { accountRows, checkAtSignIn, expectNothingStored, openFactorColumn } from '../helpers/account-rows.js';
import { decodeQrFromScreen } from '../helpers/qr-screen.js';

// Each test spawns several processes; on a loaded machine that takes longer than the default 30 s.
vi.setConfig({ testTimeout: 120_000 });

const PW = 'Grüße aus Kopenhagen';

describeEachDb('enable in a real terminal', (kind) => {
  const scratch = useTestDb(kind);
  let gateway: SmsGateway;
  let n = 0;
  /** The CLI at a terminal, in the scratch directory, colours as a terminal has them. */
  const terminal = (args: string[], env: Record<string, string>) =>
    new Terminal(args, { NO_COLOR: undefined, MAIL2FA_CONFIG: undefined, ...env }, { cwd: scratch.tdb.dir, rows: 60 });

  beforeAll(async () => {
    gateway = await new SmsGateway().start();
  });
  afterAll(async () => {
    await gateway?.stop();
  });

  async function mailbox(): Promise<string> {
    const email = `person${++n}@example.com`;
    await addMailbox(scratch.ctx, email, PW);
    return email;
  }
  const knex = async () => (await scratch.ctx.db()).knex;
  const rows = (table: string, account: string) => accountRows(scratch.ctx, table, account);
  const recoveryCodesOnScreen = (screen: string) => [
    ...new Set(screen.match(/\b[0-9a-hjkmnp-tv-z]{5}-[0-9a-hjkmnp-tv-z]{5}\b/g) ?? []),
  ];

  /** Checks that the account's factor is complete and that a recovery code shown on screen really works, once. */
  async function expectEnrolled(email: string, screen: string): Promise<void> {
    expect(await rows(scratch.ctx.tables.enrolment, email)).toEqual([]);
    expect(await rows(scratch.ctx.tables.recoveryCode, email)).toHaveLength(10);
    expect((await rows(scratch.ctx.tables.accountState, email))[0]!.sessions_revoked_at).not.toBeNull();
    const shown = recoveryCodesOnScreen(screen);
    expect(shown).toHaveLength(10);
    const use = (code: string) => checkAtSignIn(scratch.ctx, email, { form: 'recovery', value: code }, ['recovery']);
    expect(await use(shown[3]!)).toBe('recovery');
    expect(await use(shown[3]!)).toBeNull();
  }

  it('authenticator app: password at the masked prompt, QR code decoded off the screen, a wrong code, then the right one', async () => {
    const email = await mailbox();
    const term = terminal(['enable', email], scratch.env);
    await term.waitFor('Current password:');
    term.type(`${PW}\r`);
    const screen = await term.waitFor('Confirmation code:');
    expect(screen).not.toContain(PW);
    expect(screen).toContain('*'.repeat([...PW].length));

    const uri = decodeQrFromScreen(screen);
    expect(uri).not.toBeNull();
    const parsed = new URL(uri!);
    expect(`${parsed.protocol}//${parsed.host}${decodeURIComponent(parsed.pathname)}`).toBe(
      `otpauth://totp/Webmail:${email}`,
    );
    expect(parsed.searchParams.get('issuer')).toBe('Webmail');
    const secret = parsed.searchParams.get('secret')!;
    expect(secret).toMatch(/^[A-Z2-7]{32}$/);
    // The key for manual entry is the same secret, in groups of four.
    expect(screen).toContain(secret.match(/.{4}/g)!.join(' '));

    const valid = new Set([-30_000, 0, 30_000].map((d) => totpCode(secret, Date.now() + d)));
    const wrong = ['000000', '111111', '222222', '333333'].find((c) => !valid.has(c))!;
    const mark = term.output.length;
    term.type(`${wrong}\r`);
    await term.waitFor('wrong code (2 tries left)', mark);
    await term.waitFor('Confirmation code:', mark);
    term.type(`${totpCode(secret, Date.now())}\r`);
    const end = await term.waitFor('every time you sign in.', mark);
    expect(await term.exitCode()).toBe(0);

    expect(end).toContain(`Two-factor authentication is now on for ${email} (authenticator app).`);
    expect(end).toContain('You have been signed out and will be asked to sign in once more.');
    const factor = (await readFactor(await knex(), scratch.ctx.tables, email))!;
    expect(factor.method).toBe('totp');
    expect(openFactorColumn(scratch.ctx, email, 'secret_ct', factor.secret_ct!)).toBe(secret);
    expect(factor.last_totp_step).not.toBeNull();
    expect((await rows(scratch.ctx.tables.accountState, email))[0]!.failed_attempts).toBe(0);
    await expectEnrolled(email, end.slice(mark));
  });

  it('SMS with the outbox: phone typed at the prompt (a bad one is explained and retyped), code read from the outbox file', async () => {
    const email = await mailbox();
    const term = terminal(['enable', email, '--method', 'sms'], scratch.env);
    await term.waitFor('Current password:');
    term.type(`${PW}\r`);
    await term.waitFor('Phone number');
    let mark = term.output.length;
    term.type('011-45-12345678\r');
    await term.waitFor('not a valid number for Denmark', mark);
    term.type('\x7f'.repeat('011-45-12345678'.length));
    mark = term.output.length;
    term.type('011-45-20123456\r');
    const screen = await term.waitFor('Confirmation code:', mark);
    const outbox = join(scratch.tdb.dir, 'home', 'sms-outbox.ndjson');
    expect(screen).toContain('A confirmation code was sent by text message to +45 ****3456.');
    expect(screen).toContain(`the message was appended to ${outbox}`);
    mark = term.output.length;
    term.type(`${lastOutboxCode(outbox)}\r`);
    const end = await term.waitFor('every time you sign in.', mark);
    expect(await term.exitCode()).toBe(0);
    expect(end).toContain(`Two-factor authentication is now on for ${email} (SMS to +45 ****3456).`);
    expect(end).toContain('type the one-time code received');
    const factor = (await readFactor(await knex(), scratch.ctx.tables, email))!;
    expect(factor).toMatchObject({ method: 'sms', phone_masked: '+45 ****3456' });
    expect(openFactorColumn(scratch.ctx, email, 'phone_ct', factor.phone_ct!)).toBe('+4520123456');
    await expectEnrolled(email, end.slice(mark));
  });

  it('SMS through a real webhook on 127.0.0.1: the code taken from the message the gateway received', async () => {
    const email = await mailbox();
    const config = writeConfig(scratch.tdb.dir, 'pty-webhook', {
      issuer: 'Example Mail',
      sms: { transport: 'webhook', webhook: { url: gateway.url, authHeader: 'Authorization: Bearer t0k' } },
    });
    const term = terminal(['enable', email, '--method', 'sms', '--phone', '+45 20 12 34 56'], {
      ...scratch.env,
      MAIL2FA_CONFIG: config,
    });
    await term.waitFor('Current password:');
    const before = gateway.received.length;
    term.type(`${PW}\r`);
    await term.waitFor('Confirmation code:');
    expect(gateway.received).toHaveLength(before + 1);
    const req = gateway.received.at(-1)!;
    expect(req.headers.authorization).toBe('Bearer t0k');
    expect(req.body.to).toBe('+4520123456');
    expect(req.body.text).toContain('Your Example Mail verification code is');
    const mark = term.output.length;
    term.type(`${gateway.lastCode()}\r`);
    const end = await term.waitFor('every time you sign in.', mark);
    expect(await term.exitCode()).toBe(0);
    expect(term.output).not.toContain('20123456');
    expect((await readFactor(await knex(), scratch.ctx.tables, email))!.method).toBe('sms');
    await expectEnrolled(email, end.slice(mark));
  });

  it('Ctrl-C at the code prompt: exit 130, the pending enrolment removed, nothing stored', async () => {
    const email = await mailbox();
    const term = terminal(['enable', email], scratch.env);
    await term.waitFor('Current password:');
    term.type(`${PW}\r`);
    await term.waitFor('Confirmation code:');
    expect(await rows(scratch.ctx.tables.enrolment, email)).toHaveLength(1);
    term.type('\x03');
    expect(await term.exitCode()).toBe(130);
    await expectNothingStored(scratch.ctx, email);
    expect((await rows(scratch.ctx.tables.audit, email)).map((a) => a.action)).toEqual([
      'enable-start',
      'enable-cancel',
    ]);
  });

  it('a wrong password at the prompt: 77, counted, nothing stored', async () => {
    const email = await mailbox();
    const term = terminal(['enable', email], scratch.env);
    await term.waitFor('Current password:');
    term.type('not my password\r');
    await term.waitFor('wrong password');
    expect(await term.exitCode()).toBe(77);
    expect((await rows(scratch.ctx.tables.accountState, email))[0]!.failed_attempts).toBe(1);
    expect(await rows(scratch.ctx.tables.enrolment, email)).toEqual([]);
  });
});
