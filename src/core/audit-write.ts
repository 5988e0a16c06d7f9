/**
 * The audit trail: one row per state change and per refused attempt, written in the same
 * transaction as the change. Never a secret: callers pass only masked or non-secret details.
 */
import { hostname } from 'node:os';
import type { Knex } from 'knex';
import type { Tables } from '../db/schema.js';
import { VERSION } from '../version.js';
import { escapeControl } from '../text.js';

export type AuditOutcome = 'ok' | 'refused' | 'failed';

export interface AuditEvent {
  action: string;
  account: string | null;
  outcome: AuditOutcome;
  ticket?: string | null;
  reason?: string | null;
  /** Non-secret facts (method, masked phone, kind of code, …). */
  detail?: Record<string, string | number | boolean | null>;
}

export interface AuditWriter {
  actor: string;
  now(): number;
  /** The end user's side of a request made on their behalf (`serve`): recorded in every row's detail. */
  origin?: { ip?: string; userAgent?: string };
}

const HOST = hostname();

export async function writeAudit(
  db: Knex | Knex.Transaction,
  tables: Tables,
  writer: AuditWriter,
  event: AuditEvent,
): Promise<void> {
  await db(tables.audit).insert({
    at: writer.now(),
    actor: escapeControl(writer.actor).slice(0, 128),
    action: event.action,
    account: event.account,
    ticket: event.ticket ? escapeControl(event.ticket).slice(0, 64) : null,
    reason: event.reason ? escapeControl(event.reason).slice(0, 2000) : null,
    outcome: event.outcome,
    // Values are escaped too: a detail may echo input (an id, a masked value), and must not carry control characters.
    detail: detailJson(event.detail, writer.origin),
    tool_version: VERSION,
    host: HOST.slice(0, 255),
  });
}

function detailJson(detail: AuditEvent['detail'], origin: AuditWriter['origin']): string | null {
  const merged =
    origin?.ip || origin?.userAgent
      ? {
          ...detail,
          ...(origin.ip ? { ip: origin.ip } : {}),
          ...(origin.userAgent ? { userAgent: origin.userAgent.slice(0, 256) } : {}),
        }
      : detail;
  return merged ? JSON.stringify(merged, (_k, v: unknown) => (typeof v === 'string' ? escapeControl(v) : v)) : null;
}
