import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { disableTwoFactor } from '../../src/core/disable.js';
import { sendOwnerSmsCode } from '../../src/core/owner.js';
import { parseCodeInput } from '../../src/core/factor-check.js';
import { verifySignInCode } from '../../src/core/sign-in.js';
import { totpCode } from '../../src/totp/totp.js';
import { describeEachDb, useTestDb } from '../helpers/db.js';
import { addMailbox, testClock, testContext } from '../helpers/context.js';
import {
  PASSWORD,
  accountState,
  addPendingEnrolment,
  auditRows,
  enrolSms,
  enrolTotp,
  issueTemporaryCode,
  lastOutboxCode,
  outboxFile,
  sendSignInCode,
  twoFactorRows,
  wrongTotp,
} from '../helpers/seed-2fa.js';
import { failure as refusal } from '../helpers/enrolment.js';

const NO_ROWS = { factor: 0, recoveryCodes: 0, enrolments: 0, challenges: 0 };

describeEachDb('disable core', (kind) => {
  const clock = testClock();
  const scratch = useTestDb(kind, { context: { clock } });
  let n = 0;
  const fresh = () => `dis${++n}@example.com`;
  const disable = (email: string, code: string, password = PASSWORD) =>
    disableTwoFactor(scratch.ctx, { email, password, code: parseCodeInput(code) });

  it('with an app code: no 2FA row left behind, sessions revoked, exactly one audit row', async () => {
    const a = await enrolTotp(scratch.ctx, fresh());
    await addPendingEnrolment(scratch.ctx, a.email);
    const db = await scratch.ctx.db();
    await db.knex(scratch.ctx.tables.challenge).insert([
      {
        account: a.email,
        purpose: 'sms',
        code_hash: 'x'.repeat(64),
        created_at: clock.now,
        expires_at: clock.now + 600_000,
        used_at: null,
      },
      {
        account: a.email,
        purpose: 'temporary',
        code_hash: 'y'.repeat(64),
        created_at: clock.now,
        expires_at: clock.now + 600_000,
        used_at: null,
      },
    ]);
    expect(await twoFactorRows(scratch.ctx, a.email)).toEqual({
      factor: 1,
      recoveryCodes: 10,
      enrolments: 1,
      challenges: 2,
    });
    const before = (await auditRows(scratch.ctx, a.email)).length;

    const result = await disable(a.email, totpCode(a.secret, clock.now));
    expect(result).toMatchObject({
      changed: true,
      email: a.email,
      method: 'totp',
      codeKind: 'totp',
      sessionsRevokedAt: new Date(clock.now).toISOString(),
      signOut: { ok: true },
    });
    expect(await twoFactorRows(scratch.ctx, a.email)).toEqual(NO_ROWS);
    const audit = (await auditRows(scratch.ctx, a.email)).slice(before);
    expect(audit.map((r) => [r.action, r.outcome])).toEqual([['disable', 'ok']]);
    expect(JSON.parse(audit[0]!.detail!)).toEqual({ method: 'totp', code: 'totp' });
    expect(audit[0]!.actor).toBe('test-agent');
    expect((await accountState(scratch.ctx, a.email)).sessionsRevokedAt).toBe(clock.now);
    // Now the account has no 2FA: verify never accepts, and disable again changes nothing.
    expect(await verifySignInCode(scratch.ctx, { email: a.email, code: a.recoveryCodes[0]! })).toMatchObject({
      outcome: 'rejected',
      reason: 'not_enabled',
    });
    expect(await disable(a.email, '123456')).toEqual({ changed: false, email: a.email });
  });

  it('with an SMS code sent on request (password checked first)', async () => {
    const a = await enrolSms(scratch.ctx, fresh());
    const wrong = await refusal(
      sendOwnerSmsCode(scratch.ctx, { email: a.email, password: 'wrong', action: 'disable' }),
    );
    expect(wrong).toMatchObject({ exitCode: 77, code: 'wrong_password' });
    expect((await twoFactorRows(scratch.ctx, a.email)).challenges).toBe(0);
    const sent = await sendOwnerSmsCode(scratch.ctx, { email: a.email, password: PASSWORD, action: 'disable' });
    expect(sent.maskedPhone).toBe('+45 ****3456');
    const code = lastOutboxCode(outboxFile(scratch.ctx));
    const result = await disable(a.email, code);
    expect(result).toMatchObject({ changed: true, method: 'sms', codeKind: 'sms' });
    expect(await twoFactorRows(scratch.ctx, a.email)).toEqual(NO_ROWS);
    expect((await auditRows(scratch.ctx, a.email)).map((r) => [r.action, r.outcome, r.reason])).toEqual([
      ['disable-sms', 'refused', 'wrong password'],
      ['disable-sms', 'ok', null],
      ['disable', 'ok', null],
    ]);
  });

  it('with a sign-in SMS code, or with a recovery code', async () => {
    const s = await enrolSms(scratch.ctx, fresh());
    const code = await sendSignInCode(scratch.ctx, s.email);
    expect(await disable(s.email, code)).toMatchObject({ changed: true, codeKind: 'sms' });
    const a = await enrolTotp(scratch.ctx, fresh());
    expect(await disable(a.email, a.recoveryCodes[9]!.toUpperCase())).toMatchObject({
      changed: true,
      codeKind: 'recovery',
    });
    expect(await twoFactorRows(scratch.ctx, a.email)).toEqual(NO_ROWS);
  });

  it('an account left with only a temporary access code: password + that code turn 2FA off', async () => {
    const a = await enrolTotp(scratch.ctx, fresh());
    const temp = await issueTemporaryCode(scratch.ctx, a.email);
    expect(
      await disable(a.email, a.recoveryCodes[0]!).then(
        () => null,
        (e: unknown) => e,
      ),
    ).toMatchObject({ exitCode: 77 });
    expect(await disable(a.email, temp)).toMatchObject({ changed: true, method: null, codeKind: 'temporary' });
    expect(await twoFactorRows(scratch.ctx, a.email)).toEqual(NO_ROWS);
  });

  it('a used or expired temporary access code still means "2FA required": disable refuses (no code can prove it), never "already off"', async () => {
    const a = await enrolTotp(scratch.ctx, fresh());
    const temp = await issueTemporaryCode(scratch.ctx, a.email);
    expect(await verifySignInCode(scratch.ctx, { email: a.email, code: temp })).toMatchObject({ outcome: 'accepted' });
    expect(await refusal(disable(a.email, temp))).toMatchObject({ exitCode: 77, code: 'wrong_code' });
    const b = await enrolTotp(scratch.ctx, fresh());
    const expired = await issueTemporaryCode(scratch.ctx, b.email, 60_000);
    clock.advance(60_000);
    expect(await refusal(disable(b.email, expired))).toMatchObject({ exitCode: 77 });
    expect((await twoFactorRows(scratch.ctx, b.email)).challenges).toBe(1);
  });

  it('already off: nothing changed, no audit row, password not even needed', async () => {
    const email = fresh();
    await addMailbox(scratch.ctx, email);
    expect(await disable(email, '123456', 'wrong')).toEqual({ changed: false, email });
    expect(await auditRows(scratch.ctx, email)).toEqual([]);
    expect((await accountState(scratch.ctx, email)).failed).toBe(0);
  });

  it('wrong password → 77, counted, audited; the factor stays and the code is not used up', async () => {
    const a = await enrolTotp(scratch.ctx, fresh());
    const code = totpCode(a.secret, clock.now);
    const err = await refusal(disable(a.email, code, 'Correct horse'));
    expect(err).toMatchObject({ exitCode: 77, code: 'wrong_password' });
    expect(err!.message).not.toContain('Correct horse');
    expect(await twoFactorRows(scratch.ctx, a.email)).toMatchObject({ factor: 1, recoveryCodes: 10 });
    expect(await accountState(scratch.ctx, a.email)).toMatchObject({ failed: 1, sessionsRevokedAt: null });
    expect((await auditRows(scratch.ctx, a.email)).map((r) => [r.action, r.outcome, r.reason])).toEqual([
      ['disable', 'refused', 'wrong password'],
    ]);
    expect(await verifySignInCode(scratch.ctx, { email: a.email, code })).toMatchObject({ outcome: 'accepted' });
  });

  it('wrong code → 77, counted; five wrong passwords or codes lock (75), even with everything right', async () => {
    const a = await enrolTotp(scratch.ctx, fresh());
    expect(await refusal(disable(a.email, wrongTotp(a.secret, clock.now)))).toMatchObject({
      exitCode: 77,
      code: 'wrong_code',
    });
    expect(
      await refusal(
        disable(
          a.email,
          a.recoveryCodes[0]!.replace(/^./, (c) => (c === 'a' ? 'b' : 'a')),
        ),
      ),
    ).toMatchObject({ exitCode: 77 });
    for (let i = 0; i < 2; i++)
      expect(await refusal(disable(a.email, totpCode(a.secret, clock.now), 'nope'))).toMatchObject({ exitCode: 77 });
    // Verify's wrong codes count on the same counter.
    expect(await verifySignInCode(scratch.ctx, { email: a.email, code: wrongTotp(a.secret, clock.now) })).toMatchObject(
      {
        outcome: 'rejected',
        failedAttempts: 5,
      },
    );
    const locked = await refusal(disable(a.email, totpCode(a.secret, clock.now)));
    expect(locked).toMatchObject({ exitCode: 75, code: 'locked' });
    expect(await twoFactorRows(scratch.ctx, a.email)).toMatchObject({ factor: 1 });
    expect((await auditRows(scratch.ctx, a.email)).filter((r) => r.action === 'lockout')).toHaveLength(1);
    clock.advance(15 * 60_000);
    expect(await disable(a.email, totpCode(a.secret, clock.now))).toMatchObject({ changed: true });
  });

  it('unknown account → 67 and malformed address → 65, before the password is looked at', async () => {
    await expect(disable('ghost@example.com', '123456')).rejects.toMatchObject({ exitCode: 67 });
    await expect(disable('ghost@@example.com', '123456')).rejects.toMatchObject({ exitCode: 65 });
  });

  describe('sign-out actions', () => {
    it('sql: the configured statement runs in the same transaction, bound to the address', async () => {
      const db = await scratch.ctx.db();
      await db.knex.schema.createTable('webmail_session', (t) => {
        t.string('id', 32).primary();
        t.string('email', 320).notNullable();
      });
      const a = await enrolTotp(scratch.ctx, fresh());
      await db.knex('webmail_session').insert([
        { id: 's1', email: a.email },
        { id: 's2', email: a.email },
        { id: 's3', email: 'other@example.com' },
      ]);
      const configPath = join(scratch.tdb.dir, 'signout-sql.json');
      writeFileSync(
        configPath,
        JSON.stringify({ signOut: { action: 'sql', sql: 'DELETE FROM webmail_session WHERE email = :email' } }),
      );
      const c2 = await testContext(scratch.tdb, { clock, configPath });
      try {
        await expect(
          disableTwoFactor(c2, {
            email: a.email,
            password: PASSWORD,
            code: parseCodeInput(totpCode(a.secret, clock.now)),
          }),
        ).resolves.toMatchObject({ changed: true });
      } finally {
        await c2.close();
      }
      expect((await db.knex('webmail_session').select('id')).map((r: { id: string }) => r.id)).toEqual(['s3']);
    });

    it('command: run without a shell after the commit, with the address as an argument', async () => {
      const a = await enrolTotp(scratch.ctx, fresh());
      const marker = join(scratch.tdb.dir, 'signed-out.txt');
      const configPath = join(scratch.tdb.dir, 'signout-cmd.json');
      writeFileSync(
        configPath,
        JSON.stringify({
          signOut: {
            action: 'command',
            command: [
              process.execPath,
              '-e',
              'require("fs").writeFileSync(process.argv[1], process.argv[2])',
              marker,
              'user={email}',
            ],
          },
        }),
      );
      const c2 = await testContext(scratch.tdb, { clock, configPath });
      try {
        const r = await disableTwoFactor(c2, {
          email: a.email,
          password: PASSWORD,
          code: parseCodeInput(totpCode(a.secret, clock.now)),
        });
        expect(r).toMatchObject({ changed: true, signOut: { ok: true } });
      } finally {
        await c2.close();
      }
      expect(existsSync(marker) && readFileSync(marker, 'utf8')).toBe(`user=${a.email}`);
    });
  });
});
