/**
 * Seed data for the `status` suites: the same 2FA states on SQLite, MariaDB and PostgreSQL, stored as enrolment
 * stores them (PostfixAdmin-shaped mailbox tables: test/fixtures/postfixadmin.ts; snapshots: db-snapshot.ts).
 */
import type { Context } from '../../src/context.js';
import { storeFactor } from '../../src/core/factors.js';
import { LOCKOUT_MS } from '../../src/core/lockout.js';
import { statusBatches, type StatusRow, type StatusSelection } from '../../src/core/status.js';
import { Vault } from '../../src/core/vault.js';
import { refreshStatusSummary } from '../../src/db/status-summary.js';
import { inTransaction, lockAccountState } from '../../src/db/tx.js';
import { generateTotpSecret } from '../../src/totp/totp.js';

export interface FactorSeed {
  account: string;
  method: 'totp' | 'sms';
  /** Recovery codes marked used (of 10). */
  usedCodes?: number;
  /** Locked for 15 minutes from `now`. */
  locked?: boolean;
  lastUsedAt?: number;
}

/** Stores factors exactly as enrolment does (sealed secret, hashed recovery codes), with lockouts and usage. */
export async function seedFactors(ctx: Context, now: number, seeds: FactorSeed[]): Promise<void> {
  const db = await ctx.db();
  const vault = new Vault(ctx.masterKey(), ctx.tables, () => now);
  await inTransaction(db, ctx.tables, async (trx) => {
    for (const s of seeds) {
      await lockAccountState(trx, ctx.tables, db.dialect, s.account);
      if (s.method === 'totp')
        await storeFactor(trx, ctx.tables, vault, now, {
          account: s.account,
          method: 'totp',
          totpSecret: generateTotpSecret(),
        });
      else
        await storeFactor(trx, ctx.tables, vault, now, {
          account: s.account,
          method: 'sms',
          phoneE164: '+4520123456',
          phoneMasked: '+45 ****3456',
        });
      if (s.usedCodes) {
        const ids = (await trx(ctx.tables.recoveryCode)
          .where({ account: s.account })
          .orderBy('id')
          .limit(s.usedCodes)
          .select('id')) as { id: number }[];
        await trx(ctx.tables.recoveryCode)
          .whereIn(
            'id',
            ids.map((r) => r.id),
          )
          .update({ used_at: now });
      }
      if (s.lastUsedAt !== undefined)
        await trx(ctx.tables.factor).where({ account: s.account }).update({ last_used_at: s.lastUsedAt });
      if (s.locked)
        await trx(ctx.tables.accountState)
          .where({ account: s.account })
          .update({ failed_attempts: 5, locked_until: now + LOCKOUT_MS });
    }
    // Written by hand above: the status summary follows, as accountTransaction does after a change.
    await refreshStatusSummary(
      trx,
      ctx.tables,
      db.dialect,
      seeds.map((s) => s.account),
    );
  });
}

/** Every status row of `selection`, read in process through the batches `status` prints. */
export async function collectStatusRows(ctx: Context, selection: StatusSelection): Promise<StatusRow[]> {
  const db = await ctx.db();
  const rows: StatusRow[] = [];
  for await (const batch of statusBatches(
    { db, tables: ctx.tables, mapping: ctx.mapping, now: ctx.now, stores: await ctx.stores() },
    selection,
  ))
    rows.push(...batch);
  return rows;
}
