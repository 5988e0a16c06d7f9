/**
 * Typed errors carrying a sysexits(3) exit code and a hint. Core code throws these; only src/main.ts turns
 * them into a process exit code and an error message (human or JSON).
 */
import { ExitCode } from './exit-codes.js';

export { ExitCode, type ExitCodeValue } from './exit-codes.js';

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
