import { Command } from 'commander';
import { withContext } from '../context.js';
import { ExitCode, Mail2faError } from '../errors.js';
import { recoverAccount } from '../core/recover.js';
import { promptConfirm, promptInput, requireTerminal } from '../ui/prompts.js';
import { nothingText, recoverDocument, recoveredText, summaryText } from '../ui/recover-render.js';
import { parseInput } from './inputs/parse.js';
import { recoverInput } from './inputs/recover.js';
import { EXAMPLES, action, contextOptions, makeOutput } from './shared.js';

export function recoverCommand(): Command {
  return new Command('recover')
    .description(
      'customer service: reset the 2FA of someone who lost their phone (shows the account, asks to confirm, prints a reply for the customer)',
    )
    .argument('<email>', 'the account to recover')
    .option('--ticket <id>', 'customer-service ticket ID (required; must match the configured ticketPattern)')
    .option('--reason <text>', 'why, for the audit log (e.g. "lost phone, identity checked by call-back")')
    .option(
      '--temporary-code',
      'keep 2FA required and issue a single-use temporary access code, so the user can sign in once and set up the new phone',
    )
    .option('--ttl <duration>', 'how long the temporary access code is valid: 5m to 7d (default 24h)')
    .addHelpText(
      'after',
      EXAMPLES([
        'mail2fa recover jane@example.com --ticket T-1001 --reason "lost phone, identity checked by call-back"',
        'mail2fa recover jane@example.com --ticket T-1001 --temporary-code --ttl 48h',
        'mail2fa --actor alice --yes --json recover jane@example.com --ticket T-1001   # scripted: no prompts',
        'mail2fa audit --ticket T-1001                                               # what happened on that ticket',
      ]) + "\nWithout --yes it asks you to confirm that the caller's identity was verified and to type the address.\n",
    )
    .action(
      action(async (email: string, _flags: unknown, cmd: Command) => {
        // Usage first, before any configuration or database is touched.
        const input = parseInput(cmd, recoverInput, { email });
        const { ticket, reason } = input;
        const out = makeOutput(input);
        if (!input.yes) requireTerminal(out, 'confirming a recovery', "--yes (after verifying the caller's identity)");

        return withContext(contextOptions(input), async (ctx) => {
          const result = await recoverAccount(
            ctx,
            { email: input.email, ticket, reason, temporaryCodeTtlMs: input.temporaryCodeTtlMs },
            async (summary, plan) => {
              if (!out.json)
                await out.write(
                  `${summaryText(summary, { ticket, reason: reason ?? null, actor: ctx.actor, temporaryCodeTtlMs: plan.temporaryCodeTtlMs }, out.width)}\n`,
                );
              if (input.yes) return;
              const verified = await promptConfirm(
                out,
                `Did you verify the caller's identity for ticket ${ticket}?`,
                '--yes',
              );
              if (!verified)
                throw new Mail2faError(
                  'cancelled',
                  "cancelled: the caller's identity was not confirmed; nothing was changed",
                  ExitCode.CANCELLED,
                  'Verify the identity first (as your procedure says), then run recover again.',
                );
              const typed = await promptInput(out, `Type the address (${summary.email}) to confirm:`, '--yes');
              if (typed !== summary.email)
                throw new Mail2faError(
                  'cancelled',
                  'cancelled: the address typed does not match; nothing was changed',
                  ExitCode.CANCELLED,
                  `Type it exactly as shown: ${summary.email}`,
                );
            },
          );
          for (const n of ctx.notices) out.note(n);
          if (out.json) await out.document(recoverDocument(result));
          else
            await out.write(
              result.outcome === 'recovered' ? recoveredText(result, out.width) : nothingText(result, out.width),
            );
          // Partial: what was done is reported above; the exit code says it must be run again (69 or 75).
          return result.outcome === 'recovered' && !result.complete ? result.exitCode : ExitCode.OK;
        });
      }),
    );
}
