/**
 * The few memcached text-protocol commands mail2fa needs (no dependency): `delete KEY` after a change to a SOGo
 * profile, and `version` for `doctor`. One short-lived connection per call, a hard timeout, replies read line
 * by line: `delete` answers DELETED or NOT_FOUND; anything else (ERROR, CLIENT_ERROR …, SERVER_ERROR …) is a
 * failure.
 */
import { connect, type Socket } from 'node:net';

/** "host:port", "[v6]:port", or a unix socket path ("/run/memcached/memcached.sock"), as SOGoMemcachedHost has. */
export interface MemcachedServer {
  host?: string;
  port?: number;
  path?: string;
  /** For messages. */
  display: string;
}

export function parseMemcachedServer(spec: string): MemcachedServer | null {
  if (spec.startsWith('/')) return { path: spec, display: spec };
  const match = /^(?:\[([0-9A-Fa-f:.]+)\]|([A-Za-z0-9.-]+))(?::([0-9]{1,5}))?$/.exec(spec);
  if (!match) return null;
  const port = match[3] === undefined ? 11211 : Number(match[3]);
  if (port < 1 || port > 65535) return null;
  return { host: match[1] ?? match[2]!, port, display: spec };
}

/** memcached keys: 1–250 bytes, no whitespace or control characters. */
export function isValidMemcachedKey(key: string): boolean {
  const bytes = Buffer.byteLength(key, 'utf8');
  return bytes >= 1 && bytes <= 250 && !/[\u0000-\u0020\u007f]/.test(key);
}

export type DeleteResult = 'DELETED' | 'NOT_FOUND';

/** Runs `commands` (each one line) on one connection; returns one reply line per command. */
function exchange(server: MemcachedServer, commands: string[], timeoutMs: number): Promise<string[]> {
  return new Promise((resolve, reject) => {
    let buffered = '';
    const replies: string[] = [];
    let settled = false;
    const finish = (err: Error | null) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(replies);
    };
    const socket: Socket = server.path
      ? connect({ path: server.path })
      : connect({ host: server.host!, port: server.port! });
    const timer = setTimeout(() => finish(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    socket.setEncoding('latin1');
    socket.on('connect', () => socket.write(commands.map((c) => `${c}\r\n`).join(''), 'latin1'));
    socket.on('data', (chunk: string) => {
      buffered += chunk;
      let nl: number;
      while ((nl = buffered.indexOf('\r\n')) >= 0) {
        replies.push(buffered.slice(0, nl));
        buffered = buffered.slice(nl + 2);
        if (replies.length === commands.length) return finish(null);
      }
      if (buffered.length > 4096) finish(new Error('unexpected reply (too long)'));
    });
    socket.on('error', (err: NodeJS.ErrnoException) => finish(new Error(err.code ?? err.message)));
    socket.on('close', () => finish(new Error('connection closed before every reply arrived')));
  });
}

/** Deletes `keys` on `server`. Throws with a short reason when the server cannot be reached or refuses. */
export async function memcachedDelete(
  server: MemcachedServer,
  keys: string[],
  timeoutMs: number,
): Promise<Map<string, DeleteResult>> {
  for (const key of keys)
    if (!isValidMemcachedKey(key))
      throw new Error('key not valid for memcached (whitespace, control characters or over 250 bytes)');
  // Key bytes are sent as UTF-8; the socket writes latin1, so each UTF-8 byte goes out as one char.
  const lines = keys.map((k) => `delete ${Buffer.from(k, 'utf8').toString('latin1')}`);
  const replies = await exchange(server, lines, timeoutMs);
  const out = new Map<string, DeleteResult>();
  keys.forEach((key, index) => {
    const reply = replies[index]!;
    if (reply !== 'DELETED' && reply !== 'NOT_FOUND')
      throw new Error(`memcached answered "${reply.slice(0, 80)}" to delete`);
    out.set(key, reply);
  });
  return out;
}

/** `version` → the server's version string (doctor). */
export async function memcachedVersion(server: MemcachedServer, timeoutMs: number): Promise<string> {
  const [reply] = await exchange(server, ['version'], timeoutMs);
  const match = /^VERSION (.{1,80})$/.exec(reply ?? '');
  if (!match) throw new Error(`unexpected reply to version: "${(reply ?? '').slice(0, 80)}"`);
  return match[1]!;
}
