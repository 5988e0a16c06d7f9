/**
 * CSV (RFC 4180, CRLF line ends) that is safe to open in a spreadsheet: a cell that starts with = + - @ TAB or
 * CR (or their full-width forms, which some spreadsheets fold to ASCII) is prefixed with an apostrophe so it is
 * never evaluated as a formula (OWASP "CSV injection"). Control characters are escaped (\x1b, \n …) as in the
 * table view, so a value can neither repaint a terminal that shows the file nor split a record.
 */
import { escapeControl } from '../text.js';

const FORMULA_START = /^[=+\-@\t\r\uFF1D\uFF0B\uFF0D\uFF20]/u;

export function csvCell(value: unknown): string {
  if (value === null || value === undefined) return '';
  let text = typeof value === 'string' ? value : String(value);
  if (FORMULA_START.test(text)) text = `'${text}`;
  text = escapeControl(text);
  return /[",]/.test(text) ? `"${text.replace(/"/g, '""')}"` : text;
}

export function csvLine(values: readonly unknown[]): string {
  return `${values.map(csvCell).join(',')}\r\n`;
}
