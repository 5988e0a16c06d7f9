/**
 * refreshSummaries in batches smaller than the data: keyset pages visit every state row exactly once, the missing
 * rows are created across pages too, and the counts say exactly what was checked and changed.
 */
import { beforeAll, expect, it } from 'vitest';
import { accountTransaction } from '../../src/core/guard.js';
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

  it('runs beside live changes: no deadlock or error, and the summary is current when all is done', async () => {
    const { tables } = scratch.ctx;
    const db = await scratch.ctx.db();
    // A sign-in with a recovery code, as verify does it: one code used, the factor's last use, in the account's
    // transaction (which refreshes that account's summary).
    const useCode = (account: string) =>
      accountTransaction(scratch.ctx, account, async (tx) => {
        const code = (await tx
          .trx(tables.recoveryCode)
          .where({ account })
          .whereNull('used_at')
          .orderBy('id')
          .first('id')) as { id: number } | undefined;
        await tx.trx(tables.recoveryCode).where({ id: code!.id }).update({ used_at: tx.now });
        await tx.trx(tables.factor).where({ account }).update({ last_used_at: tx.now });
      });
    const enrolled = accounts.slice(0, 6);
    const uses = enrolled.flatMap((account, i) => Array.from({ length: 1 + (i % 3) }, () => account));
    const results = await Promise.all([
      refreshSummaries(scratch.ctx, { batch: 2 }),
      ...uses.map(useCode),
      refreshSummaries(scratch.ctx, { batch: 3 }),
    ]);
    expect(results[0]).toMatchObject({ checked: 7 });
    expect(await drift()).toEqual({ count: 0, examples: [] });
    const rows = (await db
      .knex(tables.accountState)
      .whereIn('account', enrolled)
      .orderBy('account')
      .select('account', 'codes_left')) as { account: string; codes_left: number | string }[];
    expect(rows.map((r) => [r.account, Number(r.codes_left)])).toEqual(
      enrolled.map((account, i) => [account, 10 - (1 + (i % 3))]),
    );
  });
});
