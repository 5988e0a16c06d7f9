/** `mail2fa verify`, spawned from the BUILT binary (`npm run build` first): every exit code, and racing processes. */
import { describe, expect, it, vi } from 'vitest';
import { totpCode } from '../../src/totp/totp.js';
import { runCli, type CliResult } from '../helpers/cli.js';
import { describeEachDb, useTestDb } from '../helpers/db.js';
import { addMailbox } from '../helpers/context.js';
import {
  accountState,
  auditRows,
  enrolSms,
  enrolTotp,
  issueTemporaryCode,
  sendSignInCode,
  wrongTotp,
} from '../helpers/seed-2fa.js';

// Each test spawns the binary several times in sequence: allow for a busy machine.
vi.setConfig({ testTimeout: 120_000 });

describeEachDb('mail2fa verify (built binary)', (kind) => {
  const scratch = useTestDb(kind); // real clock: the binary uses the real clock too
  let n = 0;
  const fresh = () => `cliv${++n}@example.com`;
  const verify = (args: string[], input?: string, extraEnv: Record<string, string> = {}) =>
    runCli(['verify', ...args], { env: { ...scratch.env, ...extraEnv }, input });

  it('0 accepted (code on stdin with its newline), then 1 on reuse; --json tells the kind', async () => {
    const a = await enrolTotp(scratch.ctx, fresh());
    const code = totpCode(a.secret, Date.now());
    const ok = await verify([a.email], `${code}\n`);
    expect(ok).toMatchObject({
      code: 0,
      stdout: `accepted: code from the authenticator app for ${a.email}\n`,
      stderr: '',
    });
    const again = await verify([a.email, '--json'], code);
    expect(again.code).toBe(1);
    expect(JSON.parse(again.stdout)).toEqual({
      ok: false,
      accepted: false,
      email: a.email,
      reason: 'wrong_code',
      message: 'wrong, expired or already used code',
      failedAttempts: 1,
      lockedUntil: null,
      sessionsRevokedAt: null,
    });
    const rc = await verify([a.email, '--json', '--code', a.recoveryCodes[0]!]);
    expect(rc.code).toBe(0);
    expect(JSON.parse(rc.stdout)).toEqual({
      ok: true,
      accepted: true,
      email: a.email,
      kind: 'recovery',
      recoveryCodesLeft: 9,
      sessionsRevokedAt: null,
    });
    expect(rc.stdout.trim().split('\n')).toHaveLength(1);
  });

  describe('two processes started at once with the same code: exactly one is accepted', () => {
    const race = async (email: string, code: string): Promise<CliResult[]> =>
      Promise.all([verify([email], code), verify([email], code)]);
    const expectOneWinner = (results: CliResult[]) => {
      expect(results.map((r) => r.code).sort(), JSON.stringify(results)).toEqual([0, 1]);
    };

    it('TOTP', async () => {
      const a = await enrolTotp(scratch.ctx, fresh());
      expectOneWinner(await race(a.email, totpCode(a.secret, Date.now())));
    });
    it('SMS sign-in code', async () => {
      const a = await enrolSms(scratch.ctx, fresh());
      expectOneWinner(await race(a.email, await sendSignInCode(scratch.ctx, a.email)));
    });
    it('recovery code', async () => {
      const a = await enrolTotp(scratch.ctx, fresh());
      expectOneWinner(await race(a.email, a.recoveryCodes[5]!));
    });
    it('temporary access code', async () => {
      const a = await enrolTotp(scratch.ctx, fresh());
      expectOneWinner(await race(a.email, await issueTemporaryCode(scratch.ctx, a.email)));
    });
  });

  it('75 locked after five wrong codes, even with the correct code; 0 once the lock has expired', async () => {
    const a = await enrolTotp(scratch.ctx, fresh());
    for (let i = 1; i <= 5; i++) {
      const r = await verify([a.email], wrongTotp(a.secret, Date.now()));
      expect(r.code).toBe(1);
      if (i === 5) expect(r.stdout).toContain('locked for 15 minutes');
    }
    const locked = await verify([a.email, '--json'], totpCode(a.secret, Date.now()));
    expect(locked.code).toBe(75);
    expect(JSON.parse(locked.stdout)).toMatchObject({ ok: false, error: { code: 'locked' } });
    const human = await verify([a.email], a.recoveryCodes[0]!);
    expect(human).toMatchObject({ code: 75, stdout: '' });
    expect(human.stderr).toMatch(/locked until \d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ/);
    const status = await runCli(['status', a.email, '--json'], { env: scratch.env });
    expect(JSON.stringify(JSON.parse(status.stdout))).toMatch(/"lockedUntil":"\d{4}-/);
    expect((await auditRows(scratch.ctx, a.email)).filter((r) => r.action === 'lockout')).toHaveLength(1);
    // The lock runs out (moved into the past here: the binary has the real clock).
    const db = await scratch.ctx.db();
    await db
      .knex(scratch.ctx.tables.accountState)
      .where({ account: a.email })
      .update({ locked_until: Date.now() - 1 });
    expect(await verify([a.email], totpCode(a.secret, Date.now()))).toMatchObject({ code: 0 });
  });

  it('65 for malformed codes, before anything is checked or counted', async () => {
    const a = await enrolTotp(scratch.ctx, fresh());
    const stdinCases = [
      '12345',
      '123 456',
      ' 123456',
      '１２３４５６',
      '1e5',
      '',
      '\n',
      '123456\n\n',
      '123456 \n',
      'x'.repeat(1024 * 1024),
    ];
    const results = await Promise.all(stdinCases.map((input) => verify([a.email], input)));
    for (const [i, r] of results.entries()) {
      expect(r.code, JSON.stringify(stdinCases[i]!.slice(0, 12))).toBe(65);
      expect(r.stderr).toMatch(/^mail2fa: error: (malformed code|no code given)/);
    }
    const flag = await verify([a.email, '--code', '123 456', '--json']);
    expect(flag.code).toBe(65);
    expect(JSON.parse(flag.stdout)).toMatchObject({ ok: false, error: { code: 'bad_code' } });
    expect(await accountState(scratch.ctx, a.email)).toMatchObject({ failed: 0 });
    expect(await auditRows(scratch.ctx, a.email)).toEqual([]);
  });

  it('1 when 2FA is off (never accepted); 67 unknown; 65 bad address; 64 usage; 78 bad key; 69 database down', async () => {
    const off = fresh();
    await addMailbox(scratch.ctx, off);
    expect(await verify([off], '123456')).toMatchObject({
      code: 1,
      stdout: 'rejected: two-factor authentication is not enabled for this account: there is no code to check\n',
    });
    expect(await verify(['ghost@example.com'], '123456')).toMatchObject({ code: 67 });
    expect(await verify(['not an address'], '123456')).toMatchObject({ code: 65 });
    expect(await verify([], '123456')).toMatchObject({ code: 64 });
    expect(await verify([off, '--bogus'], '123456')).toMatchObject({ code: 64 });
    const on = await enrolTotp(scratch.ctx, fresh());
    expect(await verify([on.email], totpCode(on.secret, Date.now()), { MAIL2FA_KEY: 'too-short' })).toMatchObject({
      code: 78,
    });
    const down = await verify(['--json', off], '123456', { MAIL2FA_DB_URL: 'mysql://root@127.0.0.1:1/nothing' });
    expect(down.code).toBe(69);
    expect(JSON.parse(down.stdout)).toMatchObject({ ok: false, error: { code: 'db_unavailable' } });
  });

  it('--help shows examples and the exit codes', async () => {
    const help = await runCli(['verify', '--help'], { env: scratch.env });
    expect(help.code).toBe(0);
    expect(help.stdout).toContain('Examples:');
    expect(help.stdout).toContain('echo 123456 | mail2fa verify');
    expect(help.stdout).toMatch(/75 {2}locked out/);
  });
});
