/** The command-line program: global options, the ordered list of commands, help with examples and exit codes. */
import { Command, Option } from 'commander';
import { EXIT_CODE_TABLE } from './core/errors.js';
import { VERSION } from './version.js';
import { statusCommand } from './commands/status.js';
import { migrateCommand } from './commands/migrate.js';
import { demoCommand } from './commands/demo.js';
import { doctorCommand } from './commands/doctor.js';
import { enableCommand } from './commands/enable.js';
import { disableCommand } from './commands/disable.js';
import { verifyCommand } from './commands/verify.js';
import { sendCodeCommand } from './commands/send-code.js';
import { codesCommand } from './commands/codes.js';
import { recoverCommand } from './commands/recover.js';
import { auditCommand } from './commands/audit.js';
import { keysCommand } from './commands/keys.js';
import { migrateFromCommand } from './commands/migrate-from.js';

/** Every command, in the order `--help` lists them. */
const COMMANDS: Array<() => Command> = [
  enableCommand,
  disableCommand,
  statusCommand,
  recoverCommand,
  verifyCommand,
  sendCodeCommand,
  codesCommand,
  auditCommand,
  keysCommand,
  doctorCommand,
  migrateCommand,
  migrateFromCommand,
  demoCommand,
];

export const EXIT_CODES_HELP = `\nExit codes:\n${EXIT_CODE_TABLE.map(([code, text]) => `  ${String(code).padStart(3)}  ${text}`).join('\n')}\n`;

export function buildProgram(): Command {
  const program = new Command('mail2fa')
    .description('Two-factor authentication for mail accounts, managed directly in the mail account database.')
    .version(VERSION, '-V, --version')
    .addOption(new Option('--db <url>', 'database: sqlite:PATH, mysql://USER:PASS@HOST:PORT/DB or mariadb://… (env MAIL2FA_DB_URL)'))
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
  for (const make of COMMANDS) {
    const cmd = make();
    cmd.addHelpText('after', EXIT_CODES_HELP);
    cmd.showHelpAfterError(`(run mail2fa ${cmd.name()} --help for usage)`);
    program.addCommand(cmd);
  }
  return program;
}
