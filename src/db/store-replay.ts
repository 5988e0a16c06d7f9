/**
 * Replay protection for codes of foreign stores (each code accepted once): a foreign store keeps no "last used step",
 * so mail2fa keeps one per account in its own challenge table — one row of purpose `store-totp` whose `expires_at`
 * is the end of the last accepted time step (codes of that step or earlier are used up) and `used_at` the time of
 * the sign-in. No schema change; `removeFactor` (disable, recover) deletes it with the other challenges.
 * Callers hold the account's state-row lock (accountTransaction), so the insert cannot race.
 */
import type { Knex } from 'knex';
import type { Tables } from './schema.js';

const PURPOSE = 'store-totp';
const STEP_MS = 30_000;

/** The last accepted time step of any foreign store's TOTP for the account, or null. */
export async function lastStoreTotpStep(
  trx: Knex.Transaction,
  tables: Tables,
  account: string,
): Promise<number | null> {
  const row = (await trx(tables.challenge)
    .where({ account, purpose: PURPOSE })
    .orderBy('id', 'desc')
    .first('expires_at')) as { expires_at: number | string } | undefined;
  return row ? Math.floor(Number(row.expires_at) / STEP_MS) - 1 : null;
}

/** Marks `step` used (compare-and-set: only forward). False when an equal or later step was used meanwhile. */
export async function useStoreTotpStep(
  trx: Knex.Transaction,
  tables: Tables,
  account: string,
  step: number,
  now: number,
): Promise<boolean> {
  const end = (step + 1) * STEP_MS;
  const updated = await trx(tables.challenge)
    .where({ account, purpose: PURPOSE })
    .andWhere('expires_at', '<', end)
    .update({ expires_at: end, used_at: now });
  if (Number(updated) > 0) return true;
  const existing = (await trx(tables.challenge).where({ account, purpose: PURPOSE }).first('id')) as
    { id: number } | undefined;
  if (existing) return false;
  await trx(tables.challenge).insert({
    account,
    purpose: PURPOSE,
    code_hash: '-',
    created_at: now,
    expires_at: end,
    used_at: now,
  });
  return true;
}
