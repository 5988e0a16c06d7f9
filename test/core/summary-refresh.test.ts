/**
 * refreshSummaries in batches smaller than the data: keyset pages visit every state row exactly once, the missing
 * rows are created across pages too, and the counts say exactly what was checked and changed.
 */
import { beforeAll, expect, it } from 'vitest';
import { refreshSummaries } from '../../src/core/summary-refresh.js';
import { summaryDrift } from '../../src/db/status-summary.js';
import { describeEachDb, useTestDb } from '../helpers/db.js';
import { enrolSms, enrolTotp, issueTemporaryCode } from '../helpers/seed-2fa.js';

describeEachDb('refreshSummaries (batches)', (kind) => {
  const scratch = useTestDb(kind);
  const accounts = Array.from({ length: 7 }, (_, i) => `user${i}@example.com`);

  beforeAll(async () => {
    for (const [i, account] of accounts.entries())
      await (i % 2 ? enrolSms(scratch.ctx, account) : enrolTotp(scratch.ctx, account));
    await issueTemporaryCode(scratch.ctx, accounts[6]!);
  });

  const drift = async () => {
    const db = await scratch.ctx.db();
    return summaryDrift(db.knex, scratch.ctx.tables, db.dialect, 20);
  };

  it('repairs every drifted and missing row across pages of 2, and a second run changes nothing', async () => {
    const db = await scratch.ctx.db();
    const state = () => db.knex(scratch.ctx.tables.accountState);
    expect((await drift()).count).toBe(0);
    expect(await refreshSummaries(scratch.ctx, { batch: 2 })).toEqual({ checked: 7, changed: 0, created: 0 });

    // Drift on both sides of page boundaries, and three missing rows (two pages of them).
    await state().whereIn('account', [accounts[0]!, accounts[3]!, accounts[4]!]).update({ codes_left: 0 });
    await state().where({ account: accounts[5]! }).update({ enrolled_at: 1 });
    await state().whereIn('account', [accounts[1]!, accounts[2]!, accounts[6]!]).delete();
    const before = await drift();
    expect(before.count).toBe(7);
    expect(before.examples.filter((e) => e.columns === 'missing row').map((e) => e.account)).toEqual([
      accounts[1],
      accounts[2],
      accounts[6],
    ]);

    expect(await refreshSummaries(scratch.ctx, { batch: 2 })).toEqual({ checked: 7, changed: 7, created: 3 });
    expect(await drift()).toEqual({ count: 0, examples: [] });
    const [rows] = (await state().count({ n: '*' })) as { n: number | string }[];
    expect(Number(rows!.n)).toBe(7); // the three created, no others
    expect(await refreshSummaries(scratch.ctx, { batch: 3 })).toEqual({ checked: 7, changed: 0, created: 0 });
  });
});
