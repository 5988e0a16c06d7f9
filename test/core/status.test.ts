import { beforeAll, expect, it } from 'vitest';
import type { Context } from '../../src/context.js';
import { statusBatches, type StatusRow, type StatusSelection } from '../../src/core/status.js';
import { storeFactor } from '../../src/core/factors.js';
import { Vault } from '../../src/core/vault.js';
import { inTransaction, lockAccountState } from '../../src/db/tx.js';
import { generateTotpSecret } from '../../src/totp/totp.js';
import { describeEachDb, useTestDb } from '../helpers/db.js';
import { addMailbox, testClock } from '../helpers/context.js';

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
    const db = await scratch.ctx.db();
    const vault = new Vault(scratch.ctx.masterKey(), scratch.ctx.tables, scratch.ctx.now);
    await inTransaction(db, scratch.ctx.tables, async (trx) => {
      await lockAccountState(trx, scratch.ctx.tables, db.dialect, 'b@example.com');
      await storeFactor(trx, scratch.ctx.tables, vault, clock.now, {
        account: 'b@example.com',
        method: 'totp',
        totpSecret: generateTotpSecret(),
      });
    });
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
