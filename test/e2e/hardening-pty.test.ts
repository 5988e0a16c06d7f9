/**
 * Hardening through a real terminal (node-pty) and through a pipe, with the BUILT binary (`npm run build` first).
 * `recover` wraps its summary and the customer's reply on word boundaries at the terminal's width, and
 * leaves them unwrapped when stdout is not a terminal. Password prompts name the account.
 */
import { describe, expect, it, vi } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { useTestDb } from '../helpers/db.js';
import { testEnv } from '../helpers/context.js';
import { PASSWORD, enrolTotp } from '../helpers/seed-2fa.js';
import { totpCode } from '../../src/totp/totp.js';
import { runInTerminal } from '../helpers/terminal.js';

vi.setConfig({ testTimeout: 60_000 });

const ANSI = /\u001b\[[0-9;?]*[ -/]*[@-~]|\u001b[()][0-9A-Za-z]|\u001b[=>]/g;

const scratch = useTestDb('sqlite');

describe('recover at an 80-column terminal', () => {
  const reason = 'lost the phone on a train; identity checked by a call-back to the number on file';
  const sentence = 'We recommend turning two-factor authentication on again with your new phone';

  it('wraps on word boundaries at the width; a pipe gets the same text unwrapped', async () => {
    const a = await enrolTotp(scratch.ctx, 'rather.long.customer.address@example.com');
    const env = { ...testEnv(scratch.tdb), NO_COLOR: '1' };
    const t = await runInTerminal(
      ['--yes', 'recover', a.email, '--ticket', 'T-15', '--reason', reason],
      env,
      [],
      30_000,
      80,
    );
    expect(t.code, t.screen).toBe(0);
    const lines = t.screen.replace(ANSI, '').split(/\r?\n/);
    const long = lines.filter((l) => l.length > 80);
    expect(long, long.join('\n')).toEqual([]);
    const text = lines.join(' ').replace(/\s+/g, ' ');
    expect(text).toContain(reason);
    expect(text).toContain(sentence);
    expect(text).toMatch(
      /This will: remove the authenticator app and its recovery codes; delete pending codes and enrolments; sign the user out everywhere; leave 2FA OFF/,
    );

    const b = await enrolTotp(scratch.ctx, 'another.long.customer.address@example.com');
    const piped = await runCli(['--yes', 'recover', b.email, '--ticket', 'T-15', '--reason', reason], { env });
    expect(piped.code).toBe(0);
    expect(piped.stdout.split('\n').find((l) => l.startsWith(sentence))!.length).toBeGreaterThan(80);
  });
});

describe('disable and codes regenerate name the account at the password prompt', () => {
  it('"Current password for <address>:"', async () => {
    const env = { ...testEnv(scratch.tdb), NO_COLOR: '1' };
    const a = await enrolTotp(scratch.ctx, 'prompt.codes@example.com');
    const codes = await runInTerminal(
      ['codes', 'regenerate', a.email],
      env,
      [
        [/Current password for prompt\.codes@example\.com:/, `${PASSWORD}\r`],
        [/Code from the authenticator app/, () => `${totpCode(a.secret, Date.now())}\r`],
      ],
      20_000,
    );
    expect(codes.code, codes.screen).toBe(0);
    const b = await enrolTotp(scratch.ctx, 'prompt.disable@example.com');
    const disable = await runInTerminal(
      ['disable', b.email],
      env,
      [
        [/Current password for prompt\.disable@example\.com:/, `${PASSWORD}\r`],
        [/Code from the authenticator app/, () => `${totpCode(b.secret, Date.now())}\r`],
      ],
      20_000,
    );
    expect(disable.code, disable.screen).toBe(0);
  });
});
