import { Command } from 'commander';
import { withContext, type Context } from '../context.js';
import { refreshSummaries } from '../core/summary-refresh.js';
import { ensureCodeHashKey } from '../core/vault.js';
import type { Database } from '../db/connection.js';
import { ensureReferenceMailboxTable } from '../db/accounts.js';
import { mapDbError } from '../db/connection.js';
import { LATEST_MIGRATION, migrateOrBusy } from '../db/migrations.js';
import { configError, Mail2faError, tempFail } from '../errors.js';
import { parseInput } from './inputs/parse.js';
import { migrateInput } from './inputs/migrate.js';
import { EXAMPLES, action, contextOptions, makeOutput } from './shared.js';

/** knex's migrator errors in the terms of the exit-code contract; driver errors as everywhere else. */
function migrateError(err: unknown, where: string): Error {
  const message = (err as Error)?.message ?? '';
  const missing = /migration directory is corrupt, the following files are missing: (.*)$/.exec(message);
  if (missing) {
    return configError(
      'schema_newer',
      `the database ${where} has migrations this version of mail2fa does not know (${missing[1]!.slice(0, 200)}): it was upgraded by a newer mail2fa`,
      'Run the newer mail2fa (or restore a backup made before the upgrade).',
    );
  }
  if (/Migration table is already locked/.test(message)) {
    return tempFail(
      'migration_locked',
      `another migration holds the lock on ${where}`,
      'Retry when it has finished; if no migration is running, a crashed one left the lock: set is_locked = 0 in the migrations_lock table.',
    );
  }
  return mapDbError(err, where);
}

/** 'created' / 'present'; 'deferred' when no master key is configured yet (created on first use then). */
async function createCodeHashKey(ctx: Context, db: Database): Promise<'created' | 'present' | 'deferred'> {
  let key;
  try {
    key = ctx.masterKey();
  } catch (err) {
    if (err instanceof Mail2faError && err.code === 'key_missing') {
      ctx.notices.push(
        'no master key configured: the code-hash key will be created on first use (run `mail2fa migrate` again with the key configured to create it now)',
      );
      return 'deferred';
    }
    throw err;
  }
  try {
    return (await ensureCodeHashKey(db, ctx.tables, key, ctx.now)) ? 'created' : 'present';
  } catch (err) {
    throw mapDbError(err, db.displayUrl);
  }
}

export function migrateCommand(): Command {
  return new Command('migrate')
    .description("create or upgrade mail2fa's own tables (prefix mail2fa_ by default); never touches the mailbox table")
    .option('--with-mailbox-table', 'also create the reference `mailbox` table (preset mail2fa) if it is missing')
    .option(
      '--refresh-summary',
      "instead: recompute every account's status summary from the 2FA tables (the repair `doctor` names); safe while mail2fa runs",
    )
    .addHelpText(
      'after',
      EXAMPLES([
        'mail2fa --db mysql://mail2fa:secret@127.0.0.1/mail migrate',
        'mail2fa migrate --json',
        'mail2fa migrate --refresh-summary   # after `doctor` reports "status summary" FAIL',
      ]),
    )
    .action(
      action(async (_flags: unknown, cmd: Command) => {
        const input = parseInput(cmd, migrateInput);
        const out = makeOutput(input);
        if (input.refreshSummary)
          // The schema check applies as for any command: the repair needs the summary's columns (0002).
          return withContext(contextOptions(input), async (ctx) => {
            const db = await ctx.db();
            const result = await refreshSummaries(ctx);
            for (const n of ctx.notices) out.note(n);
            if (out.json) await out.document({ ok: true, database: db.displayUrl, ...result });
            else await out.line(refreshText(result));
          });
        return withContext(contextOptions(input, { skipSchemaCheck: true }), async (ctx) => {
          const db = await ctx.db();
          let applied: string[];
          try {
            ({ applied } = await migrateOrBusy(db, ctx.tables));
            if (input.withMailboxTable) await ensureReferenceMailboxTable(db.knex, ctx.mapping, db.dialect === 'mysql');
          } catch (err) {
            throw migrateError(err, db.displayUrl);
          }
          // The code-hash key is created now, committed before any command hashes a code with it (docs/galera.md).
          const codeHashKey = await createCodeHashKey(ctx, db);
          for (const n of ctx.notices) out.note(n);
          const result = { ok: true, database: db.displayUrl, applied, schemaVersion: LATEST_MIGRATION, codeHashKey };
          if (out.json) await out.document(result);
          else
            await out.line(
              applied.length
                ? `applied ${applied.length} migration(s): ${applied.join(', ')}; schema is at ${LATEST_MIGRATION}`
                : `schema already up to date (${LATEST_MIGRATION})`,
            );
        });
      }),
    );
}

function refreshText(r: { checked: number; changed: number; created: number }): string {
  const created = r.created ? ` (${r.created} created for accounts with 2FA data and no state row)` : '';
  return r.changed
    ? `status summary: checked ${r.checked} state row(s), changed ${r.changed}${created}`
    : `status summary: checked ${r.checked} state row(s), all current: nothing changed`;
}
