/**
 * accountTransaction recomputes only the part of the status summary the transaction's writes touched: nothing
 * after a refused code, only last_used_at after an accepted TOTP (the hot path of `mail2fa serve`; on MariaDB set
 * by the step's own compare-and-set), the recovery-code count after a recovery code. The summary stays exact.
 */
import { expect, it } from 'vitest';
import { verifySignInCode } from '../../src/core/sign-in.js';
import { summaryDrift } from '../../src/db/status-summary.js';
import { totpCode } from '../../src/totp/totp.js';
import { describeEachDb, useTestDb } from '../helpers/db.js';
import { testClock } from '../helpers/context.js';
import { enrolTotp, wrongTotp } from '../helpers/seed-2fa.js';

describeEachDb('status summary: only the touched columns are recomputed', (kind) => {
  const clock = testClock();
  const scratch = useTestDb(kind, { context: { clock } });

  /** The summary UPDATEs `work` runs (the refresh statement's shape: `UPDATE <state> AS s SET …`). */
  async function summaryUpdates(work: () => Promise<unknown>): Promise<string[]> {
    const db = await scratch.ctx.db();
    const seen: string[] = [];
    const listener = (q: { sql: string }) => {
      if (/^update \S+ as s set /i.test(q.sql)) seen.push(q.sql);
    };
    db.knex.on('query', listener);
    try {
      await work();
    } finally {
      db.knex.off('query', listener);
    }
    return seen;
  }

  async function expectNoDrift(): Promise<void> {
    const db = await scratch.ctx.db();
    expect(await summaryDrift(db.knex, scratch.ctx.tables, db.dialect)).toEqual({ count: 0, examples: [] });
  }

  it('a wrong code: no summary statement; an accepted TOTP: last_used_at only; a recovery code: the count only', async () => {
    const a = await enrolTotp(scratch.ctx, 'touched@example.com');
    clock.advance(60_000);

    const wrong = await summaryUpdates(() =>
      verifySignInCode(scratch.ctx, { email: a.email, code: wrongTotp(a.secret, clock.now) }),
    );
    expect(wrong).toEqual([]);
    await expectNoDrift();

    const accepted = await summaryUpdates(async () =>
      expect(
        await verifySignInCode(scratch.ctx, { email: a.email, code: totpCode(a.secret, clock.now) }),
      ).toMatchObject({ outcome: 'accepted', kind: 'totp' }),
    );
    if (kind === 'mariadb') {
      // The step's compare-and-set sets the state row's last_used_at in the same statement: no refresh at all.
      expect(accepted).toEqual([]);
    } else {
      expect(accepted).toHaveLength(1);
      expect(accepted[0]).toMatch(/ set last_used_at = \(select/i);
      expect(accepted[0]).not.toMatch(/codes_left|method|temp_/);
    }
    await expectNoDrift();

    clock.advance(60_000);
    const recovery = await summaryUpdates(async () =>
      expect(await verifySignInCode(scratch.ctx, { email: a.email, code: a.recoveryCodes[0]! })).toMatchObject({
        outcome: 'accepted',
        kind: 'recovery',
        recoveryCodesLeft: 9,
      }),
    );
    expect(recovery).toHaveLength(1);
    expect(recovery[0]).toMatch(/codes_left = /);
    expect(recovery[0]).not.toMatch(/method|temp_/);
    await expectNoDrift();
  });
});
