/**
 * Configuration through the built binary: each layer of flags > env > file > defaults is seen winning by which
 * database `status --all` reads (each holds one telltale mailbox); YAML and JSON files; all problems at once.
 */
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { createTestDb, describeEachDb, type TestDb } from '../helpers/db.js';
import { addMailbox, TEST_KEY, testContext } from '../helpers/context.js';

async function seeded(db: TestDb, telltale: string): Promise<void> {
  const ctx = await testContext(db);
  try {
    await addMailbox(ctx, telltale, 'pw', { scheme: 'PLAIN' });
  } finally {
    await ctx.close();
  }
}

const emails = (stdout: string) =>
  stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => (JSON.parse(l) as { email: string }).email);

describeEachDb('configuration precedence (built binary)', (kind) => {
  const dbs: Record<'file' | 'env' | 'flag', TestDb | undefined> = { file: undefined, env: undefined, flag: undefined };
  const scratch = mkdtempSync(join(tmpdir(), 'mail2fa-cfg-'));
  const home = join(scratch, 'home');
  let yaml: string;
  let json: string;
  let base: Record<string, string | undefined>;

  beforeAll(async () => {
    for (const layer of ['file', 'env', 'flag'] as const) {
      dbs[layer] = await createTestDb(kind);
      await seeded(dbs[layer]!, `${layer}@layer.example`);
    }
    // The embedded default (SQLite under MAIL2FA_HOME) with its own telltale.
    await seeded(
      { kind: 'sqlite', url: `sqlite:${join(home, 'mail2fa.sqlite')}`, dir: home, drop: async () => {} },
      'default@layer.example',
    );
    yaml = join(scratch, 'mail2fa.yaml');
    writeFileSync(yaml, `# the file layer\ndb:\n  url: ${dbs.file!.url}\n`);
    json = join(scratch, 'mail2fa.json');
    writeFileSync(json, JSON.stringify({ db: { url: dbs.file!.url } }));
    base = {
      MAIL2FA_HOME: home,
      MAIL2FA_KEY: TEST_KEY,
      MAIL2FA_DB_URL: undefined,
      MAIL2FA_CONFIG: undefined,
      MAIL2FA_KEY_FILE: undefined,
    };
  });
  afterAll(async () => {
    for (const db of Object.values(dbs)) await db?.drop();
  });

  const status = async (args: string[], env: Record<string, string | undefined>) => {
    const r = await runCli([...args, 'status', '--all', '--format', 'ndjson'], { env: { ...base, ...env } });
    expect(r.stderr).toMatch(/^1 account, /);
    expect(r.code).toBe(0);
    return emails(r.stdout);
  };

  it('defaults: the embedded database under MAIL2FA_HOME', async () => {
    expect(await status([], {})).toEqual(['default@layer.example']);
  });

  it('file (--config, YAML) over defaults', async () => {
    expect(await status(['--config', yaml], {})).toEqual(['file@layer.example']);
  });

  it('file (--config, JSON) over defaults', async () => {
    expect(await status(['--config', json], {})).toEqual(['file@layer.example']);
  });

  it('file named by MAIL2FA_CONFIG', async () => {
    expect(await status([], { MAIL2FA_CONFIG: yaml })).toEqual(['file@layer.example']);
  });

  it('env (MAIL2FA_DB_URL) over the file', async () => {
    expect(await status(['--config', yaml], { MAIL2FA_DB_URL: dbs.env!.url })).toEqual(['env@layer.example']);
    expect(await status([], { MAIL2FA_CONFIG: yaml, MAIL2FA_DB_URL: dbs.env!.url })).toEqual(['env@layer.example']);
  });

  it('flag (--db) over env and file', async () => {
    expect(await status(['--config', yaml, '--db', dbs.flag!.url], { MAIL2FA_DB_URL: dbs.env!.url })).toEqual([
      'flag@layer.example',
    ]);
  });

  it('--config over MAIL2FA_CONFIG', async () => {
    const other = join(scratch, 'other.yaml');
    writeFileSync(other, `db:\n  url: ${dbs.flag!.url}\n`);
    expect(await status(['--config', other], { MAIL2FA_CONFIG: yaml })).toEqual(['flag@layer.example']);
  });

  it('a problem in the environment and problems in the file are reported together', async () => {
    const bad = join(scratch, 'bad.json');
    writeFileSync(bad, JSON.stringify({ issuer: 7, accounts: { preset: 'vmail' } }));
    const r = await runCli(['--config', bad, 'status', '--all'], { env: { ...base, MAIL2FA_DB_URL: 'oracle://x/y' } });
    expect(r.code).toBe(78);
    expect(r.stderr).toContain('invalid configuration (3 problems)');
    for (const part of ['issuer', 'accounts.preset', 'MAIL2FA_DB_URL']) expect(r.stderr).toContain(part);
  });
});

describe('relative paths in a config file (built binary)', () => {
  it('a relative sqlite db.url is read next to the config file, whatever the working directory', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mail2fa-rel-'));
    mkdirSync(join(dir, 'etc', 'data'), { recursive: true });
    await seeded(
      { kind: 'sqlite', url: `sqlite:${join(dir, 'etc', 'data', 'mail.sqlite')}`, dir, drop: async () => {} },
      'relative@layer.example',
    );
    const conf = join(dir, 'etc', 'mail2fa.yaml');
    writeFileSync(conf, 'db:\n  url: sqlite:data/mail.sqlite\n');
    // runCli runs from the repository, far from dir/etc.
    const r = await runCli(['--config', conf, 'status', '--all', '--format', 'ndjson'], {
      env: {
        MAIL2FA_HOME: join(dir, 'home'),
        MAIL2FA_KEY: TEST_KEY,
        MAIL2FA_DB_URL: undefined,
        MAIL2FA_CONFIG: undefined,
      },
    });
    expect(r.code).toBe(0);
    expect(emails(r.stdout)).toEqual(['relative@layer.example']);
  });
});
