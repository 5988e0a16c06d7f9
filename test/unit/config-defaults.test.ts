/**
 * A run without any config file uses defaultConfigFile() instead of loading the zod schema (start-up time): the two
 * must never drift apart, and such a run must really not load the schema.
 *
 * The command inputs (src/commands/inputs/) are zod schemas too, parsed on every run, but with zod/mini: a few
 * kilobytes of zod's core where the full zod the config schema uses costs tens of milliseconds to load. So a CLI run
 * without a config file may load zod/mini, and must not load the full zod (its "classic" modules).
 */
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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

  describe('a CLI run without a config file', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mail2fa-inputs-zod-'));
    const db = `sqlite:${join(dir, 'demo.sqlite')}`;
    const env = { ...process.env, MAIL2FA_HOME: dir, MAIL2FA_CONFIG: '', MAIL2FA_DB_URL: '', NO_COLOR: '1' };
    const root = new URL('../../', import.meta.url);
    const hookedRun = (hook: string, args: string[]) => {
      const register = `import { register } from "node:module"; register(${JSON.stringify(`data:text/javascript,${encodeURIComponent(hook)}`)});`;
      return spawnSync(
        process.execPath,
        ['--import', `data:text/javascript,${encodeURIComponent(register)}`, ...args],
        {
          encoding: 'utf8',
          env,
        },
      );
    };

    it('loads zod/mini for its input and not the full zod (unbundled build)', () => {
      const main = new URL('dist/main.js', root).href;
      const hook =
        'export async function resolve(s, c, next) { const r = await next(s, c);' +
        ' if (s === "zod" || r.url.includes("/zod/v4/classic/")) throw new Error("the full zod was loaded: " + s);' +
        ' if (s === "zod/mini") process.stderr.write("zod/mini loaded\\n"); return r; }';
      const program = (args: string[]) =>
        `const { run } = await import(${JSON.stringify(main)}); await run(${JSON.stringify(['node', 'mail2fa', ...args])});`;
      const demo = hookedRun(hook, ['--input-type=module', '-e', program(['demo', '--db', db])]);
      expect(demo.stderr).not.toMatch(/full zod/);
      const status = hookedRun(hook, [
        '--input-type=module',
        '-e',
        program(['status', 'alice@example.com', '--db', db]),
      ]);
      expect(status.stderr).toContain('zod/mini loaded');
      expect(status.stderr).not.toMatch(/full zod/);
      expect(status.stdout).toMatch(/alice@example\.com/);
    });

    it("loads only zod/mini's own copy of zod's core (bundle): the full zod stays in its chunks", () => {
      // esbuild heads each module in a chunk with a comment naming its source file.
      const hook =
        'export async function resolve(s, c, next) { const r = await next(s, c);' +
        ' if (r.url.includes("/bundle/")) process.stderr.write("chunk " + r.url + "\\n"); return r; }';
      const status = hookedRun(hook, [
        new URL('bin/mail2fa.js', root).pathname,
        'status',
        'alice@example.com',
        '--db',
        db,
      ]);
      expect(status.stdout).toMatch(/alice@example\.com/);
      const chunks = [...status.stderr.matchAll(/^chunk (\S+)$/gm)].map((m) => readFileSync(new URL(m[1]!), 'utf8'));
      expect(chunks.length).toBeGreaterThan(1);
      // zod/mini's copy of zod's core carries the suffix scripts/bundle.mjs gives it; the full zod's modules do not.
      const zodModules = chunks.flatMap((text) =>
        [...text.matchAll(/^\/\/ \S*node_modules\/zod\/(\S+)$/gm)].map((m) => m[1]),
      );
      expect(zodModules).toContain('v4/mini/schemas.js?command-inputs');
      expect(zodModules.filter((module) => !module!.endsWith('?command-inputs'))).toEqual([]);
      rmSync(dir, { recursive: true, force: true });
    });
  });
});
