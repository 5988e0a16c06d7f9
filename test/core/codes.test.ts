import { expect, it } from 'vitest';
import { regenerateRecoveryCodes } from '../../src/core/recovery-codes.js';
import { parseCodeInput } from '../../src/core/factor-check.js';
import { verifySignInCode } from '../../src/core/sign-in.js';
import { parseRecoveryCode } from '../../src/crypto/one-time-codes.js';
import { totpCode } from '../../src/totp/totp.js';
import { describeEachDb, useTestDb } from '../helpers/db.js';
import { addMailbox, testClock } from '../helpers/context.js';
import {
  PASSWORD,
  accountState,
  auditRows,
  enrolSms,
  enrolTotp,
  sendSignInCode,
  twoFactorRows,
  wrongTotp,
} from '../helpers/seed-2fa.js';
import { failure as refusal } from '../helpers/enrolment.js';

describeEachDb('codes regenerate core', (kind) => {
  const clock = testClock();
  const scratch = useTestDb(kind, { context: { clock } });
  let n = 0;
  const fresh = () => `codes${++n}@example.com`;
  const regenerate = (email: string, code: string, password = PASSWORD) =>
    regenerateRecoveryCodes(scratch.ctx, { email, password, code: parseCodeInput(code) });

  it('replaces all ten codes: the old ones stop working, the new ones work once; one audit row', async () => {
    const a = await enrolTotp(scratch.ctx, fresh());
    await verifySignInCode(scratch.ctx, { email: a.email, code: a.recoveryCodes[0]! });
    const before = (await auditRows(scratch.ctx, a.email)).length;
    const r = await regenerate(a.email, totpCode(a.secret, clock.now));
    expect(r).toMatchObject({ email: a.email, method: 'totp', codeKind: 'totp' });
    expect(r.recoveryCodes).toHaveLength(10);
    expect(new Set(r.recoveryCodes).size).toBe(10);
    for (const c of r.recoveryCodes) expect(parseRecoveryCode(c)).toBe(c);
    expect(r.recoveryCodes.filter((c) => a.recoveryCodes.includes(c))).toEqual([]);
    expect((await twoFactorRows(scratch.ctx, a.email)).recoveryCodes).toBe(10);
    const audit = (await auditRows(scratch.ctx, a.email)).slice(before);
    expect(audit.map((x) => [x.action, x.outcome])).toEqual([['codes-regenerate', 'ok']]);
    expect(JSON.parse(audit[0]!.detail!)).toEqual({ method: 'totp', code: 'totp', count: 10 });
    for (const c of r.recoveryCodes) expect(audit[0]!.detail).not.toContain(c);

    expect(await verifySignInCode(scratch.ctx, { email: a.email, code: a.recoveryCodes[1]! })).toMatchObject({
      outcome: 'rejected',
      reason: 'wrong_code',
    });
    expect(await verifySignInCode(scratch.ctx, { email: a.email, code: r.recoveryCodes[0]! })).toMatchObject({
      outcome: 'accepted',
      kind: 'recovery',
      recoveryCodesLeft: 9,
    });
    expect(await verifySignInCode(scratch.ctx, { email: a.email, code: r.recoveryCodes[0]! })).toMatchObject({
      outcome: 'rejected',
    });
  });

  it('proves ownership with a recovery code (used up, then replaced) or an SMS code', async () => {
    const a = await enrolTotp(scratch.ctx, fresh());
    const r = await regenerate(a.email, a.recoveryCodes[4]!);
    expect(r.codeKind).toBe('recovery');
    expect((await twoFactorRows(scratch.ctx, a.email)).recoveryCodes).toBe(10);
    const s = await enrolSms(scratch.ctx, fresh());
    const code = await sendSignInCode(scratch.ctx, s.email);
    expect(await regenerate(s.email, code)).toMatchObject({ method: 'sms', codeKind: 'sms' });
  });

  it('wrong password or code → 77 and counted, nothing replaced; locked → 75', async () => {
    const a = await enrolTotp(scratch.ctx, fresh());
    expect(await refusal(regenerate(a.email, totpCode(a.secret, clock.now), 'wrong'))).toMatchObject({
      exitCode: 77,
      code: 'wrong_password',
    });
    for (let i = 0; i < 4; i++)
      expect(await refusal(regenerate(a.email, wrongTotp(a.secret, clock.now)))).toMatchObject({
        exitCode: 77,
        code: 'wrong_code',
      });
    expect(await refusal(regenerate(a.email, a.recoveryCodes[0]!))).toMatchObject({ exitCode: 75 });
    expect(await accountState(scratch.ctx, a.email)).toMatchObject({ failed: 5 });
    // The original codes are all still there and unused.
    expect(await verifySignInCode(scratch.ctx, { email: a.email, code: a.recoveryCodes[0]! })).toMatchObject({
      outcome: 'locked',
    });
    clock.advance(15 * 60_000);
    expect(await verifySignInCode(scratch.ctx, { email: a.email, code: a.recoveryCodes[0]! })).toMatchObject({
      outcome: 'accepted',
      recoveryCodesLeft: 9,
    });
  });

  it('2FA off → 65 not_enabled; unknown → 67', async () => {
    const email = fresh();
    await addMailbox(scratch.ctx, email);
    expect(await refusal(regenerate(email, '123456'))).toMatchObject({ exitCode: 65, code: 'not_enabled' });
    expect(await auditRows(scratch.ctx, email)).toEqual([]);
    expect(await refusal(regenerate('ghost@example.com', '123456'))).toMatchObject({ exitCode: 67 });
  });
});
