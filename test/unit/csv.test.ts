/** CSV cells: RFC 4180 quoting, spreadsheet formula injection neutralised, control characters escaped. */
import { describe, expect, it } from 'vitest';
import { csvCell, csvLine } from '../../src/ui/csv.js';
import { jsonRow } from '../../src/ui/status-render.js';

describe('csvCell', () => {
  it.each([
    ['=HYPERLINK("http://evil.example","x")@example.com', `"'=HYPERLINK(""http://evil.example"",""x"")@example.com"`],
    ['=1+2@example.com', "'=1+2@example.com"],
    ['+1@example.com', "'+1@example.com"],
    ['-2+3@example.com', "'-2+3@example.com"],
    ['@SUM(A1)', "'@SUM(A1)"],
    ['\t=1', "'\\t=1"],
    ['\r=1', "'\\r=1"],
    ['\uFF1D1+1@example.com', "'\uFF1D1+1@example.com"], // full-width equals sign
    ['+45 ****5678', "'+45 ****5678"], // a masked phone starts with +
  ])('neutralises %j', (value, cell) => {
    expect(csvCell(value)).toBe(cell);
  });

  it.each([
    ['jane@example.com', 'jane@example.com'],
    ['a=b@example.com', 'a=b@example.com'], // only a leading formula character matters
    ['with,comma', '"with,comma"'],
    ['with "quotes"', '"with ""quotes"""'],
    ['line\nbreak', 'line\\nbreak'], // escaped: one record stays one line
    ['esc\x1b[2Jape', 'esc\\x1b[2Jape'],
    ['\u202egnp.exe', '\\u202egnp.exe'],
    [null, ''],
    [undefined, ''],
    [true, 'true'],
    [10, '10'],
  ])('%j → %j', (value, cell) => {
    expect(csvCell(value)).toBe(cell);
  });

  it('lines end in CRLF', () => {
    expect(csvLine(['a', null, 3])).toBe('a,,3\r\n');
  });
});

describe('jsonRow', () => {
  it('is the same JSON value, with C1 controls, line separators and bidi overrides escaped', () => {
    const value = { email: 'a\u009b31mb\u2028c\u202ed\u007f\x1b@example.com' };
    const line = jsonRow(value);
    expect(JSON.parse(line)).toEqual(value);
    expect(line).not.toMatch(/[\u0000-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e]/);
    expect(line).toContain('\\u009b');
  });
});
