/** `serve`: where to listen (Unix socket or loopback TCP with a token file) and how requests are audited. */
import * as z from 'zod/mini';
import { usageError } from '../../errors.js';
import { parseListen, type TcpTarget, type UnixTarget } from '../../serve/listen.js';
import { CONTEXT_GLOBALS, flag, resolve, rule, text } from './parse.js';

export const DEFAULT_SOCKET = '/run/mail2fa/mail2fa.sock';

const flags = z.object({
  socket: text(),
  // --socket-mode and --client-name have commander's defaults (shown by --help).
  socketMode: z.string(),
  socketOwner: text(),
  socketGroup: text(),
  listen: text(),
  tokenFile: text(),
  exposeToNetwork: flag(),
  clientName: z.string(),
  // serve logs JSON lines whatever the flags: of the global options only the configuration ones apply.
  db: CONTEXT_GLOBALS.db,
  config: CONTEXT_GLOBALS.config,
});
type Flags = z.output<typeof flags>;

export const serveInput = z.pipe(
  flags.check(
    rule((f) =>
      /^[0-7]{3,4}$/.test(f.socketMode)
        ? undefined
        : usageError(`--socket-mode ${f.socketMode}: expected octal permissions such as 660`),
    ),
    rule((f) =>
      /^[A-Za-z0-9._-]{1,32}$/.test(f.clientName)
        ? undefined
        : usageError('--client-name: 1-32 letters, digits, ".", "_" or "-"'),
    ),
    rule((f) =>
      f.listen !== undefined && f.socket !== undefined
        ? usageError('give either --socket or --listen, not both')
        : undefined,
    ),
  ),
  resolve(({ socket, socketMode, socketOwner, socketGroup, listen, tokenFile, exposeToNetwork, ...rest }: Flags) => {
    const target: UnixTarget | TcpTarget =
      listen !== undefined
        ? parseListen(listen, exposeToNetwork)
        : {
            kind: 'unix',
            path: socket ?? DEFAULT_SOCKET,
            mode: parseInt(socketMode, 8),
            ...(socketOwner === undefined ? {} : { owner: socketOwner }),
            ...(socketGroup === undefined ? {} : { group: socketGroup }),
          };
    if (target.kind === 'tcp' && !tokenFile)
      throw usageError(
        '--listen needs --token-file (or MAIL2FA_SERVE_TOKEN_FILE): TCP clients authenticate with a bearer token',
      );
    return { ...rest, target, ...(tokenFile === undefined ? {} : { tokenFile }) };
  }),
);
export type ServeInput = z.output<typeof serveInput>;
