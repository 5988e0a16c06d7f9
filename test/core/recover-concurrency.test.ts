/**
 * Two agents recover one account at the same moment: exactly one wins, the other gets 75, and there is exactly
 * one audit row of a successful recovery. In-process: two contexts with separate database connections (two
 * knex pools; on SQLite two connections to one file), both agents look at the account before either confirms
 * (a barrier in the confirm step), which is the race that matters. The CLI suite runs the same race with two
 * processes.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Context } from '../../src/context.js';
import { Mail2faError } from '../../src/core/errors.js';
import { recoverAccount, type RecoveryResult } from '../../src/core/recover.js';
import { createTestDb, describeEachDb, type TestDb } from '../helpers/db.js';
import { addMailbox, testContext } from '../helpers/context.js';
import { auditRows, enableTotp } from './recover-support.js';

const RUNS = 50;

describeEachDb('recover: two agents at once', (kind) => {
  let tdb: TestDb;
  let setup: Context;
  let agentA: Context;
  let agentB: Context;
  beforeAll(async () => {
    tdb = await createTestDb(kind);
    setup = await testContext(tdb);
    agentA = await testContext(tdb, { actor: 'agent-a' });
    agentB = await testContext(tdb, { actor: 'agent-b' });
  });
  afterAll(async () => {
    await agentA?.close();
    await agentB?.close();
    await setup?.close();
    await tdb?.drop();
  });

  it(`gives exactly one success in each of ${RUNS} runs`, { timeout: 240_000 }, async () => {
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
      const wins = settled.filter((s): s is PromiseFulfilledResult<RecoveryResult> => s.status === 'fulfilled');
      const fails = settled.filter((s): s is PromiseRejectedResult => s.status === 'rejected');
      expect(wins.map((w) => w.value.outcome), `run ${run}`).toEqual(['recovered']);
      expect(fails).toHaveLength(1);
      const err = fails[0]!.reason as Mail2faError;
      expect(err, `run ${run}: ${String(err)}`).toBeInstanceOf(Mail2faError);
      expect(err.exitCode).toBe(75);
      losers[err.code] = (losers[err.code] ?? 0) + 1;
      const ok = await auditRows(setup, { account: email, action: 'recover', outcome: 'ok' });
      expect(ok, `run ${run}`).toHaveLength(1);
      const db = await setup.db();
      expect(await db.knex(setup.tables.factor).where({ account: email })).toHaveLength(0);
    }
    // The loser saw the account change under it ("look again"); on SQLite it may also have timed out waiting.
    expect(losers.changed ?? 0).toBeGreaterThan(0);
    console.log(`[${kind}] losers by error code:`, losers);
  });
});
