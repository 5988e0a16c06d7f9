/** `mail2fa audit` through the BUILT binary: formats, filters, escaping of stored control characters, CSV safety. */
import { beforeAll, expect, it } from 'vitest';
import { writeAudit } from '../../src/core/audit-write.js';
import { VERSION } from '../../src/version.js';
import { runCli, ndjsonRows } from '../helpers/cli.js';
import { describeEachDb, useTestDb } from '../helpers/db.js';
import { addMailbox, testEnv } from '../helpers/context.js';
import { enableTotp } from '../core/recover-support.js';

// Any raw control character other than the line breaks of the format itself.

const RAW_CONTROL = /[\u0000-\u0009\u000b-\u000c\u000e-\u001f\u007f-\u009f\u2028\u2029\u202a-\u202e\u2066-\u2069]/u;
const NASTY = 'line one\nFORGED 2026-01-01 root recover ok\r\u001b[2J\u001b[31mred\u009b1m\u2028\u202eevil';

describeEachDb('cli audit', (kind) => {
  const scratch = useTestDb(kind);
  let code = '';
  const cli = (args: string[]) => runCli(args, { env: { ...testEnv(scratch.tdb), MAIL2FA_CONFIG: undefined } });

  beforeAll(async () => {
    const db = await scratch.ctx.db();
    await addMailbox(scratch.ctx, 'jane@example.com');
    await addMailbox(scratch.ctx, 'joe@example.com');
    await enableTotp(scratch.ctx, 'jane@example.com');
    await enableTotp(scratch.ctx, 'joe@example.com');
    // Through the real command: a reason with a newline and ESC sequences, and a formula-looking actor.
    const r1 = await cli([
      '--yes',
      '--actor',
      '=HYPERLINK("http://x")',
      'recover',
      'jane@example.com',
      '--ticket',
      'T-3001',
      '--reason',
      `lost phone\n\u001b[2Jcleared`,
    ]);
    expect(r1.code, r1.stderr).toBe(0);
    const r2 = await cli([
      '--json',
      '--yes',
      '--actor',
      'agent-dora',
      'recover',
      'joe@example.com',
      '--ticket',
      'T-3002',
      '--reason',
      'new phone',
      '--temporary-code',
    ]);
    expect(r2.code, r2.stderr).toBe(0);
    code = JSON.parse(r2.stdout).temporaryCode.code;
    // A row as another writer (or an old version) might have stored it: raw control characters, not escaped.
    await db.knex(scratch.ctx.tables.audit).insert({
      at: Date.now() - 3 * 86_400_000,
      actor: `mallory${NASTY}`,
      action: 'verify',
      account: 'joe@example.com',
      ticket: '@SUM(A1)',
      reason: NASTY,
      outcome: 'refused',
      detail: JSON.stringify({ note: NASTY }),
      tool_version: VERSION,
      host: 'h',
    });
    await writeAudit(
      db.knex,
      scratch.ctx.tables,
      { actor: 'old-agent', now: () => Date.UTC(2020, 0, 1) },
      { action: 'recover', account: 'jane@example.com', outcome: 'ok', ticket: 'T-1', reason: 'long ago' },
    );
  });

  it('--help shows examples and the exit codes', async () => {
    const r = await cli(['audit', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Examples:');
    expect(r.stdout).toContain('--since <when>');
    expect(r.stdout).toContain('--actor <name>');
    expect(r.stdout).toMatch(/64 +bad flag values/);
  });

  it('prints a table, newest first, escaping control characters', async () => {
    const r = await cli(['audit']);
    expect(r.code, r.stderr).toBe(0);
    const lines = r.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^TIME +ACTOR +ACTION +ACCOUNT +OUTCOME +TICKET +REASON +DETAIL$/);
    // Each stored row is exactly one line: no forged lines.
    expect(lines.length).toBe(1 + Number(r.stderr.match(/(\d+) audit rows/)![1]));
    expect(r.stdout).not.toMatch(RAW_CONTROL);
    expect(r.stdout).not.toMatch(/^FORGED/m);
    expect(r.stdout).toContain('lost phone\\n\\x1b[2Jcleared');
    expect(r.stdout).toContain('\\x1b[31mred\\x9b1m\\u2028\\u202eevil');
    expect(lines[1]).toContain('joe@example.com');
    expect(lines.at(-1)).toContain('long ago');
    expect(r.stdout).not.toContain(code);
  });

  it('--oldest-first, --limit, filters', { timeout: 120_000 }, async () => {
    const oldest = await cli(['audit', '--oldest-first', '--limit', '1', '--format', 'ndjson']);
    expect(JSON.parse(oldest.stdout)).toMatchObject({ reason: 'long ago', actor: 'old-agent' });
    const since = await cli(['audit', '--since', '2d', '--action', 'recover', '--format', 'ndjson']);
    expect(ndjsonRows<{ ticket: string }>(since.stdout).map((x) => x.ticket)).toEqual(['T-3002', 'T-3001']);
    const byActor = await cli(['audit', '--actor', 'agent-dora', '--format', 'ndjson']);
    expect(ndjsonRows(byActor.stdout)).toMatchObject([
      { actor: 'agent-dora', action: 'recover', ticket: 'T-3002', reason: 'new phone' },
    ]);
    const byTicket = await cli(['--json', 'audit', '--ticket', 'T-3001']);
    expect(JSON.parse(byTicket.stdout)).toMatchObject({
      ok: true,
      count: 1,
      events: [{ account: 'jane@example.com', outcome: 'ok' }],
    });
    const byAccount = await cli(['--json', 'audit', '--account', 'jane@EXAMPLE.com', '--until', '2021-01-01']);
    expect(JSON.parse(byAccount.stdout).events).toMatchObject([{ reason: 'long ago' }]);
    const refused = await cli(['--json', 'audit', '--outcome', 'refused']);
    expect(JSON.parse(refused.stdout).events.map((e: { action: string }) => e.action)).toEqual(['verify']);
    const none = await cli(['audit', '--account', 'nobody@example.com']);
    expect(none.code).toBe(0);
    expect(none.stdout).toContain('(no audit rows match)');
  });

  it('JSON and NDJSON keep the stored values but escape every control character', async () => {
    const json = await cli(['--json', 'audit', '--action', 'verify']);
    expect(json.code).toBe(0);
    expect(json.stdout).not.toMatch(RAW_CONTROL);
    expect(json.stdout.trim().split('\n')).toHaveLength(1);
    const doc = JSON.parse(json.stdout);
    expect(doc.events[0]).toMatchObject({
      reason: NASTY,
      actor: `mallory${NASTY}`,
      detail: { note: NASTY },
      ticket: '@SUM(A1)',
    });
    const nd = await cli(['audit', '--action', 'verify', '--format', 'ndjson']);
    expect(nd.stdout).not.toMatch(RAW_CONTROL);
    expect(nd.stdout.trim().split('\n')).toHaveLength(1);
    expect(JSON.parse(nd.stdout).reason).toBe(NASTY);
  });

  it('CSV is formula-safe and one line per row', async () => {
    const r = await cli(['audit', '--format', 'csv']);
    expect(r.code).toBe(0);
    expect(r.stdout).not.toMatch(RAW_CONTROL);
    const lines = r.stdout.split('\r\n').filter(Boolean);
    expect(lines[0]).toBe('id,at,actor,action,account,ticket,reason,outcome,detail,tool_version,host');
    expect(r.stdout).not.toMatch(/[^\r]\n/);
    expect(r.stdout).toContain(`"'=HYPERLINK(""http://x"")"`);
    expect(r.stdout).toContain(`'@SUM(A1)`);
    for (const line of lines.slice(1)) for (const cell of line.split(',')) expect(cell, line).not.toMatch(/^"?[=+\-@]/);
  });

  it('refuses bad filters: 64 usage, 65 malformed address', { timeout: 120_000 }, async () => {
    const cases: Array<[string[], number, RegExp]> = [
      [['audit', '--since', 'yesterday'], 64, /--since: "yesterday" is neither a duration nor a date/],
      [['audit', '--until', '2026-02-30'], 64, /--until/],
      [['audit', '--action', 'DROP TABLE'], 64, /not an action name/],
      [['audit', '--format', 'xml'], 64, /Allowed choices are table, json, ndjson, csv/],
      [['audit', '--limit', '0'], 64, /--limit/],
      [['--json', 'audit', '--format', 'csv'], 64, /--json conflicts with --format csv/],
      [['audit', '--account', 'not-an-address'], 65, /invalid email address/],
    ];
    const results = await Promise.all(cases.map(([args]) => cli(args)));
    for (const [i, [args, exit, message]] of cases.entries()) {
      const r = results[i]!;
      expect(r.code, args.join(' ')).toBe(exit);
      expect(args.includes('--json') ? JSON.parse(r.stdout).error.message : r.stderr, args.join(' ')).toMatch(message);
    }
  });
});
