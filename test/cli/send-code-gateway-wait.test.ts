/**
 * `send-code` holds no write transaction while the SMS gateway answers. The gateway holds the request;
 * meanwhile another process changes the same account (a wrong code at `verify`) and finishes at once — on the
 * embedded SQLite database too, where a held write transaction locks the whole file. Then the gateway answers
 * and the code sent is the one that works.
 */
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it, vi } from 'vitest';
import { confirmEnrolment, startEnrolment } from '../../src/core/enrolment.js';
import { runCli } from '../helpers/cli.js';
import { describeEachDb, useTestDb } from '../helpers/db.js';
import { addMailbox, testEnv } from '../helpers/context.js';
import { SmsGateway, lastOutboxCode, writeConfig } from '../helpers/enrolment.js';

vi.setConfig({ testTimeout: 60_000 });

describeEachDb('send-code: no transaction open across the gateway call', (kind) => {
  const scratch = useTestDb(kind);
  let gateway: SmsGateway;
  beforeAll(async () => {
    gateway = await new SmsGateway().start();
  });
  afterAll(async () => {
    await gateway?.stop();
  });

  it('another change to the account completes while the gateway is still answering; the sent code then works', async () => {
    const email = 'slow-gateway@example.com';
    const env = testEnv(scratch.tdb);
    await addMailbox(scratch.ctx, email, 'pw-1');
    await startEnrolment(scratch.ctx, { email, password: 'pw-1', method: 'sms', phone: '011-45-20123456' });
    await confirmEnrolment(scratch.ctx, {
      email,
      code: lastOutboxCode(join(scratch.tdb.dir, 'home', 'sms-outbox.ndjson')),
    });
    await (await scratch.ctx.db()).knex(scratch.ctx.tables.smsSend).where({ account: email }).delete();

    gateway.mode = 'hang';
    const config = writeConfig(scratch.tdb.dir, 'slow', {
      sms: { transport: 'webhook', webhook: { url: gateway.url }, timeoutMs: 20_000 },
    });
    const sending = runCli(['send-code', email, '--json'], { env: { ...env, MAIL2FA_CONFIG: config } });
    for (let i = 0; gateway.waiting === 0; i++) {
      if (i > 200) throw new Error('send-code never reached the gateway');
      await new Promise((r) => setTimeout(r, 50));
    }
    const started = Date.now();
    const wrong = await runCli(['verify', email, '--code', '000000'], { env });
    const took = Date.now() - started;
    expect(wrong.code, wrong.stderr).toBe(1); // counted and recorded, not "busy" (75) nor a wait for the gateway
    expect(took).toBeLessThan(12_000); // a held transaction would make it wait for the gateway (20 s here) or fail busy
    expect(gateway.waiting).toBe(1); // the send was still in flight

    gateway.release();
    const sent = await sending;
    expect(sent.code, sent.stderr).toBe(0);
    const ok = await runCli(['verify', email, '--code', gateway.lastCode()], { env });
    expect(ok.code, ok.stderr).toBe(0);
  });
});
