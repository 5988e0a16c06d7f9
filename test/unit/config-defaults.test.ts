/**
 * A run without any config file uses defaultConfigFile() instead of loading the zod schema (start-up time): the two
 * must never drift apart, and such a run must really not load the schema.
 */
import { spawnSync } from 'node:child_process';
import { describe, expect, it } from 'vitest';
import { defaultConfigFile, loadConfig } from '../../src/config.js';
import { ConfigFileSchema } from '../../src/config-schema.js';

describe('defaults without a config file', () => {
  it('equal what the schema makes of an empty config', () => {
    expect(defaultConfigFile()).toEqual(ConfigFileSchema.parse({}));
  });

  it('are a fresh object each time (callers may not share state)', () => {
    const a = defaultConfigFile();
    a.sms.outbox.path = '/x';
    expect(defaultConfigFile().sms.outbox.path).toBeUndefined();
  });

  it('give the same configuration as an empty config object checked by the schema', async () => {
    const env = { MAIL2FA_HOME: '/tmp/mail2fa-defaults-test' };
    const plain = await loadConfig({ env });
    const checked = await loadConfig({ env, configObject: { issuer: 'Webmail' } });
    expect(plain).toEqual(checked);
  });

  it('loading the defaults does not load zod; checking a config does', () => {
    // A module-resolution hook that makes "zod" unresolvable: the defaults must load without it.
    const hook =
      'export async function resolve(s, c, next) { if (s === "zod" || s.startsWith("zod/")) throw new Error("zod was loaded"); return next(s, c); }';
    const register = `import { register } from "node:module"; register(${JSON.stringify(`data:text/javascript,${encodeURIComponent(hook)}`)});`;
    const run = (configObject: string) =>
      spawnSync(
        process.execPath,
        [
          '--import',
          `data:text/javascript,${encodeURIComponent(register)}`,
          '--input-type=module',
          '-e',
          `
          const { loadConfig } = await import(${JSON.stringify(new URL('../../dist/config.js', import.meta.url).href)});
          try { await loadConfig({ env: { MAIL2FA_HOME: '/tmp/mail2fa-defaults-test' }${configObject} }); console.log('loaded'); }
          catch (err) { console.log(String(err.message)); }
        `,
        ],
        { encoding: 'utf8' },
      );
    const plain = run('');
    expect(plain.stdout.trim()).toBe('loaded');
    const withConfig = run(", configObject: { issuer: 'X' }");
    expect(withConfig.stdout).toMatch(/zod was loaded/);
  });
});
