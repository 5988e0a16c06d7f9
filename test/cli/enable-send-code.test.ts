/**
 * `mail2fa send-code` through the BUILT binary (run `npm run build` first), on SQLite and MariaDB: the outbox and a
 * real webhook, the send limit holding across parallel processes, refusals and gateway failures.
 */
import { join } from 'node:path';
import { beforeAll, describe, expect, it, vi } from 'vitest';
import { confirmEnrolment, startEnrolment } from '../../src/core/enrolment.js';
import { totpCode } from '../../src/totp/totp.js';
import { runCli } from '../helpers/cli.js';
import { describeEachDb, useTestDb } from '../helpers/db.js';
import { addMailbox } from '../helpers/context.js';
import { SmsGateway, lastOutboxCode, outboxMessages, writeConfig, jsonDocument as json } from '../helpers/enrolment.js';
import { accountRows, checkAtSignIn } from '../helpers/account-rows.js';

// Each test spawns several processes; on a loaded machine that takes longer than the default 30 s.
vi.setConfig({ testTimeout: 120_000 });

const PW = 'correct horse';

describe('send-code --help', () => {
  it('has examples and the exit codes', async () => {
    const r = await runCli(['send-code', '--help']);
    expect(r.code).toBe(0);
    for (const s of ['Examples:', 'mail2fa send-code jane@example.com', 'Exit codes:', '75'])
      expect(r.stdout).toContain(s);
  });
});

describeEachDb('send-code (built binary)', (kind) => {
  const scratch = useTestDb(kind);
  let outbox: string;
  let n = 0;
  beforeAll(async () => {
    outbox = join(scratch.tdb.dir, 'home', 'sms-outbox.ndjson');
  });

  const knex = async () => (await scratch.ctx.db()).knex;
  const rows = (table: string, account: string) => accountRows(scratch.ctx, table, account);
  const cli = (args: string[], extraEnv: Record<string, string> = {}) =>
    runCli(args, { env: { ...scratch.env, ...extraEnv } });

  /** A mailbox with SMS 2FA on (+4520123456), with a fresh send window. */
  async function smsAccount(): Promise<string> {
    const email = `text${++n}@example.com`;
    await addMailbox(scratch.ctx, email, PW);
    await startEnrolment(scratch.ctx, { email, password: PW, method: 'sms', phone: '011-45-20123456' });
    await confirmEnrolment(scratch.ctx, { email, code: lastOutboxCode(outbox) });
    await (await knex())(scratch.ctx.tables.smsSend).where({ account: email }).delete();
    return email;
  }

  it('texts a sign-in code (outbox: says where it went); the code then works at sign-in', async () => {
    const email = await smsAccount();
    const r = await cli(['send-code', email]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('A sign-in code was sent by text message to +45 ****3456.\nIt is valid for 10 minutes.');
    expect(r.stdout).toContain(`the message was appended to ${outbox}`);
    expect(r.stdout + r.stderr).not.toContain('20123456');
    expect(outboxMessages(outbox).at(-1)!.to).toBe('+4520123456');
    const code = lastOutboxCode(outbox);
    const kindUsed = await checkAtSignIn(scratch.ctx, email, { form: 'digits', value: code }, ['sms']);
    expect(kindUsed).toBe('sms');

    const j = await cli(['send-code', email, '--json']);
    expect(json(j)).toMatchObject({
      ok: true,
      email,
      phone: '+45 ****3456',
      sms: { transport: 'outbox', where: outbox },
    });
  });

  it('the send limit holds across parallel processes: 3 sent, the rest refused with 75', async () => {
    const email = await smsAccount();
    const before = outboxMessages(outbox).length;
    const results = await Promise.all([0, 1, 2, 3, 4].map(() => cli(['send-code', email, '--json'])));
    expect(results.map((r) => r.code).sort()).toEqual([0, 0, 0, 75, 75]);
    for (const r of results.filter((x) => x.code === 75)) expect(json(r).error.code).toBe('rate_limited');
    expect(await rows(scratch.ctx.tables.smsSend, email)).toHaveLength(3);
    expect(outboxMessages(outbox).length - before).toBe(3);
    // Only the newest code is pending.
    expect(
      (await rows(scratch.ctx.tables.challenge, email)).filter((c) => c.purpose === 'sms' && c.used_at === null),
    ).toHaveLength(1);
  });

  it('refuses accounts that cannot get a code: app (65), 2FA off (65), unknown (67), bad address (65)', async () => {
    const app = `app${++n}@example.com`;
    await addMailbox(scratch.ctx, app, PW);
    const started = await startEnrolment(scratch.ctx, { email: app, password: PW, method: 'totp' });
    await confirmEnrolment(scratch.ctx, { email: app, code: totpCode(started.totp!.secret, Date.now()) });
    const off = `off${++n}@example.com`;
    await addMailbox(scratch.ctx, off, PW);
    const before = outboxMessages(outbox).length;
    const cases: Array<[string, number, string]> = [
      [app, 65, 'uses an authenticator app, not SMS'],
      [off, 65, 'not enabled'],
      ['nobody@example.com', 67, 'unknown account'],
      ['a@b@example.com', 65, 'invalid email address'],
    ];
    for (const [email, code, message] of cases) {
      const r = await cli(['send-code', email]);
      expect([email, r.code]).toEqual([email, code]);
      expect(r.stderr).toContain(message);
    }
    expect(outboxMessages(outbox)).toHaveLength(before);
    expect(await rows(scratch.ctx.tables.challenge, app)).toEqual([]);
  });

  it('gateway down (500): 69, nothing stored, failure audited', async () => {
    const gateway = await new SmsGateway().start();
    try {
      gateway.mode = 'error';
      const email = await smsAccount();
      const config = writeConfig(scratch.tdb.dir, 'down', {
        sms: { transport: 'webhook', webhook: { url: gateway.url } },
      });
      const r = await cli(['send-code', email, '--json'], { MAIL2FA_CONFIG: config });
      expect(r.code).toBe(69);
      expect(json(r).error).toMatchObject({ code: 'sms_unavailable', message: expect.stringContaining('HTTP 500') });
      expect(await rows(scratch.ctx.tables.challenge, email)).toEqual([]);
      expect(await rows(scratch.ctx.tables.smsSend, email)).toEqual([]);
      expect((await rows(scratch.ctx.tables.audit, email)).at(-1)).toMatchObject({
        action: 'send-code',
        outcome: 'failed',
        reason: 'sms_unavailable',
      });
    } finally {
      await gateway.stop();
    }
  });
});
