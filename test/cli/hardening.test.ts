/**
 * Hardening, through the BUILT binary (`npm run build` first): each defect found by trying mail2fa as a
 * new user and as an attacker, pinned down by a test that failed before its fix.
 */
import { randomBytes } from 'node:crypto';
import { copyFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { totpCode } from '../../src/totp/totp.js';
import { runCli, ndjsonRows } from '../helpers/cli.js';
import { decodeQrFromScreen } from '../helpers/qr-screen.js';
import { createTestDb, describeEachDb, useTestDb, type TestDb } from '../helpers/db.js';
import { addMailbox, testEnv } from '../helpers/context.js';
import { accountState, auditRows, enrolTotp, twoFactorRows, wrongTotp } from '../helpers/seed-2fa.js';

vi.setConfig({ testTimeout: 60_000 });

const scratch = useTestDb('sqlite');
let n = 0;
const fresh = (prefix = 'h') => `${prefix}${++n}@example.com`;
const cli = (
  args: string[],
  o: { input?: string; closeStdout?: boolean; env?: Record<string, string | undefined> } = {},
) =>
  runCli(args, {
    env: { ...testEnv(scratch.tdb), MAIL2FA_CONFIG: undefined, ...o.env },
    input: o.input,
    closeStdout: o.closeStdout,
  });

describe('the exit code does not depend on whether stdout is still read', () => {
  it('verify with a wrong code stays 1, status --require-enabled stays 1, recover that committed is 0', async () => {
    const a = await enrolTotp(scratch.ctx, fresh('pipe'));
    const plain = fresh('pipe');
    await addMailbox(scratch.ctx, plain);
    const b = await enrolTotp(scratch.ctx, fresh('pipe'));
    const [v, s, r] = await Promise.all([
      cli(['verify', a.email, '--code', wrongTotp(a.secret, Date.now())], { closeStdout: true }),
      cli(['status', a.email, plain, '--require-enabled'], { closeStdout: true }),
      cli(['--yes', 'recover', b.email, '--ticket', 'T-77'], { closeStdout: true }),
    ]);
    expect(v.code, v.stderr).toBe(1);
    expect((await auditRows(scratch.ctx, a.email)).at(-1)).toMatchObject({ action: 'verify', outcome: 'refused' });
    expect(s.code, s.stderr).toBe(1);
    expect(r.code, r.stderr).toBe(0);
    expect((await twoFactorRows(scratch.ctx, b.email)).factor).toBe(0);
    // A failure keeps its own code too.
    const u = await cli(['verify', 'nobody@example.com', '--code', '123456'], { closeStdout: true });
    expect(u.code).toBe(67);
  });
});

describe('an integrity failure is audited in its own transaction', () => {
  it("a TOTP secret copied from another account's row: 78, nothing counted, one refused audit row", async () => {
    const a = await enrolTotp(scratch.ctx, fresh('copied'));
    const b = await enrolTotp(scratch.ctx, fresh('copied'));
    const db = await scratch.ctx.db();
    const row = (await db.knex(scratch.ctx.tables.factor).where({ account: a.email }).first('secret_ct')) as {
      secret_ct: string;
    };
    await db.knex(scratch.ctx.tables.factor).where({ account: b.email }).update({ secret_ct: row.secret_ct });
    const before = await auditRows(scratch.ctx, b.email);
    const r = await cli(['verify', b.email, '--code', totpCode(a.secret, Date.now())]);
    expect(r.code, r.stderr).toBe(78);
    expect(r.stderr).toMatch(/failed its integrity check/);
    const after = await auditRows(scratch.ctx, b.email);
    expect(after.slice(before.length)).toEqual([
      expect.objectContaining({ action: 'verify', outcome: 'refused', reason: expect.stringMatching(/integrity/) }),
    ]);
    expect(after.at(-1)!.detail ?? '').not.toContain(row.secret_ct.slice(0, 20));
    expect((await accountState(scratch.ctx, b.email)).failed).toBe(0);
  });
});

describe('status --file reads address lists, not any file', () => {
  const ndjson = (text: string) => ndjsonRows<Record<string, unknown>>(text);

  it('refuses the configured key file (65) without printing any of it', async () => {
    const keyText = randomBytes(32).toString('base64');
    const keyFile = join(scratch.tdb.dir, 'master.key');
    writeFileSync(keyFile, `${keyText}\n`, { mode: 0o600 });
    // status reads no secret, so any key will do: what matters is which file is configured.
    const env = { MAIL2FA_KEY: undefined, MAIL2FA_KEY_FILE: keyFile };
    for (const path of [keyFile, join(scratch.tdb.dir, '.', 'master.key')]) {
      const r = await cli(['status', '--file', path, '--format', 'ndjson'], { env });
      expect(r.code, r.stderr).toBe(65);
      expect(r.stdout).toBe('');
      expect(r.stderr).toMatch(/is the master key file/);
      for (const out of [r.stdout, r.stderr]) expect(out).not.toContain(keyText.slice(0, 8));
    }
    // A copy of it elsewhere is not the key file: its line is an invalid row, echoed as a short prefix only.
    const copy = join(scratch.tdb.dir, 'copy.txt');
    copyFileSync(keyFile, copy);
    const c = await cli(['status', '--file', copy, '--format', 'ndjson'], { env });
    expect(c.code).toBe(0);
    const [row] = ndjson(c.stdout);
    expect(row).toMatchObject({ state: 'invalid', problem: 'no "@"' });
    expect(c.stdout).not.toContain(keyText.slice(0, 24));
    expect((row!.email as string).startsWith(keyText.slice(0, 8))).toBe(true);
  });

  it('refuses binary content (65), nothing printed', async () => {
    const bin = join(scratch.tdb.dir, 'binary.dat');
    writeFileSync(
      bin,
      Buffer.concat([
        Buffer.from('alice@example.com\n'),
        randomBytes(64).map((b) => (b === 10 ? 11 : b)),
        Buffer.from([0, 0, 0xff, 0xfe, 10]),
      ]),
    );
    const r = await cli(['status', '--file', bin, '--format', 'ndjson']);
    expect(r.code, r.stderr).toBe(65);
    expect(r.stdout).toBe('');
    expect(r.stderr).toMatch(/not a list of addresses: line 2 holds binary data/);
    const sqlite = await cli(['status', '--file', scratch.tdb.url.slice('sqlite:'.length)]);
    expect(sqlite.code).toBe(65);
    expect(sqlite.stdout).toBe('');
  });

  it('an invalid line is echoed as a short escaped prefix, and its problem does not repeat it', async () => {
    const secret = `root@${'s3cr3t_'.repeat(6)}`;
    const list = join(scratch.tdb.dir, 'mixed.txt');
    writeFileSync(list, `${secret}\n${'x'.repeat(60)}\n`);
    const r = await cli(['status', '--file', list, '--format', 'ndjson']);
    expect(r.code).toBe(0);
    const rows = ndjson(r.stdout);
    expect(rows.map((x) => x.state)).toEqual(['invalid', 'invalid']);
    expect(rows[0]!.problem).toBe('not a valid domain name');
    expect(rows[0]!.email).toBe(`${secret.slice(0, 20)}…(${secret.length} chars)`);
    expect(r.stdout).not.toContain(secret.slice(0, 24));
  });
});

describe('invisible and bidirectional characters make an address malformed (65), shown escaped', () => {
  it('status and verify refuse them, naming each one escaped', async () => {
    const cases: Array<[string, string]> = [
      ['ali\u200bce@example.com', '\\u200b'],
      ['alice@exa\u202emple.com', '\\u202e'],
      ['\u2066alice@example.com', '\\u2066'],
      ['alice\u00ad@example.com', '\\xad'],
      ['alice@example.com\ufeff', '\\ufeff'],
      ['alice\u3000x@example.com', '\\u3000'],
    ];
    const results = await Promise.all(cases.map(([address]) => cli(['status', address])));
    for (const [i, [address, shown]] of cases.entries()) {
      const r = results[i]!;
      expect(r.code, `${shown}: ${r.stderr}`).toBe(65);
      expect(r.stderr).toContain(`invalid email address "${address.replace(/[^\x20-\x7e]/u, shown)}"`);
      expect(r.stderr).not.toMatch(/[\u200b\u202e\u2066\u00ad\ufeff\u3000]/u);
    }
    const v = await cli(['verify', cases[0]![0], '--code', '123456']);
    expect(v.code).toBe(65);
    expect(v.stderr).toMatch(/invisible or bidirectional formatting characters/);
  });

  it('in a list: an invalid row, echoed escaped', async () => {
    const r = await cli(['status', '--file', '-', '--format', 'ndjson'], { input: 'bo\u200bb@example.com\n' });
    expect(r.code).toBe(0);
    expect(JSON.parse(r.stdout.trim())).toMatchObject({
      state: 'invalid',
      email: 'bo\\u200bb@example.com',
      problem: expect.stringMatching(/invisible|formatting/),
    });
  });
});

describe('a sign-out command without "--" before {email}', () => {
  const doctorSignOut = async (command: string[]) => {
    const file = join(scratch.tdb.dir, `config-${randomBytes(4).toString('hex')}.json`);
    writeFileSync(file, JSON.stringify({ signOut: { action: 'command', command } }));
    const r = await cli(['--config', file, 'doctor', '--json']);
    const doc = JSON.parse(r.stdout) as {
      checks: Array<{ name: string; status: string; detail: string; hint?: string }>;
    };
    return { r, check: doc.checks.find((c) => c.name === 'sign-out action')! };
  };

  it('doctor warns (an address may begin with "-"), and is satisfied with "--"', async () => {
    const [bare, guarded, inside] = await Promise.all([
      doctorSignOut(['true', 'kick', '{email}']),
      doctorSignOut(['true', 'kick', '--', '{email}']),
      doctorSignOut(['true', 'user={email}']),
    ]);
    expect(bare.check).toMatchObject({
      status: 'warn',
      detail: expect.stringMatching(/no "--" before \{email\}/),
      hint: expect.stringMatching(/begin with "-".*\[doveadm, kick, "--", "\{email\}"\]/),
    });
    expect(bare.r.code).toBe(0);
    expect(guarded.check.status).toBe('ok');
    expect(inside.check.status).toBe('ok');
  });
});

describe('"%" in a database URL', () => {
  it('is a configuration error (78) with a hint to percent-encode, never 70 "URI malformed", password not shown', async () => {
    const r = await cli(['--db', 'mysql://root:pa%ss-w0rd@127.0.0.1:3306/test', 'status', 'x@example.com']);
    expect(r.code, r.stderr).toBe(78);
    expect(r.stderr).toMatch(/password.*"%"/);
    expect(r.stderr).toMatch(/percent-encode.*%25/);
    expect(r.stderr).not.toMatch(/URI malformed|internal error/);
    expect(r.stderr).not.toContain('pa%ss');
    const env = await cli(['status', 'x@example.com'], {
      env: { MAIL2FA_DB_URL: 'mariadb://r%zz:secret@127.0.0.1/test' },
    });
    expect(env.code).toBe(78);
    expect(env.stderr).toMatch(/user name/);
  });
});

describe('an address typed in another case', () => {
  it('67 still (the local part is exact), with "did you mean" naming the one mailbox, for every command', async () => {
    const email = fresh('alice.case');
    await addMailbox(scratch.ctx, email);
    const typed = email.replace('alice.case', 'Alice.Case').replace('example.com', 'Example.COM');
    const commands = [
      ['status', typed],
      ['verify', typed, '--code', '123456'],
      ['--yes', 'recover', typed, '--ticket', 'T-12'],
      ['disable', typed, '--password-stdin', '--code', '123456'],
      ['send-code', typed],
    ];
    const results = await Promise.all(commands.map((args) => cli(args, { input: 'pw\n' })));
    for (const [i, r] of results.entries()) {
      expect(r.code, `${commands[i]!.join(' ')}: ${r.stderr}`).toBe(67);
      expect(r.stderr, commands[i]!.join(' ')).toContain(`hint: did you mean ${email}?`);
    }
    const json = await cli(['--json', 'status', typed]);
    expect(JSON.parse(json.stdout)).toMatchObject({
      ok: false,
      error: { code: 'unknown_account', hint: expect.stringContaining(`did you mean ${email}?`) },
    });
    // No near match: the plain hint.
    const none = await cli(['status', 'Nobody.Here@example.com']);
    expect(none.code).toBe(67);
    expect(none.stderr).not.toContain('did you mean');
  });
});

describeEachDb("a fresh database, the README's steps", (kind) => {
  let fresh13: TestDb;
  beforeAll(async () => {
    fresh13 = await createTestDb(kind);
  });
  afterAll(async () => {
    await fresh13?.drop();
  });
  const run = (args: string[]) => runCli(args, { env: { ...testEnv(fresh13), MAIL2FA_CONFIG: undefined } });

  it('after `migrate` alone, status and doctor say the mailbox table is missing and how to create it; then it works', async () => {
    expect((await run(['migrate'])).code).toBe(0);
    const status = await run(['status', '--all']);
    expect(status.code).toBe(78);
    expect(status.stderr).toMatch(/^mail2fa: error: the mailbox table mailbox does not exist/);
    expect(status.stderr).toMatch(/hint: .*mail2fa migrate --with-mailbox-table/);
    expect(status.stderr).not.toMatch(/SELECT/i); // no SQL dump
    const one = await run(['status', 'jane@example.com']);
    expect(one.code).toBe(78);
    expect(one.stderr).toMatch(/mailbox table mailbox does not exist/);
    const doctor = await run(['doctor', '--json']);
    const mapping = (
      JSON.parse(doctor.stdout) as { checks: Array<{ name: string; status: string; hint?: string }> }
    ).checks.find((c) => c.name === 'account mapping');
    expect(mapping).toMatchObject({
      status: 'fail',
      hint: expect.stringMatching(/mail2fa migrate --with-mailbox-table/),
    });
    expect((await run(['migrate', '--with-mailbox-table'])).code).toBe(0);
    const after = await run(['status', '--all']);
    expect(after.code, after.stderr).toBe(0);
  });
});

describe('enable without a terminal', () => {
  it('refuses an enabled account or an inactive mailbox first (65, audited); the terminal message fits the method', async () => {
    const enabled = await enrolTotp(scratch.ctx, fresh('ena'));
    const inactive = fresh('ena');
    await addMailbox(scratch.ctx, inactive, 'pw', { active: false });
    const plain = fresh('ena');
    await addMailbox(scratch.ctx, plain);
    const [already, off, sms, app] = await Promise.all([
      cli(['enable', enabled.email, '--method', 'sms']),
      cli(['enable', inactive, '--method', 'sms']),
      cli(['enable', plain, '--method', 'sms']),
      cli(['enable', plain]),
    ]);
    expect(already.code, already.stderr).toBe(65);
    expect(already.stderr).toMatch(/already on/);
    expect((await auditRows(scratch.ctx, enabled.email)).at(-1)).toMatchObject({
      action: 'enable',
      outcome: 'refused',
      reason: 'already enabled',
    });
    expect(off.code, off.stderr).toBe(65);
    expect(off.stderr).toMatch(/inactive/);
    expect(sms.code).toBe(64);
    expect(sms.stderr).toMatch(
      /needs an interactive terminal to ask for the password, the phone number and the texted code/,
    );
    expect(sms.stderr).not.toMatch(/QR/);
    expect(sms.stderr).toMatch(/--method sms --phone/);
    expect(app.code).toBe(64);
    expect(app.stderr).toMatch(/QR code/);
    expect(await twoFactorRows(scratch.ctx, plain)).toEqual({
      factor: 0,
      recoveryCodes: 0,
      enrolments: 0,
      challenges: 0,
    });
  });
});

describe('enable --start into a pipe writes no colour escapes', () => {
  it('plain QR (still decodable), with --no-color, NO_COLOR, and even FORCE_COLOR', async () => {
    const runs = await Promise.all(
      [
        [['--no-color'], {}],
        [[], { NO_COLOR: '1' }],
        [[], { NO_COLOR: undefined, FORCE_COLOR: '3', TERM: 'xterm-256color' }],
      ].map(async ([flags, env]) => {
        const email = fresh('qr');
        await addMailbox(scratch.ctx, email, 'pw');
        return {
          email,
          r: await cli([...(flags as string[]), 'enable', email, '--start', '--password-stdin'], {
            input: 'pw',
            env: env as Record<string, string | undefined>,
          }),
        };
      }),
    );
    for (const { email, r } of runs) {
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout + r.stderr).not.toContain('\x1b');
      expect(decodeQrFromScreen(r.stdout)).toMatch(
        new RegExp(`^otpauth://totp/.*${encodeURIComponent(email).replace(/[.]/g, '\\.')}`),
      );
    }
  });
});

describe('the status summary and --require-enabled', () => {
  it('the summary says how many rows a filter showed; exit 1 names the count and the first accounts without 2FA', async () => {
    const on = await enrolTotp(scratch.ctx, fresh('gap'));
    const offs = Array.from({ length: 7 }, () => fresh('gap'));
    for (const o of offs) await addMailbox(scratch.ctx, o);
    const list = [on.email, ...offs, 'ghost.gap@example.com'];
    const [enabled, disabled, json, required, fine] = await Promise.all([
      cli(['status', ...list, '--enabled', '--format', 'ndjson']),
      cli(['status', ...list, '--disabled']),
      cli(['status', ...list, '--disabled', '--json']),
      cli(['status', ...list, '--require-enabled', '--format', 'csv']),
      cli(['status', on.email, '--require-enabled']),
    ]);
    expect(enabled.stderr).toBe('8 accounts, 1 with 2FA (1 app, 0 SMS), 7 without, 1 unknown; 1 shown (--enabled)\n');
    expect(disabled.stdout.trimEnd().split('\n').at(-1)).toBe(
      '8 accounts, 1 with 2FA (1 app, 0 SMS), 7 without, 1 unknown; 7 shown (--disabled)',
    );
    expect(JSON.parse(json.stdout).summary).toMatchObject({ accounts: 8, disabled: 7, filter: 'disabled', shown: 7 });
    expect(required.code).toBe(1);
    expect(required.stderr).toContain(`8 of 9 listed accounts lack 2FA: ${offs.slice(0, 5).join(', ')} and 3 more\n`);
    expect(fine.code).toBe(0);
    expect(fine.stderr).not.toMatch(/lack 2FA/);
  });
});
