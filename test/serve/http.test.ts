/**
 * The HTTP edge of `serve`, in-process over real sockets (SQLite): slow and malformed clients are cut off within
 * the timeouts while others are served; TCP needs the bearer token and refuses non-loopback addresses; a stale
 * socket is replaced, a live one refused; the enrolment QR (SVG) decodes to the otpauth URI.
 */
import { spawn } from 'node:child_process';
import { lstatSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import jsQR from 'jsqr';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import type { Context } from '../../src/context.js';
import { ServeCore } from '../../src/serve/core.js';
import { listen, parseListen, readTokenFile } from '../../src/serve/listen.js';
import { qrSvg } from '../../src/serve/qr.js';
import { ServeServer } from '../../src/serve/server.js';
import { addMailbox, testContext, testEnv } from '../helpers/context.js';
import { createTestDb, type TestDb } from '../helpers/db.js';
import { runCli } from '../helpers/cli.js';
import { call } from '../helpers/serve.js';

const TOKEN = 'a3f9c2e871b04d5e9f6a1c2b3d4e5f60';

describe('serve HTTP edge', () => {
  let db: TestDb;
  let ctx: Context;
  let server: ServeServer;
  let port: number;
  const logs: Record<string, unknown>[] = [];

  beforeAll(async () => {
    db = await createTestDb('sqlite');
    ctx = await testContext(db);
    await addMailbox(ctx, 'edge@example.com');
    const env = { ...process.env, ...testEnv(db) };
    const core = new ServeCore(await loadConfig({ dbUrl: db.url, env }), { env });
    server = new ServeServer({
      core,
      clientName: 'webmail',
      token: TOKEN,
      log: (l) => logs.push(l),
      timeouts: { headersMs: 400, requestMs: 800, keepAliveMs: 500 },
    });
    await listen(server.server, { kind: 'tcp', host: '127.0.0.1', port: 0 });
    port = (server.server.address() as { port: number }).port;
  }, 30_000);

  afterAll(async () => {
    await server?.close();
    await ctx?.close();
    await db?.drop();
  });

  const auth = { Authorization: `Bearer ${TOKEN}` };
  const tcp = () => ({ host: '127.0.0.1', port });

  it('TCP: 401 without or with a wrong token (constant-time compare), 200 with it; /healthz needs none', async () => {
    const none = await call(tcp(), '/v1/requires-code', { email: 'edge@example.com' });
    expect(none.status).toBe(401);
    expect(none.headers['www-authenticate']).toBe('Bearer');
    expect(
      (
        await call(
          tcp(),
          '/v1/requires-code',
          { email: 'edge@example.com' },
          { headers: { Authorization: `Bearer ${TOKEN}x` } },
        )
      ).status,
    ).toBe(401);
    expect(
      (
        await call(
          tcp(),
          '/v1/requires-code',
          { email: 'edge@example.com' },
          { headers: { Authorization: `Bearer ${TOKEN.slice(0, 8)}` } },
        )
      ).status,
    ).toBe(401);
    expect((await call(tcp(), '/v1/requires-code', { email: 'edge@example.com' }, { headers: auth })).body).toEqual({
      ok: true,
      email: 'edge@example.com',
      requiresCode: false,
    });
    expect((await call(tcp(), '/healthz')).status).toBe(200);
  });

  it('slowloris: trickled headers get a JSON 408 within the header timeout while another client is served', async () => {
    const started = Date.now();
    const slow = Array.from({ length: 10 }, () =>
      trickle(port, 'POST /v1/requires-code HTTP/1.1\r\nHost: x\r\n', 'X-Slow: 1\r\n', 100),
    );
    await new Promise((r) => setTimeout(r, 150));
    const served = await call(tcp(), '/v1/requires-code', { email: 'edge@example.com' }, { headers: auth });
    expect(served.status).toBe(200);
    const answers = await Promise.all(slow);
    for (const a of answers) {
      expect(a).toMatch(/^HTTP\/1\.1 408 /);
      expect(JSON.parse(a.slice(a.indexOf('\r\n\r\n') + 4))).toEqual({
        ok: false,
        error: { code: 'request_timeout', message: 'the request was not received in time' },
      });
    }
    expect(Date.now() - started).toBeLessThan(3000);
  });

  it('a trickled body is cut off at the request timeout', async () => {
    const started = Date.now();
    const a = await trickle(
      port,
      `POST /v1/requires-code HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\nContent-Length: 200\r\n\r\n`,
      ' ',
      100,
    );
    expect(a).toMatch(/^HTTP\/1\.1 408 /);
    expect(Date.now() - started).toBeLessThan(3000);
  });

  it('malformed HTTP gets a JSON 400; a huge chunked body a 413', async () => {
    const bad = await trickle(port, 'BLAH\r\n\r\n', '', 0);
    expect(bad).toMatch(/^HTTP\/1\.1 400 /);
    expect(bad).toContain('"code":"bad_request"');
    const big = await trickle(
      port,
      `POST /v1/verify HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer ${TOKEN}\r\nTransfer-Encoding: chunked\r\n\r\n${'4000\r\n' + 'x'.repeat(0x4000) + '\r\n'}${'10\r\n' + 'y'.repeat(16) + '\r\n'}`,
      '',
      0,
    );
    expect(big).toMatch(/^HTTP\/1\.1 413 /);
    expect((await call(tcp(), '/healthz')).status).toBe(200);
  });

  it('no request log line carries the token', () => {
    expect(JSON.stringify(logs)).not.toContain(TOKEN);
    expect(logs.some((l) => l.status === 408)).toBe(true);
  });
});

describe('serve listening rules', () => {
  it('refuses a non-loopback TCP address unless told what it exposes', () => {
    expect(() => parseListen('0.0.0.0:8025', false)).toThrow(/not a loopback address/);
    expect(() => parseListen('192.0.2.1:8025', false)).toThrow(/expose/);
    expect(parseListen('0.0.0.0:8025', true)).toEqual({ kind: 'tcp', host: '0.0.0.0', port: 8025 });
    expect(parseListen('[::1]:8025', false)).toEqual({ kind: 'tcp', host: '::1', port: 8025 });
    expect(parseListen('localhost:1', false).host).toBe('127.0.0.1');
    expect(() => parseListen('example.com:80', false)).toThrow(/IP address/);
  });

  it('token files: short or world-readable ones are refused', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mail2fa-token-'));
    try {
      writeFileSync(join(dir, 'short'), 'abc\n', { mode: 0o600 });
      expect(() => readTokenFile(join(dir, 'short'))).toThrow(/at least 16/);
      writeFileSync(join(dir, 'open'), `${TOKEN}\n`, { mode: 0o644 });
      expect(() => readTokenFile(join(dir, 'open'))).toThrow(/readable by everyone/);
      writeFileSync(join(dir, 'good'), `${TOKEN}\n`, { mode: 0o640 });
      expect(readTokenFile(join(dir, 'good'))).toBe(TOKEN);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a stale socket file is replaced; a live one and a non-socket path are refused', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'mail2fa-sock-'));
    const path = join(dir, 's.sock');
    try {
      // A live listener, then the same path again: refused.
      const live = createServer();
      await new Promise<void>((r) => live.listen(path, () => r()));
      const second = createServer();
      await expect(listen(second as never, { kind: 'unix', path, mode: 0o660 })).rejects.toThrow(
        /another process is listening/,
      );
      await new Promise<void>((r) => live.close(() => r()));
      // Stale: a process that listened and was killed leaves its socket file behind.
      const crashed = spawn(
        process.execPath,
        ['-e', `require('net').createServer().listen(${JSON.stringify(path)}, () => console.log('up'))`],
        { stdio: ['ignore', 'pipe', 'inherit'] },
      );
      await new Promise<void>((r) => crashed.stdout.once('data', () => r()));
      crashed.kill('SIGKILL');
      await new Promise((r) => crashed.once('close', r));
      expect(lstatSync(path).isSocket()).toBe(true);
      const third = createServer();
      await listen(third as never, { kind: 'unix', path, mode: 0o660 });
      await new Promise<void>((r) => third.close(() => r()));
      writeFileSync(join(dir, 'plain'), 'x');
      await expect(
        listen(createServer() as never, { kind: 'unix', path: join(dir, 'plain'), mode: 0o660 }),
      ).rejects.toThrow(/is not a socket/);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('enrolment QR code as SVG', () => {
  it('decodes to exactly the otpauth URI', async () => {
    const uri =
      'otpauth://totp/Webmail:jane%40example.com?secret=JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP&issuer=Webmail&algorithm=SHA1&digits=6&period=30';
    const svg = await qrSvg(uri);
    expect(jsQR(...rasterise(svg))?.data).toBe(uri);
  });
});

/** Sends `head`, then `drip` every `everyMs` until the server answers or closes; returns what it answered. */
function trickle(port: number, head: string, drip: string, everyMs: number): Promise<string> {
  return new Promise((resolve) => {
    const socket = connect({ host: '127.0.0.1', port });
    let answer = '';
    let timer: NodeJS.Timeout | undefined;
    socket.on('connect', () => {
      socket.write(head);
      if (drip && everyMs) timer = setInterval(() => socket.writable && socket.write(drip), everyMs);
    });
    socket.setEncoding('utf8').on('data', (d: string) => (answer += d));
    socket.on('error', () => {});
    socket.on('close', () => {
      clearInterval(timer);
      resolve(answer);
    });
  });
}

/**
 * The SVG of the qrcode package (one <path> of horizontal runs: M x y, h n, m dx dy) → an RGBA bitmap at 4 px per
 * module for jsQR. A real decode of what a browser would draw, not a comparison with the library's own output.
 */
function rasterise(svg: string): [Uint8ClampedArray, number, number] {
  const size = Number(/viewBox="0 0 (\d+) \1"/.exec(svg)![1]);
  const d =
    /<path[^>]*stroke="#000000"[^>]*d="([^"]+)"/.exec(svg)?.[1] ??
    /<path[^>]*d="([^"]+)"[^>]*stroke="#000000"/.exec(svg)![1]!;
  const dark = new Set<string>();
  let x = 0;
  let y = 0;
  for (const [, op, a, b] of d.matchAll(/([MmHhVv])\s*(-?[\d.]+)(?:[\s,]+(-?[\d.]+))?/g)) {
    const n1 = Number(a);
    if (op === 'M') [x, y] = [n1, Number(b)];
    else if (op === 'm') [x, y] = [x + n1, y + Number(b)];
    else if (op === 'h') {
      for (let i = 0; i < n1; i++) dark.add(`${x + i},${Math.floor(y)}`);
      x += n1;
    }
  }
  const scale = 4;
  const w = size * scale;
  const data = new Uint8ClampedArray(w * w * 4).fill(255);
  for (const key of dark) {
    const [mx, my] = key.split(',').map(Number) as [number, number];
    for (let dy = 0; dy < scale; dy++)
      for (let dx = 0; dx < scale; dx++) {
        const i = ((my * scale + dy) * w + mx * scale + dx) * 4;
        data[i] = data[i + 1] = data[i + 2] = 0;
      }
  }
  return [data, w, w];
}

describe('serve command start-up refusals (exit codes)', () => {
  let db: TestDb;
  beforeAll(async () => {
    db = await createTestDb('sqlite');
    await (await testContext(db)).close();
  });
  afterAll(async () => db?.drop());

  it('64 for a non-loopback address or TCP without a token; 78 for a path that is not a socket or a world-readable token', async () => {
    const env = testEnv(db);
    const open = await runCli(['--db', db.url, 'serve', '--listen', '0.0.0.0:8025'], { env });
    expect(open.code).toBe(64);
    expect(open.stderr).toMatch(/not a loopback address.*--expose-to-network/s);
    const noToken = await runCli(['--db', db.url, 'serve', '--listen', '127.0.0.1:8025'], { env });
    expect(noToken.code).toBe(64);
    expect(noToken.stderr).toContain('--token-file');
    writeFileSync(join(db.dir, 'plain'), 'x');
    const notSocket = await runCli(['--db', db.url, 'serve', '--socket', join(db.dir, 'plain')], { env });
    expect(notSocket.code).toBe(78);
    expect(notSocket.stderr).toContain('is not a socket');
    writeFileSync(join(db.dir, 'token'), `${TOKEN}\n`, { mode: 0o644 });
    const token = await runCli(
      ['--db', db.url, 'serve', '--listen', '127.0.0.1:8025', '--token-file', join(db.dir, 'token')],
      { env },
    );
    expect(token.code).toBe(78);
    expect(token.stderr).toContain('readable by everyone');
    expect(token.stderr).not.toContain(TOKEN);
  });
});
