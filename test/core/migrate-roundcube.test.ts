/**
 * `migrate-from roundcube` (src/core/migrate-store.ts over the Roundcube store): the plugin's secrets move into
 * mail2fa's encrypted store, same secret (the user's app keeps working), all or nothing; optionally the plugin's
 * key is removed afterwards; Roundcube then reads no 2FA and every other setting unchanged.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Context } from '../../src/context.js';
import { migrateFromStore } from '../../src/core/migrate-store.js';
import { readFactor } from '../../src/core/factors.js';
import { Vault } from '../../src/core/vault.js';
import { base32 } from '../../src/stores/roundcube-plugin.js';
import { createTestDb, type TestDb } from '../helpers/db.js';
import { addMailbox, testContext } from '../helpers/context.js';
import {
  createRoundcubeDb,
  describeRoundcubeEachDb,
  roundcubeConfigDir,
  runOracle,
  type RoundcubeDb,
} from '../helpers/roundcube.js';
import { encryptedPluginValue, insertUser, openRoundcubeStore, preferencesOf } from '../helpers/roundcube-store.js';

const DES_KEY = 'Rc-test-des-key-0123456!';
const rcConf = roundcubeConfigDir();
afterAll(() => rcConf.cleanup());

function encryptedPrefs(secret: string, before = 's:8:"timezone";s:3:"UTC";'): string {
  const value = encryptedPluginValue(DES_KEY, 'aes-256-cbc', { secret, recoveryCodes: ['ABCDEFGHIJ'] });
  return `a:2:{${before}s:24:"twofactor_gauthenticator";${value}}`;
}

describeRoundcubeEachDb('migrate-from roundcube', (kind) => {
  let mail: TestDb;
  let rc: RoundcubeDb;
  let ctx: Context;
  beforeAll(async () => {
    mail = await createTestDb(kind);
    rc = await createRoundcubeDb(kind);
    ctx = await testContext(mail);
  });
  afterAll(async () => {
    await ctx?.close();
    await rc?.drop();
    await mail?.drop();
  });

  it('dry run and refusal change nothing; a real run moves the secrets and clears the plugin key, Roundcube agrees', async () => {
    const secrets = { a: base32(randomBytes(20)), b: base32(randomBytes(10)), c: base32(randomBytes(20)) };
    for (const e of ['a@example.com', 'b@example.com', 'c@example.com', 'bad@example.com']) await addMailbox(ctx, e);
    const ids = {
      a: await insertUser(rc, 'a@example.com', 'localhost', encryptedPrefs(secrets.a)),
      b: await insertUser(rc, 'b@example.com', 'localhost', encryptedPrefs(secrets.b, 's:9:"signature";s:7:"Grüße";')),
      c: await insertUser(rc, 'c@example.com', 'localhost', encryptedPrefs(secrets.c)),
      gone: await insertUser(rc, 'gone@example.com', 'localhost', encryptedPrefs(base32(randomBytes(20)))),
      bad: await insertUser(
        rc,
        'bad@example.com',
        'localhost',
        'a:1:{s:24:"twofactor_gauthenticator";s:8:"garbage!";}',
      ),
    };
    const before = await preferencesOf(rc, ids.b);
    const options = { des_key: DES_KEY, cipher_method: 'AES-256-CBC', pref_encrypt: true };

    // The broken value refuses the whole run (65 from the command), nothing changed anywhere.
    let s = openRoundcubeStore(rc, options);
    const refused = await migrateFromStore(ctx, s.store, { dryRun: false, clear: true, skipInvalid: false });
    await s.close();
    expect(refused).toMatchObject({ refused: true, migrated: 0, invalid: 1, found: 5 });
    expect(refused.accounts.find((a) => a.email === 'bad@example.com')!.problem).toMatch(/does not decrypt/);
    expect(await readFactor((await ctx.db()).knex, ctx.tables, 'a@example.com')).toBeUndefined();

    s = openRoundcubeStore(rc, options);
    const dry = await migrateFromStore(ctx, s.store, { dryRun: true, clear: true, skipInvalid: true });
    await s.close();
    expect(dry).toMatchObject({ dryRun: true, migrated: 3, noMailbox: 1, invalid: 1, weak: 1, cleared: 0 });
    expect(await preferencesOf(rc, ids.b)).toEqual(before);

    s = openRoundcubeStore(rc, options);
    const run = await migrateFromStore(ctx, s.store, { dryRun: false, clear: true, skipInvalid: true });
    await s.close();
    expect(run).toMatchObject({ ok: true, migrated: 3, noMailbox: 1, invalid: 1, weak: 1, cleared: 3 });
    expect(run.accounts.map((a) => [a.email, a.outcome])).toEqual([
      ['a@example.com', 'migrate'],
      ['b@example.com', 'migrate'],
      ['bad@example.com', 'invalid'],
      ['c@example.com', 'migrate'],
      ['gone@example.com', 'no-mailbox'],
    ]);
    // Same secret, sealed in mail2fa's store.
    const vault = new Vault(ctx.masterKey(), ctx.tables, ctx.now);
    const db = await ctx.db();
    for (const [email, secret] of [
      ['a@example.com', secrets.a],
      ['b@example.com', secrets.b],
      ['c@example.com', secrets.c],
    ] as const) {
      const f = (await readFactor(db.knex, ctx.tables, email))!;
      expect(vault.open(ctx.tables.factor, 'secret_ct', email, f.secret_ct!)).toBe(secret);
    }
    const audit = (await db
      .knex(ctx.tables.audit)
      .where({ action: 'migrate-from' })
      .select('account', 'detail')) as Array<{ account: string | null; detail: string }>;
    expect(audit.map((r) => r.account)).toEqual(['a@example.com', 'b@example.com', 'c@example.com', null]);
    expect(audit.map((r) => r.detail).join()).not.toMatch(new RegExp(`${secrets.a}|${secrets.b}|${secrets.c}`));

    // Roundcube reads no 2FA and every other setting exactly as before; the unmigrated rows are untouched.
    expect((await preferencesOf(rc, ids.b))!.toString()).toBe('a:1:{s:9:"signature";s:7:"Grüße";}');
    const rows = await runOracle<{ pluginRaw: string }>(
      rcConf.dir,
      [ids.a, ids.b, ids.gone, ids.bad].map((userId) => ({
        op: 'read',
        dsn: rc.dsn,
        userId,
        desKey: DES_KEY,
        cipher: 'AES-256-CBC',
        encrypt: true,
      })),
    );
    expect(rows.map((r) => r.pluginRaw)).toEqual(['absent', 'absent', 'string', 'string']);

    // A re-run finds nothing left to do.
    s = openRoundcubeStore(rc, options);
    const again = await migrateFromStore(ctx, s.store, { dryRun: false, clear: true, skipInvalid: true });
    await s.close();
    expect(again).toMatchObject({ migrated: 0, cleared: 0, found: 2 });
  });
});
