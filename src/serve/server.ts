/**
 * The HTTP/1.1 side of `mail2fa serve` (docs/serve.md): routing, the bearer token (TCP), body limits, timeouts
 * against slow clients, one JSON log line per request, and a graceful stop. Answers come from routes.ts.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { VERSION } from '../version.js';
import { tryCanonicalAddress } from '../core/address.js';
import { AccountQueue } from './account-queue.js';
import { answerForError, badRequest, errorAnswer, type Answer } from './answers.js';
import type { ServeCore } from './core.js';
import { ROUTES, parseBody, runRoute } from './routes.js';

export const MAX_BODY_BYTES = 16 * 1024;
const CLIENT_NAME = /^[A-Za-z0-9._-]{1,32}$/;

export interface ServeTimeouts {
  /** All request headers within this time (slowloris). */
  headersMs: number;
  /** The whole request, body included. */
  requestMs: number;
  /** Idle keep-alive connections are closed after this. */
  keepAliveMs: number;
  /** How long a stop waits for requests in flight. */
  shutdownMs: number;
}

export const DEFAULT_TIMEOUTS: ServeTimeouts = {
  headersMs: 5000,
  requestMs: 10_000,
  keepAliveMs: 5000,
  shutdownMs: 10_000,
};

export interface ServeServerOptions {
  core: ServeCore;
  /** The client name when a request sends no Mail2fa-Client header (actor `serve:<name>`). */
  clientName: string;
  /** Required on every /v1 request when set (TCP). */
  token?: string;
  /** One structured line per request (stderr in the command). */
  log(line: Record<string, unknown>): void;
  timeouts?: Partial<ServeTimeouts>;
  maxConnections?: number;
}

type LogFields = { route: string; method: string; client?: string };

export class ServeServer {
  readonly server: Server;
  private readonly timeouts: ServeTimeouts;
  private readonly tokenDigest: Buffer | undefined;
  private readonly queue = new AccountQueue();
  private inFlight = 0;
  private stopping = false;
  private drained: (() => void) | undefined;

  constructor(private readonly options: ServeServerOptions) {
    this.timeouts = { ...DEFAULT_TIMEOUTS, ...options.timeouts };
    this.tokenDigest = options.token === undefined ? undefined : digest(options.token);
    this.server = createServer(
      {
        headersTimeout: this.timeouts.headersMs,
        requestTimeout: this.timeouts.requestMs,
        keepAliveTimeout: this.timeouts.keepAliveMs,
        // How often the timeouts above are checked (Node's default, 30 s, would let a stalled client sit that long).
        connectionsCheckingInterval: Math.min(250, this.timeouts.headersMs),
        maxHeaderSize: 8 * 1024,
      },
      (req, res) => void this.handle(req, res),
    );
    this.server.maxConnections = options.maxConnections ?? 256;
    this.server.on('clientError', (err: NodeJS.ErrnoException, socket: Socket) => this.clientError(err, socket));
  }

  /** Stops accepting, lets requests in flight finish (up to shutdownMs), then closes every connection and the pool. */
  async close(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    const closed = new Promise<void>((resolve) => this.server.close(() => resolve()));
    this.server.closeIdleConnections();
    if (this.inFlight > 0) {
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, this.timeouts.shutdownMs);
        this.drained = () => {
          clearTimeout(timer);
          resolve();
        };
      });
    }
    this.server.closeAllConnections();
    await closed;
    await this.options.core.close();
  }

  private async handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    const started = performance.now();
    this.inFlight++;
    const path = (req.url ?? '/').split('?')[0]!;
    const fields: LogFields = {
      route: Object.hasOwn(ROUTES, path) || path === '/healthz' ? path.replace(/^\/(v1\/)?/, '') : 'unknown',
      method: req.method ?? '',
    };
    let answer: Answer;
    try {
      answer = await this.answer(req, path, fields);
    } catch (err) {
      answer = answerForError(err);
    }
    if (answer.connectionLost) this.options.core.invalidate();
    try {
      const gone = res.destroyed;
      if (!gone && !res.headersSent) this.send(res, answer);
      // Every request that reached a handler gets its line, also when the client left before the answer.
      this.logLine(gone ? { ...fields, clientGone: true } : fields, answer, started);
    } finally {
      this.inFlight--;
      if (this.inFlight === 0) this.drained?.();
    }
  }

  private async answer(req: IncomingMessage, path: string, fields: LogFields): Promise<Answer> {
    if (this.stopping)
      return { ...errorAnswer(503, 'unavailable', 'the service is shutting down'), headers: { 'Retry-After': '1' } };
    if (path === '/healthz') {
      if (req.method !== 'GET' && req.method !== 'HEAD') return methodNotAllowed('GET');
      const health = await this.options.core.health();
      return {
        status: health.ok ? 200 : 503,
        body: { ...health, version: VERSION },
        outcome: health.ok ? 'healthy' : 'unhealthy',
      };
    }
    const route = Object.hasOwn(ROUTES, path) ? ROUTES[path] : undefined;
    if (!route) return errorAnswer(404, 'not_found', 'no such endpoint (see docs/serve.md)');
    if (req.method !== 'POST') return methodNotAllowed('POST');
    if (!this.authorised(req))
      return {
        ...errorAnswer(401, 'unauthorized', 'missing or wrong bearer token'),
        headers: { 'WWW-Authenticate': 'Bearer' },
      };
    const clientHeader = req.headers['mail2fa-client'];
    if (clientHeader !== undefined && (typeof clientHeader !== 'string' || !CLIENT_NAME.test(clientHeader))) {
      return badRequest('Mail2fa-Client', 'the Mail2fa-Client header must be 1-32 letters, digits, ".", "_" or "-"');
    }
    const client = typeof clientHeader === 'string' ? clientHeader : this.options.clientName;
    fields.client = client;

    const raw = await readBody(req);
    if (raw === 'too_large')
      return {
        ...errorAnswer(413, 'body_too_large', `the body is larger than ${MAX_BODY_BYTES} bytes`),
        headers: { Connection: 'close' },
      };
    if (raw === 'aborted') return errorAnswer(400, 'aborted', 'the request body was not received');
    let body: unknown;
    try {
      body = JSON.parse(raw.toString('utf8'));
    } catch {
      return badRequest(undefined, 'the body is not valid JSON', 'bad_json');
    }
    const parsed = parseBody(route, body);
    if ('answer' in parsed) return parsed.answer;
    const input = parsed.input as { ip?: string; userAgent?: string };
    let ctx;
    try {
      ctx = await this.options.core.forRequest({ client, ip: input.ip, userAgent: input.userAgent });
    } catch (err) {
      return answerForError(err);
    }
    const email = (input as { email?: string }).email ?? '';
    const account = tryCanonicalAddress(email);
    const answer = await ('address' in account
      ? this.queue.run(account.address, () => runRoute(route, input, ctx))
      : runRoute(route, input, ctx));
    return ctx.notices.length ? { ...answer, notices: [...ctx.notices] } : answer;
  }

  /** Constant time: both sides hashed to 32 bytes first, so neither the length nor a prefix leaks. */
  private authorised(req: IncomingMessage): boolean {
    if (!this.tokenDigest) return true;
    const header = req.headers.authorization ?? '';
    const match = /^Bearer (\S+)$/.exec(header);
    const presented = digest(match?.[1] ?? '');
    return timingSafeEqual(presented, this.tokenDigest) && match !== null;
  }

  private send(res: ServerResponse, answer: Answer): void {
    const json = JSON.stringify(answer.body);
    const headers: Record<string, string | number> = {
      'Content-Type': 'application/json; charset=utf-8',
      'Content-Length': Buffer.byteLength(json),
      'Cache-Control': 'no-store',
      ...answer.headers,
    };
    if (this.stopping) headers.Connection = 'close';
    res.writeHead(answer.status, headers);
    res.end(json);
  }

  private logLine(fields: LogFields & { clientGone?: boolean }, answer: Answer, started: number): void {
    this.options.log({
      t: new Date().toISOString(),
      ...fields,
      status: answer.status,
      outcome: answer.outcome,
      ms: Math.round((performance.now() - started) * 10) / 10,
      ...(answer.logError ? { error: answer.logError } : {}),
      ...(answer.notices ? { notices: answer.notices } : {}),
    });
  }

  /** Malformed requests and timeouts (headers or body too slow) never reach handle(): answered here, as JSON. */
  private clientError(err: NodeJS.ErrnoException, socket: Socket): void {
    if (err.code === 'ECONNRESET' || !socket.writable) {
      socket.destroy();
      return;
    }
    const [status, code, reason] =
      err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        ? [408, 'request_timeout', 'Request Timeout']
        : err.code === 'HPE_HEADER_OVERFLOW'
          ? [431, 'headers_too_large', 'Request Header Fields Too Large']
          : [400, 'bad_request', 'Bad Request'];
    const json = JSON.stringify({
      ok: false,
      error: {
        code,
        message: code === 'request_timeout' ? 'the request was not received in time' : 'malformed HTTP request',
      },
    });
    socket.end(
      `HTTP/1.1 ${status} ${reason}\r\nContent-Type: application/json; charset=utf-8\r\nContent-Length: ${Buffer.byteLength(json)}\r\nConnection: close\r\n\r\n${json}`,
    );
    // Closed once the answer is written, whatever the client does (it may never close its side).
    socket.destroySoon();
    // A request whose body was too slow is logged by its handler (outcome "aborted"); only requests that never
    // got that far are logged here, so that each request has one line.
    const handled =
      (socket as Socket & { _httpMessage?: unknown })._httpMessage !== undefined &&
      (socket as Socket & { _httpMessage?: unknown })._httpMessage !== null;
    if (!handled)
      this.options.log({ t: new Date().toISOString(), route: 'unknown', method: '', status, outcome: code, ms: 0 });
  }
}

function digest(text: string): Buffer {
  return createHash('sha256').update(text, 'utf8').digest();
}

function methodNotAllowed(allow: string): Answer {
  return { ...errorAnswer(405, 'method_not_allowed', `use ${allow}`), headers: { Allow: allow } };
}

/** The body, up to MAX_BODY_BYTES; a declared or streamed larger body is not read further. */
function readBody(req: IncomingMessage): Promise<Buffer | 'too_large' | 'aborted'> {
  const declared = Number(req.headers['content-length'] ?? 0);
  if (declared > MAX_BODY_BYTES) return Promise.resolve('too_large');
  return new Promise((resolve) => {
    const chunks: Buffer[] = [];
    let size = 0;
    let done = false;
    const finish = (result: Buffer | 'too_large' | 'aborted') => {
      if (done) return;
      done = true;
      resolve(result);
    };
    req.on('data', (chunk: Buffer) => {
      size += chunk.length;
      if (size > MAX_BODY_BYTES) {
        req.pause();
        finish('too_large');
      } else chunks.push(chunk);
    });
    req.on('end', () => finish(Buffer.concat(chunks)));
    req.on('close', () => finish('aborted'));
    req.on('error', () => finish('aborted'));
  });
}
