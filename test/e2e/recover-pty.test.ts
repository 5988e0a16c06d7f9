/**
 * A customer-service agent at a real terminal: the BUILT binary (run `npm run build` first) in a pseudo-terminal,
 * reading the summary, confirming the caller's identity and typing the address, as a person would.
 */
import { userInfo } from 'node:os';
import pty from 'node-pty';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Context } from '../../src/context.js';
import { readFactor } from '../../src/core/factors.js';
import { accountTransaction } from '../../src/core/guard.js';
import { checkSecondFactor, parseCodeInput } from '../../src/core/factor-check.js';
import { BIN } from '../helpers/cli.js';
import { createTestDb, describeEachDb, type TestDb } from '../helpers/db.js';
import { addMailbox, testContext, testEnv } from '../helpers/context.js';
import { auditRows, enableSms, enableTotp, snapshot } from '../core/recover-support.js';

const ANSI = /\u001b\[[0-9;?]*[ -/]*[@-~]|\u001b[()][0-9A-Za-z]|\u001b[=>]/g;

class Terminal {
  private raw = '';
  private readonly exited: Promise<number>;
  private readonly term: pty.IPty;
  constructor(args: string[], env: Record<string, string>) {
    const base: Record<string, string> = {};
    for (const [k, v] of Object.entries(process.env)) if (v !== undefined && k !== 'MAIL2FA_CONFIG') base[k] = v;
    this.term = pty.spawn(process.execPath, [BIN, ...args], {
      name: 'xterm-256color',
      cols: 160,
      rows: 50,
      env: { ...base, NO_COLOR: '1', ...env },
    });
    this.term.onData((d) => (this.raw += d));
    this.exited = new Promise((resolve) => this.term.onExit(({ exitCode }) => resolve(exitCode)));
  }
  get screen(): string {
    return this.raw.replace(ANSI, '').replace(/\r/g, '');
  }
  async waitFor(pattern: RegExp, timeoutMs = 20_000): Promise<RegExpMatchArray> {
    const start = Date.now();
    for (;;) {
      const m = this.screen.match(pattern);
      if (m) return m;
      if (Date.now() - start > timeoutMs) throw new Error(`timed out waiting for ${pattern}; screen:\n${this.screen}`);
      await new Promise((r) => setTimeout(r, 25));
    }
  }
  async type(text: string): Promise<void> {
    for (const ch of text) {
      this.term.write(ch);
      await new Promise((r) => setTimeout(r, 5));
    }
  }
  exit(): Promise<number> {
    return this.exited;
  }
}

describeEachDb('recover at a terminal', (kind) => {
  let tdb: TestDb;
  let ctx: Context;
  beforeAll(async () => {
    tdb = await createTestDb(kind);
    ctx = await testContext(tdb);
  });
  afterAll(async () => {
    await ctx?.close();
    await tdb?.drop();
  });

  it(
    'shows the summary, asks to confirm the identity and to type the address, then recovers',
    { timeout: 60_000 },
    async () => {
      const email = 'jane@example.com';
      await addMailbox(ctx, email);
      await enableTotp(ctx, email);
      const t = new Terminal(
        ['recover', email, '--ticket', 'T-4001', '--reason', 'lost phone, identity checked by call-back'],
        testEnv(tdb),
      );
      await t.waitFor(/2FA +on: authenticator app/);
      await t.waitFor(/recovery codes left +10/);
      await t.waitFor(/Did you verify the caller's identity for ticket T-4001\?/);
      await t.type('y\r');
      await t.waitFor(/Type the address \(jane@example\.com\) to confirm:/);
      await t.type(`${email}\r`);
      await t.waitFor(/Recovered jane@example\.com \(ticket T-4001\)/);
      await t.waitFor(/Settings > Password > Two-Factor Authentication[\s\S]*-{72}\n/);
      expect(await t.exit()).toBe(0);
      expect(t.screen).toContain('sign in to the webmail with your email address and password alone');
      const db = await ctx.db();
      expect(await readFactor(db.knex, ctx.tables, email)).toBeUndefined();
      // The actor is the OS user when --actor is not given.
      expect(await auditRows(ctx, { account: email })).toMatchObject([
        {
          action: 'recover',
          outcome: 'ok',
          ticket: 'T-4001',
          actor: userInfo().username,
          reason: 'lost phone, identity checked by call-back',
        },
      ]);
    },
  );

  it('issues a temporary access code that the customer can use once', { timeout: 60_000 }, async () => {
    const email = 'sam@example.com';
    await addMailbox(ctx, email);
    await enableSms(ctx, email);
    const t = new Terminal(
      ['--actor', 'agent-pty', 'recover', email, '--ticket', 'T-4002', '--temporary-code', '--ttl', '2h'],
      testEnv(tdb),
    );
    await t.waitFor(/2FA +on: text messages to \+45 \*{4}3456/);
    await t.waitFor(/issue a temporary access code valid\s+for 2 hours/);
    await t.waitFor(/Did you verify/);
    await t.type('y\r');
    await t.waitFor(/Type the address/);
    await t.type(`${email}\r`);
    const [, code] = await t.waitFor(
      /enter this temporary access code:\n\n {4}([0-9a-z]{4}-[0-9a-z]{4}-[0-9a-z]{4}-[0-9a-z]{4})\n/,
    );
    expect(await t.exit()).toBe(0);
    const use = () =>
      accountTransaction(ctx, email, async (tx) =>
        checkSecondFactor(
          tx,
          await readFactor(tx.trx, ctx.tables, email),
          parseCodeInput(code!),
          new Set(['temporary']),
        ),
      );
    expect(await use()).toBe('temporary');
    expect(await use()).toBeNull();
  });

  it('changes nothing when the agent says no, or types another address (exit 130)', { timeout: 60_000 }, async () => {
    const email = 'kim@example.com';
    await addMailbox(ctx, email);
    await enableTotp(ctx, email);
    const before = await snapshot(ctx);

    const no = new Terminal(['recover', email, '--ticket', 'T-4003'], testEnv(tdb));
    await no.waitFor(/Did you verify/);
    await no.type('n\r');
    expect(await no.exit()).toBe(130);
    expect(no.screen).toMatch(/identity was not confirmed; nothing was changed/);

    const typo = new Terminal(['recover', email, '--ticket', 'T-4003'], testEnv(tdb));
    await typo.waitFor(/Did you verify/);
    await typo.type('y\r');
    await typo.waitFor(/Type the address/);
    await typo.type('kim@example.org\r');
    expect(await typo.exit()).toBe(130);
    expect(typo.screen).toMatch(/address typed does not match; nothing was changed/);

    const ctrlC = new Terminal(['recover', email, '--ticket', 'T-4003'], testEnv(tdb));
    await ctrlC.waitFor(/Did you verify/);
    await ctrlC.type('\u0003');
    expect(await ctrlC.exit()).toBe(130);
    expect(ctrlC.screen).toMatch(/cancelled at the prompt; nothing was changed/);

    expect(await snapshot(ctx)).toEqual(before);
  });
});
