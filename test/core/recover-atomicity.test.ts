/**
 * Atomicity: if the database connection dies at any point of the recover transaction, the account is
 * afterwards either fully recovered or exactly as before, never half.
 *
 * Each statement the recover transaction sends is counted (a wrapper around the knex dialect's `_query`, the
 * call that hands one statement to the driver), and for every N the connection is killed right after the
 * N-th statement completed:
 * - MariaDB: recover runs in this process; after statement N, an admin connection runs `KILL <id>` on the
 *   transaction's connection (its thread id = CONNECTION_ID()) and waits until the server dropped it.
 * - PostgreSQL: the same with `pg_terminate_backend(<pid>)` (the pid = pg_backend_pid()).
 * - SQLite: recover runs in a child process on the BUILT library (dist/), which SIGKILLs itself after statement
 *   N — a crash with the transaction open (or, for the last N, just after COMMIT).
 * A full snapshot of mail2fa's tables, the mailbox table and a webmail session table (the configured sign-out
 * SQL deletes from it inside the transaction) is compared before/after.
 */

import { existsSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Context } from '../../src/context.js';
import { recoverAccount } from '../../src/core/recover.js';
import {
  MARIADB_ADMIN_URL,
  createTestDb,
  describeEachDb,
  postgresAdminConnection,
  type DbKind,
  type TestDb,
} from '../helpers/db.js';
import { addMailbox, testClock, testContext, testEnv } from '../helpers/context.js';
import { runModuleProgram } from '../helpers/cli.js';
import { rowSnapshot, type Row, type RowSnapshot as Snapshot } from '../helpers/db-snapshot.js';
import { enableTotp, lockAccount } from './recover-support.js';

const DIST = fileURLToPath(new URL('../../dist/', import.meta.url));
const SESSIONS = 'webmail_session';
const HOUR = 3_600_000;

const takeSnapshot = (ctx: Context): Promise<Snapshot> => rowSnapshot(ctx, [SESSIONS]);

const accountOf = (r: Row) => (r.account ?? r.email) as string | undefined;

/** 'before' (unchanged), 'recovered' (every change of a recovery, nothing else), or a description of the half state. */
function classify(ctx: Context, before: Snapshot, after: Snapshot, email: string, now: number): string {
  if (JSON.stringify(before) === JSON.stringify(after)) return 'before';
  const t = ctx.tables;
  const problems: string[] = [];
  const mine = (table: string, s: Snapshot) => s[table]!.filter((r) => accountOf(r) === email);
  const others = (table: string, s: Snapshot) => JSON.stringify(s[table]!.filter((r) => accountOf(r) !== email));
  for (const table of Object.keys(before)) {
    if (table === t.audit || table === t.codeKey) continue;
    if (others(table, before) !== others(table, after)) problems.push(`${table}: other rows changed`);
  }
  if (mine(t.factor, after).length) problems.push('factor still there');
  if (mine(t.recoveryCode, after).length) problems.push('recovery codes still there');
  if (mine(t.enrolment, after).length) problems.push('enrolment still there');
  const challenges = mine(t.challenge, after);
  if (challenges.length !== 1 || challenges[0]!.purpose !== 'temporary' || challenges[0]!.used_at !== null)
    problems.push(`challenges: ${JSON.stringify(challenges)}`);
  const state = mine(t.accountState, after)[0];
  if (
    !state ||
    Number(state.failed_attempts) !== 0 ||
    state.locked_until !== null ||
    Number(state.sessions_revoked_at) !== now
  )
    problems.push(`state: ${JSON.stringify(state)}`);
  if (mine(SESSIONS, after).length) problems.push('webmail session not deleted');
  if (JSON.stringify(mine(ctx.mapping.table, after)) !== JSON.stringify(mine(ctx.mapping.table, before)))
    problems.push('mailbox row changed');
  const beforeIds = new Set(before[t.audit]!.map((r) => Number(r.id)));
  const added = after[t.audit]!.filter((r) => !beforeIds.has(Number(r.id)));
  if (added.length !== 1 || added[0]!.action !== 'recover' || added[0]!.outcome !== 'ok' || added[0]!.account !== email)
    problems.push(`audit rows added: ${JSON.stringify(added)}`);
  if (after[t.audit]!.length !== before[t.audit]!.length + added.length) problems.push('audit rows removed');
  if (JSON.stringify(before[t.codeKey]) !== JSON.stringify(after[t.codeKey])) problems.push('code key changed');
  return problems.length ? `HALF: ${problems.join('; ')}` : 'recovered';
}

describeEachDb('recover: connection killed after each statement', (kind) => {
  let tdb: TestDb;
  let ctx: Context;
  let configPath: string;
  const clock = testClock();
  let n = 0;

  /** A fresh account in a rich state: app factor, 10 codes, an SMS challenge, a pending enrolment, a lock, a webmail session. */
  async function prepare(): Promise<string> {
    const email = `atom${++n}@example.com`;
    await addMailbox(ctx, email);
    await enableTotp(ctx, email);
    const db = await ctx.db();
    await db.knex(ctx.tables.challenge).insert({
      account: email,
      purpose: 'sms',
      code_hash: 'a'.repeat(64),
      created_at: clock.now,
      expires_at: clock.now + 600_000,
      used_at: null,
    });
    await db.knex(ctx.tables.enrolment).insert({
      account: email,
      id: `e${n}`,
      method: 'totp',
      secret_ct: null,
      phone_ct: null,
      phone_masked: null,
      key_id: 'k1',
      created_at: clock.now,
      expires_at: clock.now + 600_000,
    });
    await lockAccount(ctx, email, clock.now + 15 * 60_000);
    await db.knex(SESSIONS).insert({ id: `s${n}`, email });
    return email;
  }

  beforeAll(async () => {
    if (!existsSync(`${DIST}core/recover.js`)) throw new Error('dist/ is missing: run `npm run build` first');
    tdb = await createTestDb(kind);
    configPath = join(tdb.dir, 'signout.json');
    writeFileSync(
      configPath,
      JSON.stringify({ signOut: { action: 'sql', sql: `DELETE FROM ${SESSIONS} WHERE email = ?` } }),
    );
    ctx = await testContext(tdb, { clock, configPath });
    const db = await ctx.db();
    await db.knex.schema.createTable(SESSIONS, (table) => {
      table.string('id', 32).primary();
      table.string('email', 320).notNullable();
    });
    // Some bystanders that must stay untouched.
    for (const other of ['bystander1@example.com', 'bystander2@example.com']) {
      await addMailbox(ctx, other);
      await enableTotp(ctx, other);
      await db.knex(SESSIONS).insert({ id: other, email: other });
    }
  });
  afterAll(async () => {
    await ctx?.close();
    await tdb?.drop();
  });

  it.skipIf(kind === 'sqlite')(
    `${kind === 'postgres' ? 'PostgreSQL: pg_terminate_backend(<pid>)' : 'MariaDB: KILL <connection id>'} after statement N, for every N`,
    { timeout: 240_000 },
    async () => {
      // The server ends the transaction's connection from another session: MariaDB's KILL, PostgreSQL's
      // pg_terminate_backend; then waits until the session is really gone.
      const killer = await serverKiller(kind);
      const probeCtx = await testContext(tdb, { clock, configPath });
      const proto = Object.getPrototypeOf((await probeCtx.db()).knex.client) as {
        _query: (conn: unknown, obj: unknown) => Promise<unknown>;
      };
      await probeCtx.close();
      const original = proto._query;
      const ownDescriptor = Object.getOwnPropertyDescriptor(proto, '_query');
      const plan: { config: unknown; killAfter: number; count: number; threadIds: Set<number>; statements: string[] } =
        { config: null, killAfter: Infinity, count: 0, threadIds: new Set(), statements: [] };
      // Own property on the dialect's prototype: every transaction client (Object.create of it) goes through here.
      Object.defineProperty(proto, '_query', {
        configurable: true,
        writable: true,
        value: async function (
          this: { config: unknown; transacting?: boolean },
          conn: { threadId?: number; processID?: number },
          obj: { sql: string },
        ) {
          const counted = this.config === plan.config && this.transacting === true;
          const result = await original.call(this, conn, obj);
          if (counted) {
            plan.count++;
            const id = Number(conn.threadId ?? conn.processID);
            plan.threadIds.add(id);
            plan.statements.push(obj.sql.slice(0, 60));
            if (plan.count === plan.killAfter) await killer.kill(id);
          }
          return result;
        },
      });
      const run = async (killAfter: number) => {
        const email = await prepare();
        clock.advance(1000);
        const agent = await testContext(tdb, { clock, configPath, actor: 'agent-kill' });
        await agent.db();
        Object.assign(plan, {
          config: (await agent.db()).knex.client.config,
          killAfter,
          count: 0,
          threadIds: new Set(),
          statements: [],
        });
        const before = await takeSnapshot(ctx);
        let error: unknown = null;
        try {
          await recoverAccount(
            agent,
            { email, ticket: `T-${killAfter}`, reason: 'kill test', temporaryCodeTtlMs: HOUR },
            async () => {},
          );
        } catch (err) {
          error = err;
        } finally {
          plan.config = null;
          await agent.close().catch(() => {});
        }
        const after = await takeSnapshot(ctx);
        return {
          state: classify(ctx, before, after, email, clock.now),
          error,
          count: plan.count,
          threadIds: [...plan.threadIds],
          statements: plan.statements,
        };
      };
      try {
        // The statements of an undisturbed recovery; all on one connection, whose id is its CONNECTION_ID().
        const full = await run(Infinity);
        expect(full.error).toBeNull();
        expect(full.state).toBe('recovered');
        expect(full.threadIds).toHaveLength(1);
        expect(full.statements[0]).toMatch(/^BEGIN/);
        expect(full.statements.at(-1)).toMatch(/^COMMIT/);
        const total = full.count;
        expect(total).toBeGreaterThan(10);
        const seen: string[] = [];
        for (let k = 1; k <= total; k++) {
          const r = await run(k);
          const e = r.error as { code?: string; exitCode?: number } | null;
          seen.push(`${k}:${r.state}${e ? `:${e.exitCode ?? '-'}` : ''}`);
          if (k < total) {
            expect(r.state, `killed after statement ${k} (${full.statements[k - 1]})`).toBe('before');
            // Reported as "database unavailable" (69), not as a bug.
            expect(e, `killed after statement ${k}: ${String(r.error)}`).toMatchObject({
              exitCode: 69,
              code: 'db_unavailable',
            });
          } else {
            // Killed right after COMMIT: the recovery stands.
            expect(r.state).toBe('recovered');
          }
        }
        console.log(`[${kind}] ${total} statements: ${full.statements.join(' | ')}\n${seen.join(' ')}`);
      } finally {
        if (ownDescriptor) Object.defineProperty(proto, '_query', ownDescriptor);
        else delete (proto as { _query?: unknown })._query;
        await killer.end();
      }
      // The wrapper really sat on the transaction's connection: its id is what the server calls the session.
      const db = await ctx.db();
      await db.knex.transaction(async (trx) => {
        const result = (await trx.raw(
          kind === 'postgres' ? 'SELECT pg_backend_pid() AS id' : 'SELECT CONNECTION_ID() AS id',
        )) as unknown;
        const rows =
          kind === 'postgres' ? (result as { rows: { id: number }[] }).rows : (result as [{ id: number }[]])[0];
        const conn = await (
          trx as unknown as { client: { acquireConnection(): Promise<{ threadId?: number; processID?: number }> } }
        ).client.acquireConnection();
        expect(Number(rows[0]!.id)).toBe(Number(conn.threadId ?? conn.processID));
      });
    },
  );

  it.skipIf(kind !== 'sqlite')(
    'SQLite: the process dies after statement N, for every N',
    { timeout: 240_000 },
    async () => {
      const child = (
        killAfter: number,
        email: string,
      ): Promise<{ signal: NodeJS.Signals | null; code: number | null; stdout: string; stderr: string }> => {
        const script = `
        const { createContext } = await import(${JSON.stringify(`${DIST}context.js`)});
        const { recoverAccount } = await import(${JSON.stringify(`${DIST}core/recover.js`)});
        const ctx = await createContext({ configPath: process.env.CONFIG, actor: 'agent-crash', clock: () => Number(process.env.NOW) });
        const db = await ctx.db();
        const proto = Object.getPrototypeOf(db.knex.client);
        const original = proto._query;
        const killAfter = Number(process.env.KILL_AFTER);
        const statements = [];
        proto._query = async function (conn, obj) {
          const result = await original.call(this, conn, obj);
          if (this.transacting) {
            statements.push(obj.sql.slice(0, 60));
            if (statements.length === killAfter) process.kill(process.pid, 'SIGKILL');
          }
          return result;
        };
        const r = await recoverAccount(ctx, { email: process.env.EMAIL, ticket: 'T-' + killAfter, reason: 'crash test', temporaryCodeTtlMs: ${HOUR} }, async () => {});
        await ctx.close();
        process.stdout.write(JSON.stringify({ outcome: r.outcome, statements }));
      `;
        return runModuleProgram(script, [], {
          ...testEnv(tdb),
          CONFIG: configPath,
          NOW: String(clock.now),
          KILL_AFTER: String(killAfter),
          EMAIL: email,
        });
      };
      const run = async (killAfter: number) => {
        const email = await prepare();
        clock.advance(1000);
        const before = await takeSnapshot(ctx);
        const r = await child(killAfter, email);
        const after = await takeSnapshot(ctx);
        return { ...r, state: classify(ctx, before, after, email, clock.now) };
      };
      const full = await run(0);
      expect(full.code, full.stderr).toBe(0);
      expect(full.state).toBe('recovered');
      const statements = (JSON.parse(full.stdout) as { statements: string[] }).statements;
      expect(statements[0]).toMatch(/^BEGIN/);
      expect(statements.at(-1)).toMatch(/^COMMIT/);
      const total = statements.length;
      expect(total).toBeGreaterThan(10);
      const seen: string[] = [];
      for (let k = 1; k <= total; k++) {
        const r = await run(k);
        seen.push(`${k}:${r.state}`);
        expect(r.signal, `statement ${k}: ${r.stderr}`).toBe('SIGKILL');
        expect(r.state, `killed after statement ${k} (${statements[k - 1]})`).toBe(k < total ? 'before' : 'recovered');
      }
      console.log(`[sqlite] ${total} statements: ${statements.join(' | ')}\n${seen.join(' ')}`);
    },
  );
});

/** Ends a server session by id from an admin session, and waits until the server no longer lists it. */
async function serverKiller(kind: DbKind): Promise<{ kill(id: number): Promise<void>; end(): Promise<void> }> {
  const gone = async (count: () => Promise<number>) => {
    for (let i = 0; i < 200; i++) {
      if ((await count()) === 0) return;
      await new Promise((r) => setTimeout(r, 5));
    }
  };
  if (kind === 'postgres') {
    const admin = await postgresAdminConnection();
    return {
      async kill(pid) {
        await admin.query('SELECT pg_terminate_backend($1)', [pid]);
        await gone(async () =>
          Number((await admin.query('SELECT count(*) AS n FROM pg_stat_activity WHERE pid = $1', [pid])).rows[0].n),
        );
      },
      end: () => admin.end(),
    };
  }
  const mysql = await import('mysql2/promise');
  const u = new URL(MARIADB_ADMIN_URL);
  const admin = await mysql.createConnection({
    host: u.hostname,
    port: Number(u.port || 3306),
    user: decodeURIComponent(u.username || 'root'),
    password: decodeURIComponent(u.password),
  });
  return {
    async kill(threadId) {
      await admin.query(`KILL ${Number(threadId)}`);
      await gone(async () => {
        const [rows] = (await admin.query('SELECT COUNT(*) AS n FROM information_schema.PROCESSLIST WHERE ID = ?', [
          threadId,
        ])) as unknown as [{ n: number }[]];
        return Number(rows[0]!.n);
      });
    },
    end: () => admin.end(),
  };
}
