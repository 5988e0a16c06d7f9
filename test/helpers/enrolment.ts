/**
 * Test helpers for enrolment and SMS sending: a real HTTP server on 127.0.0.1 standing in for an SMS webhook,
 * the outbox file's codes, config files, and a full dump of every table of a test database.
 */
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createServer, type IncomingHttpHeaders, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { expect } from 'vitest';
import type { Context } from '../../src/context.js';
import { Mail2faError } from '../../src/errors.js';
import type { CliResult } from './cli.js';
import { tableNamesOf } from './db-snapshot.js';

export const CODE_IN_TEXT = /verification code is ([0-9]{6})\./;

export interface GatewayRequest {
  headers: IncomingHttpHeaders;
  body: { to: string; text: string };
}

/** An SMS webhook on 127.0.0.1: answers 200, 500, or never (`hang`), and records what it received. */
export class SmsGateway {
  readonly received: GatewayRequest[] = [];
  mode: 'ok' | 'error' | 'hang' = 'ok';
  url = '';
  private readonly hanging: ServerResponse[] = [];
  private readonly server: Server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c: Buffer) => chunks.push(c));
    req.on('end', () => {
      res.setHeader('connection', 'close');
      if (this.mode === 'hang') {
        this.received.push({
          headers: req.headers,
          body: JSON.parse(Buffer.concat(chunks).toString('utf8') || '{}') as GatewayRequest['body'],
        });
        this.hanging.push(res);
        return;
      }
      if (req.method === 'POST')
        this.received.push({
          headers: req.headers,
          body: JSON.parse(Buffer.concat(chunks).toString('utf8')) as GatewayRequest['body'],
        });
      res
        .writeHead(this.mode === 'ok' ? 200 : 500, { 'content-type': 'application/json' })
        .end(this.mode === 'ok' ? '{"status":"queued"}' : '{"error":"internal"}');
    });
  });

  async start(): Promise<this> {
    await new Promise<void>((done) => this.server.listen(0, '127.0.0.1', done));
    this.url = `http://127.0.0.1:${(this.server.address() as AddressInfo).port}/sms`;
    return this;
  }

  /** The code in the newest message received. */
  lastCode(): string {
    const text = this.received.at(-1)?.body.text ?? '';
    const m = CODE_IN_TEXT.exec(text);
    if (!m) throw new Error(`no code in the gateway's last message: ${JSON.stringify(text)}`);
    return m[1]!;
  }

  /** Requests held in `hang` mode so far. */
  get waiting(): number {
    return this.hanging.length;
  }

  /** Answers every held request with 200 (and stops holding new ones). */
  release(): void {
    this.mode = 'ok';
    for (const res of this.hanging.splice(0))
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"status":"queued"}');
  }

  async stop(): Promise<void> {
    for (const res of this.hanging.splice(0)) res.socket?.destroy();
    this.server.closeAllConnections();
    await new Promise<void>((done) => this.server.close(() => done()));
  }
}

/** A port nothing listens on: bind one, then close it. */
export async function closedPort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((done) => s.listen(0, '127.0.0.1', done));
  const { port } = s.address() as AddressInfo;
  await new Promise<void>((done) => s.close(() => done()));
  return port;
}

/** The messages appended to an outbox file, oldest first. */
export function outboxMessages(path: string): Array<{ to: string; text: string }> {
  if (!existsSync(path)) return [];
  return readFileSync(path, 'utf8')
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as { to: string; text: string });
}

/** The code of the newest message in an outbox file. */
export function lastOutboxCode(path: string): string {
  const m = CODE_IN_TEXT.exec(outboxMessages(path).at(-1)?.text ?? '');
  if (!m) throw new Error(`no code in the outbox ${path}`);
  return m[1]!;
}

/** Writes a JSON config file into `dir` and returns its path. */
export function writeConfig(dir: string, name: string, settings: Record<string, unknown>): string {
  const path = join(dir, `${name}.json`);
  writeFileSync(path, JSON.stringify(settings, null, 2));
  return path;
}

/** Every row of every table of the database (mail2fa's own and the mailbox table), every column. */
export async function dumpDatabase(ctx: Context): Promise<{ tables: string[]; values: unknown[] }> {
  const db = await ctx.db();
  const names = await tableNamesOf(db.knex, db.dialect === 'mysql' ? 'mariadb' : db.dialect);
  const values: unknown[] = [];
  for (const name of names) {
    const rows = (await db.knex(name).select('*')) as Record<string, unknown>[];
    for (const row of rows) values.push(...Object.keys(row), ...Object.values(row));
  }
  return { tables: names, values };
}

/** A dump's values as text (strings, numbers; binary values both as latin1 and hex) and as raw bytes. */
export function dumpForms(values: unknown[]): { text: string; bytes: Buffer } {
  const parts: string[] = [];
  const bytes: Buffer[] = [];
  for (const v of values) {
    if (v === null || v === undefined) continue;
    if (Buffer.isBuffer(v)) {
      parts.push(v.toString('latin1'), v.toString('hex'));
      bytes.push(v);
    } else {
      const s = typeof v === 'object' ? JSON.stringify(v) : String(v);
      parts.push(s);
      bytes.push(Buffer.from(s, 'utf8'));
    }
  }
  return { text: parts.join('\n'), bytes: Buffer.concat(bytes) };
}

/** The typed error a promise rejects with (anything else fails the test). */
export async function failure(p: Promise<unknown>): Promise<Mail2faError> {
  try {
    await p;
  } catch (err) {
    if (err instanceof Mail2faError) return err;
    throw err;
  }
  throw new Error('expected a Mail2faError, but it succeeded');
}

/** stdout of a --json run: exactly one JSON document. */
export function jsonDocument(r: CliResult): Record<string, any> {
  const lines = r.stdout.trim().split('\n');
  expect(lines, `stdout must be exactly one JSON document: ${r.stdout}\nstderr: ${r.stderr}`).toHaveLength(1);
  return JSON.parse(lines[0]!) as Record<string, any>;
}
