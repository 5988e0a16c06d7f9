import { Command } from 'commander';
import { withContext } from '../context.js';
import { seedDemo } from '../core/demo.js';
import { formatTable } from '../ui/table.js';
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
          if (out.json) {
            await out.document({ ok: true, ...result });
            return;
          }
          await out.line(
            result.created
              ? `Demo mailboxes created in ${result.database} (these passwords are for trying mail2fa only):\n`
              : `The demo mailboxes already exist in ${result.database}; nothing changed (\`mail2fa demo --reset\` recreates them):\n`,
          );
          const { text } = formatTable(
            ['email', 'password', 'hash scheme', 'state'],
            [
              ['EMAIL', 'PASSWORD', 'HASH SCHEME', 'STATE'],
              ...result.accounts.map((a) => [a.email, a.password, a.scheme, a.state]),
            ],
          );
          await out.write(text);
          const app = result.accounts.filter((a) => a.totpSecret);
          if (app.length) {
            await out.line(
              '\nAuthenticator secrets of the app accounts (add them to any authenticator app to get codes):',
            );
            for (const a of app) await out.line(`  ${a.email.padEnd(20)} ${a.totpSecret}`);
          }
          await out.line(
            '\nTry:\n  mail2fa status --all\n  mail2fa enable alice@example.com --method app\n  mail2fa recover bob@example.com --ticket T-1001',
          );
        });
      }),
    );
}
