import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import type { Context } from '../../src/context.js';
import { TEMPORARY_CODE_BITS, parseTemporaryCode } from '../../src/crypto/one-time-codes.js';
import { ExitCode, Mail2faError } from '../../src/errors.js';
import { readFactor, storeFactor } from '../../src/core/factors.js';
import { accountTransaction } from '../../src/core/guard.js';
import {
  checkReason,
  checkTemporaryCodeTtl,
  checkTicket,
  recoverAccount,
  type RecoveryDone,
} from '../../src/core/recover.js';
import { isoTime } from '../../src/core/time.js';
import { statusBatches, type StatusRow } from '../../src/core/status.js';
import { checkSecondFactor, parseCodeInput } from '../../src/core/factor-check.js';
import { generateTotpSecret } from '../../src/totp/totp.js';
import { customerReply } from '../../src/ui/customer-reply-render.js';
import { describeEachDb, useTestDb } from '../helpers/db.js';
import { addMailbox, testClock, testContext } from '../helpers/context.js';
import { auditRows, dumpText, enableSms, enableTotp, lockAccount, recoverYes, snapshot } from './recover-support.js';

const HOUR = 3_600_000;

async function statusOf(ctx: Context, email: string): Promise<StatusRow> {
  const db = await ctx.db();
  for await (const batch of statusBatches(
    { db, tables: ctx.tables, mapping: ctx.mapping, now: ctx.now },
    { kind: 'emails', emails: [email] },
  ))
    return batch[0]!;
  throw new Error('no status row');
}

/** Tries `code` as the sign-in code of `email`, the way verify does (inside the account's transaction). */
async function signInWith(ctx: Context, email: string, code: string): Promise<string | null> {
  return accountTransaction(ctx, email, async (tx) =>
    checkSecondFactor(
      tx,
      await readFactor(tx.trx, ctx.tables, email),
      parseCodeInput(code),
      new Set(['totp', 'sms', 'recovery', 'temporary']),
    ),
  );
}

async function expectCode(p: Promise<unknown>, exitCode: number, code?: string): Promise<Mail2faError> {
  const err = await p.then(
    () => {
      throw new Error('expected a failure');
    },
    (e: unknown) => e,
  );
  expect(err).toBeInstanceOf(Mail2faError);
  expect((err as Mail2faError).exitCode).toBe(exitCode);
  if (code) expect((err as Mail2faError).code).toBe(code);
  return err as Mail2faError;
}

describe('recover input checks', () => {
  const pattern = '^[A-Za-z0-9][A-Za-z0-9._:#/-]{0,63}$';
  it('requires a ticket (64) and checks it against the pattern as a whole (65)', () => {
    expect(() => checkTicket(undefined, pattern)).toThrow(expect.objectContaining({ exitCode: 64 }));
    expect(() => checkTicket('', pattern)).toThrow(expect.objectContaining({ exitCode: 64 }));
    expect(checkTicket('T-1001', pattern)).toBe('T-1001');
    for (const bad of ['T 1001', ' T-1', 'T-1\n', 'T-1\x1b[2J', '-T1', 'x'.repeat(65)])
      expect(() => checkTicket(bad, pattern), bad).toThrow(expect.objectContaining({ exitCode: 65 }));
    // An unanchored pattern still has to match the whole ticket.
    expect(() => checkTicket('xT-12y', 'T-[0-9]+')).toThrow(expect.objectContaining({ exitCode: 65 }));
    expect(checkTicket('T-12', 'T-[0-9]+')).toBe('T-12');
  });
  it('bounds the reason and the temporary code TTL', () => {
    expect(checkReason(undefined)).toBeNull();
    expect(checkReason('lost phone')).toBe('lost phone');
    expect(() => checkReason('x'.repeat(501))).toThrow(expect.objectContaining({ exitCode: 65 }));
    expect(checkTemporaryCodeTtl(24 * HOUR)).toBe(24 * HOUR);
    expect(checkTemporaryCodeTtl(7 * 24 * HOUR)).toBe(7 * 24 * HOUR);
    expect(() => checkTemporaryCodeTtl(7 * 24 * HOUR + 1)).toThrow(expect.objectContaining({ exitCode: 64 }));
    expect(() => checkTemporaryCodeTtl(60_000)).toThrow(expect.objectContaining({ exitCode: 64 }));
  });
});

describeEachDb('recover', (kind) => {
  const clock = testClock();
  const scratch = useTestDb(kind, { context: { clock, actor: 'agent-alice' } });
  let n = 0;
  /** A fresh mailbox per test. */
  const fresh = async (prefix: string) => {
    const email = `${prefix}${++n}@example.com`;
    await addMailbox(scratch.ctx, email);
    return email;
  };

  it('removes the factor, codes and challenges, clears the lock, revokes sessions, writes one audit row', async () => {
    const email = await fresh('app');
    const { secret, recoveryCodes } = await enableTotp(scratch.ctx, email);
    const db = await scratch.ctx.db();
    await db.knex(scratch.ctx.tables.challenge).insert({
      account: email,
      purpose: 'sms',
      code_hash: 'x'.repeat(64),
      created_at: clock.now,
      expires_at: clock.now + 600_000,
      used_at: null,
    });
    await lockAccount(scratch.ctx, email, clock.now + 15 * 60_000);
    clock.advance(1000);
    let shown: unknown;
    const result = (await recoverAccount(
      scratch.ctx,
      { email, ticket: 'T-1001', reason: 'lost phone, identity checked by call-back' },
      async (summary) => {
        shown = summary;
      },
    )) as RecoveryDone;

    expect(shown).toMatchObject({
      email,
      enabled: true,
      method: 'totp',
      recoveryCodesLeft: 10,
      lockedUntil: expect.any(String),
      failedAttempts: 5,
      lastUsedAt: null,
      temporaryCode: null,
    });
    expect(result.outcome).toBe('recovered');
    expect(result).toMatchObject({
      removed: { method: 'totp', recoveryCodes: 10, challenges: 1, enrolment: false },
      lockCleared: true,
      twoFactorRequired: false,
      temporaryCode: null,
      actor: 'agent-alice',
    });
    expect(customerReply(result)).toContain('Settings > Password > Two-Factor Authentication');
    expect(customerReply(result)).toContain('T-1001');
    expect(customerReply(result)).toContain('password alone');

    expect(await db.knex(scratch.ctx.tables.factor).where({ account: email })).toHaveLength(0);
    expect(await db.knex(scratch.ctx.tables.recoveryCode).where({ account: email })).toHaveLength(0);
    expect(await db.knex(scratch.ctx.tables.challenge).where({ account: email })).toHaveLength(0);
    const state = await db.knex(scratch.ctx.tables.accountState).where({ account: email }).first();
    expect(Number(state.failed_attempts)).toBe(0);
    expect(state.locked_until).toBeNull();
    expect(Number(state.sessions_revoked_at)).toBe(clock.now);

    const audit = await auditRows(scratch.ctx, { account: email, action: 'recover' });
    expect(audit).toHaveLength(1);
    expect(audit[0]).toMatchObject({
      actor: 'agent-alice',
      ticket: 'T-1001',
      reason: 'lost phone, identity checked by call-back',
      outcome: 'ok',
      at: clock.now,
    });
    // No secret anywhere in what recover returned or wrote.
    const everything = JSON.stringify(result) + JSON.stringify(shown) + JSON.stringify(audit);
    expect(everything).not.toContain(secret);
    for (const c of recoveryCodes) expect(everything).not.toContain(c);
    expect((await statusOf(scratch.ctx, email)).enabled).toBe(false);
  });

  it('shows an SMS factor masked and never the number', async () => {
    const email = await fresh('sms');
    const phone = await enableSms(scratch.ctx, email);
    const result = (await recoverYes(scratch.ctx, { email, ticket: 'T-2' })) as RecoveryDone;
    expect(result.before).toMatchObject({ method: 'sms', phone: phone.masked });
    const text = JSON.stringify(result) + JSON.stringify(await auditRows(scratch.ctx, { account: email }));
    expect(text).toContain(phone.masked);
    expect(text).not.toContain(phone.e164);
    expect(text).not.toContain(phone.e164.slice(1));
  });

  it('changes nothing when the ticket is missing (64) or malformed (65), the account unknown (67) or the address malformed (65)', async () => {
    const email = await fresh('bad');
    await enableTotp(scratch.ctx, email);
    const before = await snapshot(scratch.ctx);
    await expectCode(recoverYes(scratch.ctx, { email, ticket: undefined }), ExitCode.USAGE, 'usage');
    await expectCode(recoverYes(scratch.ctx, { email, ticket: '' }), ExitCode.USAGE, 'usage');
    await expectCode(recoverYes(scratch.ctx, { email, ticket: 'T 1' }), ExitCode.DATAERR, 'bad_ticket');
    await expectCode(
      recoverYes(scratch.ctx, { email, ticket: 'T-1', reason: 'x'.repeat(600) }),
      ExitCode.DATAERR,
      'bad_reason',
    );
    await expectCode(
      recoverYes(scratch.ctx, { email, ticket: 'T-1', temporaryCodeTtlMs: 8 * 24 * HOUR }),
      ExitCode.USAGE,
    );
    await expectCode(recoverYes(scratch.ctx, { email: 'nobody@example.com', ticket: 'T-1' }), ExitCode.NOUSER);
    await expectCode(recoverYes(scratch.ctx, { email: ` ${email}`, ticket: 'T-1' }), ExitCode.DATAERR, 'bad_address');
    await expectCode(recoverYes(scratch.ctx, { email: email.toUpperCase(), ticket: 'T-1' }), ExitCode.NOUSER);
    expect(await snapshot(scratch.ctx)).toEqual(before);
  });

  it('changes nothing when the agent does not confirm', async () => {
    const email = await fresh('cancel');
    await enableTotp(scratch.ctx, email);
    const before = await snapshot(scratch.ctx);
    await expectCode(
      recoverAccount(scratch.ctx, { email, ticket: 'T-3' }, async () => {
        throw new Mail2faError('cancelled', 'cancelled', ExitCode.CANCELLED);
      }),
      ExitCode.CANCELLED,
    );
    expect(await snapshot(scratch.ctx)).toEqual(before);
  });

  it('says "nothing to recover" for an account without 2FA, and audits the lookup', async () => {
    const email = await fresh('off');
    const before = await snapshot(scratch.ctx);
    let asked = false;
    const result = await recoverAccount(
      scratch.ctx,
      { email, ticket: 'T-4', reason: 'caller says locked out' },
      async () => {
        asked = true;
      },
    );
    expect(asked).toBe(false);
    expect(result).toMatchObject({ outcome: 'nothing-to-recover', email, ticket: 'T-4' });
    expect(customerReply(result)).toContain('not turned on');
    const after = await snapshot(scratch.ctx);
    // Only one more audit row; nothing else changed.
    expect({ ...after, [scratch.ctx.tables.audit]: [] }).toEqual({ ...before, [scratch.ctx.tables.audit]: [] });
    expect(after[scratch.ctx.tables.audit]!.length).toBe(before[scratch.ctx.tables.audit]!.length + 1);
    expect(await auditRows(scratch.ctx, { account: email })).toMatchObject([
      {
        action: 'recover-lookup',
        outcome: 'ok',
        ticket: 'T-4',
        reason: 'caller says locked out',
        actor: 'agent-alice',
      },
    ]);
  });

  it('clears a lock even without a factor', async () => {
    const email = await fresh('lockonly');
    await accountTransaction(scratch.ctx, email, async () => null);
    await lockAccount(scratch.ctx, email, clock.now + 60_000);
    const result = (await recoverYes(scratch.ctx, { email, ticket: 'T-5' })) as RecoveryDone;
    expect(result).toMatchObject({ outcome: 'recovered', lockCleared: true, removed: { method: null } });
    expect((await statusOf(scratch.ctx, email)).lockedUntil).toBeNull();
  });

  it('refuses with 75 when the account changed after the agent looked, changing nothing but a refusal row', async () => {
    const email = await fresh('race');
    await enableTotp(scratch.ctx, email);
    let before: Awaited<ReturnType<typeof snapshot>> | undefined;
    const err = await expectCode(
      recoverAccount(scratch.ctx, { email, ticket: 'T-6' }, async () => {
        // Meanwhile the user re-enrols (another phone): the agent confirmed something that no longer exists.
        clock.advance(10);
        await accountTransaction(scratch.ctx, email, (tx) =>
          storeFactor(tx.trx, scratch.ctx.tables, tx.vault(), tx.now, {
            account: email,
            method: 'totp',
            totpSecret: generateTotpSecret(),
          }),
        );
        before = await snapshot(scratch.ctx);
      }),
      ExitCode.TEMPFAIL,
      'changed',
    );
    expect(err.message).toMatch(/changed since it was shown/);
    expect(err.hint).toMatch(/Look again/);
    const after = await snapshot(scratch.ctx);
    expect({ ...after, [scratch.ctx.tables.audit]: [] }).toEqual({ ...before!, [scratch.ctx.tables.audit]: [] });
    expect(await auditRows(scratch.ctx, { account: email, action: 'recover' })).toMatchObject([
      { outcome: 'refused', ticket: 'T-6' },
    ]);
    expect(await readFactor((await scratch.ctx.db()).knex, scratch.ctx.tables, email)).toBeDefined();
  });

  describe('--temporary-code', () => {
    it('keeps 2FA required; the code works once, and status shows the account as requiring 2FA', async () => {
      const email = await fresh('temp');
      const { recoveryCodes } = await enableTotp(scratch.ctx, email);
      const result = (await recoverYes(scratch.ctx, {
        email,
        ticket: 'T-7',
        reason: 'new phone',
        temporaryCodeTtlMs: 24 * HOUR,
      })) as RecoveryDone;
      const code = result.temporaryCode!.code;
      expect(parseTemporaryCode(code)).toBe(code);
      expect(TEMPORARY_CODE_BITS).toBeGreaterThanOrEqual(64);
      expect(result.temporaryCode!.expiresAt).toBe(isoTime(clock.now + 24 * HOUR));
      expect(result.twoFactorRequired).toBe(true);
      expect(customerReply(result)).toContain(code);
      expect(customerReply(result)).toContain('Settings > Password > Two-Factor Authentication');

      let status = await statusOf(scratch.ctx, email);
      expect(status).toMatchObject({
        enabled: true,
        method: null,
        source: 'mail2fa',
        temporaryCode: { state: 'pending' },
      });

      // Stored only as a keyed hash; never in the audit trail.
      const dump = await dumpText(scratch.ctx);
      expect(dump).not.toContain(code);
      expect(dump).not.toContain(code.replace(/-/g, ''));
      const audit = await auditRows(scratch.ctx, { account: email, action: 'recover' });
      expect(audit).toMatchObject([{ outcome: 'ok', actor: 'agent-alice', ticket: 'T-7', reason: 'new phone' }]);
      expect(JSON.parse(audit[0]!.detail!)).toMatchObject({ temporaryCode: true });

      // The old recovery codes are gone; the temporary code works once.
      expect(await signInWith(scratch.ctx, email, recoveryCodes[0]!)).toBeNull();
      expect(await signInWith(scratch.ctx, email, code.toUpperCase())).toBe('temporary');
      expect(await signInWith(scratch.ctx, email, code)).toBeNull();
      status = await statusOf(scratch.ctx, email);
      expect(status).toMatchObject({ enabled: true, temporaryCode: { state: 'used' } });
    });

    it('does not work after it expires, and 2FA stays required (fail closed)', async () => {
      const email = await fresh('expire');
      await enableTotp(scratch.ctx, email);
      const result = (await recoverYes(scratch.ctx, {
        email,
        ticket: 'T-8',
        temporaryCodeTtlMs: 2 * HOUR,
      })) as RecoveryDone;
      clock.advance(2 * HOUR - 1);
      expect((await statusOf(scratch.ctx, email)).temporaryCode!.state).toBe('pending');
      clock.advance(1);
      expect(await signInWith(scratch.ctx, email, result.temporaryCode!.code)).toBeNull();
      expect(await statusOf(scratch.ctx, email)).toMatchObject({ enabled: true, temporaryCode: { state: 'expired' } });
    });

    it('replaces an older temporary code with a newer one; a plain recovery turns 2FA off', async () => {
      const email = await fresh('replace');
      await enableTotp(scratch.ctx, email);
      const first = (await recoverYes(scratch.ctx, {
        email,
        ticket: 'T-9',
        temporaryCodeTtlMs: 24 * HOUR,
      })) as RecoveryDone;
      clock.advance(60_000);
      const second = (await recoverYes(scratch.ctx, {
        email,
        ticket: 'T-9',
        reason: 'lost the first code',
        temporaryCodeTtlMs: 24 * HOUR,
      })) as RecoveryDone;
      expect(second.outcome).toBe('recovered');
      expect(second.before).toMatchObject({ enabled: true, method: null, temporaryCode: { state: 'pending' } });
      expect(second.temporaryCode!.code).not.toBe(first.temporaryCode!.code);
      const db = await scratch.ctx.db();
      expect(await db.knex(scratch.ctx.tables.challenge).where({ account: email, purpose: 'temporary' })).toHaveLength(
        1,
      );
      expect(await signInWith(scratch.ctx, email, first.temporaryCode!.code)).toBeNull();
      expect(await signInWith(scratch.ctx, email, second.temporaryCode!.code)).toBe('temporary');

      const third = (await recoverYes(scratch.ctx, {
        email,
        ticket: 'T-9',
        reason: 'customer wants 2FA off',
      })) as RecoveryDone;
      expect(third.outcome).toBe('recovered');
      expect(await statusOf(scratch.ctx, email)).toMatchObject({ enabled: false, temporaryCode: null });
      expect((await recoverYes(scratch.ctx, { email, ticket: 'T-9' })).outcome).toBe('nothing-to-recover');
    });

    it('enrolling a new factor ends the temporary state', async () => {
      const email = await fresh('reenrol');
      await enableSms(scratch.ctx, email);
      await recoverYes(scratch.ctx, { email, ticket: 'T-10', temporaryCodeTtlMs: HOUR });
      await enableTotp(scratch.ctx, email);
      expect(await statusOf(scratch.ctx, email)).toMatchObject({ enabled: true, method: 'totp', temporaryCode: null });
    });
  });

  it('uses the configured ticket pattern', async () => {
    const file = join(scratch.tdb.dir, 'tickets.json');
    writeFileSync(file, JSON.stringify({ ticketPattern: 'CS-[0-9]{4}' }));
    const strict = await testContext(scratch.tdb, { clock, configPath: file });
    try {
      const email = await fresh('pattern');
      await enableTotp(scratch.ctx, email);
      await expectCode(recoverYes(strict, { email, ticket: 'T-1001' }), ExitCode.DATAERR, 'bad_ticket');
      await expectCode(recoverYes(strict, { email, ticket: 'CS-12345' }), ExitCode.DATAERR, 'bad_ticket');
      expect((await recoverYes(strict, { email, ticket: 'CS-1234' })).outcome).toBe('recovered');
    } finally {
      await strict.close();
    }
  });
});
