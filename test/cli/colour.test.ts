/**
 * One colour policy for the built binary: the red "mail2fa: error:" prefix appears on a terminal only, never with
 * NO_COLOR (any non-empty value), --no-color, into a pipe (FORCE_COLOR notwithstanding) or in JSON.
 */
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { runInTerminal } from '../helpers/terminal.js';

/** A configuration error (78) that needs no database: a --db URL of no known kind. */
const FAILING = ['--db', 'nonsense://x', 'status', 'jane@example.com'];
const RED_PREFIX = '\x1b[31mmail2fa: error:\x1b[39m';
const home = mkdtempSync(join(tmpdir(), 'mail2fa-colour-'));
const env = { MAIL2FA_HOME: home, MAIL2FA_CONFIG: '', MAIL2FA_DB_URL: '', MAIL2FA_KEY_FILE: '', FORCE_COLOR: '' };

describe('the error prefix on a terminal', () => {
  it('is red without NO_COLOR (an empty NO_COLOR counts as unset)', async () => {
    const r = await runInTerminal(FAILING, { ...env, NO_COLOR: '' }, []);
    expect(r.code).toBe(78);
    expect(r.screen).toContain(`${RED_PREFIX} invalid configuration`);
  });

  it.each([
    ['NO_COLOR=1', [], { NO_COLOR: '1' }],
    ['NO_COLOR=0 (any non-empty value)', [], { NO_COLOR: '0' }],
    ['--no-color', ['--no-color'], { NO_COLOR: '' }],
  ])('is plain with %s', async (_name, flags, extra) => {
    const r = await runInTerminal([...flags, ...FAILING], { ...env, ...extra }, []);
    expect(r.code).toBe(78);
    expect(r.screen).toContain('mail2fa: error: invalid configuration');
    expect(r.screen).not.toContain('\x1b');
  });

  it('never colours JSON', async () => {
    const r = await runInTerminal(['--json', ...FAILING], { ...env, NO_COLOR: '' }, []);
    expect(r.code).toBe(78);
    expect(r.screen).toContain('{"ok":false,"error":{"code":"config_invalid"');
    expect(r.screen).not.toContain('\x1b');
  });
});

describe('the error prefix into a pipe', () => {
  it('is plain, even with FORCE_COLOR', async () => {
    for (const extra of [{ NO_COLOR: undefined }, { NO_COLOR: undefined, FORCE_COLOR: '3', TERM: 'xterm-256color' }]) {
      const r = await runCli(FAILING, { env: { ...env, ...extra } });
      expect(r.code).toBe(78);
      expect(r.stderr).toMatch(/^mail2fa: error: invalid configuration/);
      expect(r.stdout + r.stderr).not.toContain('\x1b');
    }
  });
});
