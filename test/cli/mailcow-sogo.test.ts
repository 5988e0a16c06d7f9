/**
 * A mailcow site and a SOGo site through the built binary, each configured exactly as docs/mailcow-sogo.md shows:
 * `status`, `verify` (mail2fa's replay protection on the store's secret) and `recover` (audited, per-store outcome),
 * on MariaDB (their database); SOGo with a real memcached.
 */
import { createHmac } from 'node:crypto';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Context } from '../../src/context.js';
import { hashPassword } from '../../src/crypto/passwords.js';
import { openDatabase, type Database } from '../../src/db/connection.js';
import { runCli, ndjsonRows } from '../helpers/cli.js';
import { testContext, testEnv, addMailbox } from '../helpers/context.js';
import { createTestDb, describeMariadb, type TestDb } from '../helpers/db.js';
import { freePort, mcGet, mcSet, startMemcached, type Memcached } from '../helpers/memcached.js';
import { createMailcowSchema, createSogoSchema } from '../helpers/store-fixtures.js';

const USER = 'user@example.com';
const PASSWORD = 'correct horse';

/**
 * RFC 6238 code of raw key bytes at `nowMs` (independent of mail2fa's own TOTP code). mail2fa accepts ±1 step, so a
 * code computed just before a step boundary still passes just after it.
 */
function totp(key: Buffer, nowMs = Date.now()): string {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(Math.floor(nowMs / 1000 / 30)));
  const mac = createHmac('sha1', key).update(counter).digest();
  const o = mac[mac.length - 1]! & 0x0f;
  return String((mac.readUInt32BE(o) & 0x7fffffff) % 1_000_000).padStart(6, '0');
}

function json(stdout: string): Record<string, unknown> {
  return JSON.parse(stdout) as Record<string, unknown>;
}

/** The one account row of `status --json EMAIL`. */
function statusRow(stdout: string): Record<string, unknown> {
  const doc = JSON.parse(stdout) as { ok: boolean; accounts: Record<string, unknown>[] };
  expect(doc.ok).toBe(true);
  expect(doc.accounts).toHaveLength(1);
  return doc.accounts[0]!;
}

// mailcow and SOGo keep their data in MariaDB/MySQL: the sites run there (SQLite is covered in test/stores/).
describeMariadb('mailcow site (CLI)', (kind) => {
  let tdb: TestDb;
  let ctx: Context;
  let db: Database;
  let env: Record<string, string>;
  let config: string;
  /** mailcow's usual 16-character secret (80 bits). */
  const secret = 'JBSWY3DPEHPK3PXP';
  const key = Buffer.from('48656c6c6f21deadbeef', 'hex');
  const cli = (args: string[], input?: string) => runCli(['--config', config, ...args], { env, input });

  beforeAll(async () => {
    tdb = await createTestDb(kind);
    db = await openDatabase({ url: tdb.url, connectTimeoutMs: 3000 });
    await createMailcowSchema(db);
    const hash = await hashPassword(PASSWORD, 'BLF-CRYPT');
    await db.knex('mailbox').insert([
      { username: USER, password: hash, active: 1, domain: 'example.com', attributes: '{"force_tfa":"1"}' },
      { username: 'plain@example.com', password: hash, active: 1, domain: 'example.com', attributes: '{}' },
      { username: 'owner@example.com', password: hash, active: 1, domain: 'example.com', attributes: null },
      { username: 'lost@example.com', password: hash, active: 1, domain: 'example.com', attributes: null },
    ]);
    await db.knex('tfa').insert([
      { key_id: 'phone', username: USER, authmech: 'totp', secret, active: 1 },
      { key_id: 'key', username: USER, authmech: 'webauthn', keyHandle: 'kh', publicKey: 'pk', active: 1 },
      { key_id: 'decoy', username: 'User@Example.com', authmech: 'totp', secret, active: 1 },
      {
        key_id: 'app',
        username: 'owner@example.com',
        authmech: 'totp',
        secret: 'GNTDOOBWHA2TAZJTHA3TKNJQMZSGCYRY',
        active: 1,
      },
      { key_id: 'otp', username: 'owner@example.com', authmech: 'yubi_otp', secret: 'id:key:cccccccccccc', active: 1 },
      { key_id: 'old phone', username: 'lost@example.com', authmech: 'totp', secret, active: 1 },
      {
        key_id: 'laptop',
        username: 'lost@example.com',
        authmech: 'webauthn',
        keyHandle: 'kh',
        publicKey: 'pk',
        active: 1,
      },
    ]);
    config = join(tdb.dir, 'mail2fa.yaml');
    // The block of docs/mailcow-sogo.md, on the test database.
    writeFileSync(
      config,
      [
        'accounts:',
        '  preset: postfixadmin',
        '  columns: { totpSecret: null, alternateEmail: null }',
        'stores:',
        '  - name: mailcow',
        '    kind: mailcow',
        '    options:',
        '      table: tfa',
        '      mailboxTable: mailbox',
        '',
      ].join('\n'),
    );
    ctx = await testContext(tdb, { configPath: config });
    env = testEnv(tdb);
  });

  afterAll(async () => {
    await ctx?.close();
    await db?.close();
    await tdb?.drop();
  });

  it('status shows the mailcow authenticators, force_tfa, and nothing for a mailbox without any', async () => {
    const r = await cli(['--json', 'status', USER]);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const row = statusRow(r.stdout) as unknown as {
      enabled: boolean;
      enforced: boolean;
      sources: string[];
      stores: { store: string; factors: { kind: string }[]; details: Record<string, unknown> }[];
    };
    expect(row).toMatchObject({ enabled: true, enforced: true, sources: ['mailcow'] });
    const store = row.stores.find((s) => s.store === 'mailcow')!;
    expect(store.factors.map((f) => f.kind)).toEqual(['totp', 'webauthn']);
    expect(store.details).toMatchObject({ forceTfa: true, authenticators: 2 });
    expect(r.stdout).not.toContain(secret);
    const all = await cli(['status', '--all', '--format', 'ndjson']);
    expect(all.code).toBe(0);
    const rows = ndjsonRows<{ email: string; enabled: boolean }>(all.stdout);
    expect(Object.fromEntries(rows.map((x) => [x.email, x.enabled]))).toEqual({
      [USER]: true,
      'plain@example.com': false,
      'owner@example.com': true,
      'lost@example.com': true,
    });
  });

  it('verify accepts the mailcow TOTP once (replay refused by mail2fa) and rejects a wrong code', async () => {
    const code = totp(key);
    const ok = await cli(['verify', USER], code);
    expect(ok.code).toBe(0);
    const replay = await cli(['verify', USER], code);
    expect(replay.code).toBe(1);
    const wrong = await cli(['verify', USER], code === '000000' ? '111111' : '000000');
    expect(wrong.code).toBe(1);
  });

  it("recover deletes exactly the address's tfa rows, audited with the store's outcome", async () => {
    const r = await cli(['--yes', 'recover', USER, '--ticket', 'T-100']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(
      /store mailcow\s+reset: every mailcow authenticator removed: deleted 2 tfa rows \(totp, webauthn\)/,
    );
    const rows = (await db.knex('tfa').select('username', 'key_id')) as { username: string; key_id: string }[];
    expect(rows.filter((x) => x.username === USER || x.username === 'User@Example.com')).toEqual([
      { username: 'User@Example.com', key_id: 'decoy' },
    ]);
    const audit = await cli(['audit', '--account', USER, '--action', 'recover', '--format', 'json']);
    expect(audit.stdout).toContain('"store:mailcow":"changed"');
    const status = await cli(['--json', 'status', USER]);
    expect(statusRow(status.stdout)).toMatchObject({ enabled: false });
    const again = await cli(['--yes', 'recover', USER, '--ticket', 'T-101']);
    expect(again.code).toBe(0);
    expect(again.stdout).toMatch(/nothing to recover/i);
  });

  it("recover --temporary-code uses mailcow's own one-login bypass: rows kept, active = 0, said so", async () => {
    const lost = 'lost@example.com';
    const r = await cli(['--yes', 'recover', lost, '--ticket', 'T-102', '--temporary-code']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(
      /store mailcow\s+reset: set active = 0 on 2 tfa rows: mailcow lets the next password sign-in through without a code and then sets them back to active/,
    );
    expect(r.stdout).toMatch(/does not ask for a code at all, that is this one-time exception/);
    const rows = (await db.knex('tfa').select('key_id', 'active', 'username')) as {
      key_id: string;
      active: number;
      username: string;
    }[];
    expect(rows.filter((x) => x.username === lost).map((x) => [x.key_id, Number(x.active)])).toEqual([
      ['old phone', 0],
      ['laptop', 0],
    ]);
    const status = statusRow((await cli(['--json', 'status', lost])).stdout) as {
      stores: { store: string; activated: boolean; enforced: boolean; notEnforced: string[] }[];
    };
    expect(status.stores.find((x) => x.store === 'mailcow')).toMatchObject({
      activated: true,
      enforced: false,
      notEnforced: [expect.stringMatching(/one-login bypass/)],
    });
  });

  it('disable with password and a code of the mailcow TOTP removes every authenticator of the owner', async () => {
    const owner = 'owner@example.com';
    const ownerKey = Buffer.from('3f786850e387550fdab8', 'ascii');
    const refused = await cli(['disable', owner, '--password-stdin', '--code', totp(ownerKey)], 'wrong password\n');
    expect(refused.code).toBe(77);
    expect(await db.knex('tfa').where('username', owner).count({ n: '*' }).first()).toMatchObject({ n: 2 });
    const r = await cli(['disable', owner, '--password-stdin', '--code', totp(ownerKey)], `${PASSWORD}\n`);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const left = (await db.knex('tfa').select('username')) as { username: string }[];
    expect(left.some((x) => x.username === owner)).toBe(false);
  });
});

describeMariadb('SOGo site (CLI)', (kind) => {
  let mailDb: TestDb;
  let sogoDb: TestDb;
  let ctx: Context;
  let sogo: Database;
  let memcached: Memcached;
  let env: Record<string, string>;
  const totpKey = '3f786850e387550fdab8';
  const configFor = (servers: string[]) => {
    const file = join(mailDb.dir, `mail2fa-${servers.length}-${servers[0]?.split(':')[1] ?? 'none'}.yaml`);
    writeFileSync(
      file,
      [
        'stores:',
        '  - name: sogo',
        '    kind: sogo',
        `    db: { url: "${sogoDb.url}" }`,
        '    options:',
        '      table: sogo_user_profile',
        '      keyGeneration: auto',
        '      defaultEnabled: false',
        '      memcached:',
        `        servers: ${JSON.stringify(servers)}`,
        '        timeoutMs: 500',
        '      cacheCleanupInterval: 300',
        '',
      ].join('\n'),
    );
    return file;
  };
  const cli = (config: string, args: string[], input?: string) => runCli(['--config', config, ...args], { env, input });
  const defaults = async (uid: string) =>
    ((await sogo.knex('sogo_user_profile').where('c_uid', uid).first('c_defaults')) as { c_defaults: string })
      .c_defaults;

  beforeAll(async () => {
    memcached = await startMemcached();
    mailDb = await createTestDb(kind);
    sogoDb = await createTestDb(kind);
    ctx = await testContext(mailDb);
    for (const a of [USER, 'other@example.com']) await addMailbox(ctx, a, PASSWORD);
    sogo = await openDatabase({ url: sogoDb.url, connectTimeoutMs: 3000 });
    await createSogoSchema(sogo);
    const settings = JSON.stringify({ General: { totpKey } });
    await sogo.knex('sogo_user_profile').insert([
      { c_uid: USER, c_defaults: '{"SOGoLanguage":"Fran\\u00e7ais","SOGoTOTPEnabled":1}', c_settings: settings },
      { c_uid: 'other@example.com', c_defaults: '{"SOGoTOTPEnabled":1}', c_settings: settings },
    ]);
    env = testEnv(mailDb);
  });

  afterAll(async () => {
    await ctx?.close();
    await sogo?.close();
    await mailDb?.drop();
    await sogoDb?.drop();
    await memcached?.stop();
  });

  it('status: enabled in SOGo, with the key generation', async () => {
    const r = await cli(configFor([memcached.address]), ['--json', 'status', USER]);
    expect(r.code).toBe(0);
    expect(statusRow(r.stdout)).toMatchObject({
      enabled: true,
      enforced: true,
      sources: ['sogo'],
      stores: [{ store: 'sogo', details: { key: 'General.totpKey' } }],
    });
    expect(r.stdout).not.toContain(totpKey);
  });

  it('verify: a code of the SOGo key (its ASCII bytes) once; doctor sees the memcached', async () => {
    const config = configFor([memcached.address]);
    const code = totp(Buffer.from(totpKey, 'ascii'));
    expect((await cli(config, ['verify', USER], code)).code).toBe(0);
    expect((await cli(config, ['verify', USER], code)).code).toBe(1);
    const doctor = await cli(config, ['doctor', '--json']);
    const checks = (json(doctor.stdout) as { checks: { name: string; status: string }[] }).checks;
    expect(checks.find((c) => c.name === `store sogo: memcached ${memcached.address}`)).toMatchObject({ status: 'ok' });
  });

  it('recover writes SOGoTOTPEnabled: 0 and deletes both cache entries', async () => {
    await mcSet(memcached.port, `${USER}+defaults`, '{"SOGoTOTPEnabled":1}');
    await mcSet(memcached.port, `${USER}+settings`, '{}');
    const r = await cli(configFor([memcached.address]), ['--yes', 'recover', USER, '--ticket', 'T-200']);
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/store sogo\s+reset: SOGo TOTP turned off: wrote SOGoTOTPEnabled: 0/);
    expect(await defaults(USER)).toBe('{"SOGoLanguage":"Fran\\u00e7ais","SOGoTOTPEnabled":0}');
    expect(await mcGet(memcached.port, `${USER}+defaults`)).toBeNull();
    expect(await mcGet(memcached.port, `${USER}+settings`)).toBeNull();
  });

  it('recover with memcached unreachable: the change is made and the stale cache reported', async () => {
    const dead = await freePort();
    const r = await cli(configFor([`127.0.0.1:${dead}`]), [
      '--yes',
      'recover',
      'other@example.com',
      '--ticket',
      'T-201',
    ]);
    expect(r.stdout + r.stderr).toMatch(/SOGo's cache could not be cleared.*up to 300 s/);
    expect(await defaults('other@example.com')).toBe('{"SOGoTOTPEnabled":0}');
  });
});
