/**
 * A customer-service agent at a real terminal: the BUILT binary (run `npm run build` first) in a pseudo-terminal,
 * reading the summary, confirming the caller's identity and typing the address, as a person would.
 */
import { userInfo } from 'node:os';
import { expect, it } from 'vitest';
import { readFactor } from '../../src/core/factors.js';
import { parseCodeInput } from '../../src/core/factor-check.js';
import { Terminal } from '../helpers/terminal.js';
import { describeEachDb, useTestDb } from '../helpers/db.js';
import { addMailbox, testEnv } from '../helpers/context.js';
import { auditRows, enableSms, enableTotp, snapshot } from '../core/recover-support.js';
import { checkAtSignIn } from '../helpers/account-rows.js';

/** The CLI at a terminal without colour; answers are typed a key at a time. */
const terminal = (args: string[], env: Record<string, string>) =>
  new Terminal(args, { MAIL2FA_CONFIG: undefined, NO_COLOR: '1', ...env }, { cols: 160, rows: 50, timeoutMs: 20_000 });

describeEachDb('recover at a terminal', (kind) => {
  const scratch = useTestDb(kind);

  it(
    'shows the summary, asks to confirm the identity and to type the address, then recovers',
    { timeout: 60_000 },
    async () => {
      const email = 'jane@example.com';
      await addMailbox(scratch.ctx, email);
      await enableTotp(scratch.ctx, email);
      const t = terminal(
        ['recover', email, '--ticket', 'T-4001', '--reason', 'lost phone, identity checked by call-back'],
        testEnv(scratch.tdb),
      );
      await t.waitForScreen(/2FA +on: authenticator app/);
      await t.waitForScreen(/recovery codes left +10/);
      await t.waitForScreen(/Did you verify the caller's identity for ticket T-4001\?/);
      await t.type('y\r', 5);
      await t.waitForScreen(/Type the address \(jane@example\.com\) to confirm:/);
      await t.type(`${email}\r`, 5);
      await t.waitForScreen(/Recovered jane@example\.com \(ticket T-4001\)/);
      await t.waitForScreen(/Settings > Password > Two-Factor Authentication[\s\S]*-{72}\n/);
      expect(await t.exitCode()).toBe(0);
      expect(t.screen).toContain('sign in to the webmail with your email address and password alone');
      const db = await scratch.ctx.db();
      expect(await readFactor(db.knex, scratch.ctx.tables, email)).toBeUndefined();
      // The actor is the OS user when --actor is not given.
      expect(await auditRows(scratch.ctx, { account: email })).toMatchObject([
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
    await addMailbox(scratch.ctx, email);
    await enableSms(scratch.ctx, email);
    const t = terminal(
      ['--actor', 'agent-pty', 'recover', email, '--ticket', 'T-4002', '--temporary-code', '--ttl', '2h'],
      testEnv(scratch.tdb),
    );
    await t.waitForScreen(/2FA +on: text messages to \+45 \*{4}3456/);
    await t.waitForScreen(/issue a temporary access code valid\s+for 2 hours/);
    await t.waitForScreen(/Did you verify/);
    await t.type('y\r', 5);
    await t.waitForScreen(/Type the address/);
    await t.type(`${email}\r`, 5);
    const [, code] = await t.waitForScreen(
      /enter this temporary access code:\n\n {4}([0-9a-z]{4}-[0-9a-z]{4}-[0-9a-z]{4}-[0-9a-z]{4})\n/,
    );
    expect(await t.exitCode()).toBe(0);
    const use = () => checkAtSignIn(scratch.ctx, email, parseCodeInput(code!), ['temporary']);
    expect(await use()).toBe('temporary');
    expect(await use()).toBeNull();
  });

  it('changes nothing when the agent says no, or types another address (exit 130)', { timeout: 60_000 }, async () => {
    const email = 'kim@example.com';
    await addMailbox(scratch.ctx, email);
    await enableTotp(scratch.ctx, email);
    const before = await snapshot(scratch.ctx);

    const no = terminal(['recover', email, '--ticket', 'T-4003'], testEnv(scratch.tdb));
    await no.waitForScreen(/Did you verify/);
    await no.type('n\r', 5);
    expect(await no.exitCode()).toBe(130);
    expect(no.screen).toMatch(/identity was not confirmed; nothing was changed/);

    const typo = terminal(['recover', email, '--ticket', 'T-4003'], testEnv(scratch.tdb));
    await typo.waitForScreen(/Did you verify/);
    await typo.type('y\r', 5);
    await typo.waitForScreen(/Type the address/);
    await typo.type('kim@example.org\r', 5);
    expect(await typo.exitCode()).toBe(130);
    expect(typo.screen).toMatch(/address typed does not match; nothing was changed/);

    const ctrlC = terminal(['recover', email, '--ticket', 'T-4003'], testEnv(scratch.tdb));
    await ctrlC.waitForScreen(/Did you verify/);
    await ctrlC.type('\u0003', 5);
    expect(await ctrlC.exitCode()).toBe(130);
    expect(ctrlC.screen).toMatch(/cancelled at the prompt; nothing was changed/);

    expect(await snapshot(scratch.ctx)).toEqual(before);
  });
});
