/**
 * jsonRows (status ndjson/json output, one JSON.stringify per batch) must print exactly what one jsonRow per
 * row printed: same bytes, whatever the values hold.
 */
import { describe, expect, it } from 'vitest';
import { jsonRow, jsonRows } from '../../src/ui/status-render.js';

const row = (email: string, extra: Record<string, unknown> = {}) => ({
  email,
  state: 'ok',
  active: true,
  enabled: false,
  method: null,
  phone: null,
  recoveryCodesLeft: null,
  temporaryCode: null,
  ...extra,
});

describe('jsonRows', () => {
  const cases: Array<[string, unknown[]]> = [
    [
      'plain rows',
      [row('a@example.com'), row('b@example.com', { enabled: true, method: 'totp', recoveryCodesLeft: 7 })],
    ],
    ['one row', [row('solo@example.com')]],
    ['a value holding the element separator', [row('x},{y@example.com'), row('b@example.com'), row('c@example.com')]],
    [
      'a value ending in the separator before its closing quote',
      [row('a@example.com', { phone: '+45 },{' }), row('b@example.com')],
    ],
    [
      'nested objects',
      [
        row('a@example.com', { temporaryCode: { state: 'pending', expiresAt: '2026-01-01T00:00:00Z' } }),
        row('b@example.com', { temporaryCode: {} }),
      ],
    ],
    [
      'control, C1, line-separator and bidi characters',
      [
        row('a\u0085b@example.com'),
        row('c\u2028d\u202e@example.com', { phone: '\u007f\u2066' }),
        row('"q\\"@example.com'),
      ],
    ],
    ['non-ASCII and lone surrogates', [row('jörg@exämple.com'), row('\ud800x@example.com')]],
  ];
  for (const [name, rows] of cases) {
    it(`equals rows.map(jsonRow).join() for ${name}`, () => {
      for (const sep of ['\n', ',']) expect(jsonRows(rows, sep)).toBe(rows.map(jsonRow).join(sep));
    });
  }

  it('escapes what jsonRow escapes', () => {
    const text = jsonRows([row('a\u0085@example.com'), row('b\u2028@example.com')], '\n');
    expect(text).toContain('a\\u0085@');
    expect(text).toContain('b\\u2028@');
    expect(text.split('\n')).toHaveLength(2);
  });

  it('is empty for no rows', () => {
    expect(jsonRows([], '\n')).toBe('');
  });
});
