/**
 * Two agents recover one account at the same moment: exactly one wins, the other gets 75, and there is exactly
 * one audit row of a successful recovery. Both agents look at the account before either confirms (a barrier in
 * the confirm step): the race that matters.
 *
 * - Two processes (every database): two long-lived Node processes running the BUILT library (dist/; run
 *   `npm run build` first), each with its own context and connection, driven over IPC.
 * - Two contexts in this process (MariaDB and PostgreSQL): on SQLite two connections in one thread cannot wait
 *   for each other (better-sqlite3's busy handler sleeps the whole thread), so that variant would only measure
 *   the 5-second busy timeout.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Context } from '../../src/context.js';
import { Mail2faError } from '../../src/errors.js';
import { recoverAccount, type RecoveryResult } from '../../src/core/recover.js';
import { createTestDb, describeEachDb, type TestDb } from '../helpers/db.js';
import { addMailbox, testContext, testEnv } from '../helpers/context.js';
import { auditRows, enableTotp } from './recover-support.js';

const RUNS = 50;
const DIST = fileURLToPath(new URL('../../dist/', import.meta.url));

interface Outcome {
  ok: boolean;
  outcome?: string;
  exitCode?: number;
  code?: string;
}

async function expectOneWinner(
  setup: Context,
  email: string,
  outcomes: Outcome[],
  run: number,
  losers: Record<string, number>,
): Promise<void> {
  const wins = outcomes.filter((o) => o.ok);
  expect(
    wins.map((w) => w.outcome),
    `run ${run}: ${JSON.stringify(outcomes)}`,
  ).toEqual(['recovered']);
  const loser = outcomes.find((o) => !o.ok)!;
  expect(loser.exitCode, `run ${run}: ${JSON.stringify(loser)}`).toBe(75);
  losers[loser.code!] = (losers[loser.code!] ?? 0) + 1;
  expect(await auditRows(setup, { account: email, action: 'recover', outcome: 'ok' }), `run ${run}`).toHaveLength(1);
  const db = await setup.db();
  expect(await db.knex(setup.tables.factor).where({ account: email })).toHaveLength(0);
}

/** An agent process: a context on the test database, recovering on request, pausing after the look until told to go. */
const AGENT = `
const { createContext } = await import(${JSON.stringify(`${DIST}context.js`)});
const { recoverAccount } = await import(${JSON.stringify(`${DIST}core/recover.js`)});
const ctx = await createContext({ actor: process.env.AGENT });
const go = new Map();
process.on('message', async (m) => {
  if (m.type === 'go') return go.get(m.run)();
  if (m.type === 'quit') { await ctx.close(); process.disconnect(); return; }
  try {
    const r = await recoverAccount(ctx, { email: m.email, ticket: 'T-' + m.run, reason: process.env.AGENT }, async () => {
      const wait = new Promise((resolve) => go.set(m.run, resolve));
      process.send({ type: 'looked', run: m.run });
      await wait;
    });
    process.send({ type: 'result', run: m.run, ok: true, outcome: r.outcome });
  } catch (err) {
    process.send({ type: 'result', run: m.run, ok: false, exitCode: err.exitCode ?? 70, code: err.code ?? String(err) });
  }
});
process.send({ type: 'ready' });
`;

class Agent {
  readonly child: ChildProcess;
  private waiters: Array<{ type: string; run?: number; resolve: (m: Record<string, unknown>) => void }> = [];
  private inbox: Record<string, unknown>[] = [];
  constructor(env: Record<string, string>, name: string) {
    this.child = spawn(process.execPath, ['--input-type=module', '-e', AGENT], {
      env: { ...process.env, ...env, AGENT: name },
      stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
    });
    this.child.on('message', (m: Record<string, unknown>) => {
      const i = this.waiters.findIndex((w) => w.type === m.type && (w.run === undefined || w.run === m.run));
      if (i >= 0) this.waiters.splice(i, 1)[0]!.resolve(m);
      else this.inbox.push(m);
    });
  }
  next(type: string, run?: number): Promise<Record<string, unknown>> {
    const i = this.inbox.findIndex((m) => m.type === type && (run === undefined || m.run === run));
    if (i >= 0) return Promise.resolve(this.inbox.splice(i, 1)[0]!);
    return new Promise((resolve) => this.waiters.push({ type, run, resolve }));
  }
  send(m: Record<string, unknown>): void {
    this.child.send(m);
  }
}

describeEachDb('recover: two agents at once', (kind) => {
  let tdb: TestDb;
  let setup: Context;
  beforeAll(async () => {
    if (!existsSync(`${DIST}core/recover.js`)) throw new Error('dist/ is missing: run `npm run build` first');
    tdb = await createTestDb(kind);
    setup = await testContext(tdb);
  });
  afterAll(async () => {
    await setup?.close();
    await tdb?.drop();
  });

  it(`two processes: exactly one success in each of ${RUNS} runs`, { timeout: 240_000 }, async () => {
    const agents = [new Agent(testEnv(tdb), 'agent-a'), new Agent(testEnv(tdb), 'agent-b')];
    try {
      await Promise.all(agents.map((a) => a.next('ready')));
      const losers: Record<string, number> = {};
      for (let run = 0; run < RUNS; run++) {
        const email = `proc${run}@example.com`;
        await addMailbox(setup, email);
        await enableTotp(setup, email);
        for (const a of agents) a.send({ type: 'recover', email, run });
        await Promise.all(agents.map((a) => a.next('looked', run)));
        for (const a of agents) a.send({ type: 'go', run });
        const outcomes = (await Promise.all(agents.map((a) => a.next('result', run)))) as unknown as Outcome[];
        await expectOneWinner(setup, email, outcomes, run, losers);
      }
      // The loser saw the account change under it ("look again").
      expect(losers.changed ?? 0).toBeGreaterThan(0);
      console.log(`[${kind}] two processes, losers by error code:`, losers);
    } finally {
      for (const a of agents) a.send({ type: 'quit' });
    }
  });

  it.skipIf(kind === 'sqlite')(
    `two contexts in one process (${kind}): exactly one success in each of ${RUNS} runs`,
    { timeout: 240_000 },
    async () => {
      const agentA = await testContext(tdb, { actor: 'agent-a' });
      const agentB = await testContext(tdb, { actor: 'agent-b' });
      try {
        const losers: Record<string, number> = {};
        for (let run = 0; run < RUNS; run++) {
          const email = `race${run}@example.com`;
          await addMailbox(setup, email);
          await enableTotp(setup, email);
          let looked = 0;
          let release!: () => void;
          const bothLooked = new Promise<void>((r) => (release = r));
          const confirm = async () => {
            if (++looked === 2) release();
            await bothLooked;
          };
          const settled = await Promise.allSettled([
            recoverAccount(agentA, { email, ticket: `T-${run}`, reason: 'agent a' }, confirm),
            recoverAccount(agentB, { email, ticket: `T-${run}`, reason: 'agent b' }, confirm),
          ]);
          const outcomes: Outcome[] = settled.map((s) =>
            s.status === 'fulfilled'
              ? { ok: true, outcome: (s.value as RecoveryResult).outcome }
              : { ok: false, exitCode: (s.reason as Mail2faError).exitCode, code: (s.reason as Mail2faError).code },
          );
          await expectOneWinner(setup, email, outcomes, run, losers);
        }
        expect(losers.changed ?? 0).toBeGreaterThan(0);
        console.log(`[${kind}] in-process, losers by error code:`, losers);
      } finally {
        await agentA.close();
        await agentB.close();
      }
    },
  );
});
