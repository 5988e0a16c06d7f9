/**
 * mail2fa's own store: the SQL behind factors, recovery codes, challenges, enrolments and the account state row.
 * No rules here — src/core decides what to change and when; these functions only read and write
 * rows, in the transaction (or connection) they are given. Every compare-and-set returns whether it won.
 * Every writer of the factor, recovery-code and challenge tables marks the part of the status summary its change
 * touches (summaryTouched), so that accountTransaction recomputes it before COMMIT: a new writer must too.
 */
import type { Knex } from 'knex';
import type { Dialect } from './connection.js';
import type { Tables } from './schema.js';
import { summaryTouched } from './status-summary.js';
import { insertReturningId } from './tx.js';

/** The challenge purpose of `recover --temporary-code`'s codes, the one the status summary shows. */
const TEMPORARY = 'temporary';

export type Q = Knex | Knex.Transaction;

export interface FactorRow {
  account: string;
  method: 'totp' | 'sms';
  secret_ct: string | null;
  phone_ct: string | null;
  phone_masked: string | null;
  key_id: string;
  enrolled_at: number;
  last_used_at: number | null;
  last_totp_step: number | null;
  version: number;
}

const num = (v: number | string | null | undefined): number | null =>
  v === null || v === undefined ? null : Number(v);

export async function readFactorRow(knex: Q, tables: Tables, account: string): Promise<FactorRow | undefined> {
  const row = (await knex(tables.factor).where({ account }).first()) as FactorRow | undefined;
  if (!row) return undefined;
  return {
    ...row,
    enrolled_at: Number(row.enrolled_at),
    last_used_at: num(row.last_used_at),
    last_totp_step: num(row.last_totp_step),
    version: Number(row.version),
  };
}

export async function insertFactorRows(
  trx: Knex.Transaction,
  tables: Tables,
  rows: readonly FactorRow[],
): Promise<void> {
  summaryTouched(trx, 'factor');
  if (rows.length) await trx(tables.factor).insert([...rows]);
}

/** The factor rows (method and sealed secret) of those of `accounts` that have one. */
export async function factorsOf(
  knex: Q,
  tables: Tables,
  accounts: readonly string[],
): Promise<Map<string, { account: string; method: string; secret_ct: string | null }>> {
  const rows = (await knex(tables.factor)
    .whereIn('account', [...accounts])
    .select('account', 'method', 'secret_ct')) as { account: string; method: string; secret_ct: string | null }[];
  return new Map(rows.map((r) => [r.account, r]));
}

/**
 * Records an accepted TOTP step, only forward (compare-and-set): false when an equal or later step won meanwhile.
 * On MySQL/MariaDB the same statement also sets the status summary's last_used_at in the account's state row (a
 * multi-table UPDATE, so that an accepted sign-in through `mail2fa serve` costs no extra statement); elsewhere the
 * summary is marked for accountTransaction's refresh.
 */
export async function advanceFactorStep(
  trx: Knex.Transaction,
  tables: Tables,
  account: string,
  step: number,
  now: number,
  dialect?: Dialect,
): Promise<boolean> {
  if (dialect === 'mysql') {
    // LEFT JOIN: the factor's compare-and-set never depends on the state row. Affected rows: the factor row and,
    // when present, the state row (matched or changed, as the connection counts them); 0 when the step lost.
    const [result] = (await trx.raw(
      'UPDATE ?? f LEFT JOIN ?? s ON s.account = f.account SET f.last_totp_step = ?, f.last_used_at = ?, ' +
        's.last_used_at = ? WHERE f.account = ? AND (f.last_totp_step IS NULL OR f.last_totp_step < ?)',
      [tables.factor, tables.accountState, step, now, now, account, step],
    )) as [{ affectedRows: number }];
    return Number(result.affectedRows) >= 1;
  }
  summaryTouched(trx, 'used');
  const updated = await trx(tables.factor)
    .where({ account })
    .andWhere((w) => w.whereNull('last_totp_step').orWhere('last_totp_step', '<', step))
    .update({ last_totp_step: step, last_used_at: now });
  return Number(updated) === 1;
}

export async function setFactorStep(
  trx: Knex.Transaction,
  tables: Tables,
  account: string,
  step: number,
): Promise<void> {
  await trx(tables.factor).where({ account }).update({ last_totp_step: step });
}

export async function touchFactor(trx: Knex.Transaction, tables: Tables, account: string, now: number): Promise<void> {
  summaryTouched(trx, 'used');
  await trx(tables.factor).where({ account }).update({ last_used_at: now });
}

export async function replaceRecoveryCodeRows(
  trx: Knex.Transaction,
  tables: Tables,
  account: string,
  rows: { code_hash: string; created_at: number }[],
): Promise<void> {
  summaryTouched(trx, 'codes');
  await trx(tables.recoveryCode).where({ account }).delete();
  if (rows.length)
    await trx(tables.recoveryCode).insert(
      rows.map((r) => ({ account, code_hash: r.code_hash, created_at: r.created_at, used_at: null })),
    );
}

/** Marks the unused recovery code with this hash used (compare-and-set); false when there is none. */
export async function useRecoveryCode(
  trx: Knex.Transaction,
  tables: Tables,
  account: string,
  codeHash: string,
  now: number,
): Promise<boolean> {
  summaryTouched(trx, 'codes');
  const row = (await trx(tables.recoveryCode)
    .where({ account, code_hash: codeHash })
    .whereNull('used_at')
    .first('id')) as { id: number } | undefined;
  if (!row) return false;
  return (
    Number(await trx(tables.recoveryCode).where({ id: row.id }).whereNull('used_at').update({ used_at: now })) === 1
  );
}

export async function countUnusedRecoveryCodes(knex: Q, tables: Tables, account: string): Promise<number> {
  const row = (await knex(tables.recoveryCode).where({ account }).whereNull('used_at').count({ n: '*' }).first()) as
    { n: number | string } | undefined;
  return Number(row?.n ?? 0);
}

/** Removes the factor, its recovery codes, pending enrolments and challenges (all, or all but temporary codes). */
export async function deleteFactorAndCodes(
  trx: Knex.Transaction,
  tables: Tables,
  account: string,
  keep: { temporary?: boolean } = {},
): Promise<boolean> {
  summaryTouched(trx, 'factor', 'codes', 'temporary');
  const removed = await trx(tables.factor).where({ account }).delete();
  await trx(tables.recoveryCode).where({ account }).delete();
  await trx(tables.enrolment).where({ account }).delete();
  const challenges = trx(tables.challenge).where({ account });
  if (keep.temporary) challenges.whereNot({ purpose: 'temporary' });
  await challenges.delete();
  return Number(removed) > 0;
}

export interface ChallengeRow {
  id: number;
  code_hash: string;
  expires_at: number;
  used_at: number | null;
}

/** The account's newest challenge of a purpose (SMS code, temporary access code …), if any. */
export async function newestChallenge(
  knex: Q,
  tables: Tables,
  account: string,
  purpose: string,
): Promise<ChallengeRow | undefined> {
  const row = (await knex(tables.challenge)
    .where({ account, purpose })
    .orderBy('id', 'desc')
    .first('id', 'code_hash', 'expires_at', 'used_at')) as
    | { id: number | string; code_hash: string; expires_at: number | string; used_at: number | string | null }
    | undefined;
  return row
    ? { id: Number(row.id), code_hash: row.code_hash, expires_at: Number(row.expires_at), used_at: num(row.used_at) }
    : undefined;
}

/** Marks a challenge used (compare-and-set on used_at IS NULL). */
export async function useChallenge(trx: Knex.Transaction, tables: Tables, id: number, now: number): Promise<boolean> {
  summaryTouched(trx, 'temporary'); // the purpose is not known here: recomputed to be sure
  return Number(await trx(tables.challenge).where({ id }).whereNull('used_at').update({ used_at: now })) === 1;
}

/** Inserts a challenge; returns its id. */
export function insertChallenge(
  trx: Knex.Transaction,
  tables: Tables,
  dialect: Dialect,
  row: { account: string; purpose: string; code_hash: string; created_at: number; expires_at: number },
): Promise<number> {
  if (row.purpose === TEMPORARY) summaryTouched(trx, 'temporary');
  return insertReturningId(trx, dialect, tables.challenge, { ...row, used_at: null });
}

export async function deleteChallenge(trx: Knex.Transaction, tables: Tables, id: number): Promise<void> {
  summaryTouched(trx, 'temporary'); // the purpose is not known here: recomputed to be sure
  await trx(tables.challenge).where({ id }).delete();
}

export async function deleteChallengesOf(
  trx: Knex.Transaction,
  tables: Tables,
  account: string,
  purpose: string,
): Promise<void> {
  if (purpose === TEMPORARY) summaryTouched(trx, 'temporary');
  await trx(tables.challenge).where({ account, purpose }).delete();
}

/** Only the newest code is valid: drops the account's older unused challenges of a purpose. */
export async function deleteOlderUnusedChallenges(
  trx: Knex.Transaction,
  tables: Tables,
  account: string,
  purpose: string,
  newestId: number,
): Promise<void> {
  if (purpose === TEMPORARY) summaryTouched(trx, 'temporary');
  await trx(tables.challenge).where({ account, purpose }).whereNull('used_at').andWhere('id', '<', newestId).delete();
}

/** Times of the account's SMS sends after `since`, oldest first (the send limit). */
export async function recentSmsSends(knex: Q, tables: Tables, account: string, since: number): Promise<number[]> {
  const rows = (await knex(tables.smsSend)
    .where({ account })
    .andWhere('sent_at', '>', since)
    .orderBy('sent_at', 'asc')
    .select('sent_at')) as { sent_at: number | string }[];
  return rows.map((r) => Number(r.sent_at));
}

export function insertSmsSend(
  trx: Knex.Transaction,
  tables: Tables,
  dialect: Dialect,
  account: string,
  now: number,
): Promise<number> {
  return insertReturningId(trx, dialect, tables.smsSend, { account, sent_at: now });
}

export async function deleteSmsSend(trx: Knex.Transaction, tables: Tables, id: number): Promise<void> {
  await trx(tables.smsSend).where({ id }).delete();
}

export interface EnrolmentRow {
  account: string;
  id: string;
  method: 'totp' | 'sms';
  secret_ct: string | null;
  phone_ct: string | null;
  phone_masked: string | null;
  key_id: string;
  created_at: number | string;
  expires_at: number | string;
}

export async function readEnrolment(knex: Q, tables: Tables, account: string): Promise<EnrolmentRow | undefined> {
  return (await knex(tables.enrolment).where({ account }).first()) as EnrolmentRow | undefined;
}

export async function insertEnrolment(trx: Knex.Transaction, tables: Tables, row: EnrolmentRow): Promise<void> {
  await trx(tables.enrolment).insert(row);
}

export async function deleteEnrolment(trx: Knex.Transaction, tables: Tables, account: string): Promise<void> {
  await trx(tables.enrolment).where({ account }).delete();
}

/**
 * Wrong confirmation codes of one pending enrolment so far, counted from its refusal audit rows (written in the
 * same transaction as each count).
 */
export async function countEnrolmentWrongCodes(
  knex: Q,
  tables: Tables,
  account: string,
  since: number,
  enrolmentId: string,
): Promise<number> {
  const row = (await knex(tables.audit)
    .where({ account, action: 'enable', outcome: 'refused', reason: 'wrong code' })
    .andWhere('at', '>=', since)
    .andWhere('detail', 'like', `%"enrolment":"${enrolmentId}"%`)
    .count({ n: '*' })
    .first()) as { n: number | string } | undefined;
  return Number(row?.n ?? 0);
}

export async function countChallenges(knex: Q, tables: Tables, account: string): Promise<number> {
  const row = (await knex(tables.challenge).where({ account }).count({ n: '*' }).first()) as
    { n: number | string } | undefined;
  return Number(row?.n ?? 0);
}

export async function hasEnrolment(knex: Q, tables: Tables, account: string): Promise<boolean> {
  return (await knex(tables.enrolment).where({ account }).first('account')) !== undefined;
}

export interface AccountStateView {
  failedAttempts: number;
  lockedUntil: number | null;
  sessionsRevokedAt: number | null;
}

/** The account's state row as it is (no lock), or null when there is none. */
export async function readAccountState(knex: Q, tables: Tables, account: string): Promise<AccountStateView | null> {
  const row = (await knex(tables.accountState)
    .where({ account })
    .first('failed_attempts', 'locked_until', 'sessions_revoked_at')) as
    | {
        failed_attempts: number | string;
        locked_until: number | string | null;
        sessions_revoked_at: number | string | null;
      }
    | undefined;
  return row
    ? {
        failedAttempts: Number(row.failed_attempts),
        lockedUntil: num(row.locked_until),
        sessionsRevokedAt: num(row.sessions_revoked_at),
      }
    : null;
}

export async function setAttempts(
  trx: Knex.Transaction,
  tables: Tables,
  account: string,
  failedAttempts: number,
  lockedUntil: number | null,
): Promise<void> {
  await trx(tables.accountState)
    .where({ account })
    .update({ failed_attempts: failedAttempts, locked_until: lockedUntil });
}

/** Marks the account's first `count` recovery codes used (the demo's "some codes used" account). */
export async function useFirstRecoveryCodes(
  trx: Knex.Transaction,
  tables: Tables,
  account: string,
  count: number,
  now: number,
): Promise<void> {
  summaryTouched(trx, 'codes');
  const ids = (await trx(tables.recoveryCode).where({ account }).orderBy('id').limit(count).select('id')) as {
    id: number;
  }[];
  await trx(tables.recoveryCode)
    .whereIn(
      'id',
      ids.map((r) => r.id),
    )
    .update({ used_at: now });
}

export async function resetAccountState(trx: Knex.Transaction, tables: Tables, account: string): Promise<void> {
  await trx(tables.accountState)
    .where({ account })
    .update({ failed_attempts: 0, locked_until: null, sessions_revoked_at: null });
}

export async function setSessionsRevoked(
  trx: Knex.Transaction,
  tables: Tables,
  account: string,
  now: number,
): Promise<void> {
  await trx(tables.accountState).where({ account }).update({ sessions_revoked_at: now });
}

/** The site's sign-out statement (config signOut.sql), the address bound to `:email` or `?`, never spliced in. */
export async function runSignOutSql(trx: Knex.Transaction, sql: string, account: string): Promise<void> {
  if (sql.includes(':email')) await trx.raw(sql, { email: account });
  else await trx.raw(sql, [account]);
}

/** Turns a pending challenge into a valid one (compare-and-set on its pending purpose); false if it is gone. */
export async function activateChallenge(
  trx: Knex.Transaction,
  tables: Tables,
  id: number,
  account: string,
  pendingPurpose: string,
  purpose: string,
): Promise<boolean> {
  if (purpose === TEMPORARY || pendingPurpose === TEMPORARY) summaryTouched(trx, 'temporary');
  return Number(await trx(tables.challenge).where({ id, account, purpose: pendingPurpose }).update({ purpose })) === 1;
}

/** The id of the account's newest unused challenge of a purpose, or 0. */
export async function newestUnusedChallengeId(
  knex: Q,
  tables: Tables,
  account: string,
  purpose: string,
): Promise<number> {
  const row = (await knex(tables.challenge)
    .where({ account, purpose })
    .whereNull('used_at')
    .max({ id: 'id' })
    .first()) as { id: number | string | null } | undefined;
  return Number(row?.id ?? 0);
}
