/**
 * `mail2fa serve` under stress, over real sockets and databases: one code raced by 50 clients, a lockout under a
 * parallel burst, the database going away mid-request and coming back, SIGTERM with requests in flight, and
 * nothing secret in the log lines.
 */
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import * as net from 'node:net';
import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, afterEach, expect, it } from 'vitest';
import { sqliteFile } from '../../src/db/connection.js';
import { totpCode } from '../../src/totp/totp.js';
import { addMailbox } from '../helpers/context.js';
import { describeEachDb, useTestDb } from '../helpers/db.js';
import {
  PASSWORD,
  accountState,
  auditRows,
  enrolSms,
  enrolTotp,
  lastOutboxCode,
  outboxFile,
  twoFactorRows,
  wrongTotp,
} from '../helpers/seed-2fa.js';
import { writeConfig } from '../helpers/enrolment.js';
import { startServe, type Reply, type ServeProcess } from '../helpers/serve.js';

const WHO = { ip: '198.51.100.23', userAgent: 'Reliability/1.0' };

describeEachDb('serve reliability', (kind) => {
  const scratch = useTestDb(kind);
  let serve: ServeProcess | undefined;

  afterEach(async () => {
    await serve?.stop();
    serve = undefined;
  });

  it('50 concurrent verifies of one code: exactly one accepted', async () => {
    serve = await startServe(scratch.tdb);
    const a = await enrolTotp(scratch.ctx, `race-${kind}@example.com`);
    const code = totpCode(a.secret, Date.now());
    const replies = await Promise.all(
      Array.from({ length: 50 }, () => serve!.call('/v1/verify', { email: a.email, code, ...WHO })),
    );
    const accepted = replies.filter((r) => r.body.outcome === 'accepted');
    expect(accepted).toHaveLength(1);
    // Every other one is a negative answer or the lock it caused; none is an error.
    const odd = replies.filter(
      (r) =>
        !((r.status === 200 && r.body.outcome === 'rejected') || r.body.outcome === 'accepted' || r.status === 429),
    );
    expect(
      odd
        .map((r) => r.raw)
        .concat(
          serve
            .stderr()
            .split('\n')
            .filter((l) => l.includes('error')),
        ),
    ).toEqual([]);
    expect(
      replies.every(
        (r) =>
          (r.status === 200 && r.body.outcome === 'rejected') ||
          r.body.outcome === 'accepted' ||
          (r.status === 429 && r.body.outcome === 'locked'),
      ),
    ).toBe(true);
    expect(
      (await auditRows(scratch.ctx, a.email)).filter((r) => r.action === 'verify' && r.outcome === 'ok'),
    ).toHaveLength(1);
  }, 30_000);

  it('the lockout holds under a parallel burst of wrong codes: 5 counted, the rest locked, then a right code is refused too', async () => {
    serve = await startServe(scratch.tdb);
    const a = await enrolTotp(scratch.ctx, `burst-${kind}@example.com`);
    const wrong = wrongTotp(a.secret, Date.now());
    const replies = await Promise.all(
      Array.from({ length: 20 }, () => serve!.call('/v1/verify', { email: a.email, code: wrong, ...WHO })),
    );
    expect(replies.filter((r) => r.body.outcome === 'rejected')).toHaveLength(5);
    expect(replies.filter((r) => r.status === 429 && r.body.outcome === 'locked')).toHaveLength(15);
    const state = await accountState(scratch.ctx, a.email);
    expect(state.failed).toBe(5);
    expect(state.lockedUntil).toBeGreaterThan(Date.now());
    expect((await auditRows(scratch.ctx, a.email)).filter((r) => r.action === 'lockout')).toHaveLength(1);
    const right = await serve.call('/v1/verify', { email: a.email, code: totpCode(a.secret, Date.now()), ...WHO });
    expect(right.status).toBe(429);
  }, 30_000);

  it('SIGTERM with requests in flight: each one answered or cleanly refused, none half-applied', async () => {
    serve = await startServe(scratch.tdb);
    const accounts = [];
    for (let i = 0; i < 16; i++) accounts.push(await enrolTotp(scratch.ctx, `term-${i}-${kind}@example.com`));
    const s = serve;
    let signalled = false;
    const results = await Promise.all(
      accounts.map((a) =>
        s
          .call('/v1/disable', { email: a.email, password: PASSWORD, code: a.recoveryCodes[0], ...WHO })
          .then((r: Reply) => {
            if (!signalled) {
              signalled = true;
              s.child.kill('SIGTERM');
            }
            return r;
          })
          .catch((err: NodeJS.ErrnoException) => err),
      ),
    );
    expect(await s.stop()).toBe(0);
    serve = undefined;
    expect(existsSync(s.socketPath)).toBe(false);
    let answered = 0;
    for (const [i, a] of accounts.entries()) {
      const r = results[i]!;
      const rows = await twoFactorRows(scratch.ctx, a.email);
      const disabledRows = (await auditRows(scratch.ctx, a.email)).filter(
        (row) => row.action === 'disable' && row.outcome === 'ok',
      );
      if (!(r instanceof Error) && r.status === 200) {
        answered++;
        expect(r.body).toMatchObject({ ok: true, changed: true });
        expect(rows).toEqual({ factor: 0, recoveryCodes: 0, enrolments: 0, challenges: 0 });
        expect(disabledRows).toHaveLength(1);
      } else {
        // Refused: a 503 while stopping, or no connection at all; then nothing changed.
        if (!(r instanceof Error)) expect(r.status).toBe(503);
        else expect(['ECONNREFUSED', 'ENOENT', 'ECONNRESET']).toContain(r.code);
        expect(rows.factor).toBe(1);
        expect(rows.recoveryCodes).toBe(10);
        expect(disabledRows).toHaveLength(0);
      }
    }
    expect(answered).toBeGreaterThan(0);
    expect(s.stderr()).toContain('"event":"stopped"');
  }, 30_000);

  it('no password, code, secret or phone number in the log: one JSON line per request', async () => {
    serve = await startServe(scratch.tdb);
    const email = `log-${kind}@example.com`;
    await addMailbox(scratch.ctx, email, PASSWORD);
    const start = await serve.call('/v1/enrol/start', { email, password: PASSWORD, method: 'app', ...WHO });
    const secret = new URL(start.body.otpauthUri as string).searchParams.get('secret')!;
    const confirmCode = totpCode(secret, Date.now());
    const confirm = await serve.call('/v1/enrol/confirm', {
      email,
      enrolmentId: start.body.enrolmentId,
      code: confirmCode,
      ...WHO,
    });
    const recovery = confirm.body.recoveryCodes as string[];
    await serve.call('/v1/verify', { email, code: recovery[3], ...WHO });
    await serve.call('/v1/verify', { email, code: 'not-a-code!', ...WHO });
    await serve.call('/v1/recovery-codes/regenerate', { email, password: 'Wrong-Pass-xyz', code: recovery[4], ...WHO });
    const sms = await enrolSms(scratch.ctx, `log-sms-${kind}@example.com`, '011-45-20987654');
    await serve.call('/v1/send-code', { email: sms.email, ...WHO });
    const smsCode = lastOutboxCode(outboxFile(scratch.ctx));
    await serve.call('/v1/disable', { email: sms.email, password: PASSWORD, code: smsCode, ...WHO });
    await serve.stop();
    const log = serve.stderr();
    for (const secretThing of [
      PASSWORD,
      'Wrong-Pass-xyz',
      secret,
      confirmCode,
      smsCode,
      '20987654',
      ...recovery,
      ...sms.recoveryCodes,
      'not-a-code!',
    ]) {
      expect(log).not.toContain(secretThing);
    }
    const lines = serve.logLines().filter((l) => l.route !== undefined);
    expect(lines.map((l) => l.route)).toEqual([
      'enrol/start',
      'enrol/confirm',
      'verify',
      'verify',
      'recovery-codes/regenerate',
      'send-code',
      'disable',
    ]);
    for (const l of lines) {
      expect(typeof l.ms).toBe('number');
      expect(l.client).toBe('roundcube');
    }
    expect(lines.map((l) => l.outcome)).toEqual([
      'started',
      'enabled',
      'accepted',
      'malformed',
      'wrong_password',
      'ok',
      'disabled',
    ]);
  }, 30_000);

  if (kind === 'mariadb') {
    it('the database goes away mid-request → 503 (nothing accepted), then healthy again without a restart', async () => {
      const proxy = new TcpProxy(new URL(scratch.tdb.url).port ? Number(new URL(scratch.tdb.url).port) : 3306);
      const port = await proxy.start(0);
      const viaProxy = new URL(scratch.tdb.url);
      viaProxy.hostname = '127.0.0.1';
      viaProxy.port = String(port);
      serve = await startServe(scratch.tdb, { dbUrl: viaProxy.toString() });
      const a = await enrolTotp(scratch.ctx, `down-${kind}@example.com`);
      expect((await serve.call('/healthz')).status).toBe(200);
      proxy.hold = true;
      const code = totpCode(a.secret, Date.now());
      const inFlight = serve.call('/v1/verify', { email: a.email, code, ...WHO });
      await new Promise((r) => setTimeout(r, 200));
      await proxy.kill();
      const r = await inFlight;
      expect(r.status).toBe(503);
      expect(r.body).toEqual({ ok: false, error: { code: 'unavailable', message: 'service temporarily unavailable' } });
      expect(r.headers['retry-after']).toBe('1');
      const down = await serve.call('/healthz');
      expect(down.status).toBe(503);
      expect(down.body).toMatchObject({ ok: false, database: 'unavailable' });
      expect((await serve.call('/v1/verify', { email: a.email, code, ...WHO })).status).toBe(503);
      // Back: the same process serves again, and the code that was in flight was never accepted.
      proxy.hold = false;
      await proxy.start(port);
      const deadline = Date.now() + 10_000;
      while ((await serve.call('/healthz')).status !== 200 && Date.now() < deadline)
        await new Promise((res) => setTimeout(res, 100));
      expect((await serve.call('/healthz')).status).toBe(200);
      const again = await serve.call('/v1/verify', { email: a.email, code, ...WHO });
      expect({ body: again.body, log: again.status === 200 ? '' : serve.stderr() }).toMatchObject({
        body: { ok: true, outcome: 'accepted' },
        log: '',
      });
      expect(serve.stderr()).toContain('"status":503');
      await proxy.kill();
    }, 40_000);
  } else {
    it('the database file cannot be written → 503 (nothing accepted), then served again without a restart', async (t) => {
      const file = sqliteFile(scratch.tdb.url);
      if (!chattr('+i', file)) {
        t.skip();
        return;
      }
      chattr('-i', file);
      serve = await startServe(scratch.tdb);
      const a = await enrolTotp(scratch.ctx, `down-${kind}@example.com`);
      expect((await serve.call('/v1/requires-code', { email: a.email })).status).toBe(200);
      const code = totpCode(a.secret, Date.now());
      // The WAL and the database file refuse writes (never the -shm file: it is memory-mapped).
      const files = [file, `${file}-wal`].filter((f) => existsSync(f));
      try {
        for (const f of files) chattr('+i', f);
        const r = await serve.call('/v1/verify', { email: a.email, code, ...WHO });
        expect(r.status).toBe(503);
        expect(r.body).toEqual({
          ok: false,
          error: { code: 'unavailable', message: 'service temporarily unavailable' },
        });
      } finally {
        for (const f of files) chattr('-i', f);
      }
      const again = await serve.call('/v1/verify', { email: a.email, code, ...WHO });
      expect(again.body).toMatchObject({ ok: true, outcome: 'accepted' });
    }, 30_000);
  }
});

function chattr(flag: string, file: string): boolean {
  try {
    execFileSync('chattr', [flag, file], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

/** A TCP proxy to the database that can hold traffic and be killed (the database "going away"), then restarted. */
class TcpProxy {
  hold = false;
  private server: Server | undefined;
  private readonly sockets = new Set<Socket>();

  constructor(private readonly upstreamPort: number) {}

  start(port: number): Promise<number> {
    const server = createServer((client) => {
      const upstream = new net.Socket();
      upstream.connect(this.upstreamPort, '127.0.0.1');
      for (const s of [client, upstream]) {
        this.sockets.add(s);
        s.on('close', () => this.sockets.delete(s));
        s.on('error', () => {});
      }
      client.on('data', (d: Buffer) => {
        if (!this.hold) upstream.write(d);
      });
      upstream.on('data', (d: Buffer) => {
        if (!this.hold) client.write(d);
      });
      client.on('close', () => upstream.destroy());
      upstream.on('close', () => client.destroy());
    });
    this.server = server;
    return new Promise((resolve) =>
      server.listen(port, '127.0.0.1', () => resolve((server.address() as { port: number }).port)),
    );
  }

  async kill(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((resolve) => (this.server ? this.server.close(() => resolve()) : resolve()));
    this.server = undefined;
  }
}

describeEachDb('serve and the SMS gateway', (kind) => {
  const scratch = useTestDb(kind);
  let serve: ServeProcess | undefined;

  afterAll(async () => {
    await serve?.stop();
  });

  it('gateway down → 503 without details and no code stored; the 4th send in 15 minutes → 429 with retryAfter', async () => {
    const closed = createServer();
    await new Promise<void>((r) => closed.listen(0, '127.0.0.1', () => r()));
    const port = (closed.address() as { port: number }).port;
    await new Promise<void>((r) => closed.close(() => r()));
    const config = writeConfig(scratch.tdb.dir, 'gateway-down', {
      sms: { transport: 'webhook', timeoutMs: 1000, webhook: { url: `http://127.0.0.1:${port}/sms` } },
    });
    serve = await startServe(scratch.tdb, { args: ['--config', config], socketName: 'down.sock' });
    const a = await enrolSms(scratch.ctx, `gw-${kind}@example.com`);
    const down = await serve.call('/v1/send-code', { email: a.email, ...WHO });
    expect(down.status).toBe(503);
    expect(down.body).toEqual({
      ok: false,
      error: { code: 'unavailable', message: 'service temporarily unavailable' },
    });
    expect((await twoFactorRows(scratch.ctx, a.email)).challenges).toBe(0);
    await serve.stop();
    expect(serve.stderr()).toContain('sms_unavailable');

    serve = await startServe(scratch.tdb, { socketName: 'up.sock' });
    for (let i = 0; i < 3; i++)
      expect((await serve.call('/v1/send-code', { email: a.email, ...WHO })).status).toBe(200);
    const limited = await serve.call('/v1/send-code', { email: a.email, ...WHO });
    expect(limited.status).toBe(429);
    expect(limited.body).toMatchObject({ ok: false, outcome: 'rate_limited', error: { code: 'rate_limited' } });
    expect(limited.body.retryAfter).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/);
  }, 30_000);
});
