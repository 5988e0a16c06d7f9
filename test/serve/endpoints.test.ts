/**
 * `mail2fa serve`: every endpoint of docs/serve.md over the real binary's Unix socket, on SQLite and MariaDB —
 * happy paths, negative answers and error statuses, and the audit rows written on the end user's behalf.
 */
import { statSync } from 'node:fs';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { totpCode } from '../../src/totp/totp.js';
import { openMail2fa } from '../../src/index.js';
import { TEST_KEY, addMailbox } from '../helpers/context.js';
import { describeEachDb, useTestDb } from '../helpers/db.js';
import {
  PASSWORD,
  accountState,
  auditRows,
  enrolSms,
  enrolTotp,
  issueTemporaryCode,
  lastOutboxCode,
  outboxFile,
  wrongTotp,
} from '../helpers/seed-2fa.js';
import { runCli } from '../helpers/cli.js';
import { startServe, type ServeProcess } from '../helpers/serve.js';

const WHO = { ip: '203.0.113.7', userAgent: 'Mozilla/5.0 (test)' };
const ISO_MS = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/;

describeEachDb('serve endpoints', (kind) => {
  const scratch = useTestDb(kind);
  let serve: ServeProcess;

  beforeAll(async () => {
    serve = await startServe(scratch.tdb);
  }, 30_000);
  afterAll(async () => {
    await serve?.stop();
  });

  it('listens on a socket with mode 0660 and answers /healthz', async () => {
    expect(statSync(serve.socketPath).mode & 0o777).toBe(0o660);
    const r = await serve.call('/healthz');
    expect(r.status).toBe(200);
    expect(r.body).toMatchObject({ ok: true, database: 'ok', schema: 'current', key: 'loaded' });
    expect(r.headers['content-type']).toBe('application/json; charset=utf-8');
  });

  it('requires-code: true with a factor, false without; 404 unknown; 400 naming the field', async () => {
    const on = await enrolTotp(scratch.ctx, `rc-on-${kind}@example.com`);
    await addMailbox(scratch.ctx, `rc-off-${kind}@example.com`, PASSWORD);
    expect((await serve.call('/v1/requires-code', { email: on.email })).body).toEqual({
      ok: true,
      email: on.email,
      requiresCode: true,
    });
    expect((await serve.call('/v1/requires-code', { email: `rc-off-${kind}@example.com` })).body).toEqual({
      ok: true,
      email: `rc-off-${kind}@example.com`,
      requiresCode: false,
    });
    const unknown = await serve.call('/v1/requires-code', { email: `nobody-${kind}@example.com` });
    expect(unknown.status).toBe(404);
    expect(unknown.body).toMatchObject({ ok: false, error: { code: 'unknown_account' } });
    const bad = await serve.call('/v1/requires-code', { email: ` ${on.email}` });
    expect(bad.status).toBe(400);
    expect(bad.body).toMatchObject({ ok: false, error: { code: 'bad_request', field: 'email' } });
    const missing = await serve.call('/v1/requires-code', {});
    expect(missing.body).toMatchObject({ error: { field: 'email' } });
    const extra = await serve.call('/v1/requires-code', { email: on.email, emial: 'x' });
    expect(extra.status).toBe(400);
    expect(extra.body).toMatchObject({ error: { field: 'emial' } });
  });

  it('verify: accepted once (the library answer), replay rejected, audit row as serve:<client> with ip and user agent', async () => {
    const a = await enrolTotp(scratch.ctx, `v-${kind}@example.com`);
    const code = totpCode(a.secret, Date.now());
    const first = await serve.call('/v1/verify', { email: a.email, code, ...WHO });
    expect(first.status).toBe(200);
    expect(first.body).toEqual({
      ok: true,
      outcome: 'accepted',
      email: a.email,
      kind: 'totp',
      recoveryCodesLeft: 10,
      sessionsRevokedAt: null,
    });
    const replay = await serve.call('/v1/verify', { email: a.email, code, ...WHO });
    expect(replay.status).toBe(200);
    expect(replay.body).toMatchObject({
      ok: false,
      outcome: 'rejected',
      reason: 'wrong_code',
      failedAttempts: 1,
      lockedUntil: null,
    });
    const rows = await auditRows(scratch.ctx, a.email);
    const ok = rows.find((r) => r.action === 'verify' && r.outcome === 'ok')!;
    expect(ok.actor).toBe('serve:roundcube');
    expect(JSON.parse(ok.detail!)).toEqual({ code: 'totp', ip: WHO.ip, userAgent: WHO.userAgent });
    // Without the header: the --client-name default.
    await serve
      .call(
        '/v1/verify',
        { email: a.email, code: a.recoveryCodes[0], ip: '::1' },
        { headers: { 'Mail2fa-Client': '' } },
      )
      .then((r) => expect(r.status).toBe(400));
  });

  it('verify: 400 for a malformed code (nothing counted) or missing ip, 404 unknown, 429 locked with lockedUntil', async () => {
    const a = await enrolTotp(scratch.ctx, `vl-${kind}@example.com`);
    const malformed = await serve.call('/v1/verify', { email: a.email, code: '12 456', ...WHO });
    expect(malformed.status).toBe(400);
    expect(malformed.body).toMatchObject({ ok: false, outcome: 'malformed', error: { field: 'code' } });
    expect((await accountState(scratch.ctx, a.email)).failed).toBe(0);
    const noIp = await serve.call('/v1/verify', { email: a.email, code: '123456' });
    expect(noIp.body).toMatchObject({ error: { field: 'ip', message: '"ip" is required' } });
    const badIp = await serve.call('/v1/verify', { email: a.email, code: '123456', ip: 'localhost' });
    expect(badIp.body).toMatchObject({ error: { field: 'ip' } });
    const unknown = await serve.call('/v1/verify', { email: `nobody-${kind}@example.com`, code: '123456', ...WHO });
    expect(unknown.status).toBe(404);
    expect(unknown.body).toMatchObject({ outcome: 'unknown_account', error: { code: 'unknown_account' } });
    const wrong = wrongTotp(a.secret, Date.now());
    for (let i = 0; i < 5; i++) await serve.call('/v1/verify', { email: a.email, code: wrong, ...WHO });
    const locked = await serve.call('/v1/verify', { email: a.email, code: totpCode(a.secret, Date.now()), ...WHO });
    expect(locked.status).toBe(429);
    expect(locked.body).toMatchObject({ ok: false, outcome: 'locked', error: { code: 'locked' } });
    expect(locked.body.lockedUntil).toMatch(ISO_MS);
    const disable = await serve.call('/v1/disable', {
      email: a.email,
      password: PASSWORD,
      code: totpCode(a.secret, Date.now()),
      ...WHO,
    });
    expect(disable.status).toBe(429);
    expect(disable.body).toMatchObject({ outcome: 'locked', lockedUntil: locked.body.lockedUntil });
  });

  it('enrol an app: start (otpauth URI, grouped secret, SVG QR) → confirm (10 recovery codes, sessions revoked)', async () => {
    const email = `ea-${kind}@example.com`;
    await addMailbox(scratch.ctx, email, PASSWORD);
    const wrongPw = await serve.call('/v1/enrol/start', { email, password: 'nope', method: 'app', ...WHO });
    expect(wrongPw.body).toEqual({
      ok: false,
      outcome: 'wrong_password',
      email,
      message: 'wrong password',
      lockedUntil: null,
    });
    const start = await serve.call('/v1/enrol/start', { email, password: PASSWORD, method: 'app', ...WHO });
    expect(start.status).toBe(200);
    const b = start.body as {
      enrolmentId: string;
      otpauthUri: string;
      secretGroups: string[];
      qrSvg: string;
      expiresAt: string;
      method: string;
    };
    expect(b.method).toBe('totp');
    expect(b.enrolmentId).toMatch(/^[0-9a-f]{24}$/);
    expect(b.expiresAt).toMatch(ISO_MS);
    const secret = new URL(b.otpauthUri).searchParams.get('secret')!;
    expect(b.secretGroups.join('')).toBe(secret);
    expect(b.secretGroups.every((g) => g.length <= 4)).toBe(true);
    expect(b.qrSvg).toMatch(/^<svg[\s\S]*<\/svg>\s*$/);
    const wrong = await serve.call('/v1/enrol/confirm', {
      email,
      enrolmentId: b.enrolmentId,
      code: wrongTotp(secret, Date.now()),
      ...WHO,
    });
    expect(wrong.body).toMatchObject({ ok: false, outcome: 'wrong_code', email });
    const confirm = await serve.call('/v1/enrol/confirm', {
      email,
      enrolmentId: b.enrolmentId,
      code: totpCode(secret, Date.now()),
      ...WHO,
    });
    expect(confirm.status).toBe(200);
    const c = confirm.body as { recoveryCodes: string[]; sessionsRevokedAt: string };
    expect(confirm.body).toMatchObject({ ok: true, email, method: 'totp', phoneMasked: null });
    expect(c.recoveryCodes).toHaveLength(10);
    expect(c.sessionsRevokedAt).toMatch(ISO_MS);
    expect(Date.parse(c.sessionsRevokedAt)).toBe((await accountState(scratch.ctx, email)).sessionsRevokedAt);
    const again = await serve.call('/v1/enrol/confirm', {
      email,
      enrolmentId: b.enrolmentId,
      code: totpCode(secret, Date.now()),
      ...WHO,
    });
    expect(again.status).toBe(409);
    expect(again.body).toMatchObject({ error: { code: 'no_pending_enrolment' } });
    const twice = await serve.call('/v1/enrol/start', { email, password: PASSWORD, method: 'app', ...WHO });
    expect(twice.status).toBe(409);
    expect(twice.body).toMatchObject({ error: { code: 'already_enabled' } });
    const revoked = await serve.call('/v1/sessions-revoked-at', { email });
    expect(revoked.body).toEqual({
      ok: true,
      email,
      sessionsRevokedAt: c.sessionsRevokedAt,
      sessionsRevokedAtMs: Date.parse(c.sessionsRevokedAt),
    });
    const status = await serve.call('/v1/status', { email });
    expect(status.body).toMatchObject({
      ok: true,
      email,
      state: 'ok',
      enabled: true,
      method: 'totp',
      recoveryCodesLeft: 10,
    });
    expect(status.body.enrolledAt).toMatch(ISO_MS);
  });

  it('enrol SMS: 400 without a phone, start texts a code, confirm with it', async () => {
    const email = `es-${kind}@example.com`;
    await addMailbox(scratch.ctx, email, PASSWORD);
    const noPhone = await serve.call('/v1/enrol/start', { email, password: PASSWORD, method: 'sms', ...WHO });
    expect(noPhone.body).toMatchObject({ error: { field: 'phone' } });
    const badPhone = await serve.call('/v1/enrol/start', {
      email,
      password: PASSWORD,
      method: 'sms',
      phone: '12',
      ...WHO,
    });
    expect(badPhone.status).toBe(400);
    expect(badPhone.body).toMatchObject({ error: { field: 'phone' } });
    const start = await serve.call('/v1/enrol/start', {
      email,
      password: PASSWORD,
      method: 'sms',
      phone: '011-45-20123456',
      ...WHO,
    });
    expect(start.body).toMatchObject({ ok: true, method: 'sms', phoneMasked: '+45 ****3456' });
    const code = lastOutboxCode(outboxFile(scratch.ctx));
    const confirm = await serve.call('/v1/enrol/confirm', { email, enrolmentId: start.body.enrolmentId, code, ...WHO });
    expect(confirm.body).toMatchObject({ ok: true, method: 'sms', phoneMasked: '+45 ****3456' });
  });

  it('send-code texts a sign-in code that verify accepts; 409 for an app account', async () => {
    const a = await enrolSms(scratch.ctx, `sc-${kind}@example.com`);
    const sent = await serve.call('/v1/send-code', { email: a.email, ...WHO });
    expect(sent.status).toBe(200);
    expect(sent.body).toMatchObject({ ok: true, email: a.email, phoneMasked: '+45 ****3456' });
    expect(sent.body.expiresAt).toMatch(ISO_MS);
    const code = lastOutboxCode(outboxFile(scratch.ctx));
    expect((await serve.call('/v1/verify', { email: a.email, code, ...WHO })).body).toMatchObject({
      ok: true,
      kind: 'sms',
    });
    const app = await enrolTotp(scratch.ctx, `sc-app-${kind}@example.com`);
    const notSms = await serve.call('/v1/send-code', { email: app.email, ...WHO });
    expect(notSms.status).toBe(409);
    expect(notSms.body).toMatchObject({ error: { code: 'not_sms' } });
  });

  it('disable: wrong password is an answer; SMS code on request; then off; again: changed false', async () => {
    const a = await enrolSms(scratch.ctx, `d-${kind}@example.com`);
    const wrongPw = await serve.call('/v1/disable/send-code', { email: a.email, password: 'nope', ...WHO });
    expect(wrongPw.body).toMatchObject({ ok: false, outcome: 'wrong_password' });
    const sent = await serve.call('/v1/disable/send-code', { email: a.email, password: PASSWORD, ...WHO });
    expect(sent.body).toMatchObject({ ok: true, phoneMasked: '+45 ****3456' });
    const code = lastOutboxCode(outboxFile(scratch.ctx));
    const bad = await serve.call('/v1/disable', { email: a.email, password: PASSWORD, code: 'x', ...WHO });
    expect(bad.body).toMatchObject({ error: { field: 'code' } });
    const off = await serve.call('/v1/disable', { email: a.email, password: PASSWORD, code, ...WHO });
    expect(off.body).toMatchObject({ ok: true, email: a.email, changed: true, method: 'sms', codeKind: 'sms' });
    expect(off.body.sessionsRevokedAt).toMatch(ISO_MS);
    expect(
      (await serve.call('/v1/disable', { email: a.email, password: PASSWORD, code: '123456', ...WHO })).body,
    ).toEqual({ ok: true, email: a.email, changed: false });
    expect((await serve.call('/v1/requires-code', { email: a.email })).body).toMatchObject({ requiresCode: false });
  });

  it('recovery-codes regenerate: with a recovery code → 10 new ones; the old ones stop working; 409 when 2FA is off', async () => {
    const a = await enrolTotp(scratch.ctx, `rg-${kind}@example.com`);
    const wrong = await serve.call('/v1/recovery-codes/regenerate', {
      email: a.email,
      password: PASSWORD,
      code: wrongTotp(a.secret, Date.now()),
      ...WHO,
    });
    expect(wrong.body).toMatchObject({ ok: false, outcome: 'wrong_code' });
    const r = await serve.call('/v1/recovery-codes/regenerate', {
      email: a.email,
      password: PASSWORD,
      code: a.recoveryCodes[0],
      ...WHO,
    });
    expect(r.body).toMatchObject({ ok: true, method: 'totp', codeKind: 'recovery' });
    const fresh = r.body.recoveryCodes as string[];
    expect(fresh).toHaveLength(10);
    expect(fresh.some((c) => a.recoveryCodes.includes(c))).toBe(false);
    expect((await serve.call('/v1/verify', { email: a.email, code: a.recoveryCodes[1], ...WHO })).body).toMatchObject({
      ok: false,
      outcome: 'rejected',
    });
    expect((await serve.call('/v1/verify', { email: a.email, code: fresh[0], ...WHO })).body).toMatchObject({
      ok: true,
      kind: 'recovery',
      recoveryCodesLeft: 9,
    });
    await addMailbox(scratch.ctx, `rg-off-${kind}@example.com`, PASSWORD);
    const off = await serve.call('/v1/recovery-codes/regenerate', {
      email: `rg-off-${kind}@example.com`,
      password: PASSWORD,
      code: '123456',
      ...WHO,
    });
    expect(off.status).toBe(409);
    expect(off.body).toMatchObject({ error: { code: 'not_enabled' } });
  });

  it('status and sessions-revoked-at: 404 for unknown accounts; null before any revocation', async () => {
    expect((await serve.call('/v1/status', { email: `nobody-${kind}@example.com` })).status).toBe(404);
    expect((await serve.call('/v1/sessions-revoked-at', { email: `nobody-${kind}@example.com` })).status).toBe(404);
    await addMailbox(scratch.ctx, `st-${kind}@example.com`, PASSWORD);
    expect((await serve.call('/v1/sessions-revoked-at', { email: `st-${kind}@example.com` })).body).toEqual({
      ok: true,
      email: `st-${kind}@example.com`,
      sessionsRevokedAt: null,
      sessionsRevokedAtMs: null,
    });
    expect((await serve.call('/v1/status', { email: `st-${kind}@example.com` })).body).toMatchObject({
      ok: true,
      enabled: false,
      method: null,
    });
  });

  it('HTTP errors are JSON: 404 path, 405 method, 400 bad JSON / not an object, 413 over 16 KiB', async () => {
    expect((await serve.call('/v1/nope', {})).body).toMatchObject({ ok: false, error: { code: 'not_found' } });
    const get = await serve.call('/v1/verify', undefined, { method: 'GET' });
    expect(get.status).toBe(405);
    expect(get.headers.allow).toBe('POST');
    expect((await serve.call('/v1/verify', undefined, { rawBody: '{"email":' })).body).toMatchObject({
      error: { code: 'bad_json' },
    });
    expect((await serve.call('/v1/verify', undefined, { rawBody: '[1]' })).status).toBe(400);
    const huge = await serve.call('/v1/verify', undefined, {
      rawBody: JSON.stringify({ email: 'a@b.c', code: 'x'.repeat(20_000), ip: '::1' }),
    });
    expect(huge.status).toBe(413);
    expect(huge.body).toMatchObject({ ok: false, error: { code: 'body_too_large' } });
    // The service is still there.
    expect((await serve.call('/healthz')).status).toBe(200);
  });

  it('doctor --serve checks the running service; exit 69 when nothing answers', async () => {
    const r = await runCli(['doctor', '--serve', serve.socketPath, '--json']);
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout) as { ok: boolean; checks: { name: string; status: string }[] };
    expect(doc.ok).toBe(true);
    expect(doc.checks.map((c) => [c.name, c.status])).toEqual([
      ['service', 'ok'],
      ['service database', 'ok'],
      ['service schema', 'ok'],
      ['service key', 'ok'],
    ]);
    const gone = await runCli(['doctor', '--serve', `${serve.socketPath}.missing`]);
    expect(gone.code).toBe(69);
    expect(gone.stdout).toMatch(/FAIL\s+service\s+no answer from .*ENOENT/);
  });

  it("after customer service's temporary code: requires-code true, enrol needs that code until it is used at sign-in", async () => {
    const a = await enrolTotp(scratch.ctx, `tmp-${kind}@example.com`);
    const temp = await issueTemporaryCode(scratch.ctx, a.email);
    expect((await serve.call('/v1/requires-code', { email: a.email })).body).toMatchObject({ requiresCode: true });
    const blocked = await serve.call('/v1/enrol/start', { email: a.email, password: PASSWORD, method: 'app', ...WHO });
    expect(blocked.status).toBe(409);
    expect(blocked.body).toMatchObject({ error: { code: 'current_code_required' } });
    const signIn = await serve.call('/v1/verify', { email: a.email, code: temp, ...WHO });
    expect(signIn.body).toMatchObject({ ok: true, kind: 'temporary' });
    const start = await serve.call('/v1/enrol/start', { email: a.email, password: PASSWORD, method: 'app', ...WHO });
    expect(start.body).toMatchObject({ ok: true, method: 'totp' });
  });

  it('recovery-codes/send-code texts an SMS account a code that regenerate accepts', async () => {
    const a = await enrolSms(scratch.ctx, `rgs-${kind}@example.com`);
    const sent = await serve.call('/v1/recovery-codes/send-code', { email: a.email, password: PASSWORD, ...WHO });
    expect(sent.body).toMatchObject({ ok: true, phoneMasked: '+45 ****3456' });
    const r = await serve.call('/v1/recovery-codes/regenerate', {
      email: a.email,
      password: PASSWORD,
      code: lastOutboxCode(outboxFile(scratch.ctx)),
      ...WHO,
    });
    expect(r.body).toMatchObject({ ok: true, method: 'sms', codeKind: 'sms' });
    const app = await enrolTotp(scratch.ctx, `rgs-app-${kind}@example.com`);
    expect(
      (await serve.call('/v1/recovery-codes/send-code', { email: app.email, password: PASSWORD, ...WHO })).body,
    ).toMatchObject({ error: { code: 'not_sms' } });
  });

  it('verify answers byte for byte as the library does (accepted, rejected, locked, malformed, unknown)', async () => {
    const mfa = await openMail2fa({
      db: scratch.tdb.url,
      env: { MAIL2FA_KEY: TEST_KEY, MAIL2FA_HOME: `${scratch.tdb.dir}/home` },
    });
    try {
      const viaServe = await enrolTotp(scratch.ctx, `par-s-${kind}@example.com`);
      const viaLib = await enrolTotp(scratch.ctx, `par-l-${kind}@example.com`);
      const both = async (code: (a: { secret: string }) => string, mailS = viaServe.email, mailL = viaLib.email) => {
        const served = await serve.call('/v1/verify', { email: mailS, code: code(viaServe), ...WHO });
        const lib = JSON.parse(JSON.stringify(await mfa.verifyCode(mailL, code(viaLib)))) as Record<string, unknown>;
        const { error: _error, ...body } = served.body;
        return [JSON.stringify(body).replaceAll(mailS, 'X'), JSON.stringify(lib).replaceAll(mailL, 'X')];
      };
      const [acceptedS, acceptedL] = await both((a) => totpCode(a.secret, Date.now()));
      expect(acceptedS).toBe(acceptedL);
      expect(acceptedS).toContain('"outcome":"accepted"');
      for (let i = 0; i < 5; i++) {
        const [s1, l1] = await both((a) => wrongTotp(a.secret, Date.now()));
        // lockedUntil differs by the milliseconds between the two calls; everything else is the same.
        expect(s1.replace(/"lockedUntil":"[^"]+"/, '"lockedUntil":T')).toBe(
          l1.replace(/"lockedUntil":"[^"]+"/, '"lockedUntil":T'),
        );
      }
      const [lockedS, lockedL] = await both((a) => totpCode(a.secret, Date.now()));
      expect(lockedS.replace(/20\d\d-[^"]+Z/g, 'T')).toBe(lockedL.replace(/20\d\d-[^"]+Z/g, 'T'));
      expect(lockedS).toContain('"outcome":"locked"');
      const [malformedS, malformedL] = await both(() => '12345');
      expect(malformedS).toBe(malformedL);
      const [unknownS, unknownL] = await both(
        () => '123456',
        `nobody-s-${kind}@example.com`,
        `nobody-l-${kind}@example.com`,
      );
      expect(unknownS.replace(/nobody-[sl]-/g, '')).toBe(unknownL.replace(/nobody-[sl]-/g, ''));
    } finally {
      await mfa.close();
    }
  });
});
