/**
 * Renderers of audit rows: table (humans), csv, ndjson, json. Stored values are shown, never interpreted: control
 * characters are escaped in every format (table/csv as \n, \x1b…; JSON as \u escapes, so the data is unchanged)
 * and CSV cells cannot start a spreadsheet formula.
 */
import type { AuditRecord } from '../core/audit-read.js';
import { escapeControl } from '../text.js';
import { csvLine } from './csv.js';
import type { Output } from './output.js';
import { jsonRow } from './status-render.js';
import { formatTable, tableHeader } from './table.js';

export type AuditFormat = 'table' | 'json' | 'ndjson' | 'csv';

const TABLE_COLUMNS = ['TIME', 'ACTOR', 'ACTION', 'ACCOUNT', 'OUTCOME', 'TICKET', 'REASON', 'DETAIL'] as const;
const CSV_COLUMNS = [
  'id',
  'at',
  'actor',
  'action',
  'account',
  'ticket',
  'reason',
  'outcome',
  'detail',
  'tool_version',
  'host',
] as const;

/** `key=value` pairs for the table's last column. */
export function detailText(detail: AuditRecord['detail']): string {
  if (detail === null) return '';
  if (typeof detail === 'string') return detail;
  return Object.entries(detail)
    .filter(([, v]) => v !== null && v !== undefined)
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
}

function tableCells(record: AuditRecord): unknown[] {
  return [
    record.at,
    record.actor,
    record.action,
    record.account,
    record.outcome,
    record.ticket,
    record.reason,
    detailText(record.detail),
  ];
}

function csvCells(record: AuditRecord): unknown[] {
  const detail =
    record.detail === null ? null : typeof record.detail === 'string' ? record.detail : JSON.stringify(record.detail);
  return [
    record.id,
    record.at,
    record.actor,
    record.action,
    record.account,
    record.ticket,
    record.reason,
    record.outcome,
    detail,
    record.toolVersion,
    record.host,
  ].map((v) => (typeof v === 'string' ? escapeControl(v) : v));
}

export interface AuditRenderer {
  rows(rows: AuditRecord[]): Promise<void>;
  end(count: number): Promise<void>;
}

export function auditRenderer(format: AuditFormat, out: Output, order: string): AuditRenderer {
  const summary = (n: number) => `${n} audit row${n === 1 ? '' : 's'}, ${order.replace('-', ' ')}`;
  switch (format) {
    case 'ndjson':
      return {
        rows: (rows) => out.write(rows.map((r) => `${jsonRow(r)}\n`).join('')),
        end: async (n) => out.note(summary(n)),
      };
    case 'csv': {
      let begun = false;
      return {
        rows: async (rows) => {
          if (!begun) await out.write(csvLine(CSV_COLUMNS));
          begun = true;
          await out.write(rows.map((r) => csvLine(csvCells(r))).join(''));
        },
        end: async (count) => {
          if (!begun) await out.write(csvLine(CSV_COLUMNS));
          out.note(summary(count));
        },
      };
    }
    case 'json': {
      // Streamed, yet one JSON document: {"ok":true,"events":[…],"count":N}.
      let begun = false;
      return {
        rows: async (rows) => {
          const text = rows.map(jsonRow).join(',');
          await out.write(begun ? `,${text}` : `{"ok":true,"order":"${order}","events":[${text}`);
          begun = true;
        },
        end: (n) => out.write(`${begun ? '' : `{"ok":true,"order":"${order}","events":[`}],"count":${n}}\n`),
      };
    }
    case 'table': {
      let widths: number[] | undefined;
      return {
        rows: async (rows) => {
          const { text, widths: columnWidths } = formatTable(TABLE_COLUMNS, rows.map(tableCells), widths);
          if (!widths) await out.write(tableHeader(TABLE_COLUMNS, columnWidths));
          widths = columnWidths;
          await out.write(text);
        },
        end: async (count) => {
          if (!widths) await out.line('(no audit rows match)');
          out.note(summary(count));
        },
      };
    }
  }
}
