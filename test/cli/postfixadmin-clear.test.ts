/**
 * `migrate-from postfixadmin --clear-plaintext` after a migration (the documented order:
 * migrate first, clear later) clears the plaintext of accounts whose mail2fa factor holds the same secret, and
 * leaves the others; without a terminal and without --yes it is exit 64. Built binary (`npm run build` first).
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import type { Context } from '../../src/context.js';
import { runCli } from '../helpers/cli.js';
import { createTestDb, describeEachDb, type TestDb } from '../helpers/db.js';
import { dbSnapshot } from '../helpers/db-snapshot.js';
import { testContext, testEnv } from '../helpers/context.js';
import { auditRows, enrolTotp } from '../helpers/seed-2fa.js';
import { base32, postfixadminMailboxDdl, postfixadminMailboxRow } from '../fixtures/postfixadmin.js';

vi.setConfig({ testTimeout: 60_000 });

describeEachDb('migrate-from postfixadmin --clear-plaintext after a migration', (kind) => {
  let tdb: TestDb;
  let ctx: Context;
  let config: string;
  const secrets: Record<string, string> = {
    'ann@example.com': base32(randomBytes(20)),
    'ben@example.com': base32(randomBytes(20)),
    'cid@example.com': base32(randomBytes(20)),
  };
  const cli = (args: string[]) => runCli(['--config', config, ...args], { env: testEnv(tdb) });
  const plaintext = async () => {
    const db = await ctx.db();
    const rows = (await db.knex('mailbox').select('username', 'totp_secret')) as {
      username: string;
      totp_secret: string | null;
    }[];
    return Object.fromEntries(rows.map((r) => [r.username, r.totp_secret]));
  };

  beforeAll(async () => {
    tdb = await createTestDb(kind);
    config = join(tdb.dir, 'mail2fa.yaml');
    writeFileSync(config, 'accounts:\n  preset: postfixadmin\n');
    ctx = await testContext(tdb, { configPath: config });
    const db = await ctx.db();
    for (const sql of postfixadminMailboxDdl(db.dialect)) await db.knex.raw(sql);
    await db
      .knex('mailbox')
      .insert(
        Object.entries(secrets).map(([username, secret]) =>
          postfixadminMailboxRow(username, { password: '$1$abcdefgh$notarealmd5crypthash', totp: secret }),
        ),
      );
    // cid enrolled in mail2fa on their own, with another secret: their PostfixAdmin plaintext is not mail2fa's.
    await enrolTotp(ctx, 'cid@example.com', { mailbox: false });
  });
  afterAll(async () => {
    await ctx?.close();
    await tdb?.drop();
  });

  it('clears the accounts whose factor holds the same secret, leaves the other; 64 without a terminal or --yes', async () => {
    const first = await cli(['migrate-from', 'postfixadmin']);
    expect(first.code, first.stderr).toBe(0);
    expect(first.stdout).toMatch(/migrated 2 account\(s\)/);

    const before = await dbSnapshot(ctx);
    const unconfirmed = await cli(['migrate-from', 'postfixadmin', '--clear-plaintext']);
    expect(unconfirmed.code, unconfirmed.stderr).toBe(64);
    expect(unconfirmed.stderr).toContain('--yes');
    expect(await dbSnapshot(ctx)).toEqual(before);

    const dry = await cli(['--json', 'migrate-from', 'postfixadmin', '--clear-plaintext', '--dry-run']);
    expect(dry.code).toBe(0);
    expect(JSON.parse(dry.stdout)).toMatchObject({ migrated: 0, cleared: 0, alreadyMigrated: 2, skipped: 1 });
    expect(await dbSnapshot(ctx)).toEqual(before);

    const human = await cli(['--yes', 'migrate-from', 'postfixadmin', '--clear-plaintext', '--dry-run']);
    expect(human.stdout).toMatch(/would clear 2 plaintext secret\(s\)/);

    const r = await cli(['--yes', '--json', 'migrate-from', 'postfixadmin', '--clear-plaintext']);
    expect(r.code, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout) as { cleared: number; accounts: Array<{ email: string; outcome: string }> };
    expect(doc).toMatchObject({ migrated: 0, cleared: 2, alreadyMigrated: 2, skipped: 1 });
    expect(Object.fromEntries(doc.accounts.map((a) => [a.email, a.outcome]))).toEqual({
      'ann@example.com': 'clear',
      'ben@example.com': 'clear',
      'cid@example.com': 'enrolled',
    });
    expect(await plaintext()).toEqual({
      'ann@example.com': null,
      'ben@example.com': null,
      'cid@example.com': secrets['cid@example.com'],
    });
    expect((await auditRows(ctx, 'ann@example.com')).at(-1)).toMatchObject({
      action: 'migrate-from',
      outcome: 'ok',
      detail: expect.stringContaining('"plaintextCleared":true'),
    });
    for (const s of Object.values(secrets)) expect(r.stdout + r.stderr).not.toContain(s.slice(0, 12));

    const doctor = await cli(['doctor', '--json']);
    const check = (
      JSON.parse(doctor.stdout) as { checks: { name: string; status: string; detail: string }[] }
    ).checks.find((c) => c.name === 'postfixadmin totp');
    expect(check!.detail).toContain('1 mailbox(es)');
  });
});
