/** `mail2fa recover` through the BUILT binary (run `npm run build` first): exit codes, output, what changes. */
import { expect, it } from 'vitest';
import { readFactor } from '../../src/core/factors.js';
import { parseCodeInput } from '../../src/core/factor-check.js';
import { runCli } from '../helpers/cli.js';
import { describeEachDb, useTestDb } from '../helpers/db.js';
import { addMailbox, testEnv } from '../helpers/context.js';
import { auditRows, dumpText, enableSms, enableTotp, snapshot } from '../core/recover-support.js';
import { checkAtSignIn } from '../helpers/account-rows.js';

describeEachDb('cli recover', (kind) => {
  const scratch = useTestDb(kind);
  let n = 0;
  const cli = (args: string[]) => runCli(args, { env: { ...testEnv(scratch.tdb), MAIL2FA_CONFIG: undefined } });
  const fresh = async (prefix: string, factor: 'totp' | 'sms' | null = 'totp') => {
    const email = `${prefix}${++n}@example.com`;
    await addMailbox(scratch.ctx, email);
    if (factor === 'totp') await enableTotp(scratch.ctx, email);
    if (factor === 'sms') await enableSms(scratch.ctx, email);
    return email;
  };

  it('--help shows examples and the exit codes', async () => {
    const r = await cli(['recover', '--help']);
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('--ticket <id>');
    expect(r.stdout).toContain('--temporary-code');
    expect(r.stdout).toContain('Examples:');
    expect(r.stdout).toContain('mail2fa recover jane@example.com --ticket T-1001');
    expect(r.stdout).toMatch(/75 +the account changed between the summary and the confirmation/);
  });

  it('refuses bad usage and bad input with nothing changed', { timeout: 120_000 }, async () => {
    const email = await fresh('usage');
    const before = await snapshot(scratch.ctx);
    const cases: Array<[string[], number, RegExp]> = [
      [['recover', email, '--yes'], 64, /ticket ID is required/],
      [['recover', email, '--yes', '--ticket', ''], 64, /ticket ID is required/],
      [['recover', email, '--yes', '--ticket', 'T 1'], 65, /invalid ticket ID "T 1"/],
      [['recover', email, '--yes', '--ticket', 'T-1\u001b[2J'], 65, /invalid ticket ID "T-1\\x1b\[2J"/],
      [['recover', email, '--ticket', 'T-1'], 64, /needs an interactive terminal[\s\S]*--yes/],
      [['recover', email, '--yes', '--ticket', 'T-1', '--ttl', '2h'], 64, /--ttl goes with --temporary-code/],
      [
        ['recover', email, '--yes', '--ticket', 'T-1', '--temporary-code', '--ttl', '8d'],
        64,
        /between 5 minutes and 7 days/,
      ],
      [
        ['recover', email, '--yes', '--ticket', 'T-1', '--temporary-code', '--ttl', 'soon'],
        64,
        /--ttl: "soon" is not a duration/,
      ],
      [['recover', 'nobody@example.com', '--yes', '--ticket', 'T-1'], 67, /unknown account: nobody@example.com/],
      [['recover', 'no-at-sign', '--yes', '--ticket', 'T-1'], 65, /invalid email address/],
      [['recover', '--yes', '--ticket', 'T-1'], 64, /missing required argument/],
    ];
    const results = await Promise.all(cases.map(([args]) => cli(args)));
    for (const [i, [args, code, message]] of cases.entries()) {
      const r = results[i]!;
      expect(r.code, `${args.join(' ')}: ${r.stderr}`).toBe(code);
      expect(r.stderr, args.join(' ')).toMatch(message);
      expect(r.stdout, args.join(' ')).toBe('');
    }
    // --json: the error is the one JSON document on stdout.
    const j = await cli(['--json', 'recover', email, '--yes']);
    expect(j.code).toBe(64);
    expect(JSON.parse(j.stdout)).toMatchObject({
      ok: false,
      error: { code: 'usage', message: expect.stringMatching(/ticket ID is required/) },
    });
    // --json turns prompts off: without --yes it is refused, naming --yes.
    const k = await cli(['--json', 'recover', email, '--ticket', 'T-1']);
    expect(k.code).toBe(64);
    expect(JSON.parse(k.stdout).error.hint).toContain('--yes');
    expect(await snapshot(scratch.ctx)).toEqual(before);
  });

  it(
    'recovers with --yes: summary, result and a reply for the customer; audit row with actor, ticket, reason',
    { timeout: 120_000 },
    async () => {
      const email = await fresh('yes');
      const r = await cli([
        '--actor',
        'agent-carl',
        '--yes',
        'recover',
        email,
        '--ticket',
        'T-2001',
        '--reason',
        'lost phone; identity checked by call-back',
      ]);
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain(`2FA summary of ${email}`);
      expect(r.stdout).toMatch(/2FA +on: authenticator app/);
      expect(r.stdout).toMatch(/recovery codes left +10/);
      expect(r.stdout).toContain(`Recovered ${email} (ticket T-2001)`);
      expect(r.stdout).toContain('Reply for the customer');
      expect(r.stdout).toContain('Settings > Password > Two-Factor Authentication');
      const db = await scratch.ctx.db();
      expect(await readFactor(db.knex, scratch.ctx.tables, email)).toBeUndefined();
      expect(await auditRows(scratch.ctx, { account: email })).toMatchObject([
        {
          action: 'recover',
          outcome: 'ok',
          actor: 'agent-carl',
          ticket: 'T-2001',
          reason: 'lost phone; identity checked by call-back',
        },
      ]);
      // Once recovered, there is nothing left to recover: exit 0, and the lookup is audited.
      const again = await cli(['--yes', 'recover', email, '--ticket', 'T-2001']);
      expect(again.code).toBe(0);
      expect(again.stdout).toContain(`Nothing to recover: 2FA is not on for ${email}`);
      expect((await auditRows(scratch.ctx, { account: email })).map((a) => a.action)).toEqual([
        'recover',
        'recover-lookup',
      ]);
    },
  );

  it('--json prints exactly one document with the summary, the result and the reply', async () => {
    const email = await fresh('json', 'sms');
    const r = await cli(['--json', '--yes', 'recover', email, '--ticket', 'T-2002']);
    expect(r.code, r.stderr).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(r.stdout.trim().split('\n')).toHaveLength(1);
    expect(doc).toMatchObject({
      ok: true,
      outcome: 'recovered',
      email,
      ticket: 'T-2002',
      before: { method: 'sms', phone: '+45 ****3456' },
      removed: { method: 'sms', recoveryCodes: 10 },
      temporaryCode: null,
      twoFactorRequired: false,
    });
    expect(doc.reply).toContain('Settings > Password > Two-Factor Authentication');
    expect(r.stdout).not.toContain('20123456');
  });

  it(
    '--temporary-code: the code is printed once, works once, and is in no audit row',
    { timeout: 120_000 },
    async () => {
      const email = await fresh('temp');
      const r = await cli([
        '--json',
        '--yes',
        'recover',
        email,
        '--ticket',
        'T-2003',
        '--reason',
        'new phone',
        '--temporary-code',
        '--ttl',
        '48h',
      ]);
      expect(r.code, r.stderr).toBe(0);
      const doc = JSON.parse(r.stdout);
      const code: string = doc.temporaryCode.code;
      expect(code).toMatch(/^[0-9a-z]{4}-[0-9a-z]{4}-[0-9a-z]{4}-[0-9a-z]{4}$/);
      expect(doc.reply).toContain(code);
      expect(doc.twoFactorRequired).toBe(true);
      expect(await dumpText(scratch.ctx)).not.toContain(code);
      const status = await cli(['--json', 'status', email]);
      expect(JSON.parse(status.stdout).accounts[0]).toMatchObject({
        enabled: true,
        method: null,
        temporaryCode: { state: 'pending' },
      });
      const use = () => checkAtSignIn(scratch.ctx, email, parseCodeInput(code), ['temporary']);
      expect(await use()).toBe('temporary');
      expect(await use()).toBeNull();
      // Human output: the code appears in the reply, once.
      const human = await cli(['--yes', 'recover', email, '--ticket', 'T-2004', '--temporary-code']);
      expect(human.code, human.stderr).toBe(0);
      const shown = human.stdout.match(/[0-9a-z]{4}-[0-9a-z]{4}-[0-9a-z]{4}-[0-9a-z]{4}/g) ?? [];
      expect(shown).toHaveLength(1);
      expect(human.stdout).toContain('2FA stays required');
      const audit = await cli(['audit', '--account', email, '--format', 'ndjson']);
      expect(audit.stdout).not.toContain(code);
      expect(audit.stdout).not.toContain(shown[0]!);
    },
  );

  it(
    'two recover processes at once: one recovers, the other is told to look again (or finds nothing to recover)',
    { timeout: 120_000 },
    async () => {
      for (let run = 0; run < 5; run++) {
        const email = await fresh('twin');
        const results = await Promise.all([
          cli(['--json', '--yes', '--actor', 'a', 'recover', email, '--ticket', 'T-1']),
          cli(['--json', '--yes', '--actor', 'b', 'recover', email, '--ticket', 'T-1']),
        ]);
        const docs = results.map((r) => ({
          code: r.code,
          doc: JSON.parse(r.stdout) as { ok: boolean; outcome?: string; error?: { code: string } },
        }));
        expect(
          docs.filter((d) => d.doc.outcome === 'recovered'),
          JSON.stringify(docs),
        ).toHaveLength(1);
        const other = docs.find((d) => d.doc.outcome !== 'recovered')!;
        expect([`75:changed`, '0:nothing-to-recover']).toContain(
          `${other.code}:${other.doc.error?.code ?? other.doc.outcome}`,
        );
        expect(await auditRows(scratch.ctx, { account: email, action: 'recover', outcome: 'ok' })).toHaveLength(1);
      }
    },
  );
});
