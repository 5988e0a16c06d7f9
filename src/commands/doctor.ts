import { Command } from 'commander';
import { withContext } from '../context.js';
import { ExitCode } from '../core/errors.js';
import { runDoctor, type Check } from '../core/doctor.js';
import { EXAMPLES, action, contextOptions, globalOptions, makeOutput } from './shared.js';

const MARK: Record<Check['status'], string> = { ok: 'ok  ', warn: 'warn', fail: 'FAIL', skip: 'skip' };

export function doctorCommand(): Command {
  return new Command('doctor')
    .description('check the installation: configuration, database, schema, account mapping, key, SMS gateway, sign-out action')
    .addHelpText('after', EXAMPLES(['mail2fa doctor', 'mail2fa --config /etc/mail2fa.yaml doctor --json']))
    .action(
      action(async (_flags: unknown, cmd: Command) => {
        const g = globalOptions(cmd);
        const out = makeOutput(g);
        return withContext(contextOptions(g, { skipSchemaCheck: true }), async (ctx) => {
          const report = await runDoctor(ctx);
          const exitCode = report.checks.some((c) => c.status === 'fail') ? (report.checks.some((c) => c.status === 'fail' && c.exitCode === ExitCode.UNAVAILABLE) ? ExitCode.UNAVAILABLE : ExitCode.CONFIG) : ExitCode.OK;
          if (out.json) await out.document({ ok: exitCode === 0, checks: report.checks });
          else {
            for (const c of report.checks) {
              await out.line(`${MARK[c.status]}  ${c.name.padEnd(16)} ${c.detail}`);
              if (c.hint && c.status !== 'ok') await out.line(`      ${''.padEnd(16)} hint: ${c.hint}`);
            }
            const failed = report.checks.filter((c) => c.status === 'fail').length;
            const warned = report.checks.filter((c) => c.status === 'warn').length;
            await out.line(failed ? `${failed} check(s) failed, ${warned} warning(s)` : `all checks passed${warned ? `, ${warned} warning(s)` : ''}`);
          }
          return exitCode;
        });
      }),
    );
}
