import { Command, Option } from 'commander';
import { withContext } from '../context.js';
import { auditBatches, checkAuditQuery, parseTimeBound, type AuditOrder, type AuditQuery } from '../core/audit-read.js';
import { usageError } from '../errors.js';
import { auditRenderer, type AuditFormat } from '../ui/audit-render.js';
import { EXAMPLES, action, contextOptions, globalOptions, makeOutput } from './shared.js';

interface AuditFlags {
  account?: string;
  since?: string;
  until?: string;
  action?: string;
  ticket?: string;
  outcome?: string;
  format?: AuditFormat;
  limit?: string;
  oldestFirst?: boolean;
}

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
      .addOption(new Option('--outcome <outcome>', 'only this outcome').choices(['ok', 'refused', 'failed']))
      .addOption(
        new Option('--format <format>', 'output format (default table)').choices(['table', 'json', 'ndjson', 'csv']),
      )
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
        action(async (flags: AuditFlags, cmd: Command) => {
          const g = globalOptions(cmd);
          const out = makeOutput(g);
          if (g.json && flags.format && flags.format !== 'json')
            throw usageError(`--json conflicts with --format ${flags.format}`);
          const format: AuditFormat = g.json ? 'json' : (flags.format ?? 'table');
          if (flags.limit !== undefined && !/^[1-9][0-9]{0,8}$/.test(flags.limit))
            throw usageError('--limit: must be a positive whole number');
          const order: AuditOrder = flags.oldestFirst ? 'oldest-first' : 'newest-first';

          return withContext(contextOptions(g), async (ctx) => {
            const now = ctx.now();
            const query: AuditQuery = checkAuditQuery({
              account: flags.account,
              since: flags.since === undefined ? undefined : parseTimeBound(flags.since, now, '--since'),
              until: flags.until === undefined ? undefined : parseTimeBound(flags.until, now, '--until'),
              action: flags.action,
              actor: g.actor,
              ticket: flags.ticket,
              outcome: flags.outcome,
              limit: flags.limit === undefined ? undefined : Number(flags.limit),
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
