/**
 * jsonRows (status ndjson/json output, written from a template of the row's shape) must print exactly what one
 * jsonRow (JSON.stringify) per row printed: same bytes, whatever the values hold.
 */
import { describe, expect, it } from 'vitest';
import { addForeignStores, emptyRow, toStatusRow, type StatusRow } from '../../src/core/status.js';
import type { StatusDbRow } from '../../src/db/status-query.js';
import type { ForeignStore, StoreAccountStatus } from '../../src/stores/types.js';
import { jsonRow, jsonRows } from '../../src/ui/status-render.js';

const NOW = Date.UTC(2026, 0, 15, 9, 30, 0);
const row = (email: string, extra: Partial<StatusDbRow> = {}): StatusRow =>
  toStatusRow(
    {
      email,
      domain: email.split('@')[1] ?? '',
      active: 1,
      method: null,
      phone_masked: null,
      enrolled_at: null,
      last_used_at: null,
      locked_until: null,
      codes_left: null,
      temp_expires_at: null,
      temp_used_at: null,
      ...extra,
    },
    NOW,
  );
const totp = { method: 'totp', enrolled_at: NOW - 86_400_000, last_used_at: NOW - 60_000, codes_left: 7 };

describe('jsonRows', () => {
  const cases: Array<[string, StatusRow[]]> = [
    ['plain rows', [row('a@example.com'), row('b@example.com', totp)]],
    ['one row', [row('solo@example.com')]],
    [
      'every kind of own status',
      [
        row('sms@example.com', { ...totp, method: 'sms', phone_masked: '+45 ****5678', codes_left: '3' }),
        row('inactive@example.com', { ...totp, active: 0 }),
        row('locked@example.com', { locked_until: NOW + 60_000 }),
        row('lock-over@example.com', { locked_until: NOW - 60_000 }),
        row('pending@example.com', { temp_expires_at: NOW + 3_600_000 }),
        row('used@example.com', { temp_expires_at: NOW - 1, temp_used_at: NOW - 10 }),
        row('expired@example.com', { ...totp, temp_expires_at: NOW - 1 }),
        row('odd-method@example.com', { method: 'webauthn', codes_left: null }),
        row('string-dates@example.com', { ...totp, enrolled_at: String(NOW), last_used_at: '1700000000000' }),
      ],
    ],
    [
      'unknown, invalid and ambiguous rows',
      [
        emptyRow('nobody@example.com', 'unknown'),
        emptyRow('not an address', 'invalid', 'no @ in "not an address"'),
        emptyRow('twice@example.com', 'ambiguous', '2 mailbox rows have this address'),
      ],
    ],
    ['a value holding the element separator', [row('x},{y@example.com'), row('b@example.com'), row('c@example.com')]],
    [
      'a value ending in the separator before its closing quote',
      [row('a@example.com', { method: 'sms', phone_masked: '+45 },{' }), row('b@example.com')],
    ],
    [
      'control, C1, line-separator and bidi characters',
      [
        row('a\u0085b@example.com'),
        row('c\u2028d\u202e@example.com', { method: 'sms', phone_masked: '\u007f\u2066' }),
        row('"q\\"@example.com'),
        row('tab\there@example.com'),
        emptyRow('\u0000\u001b[31m', 'invalid', 'control \u0007 characters'),
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

  it('rows with foreign stores (not frozen) are written by jsonRow, own rows beside them by the template', async () => {
    const foreign: StoreAccountStatus = {
      store: 'pfa',
      kind: 'postfixadmin',
      activated: true,
      enforced: false,
      notEnforced: ['the mailbox is inactive: nobody signs in to it'],
      factors: [{ kind: 'totp', active: true, weak: true, ref: 'mailbox.username=a@example.com' }],
      details: { note: 'x},{y' },
    };
    const store = {
      name: 'pfa',
      kind: 'postfixadmin',
      statusBatch: async (emails: string[]) =>
        new Map(emails.filter((e) => e.startsWith('a')).map((e) => [e, { ...foreign }])),
    } as unknown as ForeignStore;
    const rows = await addForeignStores([row('a@example.com', totp), row('b@example.com', totp)], [store]);
    expect(rows[0]!.stores).toHaveLength(2);
    for (const sep of ['\n', ',']) expect(jsonRows(rows, sep)).toBe(rows.map(jsonRow).join(sep));
  });

  it('foreign store entries of any shape and content (escapes, undefined members, several stores) print as jsonRow', async () => {
    const odd = (email: string, i: number): StoreAccountStatus => ({
      store: i % 2 ? 'rc\u2028"x"' : 'sogo',
      kind: 'roundcube',
      activated: i % 3 !== 0,
      enforced: i % 4 === 0,
      notEnforced: i % 5 === 0 ? undefined : [`bidi \u202e, C1 \u0085, DEL \u007f, tab \t, ${email}`],
      factors: i % 2 ? [] : [{ kind: 'totp', active: true, label: 'ü✓\u0000', ref: `users.user_id=${i}` }],
      ...(i % 3 === 1 ? { problems: ['a "quoted" \\ problem'] } : {}),
      details: { rows: [{ userId: i, n: i / 3, none: null, gone: undefined, nested: { deep: ['\u2029'] } }] },
    });
    const stores = [0, 1].map(
      (k) =>
        ({
          name: `s${k}`,
          kind: 'roundcube',
          statusBatch: async (emails: string[]) =>
            new Map(emails.filter((_, i) => (i + k) % 3 !== 0).map((e, i) => [e, odd(e, i + k)])),
        }) as unknown as ForeignStore,
    );
    const emails = Array.from({ length: 30 }, (_, i) => `u${i}\u0085@example.com`);
    const rows = await addForeignStores(
      emails.map((e, i) => row(e, i % 2 ? totp : undefined)),
      stores,
    );
    expect(rows.some((r) => r.stores.length >= 2 && r.stores.every((s) => s.kind !== 'mail2fa'))).toBe(true);
    expect(rows.some((r) => r.stores.length === 3)).toBe(true);
    for (const sep of ['\n', ',']) expect(jsonRows(rows, sep)).toBe(rows.map(jsonRow).join(sep));
  });

  it('is empty for no rows', () => {
    expect(jsonRows([], '\n')).toBe('');
  });
});
