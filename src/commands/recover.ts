import { Command } from 'commander';
import { withContext } from '../context.js';
import { ExitCode, Mail2faError, usageError } from '../errors.js';
import {
  checkTemporaryCodeTtl,
  recoverAccount,
  requireTicket,
  TEMPORARY_CODE_DEFAULT_TTL_MS,
} from '../core/recover.js';
import { parseDuration } from '../core/time.js';
import { promptConfirm, promptInput, requireTerminal } from '../ui/prompts.js';
import { nothingText, recoverDocument, recoveredText, summaryText } from '../ui/recover-render.js';
import { EXAMPLES, action, contextOptions, globalOptions, makeOutput } from './shared.js';

interface RecoverFlags {
  ticket?: string;
  reason?: string;
  temporaryCode?: boolean;
  ttl?: string;
}

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
      action(async (email: string, flags: RecoverFlags, cmd: Command) => {
        const g = globalOptions(cmd);
        const out = makeOutput(g);
        // Usage first, before any configuration or database is touched.
        requireTicket(flags.ticket);
        if (flags.ttl !== undefined && !flags.temporaryCode)
          throw usageError('--ttl goes with --temporary-code', 'Add --temporary-code, or leave out --ttl.');
        const ttl = flags.temporaryCode
          ? checkTemporaryCodeTtl(
              flags.ttl === undefined ? TEMPORARY_CODE_DEFAULT_TTL_MS : parseDuration(flags.ttl, '--ttl'),
            )
          : null;
        if (!g.yes) requireTerminal(out, 'confirming a recovery', "--yes (after verifying the caller's identity)");

        return withContext(contextOptions(g), async (ctx) => {
          const result = await recoverAccount(
            ctx,
            { email, ticket: flags.ticket, reason: flags.reason, temporaryCodeTtlMs: ttl },
            async (summary, plan) => {
              if (!out.json)
                await out.write(
                  `${summaryText(summary, { ticket: flags.ticket!, reason: flags.reason ?? null, actor: ctx.actor, temporaryCodeTtlMs: plan.temporaryCodeTtlMs }, out.width)}\n`,
                );
              if (g.yes) return;
              const verified = await promptConfirm(
                out,
                `Did you verify the caller's identity for ticket ${flags.ticket}?`,
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
