/** The command-line program: global options, the ordered list of commands, help with examples and exit codes. */
import { Command, Option } from 'commander';
import { EXIT_CODE_TABLE } from './errors.js';
import { VERSION } from './version.js';

/**
 * Every command, in the order `--help` lists them. Command modules are imported on demand: each pulls in its
 * own core and libraries (otplib, prompts, password hashing…), which a run of another command must not pay for.
 */
const COMMANDS: ReadonlyArray<readonly [name: string, load: () => Promise<() => Command>]> = [
  ['enable', async () => (await import('./commands/enable.js')).enableCommand],
  ['disable', async () => (await import('./commands/disable.js')).disableCommand],
  ['status', async () => (await import('./commands/status.js')).statusCommand],
  ['recover', async () => (await import('./commands/recover.js')).recoverCommand],
  ['verify', async () => (await import('./commands/verify.js')).verifyCommand],
  ['send-code', async () => (await import('./commands/send-code.js')).sendCodeCommand],
  ['codes', async () => (await import('./commands/codes.js')).codesCommand],
  ['audit', async () => (await import('./commands/audit.js')).auditCommand],
  ['keys', async () => (await import('./commands/keys.js')).keysCommand],
  ['doctor', async () => (await import('./commands/doctor.js')).doctorCommand],
  ['migrate', async () => (await import('./commands/migrate.js')).migrateCommand],
  ['migrate-from', async () => (await import('./commands/migrate-from.js')).migrateFromCommand],
  ['demo', async () => (await import('./commands/demo.js')).demoCommand],
  ['serve', async () => (await import('./commands/serve.js')).serveCommand],
];

/** Receives a command's typed input (commands/inputs/) as soon as it is parsed, before the command acts on it. */
export type InputObserver = (command: string, input: unknown) => void;

/** The program's root command; it carries the observer of one program's inputs (the argv contract test uses it). */
export class Mail2faProgram extends Command {
  constructor(readonly observeInput?: InputObserver) {
    super('mail2fa');
  }
}

export const EXIT_CODES_HELP = `\nExit codes:\n${EXIT_CODE_TABLE.map(([code, text]) => `  ${String(code).padStart(3)}  ${text}`).join('\n')}\n`;

/**
 * The program for `argv` (process.argv form). When argv names a command, only that command's module is loaded;
 * otherwise (no command, `help`, a typo) every one is, so that help lists them all and commander can suggest.
 */
export async function buildProgram(
  argv: readonly string[] = [],
  options: { observeInput?: InputObserver } = {},
): Promise<Command> {
  const program = new Mail2faProgram(options.observeInput)
    .description('Two-factor authentication for mail accounts, managed directly in the mail account database.')
    .version(VERSION, '-V, --version')
    .addOption(
      new Option(
        '--db <url>',
        'database: sqlite:PATH, mysql://USER:PASS@HOST:PORT/DB, mariadb://… or postgres://USER:PASS@HOST:PORT/DB (env MAIL2FA_DB_URL)',
      ),
    )
    .addOption(new Option('--config <file>', 'config file, YAML or JSON (env MAIL2FA_CONFIG)'))
    .option('--json', 'print exactly one JSON document on stdout (errors included)')
    .option('--actor <name>', 'who is acting, for the audit log (default: the OS user)')
    .option('--no-color', 'no colours (also NO_COLOR)')
    .option('--yes', 'answer yes to confirmations (required without a terminal)')
    .option('--verbose', 'more diagnostics on stderr (never secrets)')
    .showHelpAfterError('(run with --help for usage)')
    .addHelpText(
      'after',
      `\nQuick start:\n  mail2fa demo                 # embedded database with sample mailboxes\n  mail2fa status --all\n${EXIT_CODES_HELP}\nEnvironment: MAIL2FA_DB_URL, MAIL2FA_CONFIG, MAIL2FA_KEY_FILE, MAIL2FA_KEY, MAIL2FA_HOME, NO_COLOR.\n`,
    );
  const name = commandName(program, argv.slice(2));
  const wanted = COMMANDS.filter(([n]) => n === name);
  const makers = await Promise.all((wanted.length ? wanted : COMMANDS).map(([, load]) => load()));
  for (const make of makers) {
    const cmd = make();
    cmd.addHelpText('after', EXIT_CODES_HELP);
    cmd.showHelpAfterError(`(run mail2fa ${cmd.name()} --help for usage)`);
    program.addCommand(cmd);
  }
  return program;
}

/** The first operand of argv: the command name, skipping the program's own options and their values. */
function commandName(program: Command, args: readonly string[]): string | undefined {
  for (let i = 0; i < args.length; i++) {
    const arg = args[i]!;
    if (arg === '--') return undefined;
    if (!arg.startsWith('-') || arg === '-') return arg;
    if (arg.includes('=')) continue;
    const option = program.options.find((o) => o.long === arg || o.short === arg);
    if (option && (option.required || option.optional)) i++;
  }
  return undefined;
}
