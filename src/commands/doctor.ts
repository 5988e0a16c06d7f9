import { Command } from 'commander';
import { doctor, doctorExitCode } from '../core/doctor.js';
import { doctorDocument, doctorText } from '../ui/doctor-render.js';
import { parseInput } from './inputs/parse.js';
import { doctorInput } from './inputs/doctor.js';
import { EXAMPLES, action, contextOptions, makeOutput } from './shared.js';

export function doctorCommand(): Command {
  return new Command('doctor')
    .description(
      'check the installation: configuration, database, schema, storage engine, account mapping, status summary, key, SMS gateway, sign-out action, stores',
    )
    .addHelpText(
      'after',
      EXAMPLES([
        'mail2fa doctor',
        'mail2fa --config /etc/mail2fa.yaml doctor --json',
        'mail2fa doctor --serve /run/mail2fa/mail2fa.sock   # a running service',
      ]) + '\nEvery check is listed, even when an earlier one failed (those that depend on it are "skip").\n',
    )
    .option(
      '--serve <socket|url>',
      'check a running `mail2fa serve` instead (its Unix socket, or http://127.0.0.1:PORT)',
    )
    .action(
      action(async (_flags: unknown, cmd: Command) => {
        const input = parseInput(cmd, doctorInput);
        const out = makeOutput(input);
        const report =
          input.serve !== undefined
            ? { checks: await (await import('../serve/client.js')).checkService(input.serve), notices: [] as string[] }
            : await doctor(contextOptions(input, { skipSchemaCheck: true }));
        for (const n of report.notices) out.note(n);
        const exitCode = doctorExitCode(report.checks);
        await (out.json ? out.document(doctorDocument(report.checks, exitCode)) : out.write(doctorText(report.checks)));
        return exitCode;
      }),
    );
}
