/**
 * A real memcached (Debian's /usr/bin/memcached) on a free loopback port, started and stopped by the test, plus
 * the two text-protocol commands the tests need to plant and look up SOGo's cache entries.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { connect, createServer } from 'node:net';

export const MEMCACHED_BIN = process.env.MAIL2FA_MEMCACHED_BIN ?? '/usr/bin/memcached';

export async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as { port: number };
      server.close(() => resolve(port));
    });
  });
}

export interface Memcached {
  port: number;
  address: string;
  stop(): Promise<void>;
}

export async function startMemcached(): Promise<Memcached> {
  const port = await freePort();
  const args = ['-l', '127.0.0.1', '-p', String(port), '-U', '0', '-m', '8'];
  if (process.getuid?.() === 0) args.push('-u', 'root');
  const child: ChildProcess = spawn(MEMCACHED_BIN, args, { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  child.stderr!.on('data', (d) => (stderr += String(d)));
  const deadline = Date.now() + 5000;
  for (;;) {
    if (child.exitCode !== null) throw new Error(`memcached exited (${child.exitCode}): ${stderr}`);
    try {
      await command(port, 'version\r\n', (r) => r.startsWith('VERSION'));
      break;
    } catch {
      if (Date.now() > deadline) {
        child.kill('SIGKILL');
        throw new Error(`memcached did not answer on port ${port}: ${stderr}`);
      }
      await new Promise((r) => setTimeout(r, 30));
    }
  }
  return {
    port,
    address: `127.0.0.1:${port}`,
    stop: () =>
      new Promise<void>((resolve) => {
        if (child.exitCode !== null) return resolve();
        child.once('exit', () => resolve());
        child.kill('SIGTERM');
      }),
  };
}

/** Sends `text`, resolves with everything received once `done(received)` holds. */
function command(port: number, text: string, done: (received: string) => boolean): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = connect({ host: '127.0.0.1', port });
    let received = '';
    const timer = setTimeout(() => {
      socket.destroy();
      reject(new Error('memcached timeout'));
    }, 2000);
    socket.on('connect', () => socket.write(text));
    socket.on('data', (d) => {
      received += String(d);
      if (done(received)) {
        clearTimeout(timer);
        socket.end();
        resolve(received);
      }
    });
    socket.on('error', (err) => {
      clearTimeout(timer);
      reject(err);
    });
  });
}

export async function mcSet(port: number, key: string, value: string): Promise<void> {
  const reply = await command(port, `set ${key} 0 0 ${Buffer.byteLength(value)}\r\n${value}\r\n`, (r) =>
    r.endsWith('\r\n'),
  );
  if (reply !== 'STORED\r\n') throw new Error(`set ${key}: ${reply}`);
}

/** The value of `key`, or null when memcached has none. */
export async function mcGet(port: number, key: string): Promise<string | null> {
  const reply = await command(port, `get ${key}\r\n`, (r) => r.endsWith('END\r\n'));
  if (reply === 'END\r\n') return null;
  const m = /^VALUE \S+ \d+ (\d+)\r\n/.exec(reply);
  if (!m) throw new Error(`get ${key}: ${reply}`);
  return reply.slice(m[0].length, m[0].length + Number(m[1]));
}
