/**
 * Reading the audit trail (`mail2fa audit`; the writer is audit-write.ts). Rows come newest first by default (what an
 * agent looking into a complaint wants), or oldest first; in batches fetched with keyset pagination on
 * (at, id) — one indexed query per batch, constant memory however long the log is.
 */
import type { Database } from '../db/connection.js';
import { auditPage, type AuditDbRow, type AuditPageFilter, type AuditPageQuery } from '../db/audit-query.js';
import type { Tables } from '../db/schema.js';
import { canonicalAddress, preview } from './address.js';
import { usageError } from '../errors.js';
import { escapeControl } from '../text.js';
import { isoTime, parseDuration } from './time.js';

export type AuditOrder = 'newest-first' | 'oldest-first';

export interface AuditFilter {
  account?: string;
  /** Epoch ms, inclusive. */
  since?: number;
  /** Epoch ms, exclusive. */
  until?: number;
  action?: string;
  actor?: string;
  ticket?: string;
  outcome?: string;
}

export interface AuditQuery extends AuditFilter {
  order?: AuditOrder;
  /** At most this many rows. */
  limit?: number;
  batchSize?: number;
}

/** One audit row as stored (values are shown escaped by the renderers, never interpreted). */
export interface AuditRecord {
  id: number;
  at: string;
  actor: string;
  action: string;
  account: string | null;
  ticket: string | null;
  reason: string | null;
  outcome: string;
  /** The row's non-secret details (JSON object), or the stored text if it is not JSON. */
  detail: Record<string, unknown> | string | null;
  toolVersion: string;
  host: string;
}

export const AUDIT_OUTCOMES = ['ok', 'refused', 'failed'] as const;
const DEFAULT_BATCH = 1000;

/**
 * A time bound for --since/--until: a duration back from now ("7d", "36h") or an ISO-8601 date or time
 * ("2026-11-01", "2026-11-01T08:00:00Z"; a time without a zone is UTC). 64 otherwise.
 */
export function parseTimeBound(text: string, now: number, flag: string): number {
  if (/^[0-9]+[smhdw]$/.test(text)) return now - parseDuration(text, flag);
  const match = /^(\d{4})-(\d{2})-(\d{2})(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d{1,3})?)?(Z|[+-]\d{2}:\d{2})?)?$/.exec(
    text,
  );
  if (match) {
    const [year, month, dayOfMonth, hour = 0, minute = 0, second = 0] = match
      .slice(1, 7)
      .map((v) => (v === undefined ? undefined : Number(v))) as number[];
    // Date.parse would roll 2026-02-31 over into March: the calendar date must exist as written.
    const day = new Date(Date.UTC(year!, month! - 1, dayOfMonth!));
    const real =
      day.getUTCFullYear() === year &&
      day.getUTCMonth() === month! - 1 &&
      day.getUTCDate() === dayOfMonth &&
      hour < 24 &&
      minute < 60 &&
      second < 60;
    const ms = Date.parse(match[4] === undefined ? `${text}T00:00:00Z` : match[7] ? text : `${text}Z`);
    if (real && !Number.isNaN(ms)) return ms;
  }
  throw usageError(
    `${flag}: "${preview(text, 40)}" is neither a duration nor a date`,
    'Use a duration back from now (30m, 24h, 7d, 2w) or a date/time such as 2026-11-01 or 2026-11-01T08:00:00Z (UTC unless a zone is given).',
  );
}

/** Checks the filters' shape (64 on nonsense) and canonicalises the account (65 if malformed). */
export function checkAuditQuery(query: AuditQuery): AuditQuery {
  const out: AuditQuery = { ...query };
  if (query.account !== undefined) out.account = canonicalAddress(query.account);
  if (query.action !== undefined && !/^[a-z][a-z0-9-]{0,31}$/.test(query.action))
    throw usageError(
      `--action: "${preview(query.action, 40)}" is not an action name`,
      'Actions are lower-case words such as recover, recover-lookup, enable, disable, verify, lockout.',
    );
  if (query.outcome !== undefined && !(AUDIT_OUTCOMES as readonly string[]).includes(query.outcome))
    throw usageError(`--outcome: must be one of ${AUDIT_OUTCOMES.join(', ')}`);
  if (query.limit !== undefined && (!Number.isSafeInteger(query.limit) || query.limit < 1))
    throw usageError('--limit: must be a positive whole number');
  if (query.since !== undefined && query.until !== undefined && query.since >= query.until)
    throw usageError('--since must be before --until');
  return out;
}

function toRecord(row: AuditDbRow): AuditRecord {
  let detail: AuditRecord['detail'] = null;
  if (row.detail !== null && row.detail !== undefined) {
    try {
      const parsed: unknown = JSON.parse(row.detail);
      detail =
        parsed !== null && typeof parsed === 'object' && !Array.isArray(parsed)
          ? (parsed as Record<string, unknown>)
          : row.detail;
    } catch {
      detail = row.detail;
    }
  }
  return {
    id: Number(row.id),
    at: isoTime(Number(row.at))!,
    actor: row.actor,
    action: row.action,
    account: row.account,
    ticket: row.ticket,
    reason: row.reason,
    outcome: row.outcome,
    detail,
    toolVersion: row.tool_version,
    host: row.host,
  };
}

/** The audit rows matching `q`, in batches (newest first unless q.order says otherwise). */
export async function* auditBatches(db: Database, tables: Tables, query: AuditQuery): AsyncGenerator<AuditRecord[]> {
  const desc = (query.order ?? 'newest-first') === 'newest-first';
  // Stored values had their control characters escaped (audit-write.ts): compare with the value as stored.
  const filter: AuditPageFilter = {
    ...query,
    actor: query.actor === undefined ? undefined : escapeControl(query.actor),
    ticket: query.ticket === undefined ? undefined : escapeControl(query.ticket),
  };
  const batchSize = query.batchSize ?? DEFAULT_BATCH;
  let remaining = query.limit ?? Infinity;
  let after: AuditPageQuery['after'];
  while (remaining > 0) {
    const size = Math.min(batchSize, remaining);
    const rows = await auditPage(db, tables, { ...filter, after, descending: desc, limit: size });
    if (rows.length === 0) return;
    const last = rows[rows.length - 1]!;
    after = { at: Number(last.at), id: Number(last.id) };
    remaining -= rows.length;
    yield rows.map(toRecord);
    if (rows.length < size) return;
  }
}
