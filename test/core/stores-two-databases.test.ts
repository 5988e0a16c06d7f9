/**
 * A two-store site: mail2fa's own store in one database (SQLite or MariaDB) and PostfixAdmin's
 * mailbox.totp_secret in ANOTHER MariaDB database, reached as its own database user. One `recover` resets both;
 * when the second database goes away half-way, the agent gets an exact partial report and exit 69, and running
 * the same command again completes it. The databases cannot share a transaction: mail2fa's store comes first.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { Context } from '../../src/context.js';
import { doctor } from '../../src/core/doctor.js';
import { recoverAccount, type RecoveryDone } from '../../src/core/recover.js';
import { statusBatches, type StatusRow } from '../../src/core/status.js';
import { verifySignInCode } from '../../src/core/sign-in.js';
import { totpCode } from '../../src/totp/totp.js';
import { customerReply } from '../../src/ui/customer-reply-render.js';
import { base32, postfixadminMailboxDdl } from '../fixtures/postfixadmin.js';
import { runCli } from '../helpers/cli.js';
import { addMailbox, testClock, testContext, testEnv } from '../helpers/context.js';
import { createTestDb, describeEachDb, MARIADB_ADMIN_URL, MARIADB_SUITES, type TestDb } from '../helpers/db.js';
import { mariadbAdminConnection } from '../helpers/db-servers.js';
import { storeTotpFactor } from '../helpers/seed-2fa.js';

// The PostfixAdmin store always lives in a MariaDB database of its own (the SQLite run too): skipped, with db.ts's
// notice, where MariaDB is absent and not required.
const suite = MARIADB_SUITES ? describeEachDb : (title: string) => describe.skip(title, () => {});

const admin = mariadbAdminConnection;

suite('two stores in two databases: mail2fa + PostfixAdmin elsewhere', (kind) => {
  let own: TestDb;
  let pfa: TestDb;
  let ctx: Context;
  let configPath: string;
  let env: Record<string, string>;
  const clock = testClock();
  const user = `m2f_${randomBytes(4).toString('hex')}`;
  const password = randomBytes(9).toString('hex');
  let pfaDb: string;
  const pfaSecret = base32(randomBytes(20));
  const ownSecret = base32(randomBytes(20));

  /** The PostfixAdmin database's user exists (again), with rights on its database only. */
  async function grant(): Promise<void> {
    const c = await admin();
    try {
      await c.query(`CREATE USER IF NOT EXISTS '${user}'@'%' IDENTIFIED BY '${password}'`);
      await c.query(`GRANT SELECT, UPDATE ON \`${pfaDb}\`.* TO '${user}'@'%'`);
    } finally {
      await c.end();
    }
  }

  /** The second database becomes unreachable for mail2fa: its user is dropped and its open connections killed. */
  async function cutOff(): Promise<void> {
    const c = await admin();
    try {
      await c.query(`DROP USER IF EXISTS '${user}'@'%'`);
      const [rows] = (await c.query('SELECT ID FROM information_schema.PROCESSLIST WHERE USER = ?', [
        user,
      ])) as unknown as [{ ID: number }[]];
      for (const r of rows) await c.query('KILL ?', [r.ID]).catch(() => {});
    } finally {
      await c.end();
    }
  }

  async function pfaSecretNow(): Promise<string | null | undefined> {
    const c = await admin();
    try {
      const [rows] = (await c.query(`SELECT username, totp_secret FROM \`${pfaDb}\`.mailbox`)) as unknown as [
        { username: string; totp_secret: string | null }[],
      ];
      return rows.find((r) => r.username === 'jane@example.com')?.totp_secret;
    } finally {
      await c.end();
    }
  }

  beforeAll(async () => {
    own = await createTestDb(kind);
    pfa = await createTestDb('mariadb');
    pfaDb = new URL(pfa.url).pathname.slice(1);
    await grant();
    const c = await admin();
    try {
      await c.query(`USE \`${pfaDb}\``);
      for (const sql of postfixadminMailboxDdl('mysql')) await c.query(sql);
    } finally {
      await c.end();
    }
    const storeUrl = `mysql://${user}:${password}@127.0.0.1:${new URL(MARIADB_ADMIN_URL).port || 3306}/${pfaDb}`;
    configPath = join(own.dir, 'mail2fa.json');
    writeFileSync(
      configPath,
      JSON.stringify({
        stores: [{ name: 'pfa', kind: 'postfixadmin', db: { url: storeUrl, connectTimeoutMs: 2000 } }],
      }),
    );
    ctx = await testContext(own, { clock, configPath });
    await addMailbox(ctx, 'jane@example.com', 'pw');
    env = testEnv(own);
  });
  afterAll(async () => {
    await ctx?.close();
    await cutOff().catch(() => {});
    await own?.drop();
    await pfa?.drop();
  });

  beforeEach(async () => {
    await grant();
    const c = await admin();
    try {
      await c.query(`DELETE FROM \`${pfaDb}\`.mailbox`);
      await c.query(
        `INSERT INTO \`${pfaDb}\`.mailbox (username, password, name, maildir, quota, local_part, domain, active, totp_secret) VALUES ('jane@example.com', '{PLAIN}x', '', '', 0, 'jane', 'example.com', 1, ?)`,
        [pfaSecret],
      );
    } finally {
      await c.end();
    }
    const db = await ctx.db();
    const t = ctx.tables;
    for (const table of [t.factor, t.recoveryCode, t.enrolment, t.challenge, t.accountState, t.audit])
      await db.knex(table).delete();
    await storeTotpFactor(ctx, 'jane@example.com', ownSecret);
    clock.advance(60_000);
  });

  async function janeStatus(): Promise<StatusRow> {
    const db = await ctx.db();
    for await (const batch of statusBatches(
      { db, tables: ctx.tables, mapping: ctx.mapping, now: ctx.now, stores: await ctx.stores() },
      { kind: 'emails', emails: ['jane@example.com'] },
    ))
      return batch[0]!;
    throw new Error('no row');
  }

  it('status names both stores; verify accepts either app, each code once across both', async () => {
    const row = await janeStatus();
    expect([row.enabled, row.enforced, row.source, row.sources]).toEqual([true, true, 'mail2fa', ['mail2fa', 'pfa']]);
    expect(
      await verifySignInCode(ctx, { email: 'jane@example.com', code: totpCode(pfaSecret, clock.now) }),
    ).toMatchObject({ outcome: 'accepted' });
    expect(
      await verifySignInCode(ctx, { email: 'jane@example.com', code: totpCode(pfaSecret, clock.now) }),
    ).toMatchObject({ outcome: 'rejected', reason: 'wrong_code' });
    clock.advance(30_000);
    expect(
      await verifySignInCode(ctx, { email: 'jane@example.com', code: totpCode(ownSecret, clock.now) }),
    ).toMatchObject({ outcome: 'accepted' });
  });

  it('one recover resets the account in both databases, one audit row naming each store and its outcome', async () => {
    const r = (await recoverAccount(
      ctx,
      { email: 'jane@example.com', ticket: 'T-2001' },
      async () => {},
    )) as RecoveryDone;
    expect(r).toMatchObject({ outcome: 'recovered', complete: true, exitCode: 0, removed: { method: 'totp' } });
    expect(r.stores.map((c) => [c.store, c.outcome])).toEqual([
      ['mail2fa', 'changed'],
      ['pfa', 'changed'],
    ]);
    expect(customerReply(r)).toContain('turned off two-factor authentication');
    expect(await pfaSecretNow()).toBeNull();
    expect(await janeStatus()).toMatchObject({ enabled: false, sources: [] });
    const db = await ctx.db();
    const rows = (await db
      .knex(ctx.tables.audit)
      .where({ action: 'recover' })
      .select('outcome', 'ticket', 'detail')) as { outcome: string; ticket: string; detail: string }[];
    expect(rows).toHaveLength(1);
    expect(rows[0]!.outcome).toBe('ok');
    expect(JSON.parse(rows[0]!.detail)).toMatchObject({ 'store:mail2fa': 'changed', 'store:pfa': 'changed' });
  });

  it('the second database goes away half-way: exact partial report, exit 69; the same command again completes it', async () => {
    // The agent looked (both stores read), then the PostfixAdmin database became unreachable before the change.
    const partial = (await recoverAccount(ctx, { email: 'jane@example.com', ticket: 'T-2002' }, async (summary) => {
      expect(summary.stores.map((s) => [s.store, s.status?.activated])).toEqual([['pfa', true]]);
      await cutOff();
    })) as RecoveryDone;
    expect(partial).toMatchObject({ outcome: 'recovered', complete: false, exitCode: 69 });
    expect(customerReply(partial)).toBeNull();
    expect(partial.stores.map((c) => [c.store, c.outcome, c.error?.exitCode])).toEqual([
      ['mail2fa', 'changed', undefined],
      ['pfa', 'failed', 69],
    ]);
    expect(partial.stores[1]!.error!.message).toMatch(/store "pfa" \(postfixadmin\)|database/);
    // mail2fa's own store was reset (its transaction committed); PostfixAdmin's secret is still there.
    const db = await ctx.db();
    expect(await db.knex(ctx.tables.factor).where({ account: 'jane@example.com' }).first()).toBeUndefined();
    expect(await pfaSecretNow()).toBe(pfaSecret);
    const audit = (await db
      .knex(ctx.tables.audit)
      .where({ action: 'recover' })
      .orderBy('id')
      .select('outcome', 'detail')) as { outcome: string; detail: string }[];
    expect(audit.map((a) => a.outcome)).toEqual(['failed']);
    expect(JSON.parse(audit[0]!.detail)).toMatchObject({
      'store:mail2fa': 'changed',
      'store:pfa': expect.stringMatching(/^failed: db_/),
      incomplete: expect.any(String),
    });

    // Reachable again: the very same recover finds what is left and completes it (mail2fa's part is a no-op now).
    await grant();
    const done = (await recoverAccount(ctx, { email: 'jane@example.com', ticket: 'T-2002' }, async (summary) => {
      expect([summary.method, summary.stores[0]!.status?.activated]).toEqual([null, true]);
    })) as RecoveryDone;
    expect(done).toMatchObject({ outcome: 'recovered', complete: true, exitCode: 0 });
    expect(done.stores.map((c) => [c.store, c.outcome])).toEqual([
      ['mail2fa', 'nothing'],
      ['pfa', 'changed'],
    ]);
    expect(await pfaSecretNow()).toBeNull();
    const after = (await db.knex(ctx.tables.audit).where({ action: 'recover' }).orderBy('id').select('outcome')) as {
      outcome: string;
    }[];
    expect(after.map((a) => a.outcome)).toEqual(['failed', 'ok']);
    // A third run: nothing left anywhere.
    expect((await recoverAccount(ctx, { email: 'jane@example.com', ticket: 'T-2002' }, async () => {})).outcome).toBe(
      'nothing-to-recover',
    );
  });

  it('CLI: the partial report and exit 69 (human and --json), then the completing re-run; doctor names the store', async () => {
    const cli = (args: string[]) => runCli(['--config', configPath, ...args], { env });
    const healthy = await cli(['doctor', '--json']);
    const checks = (JSON.parse(healthy.stdout) as { checks: { name: string; status: string; detail: string }[] })
      .checks;
    expect(checks.find((c) => c.name === 'store pfa')).toMatchObject({ status: 'ok' });
    expect(checks.find((c) => c.name === 'store pfa write access')).toMatchObject({ status: 'ok' });
    expect(checks.find((c) => c.name === 'postfixadmin totp')).toMatchObject({ status: 'warn' });

    await cutOff();
    const down = await cli(['doctor', '--json']);
    expect(down.code).toBe(69);
    expect(
      (JSON.parse(down.stdout) as { checks: { name: string; status: string }[] }).checks.find(
        (c) => c.name === 'store pfa',
      ),
    ).toMatchObject({ status: 'fail' });

    const human = await cli(['--yes', 'recover', 'jane@example.com', '--ticket', 'T-2003']);
    expect(human.code).toBe(69);
    expect(human.stdout).toContain('INCOMPLETE recovery of jane@example.com (ticket T-2003): 2FA was NOT reset in pfa');
    expect(human.stdout).toMatch(/store mail2fa\s+reset: removed the authenticator app/);
    expect(human.stdout).toMatch(/store pfa\s+NOT RESET: /);
    expect(human.stdout).toContain('Run the same recover command again');
    expect(human.stdout).not.toContain('Reply for the customer');
    expect(human.stdout + human.stderr).not.toContain(password);

    const json = await cli(['--yes', '--json', 'recover', 'jane@example.com', '--ticket', 'T-2003']);
    expect(json.code).toBe(69);
    const doc = JSON.parse(json.stdout);
    expect(doc).toMatchObject({ ok: false, complete: false, exitCode: 69, error: { code: 'recover_incomplete' } });
    expect(doc.stores.map((c: { store: string; outcome: string }) => [c.store, c.outcome])).toEqual([
      ['mail2fa', 'nothing'],
      ['pfa', 'failed'],
    ]);

    await grant();
    const again = await cli(['--yes', 'recover', 'jane@example.com', '--ticket', 'T-2003']);
    expect(again.code).toBe(0);
    expect(again.stdout).toContain('Recovered jane@example.com (ticket T-2003)');
    expect(again.stdout).toMatch(/store pfa\s+reset: recover: cleared mailbox\.totp_secret/);
    expect(again.stdout).toContain('Reply for the customer');
    expect(await pfaSecretNow()).toBeNull();

    const status = await cli(['status', 'jane@example.com', '--json']);
    expect(JSON.parse(status.stdout).accounts[0]).toMatchObject({ enabled: false, sources: [], stores: [] });
  });

  it('doctor in-process: the store is checked with the others', async () => {
    const report = await doctor({ configPath, dbUrl: own.url, env: { ...process.env, ...env } });
    expect(report.checks.find((c) => c.name === 'stores')).toMatchObject({
      status: 'ok',
      detail: 'mail2fa, then pfa (postfixadmin)',
    });
    expect(report.checks.find((c) => c.name === 'store pfa secrets')).toMatchObject({ status: 'warn' });
  });
});
