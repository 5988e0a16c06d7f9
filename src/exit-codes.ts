/**
 * Every exit code mail2fa returns: what each means in general (sysexits(3), as Postfix and doveadm use them) and,
 * per command, which codes that command can return and what each means there. Each command's `--help` and
 * docs/exit-codes.md (`npm run docs`) are generated from this file; a test fails when the page is stale or when a
 * command or a code has no row.
 */
export const ExitCode = {
  OK: 0,
  NEGATIVE: 1,
  USAGE: 64,
  DATAERR: 65,
  NOUSER: 67,
  UNAVAILABLE: 69,
  SOFTWARE: 70,
  TEMPFAIL: 75,
  NOPERM: 77,
  CONFIG: 78,
  CANCELLED: 130,
} as const;
export type ExitCodeName = keyof typeof ExitCode;
export type ExitCodeValue = (typeof ExitCode)[ExitCodeName];

/** What each code means for any command. */
export const GENERAL_MEANING: Readonly<Record<ExitCodeValue, string>> = {
  [ExitCode.OK]: 'ok',
  [ExitCode.NEGATIVE]:
    'a negative answer: `verify` rejected the code, `status --require-enabled` found accounts without 2FA',
  [ExitCode.USAGE]: 'usage error: bad flags or arguments, or a prompt needed without a terminal',
  [ExitCode.DATAERR]:
    'bad input data: a malformed address, phone number or code, or a state that refuses the action (e.g. already enabled)',
  [ExitCode.NOUSER]: 'unknown account',
  [ExitCode.UNAVAILABLE]: 'database or SMS gateway unavailable',
  [ExitCode.SOFTWARE]: 'internal error: a bug, please report it (`--verbose` adds the stack)',
  [ExitCode.TEMPFAIL]:
    'locked out (5 wrong attempts: 15 minutes), rate limited (3 SMS per 15 minutes), or busy / changed by someone else: retry later',
  [ExitCode.NOPERM]: 'wrong password or code',
  [ExitCode.CONFIG]:
    'configuration: config file, master key, schema missing or out of date, a stored secret failing its integrity check',
  [ExitCode.CANCELLED]: 'cancelled at a prompt (Ctrl-C, or "no" at a confirmation)',
};

/** A code a command can return, with what it means there; without a text, the general meaning applies. */
export type CommandExitCode = readonly [code: ExitCodeValue, meaning?: string];

/** Every command can end in these, whatever it does: a flag commander refuses, and a bug. */
const EVERY_COMMAND: readonly ExitCodeValue[] = [ExitCode.USAGE, ExitCode.SOFTWARE];

/**
 * Per command (subcommands as "keys rotate"), in help order: the codes it can return besides 64 and 70 (which every
 * command can), each with its meaning for that command where it says more than the general one.
 */
export const COMMAND_EXIT_CODES: Readonly<Record<string, readonly CommandExitCode[]>> = {
  enable: [
    [ExitCode.OK, 'enrolled, started (`--start`) or cancelled (`--cancel`)'],
    [
      ExitCode.USAGE,
      'bad flag combination; no terminal for the interactive flow (the error names the two-step form); `--start` without a terminal and without `--password-stdin`',
    ],
    [
      ExitCode.DATAERR,
      'malformed address, phone number or code; already enabled (use `--force` to replace, or `disable` first); mailbox inactive; no pending enrolment, or it expired or was superseded',
    ],
    [ExitCode.NOUSER],
    [ExitCode.UNAVAILABLE, 'database unavailable; SMS gateway down, answering an error or timing out (nothing stored)'],
    [ExitCode.TEMPFAIL, 'account locked; more than 3 SMS codes in 15 minutes; busy'],
    [ExitCode.NOPERM, 'wrong password or code (counts toward the lockout; the third wrong code cancels the enrolment)'],
    [ExitCode.CONFIG],
    [ExitCode.CANCELLED, 'cancelled at a prompt (the pending enrolment is removed)'],
  ],
  disable: [
    [ExitCode.OK, 'disabled, or 2FA was already off (nothing changed, no password asked)'],
    [
      ExitCode.USAGE,
      'bad flags, or a prompt needed without a terminal (the error names `--password-stdin` / `--code`)',
    ],
    [ExitCode.DATAERR, 'malformed address or code (checked before anything else; nothing counted)'],
    [ExitCode.NOUSER],
    [
      ExitCode.UNAVAILABLE,
      'database, SMS gateway or another store unavailable; a store not reset is named: run it again',
    ],
    [ExitCode.TEMPFAIL, 'locked, or the SMS send limit reached; busy'],
    [ExitCode.NOPERM, 'wrong password or code (each counts toward the lockout)'],
    [ExitCode.CONFIG, 'configuration, master key, an unknown password-hash scheme'],
    [ExitCode.CANCELLED],
  ],
  status: [
    [ExitCode.OK, 'the rows were printed (unknown and invalid addresses in a list are rows, not errors)'],
    [
      ExitCode.NEGATIVE,
      '`--require-enabled` and some listed account lacks 2FA (unknown and invalid entries count as lacking it); stderr names them',
    ],
    [ExitCode.USAGE, 'no selection, conflicting flags, bad `--format`, unreadable `--file`, `--file -` on a terminal'],
    [
      ExitCode.DATAERR,
      'one address alone that is malformed or matches several mailbox rows; an invalid `--domain`; a `--file` that is binary or the master key file',
    ],
    [ExitCode.NOUSER, 'one address alone that matches no mailbox (the hint names one differing only in case)'],
    [ExitCode.UNAVAILABLE, 'the database cannot be reached (within `db.connectTimeoutMs`)'],
    [
      ExitCode.CONFIG,
      "invalid config file, bad `--db`; mail2fa's tables missing or out of date (hint: run `mail2fa migrate`)",
    ],
  ],
  recover: [
    [ExitCode.OK, 'recovered, or nothing to recover (the reply says 2FA is off)'],
    [
      ExitCode.USAGE,
      'no `--ticket`; no terminal and no `--yes`; `--ttl` without `--temporary-code`, not a duration, or outside 5m-7d',
    ],
    [
      ExitCode.DATAERR,
      'malformed address; the ticket does not match `ticketPattern`, is too long or holds control characters; reason over 500 characters',
    ],
    [ExitCode.NOUSER],
    [
      ExitCode.UNAVAILABLE,
      'database unavailable (nothing changed); or a store unavailable: what was done is reported, run it again',
    ],
    [
      ExitCode.TEMPFAIL,
      'the account changed between the summary and the confirmation (look again), or busy; a store busy: run it again',
    ],
    [ExitCode.CONFIG],
    [ExitCode.CANCELLED, 'the agent answered no, typed another address, or pressed Ctrl-C'],
  ],
  verify: [
    [ExitCode.OK, 'accepted'],
    [ExitCode.NEGATIVE, 'rejected: a wrong, expired or used code; also when 2FA is off or the mailbox inactive'],
    [ExitCode.DATAERR, 'malformed code or address'],
    [ExitCode.NOUSER],
    [ExitCode.UNAVAILABLE, 'database unavailable, or it refused to mark the code used (the code is refused)'],
    [ExitCode.TEMPFAIL, 'locked out after 5 wrong codes (15 minutes)'],
    [ExitCode.CONFIG],
    [ExitCode.CANCELLED],
  ],
  'send-code': [
    [ExitCode.OK, 'code sent'],
    [ExitCode.DATAERR, 'malformed address; 2FA off or an app account (no code to send); mailbox inactive'],
    [ExitCode.NOUSER],
    [ExitCode.UNAVAILABLE, 'database unavailable; SMS gateway down or timing out (nothing stored)'],
    [ExitCode.TEMPFAIL, 'locked; more than 3 codes for the account in 15 minutes'],
    [ExitCode.CONFIG],
  ],
  'codes regenerate': [
    [ExitCode.OK, 'ten new codes printed; the old ones stop working'],
    [ExitCode.USAGE, 'bad flags, or a prompt needed without a terminal'],
    [ExitCode.DATAERR, 'malformed address or code; 2FA not enabled (no codes to replace)'],
    [ExitCode.NOUSER],
    [ExitCode.UNAVAILABLE],
    [ExitCode.TEMPFAIL, 'locked, or the SMS send limit reached; busy'],
    [ExitCode.NOPERM, 'wrong password or code (each counts toward the lockout)'],
    [ExitCode.CONFIG],
    [ExitCode.CANCELLED],
  ],
  audit: [
    [ExitCode.OK, 'the rows were printed (also when nothing matches)'],
    [ExitCode.USAGE, 'bad flag values; `--json` with another `--format`'],
    [ExitCode.DATAERR, 'malformed `--account`'],
    [ExitCode.UNAVAILABLE, 'database unavailable'],
    [ExitCode.CONFIG],
  ],
  'keys check': [
    [ExitCode.OK, 'every stored secret decrypts'],
    [ExitCode.UNAVAILABLE, 'database unavailable'],
    [ExitCode.CONFIG, 'some stored secrets do not decrypt, or the key or config is bad'],
  ],
  'keys rotate': [
    [ExitCode.OK, 'rotated'],
    [ExitCode.USAGE, 'nothing to do: the new key is the current one, or no rotation to finish'],
    [ExitCode.UNAVAILABLE, 'database unavailable'],
    [ExitCode.TEMPFAIL, 'busy, or rows still being written under the old key: run it again'],
    [
      ExitCode.CONFIG,
      'a stored value does not decrypt (nothing changed); the new key file is missing, malformed or readable by others; config',
    ],
  ],
  'keys generate': [
    [ExitCode.OK, 'created'],
    [ExitCode.CONFIG, 'the file exists already or cannot be created'],
  ],
  doctor: [
    [ExitCode.OK, 'no check failed (warnings allowed)'],
    [ExitCode.UNAVAILABLE, 'the database, SMS gateway or (with `--serve`) the service is unavailable'],
    [
      ExitCode.CONFIG,
      'any other failure: config, schema, engine, mapping, status summary out of step (hint: `mail2fa migrate --refresh-summary`), key, sign-out action',
    ],
  ],
  migrate: [
    [ExitCode.OK, 'the tables are up to date; with `--refresh-summary`: every summary recomputed (or already current)'],
    [ExitCode.USAGE, 'bad flags, such as `--refresh-summary` with `--with-mailbox-table` (nothing changed)'],
    [ExitCode.UNAVAILABLE],
    [
      ExitCode.TEMPFAIL,
      'another migrate holds the migrations lock; `--refresh-summary`: busy (the batches done so far stay done: run it again)',
    ],
    [
      ExitCode.CONFIG,
      'configuration; a database upgraded by a newer mail2fa; `--refresh-summary` on a schema missing or out of date (run `mail2fa migrate` first)',
    ],
  ],
  'migrate-from': [
    [ExitCode.OK, 'done (a dry run that would succeed, too)'],
    [ExitCode.USAGE, 'unknown source; `--clear-source` without a terminal or `--yes`'],
    [ExitCode.DATAERR, 'invalid secrets or addresses (nothing changed; see `--skip-invalid`)'],
    [ExitCode.UNAVAILABLE],
    [ExitCode.TEMPFAIL, 'a row changed meanwhile: retry'],
    [ExitCode.CONFIG, 'no TOTP column in the mapping, no such store, key or config problem'],
    [ExitCode.CANCELLED, 'confirmation declined'],
  ],
  demo: [[ExitCode.OK, 'the demo mailboxes exist'], [ExitCode.UNAVAILABLE], [ExitCode.TEMPFAIL], [ExitCode.CONFIG]],
  serve: [
    [ExitCode.OK, 'stopped on SIGTERM or SIGINT'],
    [
      ExitCode.USAGE,
      'bad `--socket-mode` or `--client-name`; `--socket` with `--listen`; `--listen` without a token file',
    ],
    [ExitCode.UNAVAILABLE, 'the socket or address is in use by another process'],
    [
      ExitCode.CONFIG,
      'configuration, key or schema at start-up (a database that is down is waited for instead); a path that is not a socket',
    ],
  ],
};

export interface ExitCodeRow {
  code: ExitCodeValue;
  meaning: string;
}

/** The rows of one command ("keys rotate"), sorted by code, 64 and 70 included. */
export function commandExitCodes(command: string): ExitCodeRow[] {
  const own = COMMAND_EXIT_CODES[command];
  if (!own) throw new Error(`no exit codes declared for command "${command}"`);
  const rows = new Map<ExitCodeValue, string>(EVERY_COMMAND.map((code) => [code, GENERAL_MEANING[code]]));
  for (const [code, meaning] of own) rows.set(code, meaning ?? GENERAL_MEANING[code]);
  return [...rows].sort(([a], [b]) => a - b).map(([code, meaning]) => ({ code, meaning }));
}

/** Every code, with its general meaning. */
export function generalExitCodes(): ExitCodeRow[] {
  return Object.values(ExitCode).map((code) => ({ code, meaning: GENERAL_MEANING[code] }));
}

/** The codes any of the subcommands of `group` ("keys") can return, with their general meaning. */
export function groupExitCodes(group: string): ExitCodeRow[] {
  const codes = new Set<ExitCodeValue>();
  for (const name of Object.keys(COMMAND_EXIT_CODES))
    if (name.startsWith(`${group} `)) for (const row of commandExitCodes(name)) codes.add(row.code);
  if (codes.size === 0) throw new Error(`no subcommands of "${group}" have exit codes declared`);
  return [...codes].sort((a, b) => a - b).map((code) => ({ code, meaning: GENERAL_MEANING[code] }));
}
