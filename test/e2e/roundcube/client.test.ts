/**
 * The Roundcube plugin's client for `mail2fa serve` (lib/mail2fa_client.php), run by PHP's CLI against real HTTP
 * servers on a Unix socket and on loopback TCP: what it sends, and that every answer that is not a well-formed JSON
 * document from the service (5xx, garbage, silence, no socket) becomes "unavailable" — the plugin's single
 * fail-closed path.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { SKIP_WEBMAIL } from './stack.js';

const DRIVER = fileURLToPath(new URL('../../php/mail2fa-client-driver.php', import.meta.url));

interface Seen {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
}

type Reply = (res: ServerResponse) => void;

function php(args: string[]): Promise<Record<string, any>> {
  return new Promise((resolve, reject) => {
    const child = spawn('php', [DRIVER, ...args], { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d));
    child.stderr.on('data', (d: Buffer) => (err += d));
    child.on('error', reject);
    child.on('close', () => {
      try {
        resolve(JSON.parse(out) as Record<string, any>);
      } catch {
        reject(new Error(`driver printed ${JSON.stringify(out)}; stderr ${err}`));
      }
    });
  });
}

(SKIP_WEBMAIL ? describe.skip : describe)('Roundcube plugin: the serve client', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mail2fa-rc-client-'));
  const socket = join(dir, 'serve.sock');
  const seen: Seen[] = [];
  let reply: Reply = (res) => res.end('{}');
  let unixServer: Server;
  let tcpServer: Server;
  let tcpUrl = '';

  const handler = (req: import('node:http').IncomingMessage, res: ServerResponse) => {
    let body = '';
    req.on('data', (d: Buffer) => (body += d));
    req.on('end', () => {
      seen.push({ method: req.method!, url: req.url!, headers: req.headers, body });
      reply(res);
    });
  };

  beforeAll(async () => {
    unixServer = createServer(handler);
    tcpServer = createServer(handler);
    await new Promise<void>((done) => unixServer.listen(socket, done));
    await new Promise<void>((done) => tcpServer.listen(0, '127.0.0.1', done));
    tcpUrl = `http://127.0.0.1:${(tcpServer.address() as AddressInfo).port}`;
  });

  afterAll(async () => {
    unixServer?.closeAllConnections();
    tcpServer?.closeAllConnections();
    await Promise.all([unixServer, tcpServer].map((s) => new Promise((done) => s?.close(done))));
    rmSync(dir, { recursive: true, force: true });
  });

  it('posts JSON with its client name over the socket, no token; reads a chunked answer', async () => {
    seen.length = 0;
    reply = (res) => {
      res.setHeader('Content-Type', 'application/json; charset=utf-8');
      res.setHeader('Transfer-Encoding', 'chunked');
      res.write('{"ok":true,"email":"a@example.org",');
      res.end('"requiresCode":true}');
    };
    const r = await php([
      `unix://${socket}`,
      'ignored-on-a-socket',
      '2',
      '/v1/requires-code',
      JSON.stringify({ email: 'a@example.org', note: 'Grüße' }),
    ]);
    expect(r).toEqual({
      status: 200,
      body: { ok: true, email: 'a@example.org', requiresCode: true },
      ok: true,
      code: '',
    });
    expect(seen).toHaveLength(1);
    expect(seen[0]!.method).toBe('POST');
    expect(seen[0]!.url).toBe('/v1/requires-code');
    expect(seen[0]!.headers['mail2fa-client']).toBe('roundcube');
    expect(seen[0]!.headers.authorization).toBeUndefined();
    expect(seen[0]!.headers['transfer-encoding']).toBeUndefined();
    expect(JSON.parse(seen[0]!.body)).toEqual({ email: 'a@example.org', note: 'Grüße' });
  });

  it('sends the bearer token over TCP; a 4xx answer is data (error.code), a negative 200 carries its outcome', async () => {
    seen.length = 0;
    reply = (res) => {
      res.statusCode = 429;
      res.end(
        JSON.stringify({
          ok: false,
          outcome: 'locked',
          lockedUntil: '2026-11-30T01:38:45.678Z',
          error: { code: 'locked', message: 'locked' },
        }),
      );
    };
    const locked = await php([
      tcpUrl,
      'a-token-of-32-characters-0123456',
      '2',
      '/v1/verify',
      '{"email":"a@example.org","code":"123456","ip":"127.0.0.1"}',
    ]);
    expect(locked).toMatchObject({ status: 429, ok: false, code: 'locked' });
    expect(seen[0]!.headers.authorization).toBe('Bearer a-token-of-32-characters-0123456');

    reply = (res) => res.end(JSON.stringify({ ok: false, outcome: 'wrong_password', message: 'wrong password' }));
    expect(await php([tcpUrl, 't', '2', '/v1/disable', '{}'])).toMatchObject({
      status: 200,
      ok: false,
      code: 'wrong_password',
    });
  });

  it.each<[string, Reply]>([
    ['a 503', (res) => ((res.statusCode = 503), res.end('{"ok":false,"error":{"code":"unavailable"}}'))],
    ['a 500', (res) => ((res.statusCode = 500), res.end('{"ok":true}'))],
    ['a body that is not JSON', (res) => res.end('<html>proxy error</html>')],
    ['a JSON scalar', (res) => res.end('true')],
    ['a connection closed without an answer', (res) => res.socket?.destroy()],
  ])('%s is "unavailable", never an answer', async (_what, r) => {
    reply = r;
    const out = await php([`unix://${socket}`, '', '2', '/v1/requires-code', '{"email":"a@example.org"}']);
    expect(out.unavailable).toMatch(/mail2fa serve/);
  });

  it('a service that never answers is "unavailable" after the timeout', async () => {
    reply = () => {};
    const t = Date.now();
    const out = await php([`unix://${socket}`, '', '1', '/v1/requires-code', '{"email":"a@example.org"}']);
    expect(out.unavailable).toMatch(/did not answer in time/);
    expect(Date.now() - t).toBeLessThan(5000);
  });

  it('no socket, a closed port, or an endpoint that is neither unix:// nor http:// is "unavailable"', async () => {
    expect((await php([`unix://${join(dir, 'nothing.sock')}`, '', '1', '/healthz', '{}'])).unavailable).toMatch(
      /cannot connect/,
    );
    expect((await php(['http://127.0.0.1:1', '', '1', '/healthz', '{}'])).unavailable).toMatch(/cannot connect/);
    expect((await php(['ftp://example.org/', '', '1', '/healthz', '{}'])).unavailable).toMatch(/must be unix/);
  });
});
