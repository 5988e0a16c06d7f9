/**
 * mail2fa on a real 3-node MariaDB Galera cluster (harness: test/helpers/galera.ts). Agents and sign-ins
 * run as real processes of the built binary (run `npm run build` first), each against its own node.
 *
 * Races really overlap: before the processes start, a separate session on each node holds the account's state
 * row (SELECT … FOR UPDATE); the test waits until every process waits behind that lock (information_schema
 * INNODB_TRX, state LOCK WAIT), then releases every node at once.
 *
 * Exit codes allowed in a race: the logic's own (0, 1, 75 locked/changed) and 75 "busy, retry" for a conflict
 * that outlasted the retries; never 69 or 70.
 */
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { Connection } from 'mysql2/promise';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import type { Context } from '../../src/context.js';
import { openMail2fa } from '../../src/index.js';
import { Vault } from '../../src/core/vault.js';
import { generateTotpSecret } from '../../src/totp/totp.js';
import { totpCode } from '../../src/totp/totp.js';
import { runCli, type CliResult } from '../helpers/cli.js';
import { addMailbox, testContext, testEnv, TEST_KEY } from '../helpers/context.js';
import type { TestDb } from '../helpers/db.js';
import { galeraSkipped, startGaleraCluster, type GaleraCluster } from '../helpers/galera.js';
import { PASSWORD, enrolTotp } from '../helpers/seed-2fa.js';

vi.setConfig({ testTimeout: 120_000, hookTimeout: 180_000 });

/**
 * Sessions waiting to lock an account's state row (its INSERT … ON DUPLICATE KEY UPDATE / INSERT IGNORE is
 * running): counted from PROCESSLIST, since on a Galera node such a waiter is not always listed in INNODB_TRX.
 */
const WAITING =
  "SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE COMMAND = 'Query' AND ID <> CONNECTION_ID() AND LOWER(INFO) LIKE 'insert%account_state%'";

(galeraSkipped ? describe.skip : describe)('Galera: a 3-node cluster', () => {
  let cluster: GaleraCluster;
  let database: string;
  let tdb: TestDb;
  let ctx: Context;

  beforeAll(async () => {
    cluster = await startGaleraCluster();
    database = await cluster.createDatabase();
    const dir = mkdtempSync(join(tmpdir(), 'mail2fa-galera-test-'));
    tdb = {
      kind: 'mariadb',
      url: cluster.nodes[0]!.url(database),
      dir,
      drop: async () => rmSync(dir, { recursive: true, force: true }),
    };
    ctx = await testContext(tdb);
  });
  afterAll(async () => {
    await ctx?.close();
    await tdb?.drop();
    await cluster?.stop();
  });

  const url = (node: number, db = database) => cluster.nodes[node]!.url(db);
  const env = (node: number, extra: Record<string, string | undefined> = {}) => ({
    ...testEnv(tdb),
    MAIL2FA_DB_URL: url(node),
    ...extra,
  });
  const cli = (node: number, args: string[], o: { input?: string; env?: Record<string, string | undefined> } = {}) =>
    runCli(args, { env: env(node, o.env), input: o.input, timeoutMs: 60_000 });
  const knex = async () => (await ctx.db()).knex;
  const noBugs = (rs: CliResult[]) => {
    for (const r of rs) {
      expect([0, 1, 75], `exit ${r.code}: ${r.stderr}`).toContain(r.code);
      expect(r.stderr).not.toMatch(/internal error|at .*\.js:\d+/);
    }
  };

  /** Runs processes that all start by locking `account`'s state row; they are released only once all wait. */
  async function overlapped(
    account: string,
    runs: Array<{ node: number; run: () => Promise<CliResult> }>,
  ): Promise<CliResult[]> {
    const t = ctx.tables;
    await (
      await knex()
    ).raw(`INSERT IGNORE INTO \`${t.accountState}\` (account, failed_attempts) VALUES (?, 0)`, [account]);
    const nodes = [...new Set(runs.map((r) => r.node))];
    const blockers = new Map<number, Connection>();
    for (const n of nodes) {
      const c = await cluster.connect(cluster.nodes[n]!, database);
      await c.query('SET SESSION wsrep_sync_wait = 1');
      await c.query('BEGIN');
      const [rows] = await c.query(`SELECT account FROM \`${t.accountState}\` WHERE account = ? FOR UPDATE`, [account]);
      expect(rows).toHaveLength(1);
      blockers.set(n, c);
    }
    const finished: CliResult[] = [];
    const results = runs.map((r) => r.run().then((res) => (finished.push(res), res)));
    try {
      const deadline = Date.now() + 30_000;
      for (const n of nodes) {
        const expected = runs.filter((r) => r.node === n).length;
        for (;;) {
          if (finished.length)
            throw new Error(
              `a process ended before the lock was released: exit ${finished[0]!.code}: ${finished[0]!.stderr}`,
            );
          const [rows] = await blockers.get(n)!.query(WAITING);
          if (Number((rows as { n: number }[])[0]!.n) >= expected) break;
          if (Date.now() > deadline) {
            // Very rarely a process is not seen in LOCK WAIT on a loaded machine; release anyway (the race still
            // overlaps for the others) rather than fail the run on the harness.
            process.stderr.write(`note: node ${n + 1}: not every process was seen waiting for the lock; releasing\n`);
            break;
          }
          await new Promise((r) => setTimeout(r, 50));
        }
      }
    } finally {
      await Promise.all([...blockers.values()].map((c) => c.query('ROLLBACK').then(() => c.end())));
    }
    return Promise.all(results);
  }

  it('replay across nodes: one TOTP code, six sign-ins on three nodes at once → accepted exactly once', async () => {
    const { email, secret } = await enrolTotp(ctx, 'replay@example.com');
    const code = totpCode(secret, Date.now());
    const results = await overlapped(
      email,
      [0, 0, 1, 1, 2, 2].map((node) => ({ node, run: () => cli(node, ['verify', email, '--code', code]) })),
    );
    noBugs(results);
    expect(results.filter((r) => r.code === 0)).toHaveLength(1);
    const accepted = await (
      await knex()
    )(ctx.tables.audit)
      .where({ account: email, action: 'verify', outcome: 'ok' })
      .count({ n: '*' })
      .first();
    expect(Number(accepted!.n)).toBe(1);
  });

  it('two agents recover one account on two nodes at once → one recovery, the other sees it or is told to look again', async () => {
    const { email } = await enrolTotp(ctx, 'recover2@example.com');
    const results = await overlapped(
      email,
      [0, 1].map((node) => ({
        node,
        run: () => cli(node, ['--yes', '--json', '--actor', `agent${node}`, 'recover', email, '--ticket', `T-${node}`]),
      })),
    );
    noBugs(results);
    expect(results.map((r) => r.code)).not.toContain(1);
    const k = await knex();
    const recovered = (await k(ctx.tables.audit)
      .where({ account: email, action: 'recover', outcome: 'ok' })
      .select('actor')) as { actor: string }[];
    expect(recovered).toHaveLength(1);
    expect(await k(ctx.tables.factor).where({ account: email }).first()).toBeUndefined();
    // The other agent either saw the recovery done (nothing to recover, 0) or was told it changed (75).
    expect(results.filter((r) => r.code === 0).length).toBeGreaterThanOrEqual(1);
  });

  it('lockout burst across nodes: ten wrong codes at once on three nodes → exactly five counted, one lock', async () => {
    const { email } = await enrolTotp(ctx, 'burst@example.com');
    const results = await overlapped(
      email,
      [0, 0, 0, 0, 1, 1, 1, 2, 2, 2].map((node) => ({
        node,
        run: () => cli(node, ['verify', email, '--code', '000000']),
      })),
    );
    noBugs(results);
    expect(results.filter((r) => r.code === 0)).toHaveLength(0);
    const k = await knex();
    const state = (await k(ctx.tables.accountState).where({ account: email }).first()) as {
      failed_attempts: number;
      locked_until: number | null;
    };
    // Every wrong code reported as wrong (1) was counted, none twice, none beyond the fifth; a process whose
    // conflict outlasted its retries said "busy, retry" (75) and counted nothing.
    const counted = results.filter((r) => r.code === 1).length;
    expect(Number(state.failed_attempts)).toBe(counted);
    expect(counted).toBeLessThanOrEqual(5);
    expect(counted).toBeGreaterThanOrEqual(1);
    expect(state.locked_until !== null).toBe(counted === 5);
    expect(
      await k(ctx.tables.audit).where({ account: email, action: 'lockout' }).count({ n: '*' }).first(),
    ).toMatchObject({ n: counted === 5 ? 1 : 0 });
  });

  it('first use of the code-hash key on two nodes at once: every recovery code printed works (on the other node)', async () => {
    const a = await enrolTotp(ctx, 'keyrace-a@example.com');
    const b = await enrolTotp(ctx, 'keyrace-b@example.com');
    // A database migrated before the key existed (or by a mail2fa that creates it on first use): no key yet.
    const k = await knex();
    await k(ctx.tables.codeKey).delete();
    await k(ctx.tables.recoveryCode).whereIn('account', [a.email, b.email]).delete();
    const now = Date.now();
    const [ra, rb] = await Promise.all([
      overlapped(a.email, [
        {
          node: 0,
          run: () =>
            cli(0, ['--json', 'codes', 'regenerate', a.email, '--password-stdin', '--code', totpCode(a.secret, now)], {
              input: PASSWORD,
            }),
        },
      ]),
      overlapped(b.email, [
        {
          node: 1,
          run: () =>
            cli(1, ['--json', 'codes', 'regenerate', b.email, '--password-stdin', '--code', totpCode(b.secret, now)], {
              input: PASSWORD,
            }),
        },
      ]),
    ]);
    for (const [r] of [ra!, rb!]) expect(r!.code, r!.stderr).toBe(0);
    expect(await k(ctx.tables.codeKey).count({ n: '*' }).first()).toMatchObject({ n: 1 });
    for (const [who, r, node] of [
      [a.email, ra![0]!, 1],
      [b.email, rb![0]!, 0],
    ] as const) {
      const codes = (JSON.parse(r.stdout) as { recoveryCodes: string[] }).recoveryCodes;
      expect(codes).toHaveLength(10);
      const lib = await openMail2fa({ db: url(node), env: { MAIL2FA_KEY: TEST_KEY } });
      try {
        for (const c of codes) expect((await lib.verifyCode(who, c)).outcome, `${who} ${c}`).toBe('accepted');
      } finally {
        await lib.close();
      }
    }
  });

  it('a sign-out on node 1 is seen at once on nodes 2 and 3 (reads wait for the cluster)', async () => {
    const { email } = await enrolTotp(ctx, 'signout@example.com');
    const libs = await Promise.all([1, 2].map((n) => openMail2fa({ db: url(n), env: { MAIL2FA_KEY: TEST_KEY } })));
    try {
      for (let round = 0; round < 3; round++) {
        const r = await cli(0, ['--yes', '--json', 'recover', email, '--ticket', `T-S${round}`, '--temporary-code']);
        expect(r.code, r.stderr).toBe(0);
        const row = (await (await knex())(ctx.tables.accountState).where({ account: email }).first()) as {
          sessions_revoked_at: number;
        };
        for (const lib of libs) {
          expect((await lib.sessionsRevokedAt(email))?.getTime()).toBe(Number(row.sessions_revoked_at));
          expect(await lib.requiresCode(email)).toBe(true);
        }
      }
    } finally {
      await Promise.all(libs.map((l) => l.close()));
    }
  });

  it('concurrent migrate of a fresh database on all three nodes: all succeed, one schema, never "table already exists"', async () => {
    const fresh = await cluster.createDatabase();
    const runs = [0, 1, 2, 0, 1, 2].map((node) =>
      runCli(['--json', 'migrate', '--with-mailbox-table'], {
        env: { ...testEnv(tdb), MAIL2FA_DB_URL: url(node, fresh) },
        timeoutMs: 60_000,
      }),
    );
    const results = await Promise.all(runs);
    for (const r of results) {
      expect([0, 75], r.stdout + r.stderr).toContain(r.code);
      expect(r.stdout + r.stderr).not.toMatch(/already exists|internal error/);
    }
    expect(results.filter((r) => r.code === 0).length).toBeGreaterThanOrEqual(1);
    const applied = results
      .filter((r) => r.code === 0)
      .map((r) => (JSON.parse(r.stdout) as { applied: string[] }).applied)
      .filter((a) => a.length > 0);
    expect(applied).toHaveLength(1);
    const status = await runCli(['status', '--all'], { env: { ...testEnv(tdb), MAIL2FA_DB_URL: url(2, fresh) } });
    expect(status.code, status.stderr).toBe(0);
    const c = await cluster.connect(cluster.nodes[0]!, fresh);
    const [lockRows] = await c.query(`SELECT COUNT(*) AS n FROM \`${ctx.tables.migrationsLock}\``);
    const [keyRows] = await c.query(`SELECT COUNT(*) AS n FROM \`${ctx.tables.codeKey}\``);
    await c.end();
    expect(Number((lockRows as { n: number }[])[0]!.n)).toBe(1);
    expect(Number((keyRows as { n: number }[])[0]!.n)).toBe(1);
  });

  it('a node outside the primary component: 69 naming the node; doctor reports wsrep_ready / wsrep_cluster_status', async () => {
    const email = 'isolated@example.com';
    await addMailbox(ctx, email);
    const healthy = await cli(0, ['--json', 'doctor']);
    expect(JSON.parse(healthy.stdout).checks).toContainEqual(
      expect.objectContaining({
        name: 'galera',
        status: 'ok',
        detail: expect.stringMatching(
          /wsrep_ready ON, wsrep_cluster_status Primary, cluster size 3.*wsrep_sync_wait=1/,
        ),
      }),
    );
    const third = cluster.nodes[2]!;
    const admin = await cluster.connect(third);
    try {
      await admin.query("SET GLOBAL wsrep_provider_options = 'gmcast.isolate=1'");
      for (let i = 0; ; i++) {
        const [rows] = await admin.query("SHOW GLOBAL STATUS LIKE 'wsrep_ready'");
        if ((rows as { Value: string }[])[0]!.Value === 'OFF') break;
        if (i > 100) throw new Error('node 3 did not leave the cluster');
        await new Promise((r) => setTimeout(r, 200));
      }
      for (const args of [
        ['status', email],
        ['verify', email, '--code', '123456'],
      ]) {
        const r = await cli(2, args);
        expect(r.code, r.stderr).toBe(69);
        expect(r.stderr).toContain(`127.0.0.1:${third.port}`);
        expect(r.stderr).toMatch(/primary component/);
        expect(r.stderr).not.toMatch(/internal error|recover/);
      }
      const d = await cli(2, ['--json', 'doctor']);
      expect(d.code).toBe(69);
      expect(JSON.parse(d.stdout).checks).toContainEqual(
        expect.objectContaining({
          name: 'galera',
          status: 'fail',
          detail: expect.stringMatching(/wsrep_ready OFF, wsrep_cluster_status non-Primary/),
        }),
      );
      const survivor = await cli(0, ['status', email]);
      expect(survivor.code, survivor.stderr).toBe(0);
    } finally {
      await admin.query("SET GLOBAL wsrep_provider_options = 'gmcast.isolate=0'");
      await admin.end();
      await cluster.waitForSize(3);
    }
  });

  it('keys rotate on node 1 while sign-ins run on nodes 2 and 3: rotation finishes, every sign-in works throughout', async () => {
    // A database of its own: the rest of the suite keeps using the test key.
    const rotDb = await cluster.createDatabase();
    const rotDir = mkdtempSync(join(tmpdir(), 'mail2fa-galera-rot-'));
    const rctx = await testContext({ kind: 'mariadb', url: url(0, rotDb), dir: rotDir, drop: async () => {} });
    const t = rctx.tables;
    const keyFile = join(rotDir, 'master.key');
    writeFileSync(keyFile, `${TEST_KEY}\n`, { mode: 0o600 });
    const fileEnv = { MAIL2FA_KEY: undefined, MAIL2FA_KEY_FILE: keyFile };
    const on = (node: number) => ({ ...fileEnv, MAIL2FA_DB_URL: url(node, rotDb) });
    const newFile = join(rotDir, 'next.key');
    expect((await cli(0, ['keys', 'generate', newFile], { env: on(0) })).code).toBe(0);
    // 600 TOTP accounts sealed under the current key: several batches of re-encryption.
    const vault = new Vault(rctx.masterKey(), t, rctx.now);
    const secrets = new Map<string, string>();
    const k = (await rctx.db()).knex;
    const rows = [];
    for (let i = 0; i < 600; i++) {
      const email = `rot${String(i).padStart(3, '0')}@example.com`;
      const secret = generateTotpSecret();
      secrets.set(email, secret);
      rows.push({
        account: email,
        method: 'totp',
        secret_ct: vault.seal(t.factor, 'secret_ct', email, secret),
        phone_ct: null,
        phone_masked: null,
        key_id: rctx.masterKey().id,
        enrolled_at: Date.now(),
        last_used_at: null,
        last_totp_step: null,
        version: 0,
      });
      await k(rctx.mapping.table).insert({
        [rctx.mapping.email]: email,
        [rctx.mapping.password]: 'x',
        [rctx.mapping.active]: true,
        [rctx.mapping.domain]: 'example.com',
      });
    }
    for (let i = 0; i < rows.length; i += 200) await k(t.factor).insert(rows.slice(i, i + 200));
    // Long-running sign-in services on nodes 2 and 3, opened before the rotation: they hold only the old key.
    const libs = await Promise.all([1, 2].map((n) => openMail2fa({ db: url(n, rotDb), keyFile })));
    const accounts = [...secrets.keys()];
    const outcomes: string[] = [];
    let rotating = true;
    const signIns = libs.map(async (lib, li) => {
      for (let i = li; rotating || i < li + 40; i += 2) {
        const email = accounts[i % accounts.length]!;
        const r = await lib.verifyCode(email, totpCode(secrets.get(email)!, Date.now()));
        outcomes.push(r.ok ? 'accepted' : `${r.outcome}: ${'message' in r ? r.message : ''}`);
        if (i > 560) break;
      }
    });
    try {
      const rotate = await cli(0, ['--json', 'keys', 'rotate', '--new-key-file', newFile], { env: on(0) });
      rotating = false;
      await Promise.all(signIns);
      expect(rotate.code, rotate.stdout + rotate.stderr).toBe(0);
      const report = JSON.parse(rotate.stdout) as { reencrypted: number; keyFile: string; previousKeyFile: string };
      expect(report.reencrypted).toBeGreaterThanOrEqual(600);
      expect(report).toMatchObject({ keyFile, previousKeyFile: `${keyFile}.old` });
      expect(readFileSync(`${keyFile}.old`, 'utf8').trim()).toBe(TEST_KEY);
      expect(readFileSync(keyFile, 'utf8')).toBe(readFileSync(newFile, 'utf8'));
      expect(outcomes.length).toBeGreaterThan(20);
      expect(outcomes.filter((o) => o !== 'accepted')).toEqual([]);
      // A CLI sign-in on node 3 after the switch, and the check: nothing left under the old key.
      const email = accounts[599]!;
      const after = await cli(2, ['verify', email, '--code', totpCode(secrets.get(email)!, Date.now() + 30_000)], {
        env: on(2),
      });
      expect(after.code, after.stderr).toBe(0);
      const check = await cli(1, ['keys', 'check'], { env: { ...on(1), MAIL2FA_KEY_FILE: newFile } });
      expect(check.code, check.stdout).toBe(0);
      expect(
        await k(t.factor).whereNot('key_id', JSON.parse(rotate.stdout).toKeyId).count({ n: '*' }).first(),
      ).toMatchObject({ n: 0 });
    } finally {
      rotating = false;
      await Promise.all(libs.map((l) => l.close()));
      await rctx.close();
      rmSync(rotDir, { recursive: true, force: true });
    }
  });

  it('SIGKILL of a node mid-command: a clean 69 for its client, nothing half-done; the survivors keep working', async () => {
    const { email, secret } = await enrolTotp(ctx, 'sigkill@example.com');
    const third = cluster.nodes[2]!;
    const t = ctx.tables;
    await (
      await knex()
    ).raw(`INSERT IGNORE INTO \`${t.accountState}\` (account, failed_attempts) VALUES (?, 0)`, [email]);
    const blocker = await cluster.connect(third, database);
    await blocker.query('SET SESSION wsrep_sync_wait = 1');
    await blocker.query('BEGIN');
    await blocker.query(`SELECT account FROM \`${t.accountState}\` WHERE account = ? FOR UPDATE`, [email]);
    let ended: CliResult | undefined;
    const pending = cli(2, ['verify', email, '--code', '000000']).then((r) => (ended = r));
    for (let i = 0; ; i++) {
      if (ended) throw new Error(`verify ended before the node was killed: exit ${ended.code}: ${ended.stderr}`);
      const [rows] = await blocker.query(WAITING);
      if (Number((rows as { n: number }[])[0]!.n) >= 1) break;
      if (i > 400) break; // not seen waiting (a loaded machine): kill the node anyway, the client must still get 69
      await new Promise((r) => setTimeout(r, 50));
    }
    blocker.on('error', () => {});
    await cluster.kill(third);
    const r = await pending;
    expect(r.code, r.stderr).toBe(69);
    expect(r.stderr).toMatch(/^mail2fa: error: .*unavailable/m);
    expect(r.stderr).not.toMatch(/internal error|at .*\.js:\d+/);
    await cluster.waitForSize(2);
    const k = await knex();
    expect(await k(t.accountState).where({ account: email }).first()).toMatchObject({ failed_attempts: 0 });
    const ok = await cli(1, ['verify', email, '--code', totpCode(secret, Date.now())]);
    expect(ok.code, ok.stderr).toBe(0);
    const wrong = await cli(0, ['verify', email, '--code', '000000']);
    expect(wrong.code).toBe(1);
  });
});
