/**
 * The BUILT binary (run `npm run build` first) in a real pseudo-terminal, driven as a person would:
 * the password typed at the masked prompt, the QR code read off the screen and decoded, the code computed from the
 * decoded secret and typed; for SMS the code read from the outbox file or from a real webhook on 127.0.0.1. Then
 * the database is checked, on SQLite and MariaDB.
 */
import { join } from 'node:path';
import pty from 'node-pty';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import type { Context } from '../../src/context.js';
import { readFactor } from '../../src/core/factors.js';
import { accountTransaction } from '../../src/core/guard.js';
import { checkSecondFactor } from '../../src/core/factor-check.js';
import { Vault } from '../../src/core/vault.js';
import { totpCode } from '../../src/totp/totp.js';
import { BIN } from '../helpers/cli.js';
import { createTestDb, describeEachDb, type TestDb } from '../helpers/db.js';
import { addMailbox, testContext, testEnv } from '../helpers/context.js';
import { SmsGateway, lastOutboxCode, writeConfig } from '../helpers/enrolment.js';
import { decodeQrFromScreen } from '../helpers/qr-screen.js';

// Each test spawns several processes; on a loaded machine that takes longer than the default 30 s.
vi.setConfig({ testTimeout: 120_000 });

const PW = 'Grüße aus Kopenhagen';
const TIMEOUT = 25_000;

/** The CLI in a pseudo-terminal: everything it draws is kept; `waitFor` returns once the text is on screen. */
class Terminal {
  output = '';
  readonly exited: Promise<number>;
  private readonly proc: pty.IPty;

  constructor(args: string[], env: Record<string, string>, cwd: string) {
    const base: Record<string, string> = {};
    for (const [k, v] of Object.entries(process.env))
      if (v !== undefined && k !== 'NO_COLOR' && k !== 'MAIL2FA_CONFIG') base[k] = v;
    this.proc = pty.spawn(process.execPath, [BIN, ...args], {
      name: 'xterm-256color',
      cols: 120,
      rows: 60,
      cwd,
      env: { ...base, ...env, TERM: 'xterm-256color' },
    });
    this.proc.onData((d) => (this.output += d));
    this.exited = new Promise((resolve) => this.proc.onExit(({ exitCode }) => resolve(exitCode)));
  }

  /** Waits until `text` appears after position `from` of the output; returns the output up to then. */
  async waitFor(text: string | RegExp, from = 0): Promise<string> {
    const deadline = Date.now() + TIMEOUT;
    const seen = () =>
      typeof text === 'string' ? this.output.indexOf(text, from) >= 0 : text.test(this.output.slice(from));
    while (!seen()) {
      if (Date.now() > deadline) {
        this.proc.kill();
        throw new Error(
          `timed out waiting for ${String(text)}; the screen ends with: ${JSON.stringify(this.output.slice(-600))}`,
        );
      }
      await new Promise((r) => setTimeout(r, 25));
    }
    return this.output;
  }

  type(text: string): void {
    this.proc.write(text);
  }

  async exitCode(): Promise<number> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        this.proc.kill();
        reject(new Error(`did not exit; the screen ends with: ${JSON.stringify(this.output.slice(-600))}`));
      }, TIMEOUT);
    });
    try {
      return await Promise.race([this.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }
}

describeEachDb('enable in a real terminal', (kind) => {
  let tdb: TestDb;
  let ctx: Context;
  let env: Record<string, string>;
  let gateway: SmsGateway;
  let n = 0;

  beforeAll(async () => {
    tdb = await createTestDb(kind);
    ctx = await testContext(tdb);
    env = testEnv(tdb);
    gateway = await new SmsGateway().start();
  });
  afterAll(async () => {
    await ctx?.close();
    await gateway?.stop();
    await tdb?.drop();
  });

  async function mailbox(): Promise<string> {
    const email = `person${++n}@example.com`;
    await addMailbox(ctx, email, PW);
    return email;
  }
  const knex = async () => (await ctx.db()).knex;
  const vault = () => new Vault(ctx.masterKey(), ctx.tables, Date.now);
  const rows = async (table: string, account: string) =>
    (await knex())(table).where({ account }).select('*') as Promise<Record<string, unknown>[]>;
  const recoveryCodesOnScreen = (screen: string) => [
    ...new Set(screen.match(/\b[0-9a-hjkmnp-tv-z]{5}-[0-9a-hjkmnp-tv-z]{5}\b/g) ?? []),
  ];

  /** Checks that the account's factor is complete and that a recovery code shown on screen really works, once. */
  async function expectEnrolled(email: string, screen: string): Promise<void> {
    expect(await rows(ctx.tables.enrolment, email)).toEqual([]);
    expect(await rows(ctx.tables.recoveryCode, email)).toHaveLength(10);
    expect((await rows(ctx.tables.accountState, email))[0]!.sessions_revoked_at).not.toBeNull();
    const shown = recoveryCodesOnScreen(screen);
    expect(shown).toHaveLength(10);
    const use = (code: string) =>
      accountTransaction(ctx, email, async (tx) =>
        checkSecondFactor(
          tx,
          await readFactor(tx.trx, ctx.tables, email),
          { form: 'recovery', value: code },
          new Set(['recovery']),
        ),
      );
    expect(await use(shown[3]!)).toBe('recovery');
    expect(await use(shown[3]!)).toBeNull();
  }

  it('authenticator app: password at the masked prompt, QR code decoded off the screen, a wrong code, then the right one', async () => {
    const email = await mailbox();
    const term = new Terminal(['enable', email], env, tdb.dir);
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
    const factor = (await readFactor(await knex(), ctx.tables, email))!;
    expect(factor.method).toBe('totp');
    expect(vault().open(ctx.tables.factor, 'secret_ct', email, factor.secret_ct!)).toBe(secret);
    expect(factor.last_totp_step).not.toBeNull();
    expect((await rows(ctx.tables.accountState, email))[0]!.failed_attempts).toBe(0);
    await expectEnrolled(email, end.slice(mark));
  });

  it('SMS with the outbox: phone typed at the prompt (a bad one is explained and retyped), code read from the outbox file', async () => {
    const email = await mailbox();
    const term = new Terminal(['enable', email, '--method', 'sms'], env, tdb.dir);
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
    const outbox = join(tdb.dir, 'home', 'sms-outbox.ndjson');
    expect(screen).toContain('A confirmation code was sent by text message to +45 ****3456.');
    expect(screen).toContain(`the message was appended to ${outbox}`);
    mark = term.output.length;
    term.type(`${lastOutboxCode(outbox)}\r`);
    const end = await term.waitFor('every time you sign in.', mark);
    expect(await term.exitCode()).toBe(0);
    expect(end).toContain(`Two-factor authentication is now on for ${email} (SMS to +45 ****3456).`);
    expect(end).toContain('type the one-time code received');
    const factor = (await readFactor(await knex(), ctx.tables, email))!;
    expect(factor).toMatchObject({ method: 'sms', phone_masked: '+45 ****3456' });
    expect(vault().open(ctx.tables.factor, 'phone_ct', email, factor.phone_ct!)).toBe('+4520123456');
    await expectEnrolled(email, end.slice(mark));
  });

  it('SMS through a real webhook on 127.0.0.1: the code taken from the message the gateway received', async () => {
    const email = await mailbox();
    const config = writeConfig(tdb.dir, 'pty-webhook', {
      issuer: 'Example Mail',
      sms: { transport: 'webhook', webhook: { url: gateway.url, authHeader: 'Authorization: Bearer t0k' } },
    });
    const term = new Terminal(
      ['enable', email, '--method', 'sms', '--phone', '+45 20 12 34 56'],
      { ...env, MAIL2FA_CONFIG: config },
      tdb.dir,
    );
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
    expect((await readFactor(await knex(), ctx.tables, email))!.method).toBe('sms');
    await expectEnrolled(email, end.slice(mark));
  });

  it('Ctrl-C at the code prompt: exit 130, the pending enrolment removed, nothing stored', async () => {
    const email = await mailbox();
    const term = new Terminal(['enable', email], env, tdb.dir);
    await term.waitFor('Current password:');
    term.type(`${PW}\r`);
    await term.waitFor('Confirmation code:');
    expect(await rows(ctx.tables.enrolment, email)).toHaveLength(1);
    term.type('\x03');
    expect(await term.exitCode()).toBe(130);
    for (const table of [ctx.tables.factor, ctx.tables.recoveryCode, ctx.tables.enrolment, ctx.tables.challenge])
      expect(await rows(table, email)).toEqual([]);
    expect((await rows(ctx.tables.audit, email)).map((a) => a.action)).toEqual(['enable-start', 'enable-cancel']);
  });

  it('a wrong password at the prompt: 77, counted, nothing stored', async () => {
    const email = await mailbox();
    const term = new Terminal(['enable', email], env, tdb.dir);
    await term.waitFor('Current password:');
    term.type('not my password\r');
    await term.waitFor('wrong password');
    expect(await term.exitCode()).toBe(77);
    expect((await rows(ctx.tables.accountState, email))[0]!.failed_attempts).toBe(1);
    expect(await rows(ctx.tables.enrolment, email)).toEqual([]);
  });
});
