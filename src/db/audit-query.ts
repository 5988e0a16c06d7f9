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

export async function auditPage(db: Database, tables: Tables, page: AuditPageQuery): Promise<AuditDbRow[]> {
  const dir = page.descending ? 'desc' : 'asc';
  const cmp = page.descending ? '<' : '>';
  const query = db
    .knex(tables.audit)
    .select('id', 'at', 'actor', 'action', 'account', 'ticket', 'reason', 'outcome', 'detail', 'tool_version', 'host');
  applyFilter(query, page);
  if (page.after) {
    const { at, id } = page.after;
    query.where((w) => w.where('at', cmp, at).orWhere((x) => x.where('at', at).andWhere('id', cmp, id)));
  }
  try {
    return (await query
      .orderBy([
        { column: 'at', order: dir },
        { column: 'id', order: dir },
      ])
      .limit(page.limit)) as AuditDbRow[];
  } catch (err) {
    throw mapDbError(err, db.displayUrl);
  }
}

function applyFilter(query: Knex.QueryBuilder, filter: AuditPageFilter): void {
  if (filter.account !== undefined) query.where('account', filter.account);
  if (filter.action !== undefined) query.where('action', filter.action);
  if (filter.actor !== undefined) query.where('actor', filter.actor);
  if (filter.ticket !== undefined) query.where('ticket', filter.ticket);
  if (filter.outcome !== undefined) query.where('outcome', filter.outcome);
  if (filter.since !== undefined) query.where('at', '>=', filter.since);
  if (filter.until !== undefined) query.where('at', '<', filter.until);
}
