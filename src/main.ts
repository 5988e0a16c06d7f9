/**
 * argv → program → exit code. The only place that maps errors to exit codes and prints them; it sets
 * process.exitCode rather than calling process.exit, so output is never cut off.
 */
import { CommanderError, type Command } from 'commander';
import { ExitCode, Mail2faError } from './errors.js';
import { escapeControl } from './text.js';
import { buildProgram } from './program.js';
import { colourAllowed, palette } from './ui/colour.js';

function wantsJson(argv: string[]): boolean {
  const dd = argv.indexOf('--');
  return (dd < 0 ? argv : argv.slice(0, dd)).includes('--json');
}

export function errorDocument(err: Mail2faError): unknown {
  return { ok: false, error: { code: err.code, message: err.message, ...(err.hint ? { hint: err.hint } : {}) } };
}

export async function run(argv: string[]): Promise<void> {
  // `mail2fa verify … | true`: the reader went away. Swallow the write error and let the command finish: the exit
  // code must say what happened (refused, failed, committed), never whether someone still reads stdout. Output
  // drops what it would have written once the stream is gone (see ui/output.ts).
  process.stdout.on('error', () => {});
  const json = wantsJson(argv);
  const program = await buildProgram(argv);
  const configure = (cmd: Command) => {
    cmd.exitOverride();
    cmd.configureOutput({
      writeErr: (s) => {
        // --json: the usage error becomes the JSON document written below, and stderr stays empty.
        if (json) return;
        // commander quotes the offending argument: escape it, line by line, so it cannot act on the terminal.
        process.stderr.write(
          s
            .split('\n')
            .map(escapeControl)
            .join('\n')
            .replace(/^error: /, 'mail2fa: error: '),
        );
      },
    });
    for (const sub of cmd.commands) configure(sub);
  };
  configure(program);
  try {
    await program.parseAsync(argv);
    process.exitCode = program.actionExitCode;
  } catch (raw) {
    if (raw instanceof CommanderError) {
      if (raw.code === 'commander.helpDisplayed' || raw.code === 'commander.version' || raw.code === 'commander.help') {
        process.exitCode = 0;
        return;
      }
      const message = raw.message.replace(/^error: /, '');
      if (json)
        process.stdout.write(`${JSON.stringify(errorDocument(new Mail2faError('usage', message, ExitCode.USAGE)))}\n`);
      process.exitCode = ExitCode.USAGE;
      return;
    }
    const err = toMail2faError(raw, argv.includes('--verbose'));
    if (json) process.stdout.write(`${JSON.stringify(errorDocument(err))}\n`);
    else {
      // Read from argv: the error may come before commander has parsed --no-color.
      const { red } = await palette(colourAllowed(process.stderr, { flag: !argv.includes('--no-color') }));
      // Each line of the message is escaped on its own: the message's own line breaks stay, while a "\n" that
      // came escaped from user input stays two characters and cannot forge a line.
      process.stderr.write(`${red('mail2fa: error:')} ${err.message.split('\n').map(escapeControl).join('\n')}\n`);
      if (err.hint) process.stderr.write(`hint: ${escapeControl(err.hint)}\n`);
      if (err.exitCode === ExitCode.SOFTWARE && argv.includes('--verbose') && raw instanceof Error && raw.stack) {
        process.stderr.write(`${raw.stack}\n`);
      }
    }
    process.exitCode = err.exitCode;
  }
}

/**
 * Any thrown value as the typed error main prints. An unexpected one is an internal error (70); its hint points at
 * --verbose, unless the run has it already (the stack trace follows the message then).
 */
export function toMail2faError(raw: unknown, verbose = false): Mail2faError {
  if (raw instanceof Mail2faError) return raw;
  if (
    (raw as { name?: string })?.name === 'ExitPromptError' ||
    (raw as { name?: string })?.name === 'AbortPromptError'
  ) {
    return new Mail2faError('cancelled', 'cancelled at the prompt; nothing was changed', ExitCode.CANCELLED);
  }
  const message = raw instanceof Error ? raw.message.split('\n')[0]! : String(raw);
  return new Mail2faError(
    'internal',
    `internal error (a bug, please report it): ${message}`,
    ExitCode.SOFTWARE,
    verbose ? undefined : 'Run again with --verbose for details.',
  );
}
