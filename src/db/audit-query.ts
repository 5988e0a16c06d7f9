/**
 * The audit trail's read query (`mail2fa audit`): one keyset-paginated page on (at, id), exact matches only
 * (utf8mb4_bin on MySQL): no LIKE, no case folding. The rules (canonical account, escaped actor/ticket, batch
 * sizes) are src/core/audit-read.ts's.
 */
import type { Knex } from 'knex';
import type { Database } from './connection.js';
import { mapDbError } from './connection.js';
import type { Tables } from './schema.js';

export interface AuditDbRow {
  id: number | string;
  at: number | string;
  actor: string;
  action: string;
  account: string | null;
  ticket: string | null;
  reason: string | null;
  outcome: string;
  detail: string | null;
  tool_version: string;
  host: string;
}

export interface AuditPageFilter {
  account?: string;
  action?: string;
  /** As stored (control characters escaped). */
  actor?: string;
  ticket?: string;
  outcome?: string;
  /** Epoch ms, inclusive. */
  since?: number;
  /** Epoch ms, exclusive. */
  until?: number;
}

export interface AuditPageQuery extends AuditPageFilter {
  /** The last row of the previous page. */
  after?: { at: number; id: number };
  descending: boolean;
  limit: number;
}

export async function auditPage(db: Database, tables: Tables, q: AuditPageQuery): Promise<AuditDbRow[]> {
  const dir = q.descending ? 'desc' : 'asc';
  const cmp = q.descending ? '<' : '>';
  const query = db
    .knex(tables.audit)
    .select('id', 'at', 'actor', 'action', 'account', 'ticket', 'reason', 'outcome', 'detail', 'tool_version', 'host');
  applyFilter(query, q);
  if (q.after) {
    const { at, id } = q.after;
    query.where((w) => w.where('at', cmp, at).orWhere((x) => x.where('at', at).andWhere('id', cmp, id)));
  }
  try {
    return (await query
      .orderBy([
        { column: 'at', order: dir },
        { column: 'id', order: dir },
      ])
      .limit(q.limit)) as AuditDbRow[];
  } catch (err) {
    throw mapDbError(err, db.displayUrl);
  }
}

function applyFilter(query: Knex.QueryBuilder, f: AuditPageFilter): void {
  if (f.account !== undefined) query.where('account', f.account);
  if (f.action !== undefined) query.where('action', f.action);
  if (f.actor !== undefined) query.where('actor', f.actor);
  if (f.ticket !== undefined) query.where('ticket', f.ticket);
  if (f.outcome !== undefined) query.where('outcome', f.outcome);
  if (f.since !== undefined) query.where('at', '>=', f.since);
  if (f.until !== undefined) query.where('at', '<', f.until);
}
