import { beforeAll, expect, it } from 'vitest';
import type { Context } from '../../src/context.js';
import { statusBatches, type StatusRow, type StatusSelection } from '../../src/core/status.js';
import { describeEachDb, useTestDb } from '../helpers/db.js';
import { addMailbox, testClock } from '../helpers/context.js';
import { storeTotpFactor } from '../helpers/seed-2fa.js';

async function collect(ctx: Context, selection: StatusSelection): Promise<StatusRow[]> {
  const db = await ctx.db();
  const rows: StatusRow[] = [];
  for await (const batch of statusBatches({ db, tables: ctx.tables, mapping: ctx.mapping, now: ctx.now }, selection))
    rows.push(...batch);
  return rows;
}

describeEachDb('status core', (kind) => {
  const clock = testClock();
  const scratch = useTestDb(kind, { context: { clock } });
  beforeAll(async () => {
    for (const e of ['a@example.com', 'b@example.com', 'c@other.org']) await addMailbox(scratch.ctx, e);
    // Through the account's transaction, as enrolment stores it: that also keeps the status summary current.
    await storeTotpFactor(scratch.ctx, 'b@example.com');
  });

  it('lists every mailbox with its 2FA state', async () => {
    const rows = await collect(scratch.ctx, { kind: 'all' });
    expect(rows.map((r) => [r.email, r.enabled, r.method, r.recoveryCodesLeft]).sort()).toEqual([
      ['a@example.com', false, null, null],
      ['b@example.com', true, 'totp', 10],
      ['c@other.org', false, null, null],
    ]);
  });

  it('keeps input order, reports unknown and invalid per row, matches exactly', async () => {
    const rows = await collect(scratch.ctx, {
      kind: 'emails',
      emails: ['c@other.org', 'nobody@example.com', 'B@example.com', 'b@EXAMPLE.com', 'a@example.com ', "x' OR '1'='1"],
    });
    expect(rows.map((r) => [r.email, r.state])).toEqual([
      ['c@other.org', 'ok'],
      ['nobody@example.com', 'unknown'],
      ['B@example.com', 'unknown'],
      ['b@example.com', 'ok'],
      ['a@example.com ', 'invalid'],
      ["x' OR '1'='1", 'invalid'],
    ]);
  });

  it('filters by domain', async () => {
    const rows = await collect(scratch.ctx, { kind: 'domain', domain: 'example.com' });
    expect(rows.map((r) => r.email).sort()).toEqual(['a@example.com', 'b@example.com']);
  });
});
