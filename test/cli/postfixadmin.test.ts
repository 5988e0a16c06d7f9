/**
 * PostfixAdmin's own TOTP through the built binary: `status` with the postfixadmin preset, and
 * `migrate-from postfixadmin` (dry run, refusal, confirmation, --clear-plaintext) on its real mailbox table.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Context } from '../../src/context.js';
import { runCli, ndjsonRows } from '../helpers/cli.js';
import { createTestDb, describeEachDb, type TestDb } from '../helpers/db.js';
import { dbSnapshot } from '../helpers/db-snapshot.js';
import { testContext, testEnv } from '../helpers/context.js';
import {
  base32,
  postfixadminMailboxDdl,
  postfixadminMailboxRow,
  postfixadminPlaintext,
} from '../fixtures/postfixadmin.js';

describeEachDb('PostfixAdmin TOTP (CLI)', (kind) => {
  let tdb: TestDb;
  let ctx: Context;
  let env: Record<string, string | undefined>;
  let config: string;
  const secrets: Record<string, string> = {
    'anna@example.com': base32(randomBytes(64)),
    'Bert@example.com': base32(randomBytes(20)),
    'old@example.com': base32(randomBytes(8)), // 64 bits: too short even for foreign stores (10-64 bytes are read)
  };
  const cli = (args: string[]) => runCli(['--config', config, ...args], { env });
  const plaintext = (username: string) => postfixadminPlaintext(ctx, username);
  const noSecrets = (text: string) => {
    for (const s of Object.values(secrets)) expect(text).not.toContain(s.slice(0, 16));
  };

  beforeAll(async () => {
    tdb = await createTestDb(kind);
    config = join(tdb.dir, 'mail2fa.yaml');
    writeFileSync(config, 'accounts:\n  preset: postfixadmin\n');
    ctx = await testContext(tdb, { configPath: config });
    env = testEnv(tdb);
    const db = await ctx.db();
    for (const sql of postfixadminMailboxDdl(db.dialect)) await db.knex.raw(sql);
    const row = (username: string, secret: string | null) =>
      postfixadminMailboxRow(username, { password: '$1$abcdefgh$notarealmd5crypthash', totp: secret });
    await db
      .knex('mailbox')
      .insert([...Object.entries(secrets).map(([u, s]) => row(u, s)), row('plain@example.com', null)]);
  });
  afterAll(async () => {
    await ctx?.close();
    await tdb?.drop();
  });

  it('status shows PostfixAdmin TOTP as enabled, source postfixadmin', async () => {
    const r = await cli(['status', '--all', '--format', 'ndjson']);
    expect(r.code).toBe(0);
    const rows = ndjsonRows<{ email: string; enabled: boolean; method: string | null; source: string | null }>(
      r.stdout,
    );
    const by = Object.fromEntries(rows.map((x) => [x.email, [x.enabled, x.method, x.source]]));
    expect(by).toEqual({
      'anna@example.com': [true, 'totp', 'postfixadmin'],
      'Bert@example.com': [true, 'totp', 'postfixadmin'],
      'old@example.com': [true, 'totp', 'postfixadmin'],
      'plain@example.com': [false, null, null],
    });
    const single = await cli(['status', 'bert@example.com']);
    expect(single.code).toBe(67); // exact: the mailbox is Bert@example.com
    const table = await cli(['status', 'Bert@example.com']);
    expect(table.code).toBe(0);
    expect(table.stdout).toContain('totp (postfixadmin)');
    noSecrets(r.stdout + table.stdout);
  });

  it('doctor warns about plaintext secrets', async () => {
    const r = await cli(['doctor', '--json']);
    const check = (JSON.parse(r.stdout) as { checks: { name: string; status: string; detail: string }[] }).checks.find(
      (c) => c.name === 'postfixadmin totp',
    );
    expect(check).toMatchObject({ status: 'warn' });
    expect(check!.detail).toContain('3 mailbox(es)');
  });

  it('dry run --json: one document listing every account, exit 65 because of the invalid secret, nothing changed', async () => {
    const before = await dbSnapshot(ctx);
    const r = await cli(['migrate-from', 'postfixadmin', '--dry-run', '--json']);
    expect(r.code).toBe(65);
    const doc = JSON.parse(r.stdout);
    expect(doc).toMatchObject({
      ok: false,
      dryRun: true,
      refused: true,
      found: 3,
      invalid: 1,
      error: { code: 'invalid_secrets' },
    });
    expect(doc.accounts).toContainEqual({
      email: 'old@example.com',
      active: true,
      outcome: 'invalid',
      problem: 'secret is 8 bytes; mail2fa accepts 10-64 bytes (80-512 bits)',
    });
    noSecrets(r.stdout + r.stderr);

    const human = await cli(['migrate-from', 'postfixadmin', '--dry-run', '--skip-invalid']);
    expect(human.code).toBe(0);
    expect(human.stdout).toContain('(dry run: nothing is changed)');
    expect(human.stdout).toMatch(/anna@example\.com\s+yes\s+would migrate/);
    expect(human.stdout).toMatch(/old@example\.com\s+yes\s+left as is\s+secret is 8 bytes/);
    expect(human.stdout).toContain('would migrate 2 account(s)');
    noSecrets(human.stdout + human.stderr);
    expect(await dbSnapshot(ctx)).toEqual(before);
  });

  it('--clear-plaintext without a terminal needs --yes (64); an unknown source is 64; nothing changed', async () => {
    const before = await dbSnapshot(ctx);
    const r = await cli(['migrate-from', 'postfixadmin', '--clear-plaintext', '--skip-invalid']);
    expect(r.code).toBe(64);
    expect(r.stderr).toContain('--yes');
    const other = await cli(['migrate-from', 'vpopmail']);
    expect(other.code).toBe(64);
    expect(await dbSnapshot(ctx)).toEqual(before);
  });

  it('migrates and clears the plaintext with --yes, explaining that PostfixAdmin TOTP is now off for them', async () => {
    const r = await cli(['--yes', 'migrate-from', 'postfixadmin', '--clear-plaintext', '--skip-invalid']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain(
      "migrated 2 account(s) into mail2fa's encrypted storage (one transaction); 0 skipped; 1 invalid; cleared 2 plaintext secret(s)",
    );
    expect(r.stderr).toContain("PostfixAdmin's own TOTP is off");
    expect(r.stderr).toContain('app password');
    expect(r.stderr).toContain('mail2fa codes regenerate');
    noSecrets(r.stdout + r.stderr);
    expect(await plaintext('anna@example.com')).toBeNull();
    expect(await plaintext('Bert@example.com')).toBeNull();
    expect(await plaintext('old@example.com')).toBe(secrets['old@example.com']);

    const status = await cli(['status', '--all', '--format', 'ndjson']);
    const by = Object.fromEntries(
      ndjsonRows<{ email: string; source: string | null; recoveryCodesLeft?: number }>(status.stdout).map((x) => [
        x.email,
        x.source,
      ]),
    );
    expect(by).toMatchObject({
      'anna@example.com': 'mail2fa',
      'Bert@example.com': 'mail2fa',
      'old@example.com': 'postfixadmin',
    });

    const again = await cli(['migrate-from', 'postfixadmin', '--skip-invalid', '--json']);
    expect(JSON.parse(again.stdout)).toMatchObject({ ok: true, found: 1, migrated: 0, skipped: 0, invalid: 1 });
  });

  it('status --domain streams past two batches while the store reads the same database (SQLite: its own connection)', async () => {
    // More mailboxes than two streamed batches (2,000 rows each): the store's batch is asked while the mailbox rows
    // are still being read. On SQLite both used to need the database's only connection: 60 s wait, then exit 69.
    const db = await ctx.db();
    const extra = Array.from({ length: 4500 }, (_, i) => ({
      username: `bulk${i}@example.org`,
      password: '$1$abcdefgh$notarealmd5crypthash',
      name: '',
      maildir: '',
      quota: 0,
      local_part: `bulk${i}`,
      domain: 'example.org',
      active: 1,
      totp_secret: i % 10 === 0 ? base32(randomBytes(20)) : null,
    }));
    for (let i = 0; i < extra.length; i += 100) await db.knex('mailbox').insert(extra.slice(i, i + 100));
    const r = await cli(['status', '--domain', 'example.org', '--format', 'ndjson']);
    expect(r.code).toBe(0);
    const rows = ndjsonRows<{ enabled: boolean; source: string | null }>(r.stdout);
    expect(rows).toHaveLength(4500);
    expect(rows.filter((x) => x.enabled && x.source === 'postfixadmin')).toHaveLength(450);
    await db.knex('mailbox').where('domain', 'example.org').delete();
  });

  it('--help has examples and exit codes', async () => {
    const r = await runCli(['migrate-from', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Examples:');
    expect(r.stdout).toContain('migrate-from postfixadmin --dry-run');
    expect(r.stdout).toMatch(/65 +invalid secrets/);
  });
});
