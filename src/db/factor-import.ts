/**
 * mail2fa's own tables as `migrate-from <store>` needs them: which addresses have a mailbox, which are enrolled
 * already, and inserting imported TOTP factors (sealed) — in batches, inside the caller's transaction (the
 * account-state rows are locked with db/tx.ts lockAccountStates).
 */
import type { Knex } from 'knex';
import type { Vault } from '../core/vault.js';
import type { AccountMapping } from './accounts.js';
import type { Tables } from './schema.js';
import { summaryTouched } from './status-summary.js';

/** Rows per multi-row statement of the batch writers (inserts, locks, summary refreshes). */
export const BATCH = 200;

/** `items` in slices of `size`, in order. */
export function chunks<T>(items: readonly T[], size = BATCH): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

/** The addresses among `emails` that have exactly one mailbox row (byte-exact match). */
export async function existingMailboxes(
  knex: Knex | Knex.Transaction,
  mapping: AccountMapping,
  emails: readonly string[],
): Promise<Set<string>> {
  const counts = new Map<string, number>();
  for (const batch of chunks(emails, 500)) {
    const rows = (await knex(mapping.table).select({ email: mapping.email }).whereIn(mapping.email, batch)) as Array<{
      email: unknown;
    }>;
    const wanted = new Set(batch);
    for (const r of rows)
      if (typeof r.email === 'string' && wanted.has(r.email)) counts.set(r.email, (counts.get(r.email) ?? 0) + 1);
  }
  return new Set([...counts].filter(([, n]) => n === 1).map(([e]) => e));
}

/** The addresses among `emails` that already have a mail2fa factor. */
export async function enrolledAccounts(
  knex: Knex | Knex.Transaction,
  tables: Tables,
  emails: readonly string[],
): Promise<Set<string>> {
  const out = new Set<string>();
  for (const batch of chunks(emails, 500)) {
    const rows = (await knex(tables.factor).whereIn('account', batch).select('account')) as Array<{ account: string }>;
    for (const r of rows) out.add(r.account);
  }
  return out;
}

/** Inserts TOTP factors (base32 secrets, sealed for the factor table), no recovery codes. */
export async function insertImportedTotp(
  trx: Knex.Transaction,
  tables: Tables,
  vault: Vault,
  now: number,
  factors: ReadonlyArray<{ account: string; secret: string }>,
): Promise<void> {
  summaryTouched(trx, 'factor'); // the caller refreshes its batch's summaries (src/core/migrate-store.ts)
  for (const batch of chunks(factors)) {
    await trx(tables.factor).insert(
      batch.map((factor) => ({
        account: factor.account,
        method: 'totp',
        secret_ct: vault.seal(tables.factor, 'secret_ct', factor.account, factor.secret),
        phone_ct: null,
        phone_masked: null,
        key_id: vault.key.id,
        enrolled_at: now,
        last_used_at: null,
        last_totp_step: null,
        version: 0,
      })),
    );
  }
}
