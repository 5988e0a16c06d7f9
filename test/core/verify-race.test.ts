/**
 * Concurrent sign-in checks of one account from separate connections (as separate `serve` workers or processes
 * make them): the same code is accepted exactly once, the recovery-code count each answer reports matches what is
 * left, and wrong codes sent at once are all counted.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Context } from '../../src/context.js';
import { verifySignInCode, type VerifyResult } from '../../src/core/sign-in.js';
import { totpCode } from '../../src/totp/totp.js';
import { createTestDb, describeEachDb, type TestDb } from '../helpers/db.js';
import { testClock, testContext } from '../helpers/context.js';
import { accountState, enrolTotp, wrongTotp } from '../helpers/seed-2fa.js';

// Fewer than five: a replayed code counts as a wrong one, and five would lock the account.
const AGENTS = 4;

// SQLite is left out: better-sqlite3 waits for a lock synchronously, so connections in one process cannot race.
describeEachDb(
  'verify races',
  (kind) => {
    let tdb: TestDb;
    const contexts: Context[] = [];
    const clock = testClock();

    beforeAll(async () => {
      tdb = await createTestDb(kind);
      for (let i = 0; i < AGENTS; i++) contexts.push(await testContext(tdb, { clock }));
    });
    afterAll(async () => {
      for (const ctx of contexts) await ctx.close();
      await tdb?.drop();
    });

    const all = (email: string, codes: string[]): Promise<VerifyResult[]> =>
      Promise.all(codes.map((code, i) => verifySignInCode(contexts[i % AGENTS]!, { email, code })));

    it('one TOTP sent by every agent at once: accepted once', async () => {
      for (let round = 0; round < 3; round++) {
        const user = await enrolTotp(contexts[0]!, `race.totp${round}@example.com`);
        clock.advance(30_000);
        const code = totpCode(user.secret, clock.now);
        const answers = await all(user.email, Array<string>(AGENTS).fill(code));
        expect(answers.filter((a) => a.outcome === 'accepted')).toHaveLength(1);
        expect((await accountState(contexts[0]!, user.email)).failed).toBe(AGENTS - 1);
      }
    });

    it('one recovery code sent at once: accepted once; distinct codes at once: each count is what is left', async () => {
      const user = await enrolTotp(contexts[0]!, 'race.recovery@example.com');
      const same = await all(user.email, Array<string>(AGENTS).fill(user.recoveryCodes[0]!));
      expect(same.filter((a) => a.outcome === 'accepted')).toHaveLength(1);
      const distinct = await all(user.email, user.recoveryCodes.slice(1, 1 + AGENTS));
      const counts = distinct.map((a) => (a.outcome === 'accepted' ? a.recoveryCodesLeft : -1)).sort((x, y) => x - y);
      const left = 10 - 1 - AGENTS;
      expect(counts).toEqual(Array.from({ length: AGENTS }, (_, i) => left + i));
    });

    it('wrong codes at once are all counted', async () => {
      const user = await enrolTotp(contexts[0]!, 'race.wrong@example.com');
      const wrong = wrongTotp(user.secret, clock.now);
      await all(user.email, Array<string>(4).fill(wrong));
      expect((await accountState(contexts[0]!, user.email)).failed).toBe(4);
    });
  },
  ['mariadb', 'postgres'],
);
