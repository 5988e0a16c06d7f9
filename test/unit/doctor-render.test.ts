/** `doctor` for humans: one aligned line per check, continuation lines, hints on anything not ok, the total. */
import { describe, expect, it } from 'vitest';
import type { Check } from '../../src/core/doctor.js';
import { doctorDocument, doctorText } from '../../src/ui/doctor-render.js';

const checks: Check[] = [
  { name: 'config', status: 'ok', detail: 'no config file; defaults and environment', hint: 'never shown when ok' },
  {
    name: 'database',
    status: 'fail',
    detail: 'cannot connect\nECONNREFUSED 127.0.0.1:3306',
    hint: 'Start it',
    exitCode: 69,
  },
  { name: 'schema', status: 'skip', detail: 'not checked: the database is unavailable' },
  { name: 'sign-out action', status: 'warn', detail: 'none configured', hint: 'Set signOut.action' },
];

describe('doctorText', () => {
  it('pins every line: marks, names padded, detail lines continued under the detail, hints for non-ok checks', () => {
    expect(doctorText(checks)).toBe(
      [
        'ok    config            no config file; defaults and environment',
        'FAIL  database          cannot connect',
        '                        ECONNREFUSED 127.0.0.1:3306',
        '                        hint: Start it',
        'skip  schema            not checked: the database is unavailable',
        'warn  sign-out action   none configured',
        '                        hint: Set signOut.action',
        '1 check(s) failed, 1 warning(s)',
        '',
      ].join('\n'),
    );
  });

  it('totals without failures: all passed, with or without warnings', () => {
    expect(doctorText([checks[0]!])).toBe(
      'ok    config            no config file; defaults and environment\nall checks passed\n',
    );
    expect(doctorText([checks[0]!, checks[3]!]).split('\n').at(-2)).toBe('all checks passed, 1 warning(s)');
  });

  it('escapes control characters in details and hints (an escape sequence or a CR cannot repaint the screen)', () => {
    const text = doctorText([
      { name: 'key', status: 'fail', detail: 'file \u001b[2J/etc/key\rOK', hint: 'look at \u202e/etc', exitCode: 78 },
    ]);
    expect(text).toBe(
      'FAIL  key               file \\x1b[2J/etc/key\\rOK\n                        hint: look at \\u202e/etc\n1 check(s) failed, 0 warning(s)\n',
    );
    for (const control of ['\u001b', '\r', '\u202e']) expect(text).not.toContain(control);
  });

  it("breaks lines only at the detail's own line breaks: a value the check escaped stays on its line", () => {
    const text = doctorText([
      {
        name: 'status summary',
        status: 'fail',
        detail: '2 account(s) out of step:\nevil\\x1b[2J\\n@example.com: codes_left\nraw\u001b',
        exitCode: 78,
      },
    ]);
    expect(text.split('\n').slice(0, 4)).toEqual([
      'FAIL  status summary    2 account(s) out of step:',
      '                        evil\\x1b[2J\\n@example.com: codes_left',
      '                        raw\\x1b',
      '1 check(s) failed, 0 warning(s)',
    ]);
  });
});

describe('doctorDocument', () => {
  it('ok follows the exit code; the checks are passed through as they are (JSON escapes them)', () => {
    expect(doctorDocument(checks, 69)).toEqual({ ok: false, exitCode: 69, checks });
    expect(Object.keys(doctorDocument([], 0))).toEqual(['ok', 'exitCode', 'checks']);
    expect(doctorDocument([], 0).ok).toBe(true);
  });
});
