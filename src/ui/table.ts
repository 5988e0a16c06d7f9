/** Plain aligned columns for humans; values are escaped so no cell can move the cursor or forge a line. */
import { escapeControl } from '../text.js';

export function formatTable(
  header: readonly string[],
  rows: readonly (readonly unknown[])[],
  widths?: number[],
): { text: string; widths: number[] } {
  const cells = rows.map((r) =>
    r.map((v) => (v === null || v === undefined || v === '' ? '-' : escapeControl(String(v)))),
  );
  const columnWidths =
    widths ?? header.map((h, i) => Math.min(60, Math.max(h.length, ...cells.map((r) => r[i]!.length))));
  const line = (row: readonly string[]) =>
    row
      .map((c, i) => (i === row.length - 1 ? c : c.padEnd(columnWidths[i]!)))
      .join('  ')
      .trimEnd();
  return { text: cells.map(line).join('\n') + (cells.length ? '\n' : ''), widths: columnWidths };
}

export function tableHeader(header: readonly string[], widths: number[]): string {
  return `${header.map((h, i) => (i === header.length - 1 ? h : h.padEnd(widths[i]!))).join('  ')}\n`;
}
