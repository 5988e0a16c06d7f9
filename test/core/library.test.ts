/**
 * The library entry point: in-process through src/index.ts, and the README's webmail example executed as written
 * with node against the BUILT package (`npm run build` first), imported by its package name.
 */
import { mkdirSync, readFileSync, symlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Mail2faError, openMail2fa, type Mail2fa } from '../../src/index.js';
import { totpCode } from '../../src/totp/totp.js';
import { runNode } from '../helpers/cli.js';
import { describeEachDb, useTestDb } from '../helpers/db.js';
import { TEST_KEY, addMailbox, testClock } from '../helpers/context.js';
import {
  accountState,
  enrolSms,
  enrolTotp,
  issueTemporaryCode,
  sendSignInCode,
  wrongTotp,
} from '../helpers/seed-2fa.js';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));
const README_PART = join(ROOT, 'docs', 'library.md');

/** The code block that follows `<!-- example: NAME -->` in the README part. */
function readmeExample(name: string): string {
  const text = readFileSync(README_PART, 'utf8');
  const m = new RegExp(`<!-- example: ${name} -->\\n\`\`\`js\\n([\\s\\S]*?)\\n\`\`\``).exec(text);
  if (!m) throw new Error(`no example "${name}" in ${README_PART}`);
  return m[1]!;
}

/** Runs a README example saved as `file`, from its folder, with exactly `env`. */
const runExample = (file: string, args: string[], env: Record<string, string>) =>
  runNode([file, ...args], { env, cwd: join(file, '..') });

describeEachDb('library', (kind) => {
  let mfa: Mail2fa;
  const clock = testClock();
  const scratch = useTestDb(kind, { context: { clock } });
  let n = 0;
  const fresh = () => `lib${++n}@example.com`;

  beforeAll(async () => {
    mfa = await openMail2fa({
      config: { db: { url: scratch.tdb.url } },
      env: { MAIL2FA_KEY: TEST_KEY },
      clock: () => clock.now,
      actor: 'webmail',
    });
  });
  afterAll(async () => {
    await mfa?.close();
  });

  describe('in process', () => {
    it('verifyCode: accepted once, then rejected — as data; audit actor is the one given', async () => {
      const a = await enrolTotp(scratch.ctx, fresh());
      const code = totpCode(a.secret, clock.now);
      expect(await mfa.requiresCode(a.email)).toBe(true);
      expect(await mfa.verifyCode(a.email, code)).toEqual({
        ok: true,
        outcome: 'accepted',
        email: a.email,
        kind: 'totp',
        recoveryCodesLeft: 10,
        sessionsRevokedAt: null,
      });
      expect(await mfa.verifyCode(a.email, code)).toEqual({
        ok: false,
        outcome: 'rejected',
        email: a.email,
        reason: 'wrong_code',
        message: 'wrong, expired or already used code',
        failedAttempts: 1,
        lockedUntil: null,
        sessionsRevokedAt: null,
      });
      const db = await scratch.ctx.db();
      const actors = (await db.knex(scratch.ctx.tables.audit).where({ account: a.email }).pluck('actor')) as string[];
      expect(actors).toEqual(['webmail', 'webmail']);
    });

    it('every code kind, and a temporary code on an account without a factor', async () => {
      const s = await enrolSms(scratch.ctx, fresh());
      const sms = await sendSignInCode(scratch.ctx, s.email);
      expect(await mfa.verifyCode(s.email, sms)).toMatchObject({ ok: true, kind: 'sms' });
      expect(await mfa.verifyCode(s.email, s.recoveryCodes[0]!)).toMatchObject({
        ok: true,
        kind: 'recovery',
        recoveryCodesLeft: 9,
      });
      const t = await enrolTotp(scratch.ctx, fresh());
      const temp = await issueTemporaryCode(scratch.ctx, t.email);
      expect(await mfa.requiresCode(t.email)).toBe(true);
      expect(await mfa.verifyCode(t.email, temp)).toMatchObject({ ok: true, kind: 'temporary' });
      // Until a new factor is enrolled, 2FA stays required (recover's marker), and the used code is refused.
      expect(await mfa.requiresCode(t.email)).toBe(true);
      expect(await mfa.verifyCode(t.email, temp)).toMatchObject({
        ok: false,
        outcome: 'rejected',
        reason: 'wrong_code',
      });
    });

    it('locked, malformed and unknown are data too; times are Dates', async () => {
      const a = await enrolTotp(scratch.ctx, fresh());
      for (let i = 0; i < 5; i++) await mfa.verifyCode(a.email, wrongTotp(a.secret, clock.now));
      const locked = await mfa.verifyCode(a.email, totpCode(a.secret, clock.now));
      expect(locked).toMatchObject({ ok: false, outcome: 'locked' });
      expect(locked.ok === false && locked.outcome === 'locked' && locked.lockedUntil.getTime()).toBe(
        clock.now + 15 * 60_000,
      );
      expect((await mfa.status(a.email)).lockedUntil).not.toBeNull();
      clock.advance(15 * 60_000);
      expect(await mfa.verifyCode(a.email, totpCode(a.secret, clock.now))).toMatchObject({ ok: true });

      for (const bad of ['12345', ' 123456', '１２３４５６', ''])
        expect(await mfa.verifyCode(a.email, bad)).toMatchObject({ ok: false, outcome: 'malformed' });
      expect(await mfa.verifyCode('bad address', '123456')).toMatchObject({ ok: false, outcome: 'malformed' });
      expect(await mfa.verifyCode('ghost@example.com', '123456')).toMatchObject({
        ok: false,
        outcome: 'unknown_account',
      });
      expect((await accountState(scratch.ctx, a.email)).failed).toBe(0);
      expect(await mfa.status('ghost@example.com')).toMatchObject({ state: 'unknown' });
      // Fail closed, and no exception: an unknown or malformed address needs a code, which verifyCode then refuses.
      expect(await mfa.requiresCode('ghost@example.com')).toBe(true);
      expect(await mfa.requiresCode('Ghost@example.com ')).toBe(true);
      expect(await mfa.sessionsRevokedAt('not an address')).toBeNull();
    });

    it('status and sessionsRevokedAt', async () => {
      const a = await enrolTotp(scratch.ctx, fresh());
      expect(await mfa.status(a.email)).toMatchObject({
        email: a.email,
        state: 'ok',
        enabled: true,
        method: 'totp',
        recoveryCodesLeft: 10,
      });
      expect(await mfa.sessionsRevokedAt(a.email)).toBeNull();
      const db = await scratch.ctx.db();
      await db
        .knex(scratch.ctx.tables.accountState)
        .where({ account: a.email })
        .update({ sessions_revoked_at: clock.now + 123 });
      expect(await mfa.sessionsRevokedAt(a.email)).toEqual(new Date(clock.now + 123));
      const other = fresh();
      await addMailbox(scratch.ctx, other);
      expect(await mfa.requiresCode(other)).toBe(false);
      expect(await mfa.status(other)).toMatchObject({ enabled: false });
    });

    it('configuration problems throw at open, with an exit code and no secret', async () => {
      const err = await openMail2fa({
        config: { db: { url: scratch.tdb.url }, nonsense: 1 },
        env: { MAIL2FA_KEY: TEST_KEY },
      }).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(Mail2faError);
      expect(err).toMatchObject({ exitCode: 78 });
      const keyErr = await openMail2fa({ db: scratch.tdb.url, env: { MAIL2FA_KEY: 'short' } }).catch((e: unknown) => e);
      expect(keyErr).toMatchObject({ exitCode: 78 });
      const closed = await openMail2fa({ db: scratch.tdb.url, env: { MAIL2FA_KEY: TEST_KEY } });
      await closed.close();
      await expect(closed.verifyCode('a@example.com', '123456')).rejects.toMatchObject({ code: 'closed' });
    });
  });

  describe('the README example, executed', () => {
    let dir: string;
    let env: Record<string, string>;
    let script: string;
    beforeAll(() => {
      dir = join(scratch.tdb.dir, 'webmail');
      // `import … from 'mail2fa'` resolves like an installed package: node_modules/mail2fa → this repository.
      mkdirSync(join(dir, 'node_modules'), { recursive: true });
      symlinkSync(ROOT, join(dir, 'node_modules', 'mail2fa'), 'dir');
      script = join(dir, 'signin-2fa.mjs');
      writeFileSync(script, readmeExample('webmail-signin'));
      const keyFile = join(dir, 'mail2fa.key');
      writeFileSync(keyFile, `${TEST_KEY}\n`, { mode: 0o600 });
      const config = join(dir, 'config.yaml');
      writeFileSync(config, `db:\n  url: "${scratch.tdb.url}"\nkey:\n  file: ${keyFile}\n`);
      env = { PATH: process.env.PATH ?? '', HOME: dir, MAIL2FA_CONFIG: config };
    });

    it('accepts a code once, then rejects it; says when no code is needed', async () => {
      const a = await enrolTotp(scratch.ctx, fresh());
      const code = totpCode(a.secret, Date.now());
      const first = await runExample(script, [a.email, code], env);
      expect(first.stderr).toBe('');
      expect(first).toMatchObject({
        code: 0,
        stdout: 'accepted (totp), 10 recovery codes left\nsessions revoked: never\n',
      });
      const again = await runExample(script, [a.email, code], env);
      expect(again).toMatchObject({
        code: 1,
        stdout: 'rejected: wrong, expired or already used code\nsessions revoked: never\n',
      });

      const rc = await runExample(script, [a.email, a.recoveryCodes[2]!], env);
      expect(rc).toMatchObject({
        code: 0,
        stdout: 'accepted (recovery), 9 recovery codes left\nsessions revoked: never\n',
      });

      const off = fresh();
      await addMailbox(scratch.ctx, off);
      const db = await scratch.ctx.db();
      await db
        .knex(scratch.ctx.tables.accountState)
        .insert({ account: off, failed_attempts: 0, sessions_revoked_at: Date.UTC(2026, 0, 2, 3, 4, 5, 678) });
      expect(await runExample(script, [off, '123456'], env)).toMatchObject({
        code: 0,
        stdout: `${off}: 2FA is off, no code needed\nsessions revoked: 2026-01-02T03:04:05.678Z\n`,
      });
    });

    it('an unknown or malformed address is an answer, not a stack trace', async () => {
      const ghost = await runExample(script, ['ghost@example.com', '123456'], env);
      expect(ghost).toMatchObject({
        code: 1,
        stderr: '',
        stdout: 'rejected: unknown account: ghost@example.com\nsessions revoked: never\n',
      });
      const bad = await runExample(script, ['not an address', '123456'], env);
      expect(bad).toMatchObject({
        code: 1,
        stderr: '',
        stdout: expect.stringMatching(
          /^rejected: invalid email address "not an address": contains whitespace\nsessions revoked: never\n$/,
        ),
      });
    });

    it('reports a lock', async () => {
      const a = await enrolTotp(scratch.ctx, fresh());
      const db = await scratch.ctx.db();
      await db
        .knex(scratch.ctx.tables.accountState)
        .where({ account: a.email })
        .update({ failed_attempts: 5, locked_until: Date.now() + 600_000 });
      const r = await runExample(script, [a.email, totpCode(a.secret, Date.now())], env);
      expect(r.code).toBe(1);
      expect(r.stdout).toMatch(/^locked until \d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.000Z\n/);
    });
  });
});
