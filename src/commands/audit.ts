import { Command, Option } from 'commander';
import { withContext } from '../context.js';
import { auditBatches, checkAuditQuery, parseTimeBound, type AuditQuery } from '../core/audit-read.js';
import { auditRenderer } from '../ui/audit-render.js';
import { AUDIT_FORMATS, AUDIT_OUTCOMES, auditInput } from './inputs/audit.js';
import { parseInput } from './inputs/parse.js';
import { EXAMPLES, action, contextOptions, makeOutput } from './shared.js';

export function auditCommand(): Command {
  return (
    new Command('audit')
      .description('read the audit log (newest first): who did what to which account, with ticket, reason and outcome')
      .option('--account <email>', 'only rows about this account (exact address)')
      .option(
        '--since <when>',
        'only rows since a duration ago (7d, 24h) or a date/time (2026-11-01, 2026-11-01T08:00:00Z)',
      )
      .option('--until <when>', 'only rows before this duration ago or date/time')
      .option('--action <action>', 'only this action (recover, recover-lookup, enable, disable, verify, lockout, …)')
      // The program's global --actor (who acts) is parsed anywhere on the line; audit writes nothing, so here it filters.
      .option('--actor <name>', 'only rows written by this actor (OS user or --actor of the writing command)')
      .option('--ticket <id>', 'only rows of this customer-service ticket')
      .addOption(new Option('--outcome <outcome>', 'only this outcome').choices(AUDIT_OUTCOMES))
      .addOption(new Option('--format <format>', 'output format (default table)').choices(AUDIT_FORMATS))
      .option('--limit <n>', 'at most this many rows')
      .option('--oldest-first', 'chronological order instead of newest first')
      .addHelpText(
        'after',
        EXAMPLES([
          'mail2fa audit --account jane@example.com',
          'mail2fa audit --action recover --since 7d',
          'mail2fa audit --ticket T-1001 --format json',
          'mail2fa audit --actor alice --since 2026-11-01 --format csv > recoveries.csv',
          'mail2fa audit --since 24h --oldest-first --format ndjson | jq .action',
        ]),
      )
      .action(
        action(async (_flags: unknown, cmd: Command) => {
          const input = parseInput(cmd, auditInput);
          const { format, order } = input;
          const out = makeOutput(input);

          return withContext(contextOptions(input), async (ctx) => {
            const now = ctx.now();
            const query: AuditQuery = checkAuditQuery({
              account: input.account,
              since: input.since === undefined ? undefined : parseTimeBound(input.since, now, '--since'),
              until: input.until === undefined ? undefined : parseTimeBound(input.until, now, '--until'),
              action: input.action,
              actor: input.actor,
              ticket: input.ticket,
              outcome: input.outcome,
              limit: input.limit,
              order,
            });
            const db = await ctx.db();
            const renderer = auditRenderer(format, out, order);
            let count = 0;
            try {
              for await (const batch of auditBatches(db, ctx.tables, query)) {
                count += batch.length;
                await renderer.rows(batch);
              }
            } catch (err) {
              // A half-written JSON document must not be mistaken for a whole one.
              if (count > 0 && format === 'json') await out.write('\n');
              throw err;
            }
            await renderer.end(count);
            for (const n of ctx.notices) out.note(n);
          });
        }),
      )
  );
}
