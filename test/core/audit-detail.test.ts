/** Audit rows never store raw control characters, not even inside the JSON detail. */
import { expect, it } from 'vitest';
import { writeAudit } from '../../src/core/audit-write.js';
import { describeEachDb, useTestDb } from '../helpers/db.js';

describeEachDb('audit detail escaping', (kind) => {
  const scratch = useTestDb(kind);

  it('escapes C0, C1, line separators and bidi overrides in detail values, reason and ticket', async () => {
    const db = await scratch.ctx.db();
    const nasty = 'x\u001b[31m\u0085\u202eFORGED\u2028\nline';
    await writeAudit(db.knex, scratch.ctx.tables, scratch.ctx, {
      action: 'test',
      account: 'a@example.com',
      outcome: 'refused',
      reason: nasty,
      ticket: nasty,
      detail: { enrolment: nasty, n: 1 },
    });
    const row = (await db.knex(scratch.ctx.tables.audit).where({ action: 'test' }).first()) as {
      detail: string;
      reason: string;
      ticket: string;
    };
    for (const value of [row.detail, row.reason, row.ticket]) {
      expect(value).not.toMatch(/[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e]/u);
    }
    expect(JSON.parse(row.detail)).toEqual({ enrolment: 'x\\x1b[31m\\x85\\u202eFORGED\\u2028\\nline', n: 1 });
  });
});
