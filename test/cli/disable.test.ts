/** `mail2fa disable`, spawned from the BUILT binary (`npm run build` first): every exit code, and a real terminal. */
import { expect, it, vi } from 'vitest';
import { totpCode } from '../../src/totp/totp.js';
import { runCli } from '../helpers/cli.js';
import { runInTerminal } from '../helpers/terminal.js';
import { describeEachDb, useTestDb } from '../helpers/db.js';
import { addMailbox } from '../helpers/context.js';
import {
  PASSWORD,
  accountState,
  auditRows,
  enrolSms,
  enrolTotp,
  lastOutboxCode,
  outboxFile,
  twoFactorRows,
  wrongTotp,
} from '../helpers/seed-2fa.js';

// Each test spawns the binary several times in sequence: allow for a busy machine.
vi.setConfig({ testTimeout: 120_000 });

const NO_ROWS = { factor: 0, recoveryCodes: 0, enrolments: 0, challenges: 0 };

describeEachDb('mail2fa disable (built binary)', (kind) => {
  const scratch = useTestDb(kind);
  let n = 0;
  const fresh = () => `clid${++n}@example.com`;
  const disable = (args: string[], password = PASSWORD) =>
    runCli(['disable', ...args, '--password-stdin'], { env: scratch.env, input: `${password}\n` });

  it('0: password on stdin + app code → off, no 2FA row left, one audit row; --json is one document', async () => {
    const a = await enrolTotp(scratch.ctx, fresh());
    const r = await disable([a.email, '--code', totpCode(a.secret, Date.now())]);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(
      `Two-factor authentication has now been disabled for ${a.email}, and you may sign in without having your phone nearby.`,
    );
    expect(r.stdout).toContain('all sessions were signed out');
    expect(await twoFactorRows(scratch.ctx, a.email)).toEqual(NO_ROWS);
    expect((await auditRows(scratch.ctx, a.email)).map((x) => [x.action, x.outcome])).toEqual([['disable', 'ok']]);

    const b = await enrolTotp(scratch.ctx, fresh());
    const j = await runCli(['--json', 'disable', b.email, '--password-stdin', '--code', b.recoveryCodes[0]!], {
      env: scratch.env,
      input: PASSWORD,
    });
    expect(j.code).toBe(0);
    expect(JSON.parse(j.stdout)).toMatchObject({
      ok: true,
      changed: true,
      email: b.email,
      method: 'totp',
      codeKind: 'recovery',
    });
    expect(j.stdout.trim().split('\n')).toHaveLength(1);
  });

  it('0: already off says nothing changed (no password needed)', async () => {
    const email = fresh();
    await addMailbox(scratch.ctx, email);
    const r = await runCli(['disable', email], { env: scratch.env });
    expect(r).toMatchObject({
      code: 0,
      stdout: `Two-factor authentication is already off for ${email}; nothing changed.\n`,
    });
    const j = await runCli(['disable', email, '--json'], { env: scratch.env });
    expect(JSON.parse(j.stdout)).toEqual({ ok: true, email, changed: false });
  });

  it('SMS account without a terminal: --send-code sends (exit 0), the second run with the texted code turns 2FA off', async () => {
    const a = await enrolSms(scratch.ctx, fresh());
    const sent = await disable([a.email, '--send-code']);
    expect(sent.code).toBe(0);
    expect(sent.stderr).toContain('A code was sent to +45 ****3456');
    expect(sent.stdout).toContain(`Finish with: mail2fa disable ${a.email} --password-stdin --code CODE`);
    expect((await twoFactorRows(scratch.ctx, a.email)).factor).toBe(1);
    const code = lastOutboxCode(outboxFile(scratch.ctx));
    expect(sent.stdout + sent.stderr).not.toContain(code);
    const done = await disable([a.email, '--code', code]);
    expect(done.code).toBe(0);
    expect(await twoFactorRows(scratch.ctx, a.email)).toEqual(NO_ROWS);
  });

  it('77 wrong password, 77 wrong code (counted); 75 once locked, even with everything right', async () => {
    const a = await enrolTotp(scratch.ctx, fresh());
    const wrongPw = await disable([a.email, '--code', totpCode(a.secret, Date.now())], 'not it');
    expect(wrongPw.code).toBe(77);
    expect(wrongPw.stderr).toContain('wrong password');
    expect(wrongPw.stderr).not.toContain('not it');
    const wrongCode = await disable([a.email, '--code', wrongTotp(a.secret, Date.now())]);
    expect(wrongCode.code).toBe(77);
    expect(wrongCode.stderr).toContain('wrong or expired code');
    expect((await accountState(scratch.ctx, a.email)).failed).toBe(2);
    const db = await scratch.ctx.db();
    await db.knex(scratch.ctx.tables.accountState).where({ account: a.email }).update({ failed_attempts: 4 });
    expect((await disable([a.email, '--code', wrongTotp(a.secret, Date.now())])).stderr).toContain(
      'now locked for 15 minutes',
    );
    const locked = await disable([a.email, '--code', totpCode(a.secret, Date.now())]);
    expect(locked.code).toBe(75);
    expect((await twoFactorRows(scratch.ctx, a.email)).factor).toBe(1);
  });

  it('65 malformed code or address (nothing counted), 67 unknown, 64 usage', async () => {
    const a = await enrolTotp(scratch.ctx, fresh());
    const [malformed, badAddress, unknown, noTty, both, noEmail] = await Promise.all([
      disable([a.email, '--code', '１２３４５６']),
      disable(['jane@', '--code', '123456']),
      disable(['ghost@example.com', '--code', '123456']),
      runCli(['disable', a.email, '--code', '123456'], { env: scratch.env }),
      disable([a.email, '--send-code', '--code', '123456']),
      runCli(['disable'], { env: scratch.env }),
    ]);
    expect(malformed.code).toBe(65);
    expect(badAddress.code).toBe(65);
    expect(unknown.code).toBe(67);
    expect(noTty.code).toBe(64);
    expect(noTty.stderr).toContain('--password-stdin');
    expect(both.code).toBe(64);
    expect(noEmail.code).toBe(64);
    const noCode = await disable([a.email]);
    expect(noCode.code).toBe(64);
    expect(noCode.stderr).toContain('--code');
    expect(await accountState(scratch.ctx, a.email)).toMatchObject({ failed: 0 });
    expect(await auditRows(scratch.ctx, a.email)).toEqual([]);
  });

  it('in a real terminal: masked password prompt, code prompt, closing message', async () => {
    const a = await enrolTotp(scratch.ctx, fresh());
    const code = totpCode(a.secret, Date.now());
    const r = await runInTerminal(['disable', a.email], scratch.env, [
      [/Current password for [^:]+:/, `${PASSWORD}\r`],
      [/Code from the authenticator app \(or a recovery code\):/, `${code}\r`],
    ]);
    expect(r.code, r.screen).toBe(0);
    expect(r.screen).not.toContain(PASSWORD);
    expect(r.screen).toContain('*************');
    expect(r.screen).toContain('you may sign in without having your phone nearby');
    expect(await twoFactorRows(scratch.ctx, a.email)).toEqual(NO_ROWS);
  });

  it('130 when cancelled at the prompt (Ctrl-C): nothing changed', async () => {
    const a = await enrolTotp(scratch.ctx, fresh());
    const r = await runInTerminal(['disable', a.email], scratch.env, [[/Current password for [^:]+:/, '\x03']]);
    expect(r.code, r.screen).toBe(130);
    expect(await twoFactorRows(scratch.ctx, a.email)).toMatchObject({ factor: 1, recoveryCodes: 10 });
    expect(await auditRows(scratch.ctx, a.email)).toEqual([]);
  });

  it('69 database unavailable, 78 bad key', async () => {
    const a = await enrolTotp(scratch.ctx, fresh());
    const [down, badKey] = await Promise.all([
      runCli(['disable', a.email, '--password-stdin', '--code', '123456'], {
        env: { ...scratch.env, MAIL2FA_DB_URL: 'mysql://root@127.0.0.1:1/nothing' },
        input: PASSWORD,
      }),
      runCli(['disable', a.email, '--password-stdin', '--code', totpCode(a.secret, Date.now())], {
        env: { ...scratch.env, MAIL2FA_KEY: 'x' },
        input: PASSWORD,
      }),
    ]);
    expect(down.code).toBe(69);
    expect(badKey.code).toBe(78);
    expect((await twoFactorRows(scratch.ctx, a.email)).factor).toBe(1);
  });

  it('in a real terminal, SMS: --send-code texts a code, then the prompt takes it', async () => {
    const a = await enrolSms(scratch.ctx, fresh());
    const r = await runInTerminal(['disable', a.email, '--send-code'], scratch.env, [
      [/Current password for [^:]+:/, `${PASSWORD}\r`],
      // The code is read from the outbox only once the prompt asks for it: it was sent just before.
      [
        /Code from the text message to \+45 \*{4}3456 \(or a recovery code\):/,
        () => `${lastOutboxCode(outboxFile(scratch.ctx))}\r`,
      ],
    ]);
    expect(r.code, r.screen).toBe(0);
    expect(r.screen).toContain('A code was sent to +45 ****3456');
    expect(await twoFactorRows(scratch.ctx, a.email)).toEqual(NO_ROWS);
  });
});
