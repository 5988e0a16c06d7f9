/** Renderers of `status` rows: table (humans), csv, ndjson, json. One result shape, several views. */
import type { StatusRow, StatusSummary } from '../core/status.js';
import { csvLine } from './csv.js';
import type { Output } from './output.js';
import { formatTable, tableHeader } from './table.js';

export type StatusFormat = 'table' | 'json' | 'ndjson' | 'csv';

const COLUMNS = [
  'email',
  'state',
  'active',
  'enabled',
  'method',
  'phone',
  'enrolled_at',
  'last_used_at',
  'recovery_codes_left',
  'locked_until',
] as const;
/** CSV carries why a row is invalid/ambiguous in a last column; the table shows it in the state column. */
const CSV_COLUMNS = [...COLUMNS, 'problem'] as const;

/** The method, and where it lives when that is not (only) mail2fa's own store: "totp (postfixadmin, weak)". */
function methodCell(row: StatusRow): string | null {
  const method = row.method ?? (row.temporaryCode ? `temporary code (${row.temporaryCode.state})` : null);
  if (!method) return null;
  const foreign = row.stores.filter((s) => s.kind !== 'mail2fa' && s.activated);
  if (foreign.length === 0) return method;
  const where = row.stores
    .filter((s) => s.activated)
    .map((store) => {
      const notes = [
        store.factors.some((f) => f.weak) ? 'weak' : null,
        store.enforced ? null : 'not enforced',
        store.problems?.length ? 'unparsable' : null,
      ].filter(Boolean);
      return notes.length ? `${store.store}: ${notes.join(', ')}` : store.store;
    });
  return `${method} (${where.join('; ')})`;
}

function cells(row: StatusRow): unknown[] {
  return [
    row.email,
    row.state,
    row.active,
    row.enabled,
    methodCell(row),
    row.phone,
    row.enrolledAt,
    row.lastUsedAt,
    row.recoveryCodesLeft,
    row.lockedUntil,
  ];
}

function tableCells(row: StatusRow): unknown[] {
  const rowCells = cells(row);
  if (row.problem) rowCells[1] = `${row.state}: ${row.problem}`;
  return rowCells;
}

// JSON.stringify leaves DEL, C1 controls, U+2028/2029 and bidi overrides raw; escaped, the document is the same
// JSON but cannot act on a terminal that shows it (mailbox rows come from the database as they are).

const JSON_UNSAFE = /[\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/gu;

/** A row as one line of JSON, with every control character escaped. */
export function jsonRow(value: unknown): string {
  return JSON.stringify(value).replace(JSON_UNSAFE, (c) => `\\u${c.codePointAt(0)!.toString(16).padStart(4, '0')}`);
}

/**
 * Rows as JSON joined by `separator`: exactly `rows.map(jsonRow).join(separator)`. Status rows are written by
 * statusRowJson, a template of the row's fixed shape (several times faster than JSON.stringify of the nested
 * objects at a million rows); a foreign store's entry in a row goes through jsonRow.
 */
export function jsonRows(rows: readonly StatusRow[], separator: string): string {
  let text = '';
  for (let i = 0; i < rows.length; i++) {
    if (i > 0) text += separator;
    text += statusRowJson(rows[i]!);
  }
  return text;
}

/** Printable ASCII without `"` and `\\`: such a string is its own JSON body. */
const PLAIN = /^[\x20\x21\x23-\x5b\x5d-\x7e]*$/;

function jsonString(value: string | null): string {
  if (value === null) return 'null';
  return PLAIN.test(value) ? `"${value}"` : jsonRow(value);
}

function jsonNumber(value: number | null): string {
  return value === null || !Number.isFinite(value) ? 'null' : String(value);
}

/** JSON of frozen (hence unchanging) values, such as mail2fa's own store status shared by many rows. */
const FROZEN_JSON = new WeakMap<object, string>();

function frozenJson(value: object): string | null {
  if (!Object.isFrozen(value)) return null;
  let text = FROZEN_JSON.get(value);
  if (text === undefined) {
    text = jsonRow(value);
    FROZEN_JSON.set(value, text);
  }
  return text;
}

/**
 * One status row as jsonRow(row) would write it, from a template of StatusRow's keys in the order toStatusRow and
 * emptyRow create them. Frozen store entries (mail2fa's own) come from a cache; a foreign store's entry (any
 * shape, store-specific details) goes through jsonRow on its own, not the whole row.
 */
export function statusRowJson(r: StatusRow): string {
  let stores = '[';
  for (let i = 0; i < r.stores.length; i++) {
    // JSON.stringify writes an array's objects one after the other, each as it would alone, and jsonRow's escaping
    // works character by character: each store's JSON joined is what jsonRow(r) writes for the list.
    const store = r.stores[i]!;
    stores += (i > 0 ? ',' : '') + (frozenJson(store) ?? jsonRow(store));
  }
  stores += ']';
  let sources = '[';
  for (let i = 0; i < r.sources.length; i++) sources += (i > 0 ? ',' : '') + jsonString(r.sources[i]!);
  sources += ']';
  const temporary = r.temporaryCode
    ? `{"state":${jsonString(r.temporaryCode.state)},"expiresAt":${jsonString(r.temporaryCode.expiresAt)}}`
    : 'null';
  return (
    `{"email":${jsonString(r.email)},"state":${jsonString(r.state)},"active":${String(r.active)},` +
    `"enabled":${String(r.enabled)},"enforced":${String(r.enforced)},"method":${jsonString(r.method)},` +
    `"source":${jsonString(r.source)},"sources":${sources},"stores":${stores},"phone":${jsonString(r.phone)},` +
    `"enrolledAt":${jsonString(r.enrolledAt)},"lastUsedAt":${jsonString(r.lastUsedAt)},` +
    `"recoveryCodesLeft":${jsonNumber(r.recoveryCodesLeft)},"lockedUntil":${jsonString(r.lockedUntil)},` +
    `"temporaryCode":${temporary}${r.problem === undefined ? '' : `,"problem":${jsonString(r.problem)}`}}`
  );
}

export interface StatusRenderer {
  begin(): Promise<void>;
  rows(rows: StatusRow[]): Promise<void>;
  end(summary: StatusSummary): Promise<void>;
}

export function summaryLine(summary: StatusSummary): string {
  const parts = [
    `${summary.accounts} account${summary.accounts === 1 ? '' : 's'}`,
    `${summary.enabled} with 2FA (${summary.byMethod.totp} app, ${summary.byMethod.sms} SMS${summary.byMethod.temporaryCode ? `, ${summary.byMethod.temporaryCode} temporary code${summary.byMethod.temporaryCode === 1 ? '' : 's'}` : ''})`,
    `${summary.disabled} without`,
  ];
  if (summary.unknown) parts.push(`${summary.unknown} unknown`);
  if (summary.invalid) parts.push(`${summary.invalid} invalid`);
  return `${parts.join(', ')}${summary.filter ? `; ${summary.shown ?? 0} shown (--${summary.filter})` : ''}`;
}

export function statusRenderer(format: StatusFormat, out: Output): StatusRenderer {
  switch (format) {
    case 'ndjson':
      return {
        begin: async () => {},
        rows: (rows) => out.write(`${jsonRows(rows, '\n')}\n`),
        end: async (s) => out.note(summaryLine(s)),
      };
    case 'csv':
      return {
        begin: () => out.write(csvLine(CSV_COLUMNS)),
        rows: (rows) => out.write(rows.map((r) => csvLine([...cells(r), r.problem])).join('')),
        end: async (s) => out.note(summaryLine(s)),
      };
    case 'json': {
      // Streamed, yet one JSON document: {"ok":true,"accounts":[…],"summary":{…}}.
      let first = true;
      return {
        begin: () => out.write('{"ok":true,"accounts":['),
        rows: (rows) => {
          const text = jsonRows(rows, ',');
          const chunk = first ? text : `,${text}`;
          first = false;
          return out.write(chunk);
        },
        end: (s) => out.write(`],"summary":${JSON.stringify(s)}}\n`),
      };
    }
    case 'table': {
      let widths: number[] | undefined;
      return {
        begin: async () => {},
        rows: async (rows) => {
          const { text, widths: columnWidths } = formatTable(COLUMNS, rows.map(tableCells), widths);
          if (!widths) await out.write(tableHeader(COLUMNS, columnWidths));
          widths = columnWidths;
          await out.write(text);
        },
        end: async (summary) => {
          if (!widths) await out.line('(no accounts)');
          await out.line(summaryLine(summary));
        },
      };
    }
  }
}
