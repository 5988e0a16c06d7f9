/** The command-line program: global options, the ordered list of commands, help with examples and exit codes. */
import { Command, Option } from 'commander';
import { commandExitCodes, generalExitCodes, groupExitCodes } from './exit-codes.js';
import { exitCodesHelp } from './ui/exit-codes-render.js';
import { Program, type InputObserver } from './commands/shared.js';
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

/**
 * The program for `argv` (process.argv form). When argv names a command, only that command's module is loaded;
 * otherwise (no command, `help`, a typo) every one is, so that help lists them all and commander can suggest.
 */
export async function buildProgram(
  argv: readonly string[] = [],
  options: { observeInput?: InputObserver } = {},
): Promise<Program> {
  const program = new Program('mail2fa')
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
      () =>
        `\nQuick start:\n  mail2fa demo                 # embedded database with sample mailboxes\n  mail2fa status --all\n\n${exitCodesHelp(generalExitCodes())}\n\nEnvironment: MAIL2FA_DB_URL, MAIL2FA_CONFIG, MAIL2FA_KEY_FILE, MAIL2FA_KEY, MAIL2FA_HOME, NO_COLOR.\n`,
    );
  program.observeInput = options.observeInput;
  const name = commandName(program, argv.slice(2));
  const wanted = COMMANDS.filter(([n]) => n === name);
  const makers = await Promise.all((wanted.length ? wanted : COMMANDS).map(([, load]) => load()));
  for (const make of makers) {
    const cmd = make();
    addExitCodesHelp(cmd);
    cmd.showHelpAfterError(`(run mail2fa ${cmd.name()} --help for usage)`);
    program.addCommand(cmd);
  }
  return program;
}

/** Each command's "Exit codes:" block (a group's lists its subcommands' codes), built only when help is shown. */
function addExitCodesHelp(cmd: Command, parent?: string): void {
  const path = parent ? `${parent} ${cmd.name()}` : cmd.name();
  const group = cmd.commands.length > 0;
  cmd.addHelpText('after', () => exitCodesHelp(group ? groupExitCodes(path) : commandExitCodes(path)));
  for (const sub of cmd.commands) addExitCodesHelp(sub, path);
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
