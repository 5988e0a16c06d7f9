/**
 * The exit-code contract of `status`, `migrate` and configuration loading, one test per code, each spawning the
 * built binary (run `npm run build` first). With --json, stdout holds exactly one JSON document, errors included.
 */
import { existsSync, mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Context } from '../../src/context.js';
import { LATEST_MIGRATION } from '../../src/db/migrations.js';
import { runCli, type CliResult } from '../helpers/cli.js';
import { createTestDb, describeEachDb, type TestDb } from '../helpers/db.js';
import { addMailbox, testContext, testEnv } from '../helpers/context.js';
import { createPostfixAdminMailbox, insertPostfixAdminMailbox, postfixAdminConfig } from '../fixtures/postfixadmin.js';
import { seedFactors } from '../helpers/status-seed.js';

/** stdout is exactly one JSON document (one line), and nothing else. */
function oneJson(r: CliResult): Record<string, any> {
  const text = r.stdout;
  expect(text.endsWith('\n')).toBe(true);
  expect(text.trimEnd().includes('\n')).toBe(false);
  return JSON.parse(text) as Record<string, any>;
}

function noStack(r: CliResult): void {
  expect(r.stderr).not.toMatch(/^\s+at /m);
  expect(r.stdout).not.toMatch(/^\s+at /m);
  expect(r.stderr + r.stdout).not.toMatch(/Acquire connection|KnexTimeoutError|Error: /);
}

const scratch = mkdtempSync(join(tmpdir(), 'mail2fa-exit-'));
const isolated = {
  MAIL2FA_CONFIG: undefined,
  MAIL2FA_KEY_FILE: undefined,
  MAIL2FA_HOME: join(scratch, 'home'),
  MAIL2FA_DB_URL: undefined,
};

describeEachDb('exit codes of status', (kind) => {
  let tdb: TestDb;
  let ctx: Context;
  let env: Record<string, string | undefined>;
  beforeAll(async () => {
    tdb = await createTestDb(kind);
    ctx = await testContext(tdb);
    await addMailbox(ctx, 'alice@example.com', 'pw', { scheme: 'PLAIN' });
    await addMailbox(ctx, 'bob@example.com', 'pw', { scheme: 'PLAIN' });
    await seedFactors(ctx, Date.now(), [{ account: 'bob@example.com', method: 'totp' }]);
    env = { ...isolated, ...testEnv(tdb) };
  });
  afterAll(async () => {
    await ctx?.close();
    await tdb?.drop();
  });

  it('0: a known address', async () => {
    const r = await runCli(['status', 'bob@example.com'], { env });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^bob@example\.com\s+ok\s+true\s+true\s+totp/m);
    const j = await runCli(['--json', 'status', 'bob@example.com'], { env });
    expect(j.code).toBe(0);
    expect(oneJson(j)).toMatchObject({
      ok: true,
      accounts: [{ email: 'bob@example.com', enabled: true, method: 'totp' }],
      summary: { accounts: 1, enabled: 1 },
    });
  });

  it('1: --require-enabled finds an account without 2FA (or an unknown one); 0 when all have it', async () => {
    const r = await runCli(['status', '--require-enabled', 'bob@example.com', 'alice@example.com'], { env });
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('alice@example.com');
    const j = await runCli(['status', '--require-enabled', '--json', 'bob@example.com', 'alice@example.com'], { env });
    expect(j.code).toBe(1);
    expect(oneJson(j)).toMatchObject({ ok: true, summary: { enabled: 1, disabled: 1 } });
    expect((await runCli(['status', '--require-enabled', 'bob@example.com', 'nobody@example.com'], { env })).code).toBe(
      1,
    );
    expect((await runCli(['status', '--require-enabled', 'bob@example.com'], { env })).code).toBe(0);
    // The filter hides rows, not gaps: alice is not shown but still fails the check.
    const filtered = await runCli(
      ['status', '--require-enabled', '--enabled', '--format', 'ndjson', 'bob@example.com', 'alice@example.com'],
      { env },
    );
    expect(filtered.code).toBe(1);
    expect(filtered.stdout).not.toContain('alice');
  });

  it('65: a malformed address given alone', async () => {
    const r = await runCli(['status', 'not-an-address'], { env });
    expect(r.code).toBe(65);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^mail2fa: error: invalid email address "not-an-address": no "@"\nhint: /);
    const j = await runCli(['--json', 'status', 'not-an-address'], { env });
    expect(j.code).toBe(65);
    expect(oneJson(j)).toEqual({
      ok: false,
      error: { code: 'bad_address', message: expect.stringContaining('no "@"'), hint: expect.any(String) },
    });
    expect(j.stderr).toBe('');
    const d = await runCli(['status', '--domain', 'not a domain'], { env });
    expect(d.code).toBe(65);
    expect(d.stderr).toContain('invalid domain');
  });

  it('67: an unknown address given alone, like doveadm user', async () => {
    const r = await runCli(['status', 'nobody@example.com'], { env });
    expect(r.code).toBe(67);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^mail2fa: error: unknown account: nobody@example\.com\n/);
    const j = await runCli(['status', 'nobody@example.com', '--json'], { env });
    expect(j.code).toBe(67);
    expect(oneJson(j)).toMatchObject({ ok: false, error: { code: 'unknown_account' } });
  });

  it('0, not 67: unknown addresses in a list are rows', async () => {
    const r = await runCli(['status', 'nobody@example.com', 'bob@example.com'], { env });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/^nobody@example\.com\s+unknown/m);
  });
});

describe('exit codes of status that need no database', () => {
  const env = { ...isolated, MAIL2FA_DB_URL: 'mysql://root@127.0.0.1:1/never_opened' };

  it.each([
    [['status'], /say which accounts/],
    [['status', '--enabled', '--disabled', '--all'], /--enabled and --disabled exclude each other/],
    [['status', '--all', '--domain', 'example.com'], /--all and --domain exclude each other/],
    [['status', 'a@example.com', '--all'], /not several of them/],
    [['status', '--file', 'list.txt', 'a@example.com'], /not several of them/],
    [['status', '--all', '--format', 'xml'], /argument 'xml' is invalid/],
    [['status', '--all', '--frobnicate'], /unknown option '--frobnicate'/],
    [['status', '--all', '--json', '--format', 'csv'], /--json conflicts with --format csv/],
    [['status', '--file', join(scratch, 'no-such-list.txt')], /--file: cannot read .*: ENOENT/],
    [['status', '--file', scratch], /--file: cannot read .*: EISDIR/],
    [['no-such-command'], /unknown command/],
  ])('64: %j', async (args, message) => {
    const human = args.filter((a) => a !== '--json');
    if (human.length === args.length) {
      const r = await runCli(args, { env });
      expect(r.code).toBe(64);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(message);
      noStack(r);
    }
    // The same with --json: one JSON document on stdout, nothing on stderr.
    const withJson = args.includes('--json') ? args : ['--json', ...args];
    const j = await runCli(withJson, { env });
    expect(j.code).toBe(64);
    expect(oneJson(j)).toMatchObject({ ok: false, error: { code: 'usage', message: expect.stringMatching(message) } });
    expect(j.stderr).toBe('');
  });

  it('0: --help of status shows examples and the exit codes', async () => {
    const r = await runCli(['status', '--help'], { env });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Examples:');
    expect(r.stdout).toContain('mail2fa status --all --format ndjson');
    for (const code of ['0', '1', '64', '65', '67', '69', '70', '78'])
      expect(r.stdout).toMatch(new RegExp(`^\\s+${code}\\s`, 'm'));
    // Only the codes status can return: it never asks for a password or takes a lock.
    for (const code of ['75', '77', '130']) expect(r.stdout).not.toMatch(new RegExp(`^\\s+${code}\\s`, 'm'));
  });
});

describe('69: database unreachable', () => {
  const env = { ...isolated, MAIL2FA_KEY: Buffer.alloc(32, 7).toString('base64') };

  it.each([{ args: ['status', '--all'] }, { args: ['status', 'a@example.com'] }, { args: ['migrate'] }])(
    '$args: refused port fails fast, one clear line, no stack, nothing on stdout',
    async ({ args }) => {
      const started = Date.now();
      const r = await runCli(['--db', 'mysql://root@127.0.0.1:1/x', ...args], { env });
      expect(Date.now() - started).toBeLessThan(4000);
      expect(r.code).toBe(69);
      expect(r.stdout).toBe('');
      expect(r.stderr).toBe(
        'mail2fa: error: database unavailable at mysql://root@127.0.0.1:1/x: ECONNREFUSED\nhint: Is the server running and reachable? Check --db / MAIL2FA_DB_URL.\n',
      );
      noStack(r);
      const j = await runCli(['--json', '--db', 'mysql://root@127.0.0.1:1/x', ...args], { env });
      expect(j.code).toBe(69);
      expect(oneJson(j)).toMatchObject({
        ok: false,
        error: { code: 'db_unavailable', message: expect.stringContaining('ECONNREFUSED') },
      });
      expect(j.stderr).toBe('');
    },
  );

  it('the password of the URL is never shown', async () => {
    const r = await runCli(['--db', 'mysql://root:s3cret-pw@127.0.0.1:1/x', 'status', '--all'], { env });
    expect(r.code).toBe(69);
    expect(r.stderr).not.toContain('s3cret-pw');
    expect(r.stderr).toContain('mysql://root:****@127.0.0.1:1/x');
  });

  it('a host that does not answer: the connect timeout from the config applies', async () => {
    // 10.255.255.1 drops packets here (a silent host): without connectTimeout this would hang for long.
    const conf = join(scratch, 'timeout.yaml');
    writeFileSync(conf, 'db:\n  connectTimeoutMs: 1000\n');
    const started = Date.now();
    const r = await runCli(['--config', conf, '--db', 'mysql://root@10.255.255.1:3306/x', 'status', '--all'], { env });
    expect(Date.now() - started).toBeLessThan(5000);
    expect(r.code).toBe(69);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(
      /^mail2fa: error: database unavailable at mysql:\/\/root@10\.255\.255\.1:3306\/x: (ETIMEDOUT|EHOSTUNREACH|ENETUNREACH|ECONNREFUSED|timeout)\n/,
    );
    noStack(r);
  });
});

describe('78: configuration', () => {
  const env = { ...isolated, MAIL2FA_KEY: Buffer.alloc(32, 7).toString('base64') };
  const bad = join(scratch, 'several.yaml');
  writeFileSync(bad, 'issuer: ""\naccounts:\n  preset: roundcube\nsms:\n  transport: pigeon\nsurprise: 1\n');

  it('a SQLite --db path that does not exist: 78, and neither the file nor its directory is created', async () => {
    const dir = join(scratch, 'no-such-dir');
    const file = join(dir, 'mail2fa.sqlite');
    for (const args of [['status', '--all'], ['verify', 'jane@example.com', '--code', '123456'], ['audit']]) {
      const r = await runCli(['--db', `sqlite:${file}`, ...args], { env });
      expect(r.code).toBe(78);
      expect(r.stderr).toMatch(
        /^mail2fa: error: mail2fa's tables do not exist in sqlite:.*\(no such file\)\nhint: Run `mail2fa migrate`/,
      );
      expect(existsSync(dir)).toBe(false);
    }
    const migrated = await runCli(['--db', `sqlite:${file}`, 'migrate'], { env });
    expect(migrated.code).toBe(0);
    expect(existsSync(file)).toBe(true);
  });

  it.each([{ args: ['status', '--all'] }, { args: ['migrate'] }])(
    '$args: a config file with several errors reports all of them at once',
    async ({ args }) => {
      const r = await runCli(['--config', bad, ...args], { env });
      expect(r.code).toBe(78);
      expect(r.stdout).toBe('');
      const lines = r.stderr.trimEnd().split('\n');
      expect(lines[0]).toBe('mail2fa: error: invalid configuration (4 problems):');
      const problems = lines.slice(1, 5).join('\n');
      for (const key of ['issuer', 'accounts.preset', 'sms.transport', 'surprise']) expect(problems).toContain(key);
      expect(lines[5]).toMatch(/^hint: /);
      noStack(r);
      const j = await runCli(['--json', '--config', bad, ...args], { env });
      expect(j.code).toBe(78);
      const doc = oneJson(j);
      expect(doc).toMatchObject({ ok: false, error: { code: 'config_invalid' } });
      expect(doc.error.message.split('\n')).toHaveLength(5);
    },
  );

  it('MAIL2FA_CONFIG pointing at a missing file', async () => {
    const r = await runCli(['status', '--all'], { env: { ...env, MAIL2FA_CONFIG: join(scratch, 'missing.yaml') } });
    expect(r.code).toBe(78);
    expect(r.stderr).toContain('cannot read config file');
  });
});

describeEachDb('78: schema missing or out of date (non-embedded database); migrate fixes it', (kind) => {
  let tdb: TestDb;
  let env: Record<string, string | undefined>;
  beforeAll(async () => {
    tdb = await createTestDb(kind);
    env = { ...isolated, ...testEnv(tdb) };
  });
  afterAll(async () => {
    await tdb?.drop();
  });

  it('no tables yet: status refuses with a hint to run migrate; migrate creates them; status then works', async () => {
    const r = await runCli(['status', '--all'], { env });
    expect(r.code).toBe(78);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/^mail2fa: error: mail2fa's tables do not exist in .*\nhint: Run `mail2fa migrate`/);
    const j = await runCli(['--json', 'status', '--all'], { env });
    expect(oneJson(j)).toMatchObject({
      ok: false,
      error: { code: 'schema_outdated', hint: expect.stringContaining('mail2fa migrate') },
    });

    const m = await runCli(['--json', 'migrate', '--with-mailbox-table'], { env });
    expect(m.code).toBe(0);
    expect(oneJson(m)).toMatchObject({
      ok: true,
      applied: ['0001_initial', '0002_status_summary'],
      schemaVersion: LATEST_MIGRATION,
    });
    const again = await runCli(['migrate'], { env });
    expect(again.code).toBe(0);
    expect(again.stdout).toBe(`schema already up to date (${LATEST_MIGRATION})\n`);

    const s = await runCli(['status', '--all'], { env });
    expect(s.code).toBe(0);
    expect(s.stdout).toContain('(no accounts)');
  });

  it('an older schema: refused with the version it found', async () => {
    const ctx = await testContext(tdb);
    const knex = (await ctx.db()).knex;
    try {
      // The newest recorded migration is the schema's version.
      await knex(ctx.tables.migrations).where({ name: LATEST_MIGRATION }).update({ name: '0000_older' });
      const r = await runCli(['status', '--all'], { env });
      expect(r.code).toBe(78);
      expect(r.stderr).toContain('the database schema is out of date (at 0000_older');
      expect(r.stderr).toContain('hint: Run `mail2fa migrate`');
      // A schema newer than this mail2fa: migrate says so instead of failing with a stack (78, not 70).
      await knex(ctx.tables.migrations).where({ name: '0000_older' }).update({ name: '9999_future' });
      const m = await runCli(['migrate'], { env });
      expect(m.code).toBe(78);
      expect(m.stderr).toMatch(
        /^mail2fa: error: the database .* has migrations this version of mail2fa does not know \(9999_future\)/,
      );
      noStack(m);
    } finally {
      await knex(ctx.tables.migrations)
        .whereIn('name', ['0000_older', '9999_future'])
        .update({ name: LATEST_MIGRATION });
      await ctx.close();
    }
    expect((await runCli(['status', '--all'], { env })).code).toBe(0);
  });

  it('75: migrate while another migration holds the lock; 0 once it is released', async () => {
    const ctx = await testContext(tdb);
    const knex = (await ctx.db()).knex;
    // An up-to-date schema is checked by reading only; a schema that is behind waits for the lock, then 75.
    expect((await runCli(['migrate'], { env })).code).toBe(0);
    const recorded = (await knex(ctx.tables.migrations).select('*')) as Record<string, unknown>[];
    try {
      await knex(ctx.tables.migrations).delete();
      await knex(ctx.tables.migrationsLock).update({ is_locked: 1 });
      const busyEnv = { ...env, MAIL2FA_MIGRATE_WAIT_MS: '300' };
      const r = await runCli(['migrate'], { env: busyEnv });
      expect(r.code).toBe(75);
      expect(r.stderr).toMatch(
        /^mail2fa: error: another migration holds the lock on .*\nhint: Retry when it has finished/,
      );
      const j = await runCli(['--json', 'migrate'], { env: busyEnv });
      expect(oneJson(j)).toMatchObject({ ok: false, error: { code: 'migration_locked' } });
    } finally {
      if ((await knex(ctx.tables.migrations).count({ n: '*' }).first())?.n == 0)
        await knex(ctx.tables.migrations).insert(recorded);
      await knex(ctx.tables.migrationsLock).update({ is_locked: 0 });
      await ctx.close();
    }
    expect((await runCli(['migrate'], { env })).code).toBe(0);
  });
});

describeEachDb('65: one address alone that matches several mailbox rows', (kind) => {
  let tdb: TestDb;
  let ctx: Context;
  let env: Record<string, string | undefined>;
  beforeAll(async () => {
    tdb = await createTestDb(kind);
    const config = postfixAdminConfig(tdb.dir);
    ctx = await testContext(tdb, { configPath: config });
    const knex = (await ctx.db()).knex;
    await createPostfixAdminMailbox(knex, kind, 'mailbox', false);
    await insertPostfixAdminMailbox(knex, 'mailbox', 'twin@example.com');
    await insertPostfixAdminMailbox(knex, 'mailbox', 'twin@example.com');
    env = { ...isolated, ...testEnv(tdb), MAIL2FA_CONFIG: config };
  });
  afterAll(async () => {
    await ctx?.close();
    await tdb?.drop();
  });

  it('is refused, not guessed; in a list it is an "ambiguous" row', async () => {
    const r = await runCli(['status', 'twin@example.com'], { env });
    expect(r.code).toBe(65);
    expect(r.stderr).toMatch(
      /^mail2fa: error: 2 mailbox rows have this address: twin@example\.com; refusing to guess\nhint: Fix the duplicate rows in mailbox/,
    );
    const j = await runCli(['--json', 'status', 'twin@example.com'], { env });
    expect(oneJson(j)).toMatchObject({ ok: false, error: { code: 'ambiguous_account' } });
    const list = await runCli(['status', '--format', 'ndjson', 'twin@example.com', 'nobody@example.com'], { env });
    expect(list.code).toBe(0);
    expect(
      list.stdout
        .split('\n')
        .filter(Boolean)
        .map((l) => JSON.parse(l).state),
    ).toEqual(['ambiguous', 'unknown']);
  });
});
