/**
 * SOGo's profile store on MariaDB and SQLite, with a real memcached (Debian's
 * /usr/bin/memcached on a loopback port of its own): status of both key generations, "enabled but no key", the
 * byte-preserving JSON rewrite, refusals with nothing written, compare-and-set, and cache invalidation.
 */
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { createTestDb, describeEachDb, type TestDb } from '../helpers/db.js';
import { createSogoSchema, refusal, storeHarness, writeCtx, type StoreHarness } from '../helpers/store-fixtures.js';
import { freePort, mcGet, mcSet, startMemcached, type Memcached } from '../helpers/memcached.js';
import { sogoStore, SogoOptionsSchema } from '../../src/stores/sogo.js';
import { base32Encode as encodeBase32 } from '../../src/totp/totp.js';
import type { ForeignStore } from '../../src/stores/types.js';

const USER = 'user@example.com';
const TOTP_KEY = '3f786850e387550fdab8';
const SETTINGS_NEW = JSON.stringify({
  General: { totpKey: TOTP_KEY, PrivateSalt: 'AbCdEfGhIjKlMnOpQrStUvWxYz012345' },
  Mail: { SortingState: ['arrival', '0'] },
});
const SETTINGS_OLD = JSON.stringify({ General: { PrivateSalt: 'AbCdEfGhIjKlMnOpQrStUvWxYz012345' } });
/** What SOGo writes, plus the forms a JSON.parse/JSON.stringify round trip would change. */
const TRICKY_DEFAULTS =
  '{"SOGoLanguage":"Fran\\u00e7ais","SOGoMailSignature":"Gr\\u00fc\\u00dfe \\/ ✓","n":1.0,"big":123456789012345678901,' +
  '"SOGoTOTPEnabled":1,"nested":{"SOGoTOTPEnabled":1},"SOGoMailAutoSave":"5" }';

function open(h: StoreHarness, options: Record<string, unknown> = {}): ForeignStore {
  return sogoStore.open({ name: 'sogo', kind: 'sogo', options: SogoOptionsSchema.parse(options) }, h.deps);
}

async function defaultsOf(h: StoreHarness, uid: string): Promise<string | null> {
  const row = await h.db.knex('sogo_user_profile').select('c_uid', 'c_defaults').where('c_uid', uid).first();
  return row && row.c_uid === uid ? row.c_defaults : null;
}

async function allRows(h: StoreHarness) {
  return h.db.knex('sogo_user_profile').select('c_uid', 'c_defaults', 'c_settings').orderBy('c_uid');
}

let memcached: Memcached;
beforeAll(async () => {
  memcached = await startMemcached();
});
afterAll(async () => {
  await memcached?.stop();
});

describeEachDb('SOGo profile store', (kind) => {
  let testDb: TestDb;
  let h: StoreHarness;

  beforeEach(async () => {
    testDb = await createTestDb(kind);
    h = await storeHarness(testDb);
    await createSogoSchema(h.db);
    await h.db.knex('sogo_user_profile').insert([
      { c_uid: USER, c_defaults: TRICKY_DEFAULTS, c_settings: SETTINGS_NEW },
      { c_uid: 'salt@example.com', c_defaults: '{"SOGoTOTPEnabled":1}', c_settings: SETTINGS_OLD },
      { c_uid: 'nokey@example.com', c_defaults: '{"SOGoTOTPEnabled":1}', c_settings: '{"General":{}}' },
      { c_uid: 'old@example.com', c_defaults: '{"SOGoGoogleAuthenticatorEnabled":1}', c_settings: SETTINGS_OLD },
      {
        c_uid: 'off@example.com',
        c_defaults: '{"SOGoTOTPEnabled":0,"SOGoLanguage":"English"}',
        c_settings: SETTINGS_NEW,
      },
      { c_uid: 'unset@example.com', c_defaults: '{"SOGoLanguage":"English"}', c_settings: SETTINGS_NEW },
      { c_uid: 'null@example.com', c_defaults: null, c_settings: SETTINGS_NEW },
      { c_uid: 'Case@Example.com', c_defaults: '{"SOGoTOTPEnabled":1}', c_settings: SETTINGS_NEW },
    ]);
  });

  afterEach(async () => {
    await h.close();
    await testDb.drop();
  });

  it('status: totpKey generation, PrivateSalt generation, older key name, and "enabled but no key"', async () => {
    const store = open(h);
    const map = await store.statusBatch([
      USER,
      'salt@example.com',
      'nokey@example.com',
      'old@example.com',
      'off@example.com',
      'nobody@example.com',
    ]);
    expect(map.has('nobody@example.com')).toBe(false);
    expect(map.get(USER)).toMatchObject({
      activated: true,
      enforced: true,
      details: { enabledBy: 'SOGoTOTPEnabled', key: 'General.totpKey' },
    });
    expect(map.get(USER)!.factors).toEqual([
      { kind: 'totp', active: true, label: 'General.totpKey', weak: true, ref: `sogo_user_profile.c_uid=${USER}` },
    ]);
    expect(map.get('salt@example.com')).toMatchObject({
      activated: true,
      enforced: true,
      details: { key: 'General.PrivateSalt' },
    });
    expect(map.get('old@example.com')).toMatchObject({
      activated: true,
      enforced: true,
      details: { enabledBy: 'SOGoGoogleAuthenticatorEnabled' },
    });
    const nokey = map.get('nokey@example.com')!;
    expect(nokey).toMatchObject({ activated: true, enforced: false });
    expect(nokey.notEnforced![0]).toMatch(/no TOTP key.*SOGo lets the user in/);
    expect(map.get('off@example.com')).toMatchObject({ activated: false, enforced: false });
    expect(JSON.stringify([...map.values()])).not.toContain(TOTP_KEY);
  });

  it('statusBatch is one query per batch, never one per address', async () => {
    const emails = Array.from({ length: 400 }, (_, i) => `u${i}@example.com`).concat(USER, 'salt@example.com');
    let queries = 0;
    const count = () => void queries++;
    h.db.knex.on('query', count);
    try {
      expect([...(await open(h).statusBatch(emails)).keys()].sort()).toEqual(['salt@example.com', USER]);
    } finally {
      h.db.knex.removeListener('query', count);
    }
    expect(queries).toBe(1);
  });

  it('status follows the configured key generation and the system default', async () => {
    expect((await open(h, { keyGeneration: 'privateSalt' }).account(USER))!.details).toMatchObject({
      key: 'General.PrivateSalt',
    });
    expect(await open(h, { keyGeneration: 'totpKey' }).account('salt@example.com')).toMatchObject({
      activated: true,
      enforced: false,
    });
    expect(await open(h).account('unset@example.com')).toMatchObject({ activated: false });
    expect(await open(h, { defaultEnabled: true }).account('unset@example.com')).toMatchObject({
      activated: true,
      enforced: true,
      details: { enabledBy: expect.stringMatching(/default/) },
    });
  });

  it('totpSecrets: the ASCII bytes of the key, SOGo window 0; none when off or keyless', async () => {
    const store = open(h);
    const [secret] = await store.totpSecrets!(USER);
    expect(secret!.key.toString('ascii')).toBe(TOTP_KEY);
    expect(encodeBase32(secret!.key)).toBe('GNTDOOBWHA2TAZJTHA3TKNJQMZSGCYRY'); // the documented example secret
    expect(secret!.storeWindow).toBe(0);
    const [salt] = await store.totpSecrets!('salt@example.com');
    expect(salt!.key.toString('ascii')).toBe('AbCdEfGhIjKl');
    expect(await store.totpSecrets!('off@example.com')).toEqual([]);
    expect(await store.totpSecrets!('nokey@example.com')).toEqual([]);
    expect(await store.totpSecrets!('case@example.com')).toEqual([]); // only 'Case@Example.com' exists
  });

  it('reset writes an explicit 0 and leaves every other byte of c_defaults as it was', async () => {
    const store = open(h);
    const before = await allRows(h);
    const change = await store.reset!(USER, writeCtx);
    expect(change.outcome).toBe('changed');
    expect(change.detail).toMatch(/SOGoTOTPEnabled: 0/);
    expect(change.error).toBeUndefined();
    expect(await defaultsOf(h, USER)).toBe(
      TRICKY_DEFAULTS.replace('"SOGoTOTPEnabled":1,"nested"', '"SOGoTOTPEnabled":0,"nested"'),
    );
    const after = await allRows(h);
    expect(after.filter((r) => r.c_uid !== USER)).toEqual(before.filter((r) => r.c_uid !== USER));
    expect(after.find((r) => r.c_uid === USER)!.c_settings).toBe(SETTINGS_NEW); // the key is never written
    expect(await store.account(USER)).toMatchObject({ activated: false });
    expect((await store.reset!(USER, writeCtx)).outcome).toBe('nothing');
  });

  it('reset adds the key where it was missing or NULL, and turns off the older key name', async () => {
    const store = open(h);
    await store.reset!('unset@example.com', writeCtx);
    expect(await defaultsOf(h, 'unset@example.com')).toBe('{"SOGoLanguage":"English","SOGoTOTPEnabled":0}');
    await store.reset!('null@example.com', writeCtx);
    expect(await defaultsOf(h, 'null@example.com')).toBe('{"SOGoTOTPEnabled":0}');
    await store.reset!('old@example.com', writeCtx);
    expect(await defaultsOf(h, 'old@example.com')).toBe('{"SOGoGoogleAuthenticatorEnabled":0,"SOGoTOTPEnabled":0}');
    expect((await store.reset!('off@example.com', writeCtx)).outcome).toBe('nothing');
  });

  it('exact uid: a profile differing only in case is neither read nor written', async () => {
    const store = open(h);
    expect(await store.account('case@example.com')).toBeNull();
    expect((await store.reset!('case@example.com', writeCtx)).outcome).toBe('nothing');
    expect(await defaultsOf(h, 'Case@Example.com')).toBe('{"SOGoTOTPEnabled":1}');
  });

  it('refuses malformed JSON, duplicate keys and unreadable values, writing nothing', async () => {
    const bad: Record<string, string> = {
      'malformed@example.com': '{"SOGoTOTPEnabled":1,}',
      'dupe@example.com': '{"SOGoTOTPEnabled":1,"SOGoLanguage":"English","SOGoTOTPEnabled":0}',
      'nested-dupe@example.com': '{"SOGoTOTPEnabled":1,"x":{"a":1,"a":2}}',
      'value@example.com': '{"SOGoTOTPEnabled":"maybe"}',
      'array@example.com': '[1]',
    };
    for (const [uid, defaults] of Object.entries(bad))
      await h.db.knex('sogo_user_profile').insert({ c_uid: uid, c_defaults: defaults, c_settings: SETTINGS_NEW });
    const store = open(h, { memcached: { servers: [memcached.address] } });
    const before = await allRows(h);
    for (const uid of Object.keys(bad)) {
      expect((await store.account(uid))!.problems!.length).toBeGreaterThan(0);
      const err = await refusal(store.reset!(uid, writeCtx));
      expect(err.exitCode).toBe(65);
      expect(err.code).toBe('store_value_unparsable');
      expect(err.message).not.toContain(TOTP_KEY);
    }
    expect(await allRows(h)).toEqual(before);
  });

  it("after a change both memcached entries are gone; other users' entries stay", async () => {
    const store = open(h, { memcached: { servers: [memcached.address] } });
    await mcSet(memcached.port, `${USER}+defaults`, TRICKY_DEFAULTS);
    await mcSet(memcached.port, `${USER}+settings`, SETTINGS_NEW);
    await mcSet(memcached.port, `salt@example.com+defaults`, '{"SOGoTOTPEnabled":1}');
    const change = await store.reset!(USER, writeCtx);
    expect(change.outcome).toBe('changed');
    expect(change.error).toBeUndefined();
    expect(change.detail).toMatch(/cache entries deleted on 1 memcached server \(2 were cached\)/);
    expect(await mcGet(memcached.port, `${USER}+defaults`)).toBeNull();
    expect(await mcGet(memcached.port, `${USER}+settings`)).toBeNull();
    expect(await mcGet(memcached.port, 'salt@example.com+defaults')).toBe('{"SOGoTOTPEnabled":1}');
  });

  it("inside mail2fa's transaction: written with it, and the cache cleared again once it commits", async () => {
    const store = open(h, { memcached: { servers: [memcached.address] } });
    await mcSet(memcached.port, `${USER}+defaults`, TRICKY_DEFAULTS);
    await h.db.knex.transaction(async (trx) => {
      const change = await store.reset!(USER, { ...writeCtx, sharedTransaction: trx });
      expect(change.outcome).toBe('changed');
      expect(await mcGet(memcached.port, `${USER}+defaults`)).toBeNull();
      // SOGo reads the still-committed old profile and caches it again before mail2fa commits.
      await mcSet(memcached.port, `${USER}+defaults`, TRICKY_DEFAULTS);
    });
    for (let i = 0; i < 100 && (await mcGet(memcached.port, `${USER}+defaults`)) !== null; i++)
      await new Promise((r) => setTimeout(r, 20));
    expect(await mcGet(memcached.port, `${USER}+defaults`)).toBeNull();
    expect(await defaultsOf(h, USER)).toContain('"SOGoTOTPEnabled":0');

    const rollback = new Error('rollback');
    await expect(
      h.db.knex.transaction(async (trx) => {
        await store.reset!('salt@example.com', { ...writeCtx, sharedTransaction: trx });
        throw rollback;
      }),
    ).rejects.toBe(rollback);
    expect(await defaultsOf(h, 'salt@example.com')).toBe('{"SOGoTOTPEnabled":1}');
  });

  it('a non-ASCII uid: its cache keys are deleted as SOGo writes them (UTF-8 bytes)', async () => {
    const uid = 'jörg.ñ@example.com';
    await h.db
      .knex('sogo_user_profile')
      .insert({ c_uid: uid, c_defaults: '{"SOGoTOTPEnabled":1}', c_settings: SETTINGS_NEW });
    await mcSet(memcached.port, `${uid}+defaults`, '{"SOGoTOTPEnabled":1}');
    await mcSet(memcached.port, `${uid}+settings`, SETTINGS_NEW);
    const change = await open(h, { memcached: { servers: [memcached.address] } }).reset!(uid, writeCtx);
    expect(change.detail).toMatch(/\(2 were cached\)/);
    expect(await mcGet(memcached.port, `${uid}+defaults`)).toBeNull();
    expect(await mcGet(memcached.port, `${uid}+settings`)).toBeNull();
  });

  it('an unreachable memcached is reported with the change, which happened', async () => {
    const dead = await freePort();
    const store = open(h, { memcached: { servers: [`127.0.0.1:${dead}`], timeoutMs: 500 }, cacheCleanupInterval: 900 });
    const change = await store.reset!(USER, writeCtx);
    expect(change.outcome).toBe('changed');
    expect(change.error).toMatchObject({ code: 'cache_invalidation_failed', exitCode: 69 });
    expect(change.error!.message).toMatch(/change is saved.*ECONNREFUSED.*up to 900 s/);
    expect(change.detail).toMatch(/WARNING/);
    expect(await store.account(USER)).toMatchObject({ activated: false });
  });

  it('disable is the same explicit 0', async () => {
    const change = await open(h).disable!('salt@example.com', writeCtx);
    expect(change.outcome).toBe('changed');
    expect(await defaultsOf(h, 'salt@example.com')).toBe('{"SOGoTOTPEnabled":0}');
  });

  it('doctor: schema, plaintext keys, write access, memcached reachable and not', async () => {
    const dead = await freePort();
    const checks = await open(h, {
      memcached: { servers: [memcached.address, `127.0.0.1:${dead}`], timeoutMs: 500 },
    }).doctor();
    const status = Object.fromEntries(checks.map((c) => [c.name.replace('store sogo: ', ''), c.status]));
    expect(status).toMatchObject({
      schema: 'ok',
      'plaintext secrets': 'warn',
      'write access': 'ok',
      [`memcached ${memcached.address}`]: 'ok',
      [`memcached 127.0.0.1:${dead}`]: 'fail',
    });
    const none = await open(h).doctor();
    expect(none.find((c) => c.name.endsWith('memcached'))).toMatchObject({ status: 'warn' });
  });

  if (kind === 'mariadb') {
    it('compare-and-set: two agents at once, exactly one writes', async () => {
      const other = await storeHarness(testDb);
      try {
        const results = await Promise.all([open(h).reset!(USER, writeCtx), open(other).reset!(USER, writeCtx)]);
        expect(results.map((r) => r.outcome).sort()).toEqual(['changed', 'nothing']);
      } finally {
        await other.close();
      }
    });
  }
});

describe('SOGo options', () => {
  it('validates memcached servers and refuses unknown keys', () => {
    expect(
      SogoOptionsSchema.safeParse({
        memcached: { servers: ['127.0.0.1:11211', '/run/memcached.sock', '[::1]:11211', 'cache'] },
      }).success,
    ).toBe(true);
    expect(SogoOptionsSchema.safeParse({ memcached: { servers: ['127.0.0.1:99999'] } }).success).toBe(false);
    expect(SogoOptionsSchema.safeParse({ memcached: { servers: [] } }).success).toBe(false);
    expect(SogoOptionsSchema.safeParse({ keyGen: 'auto' }).success).toBe(false);
  });
});

describe('SOGo profile store: compare-and-set against a concurrent save [sqlite]', () => {
  it("SOGo saving the profile between read and write: mail2fa re-reads and keeps SOGo's change", async () => {
    const { default: Sqlite } = await import('better-sqlite3');
    const testDb = await createTestDb('sqlite');
    const h = await storeHarness(testDb);
    try {
      await createSogoSchema(h.db);
      await h.db.knex('sogo_user_profile').insert({
        c_uid: USER,
        c_defaults: '{"SOGoTOTPEnabled":1,"SOGoLanguage":"English"}',
        c_settings: SETTINGS_NEW,
      });
      const sogo = new Sqlite(h.db.file!);
      sogo.pragma('busy_timeout = 5000');
      let saves = 0;
      h.db.knex.on('query', (q: { sql: string }) => {
        // SOGo saves the user's language right after mail2fa read the profile, before mail2fa's UPDATE.
        if (saves === 0 && /^update/i.test(q.sql) && q.sql.includes('sogo_user_profile')) {
          saves++;
          sogo
            .prepare('UPDATE sogo_user_profile SET c_defaults = ? WHERE c_uid = ?')
            .run('{"SOGoTOTPEnabled":1,"SOGoLanguage":"Deutsch"}', USER);
        }
      });
      const change = await open(h).reset!(USER, writeCtx);
      sogo.close();
      expect(saves).toBe(1);
      expect(change.outcome).toBe('changed');
      expect(await defaultsOf(h, USER)).toBe('{"SOGoTOTPEnabled":0,"SOGoLanguage":"Deutsch"}');
    } finally {
      await h.close();
      await testDb.drop();
    }
  });
});
