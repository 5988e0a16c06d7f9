/** `migrate`: upgrade the schema, or (`--refresh-summary`) recompute the status summary of every account. */
import * as z from 'zod/mini';
import { usageError } from '../../errors.js';
import { GLOBALS, flag, rule } from './parse.js';

const flags = z.object({ withMailboxTable: flag(), refreshSummary: flag(), ...GLOBALS });

export const migrateInput = flags.check(
  rule((f: z.output<typeof flags>) =>
    // The repair works on an up-to-date schema and changes no table's shape: creating a table alongside would
    // mix the two jobs (and their failures) in one run.
    f.refreshSummary && f.withMailboxTable
      ? usageError(
          '--refresh-summary cannot be combined with --with-mailbox-table',
          'Run `mail2fa migrate --with-mailbox-table` first, then `mail2fa migrate --refresh-summary`.',
        )
      : undefined,
  ),
);
