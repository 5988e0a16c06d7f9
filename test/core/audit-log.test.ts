import { beforeAll, describe, expect, it } from 'vitest';
import type { Context } from '../../src/context.js';
import { writeAudit } from '../../src/core/audit-write.js';
import {
  auditBatches,
  checkAuditQuery,
  parseTimeBound,
  type AuditQuery,
  type AuditRecord,
} from '../../src/core/audit-read.js';
import { describeEachDb, useTestDb } from '../helpers/db.js';

const T0 = Date.UTC(2026, 10, 1, 0, 0, 0);
const MIN = 60_000;

async function read(ctx: Context, q: AuditQuery): Promise<{ rows: AuditRecord[]; batches: number }> {
  const db = await ctx.db();
  const rows: AuditRecord[] = [];
  let batches = 0;
  for await (const batch of auditBatches(db, ctx.tables, checkAuditQuery(q))) {
    batches++;
    rows.push(...batch);
  }
  return { rows, batches };
}

describe('audit time bounds', () => {
  const now = Date.UTC(2026, 10, 27, 12, 0, 0);
  it('takes durations back from now and ISO dates/times (UTC unless a zone is given)', () => {
    expect(parseTimeBound('7d', now, '--since')).toBe(now - 7 * 86_400_000);
    expect(parseTimeBound('90m', now, '--since')).toBe(now - 90 * MIN);
    expect(parseTimeBound('2026-11-01', now, '--since')).toBe(Date.UTC(2026, 10, 1));
    expect(parseTimeBound('2026-11-01T08:30', now, '--since')).toBe(Date.UTC(2026, 10, 1, 8, 30));
    expect(parseTimeBound('2026-11-01T08:30:15Z', now, '--since')).toBe(Date.UTC(2026, 10, 1, 8, 30, 15));
    expect(parseTimeBound('2026-11-01T08:30:00+02:00', now, '--since')).toBe(Date.UTC(2026, 10, 1, 6, 30));
  });
  it('refuses anything else with 64', () => {
    for (const bad of [
      '',
      '7',
      'd7',
      '-7d',
      '7 d',
      '2026-02-31',
      '2026-13-01',
      '2026-11-01T25:00',
      'yesterday',
      '2026-11-01T08:30:00 UTC',
      '0d',
    ]) {
      expect(() => parseTimeBound(bad, now, '--since'), bad).toThrow(expect.objectContaining({ exitCode: 64 }));
    }
  });
  it('checks the filters', () => {
    expect(checkAuditQuery({ account: 'Jane@EXAMPLE.com' }).account).toBe('Jane@example.com');
    expect(() => checkAuditQuery({ account: 'not an address' })).toThrow(expect.objectContaining({ exitCode: 65 }));
    expect(() => checkAuditQuery({ action: 'Recover;drop' })).toThrow(expect.objectContaining({ exitCode: 64 }));
    expect(() => checkAuditQuery({ outcome: 'maybe' })).toThrow(expect.objectContaining({ exitCode: 64 }));
    expect(() => checkAuditQuery({ limit: 0 })).toThrow(expect.objectContaining({ exitCode: 64 }));
    expect(() => checkAuditQuery({ since: 2, until: 1 })).toThrow(expect.objectContaining({ exitCode: 64 }));
  });
});

describeEachDb('audit log reader', (kind) => {
  const scratch = useTestDb(kind);
  beforeAll(async () => {
    const db = await scratch.ctx.db();
    // 30 rows: 3 accounts, two actors, times with ties (three rows per minute) so keyset paging must use the id.
    for (let i = 0; i < 30; i++) {
      const at = T0 + Math.floor(i / 3) * MIN;
      await writeAudit(
        db.knex,
        scratch.ctx.tables,
        { actor: i % 2 ? 'bob' : 'alice', now: () => at },
        {
          action: i % 5 === 0 ? 'recover' : 'verify',
          account: `u${i % 3}@example.com`,
          outcome: i % 7 === 0 ? 'refused' : 'ok',
          ticket: i % 5 === 0 ? `T-${i}` : null,
          reason: `row ${i}`,
          detail: { i },
        },
      );
    }
  });

  const order = (rows: AuditRecord[]) => rows.map((r) => (r.detail as { i: number }).i);

  it('reads newest first by default, in batches, each row once', async () => {
    const { rows, batches } = await read(scratch.ctx, { batchSize: 4 });
    expect(order(rows)).toEqual(Array.from({ length: 30 }, (_, i) => 29 - i));
    expect(batches).toBe(8);
    expect(rows[0]).toMatchObject({
      actor: 'bob',
      action: 'verify',
      account: 'u2@example.com',
      reason: 'row 29',
      outcome: 'ok',
      at: new Date(T0 + 9 * MIN).toISOString().replace('.000', ''),
    });
  });

  it('reads oldest first on request', async () => {
    const { rows } = await read(scratch.ctx, { order: 'oldest-first', batchSize: 7 });
    expect(order(rows)).toEqual(Array.from({ length: 30 }, (_, i) => i));
  });

  it('filters exactly by account, action, actor, ticket, outcome and time; limits', async () => {
    expect(order((await read(scratch.ctx, { account: 'u1@example.com', batchSize: 3 })).rows)).toEqual([
      28, 25, 22, 19, 16, 13, 10, 7, 4, 1,
    ]);
    expect(order((await read(scratch.ctx, { action: 'recover' })).rows)).toEqual([25, 20, 15, 10, 5, 0]);
    expect(order((await read(scratch.ctx, { actor: 'bob', action: 'recover' })).rows)).toEqual([25, 15, 5]);
    expect(order((await read(scratch.ctx, { ticket: 'T-15' })).rows)).toEqual([15]);
    expect(order((await read(scratch.ctx, { outcome: 'refused' })).rows)).toEqual([28, 21, 14, 7, 0]);
    expect(order((await read(scratch.ctx, { since: T0 + 8 * MIN })).rows)).toEqual([29, 28, 27, 26, 25, 24]);
    expect(
      order((await read(scratch.ctx, { since: T0 + MIN, until: T0 + 2 * MIN, order: 'oldest-first' })).rows),
    ).toEqual([3, 4, 5]);
    expect(order((await read(scratch.ctx, { limit: 5, batchSize: 2 })).rows)).toEqual([29, 28, 27, 26, 25]);
    expect((await read(scratch.ctx, { account: 'U1@example.com' })).rows).toEqual([]);
    expect((await read(scratch.ctx, { actor: 'Bob' })).rows).toEqual([]);
  });
});
