import { Command, Option } from 'commander';
import { loadConfig } from '../config.js';
import { ExitCode, Mail2faError } from '../errors.js';
import { parseInput } from './inputs/parse.js';
import { DEFAULT_SOCKET, serveInput } from './inputs/serve.js';
import { EXAMPLES, action } from './shared.js';

/**
 * One JSON line on stderr per event: the service's whole log (requests, start, stop). Lines of one turn of the
 * event loop go out in one write: under load, one system call per request would cost more than the request.
 */
let pending = '';
function logLine(line: Record<string, unknown>): void {
  if (pending === '') setImmediate(flushLog);
  pending += `${JSON.stringify(line)}\n`;
}
function flushLog(): void {
  if (pending === '') return;
  const text = pending;
  pending = '';
  process.stderr.write(text);
}

export function serveCommand(): Command {
  return new Command('serve')
    .description(
      'run the local HTTP/JSON service for webmails (sign-in code checks, 2FA settings): Unix socket by default, or loopback TCP with a bearer token',
    )
    .addOption(
      new Option('--socket <path>', `Unix socket to listen on (default ${DEFAULT_SOCKET})`).env('MAIL2FA_SERVE_SOCKET'),
    )
    .option('--socket-mode <octal>', 'permissions of the socket file', '660')
    .option('--socket-owner <user>', 'owner of the socket file (name or uid)')
    .option('--socket-group <group>', "group of the socket file (name or gid), e.g. the web server's")
    .option('--listen <host:port>', 'listen on TCP instead (loopback only), e.g. 127.0.0.1:8025; needs --token-file')
    .addOption(
      new Option('--token-file <file>', 'file holding the bearer token TCP clients must send').env(
        'MAIL2FA_SERVE_TOKEN_FILE',
      ),
    )
    .option(
      '--expose-to-network',
      'allow --listen on a non-loopback address: exposes the sign-in and 2FA settings API to that network',
    )
    .option('--client-name <name>', 'audit actor serve:<name> for requests without a Mail2fa-Client header', 'webmail')
    .addHelpText(
      'after',
      EXAMPLES([
        'mail2fa serve --socket /run/mail2fa/mail2fa.sock --socket-group www-data',
        'mail2fa serve --listen 127.0.0.1:8025 --token-file /etc/mail2fa/serve.token',
        'curl --unix-socket /run/mail2fa/mail2fa.sock -d \'{"email":"jane@example.com"}\' http://mail2fa/v1/requires-code',
        '',
        'The API: docs/serve.md. Logs: one JSON line per request on stderr (no secrets). Stops gracefully on SIGTERM.',
      ]),
    )
    .action(
      action(async (_flags: unknown, command: Command) => {
        const input = parseInput(command, serveInput);
        const { target } = input;
        const [{ ServeCore }, { ServeServer }, { listen, readTokenFile, removeSocket }] = await Promise.all([
          import('../serve/core.js'),
          import('../serve/server.js'),
          import('../serve/listen.js'),
        ]);
        const token = target.kind === 'tcp' ? readTokenFile(input.tokenFile!) : undefined;

        const config = await loadConfig({ configPath: input.config, dbUrl: input.db, env: process.env });
        const core = new ServeCore(config, { env: process.env });
        try {
          await core.shared();
        } catch (err) {
          // A database that is down is waited for (503 until it is back); a bad key or schema stops the start.
          if (!(err instanceof Mail2faError && err.exitCode === ExitCode.UNAVAILABLE)) {
            await core.close();
            throw err;
          }
          logLine({ t: new Date().toISOString(), event: 'database_unavailable', error: `${err.code}: ${err.message}` });
        }
        const server = new ServeServer({ core, clientName: input.clientName, token, log: logLine });
        try {
          await listen(server.server, target);
        } catch (err) {
          await core.close();
          throw err;
        }
        const where = target.kind === 'unix' ? { socket: target.path } : { address: `${target.host}:${target.port}` };
        logLine({ t: new Date().toISOString(), event: 'listening', ...where, pid: process.pid });
        const base = await core.shared().catch(() => undefined);
        for (const notice of base?.notices ?? [])
          logLine({ t: new Date().toISOString(), event: 'notice', message: notice });

        // Signals after the first are ignored: the stop is already under way (systemd's SIGKILL is the backstop).
        const signal = await new Promise<NodeJS.Signals>((resolve) => {
          process.on('SIGTERM', () => resolve('SIGTERM'));
          process.on('SIGINT', () => resolve('SIGINT'));
        });
        logLine({ t: new Date().toISOString(), event: 'stopping', signal });
        await server.close();
        if (target.kind === 'unix') removeSocket(target.path);
        logLine({ t: new Date().toISOString(), event: 'stopped' });
        flushLog();
        return ExitCode.OK;
      }),
    );
}
