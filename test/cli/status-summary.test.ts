/**
 * The status summary end to end, through the built binary: `doctor` passes on accounts enrolled by the real flows,
 * fails (78, naming accounts and columns) once summary columns are changed behind mail2fa's back, `migrate
 * --refresh-summary` repairs exactly those rows (a second run changes nothing and says so), and a flag
 * combination that makes no sense is refused (64) before anything changes.
 */
import { beforeAll, expect, it } from 'vitest';
import { runCli } from '../helpers/cli.js';
import { createTestDb, describeEachDb, useTestDb } from '../helpers/db.js';
import { rowSnapshot } from '../helpers/db-snapshot.js';
import { addMailbox } from '../helpers/context.js';
import { enrolSms, enrolTotp, issueTemporaryCode } from '../helpers/seed-2fa.js';

interface Check {
  name: string;
  status: string;
  detail: string;
  hint?: string;
  exitCode?: number;
}

/** An account name that would repaint the screen and forge a line if printed raw (rows edited by hand). */
const EVIL = 'evil\u001b[2J\n@example.com';

describeEachDb('status summary: doctor and migrate --refresh-summary (CLI)', (kind) => {
  const scratch = useTestDb(kind);

  const doctor = async () => {
    const r = await runCli(['doctor', '--json'], { env: scratch.env });
    const doc = JSON.parse(r.stdout) as { exitCode: number; checks: Check[] };
    return { r, doc, summary: doc.checks.find((c) => c.name === 'status summary')! };
  };

  beforeAll(async () => {
    await enrolTotp(scratch.ctx, 'alice@example.com');
    await enrolSms(scratch.ctx, 'bob@example.com');
    await enrolTotp(scratch.ctx, 'carol@example.com');
    await issueTemporaryCode(scratch.ctx, 'carol@example.com'); // factor removed, a temporary code instead
    await addMailbox(scratch.ctx, 'dave@example.com'); // no 2FA, no state row
  });

  it('a fresh database with enrolled accounts: ok, counting the state rows compared', async () => {
    const { r, doc, summary } = await doctor();
    expect(summary).toEqual({
      name: 'status summary',
      status: 'ok',
      detail: 'matches the 2FA tables in all 3 account state row(s)',
    });
    expect(doc.exitCode).toBe(0);
    expect(r.code).toBe(0);
  });

  it('summary columns changed by SQL: 78, naming accounts and columns; the repair fixes exactly those', async () => {
    const db = await scratch.ctx.db();
    const state = () => db.knex(scratch.ctx.tables.accountState);
    await state().where({ account: 'alice@example.com' }).update({ codes_left: 42 });
    await state().where({ account: 'bob@example.com' }).update({ method: 'totp', phone_masked: null });
    await state().where({ account: 'carol@example.com' }).delete();
    await state().insert({ account: EVIL, failed_attempts: 0, codes_left: 3 });

    const { r, doc, summary } = await doctor();
    expect(r.code).toBe(78);
    expect(doc.exitCode).toBe(78);
    expect(summary).toMatchObject({ status: 'fail', exitCode: 78 });
    expect(summary.hint).toContain('mail2fa migrate --refresh-summary');
    expect(summary.detail.split('\n')).toEqual([
      '4 account(s) whose summary disagrees with the 2FA tables (3 state row(s) compared):',
      'alice@example.com: codes_left',
      'bob@example.com: method, phone_masked',
      'evil\\x1b[2J\\n@example.com: codes_left',
      'carol@example.com: no state row',
    ]);
    // Every other check still passes: only this one fails.
    expect(doc.checks.filter((c) => c.status === 'fail').map((c) => c.name)).toEqual(['status summary']);

    // For humans: each account on a line of its own, nothing raw reaches the terminal.
    const human = await runCli(['doctor'], { env: scratch.env });
    expect(human.code).toBe(78);
    expect(human.stdout).toMatch(/^FAIL {2}status summary {4}4 account\(s\) whose summary disagrees/m);
    expect(human.stdout).toMatch(/^ {24}evil\\x1b\[2J\\n@example\.com: codes_left$/m);
    expect(human.stdout).toMatch(/^ {24}hint: Run `mail2fa migrate --refresh-summary`/m);
    expect(human.stdout).not.toContain('\u001b');

    // Nonsense flags: refused before anything is read or written.
    const before = await rowSnapshot(scratch.ctx);
    const bad = await runCli(['migrate', '--refresh-summary', '--with-mailbox-table'], { env: scratch.env });
    expect(bad.code).toBe(64);
    expect(bad.stderr).toContain('--refresh-summary cannot be combined with --with-mailbox-table');
    expect(await rowSnapshot(scratch.ctx)).toEqual(before);
    expect((await doctor()).summary.status).toBe('fail');

    const repair = await runCli(['migrate', '--refresh-summary', '--json'], { env: scratch.env });
    expect(repair.stderr).toBe('');
    expect(repair.code).toBe(0);
    expect(JSON.parse(repair.stdout)).toMatchObject({ ok: true, checked: 4, changed: 4, created: 1 });

    const after = await doctor();
    expect(after.summary).toMatchObject({
      status: 'ok',
      detail: 'matches the 2FA tables in all 4 account state row(s)',
    });
    expect(after.r.code).toBe(0);
    const rows = (await state()
      .whereIn('account', ['alice@example.com', 'bob@example.com', 'carol@example.com', EVIL])
      .orderBy('account')
      .select('account', 'method', 'phone_masked', 'codes_left', 'temp_expires_at')) as Record<string, unknown>[];
    const by = Object.fromEntries(rows.map((row) => [row.account as string, row]));
    expect(by['alice@example.com']).toMatchObject({ method: 'totp', phone_masked: null });
    expect(Number(by['alice@example.com']!.codes_left)).toBe(10);
    expect(by['bob@example.com']).toMatchObject({ method: 'sms', phone_masked: '+45 ****3456' });
    expect(by['carol@example.com']).toMatchObject({ method: null, codes_left: null });
    expect(by['carol@example.com']!.temp_expires_at).not.toBeNull();
    expect(by[EVIL]).toMatchObject({ method: null, codes_left: null });

    // Nothing left to do: nothing changed, and it says so.
    const unchanged = await rowSnapshot(scratch.ctx, []);
    const again = await runCli(['migrate', '--refresh-summary'], { env: scratch.env });
    expect(again.code).toBe(0);
    expect(again.stdout).toBe('status summary: checked 4 state row(s), all current: nothing changed\n');
    const now = await rowSnapshot(scratch.ctx, []);
    // Only the run's audit row is new.
    expect({ ...now, [scratch.ctx.tables.audit]: [] }).toEqual({ ...unchanged, [scratch.ctx.tables.audit]: [] });
    const audit = (await db
      .knex(scratch.ctx.tables.audit)
      .where({ action: 'refresh-summary' })
      .orderBy('id')
      .select('account', 'outcome', 'detail')) as { account: string | null; outcome: string; detail: string }[];
    expect(audit.map((a) => [a.account, a.outcome, JSON.parse(a.detail)])).toEqual([
      [null, 'ok', { checked: 4, changed: 4, created: 1 }],
      [null, 'ok', { checked: 4, changed: 0, created: 0 }],
    ]);
  });

  it('--refresh-summary on a database never migrated: 78, pointing at `mail2fa migrate`', async () => {
    const empty = await createTestDb(kind);
    try {
      const r = await runCli(['--db', empty.url, 'migrate', '--refresh-summary'], { env: scratch.env });
      expect(r.code).toBe(78);
      expect(r.stderr).toContain('mail2fa migrate');
    } finally {
      await empty.drop();
    }
  });

  it('--help shows the repair as an example', async () => {
    const r = await runCli(['migrate', '--help'], { env: scratch.env });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('mail2fa migrate --refresh-summary');
  });
});
