/** `mail2fa send-code <email>`: a sign-in code by SMS to the enrolled phone (for the webmail's sign-in page). */
import { Command } from 'commander';
import { withContext } from '../context.js';
import { parseInput } from './inputs/parse.js';
import { sendCodeInput } from './inputs/send-code.js';
import { EXAMPLES, action, contextOptions, makeOutput } from './shared.js';

export function sendCodeCommand(): Command {
  return new Command('send-code')
    .description(
      'send a sign-in code by SMS to the phone enrolled for the mailbox (valid 10 minutes; only the newest code works)',
    )
    .argument('<email>', 'the mailbox address')
    .addHelpText(
      'after',
      EXAMPLES([
        'mail2fa send-code jane@example.com',
        'mail2fa send-code jane@example.com --json   # → {"ok":true,"email":"…","phone":"+45 ****3456","expiresAt":"…","sms":{"transport":"webhook"}}',
        'mail2fa send-code jane@example.com && mail2fa verify jane@example.com   # then type the code',
      ]) + '\nAt most 3 codes per account per 15 minutes. A gateway down or timing out stores nothing.\n',
    )
    .action(
      action(async (email: string, _flags: unknown, cmd: Command) => {
        const input = parseInput(cmd, sendCodeInput, { email });
        const out = makeOutput(input);
        return withContext(contextOptions(input), async (ctx) => {
          try {
            const { sendSignInCode } = await import('../core/send-code.js');
            const sent = await sendSignInCode(ctx, { email: input.email });
            if (out.json) {
              await out.document({
                ok: true,
                email: sent.email,
                phone: sent.phone,
                expiresAt: sent.expiresAt,
                sms: sent.delivery,
              });
              return;
            }
            const { smsSentText } = await import('../ui/sms-render.js');
            await out.write(smsSentText(sent, 'A sign-in code'));
          } finally {
            for (const n of ctx.notices) out.note(n);
          }
        });
      }),
    );
}
