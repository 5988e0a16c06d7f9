/**
 * Typed errors carrying a sysexits(3) exit code and a hint. Core code throws these; only src/main.ts turns
 * them into a process exit code and an error message (human or JSON).
 */
export const ExitCode = {
  OK: 0,
  NEGATIVE: 1, // `verify` rejected, `--require-enabled` found gaps
  USAGE: 64,
  DATAERR: 65, // malformed email, phone, code
  NOUSER: 67, // unknown account
  UNAVAILABLE: 69, // database or SMS gateway unavailable
  SOFTWARE: 70, // internal error: a bug
  TEMPFAIL: 75, // locked out, rate limited, busy
  NOPERM: 77, // wrong password or code
  CONFIG: 78, // bad config, key, schema
  CANCELLED: 130, // cancelled at a prompt
} as const;
export type ExitCodeValue = (typeof ExitCode)[keyof typeof ExitCode];

/** The table printed by `--help` and the README. Keep in sync with ExitCode. */
export const EXIT_CODE_TABLE: ReadonlyArray<[number, string]> = [
  [0, 'ok'],
  [1, 'negative answer (verify rejected, --require-enabled found accounts without 2FA)'],
  [64, 'usage error (bad flags or arguments)'],
  [65, 'bad input data (malformed email, phone number or code)'],
  [67, 'unknown account'],
  [69, 'database or SMS gateway unavailable'],
  [70, 'internal error (a bug: please report it)'],
  [75, 'locked out, rate limited or busy: retry later'],
  [77, 'wrong password or code'],
  [78, 'configuration error (config file, key, schema)'],
  [130, 'cancelled at a prompt'],
];

export class Mail2faError extends Error {
  constructor(
    /** Stable machine-readable code, e.g. "unknown_account". */
    readonly code: string,
    message: string,
    readonly exitCode: number,
    readonly hint?: string,
  ) {
    super(message);
    this.name = 'Mail2faError';
  }
}

export const usageError = (message: string, hint?: string) => new Mail2faError('usage', message, ExitCode.USAGE, hint);
export const dataError = (code: string, message: string, hint?: string) =>
  new Mail2faError(code, message, ExitCode.DATAERR, hint);
/** `didYouMean`: the one mailbox whose address differs only in case (the local part is matched exactly, by design). */
export const unknownAccount = (email: string, didYouMean?: string) =>
  new Mail2faError(
    'unknown_account',
    `unknown account: ${email}`,
    ExitCode.NOUSER,
    didYouMean
      ? `did you mean ${didYouMean}? Addresses are matched exactly, case included.`
      : 'Check the address; 2FA is per address (an alias has none of its own).',
  );
export const unavailable = (code: string, message: string, hint?: string) =>
  new Mail2faError(code, message, ExitCode.UNAVAILABLE, hint);
export const tempFail = (code: string, message: string, hint?: string) =>
  new Mail2faError(code, message, ExitCode.TEMPFAIL, hint);
export const noPerm = (code: string, message: string, hint?: string) =>
  new Mail2faError(code, message, ExitCode.NOPERM, hint);
export const configError = (code: string, message: string, hint?: string) =>
  new Mail2faError(code, message, ExitCode.CONFIG, hint);
export const cancelled = () => new Mail2faError('cancelled', 'cancelled', ExitCode.CANCELLED);
export const internalError = (message: string) =>
  new Mail2faError('internal', `internal error (a bug, please report it): ${message}`, ExitCode.SOFTWARE);
