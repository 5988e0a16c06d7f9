/**
 * Interactive prompts (inquirer), only on a terminal. Without one, the error names the flag to use instead.
 * Ctrl-C at a prompt surfaces as inquirer's ExitPromptError, which main.ts maps to exit 130.
 */
import { usageError } from '../errors.js';
import type { Output } from './output.js';

export function requireTerminal(out: Output, what: string, flag: string): void {
  if (!out.interactive) {
    throw usageError(
      `${what} needs an interactive terminal${out.json ? ' (prompts are off with --json)' : ''}`,
      `Use ${flag} instead.`,
    );
  }
}

export async function promptPassword(out: Output, message: string, flag: string): Promise<string> {
  requireTerminal(out, 'asking for the password', flag);
  const { password } = await import('@inquirer/prompts');
  return password({ message, mask: '*' }, { output: out.stderr as NodeJS.WritableStream });
}

export async function promptInput(
  out: Output,
  message: string,
  flag: string,
  validate?: (value: string) => true | string,
): Promise<string> {
  requireTerminal(out, `asking for ${message.replace(/:$/, '').toLowerCase()}`, flag);
  const { input } = await import('@inquirer/prompts');
  return input({ message, ...(validate ? { validate } : {}) }, { output: out.stderr as NodeJS.WritableStream });
}

export async function promptConfirm(out: Output, message: string, flag: string): Promise<boolean> {
  requireTerminal(out, 'asking for confirmation', flag);
  const { confirm } = await import('@inquirer/prompts');
  return confirm({ message, default: false }, { output: out.stderr as NodeJS.WritableStream });
}

/** Reads a secret (password) from stdin, for --password-stdin: the whole input, minus one trailing newline. */
export async function readSecretFromStdin(flag: string): Promise<string> {
  if (process.stdin.isTTY)
    throw usageError(
      `${flag} reads from standard input, but it is a terminal`,
      `Pipe it in: printf '%s' "$PASSWORD" | mail2fa … ${flag}`,
    );
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of process.stdin as AsyncIterable<Buffer>) {
    size += chunk.length;
    if (size > 64 * 1024) throw usageError(`${flag}: input is larger than 64 KiB`);
    chunks.push(chunk);
  }
  return Buffer.concat(chunks)
    .toString('utf8')
    .replace(/\r?\n$/, '');
}
