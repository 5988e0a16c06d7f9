/**
 * Many processes on ONE account at once (a race found while hardening): 50 built-binary processes — `verify`
 * with a wrong code and `disable` with a wrong password — started together. Every process ends as the lockout logic
 * says (1 wrong code, 77 wrong password, 75 locked — or 75 busy, retry), never 69/70 from a deadlock; the
 * persisted counter, the lock and the audit trail count exactly the attempts that were answered "wrong".
 *
 * Before the fix, MariaDB's `INSERT IGNORE` (shared lock on the existing row) followed by `SELECT … FOR UPDATE`
 * (exclusive) deadlocked pairs of processes, and exhausted retries surfaced as 69 "db_write_failed" / 70.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import type { Context } from '../../src/context.js';
import { MAX_FAILED_ATTEMPTS } from '../../src/core/lockout.js';
import { runCli, type CliResult } from '../helpers/cli.js';
import { createTestDb, describeEachDb, postgresAdminConnection, type TestDb } from '../helpers/db.js';
import { testContext, testEnv } from '../helpers/context.js';
import { accountState, auditRows, enrolTotp, twoFactorRows, wrongTotp } from '../helpers/seed-2fa.js';

vi.setConfig({ testTimeout: 180_000 });

const PROCESSES = 50;

type Outcome = 'wrong_code' | 'wrong_password' | 'locked' | 'busy' | 'other';

function classify(r: CliResult): Outcome {
  let doc: { accepted?: boolean; reason?: string; error?: { code?: string } } | undefined;
  try {
    doc = JSON.parse(r.stdout.trim().split('\n').pop() ?? '') as typeof doc;
  } catch {
    return 'other';
  }
  if (r.code === 1 && doc?.accepted === false && doc.reason === 'wrong_code') return 'wrong_code';
  if (r.code === 77 && doc?.error?.code === 'wrong_password') return 'wrong_password';
  if (r.code === 75 && doc?.error?.code === 'locked') return 'locked';
  if (r.code === 75 && doc?.error?.code === 'busy') return 'busy';
  return 'other';
}

/** A second session holding the account's state row lock (FOR UPDATE), and how many sessions wait for a lock. */
async function holdRowLock(
  tdb: TestDb,
  table: string,
  account: string,
): Promise<{ waiting(): Promise<number>; release(): Promise<void> }> {
  const dbName = decodeURIComponent(new URL(tdb.url).pathname.slice(1));
  if (tdb.kind === 'postgres') {
    const holder = await postgresAdminConnection(dbName);
    const observer = await postgresAdminConnection(dbName);
    await holder.query('BEGIN');
    await holder.query(`SELECT * FROM "${table}" WHERE account = $1 FOR UPDATE`, [account]);
    return {
      waiting: async () =>
        Number(
          (
            await observer.query(
              "SELECT count(*) AS n FROM pg_stat_activity WHERE datname = current_database() AND wait_event_type = 'Lock'",
            )
          ).rows[0].n,
        ),
      release: async () => {
        await holder.query('COMMIT');
        await holder.end();
        await observer.end();
      },
    };
  }
  const mysql = await import('mysql2/promise');
  const u = new URL(tdb.url);
  const open = () =>
    mysql.createConnection({
      host: u.hostname,
      port: Number(u.port || 3306),
      user: decodeURIComponent(u.username || 'root'),
      password: decodeURIComponent(u.password),
      database: dbName,
    });
  const holder = await open();
  const observer = await open();
  await holder.query('BEGIN');
  await holder.query(`SELECT * FROM \`${table}\` WHERE account = ? FOR UPDATE`, [account]);
  return {
    waiting: async () => {
      const [rows] = await observer.query(
        "SELECT COUNT(*) AS n FROM information_schema.INNODB_TRX t JOIN information_schema.PROCESSLIST p ON p.ID = t.trx_mysql_thread_id WHERE t.trx_state = 'LOCK WAIT' AND p.DB = ?",
        [dbName],
      );
      return Number((rows as { n: number }[])[0]!.n);
    },
    release: async () => {
      await holder.query('COMMIT');
      await holder.end();
      await observer.end();
    },
  };
}

/** PostgreSQL's count of deadlocks detected in the scratch database (null elsewhere). */
async function deadlocks(tdb: TestDb): Promise<number | null> {
  if (tdb.kind !== 'postgres') return null;
  const c = await postgresAdminConnection(decodeURIComponent(new URL(tdb.url).pathname.slice(1)));
  try {
    await new Promise((r) => setTimeout(r, 600)); // backends flush their statistics about once a second
    return Number(
      (await c.query('SELECT deadlocks FROM pg_stat_database WHERE datname = current_database()')).rows[0].deadlocks,
    );
  } finally {
    await c.end();
  }
}

describeEachDb('50 processes on one account at once (built binary)', (kind) => {
  let tdb: TestDb;
  let ctx: Context;
  let env: Record<string, string>;

  beforeAll(async () => {
    tdb = await createTestDb(kind);
    ctx = await testContext(tdb);
    // 50 processes start at once on a 2-core machine: a connection handshake can wait seconds for a CPU, which
    // is not what this test is about, so the connect timeout is generous.
    const config = join(tdb.dir, 'race.json');
    writeFileSync(config, JSON.stringify({ db: { connectTimeoutMs: 60_000 } }));
    env = testEnv(tdb, { MAIL2FA_CONFIG: config });
  });
  afterAll(async () => {
    await ctx?.close();
    await tdb?.drop();
  });

  it(`${PROCESSES} × verify (wrong code) and disable (wrong password): only 1/75/77, the lockout counts exactly`, async () => {
    const a = await enrolTotp(ctx, 'race@example.com');
    const wrong = wrongTotp(a.secret, Date.now());
    const deadlocksBefore = await deadlocks(tdb);
    const holder = kind === 'sqlite' ? null : await holdRowLock(tdb, ctx.tables.accountState, a.email);
    let queued = 0;
    const runs = Array.from({ length: PROCESSES }, (_, i) =>
      i % 2 === 0
        ? runCli(['--json', 'verify', a.email, '--code', wrong], { env, timeoutMs: 150_000 })
        : runCli(['--json', 'disable', a.email, '--password-stdin', '--code', wrong], {
            env,
            input: 'not the password\n',
            timeoutMs: 150_000,
          }),
    );
    // On a server, hold the account's row lock from another session until the processes queue behind it, then
    // release it: they all wake at once, the sharpest form of the race (shared locks granted together, then each
    // asking for the exclusive one, was the deadlock).
    if (holder) {
      const deadline = Date.now() + 25_000; // below InnoDB's 50 s and mail2fa's 30 s PostgreSQL lock wait
      while (Date.now() < deadline && (await holder.waiting()) < PROCESSES)
        await new Promise((r) => setTimeout(r, 250));
      queued = await holder.waiting();
      await holder.release();
    }
    const results = await Promise.all(runs);
    const outcomes = results.map(classify);
    const unexpected = results
      .filter((_, i) => outcomes[i] === 'other')
      .map((r) => `exit ${r.code}: ${(r.stdout + r.stderr).trim().slice(0, 300)}`);
    expect(unexpected).toEqual([]);
    expect(results.map((r) => r.code).filter((c) => c === 69 || c === 70)).toEqual([]);

    const count = (o: Outcome) => outcomes.filter((x) => x === o).length;
    const wrongAnswers = count('wrong_code') + count('wrong_password');
    // Every process that got through counted once, in turn: exactly 5 wrong answers, then the lock.
    expect(wrongAnswers).toBe(Math.min(MAX_FAILED_ATTEMPTS, PROCESSES - count('busy')));
    expect(count('locked')).toBe(PROCESSES - count('busy') - wrongAnswers);

    const state = await accountState(ctx, a.email);
    expect(state.failed).toBe(wrongAnswers);
    expect(state.lockedUntil).not.toBeNull();
    const audit = await auditRows(ctx, a.email);
    const refusedFor = (reason: string) => audit.filter((r) => r.outcome === 'refused' && r.reason === reason).length;
    expect(refusedFor('wrong code') + refusedFor('wrong password')).toBe(wrongAnswers);
    expect(refusedFor('wrong password')).toBe(count('wrong_password'));
    expect(refusedFor('locked')).toBe(count('locked'));
    expect(audit.filter((r) => r.action === 'lockout')).toHaveLength(1);
    // Nothing was disabled or used.
    expect((await twoFactorRows(ctx, a.email)).factor).toBe(1);
    if (kind !== 'sqlite') {
      // The row lock is taken exclusively at once: the queue drains one by one, without deadlocks or busy retries.
      expect(queued).toBeGreaterThan(0);
      expect(count('busy')).toBe(0);
      if (kind === 'postgres') expect(await deadlocks(tdb)).toBe(deadlocksBefore);
    }
  });
});
