/** How main turns a thrown value into the error it prints: typed errors as they are, anything else as a bug (70). */
import { describe, expect, it } from 'vitest';
import { ExitCode, Mail2faError } from '../../src/errors.js';
import { toMail2faError } from '../../src/main.js';

describe('toMail2faError', () => {
  it('keeps a typed error as it is', () => {
    const typed = new Mail2faError('bad_code', 'not a code', ExitCode.DATAERR, 'Give six digits.');
    expect(toMail2faError(typed)).toBe(typed);
    expect(toMail2faError(typed, true)).toBe(typed);
  });

  it('an unexpected error is internal (70), its first line only, with the --verbose hint', () => {
    const err = toMail2faError(new TypeError('x is undefined\n    at somewhere'));
    expect(err).toMatchObject({ code: 'internal', exitCode: ExitCode.SOFTWARE });
    expect(err.message).toBe('internal error (a bug, please report it): x is undefined');
    expect(err.hint).toBe('Run again with --verbose for details.');
  });

  it('with --verbose given, no hint to give it (the stack trace is printed instead)', () => {
    const err = toMail2faError(new Error('boom'), true);
    expect(err.exitCode).toBe(ExitCode.SOFTWARE);
    expect(err.hint).toBeUndefined();
  });

  it('a prompt closed by the user is a cancellation (130), not a bug', () => {
    const closed = Object.assign(new Error('User force closed the prompt'), { name: 'ExitPromptError' });
    expect(toMail2faError(closed)).toMatchObject({ code: 'cancelled', exitCode: ExitCode.CANCELLED });
  });
});
