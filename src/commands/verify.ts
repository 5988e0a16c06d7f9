import { Command } from 'commander';
import { withContext } from '../context.js';
import { canonicalAddress } from '../core/address.js';
import { ExitCode, dataError } from '../errors.js';
import { lockedError } from '../core/lockout.js';
import { CODE_FORMS_HINT } from '../core/factor-check.js';
import { verifySignInCode, type VerifyResult } from '../core/sign-in.js';
import type { Output } from '../ui/output.js';
import { parseInput } from './inputs/parse.js';
import { verifyInput } from './inputs/verify.js';
import { EXAMPLES, action, contextOptions, makeOutput } from './shared.js';

/** More than any well-formed code: longer input is malformed, and is not read to the end. */
const MAX_STDIN_BYTES = 1024;

const KIND_TEXT = {
  totp: 'code from the authenticator app',
  sms: 'SMS code',
  recovery: 'recovery code',
  temporary: 'temporary access code',
} as const;

/**
 * The code from stdin: the input minus ONE line terminator (so `echo 123456 |` works); anything else — spaces,
 * a second newline — stays and makes the code malformed (strict input: nothing is normalised).
 */
async function readCodeFromStdin(): Promise<string> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > MAX_STDIN_BYTES) {
      process.stdin.destroy();
      throw dataError(
        'bad_code',
        `malformed code (more than ${MAX_STDIN_BYTES} bytes on standard input)`,
        CODE_FORMS_HINT,
      );
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
}

async function readCode(out: Output, flag: string | undefined): Promise<string> {
  if (flag !== undefined) return flag;
  // The prompt module only for a terminal: scripted runs (the usual case) do not load it.
  if (process.stdin.isTTY) return (await import('../ui/prompts.js')).promptInput(out, 'Code:', '--code');
  return readCodeFromStdin();
}

async function render(out: Output, result: VerifyResult): Promise<number> {
  if (result.outcome === 'locked') throw lockedError(Date.parse(result.lockedUntil));
  if (out.json) {
    await out.document(
      result.outcome === 'accepted'
        ? { ok: true, accepted: true, ...omitOutcome(result) }
        : { ok: false, accepted: false, ...omitOutcome(result) },
    );
  } else if (result.outcome === 'accepted') {
    await out.line(
      `accepted: ${KIND_TEXT[result.kind]} for ${result.email}${result.kind === 'recovery' ? ` (${result.recoveryCodesLeft} recovery code${result.recoveryCodesLeft === 1 ? '' : 's'} left)` : ''}`,
    );
  } else {
    await out.line(`rejected: ${result.message}`);
  }
  return result.outcome === 'accepted' ? ExitCode.OK : ExitCode.NEGATIVE;
}

function omitOutcome<T extends { outcome: string }>(result: T): Omit<T, 'outcome'> {
  const { outcome: _outcome, ...rest } = result;
  return rest;
}

export function verifyCommand(): Command {
  return new Command('verify')
    .description(
      `check a sign-in code (app, SMS, recovery or temporary access code), each usable once: exit ${ExitCode.OK} accepted, ${ExitCode.NEGATIVE} rejected, ${ExitCode.TEMPFAIL} locked. The code is read from standard input`,
    )
    .argument('<email>', 'the mailbox address')
    .option('--code <code>', 'the code (default: standard input, one trailing newline allowed)')
    .addHelpText(
      'after',
      EXAMPLES([
        'echo 123456 | mail2fa verify jane@example.com && echo signed in',
        'printf \'%s\' "$CODE" | mail2fa verify jane@example.com --json',
        'mail2fa verify jane@example.com --code 7k3qd-m9x2a      # a recovery code',
      ]),
    )
    .action(
      action(async (email: string, _flags: unknown, command: Command) => {
        const input = parseInput(command, verifyInput, { email });
        const out = makeOutput(input);
        canonicalAddress(input.email);
        const code = await readCode(out, input.code);
        return withContext(contextOptions(input), async (ctx) => {
          try {
            return await render(out, await verifySignInCode(ctx, { email: input.email, code }));
          } finally {
            for (const n of ctx.notices) out.note(n);
          }
        });
      }),
    );
}
