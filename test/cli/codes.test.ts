/** `mail2fa codes regenerate`, spawned from the BUILT binary (`npm run build` first). */
import { expect, it, vi } from 'vitest';
import { parseRecoveryCode } from '../../src/crypto/one-time-codes.js';
import { totpCode } from '../../src/totp/totp.js';
import { runCli } from '../helpers/cli.js';
import { runInTerminal } from '../helpers/terminal.js';
import { describeEachDb, useTestDb } from '../helpers/db.js';
import { addMailbox } from '../helpers/context.js';
import { PASSWORD, accountState, auditRows, enrolTotp, wrongTotp } from '../helpers/seed-2fa.js';

// Each test spawns the binary several times in sequence: allow for a busy machine.
vi.setConfig({ testTimeout: 120_000 });

describeEachDb('mail2fa codes regenerate (built binary)', (kind) => {
  const scratch = useTestDb(kind);
  let n = 0;
  const fresh = () => `clic${++n}@example.com`;
  const regenerate = (args: string[], password = PASSWORD) =>
    runCli(['codes', 'regenerate', ...args, '--password-stdin'], { env: scratch.env, input: password });

  it('0: ten new codes shown once; the old ones stop working, a new one works with verify; status counts them', async () => {
    const a = await enrolTotp(scratch.ctx, fresh());
    const r = await regenerate([a.email, '--code', totpCode(a.secret, Date.now())]);
    expect(r.code).toBe(0);
    const shown = r.stdout
      .split('\n')
      .map((l) => l.trim())
      .filter((l) => parseRecoveryCode(l) === l);
    expect(shown).toHaveLength(10);
    expect(r.stdout).toContain('the old codes no longer work');
    expect(await runCli(['verify', a.email], { env: scratch.env, input: a.recoveryCodes[0]! })).toMatchObject({
      code: 1,
    });
    expect(await runCli(['verify', a.email], { env: scratch.env, input: shown[0]! })).toMatchObject({ code: 0 });
    const status = JSON.parse((await runCli(['status', a.email, '--json'], { env: scratch.env })).stdout) as unknown;
    expect(JSON.stringify(status)).toContain('"recoveryCodesLeft":9');
    expect((await auditRows(scratch.ctx, a.email)).map((x) => x.action)).toContain('codes-regenerate');
    for (const row of await auditRows(scratch.ctx, a.email))
      for (const c of shown) expect(row.detail ?? '').not.toContain(c);
  });

  it('in a real terminal: password and code prompts, the codes shown; Ctrl-C at a prompt → 130', async () => {
    const a = await enrolTotp(scratch.ctx, fresh());
    const r = await runInTerminal(['codes', 'regenerate', a.email], scratch.env, [
      [/Current password for [^:]+:/, `${PASSWORD}\r`],
      [/Code from the authenticator app \(or a recovery code\):/, `${totpCode(a.secret, Date.now())}\r`],
    ]);
    expect(r.code, r.screen).toBe(0);
    expect(r.screen).toContain('New recovery codes for');
    expect(r.screen).not.toContain(PASSWORD);
    const cancelled = await runInTerminal(['codes', 'regenerate', a.email], scratch.env, [
      [/Current password for [^:]+:/, '\x03'],
    ]);
    expect(cancelled.code).toBe(130);
  });

  it('--json: one document with the codes', async () => {
    const a = await enrolTotp(scratch.ctx, fresh());
    const r = await runCli(
      ['--json', 'codes', 'regenerate', a.email, '--password-stdin', '--code', a.recoveryCodes[1]!],
      { env: scratch.env, input: PASSWORD },
    );
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout) as { ok: boolean; recoveryCodes: string[]; codeKind: string };
    expect(doc).toMatchObject({ ok: true, changed: true, codeKind: 'recovery', email: a.email });
    expect(doc.recoveryCodes).toHaveLength(10);
  });

  it('77 wrong password / code (counted), 75 locked, 65 not enabled or malformed, 67 unknown, 64 usage', async () => {
    const a = await enrolTotp(scratch.ctx, fresh());
    const off = fresh();
    await addMailbox(scratch.ctx, off);
    const [wrongPw, wrongCode, notEnabled, malformed, unknown, noTty] = await Promise.all([
      regenerate([a.email, '--code', totpCode(a.secret, Date.now())], 'nope'),
      regenerate([a.email, '--code', wrongTotp(a.secret, Date.now())]),
      regenerate([off, '--code', '123456']),
      regenerate([a.email, '--code', '12345']),
      regenerate(['ghost@example.com', '--code', '123456']),
      runCli(['codes', 'regenerate', a.email, '--code', '123456'], { env: scratch.env }),
    ]);
    expect(wrongPw.code).toBe(77);
    expect(wrongCode.code).toBe(77);
    expect(notEnabled.code).toBe(65);
    expect(notEnabled.stderr).toContain('not enabled');
    expect(malformed.code).toBe(65);
    expect(unknown.code).toBe(67);
    expect(noTty.code).toBe(64);
    expect(noTty.stderr).toContain('--password-stdin');
    expect((await accountState(scratch.ctx, a.email)).failed).toBe(2);
    const db = await scratch.ctx.db();
    await db
      .knex(scratch.ctx.tables.accountState)
      .where({ account: a.email })
      .update({ failed_attempts: 5, locked_until: Date.now() + 900_000 });
    expect(await regenerate([a.email, '--code', totpCode(a.secret, Date.now())])).toMatchObject({ code: 75 });
    const b = await enrolTotp(scratch.ctx, fresh());
    const [down, badKey] = await Promise.all([
      runCli(['codes', 'regenerate', b.email, '--password-stdin', '--code', '123456'], {
        env: { ...scratch.env, MAIL2FA_DB_URL: 'mysql://root@127.0.0.1:1/nothing' },
        input: PASSWORD,
      }),
      runCli(['codes', 'regenerate', b.email, '--password-stdin', '--code', totpCode(b.secret, Date.now())], {
        env: { ...scratch.env, MAIL2FA_KEY: 'x' },
        input: PASSWORD,
      }),
    ]);
    expect(down.code).toBe(69);
    expect(badKey.code).toBe(78);
    const help = await runCli(['codes', 'regenerate', '--help'], { env: scratch.env });
    expect(help.stdout).toContain('Examples:');
    expect(help.stdout).toContain('Exit codes:');
  });
});
