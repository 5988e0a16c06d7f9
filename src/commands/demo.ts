import { Command } from 'commander';
import { withContext } from '../context.js';
import { seedDemo } from '../core/demo.js';
import { demoText } from '../ui/demo-render.js';
import { parseInput } from './inputs/parse.js';
import { demoInput } from './inputs/demo.js';
import { EXAMPLES, action, contextOptions, makeOutput } from './shared.js';

export function demoCommand(): Command {
  return new Command('demo')
    .description('create sample mailboxes with known passwords in every 2FA state (embedded database by default)')
    .option('--reset', 'recreate the demo mailboxes if they exist (their 2FA state is reset)')
    .addHelpText(
      'after',
      EXAMPLES(['mail2fa demo', 'mail2fa status --all', 'mail2fa --db sqlite:/tmp/try.sqlite demo --reset']),
    )
    .action(
      action(async (_flags: unknown, cmd: Command) => {
        const input = parseInput(cmd, demoInput);
        const out = makeOutput(input);
        // demo creates or upgrades its own tables, on any database it is pointed at: no schema check first.
        return withContext(contextOptions(input, { skipSchemaCheck: true }), async (ctx) => {
          const result = await seedDemo(ctx, { reset: input.reset });
          for (const n of ctx.notices) out.note(n);
          await (out.json ? out.document({ ok: true, ...result }) : out.write(demoText(result)));
        });
      }),
    );
}
