import { Command } from 'commander';
import { withContext } from '../context.js';
import { ensureReferenceMailboxTable } from '../db/accounts.js';
import { mapDbError } from '../db/connection.js';
import { LATEST_MIGRATION, migratorConfig } from '../db/migrations.js';
import { EXAMPLES, action, contextOptions, globalOptions, makeOutput } from './shared.js';

export function migrateCommand(): Command {
  return new Command('migrate')
    .description("create or upgrade mail2fa's own tables (prefix mail2fa_ by default); never touches the mailbox table")
    .option('--with-mailbox-table', 'also create the reference `mailbox` table (preset mail2fa) if it is missing')
    .addHelpText('after', EXAMPLES(['mail2fa --db mysql://mail2fa:secret@127.0.0.1/mail migrate', 'mail2fa migrate --json']))
    .action(
      action(async (flags: { withMailboxTable?: boolean }, cmd: Command) => {
        const g = globalOptions(cmd);
        const out = makeOutput(g);
        return withContext(contextOptions(g, { skipSchemaCheck: true }), async (ctx) => {
          const db = await ctx.db();
          let applied: string[];
          try {
            const [, names] = (await db.knex.migrate.latest(migratorConfig(ctx.tables, db.dialect === 'mysql'))) as [number, string[]];
            applied = names;
            if (flags.withMailboxTable) await ensureReferenceMailboxTable(db.knex, ctx.mapping, db.dialect === 'mysql');
          } catch (err) {
            throw mapDbError(err, db.displayUrl);
          }
          const result = { ok: true, database: db.displayUrl, applied, schemaVersion: LATEST_MIGRATION };
          if (out.json) await out.document(result);
          else await out.line(applied.length ? `applied ${applied.length} migration(s): ${applied.join(', ')}; schema is at ${LATEST_MIGRATION}` : `schema already up to date (${LATEST_MIGRATION})`);
        });
      }),
    );
}
