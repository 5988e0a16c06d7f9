/**
 * `mail2fa status` end to end, spawning the built binary (run `npm run build` first) against SQLite and MariaDB:
 * formats, lists from a file or stdin, filters, summary placement, CSV formula safety, escaping of hostile
 * input and database rows, bad addresses (each: a clear error or an honest "unknown", and nothing changed).
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { runCli, type CliResult, ndjsonRows } from '../helpers/cli.js';
import { Terminal } from '../helpers/terminal.js';
import { describeEachDb, useTestDb } from '../helpers/db.js';
import { addMailbox, testEnv } from '../helpers/context.js';
import { allTablesSnapshot } from '../helpers/db-snapshot.js';
import { seedFactors } from '../helpers/status-seed.js';

const ESC_OR_RAW_CONTROL = /[\u0000-\u0008\u000b-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e]/;

const ndjson = (text: string) => ndjsonRows<Record<string, unknown>>(text);

describeEachDb('status (built binary)', (kind) => {
  const scratch = useTestDb(kind);
  let env: Record<string, string | undefined>;
  let before: Record<string, unknown[]>;
  const run = (args: string[], input?: string): Promise<CliResult> => runCli(args, { env, input });

  beforeAll(async () => {
    for (const e of [
      'alice@example.com',
      'bob@example.com',
      'carol@example.com',
      'dave@example.org',
      'abc@example.com',
      '=cmd@example.com',
      '+plus@example.net',
      '-dash@example.net',
    ]) {
      await addMailbox(scratch.ctx, e, 'pw', { scheme: 'PLAIN' });
    }
    await addMailbox(scratch.ctx, 'erin@example.org', 'pw', { scheme: 'PLAIN', active: false });
    await seedFactors(scratch.ctx, Date.now(), [
      { account: 'bob@example.com', method: 'totp' },
      { account: 'carol@example.com', method: 'sms' },
      { account: 'dave@example.org', method: 'totp', locked: true, usedCodes: 2 },
    ]);
    // Rows no mail2fa command could create, but a mail system's table may hold: they must be shown escaped.
    const m = scratch.ctx.mapping;
    const knex = (await scratch.ctx.db()).knex;
    for (const raw of [
      '\x1b[2J\x1b[31mred@hostile.example',
      'two\nlines@hostile.example',
      '@SUM(1)@hostile.example',
      'rtl\u202efdp.exe@hostile.example',
      'c1\u009b31m@hostile.example',
    ]) {
      await knex(m.table).insert({
        [m.email]: raw,
        [m.password]: '{PLAIN}x',
        [m.active]: true,
        [m.domain]: 'hostile.example',
      });
    }
    env = { MAIL2FA_CONFIG: undefined, MAIL2FA_KEY_FILE: undefined, ...testEnv(scratch.tdb) };
    before = await allTablesSnapshot(knex, kind);
  });
  afterAll(async () => {
    // Nothing any of these runs did changed a row.
    if (scratch.ctx) expect(await allTablesSnapshot((await scratch.ctx.db()).knex, kind)).toEqual(before);
  });

  describe('formats', () => {
    it('table: header, one row per account, the summary line at the end of stdout', async () => {
      const r = await run(['status', '--domain', 'example.org']);
      expect(r.code).toBe(0);
      expect(r.stderr).toBe('');
      const lines = r.stdout.trimEnd().split('\n');
      expect(lines[0]).toMatch(
        /^email\s+state\s+active\s+enabled\s+method\s+phone\s+enrolled_at\s+last_used_at\s+recovery_codes_left\s+locked_until$/,
      );
      expect(lines.slice(1, 3).sort()).toEqual([
        expect.stringMatching(
          /^dave@example\.org\s+ok\s+true\s+true\s+totp\s+-\s+\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ\s+-\s+8\s+\d{4}-\d\d-\d\dT[\d:]+Z$/,
        ),
        expect.stringMatching(/^erin@example\.org\s+ok\s+false\s+false\s+-\s+-\s+-\s+-\s+-\s+-$/),
      ]);
      expect(lines[3]).toBe('2 accounts, 1 with 2FA (1 app, 0 SMS), 1 without');
      expect(lines).toHaveLength(4);
    });

    it('table with nothing to show says so', async () => {
      const r = await run(['status', '--domain', 'nowhere.example']);
      expect(r.code).toBe(0);
      expect(r.stdout).toBe('(no accounts)\n0 accounts, 0 with 2FA (0 app, 0 SMS), 0 without\n');
    });

    it('json (--format json and --json): one document with rows and the summary', async () => {
      for (const args of [
        ['status', '--all', '--format', 'json'],
        ['--json', 'status', '--all'],
        ['status', '--all', '--json', '--format', 'json'],
      ]) {
        const r = await run(args);
        expect(r.code).toBe(0);
        expect(r.stderr).toBe('');
        expect(r.stdout.trimEnd().includes('\n')).toBe(false);
        const doc = JSON.parse(r.stdout) as {
          ok: boolean;
          accounts: { email: string }[];
          summary: Record<string, unknown>;
        };
        expect(doc.ok).toBe(true);
        expect(doc.accounts).toHaveLength(14);
        expect(doc.summary).toEqual({
          accounts: 14,
          enabled: 3,
          disabled: 11,
          unknown: 0,
          invalid: 0,
          byMethod: { totp: 2, sms: 1, temporaryCode: 0 },
        });
        expect(r.stdout).not.toMatch(ESC_OR_RAW_CONTROL);
      }
    });

    it('ndjson: one object per line, the summary on stderr only', async () => {
      const r = await run(['status', '--all', '--format', 'ndjson']);
      expect(r.code).toBe(0);
      const rows = ndjson(r.stdout);
      expect(rows).toHaveLength(14);
      expect(rows.find((x) => x.email === 'carol@example.com')).toMatchObject({
        state: 'ok',
        enabled: true,
        method: 'sms',
        phone: '+45 ****3456',
        recoveryCodesLeft: 10,
      });
      expect(r.stderr).toBe('14 accounts, 3 with 2FA (2 app, 1 SMS), 11 without\n');
      expect(r.stdout).not.toMatch(ESC_OR_RAW_CONTROL);
      // The hostile rows keep their exact value in JSON (escaped, not altered).
      expect(rows.map((x) => x.email)).toEqual(
        expect.arrayContaining([
          '\x1b[2J\x1b[31mred@hostile.example',
          'two\nlines@hostile.example',
          'c1\u009b31m@hostile.example',
        ]),
      );
    });

    it('csv: header, CRLF records, the summary on stderr, formulas neutralised, controls escaped', async () => {
      const r = await run(['status', '--all', '--format', 'csv']);
      expect(r.code).toBe(0);
      expect(r.stderr).toBe('14 accounts, 3 with 2FA (2 app, 1 SMS), 11 without\n');
      const records = r.stdout.split('\r\n');
      expect(records.pop()).toBe('');
      expect(records[0]).toBe(
        'email,state,active,enabled,method,phone,enrolled_at,last_used_at,recovery_codes_left,locked_until,problem',
      );
      expect(records).toHaveLength(15); // one record per row: no cell split a line
      expect(r.stdout.replace(/\r\n/g, '')).not.toMatch(/[\r\n]/);
      expect(r.stdout.replace(/\r\n/g, '')).not.toMatch(ESC_OR_RAW_CONTROL);
      const firstCells = records.slice(1).map((l) => l.split(',')[0]!);
      // No cell starts with a formula character; the values stay recognisable.
      for (const cell of records.slice(1).flatMap((l) => l.split(','))) expect(cell).not.toMatch(/^[=+\-@\t\r]/);
      expect(firstCells).toEqual(
        expect.arrayContaining([
          "'=cmd@example.com",
          "'+plus@example.net",
          "'-dash@example.net",
          "'@SUM(1)@hostile.example",
          '\\x1b[2J\\x1b[31mred@hostile.example',
          'two\\nlines@hostile.example',
          'rtl\\u202efdp.exe@hostile.example',
        ]),
      );
      expect(records.find((l) => l.startsWith('carol@'))).toMatch(
        /^carol@example\.com,ok,true,true,sms,'\+45 \*\*\*\*3456,/,
      );
    });

    it('csv: input echoed in unknown and invalid rows is neutralised too', async () => {
      const r = await run([
        'status',
        '--format',
        'csv',
        '=HYPERLINK("http://x")@nowhere.example',
        '+1@nowhere.example',
        '=1+2',
        '@evil',
      ]);
      expect(r.code).toBe(0);
      const rows = r.stdout.split('\r\n').slice(1, -1);
      expect(rows).toEqual([
        `"'=HYPERLINK(""http://x"")@nowhere.example",unknown,,,,,,,,,`,
        "'+1@nowhere.example,unknown,,,,,,,,,",
        `'=1+2,invalid,,,,,,,,,"no ""@"""`,
        `'@evil,invalid,,,,,,,,,"nothing before ""@"""`,
      ]);
      expect(r.stderr).toBe('0 accounts, 0 with 2FA (0 app, 0 SMS), 0 without, 2 unknown, 2 invalid\n');
    });

    it('table: hostile database rows are shown escaped, never raw', async () => {
      const r = await run(['status', '--domain', 'hostile.example']);
      expect(r.code).toBe(0);
      expect(r.stdout).not.toMatch(ESC_OR_RAW_CONTROL);
      expect(r.stdout).toContain('\\x1b[2J\\x1b[31mred@hostile.example');
      expect(r.stdout).toContain('two\\nlines@hostile.example');
      expect(r.stdout.trimEnd().split('\n')).toHaveLength(1 + 5 + 1);
    });
  });

  describe('lists: arguments, --file F, --file -', () => {
    const list =
      '\uFEFF# staff, exported from the HR system\r\nbob@example.com\r\n\r\n   \r\nnobody@example.com\r\n# a comment\r\nalice@example.com\r\nnot an address\r\nbob@example.com\r\nBOB@example.com\r\ncarol@EXAMPLE.COM\r\n';
    const expected = [
      ['bob@example.com', 'ok'],
      ['nobody@example.com', 'unknown'],
      ['alice@example.com', 'ok'],
      ['not an address', 'invalid'],
      ['bob@example.com', 'ok'],
      ['BOB@example.com', 'unknown'],
      ['carol@example.com', 'ok'],
    ];

    it('--file: CRLF, BOM, blank and whitespace-only lines, #comments; order and duplicates kept; unknown per row, exit 0', async () => {
      const file = join(scratch.tdb.dir, 'staff.txt');
      writeFileSync(file, list);
      const r = await run(['status', '--file', file, '--format', 'ndjson']);
      expect(r.code).toBe(0);
      expect(ndjson(r.stdout).map((x) => [x.email, x.state])).toEqual(expected);
      expect(ndjson(r.stdout)[3]).toMatchObject({ problem: 'contains whitespace' });
      expect(r.stderr).toBe('4 accounts, 3 with 2FA (2 app, 1 SMS), 1 without, 2 unknown, 1 invalid\n');
    });

    it('--file -: the same list from stdin', async () => {
      const r = await run(['status', '--file', '-', '--format', 'ndjson'], list);
      expect(r.code).toBe(0);
      expect(ndjson(r.stdout).map((x) => [x.email, x.state])).toEqual(expected);
    });

    it('--file - with LF line ends and no final newline', async () => {
      const r = await run(['status', '--file', '-', '--json'], 'carol@example.com\nalice@example.com');
      expect(r.code).toBe(0);
      expect((JSON.parse(r.stdout) as { accounts: { email: string }[] }).accounts.map((a) => a.email)).toEqual([
        'carol@example.com',
        'alice@example.com',
      ]);
    });

    it('an empty list: no rows, exit 0', async () => {
      const r = await run(['status', '--file', '-', '--format', 'csv'], '# nothing\n\n');
      expect(r.code).toBe(0);
      expect(r.stdout).toBe(
        'email,state,active,enabled,method,phone,enrolled_at,last_used_at,recovery_codes_left,locked_until,problem\r\n',
      );
    });

    it('several addresses as arguments keep their order', async () => {
      const r = await run([
        'status',
        'carol@example.com',
        'nobody@example.com',
        'alice@example.com',
        '--format',
        'ndjson',
      ]);
      expect(r.code).toBe(0);
      expect(ndjson(r.stdout).map((x) => x.email)).toEqual([
        'carol@example.com',
        'nobody@example.com',
        'alice@example.com',
      ]);
    });

    it('a list longer than one lookup batch (1,200 lines) streams through in order', async () => {
      const lines = Array.from({ length: 1200 }, (_, i) => (i % 3 === 0 ? 'bob@example.com' : `u${i}@nowhere.example`));
      const r = await run(['status', '--file', '-', '--format', 'ndjson'], `${lines.join('\n')}\n`);
      expect(r.code).toBe(0);
      expect(ndjson(r.stdout).map((x) => x.email)).toEqual(lines);
      expect(r.stderr).toBe('400 accounts, 400 with 2FA (400 app, 0 SMS), 0 without, 800 unknown\n');
    });
  });

  describe('filters', () => {
    it('--enabled / --disabled filter the rows; the summary still counts every account looked at', async () => {
      const on = await run(['status', '--all', '--enabled', '--format', 'ndjson']);
      expect(on.code).toBe(0);
      expect(
        ndjson(on.stdout)
          .map((x) => x.email)
          .sort(),
      ).toEqual(['bob@example.com', 'carol@example.com', 'dave@example.org']);
      expect(on.stderr).toBe('14 accounts, 3 with 2FA (2 app, 1 SMS), 11 without; 3 shown (--enabled)\n');
      const off = await run(['status', '--domain', 'example.com', '--disabled', '--format', 'ndjson']);
      expect(
        ndjson(off.stdout)
          .map((x) => x.email)
          .sort(),
      ).toEqual(['=cmd@example.com', 'abc@example.com', 'alice@example.com']);
    });

    it('unknown and invalid rows pass neither filter', async () => {
      const r = await run([
        'status',
        '--disabled',
        '--format',
        'ndjson',
        'alice@example.com',
        'nobody@example.com',
        'bad',
      ]);
      expect(ndjson(r.stdout).map((x) => x.email)).toEqual(['alice@example.com']);
    });

    it('--domain is exact and canonical (upper case is folded, subdomains are not included)', async () => {
      const r = await run(['status', '--domain', 'EXAMPLE.NET', '--format', 'ndjson']);
      expect(
        ndjson(r.stdout)
          .map((x) => x.email)
          .sort(),
      ).toEqual(['+plus@example.net', '-dash@example.net']);
      expect(ndjson((await run(['status', '--domain', 'net', '--format', 'ndjson'])).stdout)).toEqual([]);
    });
  });

  describe('bad addresses: a clear error or an honest "unknown", nothing changed', () => {
    it.each([
      ['', 65, 'empty'],
      ['alice.example.com', 65, 'no "@"'],
      ['alice@example.com ', 65, 'leading or trailing whitespace'],
      [' alice@example.com', 65, 'leading or trailing whitespace'],
      ["alice@example.com' OR '1'='1", 65, 'contains whitespace'],
      ['\x1b[2J\x1b[31mevil@example.com', 65, 'contains control characters'],
      ['alice@example.com\nforged line', 65, 'contains control characters'],
      ['a_c@example.com', 67, 'unknown account: a_c@example.com'], // abc@example.com exists: not LIKE
      ['%@example.com', 67, 'unknown account: %@example.com'],
      ['al%@example.com', 67, 'unknown account: al%@example.com'],
      ["o'hara@example.com", 67, "unknown account: o'hara@example.com"],
      ["x';DROP/**/TABLE/**/mailbox;--@example.com", 67, 'unknown account'],
      ['"alice"@example.com', 67, 'unknown account'],
      ['ALICE@example.com', 67, 'unknown account: ALICE@example.com'],
    ])('%j → exit %i (%s)', async (address, code, message) => {
      const r = await run(['status', address]);
      expect(r.code).toBe(code);
      expect(r.stdout).toBe('');
      expect(r.stderr.split('\n')[0]).toContain(message);
      expect(r.stderr).not.toMatch(ESC_OR_RAW_CONTROL);
      expect(r.stderr.trimEnd().split('\n')).toHaveLength(2); // the error and its hint: no forged line
      const j = await run(['--json', 'status', address]);
      expect(j.code).toBe(code);
      expect(JSON.parse(j.stdout)).toMatchObject({
        ok: false,
        error: { code: code === 65 ? 'bad_address' : 'unknown_account' },
      });
    });

    it('escaped, not raw: an ESC sequence and a newline in the argument', async () => {
      const r = await run(['status', 'a\x1b]0;pwned\x07\nmail2fa: ok@example.com']);
      expect(r.code).toBe(65);
      expect(r.stderr).toContain('a\\x1b]0;pwned\\x07\\nmail2fa: ok@example.com');
    });

    it('the same bad addresses in one list: one row each, exit 0', async () => {
      const input = [
        'alice.example.com',
        'alice@example.com ',
        'a_c@example.com',
        "o'hara@example.com",
        '\x1b[31mx@example.com',
        'alice@example.com',
      ].join('\n');
      const r = await run(['status', '--file', '-', '--format', 'ndjson'], input);
      expect(r.code).toBe(0);
      expect(ndjson(r.stdout).map((x) => x.state)).toEqual([
        'invalid',
        'invalid',
        'unknown',
        'unknown',
        'invalid',
        'ok',
      ]);
      expect(ndjson(r.stdout)[4]!.email).toBe('\\x1b[31mx@example.com');
    });

    it('a 1 MB address through --file: one invalid row, its echo cut short, exit 0', async () => {
      const huge = `${'a'.repeat(1024 * 1024)}@example.com`;
      const file = join(scratch.tdb.dir, 'huge.txt');
      writeFileSync(file, `${huge}\nalice@example.com\n`);
      const r = await run(['status', '--file', file, '--format', 'ndjson']);
      expect(r.code).toBe(0);
      const rows = ndjson(r.stdout);
      expect(rows.map((x) => x.state)).toEqual(['invalid', 'ok']);
      expect(rows[0]).toMatchObject({ problem: 'longer than 320 characters' });
      expect((rows[0]!.email as string).length).toBeLessThan(400);
      expect(rows[0]!.email).toContain(`(${huge.length} chars)`);
      expect(r.stdout.length).toBeLessThan(2000);
    });

    it('a 1 MB argument: the OS refuses it (one argv string is limited to 128 KiB on Linux)…', async () => {
      await expect(runCli(['status', `${'a'.repeat(1024 * 1024)}@example.com`], { env })).rejects.toThrow(/E2BIG/);
    });

    it('…and the largest argument it allows is refused as too long, exit 65, in one short line', async () => {
      const big = `${'a'.repeat(128 * 1024 - 1 - '@example.com'.length)}@example.com`;
      const r = await run(['status', big]);
      expect(r.code).toBe(65);
      expect(r.stderr.split('\n')[0]).toMatch(/longer than 320 characters$/);
      expect(r.stderr.length).toBeLessThan(600);
    });
  });

  describe('colour', () => {
    it('never when stdout/stderr are not terminals, even with FORCE_COLOR and without NO_COLOR', async () => {
      const colourEnv = {
        ...env,
        NO_COLOR: undefined,
        FORCE_COLOR: '3',
        TERM: 'xterm-256color',
        COLORTERM: 'truecolor',
      };
      const table = await runCli(['status', '--all'], { env: colourEnv });
      expect(table.code).toBe(0);
      expect(table.stdout).not.toContain('\x1b');
      const error = await runCli(['status', 'nobody@example.com'], { env: colourEnv });
      expect(error.code).toBe(67);
      expect(error.stderr).not.toContain('\x1b');
      const usage = await runCli(['status', '--bogus'], { env: colourEnv });
      expect(usage.stderr).not.toContain('\x1b');
    });
  });
});

describe('status --file - on a terminal', () => {
  it('refuses to wait for typed input: exit 64 naming how to pipe the list', async () => {
    const term = new Terminal(
      ['status', '--file', '-'],
      { MAIL2FA_DB_URL: 'mysql://root@127.0.0.1:1/never', NO_COLOR: '1' },
      { cols: 120, rows: 20 },
    );
    const code = await term.exitCode();
    const screen = term.output;
    expect(code).toBe(64);
    expect(screen).toContain('stdin is a terminal');
    expect(screen).toContain('cat list.txt | mail2fa status --file -');
  });
});
