/**
 * `mail2fa serve` in tests: the built binary spawned on a Unix socket in the test's scratch dir (stderr
 * captured line by line), and a small HTTP client over that socket (or TCP).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { request } from 'node:http';
import { join } from 'node:path';
import { BIN } from './cli.js';
import { testEnv } from './context.js';
import type { TestDb } from './db.js';

export interface Reply {
  status: number;
  headers: Record<string, string | string[] | undefined>;
  body: Record<string, unknown>;
  raw: string;
}

export interface Target {
  socketPath?: string;
  host?: string;
  port?: number;
}

/** One HTTP request; the answer must be JSON (every answer of the service is). */
export function call(
  target: Target,
  path: string,
  body?: unknown,
  o: { method?: string; headers?: Record<string, string>; rawBody?: string | Buffer } = {},
): Promise<Reply> {
  const payload = o.rawBody ?? (body === undefined ? undefined : JSON.stringify(body));
  return new Promise((resolve, reject) => {
    const req = request(
      {
        ...target,
        path,
        method: o.method ?? (payload === undefined ? 'GET' : 'POST'),
        headers: {
          'Content-Type': 'application/json',
          'Mail2fa-Client': 'roundcube',
          ...(payload !== undefined ? { 'Content-Length': String(Buffer.byteLength(payload)) } : {}),
          ...o.headers,
        },
        agent: false,
      },
      (res) => {
        let raw = '';
        res.setEncoding('utf8').on('data', (d: string) => (raw += d));
        res.on('end', () => {
          try {
            resolve({
              status: res.statusCode ?? 0,
              headers: res.headers,
              body: JSON.parse(raw) as Record<string, unknown>,
              raw,
            });
          } catch {
            reject(new Error(`not JSON (status ${res.statusCode}): ${raw.slice(0, 200)}`));
          }
        });
        res.on('error', reject);
      },
    );
    req.on('error', reject);
    if (payload !== undefined) req.write(payload);
    req.end();
  });
}

export interface ServeProcess {
  child: ChildProcess;
  socketPath: string;
  /** Every stderr line so far. */
  stderr(): string;
  /** The parsed JSON log lines so far. */
  logLines(): Record<string, unknown>[];
  call(path: string, body?: unknown, o?: Parameters<typeof call>[3]): Promise<Reply>;
  /** SIGTERM, then the exit code. */
  stop(): Promise<number | null>;
}

/** Spawns `mail2fa --db URL serve --socket DIR/serve.sock …` and waits for its "listening" line. */
export async function startServe(
  db: TestDb,
  o: { dbUrl?: string; args?: string[]; env?: Record<string, string>; socketName?: string } = {},
): Promise<ServeProcess> {
  const socketPath = join(db.dir, o.socketName ?? 'serve.sock');
  const env: Record<string, string> = {};
  for (const [k, v] of Object.entries({ ...process.env, ...testEnv(db), ...o.env })) if (v !== undefined) env[k] = v;
  delete env.MAIL2FA_CONFIG;
  const child = spawn(
    process.execPath,
    [BIN, '--db', o.dbUrl ?? db.url, 'serve', '--socket', socketPath, ...(o.args ?? [])],
    { env, stdio: ['ignore', 'pipe', 'pipe'] },
  );
  let stderr = '';
  let stdout = '';
  const exited = new Promise<number | null>((resolve) => child.on('close', (code) => resolve(code)));
  child.stdout!.setEncoding('utf8').on('data', (d: string) => (stdout += d));
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`serve did not start: ${stderr}${stdout}`)), 15_000);
    child.stderr!.setEncoding('utf8').on('data', (d: string) => {
      stderr += d;
      if (stderr.includes('"event":"listening"')) {
        clearTimeout(timer);
        resolve();
      }
    });
    void exited.then((code) => {
      clearTimeout(timer);
      reject(new Error(`serve exited (${code}) before listening: ${stderr}${stdout}`));
    });
  });
  return {
    child,
    socketPath,
    stderr: () => stderr,
    logLines: () =>
      stderr
        .split('\n')
        .filter((l) => l.startsWith('{'))
        .map((l) => JSON.parse(l) as Record<string, unknown>),
    call: (path, body, opts) => call({ socketPath }, path, body, opts),
    async stop() {
      if (child.exitCode === null && child.signalCode === null && !child.killed) child.kill('SIGTERM');
      return exited;
    },
  };
}
