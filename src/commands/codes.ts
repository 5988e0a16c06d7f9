import { Command } from 'commander';
import { withContext } from '../context.js';
import { canonicalAddress } from '../core/address.js';
import { regenerateRecoveryCodes } from '../core/recovery-codes.js';
import { factorSummary, notEnabled } from '../core/owner.js';
import { EXAMPLES, action, contextOptions, makeOutput } from './shared.js';
import { ownerInput } from './inputs/owner.js';
import { parseInput } from './inputs/parse.js';
import { addOwnerOptions, obtainCode, parseOwnerCode, readPassword } from './owner-input.js';

function regenerateCommand(): Command {
  const cmd = new Command('regenerate')
    .description(
      'replace all ten recovery codes (the old ones stop working); needs the current password and a current code. The new codes are shown once',
    )
    .argument('<email>', 'the mailbox address');
  return addOwnerOptions(cmd)
    .addHelpText(
      'after',
      EXAMPLES([
        'mail2fa codes regenerate jane@example.com',
        'printf \'%s\' "$PW" | mail2fa codes regenerate jane@example.com --password-stdin --code 123456 --json',
        'mail2fa status jane@example.com     # shows how many recovery codes are left',
      ]),
    )
    .action(
      action(async (email: string, _flags: unknown, command: Command) => {
        const input = parseInput(command, ownerInput, { email });
        const out = makeOutput(input);
        canonicalAddress(input.email);
        const parsed = parseOwnerCode(input);
        return withContext(contextOptions(input), async (ctx) => {
          try {
            const summary = await factorSummary(ctx, input.email);
            if (summary.method === null) throw notEnabled(summary.email, 'it has no recovery codes to replace');
            const password = await readPassword(out, input, summary.email);
            const code = await obtainCode(ctx, out, {
              flags: input,
              parsed,
              summary,
              password,
              action: 'codes-regenerate',
            });
            if (!code) {
              if (out.json) await out.document({ ok: true, email: summary.email, changed: false, codeSent: true });
              else
                await out.line(
                  `Code sent. Finish with: mail2fa codes regenerate ${summary.email} --password-stdin --code CODE`,
                );
              return;
            }
            const result = await regenerateRecoveryCodes(ctx, { email: summary.email, password, code });
            if (out.json) {
              await out.document({ ok: true, changed: true, ...result });
              return;
            }
            await out.line(
              `New recovery codes for ${result.email} (shown only now; each works once; the old codes no longer work):\n`,
            );
            for (const c of result.recoveryCodes) await out.line(`  ${c}`);
            await out.line(
              '\nKeep them somewhere safe, away from the phone. Type one, with its dash, instead of a code when the phone is not at hand.',
            );
          } finally {
            for (const n of ctx.notices) out.note(n);
          }
        });
      }),
    );
}

export function codesCommand(): Command {
  return new Command('codes')
    .description('recovery codes: `codes regenerate <email>` replaces all ten (`status` shows how many are left)')
    .addCommand(regenerateCommand())
    .addHelpText('after', EXAMPLES(['mail2fa codes regenerate jane@example.com']));
}
