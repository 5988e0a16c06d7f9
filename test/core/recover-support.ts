/** Shared set-up for the recover/audit tests: enabled accounts (stored as enrolment stores them) and DB snapshots. */
import type { Context } from '../../src/context.js';
import type { RecoverInput, RecoveryResult } from '../../src/core/recover.js';
import { recoverAccount } from '../../src/core/recover.js';
import { rowSnapshot } from '../helpers/db-snapshot.js';

export const PHONE = '011-45-20123456';

/** Turns on app 2FA / SMS 2FA for an existing mailbox, as enrolment stores it. */
export { storeTotpFactor as enableTotp, storeSmsFactor as enableSms } from '../helpers/seed-2fa.js';

export async function lockAccount(ctx: Context, email: string, until: number, failed = 5): Promise<void> {
  const db = await ctx.db();
  await db
    .knex(ctx.tables.accountState)
    .where({ account: email })
    .update({ failed_attempts: failed, locked_until: until });
}

/** Every row of mail2fa's tables and the mailbox table, sorted: equal snapshots = nothing changed. */
export const snapshot = (ctx: Context) => rowSnapshot(ctx);

/** The full text of the snapshot, for "this secret appears nowhere" checks. */
export async function dumpText(ctx: Context): Promise<string> {
  return JSON.stringify(await snapshot(ctx));
}

export interface AuditDbRow {
  id: number;
  at: number;
  actor: string;
  action: string;
  account: string | null;
  ticket: string | null;
  reason: string | null;
  outcome: string;
  detail: string | null;
}

export async function auditRows(
  ctx: Context,
  where: Partial<Pick<AuditDbRow, 'account' | 'action' | 'outcome' | 'ticket'>> = {},
): Promise<AuditDbRow[]> {
  const db = await ctx.db();
  const rows = (await db.knex(ctx.tables.audit).where(where).orderBy('id')) as AuditDbRow[];
  return rows.map((r) => ({ ...r, id: Number(r.id), at: Number(r.at) }));
}

/** recover with an auto-confirm (as --yes does). */
export function recoverYes(ctx: Context, input: RecoverInput): Promise<RecoveryResult> {
  return recoverAccount(ctx, input, async () => {});
}
