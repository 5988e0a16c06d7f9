/**
 * The Roundcube plugin store through the built binary: `status` shows Roundcube rows, `verify`
 * checks the plugin's secret with mail2fa's replay protection, `disable` takes one of the plugin's recovery codes,
 * `recover` resets the plugin, `migrate-from roundcube` moves the secrets — and real Roundcube reads the result.
 * mail2fa's database and Roundcube's are separate, as on most sites.
 */
import { randomBytes } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Context } from '../../src/context.js';
import { base32 } from '../../src/stores/roundcube-plugin.js';
import { totpCode } from '../../src/totp/totp.js';
import { runCli, ndjsonRows } from '../helpers/cli.js';
import { addMailbox, testContext, testEnv } from '../helpers/context.js';
import { createTestDb, type TestDb } from '../helpers/db.js';
import {
  createRoundcubeDb,
  describeRoundcubeEachDb,
  roundcubeConfigDir,
  runOracle,
  type RoundcubeDb,
} from '../helpers/roundcube.js';
import { encryptedPluginValue, insertUser, preferencesOf } from '../helpers/roundcube-store.js';

const DES_KEY = 'Rc-cli-des-key-01234567!';
const PASSWORD = 'correct horse';
const rcConf = roundcubeConfigDir();
afterAll(() => rcConf.cleanup());

const OTHER = 's:8:"timezone";s:13:"Europe/Berlin";s:9:"signature";s:7:"Grüße";';
function prefs(secret: string, codes: string[]): string {
  const value = encryptedPluginValue(DES_KEY, 'aes-256-gcm', { secret, recoveryCodes: codes });
  return `a:3:{${OTHER}s:24:"twofactor_gauthenticator";${value}}`;
}

describeRoundcubeEachDb('Roundcube store (CLI)', (kind) => {
  let mail: TestDb;
  let rc: RoundcubeDb;
  let ctx: Context;
  let config: string;
  let env: Record<string, string | undefined>;
  const secrets = { jane: base32(randomBytes(10)), bob: base32(randomBytes(20)), carl: base32(randomBytes(20)) };
  const ids: Record<string, number> = {};
  const cli = (args: string[], input?: string) => runCli(['--config', config, ...args], { env, input });
  /** What real Roundcube holds under the plugin's key for these rows ('absent', 'string', 'array'): one php run. */
  const pluginRaw = async (...userIds: number[]) =>
    (
      await runOracle<{ pluginRaw: string }>(
        rcConf.dir,
        userIds.map((userId) => ({
          op: 'read',
          dsn: rc.dsn,
          userId,
          desKey: DES_KEY,
          cipher: 'AES-256-GCM',
          encrypt: true,
        })),
      )
    )
      .map((r) => r.pluginRaw)
      .join();
  const noSecrets = (text: string) => {
    for (const s of Object.values(secrets)) expect(text).not.toContain(s);
  };

  beforeAll(async () => {
    mail = await createTestDb(kind);
    rc = await createRoundcubeDb(kind);
    config = join(mail.dir, 'mail2fa.yaml');
    writeFileSync(
      config,
      [
        'stores:',
        '  - name: roundcube',
        '    kind: roundcube',
        `    db: { url: "${rc.url}" }`,
        '    options:',
        `      des_key: "${DES_KEY}"`,
        '      cipher_method: AES-256-GCM',
        '      pref_encrypt: true',
        '      mail_domain: example.com',
        '',
      ].join('\n'),
    );
    ctx = await testContext(mail, { configPath: config });
    env = testEnv(mail);
    for (const e of ['jane@example.com', 'bob@example.com', 'carl@example.com', 'plain@example.com'])
      await addMailbox(ctx, e, PASSWORD);
    ids.jane = await insertUser(rc, 'jane@example.com', 'localhost', prefs(secrets.jane, ['JJJJJJJJJJ', 'KKKKKKKKKK']));
    ids.janeBare = await insertUser(rc, 'jane', 'imap.example.com', prefs(secrets.jane, ['JJJJJJJJJJ', 'KKKKKKKKKK']));
    ids.bob = await insertUser(rc, 'bob@example.com', 'localhost', prefs(secrets.bob, []));
    ids.carl = await insertUser(rc, 'carl@example.com', 'localhost', prefs(secrets.carl, []));
    ids.plain = await insertUser(rc, 'plain@example.com', 'localhost', `a:1:{${OTHER.slice(0, 36)}}`);
  });
  afterAll(async () => {
    await ctx?.close();
    await rc?.drop();
    await mail?.drop();
  });

  it('status shows the Roundcube rows: activated, enforced, weak, both rows of jane', async () => {
    const all = await cli(['status', '--all', '--format', 'ndjson']);
    expect(all.code).toBe(0);
    const rows = ndjsonRows<{
      email: string;
      enabled: boolean;
      enforced: boolean | null;
      sources: string[];
      stores: Array<{ store: string; factors: Array<{ label: string; weak?: boolean }> }>;
    }>(all.stdout);
    const by = Object.fromEntries(rows.map((r) => [r.email, r]));
    expect(by['jane@example.com']).toMatchObject({ enabled: true, enforced: true, sources: ['roundcube'] });
    expect(by['jane@example.com']!.stores[0]!.factors.map((f) => [f.label, f.weak ?? false])).toEqual([
      ['localhost', true],
      ['imap.example.com', true],
    ]);
    expect(by['bob@example.com']).toMatchObject({ enabled: true, sources: ['roundcube'] });
    expect(by['plain@example.com']).toMatchObject({ enabled: false, sources: [] });
    const human = await cli(['status', 'jane@example.com']);
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/roundcube/);
    noSecrets(all.stdout + human.stdout + human.stderr);
  });

  it("verify checks the plugin's secret once (mail2fa's replay protection)", async () => {
    const code = totpCode(secrets.bob, Date.now());
    expect((await cli(['verify', 'bob@example.com', '--code', code])).code).toBe(0);
    expect((await cli(['verify', 'bob@example.com', '--code', code])).code).toBe(1);
  });

  it("disable with one of the plugin's recovery codes removes the plugin's settings from every row, nothing else", async () => {
    const r = await cli(
      ['disable', 'jane@example.com', '--password-stdin', '--code', 'KKKKKKKKKK', '--json'],
      `${PASSWORD}\n`,
    );
    expect(r.code, r.stderr + r.stdout).toBe(0);
    for (const id of [ids.jane!, ids.janeBare!])
      expect((await preferencesOf(rc, id))!.toString('utf8')).toBe(`a:2:{${OTHER}}`);
    expect(await pluginRaw(ids.jane!, ids.janeBare!)).toBe('absent,absent');
  });

  it("an agent's recover resets the plugin in Roundcube, audited with the store's outcome", async () => {
    const r = await cli(['recover', 'bob@example.com', '--ticket', 'T-4711', '--reason', 'lost phone', '--yes']);
    expect(r.code, r.stderr + r.stdout).toBe(0);
    expect(r.stdout + r.stderr).toMatch(/roundcube/i);
    expect((await preferencesOf(rc, ids.bob!))!.toString('utf8')).toBe(`a:2:{${OTHER}}`);
    expect(await pluginRaw(ids.bob!)).toBe('absent');
    const audit = await cli(['audit', '--account', 'bob@example.com', '--action', 'recover', '--format', 'json']);
    expect(audit.stdout).toMatch(/store:roundcube/);
    expect(audit.stdout).toMatch(/changed/);
    noSecrets(r.stdout + r.stderr + audit.stdout);
  });

  it('recover on preferences mail2fa cannot parse exactly: reported incomplete with the reason (65), the row untouched', async () => {
    await addMailbox(ctx, 'odd@example.com', PASSWORD);
    const odd = `a:2:{s:3:"obj";O:8:"stdClass":0:{}s:24:"twofactor_gauthenticator";${prefs(secrets.bob, []).split('s:24:"twofactor_gauthenticator";')[1]}`;
    const id = await insertUser(rc, 'odd@example.com', 'localhost', odd);
    const r = await cli(['recover', 'odd@example.com', '--ticket', 'T-4712', '--yes']);
    expect(r.code).toBe(65);
    expect(r.stdout + r.stderr).toMatch(/INCOMPLETE/);
    expect(r.stdout + r.stderr).toMatch(/do not parse exactly/);
    expect((await preferencesOf(rc, id))!.toString('utf8')).toBe(odd);
    await rc.exec('UPDATE users SET preferences = ? WHERE user_id = ?', ['a:0:{}', id]); // out of the migration's way
  });

  it('migrate-from roundcube: dry run, then move and clear; Roundcube reads no 2FA, mail2fa verifies the same secret', async () => {
    const dry = await cli(['--json', 'migrate-from', 'roundcube', '--dry-run']);
    expect(dry.code, dry.stderr).toBe(0);
    expect(JSON.parse(dry.stdout)).toMatchObject({ ok: true, dryRun: true, migrated: 1, store: 'roundcube' });
    expect(await pluginRaw(ids.carl!)).toBe('string');

    const noYes = await cli(['migrate-from', 'roundcube', '--clear-source']);
    expect(noYes.code).toBe(64); // no terminal to confirm: the error names --yes
    expect(noYes.stderr).toContain('--yes');

    const run = await cli(['--json', '--yes', 'migrate-from', 'roundcube', '--clear-source']);
    expect(run.code, run.stderr).toBe(0);
    expect(JSON.parse(run.stdout)).toMatchObject({
      ok: true,
      migrated: 1,
      cleared: 1,
      accounts: [{ email: 'carl@example.com', outcome: 'migrate' }],
    });
    expect(await pluginRaw(ids.carl!)).toBe('absent');
    expect((await preferencesOf(rc, ids.carl!))!.toString('utf8')).toBe(`a:2:{${OTHER}}`);
    const status = await cli(['status', 'carl@example.com', '--json']);
    expect(JSON.parse(status.stdout)).toMatchObject({ accounts: [{ enabled: true, sources: ['mail2fa'] }] });
    expect((await cli(['verify', 'carl@example.com', '--code', totpCode(secrets.carl, Date.now())])).code).toBe(0);
    noSecrets(dry.stdout + run.stdout + run.stderr);
  });

  it('enable --store roundcube: the confirmed secret goes into the plugin (encrypted as Roundcube does), which real Roundcube reads', async () => {
    const start = await cli(
      ['--json', 'enable', 'plain@example.com', '--start', '--password-stdin', '--store', 'roundcube'],
      PASSWORD,
    );
    expect(start.code, start.stderr + start.stdout).toBe(0);
    const started = JSON.parse(start.stdout) as { secret: string; store: string };
    expect(started.store).toBe('roundcube');
    const secret = started.secret;
    const sms = await cli(
      [
        '--json',
        'enable',
        'plain@example.com',
        '--start',
        '--password-stdin',
        '--store',
        'roundcube',
        '--method',
        'sms',
        '--phone',
        '011-45-20123456',
      ],
      PASSWORD,
    );
    expect(sms.code).toBe(64); // the plugin takes an authenticator app only
    const code = totpCode(secret, Date.now());
    const confirm = await cli([
      '--json',
      'enable',
      'plain@example.com',
      '--confirm',
      '--code',
      code,
      '--store',
      'roundcube',
    ]);
    expect(confirm.code, confirm.stderr + confirm.stdout).toBe(0);
    const done = JSON.parse(confirm.stdout) as { recoveryCodes: string[]; store: string };
    expect(done.store).toBe('roundcube');
    expect(done.recoveryCodes).toHaveLength(4);
    for (const c of done.recoveryCodes) expect(c).toMatch(/^[A-Z2-7]{10}$/);
    const [rcRead] = await runOracle<{ pluginRaw: string; plugin: unknown }>(rcConf.dir, [
      { op: 'read', dsn: rc.dsn, userId: ids.plain, desKey: DES_KEY, cipher: 'AES-256-GCM', encrypt: true },
    ]);
    expect(rcRead).toMatchObject({
      pluginRaw: 'string',
      plugin: { secret, activate: true, recovery_codes: done.recoveryCodes },
    });
    // The confirmation code is used up (replay), mail2fa's own store stays empty, status names Roundcube.
    expect((await cli(['verify', 'plain@example.com', '--code', code])).code).toBe(1);
    const status = JSON.parse((await cli(['status', 'plain@example.com', '--json'])).stdout) as {
      accounts: Array<{ sources: string[] }>;
    };
    expect(status.accounts[0]!.sources).toEqual(['roundcube']);
    const again = await cli(
      ['--json', 'enable', 'plain@example.com', '--start', '--password-stdin', '--store', 'roundcube'],
      PASSWORD,
    );
    expect(again.code).toBe(65); // already on in Roundcube
  });

  it('doctor reports the Roundcube store', async () => {
    const r = await cli(['doctor', '--json']);
    const checks = (JSON.parse(r.stdout) as { checks: Array<{ name: string; status: string }> }).checks;
    expect(checks.find((c) => c.name === 'store roundcube')).toMatchObject({ status: 'ok' });
    expect(checks.find((c) => c.name === 'store roundcube: rows')).toMatchObject({ status: 'ok' });
  });
});
