/**
 * The argv contract: for every command, this command line → exactly this typed input (src/commands/inputs/), or
 * this usage error. In-process: the program is built by buildProgram with an input observer that stops each run
 * as soon as its input is parsed, so nothing is opened, read or written. A renamed flag, a changed default or a
 * rule that moved fails a row here.
 */
import { CommanderError, type Command } from 'commander';
import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { Mail2faError } from '../../src/errors.js';
import { buildProgram } from '../../src/program.js';

type Outcome = { command: string; input: unknown } | { exitCode: number; message: string };

/** Thrown by the observer: the run ends once the input is known. */
class InputSeen extends Error {
  constructor(readonly seen: { command: string; input: unknown }) {
    super('input seen');
  }
}

function quiet(cmd: Command): void {
  cmd.exitOverride();
  cmd.configureOutput({ writeErr: () => {}, writeOut: () => {} });
  for (const sub of cmd.commands) quiet(sub);
}

async function parse(args: string[]): Promise<Outcome> {
  const argv = ['node', 'mail2fa', ...args];
  const program = await buildProgram(argv, {
    observeInput: (command, input) => {
      throw new InputSeen({ command, input });
    },
  });
  quiet(program);
  try {
    await program.parseAsync(argv);
  } catch (err) {
    if (err instanceof InputSeen) return err.seen;
    if (err instanceof CommanderError) return { exitCode: 64, message: err.message.replace(/^error: /, '') };
    if (err instanceof Mail2faError) return { exitCode: err.exitCode, message: err.message };
    throw err;
  }
  throw new Error(`${args.join(' ')}: the action finished without parsing its input`);
}

/** The global options every command but `keys generate` and `serve` reads, at their defaults. */
const OUT = { json: false, color: true, verbose: false };
const EMAIL = 'jane@example.com';
const ENROLMENT = '0123456789abcdef01234567';

const ok = (command: string, input: Record<string, unknown>) => ({ command, input });
const usage = (message: string) => ({ exitCode: 64, message });

const ROWS: Array<[string[], Outcome]> = [
  // enable
  [
    ['enable', EMAIL],
    ok('enable', { email: EMAIL, passwordStdin: false, force: false, mode: 'interactive', method: 'totp', ...OUT }),
  ],
  [
    ['enable', EMAIL, '--method', 'sms', '--phone', '+4520123456', '--start', '--password-stdin', '--json'],
    ok('enable', {
      ...OUT,
      email: EMAIL,
      phone: '+4520123456',
      passwordStdin: true,
      force: false,
      json: true,
      mode: 'start',
      method: 'sms',
    }),
  ],
  [
    ['enable', EMAIL, '--phone', '011-45-20123456', '--start'],
    ok('enable', {
      ...OUT,
      email: EMAIL,
      phone: '011-45-20123456',
      passwordStdin: false,
      force: false,
      mode: 'start',
      method: 'sms',
    }),
  ],
  [
    [
      '--db',
      'sqlite:/tmp/x.sqlite',
      'enable',
      EMAIL,
      '--confirm',
      '--code',
      '123456',
      '--enrolment',
      ENROLMENT,
      '--store',
      'rc',
    ],
    ok('enable', {
      ...OUT,
      db: 'sqlite:/tmp/x.sqlite',
      email: EMAIL,
      passwordStdin: false,
      force: false,
      code: '123456',
      enrolment: ENROLMENT,
      store: 'rc',
      mode: 'confirm',
      method: 'totp',
    }),
  ],
  [
    ['enable', EMAIL, '--cancel'],
    ok('enable', { ...OUT, email: EMAIL, passwordStdin: false, force: false, mode: 'cancel', method: 'totp' }),
  ],
  [
    [
      'enable',
      EMAIL,
      '--force',
      '--current-code',
      '654321',
      '--method',
      'app',
      '--store',
      'mail2fa',
      '--actor',
      'alice',
    ],
    ok('enable', {
      ...OUT,
      actor: 'alice',
      email: EMAIL,
      passwordStdin: false,
      force: true,
      currentCode: '654321',
      store: 'mail2fa',
      mode: 'interactive',
      method: 'totp',
    }),
  ],
  [['enable', EMAIL, '--start', '--confirm'], usage('--start and --confirm exclude each other')],
  [
    ['enable', EMAIL, '--start', '--confirm', '--cancel'],
    usage('--start and --confirm and --cancel exclude each other'),
  ],
  [
    ['enable', EMAIL, '--confirm', '--method', 'sms', '--force'],
    usage('--method, --force: only when starting (the pending enrolment already knows them)'),
  ],
  [
    ['enable', EMAIL, '--cancel', '--store', 'rc'],
    usage('--store: only when starting (the pending enrolment already knows them)'),
  ],
  [['enable', EMAIL, '--start', '--code', '123456'], usage('--code goes with --confirm')],
  [['enable', EMAIL, '--start', '--enrolment', ENROLMENT], usage('--enrolment goes with --confirm or --cancel')],
  [['enable', EMAIL, '--confirm', '--enrolment', 'xyz'], { exitCode: 65, message: 'malformed enrolment id' }],
  [['enable', EMAIL, '--method', 'app', '--phone', '+4520123456'], usage('--phone is for --method sms')],
  [
    ['enable', EMAIL, '--password-stdin'],
    usage('--password-stdin goes with --start: the interactive flow reads the password and the code from the terminal'),
  ],
  [
    ['enable', EMAIL, '--method', 'fax'],
    usage("option '--method <method>' argument 'fax' is invalid. Allowed choices are app, sms."),
  ],
  [['enable'], usage("missing required argument 'email'")],

  // disable and codes regenerate: the owner's password and a code
  [['disable', EMAIL], ok('disable', { ...OUT, email: EMAIL, passwordStdin: false, sendCode: false })],
  [
    ['--actor', 'alice', 'disable', '--password-stdin', '--code', '7k3qd-m9x2a', '--', EMAIL],
    ok('disable', { ...OUT, actor: 'alice', email: EMAIL, passwordStdin: true, code: '7k3qd-m9x2a', sendCode: false }),
  ],
  [
    ['disable', EMAIL, '--send-code', '--code', '123456'],
    usage('--send-code texts a new code to be typed at the prompt; it cannot be combined with --code'),
  ],
  [
    ['codes', 'regenerate', EMAIL, '--send-code', '--no-color'],
    ok('codes regenerate', { ...OUT, color: false, email: EMAIL, passwordStdin: false, sendCode: true }),
  ],
  [
    ['codes', 'regenerate', EMAIL, '--code', '1', '--code', '123456'],
    ok('codes regenerate', { ...OUT, email: EMAIL, passwordStdin: false, code: '123456', sendCode: false }),
  ],

  // status
  [
    ['status', EMAIL, 'joe@example.com'],
    ok('status', {
      ...OUT,
      source: { kind: 'emails', emails: [EMAIL, 'joe@example.com'] },
      format: 'table',
      requireEnabled: false,
    }),
  ],
  [
    ['status', '--all', '--enabled', '--format', 'ndjson'],
    ok('status', { ...OUT, source: { kind: 'all' }, filter: 'enabled', format: 'ndjson', requireEnabled: false }),
  ],
  [
    ['status', '--domain', 'example.com', '--disabled', '--json'],
    ok('status', {
      ...OUT,
      json: true,
      source: { kind: 'domain', domain: 'example.com' },
      filter: 'disabled',
      format: 'json',
      requireEnabled: false,
    }),
  ],
  [
    ['status', '--file', '-', '--require-enabled', '--format', 'csv'],
    ok('status', { ...OUT, source: { kind: 'file', file: '-' }, format: 'csv', requireEnabled: true }),
  ],
  [
    ['--json', 'status', '--all', '--format', 'json'],
    ok('status', { ...OUT, json: true, source: { kind: 'all' }, format: 'json', requireEnabled: false }),
  ],
  [
    ['status', '--all', '--db', 'sqlite:/tmp/x.sqlite', '--verbose', '--config', 'c.yaml'],
    ok('status', {
      ...OUT,
      verbose: true,
      db: 'sqlite:/tmp/x.sqlite',
      config: 'c.yaml',
      source: { kind: 'all' },
      format: 'table',
      requireEnabled: false,
    }),
  ],
  [
    ['status', '--domain', 'a.example', '--domain', 'b.example', '--format', 'csv', '--format', 'table'],
    ok('status', { ...OUT, source: { kind: 'domain', domain: 'b.example' }, format: 'table', requireEnabled: false }),
  ],
  [
    ['status', '--', '--all'],
    ok('status', { ...OUT, source: { kind: 'emails', emails: ['--all'] }, format: 'table', requireEnabled: false }),
  ],
  [['status'], usage('say which accounts: give addresses, --all, --domain D or --file F')],
  [['status', EMAIL, '--all'], usage('give addresses, --all/--domain or --file, not several of them')],
  [['status', '--all', '--file', 'list.txt'], usage('give addresses, --all/--domain or --file, not several of them')],
  [['status', '--all', '--domain', 'example.com'], usage('--all and --domain exclude each other')],
  [['status', '--all', '--enabled', '--disabled'], usage('--enabled and --disabled exclude each other')],
  [['--json', 'status', '--all', '--format', 'csv'], usage('--json conflicts with --format csv')],
  [
    ['status', '--all', '--format', 'xml'],
    usage("option '--format <format>' argument 'xml' is invalid. Allowed choices are table, json, ndjson, csv."),
  ],

  // recover
  [
    ['recover', EMAIL, '--ticket', 'T-1001'],
    ok('recover', { ...OUT, email: EMAIL, ticket: 'T-1001', yes: false, temporaryCodeTtlMs: null }),
  ],
  [
    ['--yes', '--actor', 'alice', 'recover', EMAIL, '--ticket', 'T-1001', '--reason', 'lost phone', '--temporary-code'],
    ok('recover', {
      ...OUT,
      actor: 'alice',
      email: EMAIL,
      ticket: 'T-1001',
      reason: 'lost phone',
      yes: true,
      temporaryCodeTtlMs: 86_400_000,
    }),
  ],
  [
    ['recover', EMAIL, '--ticket', 'T-1', '--temporary-code', '--ttl', '48h', '--yes'],
    ok('recover', { ...OUT, email: EMAIL, ticket: 'T-1', yes: true, temporaryCodeTtlMs: 172_800_000 }),
  ],
  [['recover', EMAIL], usage('a ticket ID is required: recover --ticket ID')],
  [['recover', EMAIL, '--ticket', ''], usage('a ticket ID is required: recover --ticket ID')],
  [['recover', EMAIL, '--ttl', '2h'], usage('a ticket ID is required: recover --ticket ID')],
  [['recover', EMAIL, '--ticket', 'T-1', '--ttl', '2h'], usage('--ttl goes with --temporary-code')],
  [['recover', EMAIL, '--ticket', 'T-1', '--temporary-code', '--ttl', '2x'], usage('--ttl: "2x" is not a duration')],
  [
    ['recover', EMAIL, '--ticket', 'T-1', '--temporary-code', '--ttl', '4m'],
    usage('--ttl: a temporary access code must be valid between 5 minutes and 7 days'),
  ],

  // verify, send-code
  [['verify', EMAIL], ok('verify', { ...OUT, email: EMAIL })],
  [['verify', '--code', '123456', EMAIL, '--json'], ok('verify', { ...OUT, json: true, email: EMAIL, code: '123456' })],
  [
    ['send-code', EMAIL, '--config', '/etc/mail2fa.yaml'],
    ok('send-code', { ...OUT, config: '/etc/mail2fa.yaml', email: EMAIL }),
  ],
  [['send-code'], usage("missing required argument 'email'")],

  // audit
  [['audit'], ok('audit', { ...OUT, format: 'table', order: 'newest-first' })],
  [
    [
      'audit',
      '--account',
      EMAIL,
      '--since',
      '7d',
      '--until',
      '2026-11-01',
      '--action',
      'recover',
      '--actor',
      'alice',
      '--ticket',
      'T-1001',
      '--outcome',
      'refused',
      '--limit',
      '50',
      '--oldest-first',
      '--format',
      'csv',
    ],
    ok('audit', {
      ...OUT,
      account: EMAIL,
      since: '7d',
      until: '2026-11-01',
      action: 'recover',
      actor: 'alice',
      ticket: 'T-1001',
      outcome: 'refused',
      format: 'csv',
      limit: 50,
      order: 'oldest-first',
    }),
  ],
  [['--actor', 'bob', 'audit'], ok('audit', { ...OUT, actor: 'bob', format: 'table', order: 'newest-first' })],
  [['--json', 'audit', '--format', 'json'], ok('audit', { ...OUT, json: true, format: 'json', order: 'newest-first' })],
  [['audit', '--limit', '0'], usage('--limit: must be a positive whole number')],
  [['audit', '--limit', '1e3'], usage('--limit: must be a positive whole number')],
  [['--json', 'audit', '--format', 'ndjson'], usage('--json conflicts with --format ndjson')],
  [
    ['audit', '--outcome', 'maybe'],
    usage("option '--outcome <outcome>' argument 'maybe' is invalid. Allowed choices are ok, refused, failed."),
  ],

  // keys
  [['keys', 'check'], ok('keys check', { ...OUT })],
  [['keys', 'check', '--json'], ok('keys check', { ...OUT, json: true })],
  [['keys', 'rotate'], ok('keys rotate', { ...OUT })],
  [
    ['--config', 'c.yaml', 'keys', 'rotate', '--new-key-file', '/etc/k.new'],
    ok('keys rotate', { ...OUT, config: 'c.yaml', newKeyFile: '/etc/k.new' }),
  ],
  // generate opens no database: --db is not part of its input
  [
    ['--db', 'sqlite:/tmp/x.sqlite', 'keys', 'generate', '/etc/k.new', '--json'],
    ok('keys generate', { ...OUT, json: true, file: '/etc/k.new' }),
  ],
  [['keys', 'generate'], usage("missing required argument 'file'")],

  // doctor, migrate, demo
  [['doctor'], ok('doctor', { ...OUT })],
  [
    ['doctor', '--serve', '/run/mail2fa/mail2fa.sock', '--json'],
    ok('doctor', { ...OUT, json: true, serve: '/run/mail2fa/mail2fa.sock' }),
  ],
  [['migrate'], ok('migrate', { ...OUT, withMailboxTable: false, refreshSummary: false })],
  [
    ['--db', 'mysql://u:p@127.0.0.1/mail', 'migrate', '--with-mailbox-table'],
    ok('migrate', { ...OUT, db: 'mysql://u:p@127.0.0.1/mail', withMailboxTable: true, refreshSummary: false }),
  ],
  [
    ['migrate', '--refresh-summary', '--json'],
    ok('migrate', { ...OUT, json: true, withMailboxTable: false, refreshSummary: true }),
  ],
  [
    ['migrate', '--refresh-summary', '--with-mailbox-table'],
    usage('--refresh-summary cannot be combined with --with-mailbox-table'),
  ],
  [['demo'], ok('demo', { ...OUT, reset: false })],
  [
    ['demo', '--reset', '--db', 'sqlite:/tmp/try.sqlite'],
    ok('demo', { ...OUT, db: 'sqlite:/tmp/try.sqlite', reset: true }),
  ],

  // migrate-from
  [
    ['migrate-from', 'postfixadmin'],
    ok('migrate-from', { ...OUT, source: 'postfixadmin', dryRun: false, clear: false, skipInvalid: false, yes: false }),
  ],
  [
    ['migrate-from', 'postfixadmin', '--clear-plaintext', '--yes', '--json'],
    ok('migrate-from', {
      ...OUT,
      json: true,
      source: 'postfixadmin',
      dryRun: false,
      clear: true,
      skipInvalid: false,
      yes: true,
    }),
  ],
  [
    ['migrate-from', 'roundcube', '--store', 'rc', '--clear-source', '--dry-run', '--skip-invalid'],
    ok('migrate-from', {
      ...OUT,
      source: 'roundcube',
      store: 'rc',
      dryRun: true,
      clear: true,
      skipInvalid: true,
      yes: false,
    }),
  ],
  [['migrate-from', 'horde'], usage('unknown source "horde": postfixadmin or roundcube')],
  [['migrate-from', 'postfixadmin', '--store', 'pfa'], usage('--store applies to migrate-from roundcube only')],
  [['migrate-from'], usage("missing required argument 'source'")],

  // serve
  [
    ['serve'],
    ok('serve', { target: { kind: 'unix', path: '/run/mail2fa/mail2fa.sock', mode: 0o660 }, clientName: 'webmail' }),
  ],
  [
    [
      '--config',
      'c.yaml',
      'serve',
      '--socket',
      '/tmp/m.sock',
      '--socket-mode',
      '0600',
      '--socket-owner',
      'mail',
      '--socket-group',
      'www-data',
      '--client-name',
      'roundcube',
      '--json',
    ],
    ok('serve', {
      config: 'c.yaml',
      target: { kind: 'unix', path: '/tmp/m.sock', mode: 0o600, owner: 'mail', group: 'www-data' },
      clientName: 'roundcube',
    }),
  ],
  [
    ['serve', '--listen', 'localhost:8025', '--token-file', '/etc/mail2fa/serve.token'],
    ok('serve', {
      target: { kind: 'tcp', host: '127.0.0.1', port: 8025 },
      tokenFile: '/etc/mail2fa/serve.token',
      clientName: 'webmail',
    }),
  ],
  [
    ['serve', '--listen', '10.0.0.5:8025', '--token-file', '/t', '--expose-to-network'],
    ok('serve', { target: { kind: 'tcp', host: '10.0.0.5', port: 8025 }, tokenFile: '/t', clientName: 'webmail' }),
  ],
  [['serve', '--socket-mode', '999'], usage('--socket-mode 999: expected octal permissions such as 660')],
  [['serve', '--client-name', 'a b'], usage('--client-name: 1-32 letters, digits, ".", "_" or "-"')],
  [
    ['serve', '--socket', '/tmp/m.sock', '--listen', '127.0.0.1:8025'],
    usage('give either --socket or --listen, not both'),
  ],
  [
    ['serve', '--listen', '127.0.0.1:8025'],
    usage('--listen needs --token-file (or MAIL2FA_SERVE_TOKEN_FILE): TCP clients authenticate with a bearer token'),
  ],
  [['serve', '--listen', 'nowhere'], usage('--listen nowhere: expected HOST:PORT, e.g. 127.0.0.1:8025')],
  [
    ['serve', '--listen', '10.0.0.5:8025', '--token-file', '/t'],
    usage(
      "--listen 10.0.0.5:8025 is not a loopback address: it would expose mail2fa's sign-in and 2FA settings API to the network",
    ),
  ],
];

describe('argv → command input', () => {
  beforeEach(() => {
    // serve reads these as defaults for --socket and --token-file
    vi.stubEnv('MAIL2FA_SERVE_SOCKET', undefined);
    vi.stubEnv('MAIL2FA_SERVE_TOKEN_FILE', undefined);
  });
  afterEach(() => {
    vi.unstubAllEnvs();
  });

  it.each(ROWS)('%j', async (args, expected) => {
    expect(await parse(args)).toStrictEqual(expected);
  });

  it('every command has a row, and a row with its defaults', async () => {
    const program = await buildProgram(['node', 'mail2fa']);
    const paths = program.commands.flatMap((c) =>
      c.commands.length ? c.commands.map((s) => `${c.name()} ${s.name()}`) : [c.name()],
    );
    const covered = new Set(ROWS.map(([, outcome]) => ('command' in outcome ? outcome.command : undefined)));
    expect(paths.filter((p) => !covered.has(p))).toEqual([]);
  });

  it("serve's socket and token file come from the environment when the flags are absent", async () => {
    vi.stubEnv('MAIL2FA_SERVE_TOKEN_FILE', '/etc/mail2fa/serve.token');
    expect(await parse(['serve', '--listen', '127.0.0.1:8025'])).toStrictEqual(
      ok('serve', {
        target: { kind: 'tcp', host: '127.0.0.1', port: 8025 },
        tokenFile: '/etc/mail2fa/serve.token',
        clientName: 'webmail',
      }),
    );
    vi.stubEnv('MAIL2FA_SERVE_SOCKET', '/tmp/env.sock');
    expect(await parse(['serve'])).toStrictEqual(
      ok('serve', {
        target: { kind: 'unix', path: '/tmp/env.sock', mode: 0o660 },
        tokenFile: '/etc/mail2fa/serve.token',
        clientName: 'webmail',
      }),
    );
  });
});
