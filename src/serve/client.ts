/**
 * `mail2fa doctor --serve SOCKET|URL`: asks a running service for GET /healthz and turns the answer into doctor
 * checks (reachable, database, schema, key). /healthz needs no token, so TCP services are checked the same way.
 */
import { request } from 'node:http';
import { ExitCode } from '../errors.js';
import type { Check } from '../core/doctor.js';

export async function checkService(target: string, timeoutMs = 5000): Promise<Check[]> {
  const where = /^https?:\/\//.test(target) ? { url: new URL('/healthz', target) } : { socketPath: target };
  let reply: { status: number; body: Record<string, unknown> };
  try {
    reply = await getHealth(where, timeoutMs);
  } catch (err) {
    return [
      {
        name: 'service',
        status: 'fail',
        detail: `no answer from ${target}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`,
        hint: 'Is mail2fa serve running (systemctl status mail2fa)? Check the socket path and its permissions.',
        exitCode: ExitCode.UNAVAILABLE,
      },
    ];
  }
  const body = reply.body;
  const checks: Check[] = [
    {
      name: 'service',
      status: 'ok',
      detail: `${target} answers (mail2fa ${String(body.version ?? '?')}, HTTP ${reply.status})`,
    },
  ];
  const part = (name: string, value: unknown, good: string, exitCode: number, hint: string): Check =>
    value === good
      ? { name, status: 'ok', detail: String(value) }
      : { name, status: 'fail', detail: String(value ?? 'not reported'), hint, exitCode };
  checks.push(
    part(
      'service database',
      body.database,
      'ok',
      ExitCode.UNAVAILABLE,
      'The service cannot reach its database: see its log (journalctl -u mail2fa).',
    ),
  );
  checks.push(
    part(
      'service schema',
      body.schema,
      'current',
      ExitCode.CONFIG,
      "Run `mail2fa migrate` with the service's configuration.",
    ),
  );
  checks.push(
    part('service key', body.key, 'loaded', ExitCode.CONFIG, 'The service could not load its master key: see its log.'),
  );
  return checks;
}

function getHealth(
  where: { url: URL } | { socketPath: string },
  timeoutMs: number,
): Promise<{ status: number; body: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const options =
      'url' in where
        ? { host: where.url.hostname, port: where.url.port || 80, path: where.url.pathname }
        : { socketPath: where.socketPath, path: '/healthz' };
    const req = request(
      { ...options, method: 'GET', timeout: timeoutMs, headers: { 'Mail2fa-Client': 'doctor' } },
      (res) => {
        let raw = '';
        res.setEncoding('utf8').on('data', (d: string) => (raw += d));
        res.on('end', () => {
          try {
            resolve({ status: res.statusCode ?? 0, body: JSON.parse(raw) as Record<string, unknown> });
          } catch {
            reject(new Error(`not a mail2fa service (HTTP ${res.statusCode}, not JSON)`));
          }
        });
      },
    );
    req.on('timeout', () => req.destroy(Object.assign(new Error('timed out'), { code: 'ETIMEDOUT' })));
    req.on('error', reject);
    req.end();
  });
}
