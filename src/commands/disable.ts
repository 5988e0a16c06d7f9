import { Command } from 'commander';
import { withContext } from '../context.js';
import { canonicalAddress } from '../core/address.js';
import { disableTwoFactor } from '../core/disable.js';
import { ExitCode } from '../errors.js';
import { factorSummary, summaryRequiresCode } from '../core/owner.js';
import { EXAMPLES, action, contextOptions, makeOutput } from './shared.js';
import { ownerInput } from './inputs/owner.js';
import { parseInput } from './inputs/parse.js';
import { addOwnerOptions, obtainCode, parseOwnerCode, readPassword } from './owner-input.js';

const ALREADY_OFF = (email: string) => `Two-factor authentication is already off for ${email}; nothing changed.`;

export function disableCommand(): Command {
  const cmd = new Command('disable')
    .description(
      'turn two-factor authentication off: the current password plus a current code (app, text message or recovery code); removes the factor, recovery codes and pending codes, and signs the user out',
    )
    .argument('<email>', 'the mailbox address');
  return addOwnerOptions(cmd)
    .addHelpText(
      'after',
      EXAMPLES([
        'mail2fa disable jane@example.com                      # prompts for the password and a code',
        'mail2fa disable jane@example.com --send-code          # SMS accounts: text a code, then prompt for it',
        'printf \'%s\' "$PW" | mail2fa disable jane@example.com --password-stdin --code 123456',
        'printf \'%s\' "$PW" | mail2fa disable jane@example.com --password-stdin --code 7k3qd-m9x2a   # a recovery code',
      ]),
    )
    .action(
      action(async (email: string, _flags: unknown, command: Command) => {
        const input = parseInput(command, ownerInput, { email });
        const out = makeOutput(input);
        canonicalAddress(input.email); // 65 before anything else is read
        const parsed = parseOwnerCode(input);
        return withContext(contextOptions(input), async (ctx) => {
          try {
            const summary = await factorSummary(ctx, input.email);
            if (!summaryRequiresCode(summary) && summary.foreignStores.length === 0) {
              if (out.json) await out.document({ ok: true, email: summary.email, changed: false });
              else await out.line(ALREADY_OFF(summary.email));
              return;
            }
            const password = await readPassword(out, input, summary.email);
            const code = await obtainCode(ctx, out, { flags: input, parsed, summary, password, action: 'disable' });
            if (!code) {
              if (out.json) await out.document({ ok: true, email: summary.email, changed: false, codeSent: true });
              else
                await out.line(`Code sent. Finish with: mail2fa disable ${summary.email} --password-stdin --code CODE`);
              return;
            }
            const result = await disableTwoFactor(ctx, { email: summary.email, password, code });
            const incomplete = result.changed && !result.complete ? result : null;
            const failed = incomplete ? incomplete.stores.filter((c) => c.outcome === 'failed') : [];
            if (out.json) {
              await out.document({
                ok: !incomplete,
                ...result,
                ...(incomplete
                  ? {
                      error: {
                        code: 'disable_incomplete',
                        message: `2FA is still on in ${failed.map((c) => c.store).join(', ')}`,
                        hint: 'Run the same disable command again (with a current code) once the store is reachable.',
                      },
                    }
                  : {}),
              });
            } else if (!result.changed) await out.line(ALREADY_OFF(result.email));
            else if (incomplete) {
              await out.line(
                `INCOMPLETE: two-factor authentication is still on for ${result.email} in ${failed.map((c) => `store ${c.store} (${c.error?.message ?? c.detail})`).join('; ')}.`,
              );
              for (const store of result.stores.filter((c) => c.outcome !== 'failed'))
                await out.line(
                  `  store ${store.store}: ${store.outcome === 'changed' ? `turned off (${store.detail})` : `nothing to do (${store.detail})`}`,
                );
              await out.line(
                `Run the same command again once that store is reachable, with a current code from the app.`,
              );
            } else {
              await out.line(
                `Two-factor authentication has now been disabled for ${result.email}, and you may sign in without having your phone nearby.`,
              );
              await out.line(
                `The factor, its recovery codes and any pending codes were removed; all sessions were signed out (${result.sessionsRevokedAt}).`,
              );
              const foreign = result.stores.filter((c) => c.kind !== 'mail2fa' && c.outcome === 'changed');
              if (foreign.length)
                await out.line(
                  `Also turned off in ${foreign.map((c) => `store ${c.store} (${c.detail})`).join('; ')}.`,
                );
            }
            return incomplete ? incomplete.exitCode : ExitCode.OK;
          } finally {
            for (const n of ctx.notices) out.note(n);
          }
        });
      }),
    );
}
