import { Command } from 'commander';
import { doctor, doctorExitCode, type Check } from '../core/doctor.js';
import { escapeControl } from '../text.js';
import { parseInput } from './inputs/parse.js';
import { doctorInput } from './inputs/doctor.js';
import { EXAMPLES, action, contextOptions, makeOutput } from './shared.js';

const MARK: Record<Check['status'], string> = { ok: 'ok  ', warn: 'warn', fail: 'FAIL', skip: 'skip' };

export function doctorCommand(): Command {
  return new Command('doctor')
    .description(
      'check the installation: configuration, database, schema, storage engine, account mapping, key, SMS gateway, sign-out action',
    )
    .addHelpText(
      'after',
      EXAMPLES([
        'mail2fa doctor',
        'mail2fa --config /etc/mail2fa.yaml doctor --json',
        'mail2fa doctor --serve /run/mail2fa/mail2fa.sock   # a running service',
      ]) +
        '\nEvery check is listed, even when an earlier one failed (those that depend on it are "skip").\n' +
        'Exit codes: 0 no failure (warnings allowed); 69 the database or SMS gateway is unavailable; 78 any other failure.\n',
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
        if (out.json) {
          await out.document({ ok: exitCode === 0, exitCode, checks: report.checks });
          return exitCode;
        }
        for (const c of report.checks) {
          const [first, ...rest] = escapeControl(c.detail).split('\\n');
          await out.line(`${MARK[c.status]}  ${c.name.padEnd(17)} ${first}`);
          for (const line of rest) await out.line(`      ${''.padEnd(17)} ${line}`);
          if (c.hint && c.status !== 'ok') await out.line(`      ${''.padEnd(17)} hint: ${escapeControl(c.hint)}`);
        }
        const failed = report.checks.filter((c) => c.status === 'fail').length;
        const warned = report.checks.filter((c) => c.status === 'warn').length;
        await out.line(
          failed
            ? `${failed} check(s) failed, ${warned} warning(s)`
            : `all checks passed${warned ? `, ${warned} warning(s)` : ''}`,
        );
        return exitCode;
      }),
    );
}
