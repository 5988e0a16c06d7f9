/**
 * SMS transports against a real HTTP server on 127.0.0.1 standing in for the webhook and the Twilio API
 * (never a mock of fetch).
 */
import { chmodSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import type { Config } from '../../src/config.js';
import { ConfigFileSchema } from '../../src/config-schema.js';
import { ExitCode, Mail2faError } from '../../src/errors.js';
import { createSmsSender, smsText, type SmsMessage } from '../../src/sms/transports.js';

const CODE = '482916';
const PHONE = '+4520123456';
const TOKEN = 'tok-SECRET-9f8e7d';
const HEADER_SECRET = 'Bearer hdr-SECRET-1a2b3c';
const MESSAGE: SmsMessage = { to: PHONE, text: smsText('Webmail', CODE) };

interface Received {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
}

/** A real HTTP server; `reply` decides the answer (or never answers). */
class Gateway {
  readonly received: Received[] = [];
  private readonly open: ServerResponse[] = [];
  reply: (req: Received, res: ServerResponse) => void = (_req, res) => res.writeHead(200).end('ok');
  private server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      const r: Received = {
        method: req.method ?? '',
        url: req.url ?? '',
        headers: req.headers,
        body: Buffer.concat(chunks).toString('utf8'),
      };
      this.received.push(r);
      // No keep-alive: each test's requests get fresh connections.
      res.setHeader('connection', 'close');
      this.open.push(res);
      this.reply(r, res);
    });
  });
  url = '';
  async start(): Promise<void> {
    await new Promise<void>((done) => this.server.listen(0, '127.0.0.1', done));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }
  reset(): void {
    this.received.length = 0;
    this.reply = (_req, res) => res.writeHead(200).end('ok');
    // Drop only requests left unanswered; closing idle connections here would race the client's next request.
    for (const res of this.open.splice(0)) if (!res.writableFinished) res.socket?.destroy();
  }
  async stop(): Promise<void> {
    this.server.closeAllConnections();
    await new Promise<void>((done) => this.server.close(() => done()));
  }
}

/** A port nothing listens on: bind one, then close it. */
async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((done) => s.listen(0, '127.0.0.1', done));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((done) => s.close(() => done()));
  return port;
}

function smsConfig(sms: unknown): Config['sms'] {
  return ConfigFileSchema.parse({ sms }).sms;
}

async function failure(promise: Promise<unknown>): Promise<Mail2faError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(Mail2faError);
    return err as Mail2faError;
  }
  throw new Error('expected a rejection');
}

/** Rule 8: no code, text, number or credential in an error. */
function expectNoSecrets(err: { message: string; hint?: string | undefined }): void {
  const shown = `${err.message}\n${err.hint ?? ''}`;
  for (const secret of [
    CODE,
    PHONE,
    PHONE.slice(1),
    '20123456',
    MESSAGE.text,
    TOKEN,
    HEADER_SECRET,
    'hdr-SECRET',
    Buffer.from(`AC123:${TOKEN}`).toString('base64'),
  ]) {
    expect(shown).not.toContain(secret);
  }
}

let dir: string;
const gateway = new Gateway();
beforeAll(async () => {
  dir = mkdtempSync(join(tmpdir(), 'mail2fa-sms-'));
  await gateway.start();
});
afterEach(() => gateway.reset());
afterAll(async () => {
  await gateway.stop();
  rmSync(dir, { recursive: true, force: true });
});

describe('smsText', () => {
  it('is exactly the product text', () => {
    expect(smsText('Webmail', '123456')).toBe('Your Webmail verification code is 123456. It expires in 10 minutes.');
    expect(smsText('Example Mail', '000042')).toBe(
      'Your Example Mail verification code is 000042. It expires in 10 minutes.',
    );
  });
});

describe('outbox transport', () => {
  it('appends one JSON line per message to <dataDir>/sms-outbox.ndjson, mode 0600, creating the directory', async () => {
    const dataDir = join(dir, 'home', 'nested');
    const sender = createSmsSender(smsConfig({}), { dataDir, env: {} });
    expect(sender.transport).toBe('outbox');
    const before = Date.now();
    const first = await sender.send(MESSAGE);
    await sender.send({ to: '+12015550123', text: smsText('Webmail', '111222') });
    const path = join(dataDir, 'sms-outbox.ndjson');
    expect(first).toEqual({ transport: 'outbox', where: path });
    expect(statSync(path).mode & 0o777).toBe(0o600);
    const lines = readFileSync(path, 'utf8').split('\n');
    expect(lines).toHaveLength(3);
    expect(lines[2]).toBe('');
    const one = JSON.parse(lines[0]!) as { at: string; to: string; text: string };
    expect(Object.keys(one)).toEqual(['at', 'to', 'text']);
    expect(one.to).toBe(PHONE);
    expect(one.text).toBe(MESSAGE.text);
    expect(new Date(one.at).toISOString()).toBe(one.at);
    expect(Date.parse(one.at)).toBeGreaterThanOrEqual(before - 1000);
    expect(JSON.parse(lines[1]!)).toMatchObject({ to: '+12015550123', text: smsText('Webmail', '111222') });
  });

  it('writes to sms.outbox.path and tightens an existing group-readable file to 0600', async () => {
    const path = join(dir, 'custom', 'out.ndjson');
    const sender = createSmsSender(smsConfig({ outbox: { path } }), { dataDir: join(dir, 'unused'), env: {} });
    await sender.send(MESSAGE);
    chmodSync(path, 0o644);
    expect((await sender.send(MESSAGE)).where).toBe(path);
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(readFileSync(path, 'utf8').trim().split('\n')).toHaveLength(2);
  });

  it('an unwritable outbox is exit 69 with no secret; check() reports it', async () => {
    const blocker = join(dir, 'not-a-dir');
    writeFileSync(blocker, '');
    const sender = createSmsSender(smsConfig({ outbox: { path: join(blocker, 'out.ndjson') } }), {
      dataDir: dir,
      env: {},
    });
    const err = await failure(sender.send(MESSAGE));
    expect(err.exitCode).toBe(ExitCode.UNAVAILABLE);
    expect(err.code).toBe('sms_unavailable');
    expectNoSecrets(err);
    const check = await sender.check();
    expect(check.ok).toBe(false);
    expect(check.detail).toMatch(/not a directory/);
  });

  it('check() passes for a writable (even not yet existing) directory and sends nothing', async () => {
    const path = join(dir, 'later', 'deeper', 'out.ndjson');
    const check = await createSmsSender(smsConfig({ outbox: { path } }), { dataDir: dir, env: {} }).check();
    expect(check).toEqual({ ok: true, detail: expect.stringContaining(path) });
    expect(() => statSync(path)).toThrow();
  });
});

describe('webhook transport', () => {
  const webhook = (extra: Record<string, unknown> = {}, timeoutMs = 5000) =>
    smsConfig({
      transport: 'webhook',
      timeoutMs,
      webhook: { url: `${gateway.url}/sms/send?client=mail2fa`, ...extra },
    });

  it('POSTs JSON {to, text} with the configured auth header', async () => {
    const sender = createSmsSender(webhook({ authHeader: `Authorization: ${HEADER_SECRET}` }), {
      dataDir: dir,
      env: {},
    });
    expect(sender.transport).toBe('webhook');
    expect(await sender.send(MESSAGE)).toEqual({ transport: 'webhook' });
    expect(gateway.received).toHaveLength(1);
    const req = gateway.received[0]!;
    expect(req.method).toBe('POST');
    expect(req.url).toBe('/sms/send?client=mail2fa');
    expect(req.headers['content-type']).toBe('application/json');
    expect(req.headers.authorization).toBe(HEADER_SECRET);
    expect(JSON.parse(req.body)).toEqual({ to: PHONE, text: MESSAGE.text });
  });

  it('sends no auth header when none is configured; any 2xx is success', async () => {
    gateway.reply = (_req, res) => res.writeHead(202).end();
    await createSmsSender(webhook(), { dataDir: dir, env: {} }).send(MESSAGE);
    expect(gateway.received[0]!.headers.authorization).toBeUndefined();
  });

  it('the environment wins over the config file; _FILE variants and authHeaderFile work', async () => {
    const file = join(dir, 'webhook-header');
    writeFileSync(file, 'X-Api-Key: from-file\n', { mode: 0o600 });
    const config = webhook({ authHeader: 'X-Api-Key: from-config' });
    await createSmsSender(config, {
      dataDir: dir,
      env: { MAIL2FA_SMS_WEBHOOK_AUTH_HEADER: 'X-Api-Key: from-env' },
    }).send(MESSAGE);
    await createSmsSender(config, { dataDir: dir, env: { MAIL2FA_SMS_WEBHOOK_AUTH_HEADER_FILE: file } }).send(MESSAGE);
    await createSmsSender(config, { dataDir: dir, env: {} }).send(MESSAGE);
    await createSmsSender(webhook({ authHeaderFile: file }), { dataDir: dir, env: {} }).send(MESSAGE);
    expect(gateway.received.map((r) => r.headers['x-api-key'])).toEqual([
      'from-env',
      'from-file',
      'from-config',
      'from-file',
    ]);
  });

  it('a 500 is exit 69; the message says what happened and holds no code, number or credential', async () => {
    gateway.reply = (_req, res) =>
      res
        .writeHead(500, { 'content-type': 'application/json' })
        .end(JSON.stringify({ error: `cannot deliver ${MESSAGE.text} to ${PHONE}` }));
    const err = await failure(
      createSmsSender(webhook({ authHeader: `Authorization: ${HEADER_SECRET}` }), { dataDir: dir, env: {} }).send(
        MESSAGE,
      ),
    );
    expect(err.exitCode).toBe(ExitCode.UNAVAILABLE);
    expect(err.code).toBe('sms_unavailable');
    expect(err.message).toMatch(/HTTP 500/);
    expect(err.message).toContain('+45 ****3456');
    expect(err.message).toContain(gateway.url);
    expect(err.message).not.toContain('client=mail2fa');
    expectNoSecrets(err);
  });

  it('a redirect is not followed (it could carry the auth header elsewhere): exit 69', async () => {
    gateway.reply = (req, res) =>
      req.url.startsWith('/elsewhere')
        ? res.writeHead(200).end()
        : res.writeHead(307, { location: '/elsewhere' }).end();
    const err = await failure(
      createSmsSender(webhook({ authHeader: `Authorization: ${HEADER_SECRET}` }), { dataDir: dir, env: {} }).send(
        MESSAGE,
      ),
    );
    expect(err.exitCode).toBe(ExitCode.UNAVAILABLE);
    expect(err.message).toMatch(/HTTP 307/);
    expect(gateway.received).toHaveLength(1);
  });

  it('a gateway that never answers times out quickly: exit 69', async () => {
    gateway.reply = () => undefined; // never answers
    const started = Date.now();
    const err = await failure(createSmsSender(webhook({}, 300), { dataDir: dir, env: {} }).send(MESSAGE));
    expect(Date.now() - started).toBeLessThan(3000);
    expect(err.exitCode).toBe(ExitCode.UNAVAILABLE);
    expect(err.message).toMatch(/no answer within 300 ms/);
    expectNoSecrets(err);
  });

  it('a gateway that sends headers but stalls the body also times out: exit 69', async () => {
    gateway.reply = (_req, res) => {
      res.writeHead(200, { 'content-length': '100' });
      res.write('partial');
    };
    const started = Date.now();
    const err = await failure(createSmsSender(webhook({}, 300), { dataDir: dir, env: {} }).send(MESSAGE));
    expect(Date.now() - started).toBeLessThan(3000);
    expect(err.exitCode).toBe(ExitCode.UNAVAILABLE);
  });

  it('connection refused: exit 69', async () => {
    const port = await closedPort();
    const config = smsConfig({
      transport: 'webhook',
      webhook: { url: `http://127.0.0.1:${port}/hook`, authHeader: `Authorization: ${HEADER_SECRET}` },
    });
    const err = await failure(createSmsSender(config, { dataDir: dir, env: {} }).send(MESSAGE));
    expect(err.exitCode).toBe(ExitCode.UNAVAILABLE);
    expect(err.message).toMatch(/connection refused/);
    expectNoSecrets(err);
  });

  it('an unresolvable host: exit 69', async () => {
    const config = smsConfig({
      transport: 'webhook',
      timeoutMs: 3000,
      webhook: { url: 'http://sms-gateway.invalid/hook' },
    });
    const err = await failure(createSmsSender(config, { dataDir: dir, env: {} }).send(MESSAGE));
    expect(err.exitCode).toBe(ExitCode.UNAVAILABLE);
    expect(err.message).toMatch(/unreachable/);
    expectNoSecrets(err);
  });

  it('missing URL, malformed header or unreadable header file: exit 78, nothing sent, no secret shown', async () => {
    const noUrl = await failure(
      createSmsSender(smsConfig({ transport: 'webhook' }), { dataDir: dir, env: {} }).send(MESSAGE),
    );
    expect(noUrl.exitCode).toBe(ExitCode.CONFIG);
    const malformed = await failure(
      createSmsSender(webhook({ authHeader: HEADER_SECRET.replace(' ', '') }), { dataDir: dir, env: {} }).send(MESSAGE),
    );
    expect(malformed.exitCode).toBe(ExitCode.CONFIG);
    expect(malformed.message).toMatch(/"Name: value"/);
    expectNoSecrets(malformed);
    const missingFile = await failure(
      createSmsSender(webhook(), {
        dataDir: dir,
        env: { MAIL2FA_SMS_WEBHOOK_AUTH_HEADER_FILE: join(dir, 'nope') },
      }).send(MESSAGE),
    );
    expect(missingFile.exitCode).toBe(ExitCode.CONFIG);
    expect(missingFile.message).toMatch(/ENOENT/);
    expect(gateway.received).toHaveLength(0);
  });

  it('check() asks with HEAD, sends no message, and reports refused credentials and dead gateways', async () => {
    const sender = createSmsSender(webhook({ authHeader: `Authorization: ${HEADER_SECRET}` }), {
      dataDir: dir,
      env: {},
    });
    gateway.reply = (_req, res) => res.writeHead(405).end();
    const ok = await sender.check();
    expect(ok.ok).toBe(true);
    expect(ok.detail).toMatch(/reachable.*HTTP 405/);
    expect(gateway.received.map((r) => r.method)).toEqual(['HEAD']);
    expect(ok.detail).not.toContain('hdr-SECRET');

    gateway.reply = (_req, res) => res.writeHead(401).end();
    expect(await sender.check()).toEqual({ ok: false, detail: expect.stringMatching(/HTTP 401/) });

    gateway.reply = () => undefined;
    const slow = createSmsSender(webhook({}, 300), { dataDir: dir, env: {} });
    expect(await slow.check()).toEqual({ ok: false, detail: expect.stringMatching(/no answer within 300 ms/) });

    const port = await closedPort();
    const dead = createSmsSender(smsConfig({ transport: 'webhook', webhook: { url: `http://127.0.0.1:${port}/` } }), {
      dataDir: dir,
      env: {},
    });
    expect(await dead.check()).toEqual({ ok: false, detail: expect.stringMatching(/connection refused/) });
    expect(gateway.received.every((r) => r.method === 'HEAD')).toBe(true);
  });
});

describe('twilio transport', () => {
  const twilio = (extra: Record<string, unknown> = {}, timeoutMs = 5000) =>
    smsConfig({
      transport: 'twilio',
      timeoutMs,
      twilio: { baseUrl: gateway.url, accountSid: 'AC123', from: '+15005550006', ...extra },
    });
  const basic = (token: string) => `Basic ${Buffer.from(`AC123:${token}`).toString('base64')}`;

  it("POSTs the Messages API form with HTTP Basic auth; Twilio's 201 is success", async () => {
    gateway.reply = (_req, res) =>
      res.writeHead(201, { 'content-type': 'application/json' }).end(JSON.stringify({ sid: 'SM1', status: 'queued' }));
    const sender = createSmsSender(twilio({ authToken: TOKEN }), { dataDir: dir, env: {} });
    expect(sender.transport).toBe('twilio');
    expect(await sender.send(MESSAGE)).toEqual({ transport: 'twilio' });
    const req = gateway.received[0]!;
    expect(req.method).toBe('POST');
    expect(req.url).toBe('/2010-04-01/Accounts/AC123/Messages.json');
    expect(req.headers['content-type']).toBe('application/x-www-form-urlencoded');
    expect(req.headers.authorization).toBe(basic(TOKEN));
    expect(Object.fromEntries(new URLSearchParams(req.body))).toEqual({
      To: PHONE,
      From: '+15005550006',
      Body: MESSAGE.text,
    });
  });

  it('takes the token from MAIL2FA_TWILIO_AUTH_TOKEN(_FILE) before the config file, and from authTokenFile', async () => {
    const file = join(dir, 'twilio-token');
    writeFileSync(file, 'token-from-file\n', { mode: 0o600 });
    const config = twilio({ authToken: 'token-from-config' });
    await createSmsSender(config, { dataDir: dir, env: { MAIL2FA_TWILIO_AUTH_TOKEN: 'token-from-env' } }).send(MESSAGE);
    await createSmsSender(config, { dataDir: dir, env: { MAIL2FA_TWILIO_AUTH_TOKEN_FILE: file } }).send(MESSAGE);
    await createSmsSender(config, { dataDir: dir, env: {} }).send(MESSAGE);
    await createSmsSender(twilio({ authTokenFile: file }), { dataDir: dir, env: {} }).send(MESSAGE);
    expect(gateway.received.map((r) => r.headers.authorization)).toEqual([
      basic('token-from-env'),
      basic('token-from-file'),
      basic('token-from-config'),
      basic('token-from-file'),
    ]);
  });

  it("a Twilio error is exit 69 with Twilio's error code, never its message (which quotes the number)", async () => {
    gateway.reply = (_req, res) =>
      res.writeHead(400, { 'content-type': 'application/json' }).end(
        JSON.stringify({
          code: 21211,
          message: `The 'To' number ${PHONE} is not a valid phone number.`,
          status: 400,
        }),
      );
    const err = await failure(createSmsSender(twilio({ authToken: TOKEN }), { dataDir: dir, env: {} }).send(MESSAGE));
    expect(err.exitCode).toBe(ExitCode.UNAVAILABLE);
    expect(err.message).toMatch(/HTTP 400/);
    expect(err.message).toContain('Twilio error 21211');
    expectNoSecrets(err);
  });

  it('a 500, a timeout and a refused connection are exit 69 without secrets', async () => {
    gateway.reply = (_req, res) => res.writeHead(500).end(TOKEN);
    const e500 = await failure(createSmsSender(twilio({ authToken: TOKEN }), { dataDir: dir, env: {} }).send(MESSAGE));
    expect(e500.exitCode).toBe(ExitCode.UNAVAILABLE);
    expectNoSecrets(e500);

    gateway.reply = () => undefined;
    const started = Date.now();
    const timeout = await failure(
      createSmsSender(twilio({ authToken: TOKEN }, 300), { dataDir: dir, env: {} }).send(MESSAGE),
    );
    expect(Date.now() - started).toBeLessThan(3000);
    expect(timeout.exitCode).toBe(ExitCode.UNAVAILABLE);
    expectNoSecrets(timeout);

    const port = await closedPort();
    const refused = await failure(
      createSmsSender(twilio({ authToken: TOKEN, baseUrl: `http://127.0.0.1:${port}` }), {
        dataDir: dir,
        env: {},
      }).send(MESSAGE),
    );
    expect(refused.exitCode).toBe(ExitCode.UNAVAILABLE);
    expect(refused.message).toMatch(/connection refused/);
    expectNoSecrets(refused);
  });

  it('no auth token, no account SID or no sender: exit 78 before anything is sent', async () => {
    for (const config of [
      twilio(),
      twilio({ accountSid: undefined, authToken: TOKEN }),
      twilio({ from: undefined, authToken: TOKEN }),
    ]) {
      const err = await failure(createSmsSender(config, { dataDir: dir, env: {} }).send(MESSAGE));
      expect(err.exitCode).toBe(ExitCode.CONFIG);
      expectNoSecrets(err);
    }
    expect(gateway.received).toHaveLength(0);
  });

  it('check() GETs the account resource (no message sent) and reports refused credentials', async () => {
    gateway.reply = (req, res) =>
      req.headers.authorization === basic(TOKEN)
        ? res.writeHead(200, { 'content-type': 'application/json' }).end('{"sid":"AC123"}')
        : res.writeHead(401).end();
    const good = await createSmsSender(twilio({ authToken: TOKEN }), { dataDir: dir, env: {} }).check();
    expect(good).toEqual({ ok: true, detail: expect.stringMatching(/credentials accepted/) });
    expect(gateway.received.map((r) => `${r.method} ${r.url}`)).toEqual(['GET /2010-04-01/Accounts/AC123.json']);

    const bad = await createSmsSender(twilio({ authToken: 'wrong' }), { dataDir: dir, env: {} }).check();
    expect(bad).toEqual({ ok: false, detail: expect.stringMatching(/refused the credentials/) });
    expect(bad.detail).not.toContain('wrong');

    const missing = await createSmsSender(twilio(), { dataDir: dir, env: {} }).check();
    expect(missing).toEqual({ ok: false, detail: expect.stringMatching(/no Twilio auth token/) });

    gateway.reply = () => undefined;
    const slow = await createSmsSender(twilio({ authToken: TOKEN }, 300), { dataDir: dir, env: {} }).check();
    expect(slow).toEqual({ ok: false, detail: expect.stringMatching(/no answer within 300 ms/) });
    expect(gateway.received.every((r) => r.method === 'GET')).toBe(true);
  });
});

describe('recipient', () => {
  it('refuses a recipient that is not E.164 (a programming error upstream), without echoing it', async () => {
    const err = await failure(
      createSmsSender(smsConfig({}), { dataDir: join(dir, 'r'), env: {} }).send({ to: '20123456', text: MESSAGE.text }),
    );
    expect(err.exitCode).toBe(ExitCode.DATAERR);
    expectNoSecrets(err);
  });
});
