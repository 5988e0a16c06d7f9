/**
 * Where `serve` listens: a Unix socket (default; permissions are the authentication) or a loopback TCP port
 * with a bearer token. A stale socket file is replaced; a live one, or a path that is not a socket, is refused.
 */
import { execFileSync } from 'node:child_process';
import { chmodSync, chownSync, lstatSync, mkdirSync, readFileSync, statSync, unlinkSync } from 'node:fs';
import type { Server } from 'node:http';
import { connect, isIP } from 'node:net';
import { dirname } from 'node:path';
import { configError, unavailable, usageError } from '../errors.js';

export interface UnixTarget {
  kind: 'unix';
  path: string;
  mode: number;
  owner?: string;
  group?: string;
}

export interface TcpTarget {
  kind: 'tcp';
  host: string;
  port: number;
}

export type ListenTarget = UnixTarget | TcpTarget;

/** `HOST:PORT` or `[V6]:PORT`; only loopback addresses unless `exposeToNetwork`. */
export function parseListen(value: string, exposeToNetwork: boolean): TcpTarget {
  const match = /^(?:\[([^\]]+)\]|([^:]+)):(\d{1,5})$/.exec(value);
  const host = match?.[1] ?? match?.[2];
  const port = Number(match?.[3]);
  if (!host || !(port >= 1 && port <= 65535))
    throw usageError(`--listen ${value}: expected HOST:PORT, e.g. 127.0.0.1:8025`);
  const literal = host === 'localhost' ? '127.0.0.1' : host;
  if (isIP(literal) === 0) throw usageError(`--listen ${value}: the host must be an IP address (or localhost)`);
  if (!isLoopback(literal) && !exposeToNetwork) {
    throw usageError(
      `--listen ${value} is not a loopback address: it would expose mail2fa's sign-in and 2FA settings API to the network`,
      'Use 127.0.0.1 or ::1 (or a Unix socket); add --expose-to-network only behind a firewall and TLS proxy you control.',
    );
  }
  return { kind: 'tcp', host: literal, port };
}

export function isLoopback(ip: string): boolean {
  return /^127\.\d{1,3}\.\d{1,3}\.\d{1,3}$/.test(ip) || ip === '::1' || /^::ffff:127\./i.test(ip);
}

/** The bearer token from a file (`_FILE` convention): at least 16 characters, not world-readable. */
export function readTokenFile(file: string): string {
  let text: string;
  try {
    if (statSync(file).mode & 0o004)
      throw configError('token_permissions', `the token file ${file} is readable by everyone`, `chmod o-r ${file}`);
    text = readFileSync(file, 'utf8');
  } catch (err) {
    if ((err as { code?: string }).code === 'token_permissions') throw err;
    throw configError(
      'token_unreadable',
      `cannot read the token file ${file}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
  }
  const token = text.trim();
  if (token.length < 16 || /\s/.test(token))
    throw configError(
      'token_malformed',
      `the token in ${file} must be one word of at least 16 characters`,
      'For example: openssl rand -hex 32 > FILE',
    );
  return token;
}

export async function listen(server: Server, target: ListenTarget): Promise<void> {
  if (target.kind === 'tcp') {
    await listenOn(server, { host: target.host, port: target.port });
    return;
  }
  await clearStaleSocket(target.path);
  mkdirSync(dirname(target.path), { recursive: true, mode: 0o750 });
  // Created with no access for others from the first instant; widened to the wanted mode right after.
  const previous = process.umask(0o177);
  try {
    await listenOn(server, { path: target.path });
  } finally {
    process.umask(previous);
  }
  try {
    const uid = target.owner === undefined ? -1 : resolveId(target.owner, 'passwd');
    const gid = target.group === undefined ? -1 : resolveId(target.group, 'group');
    if (uid !== -1 || gid !== -1) chownSync(target.path, uid, gid);
    chmodSync(target.path, target.mode);
  } catch (err) {
    server.close();
    if ((err as { exitCode?: number }).exitCode) throw err;
    throw configError(
      'socket_permissions',
      `cannot set the owner/mode of ${target.path}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
    );
  }
}

function listenOn(server: Server, options: { path: string } | { host: string; port: number }): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => {
      reject(
        unavailable(
          'listen_failed',
          `cannot listen on ${'path' in options ? options.path : `${options.host}:${options.port}`}: ${err.code ?? err.message}`,
        ),
      );
    };
    server.once('error', onError);
    server.listen(options, () => {
      server.off('error', onError);
      resolve();
    });
  });
}

/** A socket file nobody answers on (a crashed service) is removed; a live one is refused. */
async function clearStaleSocket(path: string): Promise<void> {
  let stat;
  try {
    stat = lstatSync(path);
  } catch {
    return;
  }
  if (!stat.isSocket())
    throw configError(
      'socket_path_taken',
      `${path} exists and is not a socket: refusing to replace it`,
      'Choose another --socket path.',
    );
  const live = await new Promise<boolean>((resolve) => {
    const probe = connect({ path });
    probe.once('connect', () => {
      probe.destroy();
      resolve(true);
    });
    probe.once('error', () => resolve(false));
  });
  if (live)
    throw unavailable(
      'socket_in_use',
      `another process is listening on ${path}`,
      'Is mail2fa serve already running? Stop it first, or choose another --socket path.',
    );
  unlinkSync(path);
}

/** A user or group name (or number) → its numeric id. */
function resolveId(name: string, database: 'passwd' | 'group'): number {
  if (/^\d+$/.test(name)) return Number(name);
  try {
    const line = execFileSync('getent', [database, name], { encoding: 'utf8', timeout: 5000 }).split('\n')[0]!;
    const id = Number(line.split(':')[2]);
    if (Number.isInteger(id)) return id;
  } catch {
    // fall through
  }
  throw configError(
    'unknown_socket_owner',
    `unknown ${database === 'passwd' ? 'user' : 'group'} ${name} for the socket`,
  );
}

/** Removes the socket file on stop (only if it is still ours: a socket). */
export function removeSocket(path: string): void {
  try {
    if (lstatSync(path).isSocket()) unlinkSync(path);
  } catch {
    // already gone
  }
}
