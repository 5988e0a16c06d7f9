/**
 * CLI glue shared by `disable` and `codes regenerate`: the owner's password (masked prompt or --password-stdin)
 * and a current code (prompt or --code; for SMS accounts --send-code texts one first).
 */
import type { Command } from 'commander';
import type { Context } from '../context.js';
import { usageError } from '../errors.js';
import type { FactorSummary } from '../core/owner.js';
import { sendOwnerSmsCode } from '../core/owner.js';
import { parseCodeInput, type ParsedCode } from '../core/factor-check.js';
import type { Output } from '../ui/output.js';
import { promptInput, promptPassword, readSecretFromStdin } from '../ui/prompts.js';

export interface OwnerFlags {
  passwordStdin?: boolean;
  code?: string;
  sendCode?: boolean;
}

export function addOwnerOptions(cmd: Command): Command {
  return cmd
    .option('--password-stdin', 'read the current password from standard input instead of a masked prompt')
    .option(
      '--code <code>',
      'a current code: from the authenticator app, a text message, or a recovery code (default: prompt)',
    )
    .option('--send-code', 'SMS accounts: text a fresh code to the phone first (needs the password), then ask for it');
}

/** Parses --code strictly (65 when malformed) before anything touches the database (inputs/owner.ts checks the flags). */
export function parseOwnerCode(flags: OwnerFlags): ParsedCode | undefined {
  return flags.code === undefined ? undefined : parseCodeInput(flags.code);
}

/** The owner's password; the prompt names `account` (whose password it is) when given. */
export async function readPassword(out: Output, flags: OwnerFlags, account?: string): Promise<string> {
  return flags.passwordStdin
    ? readSecretFromStdin('--password-stdin')
    : promptPassword(out, account ? `Current password for ${account}:` : 'Current password:', '--password-stdin');
}

function codePrompt(summary: FactorSummary): string {
  if (summary.method === 'totp') return 'Code from the authenticator app (or a recovery code):';
  if (summary.method === 'sms')
    return `Code from the text message to ${summary.phone ?? 'the phone'} (or a recovery code):`;
  if (summary.foreignTotp) return `Code from the authenticator app (2FA of ${summary.foreignStores.join(', ')}):`;
  return 'Temporary access code from customer service:';
}

/**
 * The code: --code, or (after --send-code has texted one) the prompt. Without a terminal, --send-code stops after
 * sending and returns null: the caller says how to finish with --code.
 */
export async function obtainCode(
  ctx: Context,
  out: Output,
  input: {
    flags: OwnerFlags;
    parsed: ParsedCode | undefined;
    summary: FactorSummary;
    password: string;
    action: string;
  },
): Promise<ParsedCode | null> {
  if (input.parsed) return input.parsed;
  if (input.flags.sendCode) {
    if (input.summary.method !== 'sms')
      throw usageError(
        `--send-code: ${input.summary.email} does not use SMS codes`,
        input.summary.method === 'totp' ? 'Type the code from the authenticator app, or a recovery code.' : undefined,
      );
    const sent = await sendOwnerSmsCode(ctx, {
      email: input.summary.email,
      password: input.password,
      action: input.action,
    });
    out.note(
      `A code was sent to ${sent.maskedPhone}${sent.delivery.where ? ` (written to ${sent.delivery.where})` : ''}; it expires at ${sent.expiresAt}.`,
    );
    if (!out.interactive) return null;
  }
  return parseCodeInput(await promptInput(out, codePrompt(input.summary), '--code'));
}
