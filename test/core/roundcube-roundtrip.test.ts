/**
 * Real-Roundcube round trips: Debian's Roundcube 1.6 loads each row with its own rcube_user class
 * and decrypts with its own rcube::decrypt(); what mail2fa writes must be exactly what Roundcube reads, and what
 * Roundcube (rcube_user::save_prefs, as the plugin's __set2FAconfig calls it) writes must be what mail2fa reads.
 * On SQLite and MariaDB Roundcube databases; the plugin's documented sample row as a fixture.
 */
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { removeStringKey } from '../../src/stores/php-serialize.js';
import { base32 } from '../../src/stores/roundcube-plugin.js';
import {
  createRoundcubeDb,
  describeRoundcubeEachDb,
  roundcubeConfigDir,
  runOracle,
  type RoundcubeDb,
} from '../helpers/roundcube.js';
import { WRITE_CTX, insertUser, openRoundcubeStore, preferencesOf } from '../helpers/roundcube-store.js';

const SAMPLE =
  'a:4:{s:11:"client_hash";s:16:"aB3dE5gH7jK9mN1p";s:14:"compose_extwin";i:0;s:24:"twofactor_gauthenticator";a:3:{s:6:"secret";s:16:"JBSWY3DPEHPK3PXP";s:8:"activate";b:1;s:14:"recovery_codes";a:2:{i:0;s:10:"ABCDEFGHIJ";i:1;s:10:"KLMNOPQRST";}}s:14:"signature_note";s:11:"Grüße ✓";}';
const SAMPLE_WITHOUT =
  'a:3:{s:11:"client_hash";s:16:"aB3dE5gH7jK9mN1p";s:14:"compose_extwin";i:0;s:14:"signature_note";s:11:"Grüße ✓";}';
const DES_KEY = 'Rc-test-des-key-0123456!';
// Other settings a real user has: non-ASCII, floats, nested arrays, quotes and semicolons in strings.
const OTHER_PREFS =
  'a:5:{s:8:"timezone";s:13:"Europe/Berlin";s:9:"signature";s:22:"Grüße; \\"quoted\\" ✓";s:10:"font_scale";d:1.25;s:12:"compose_opts";a:2:{i:0;s:4:"html";i:1;b:1;}s:13:"message_sort_";N;}';

interface OracleRead {
  found: boolean;
  preferences: string | null;
  prefs: string;
  pluginRaw: 'array' | 'string' | 'absent';
  plugin: { secret?: string; activate?: boolean; recovery_codes?: string[] } | unknown[];
}

const rcConf = roundcubeConfigDir();
afterAll(() => rcConf.cleanup());

describeRoundcubeEachDb('Roundcube round trip with real Roundcube', (kind) => {
  let rc: RoundcubeDb;
  beforeAll(async () => {
    rc = await createRoundcubeDb(kind);
  });
  afterAll(async () => {
    await rc?.drop();
  });

  const read = (userId: number, cipher: string, encrypt: boolean) => ({
    op: 'read',
    dsn: rc.dsn,
    userId,
    desKey: DES_KEY,
    cipher,
    encrypt,
  });

  it('the documented sample: Roundcube reads it, mail2fa reports it, recover removes exactly the plugin element', async () => {
    const id = await insertUser(rc, 'sample@example.com', 'localhost', SAMPLE);
    const s = openRoundcubeStore(rc, {});
    try {
      const [before] = await runOracle<OracleRead>(rcConf.dir, [read(id, 'DES-EDE3-CBC', false)]);
      expect(before!.plugin).toEqual({
        secret: 'JBSWY3DPEHPK3PXP',
        activate: true,
        recovery_codes: ['ABCDEFGHIJ', 'KLMNOPQRST'],
      });

      const status = await s.store.account('sample@example.com');
      expect(status).toMatchObject({
        activated: true,
        enforced: true,
        factors: [{ kind: 'totp', active: true, weak: true, label: 'localhost' }],
      });
      expect((await s.store.totpSecrets('sample@example.com'))[0]!.key).toEqual(
        Buffer.from('Hello!\xde\xad\xbe\xef', 'latin1'),
      );

      const change = await s.store.reset('sample@example.com', WRITE_CTX);
      expect(change.outcome).toBe('changed');
      expect(change.detail).toMatch(/remembered devices are ended/);
      expect((await preferencesOf(rc, id))!.toString('utf8')).toBe(SAMPLE_WITHOUT);
      const [after] = await runOracle<OracleRead>(rcConf.dir, [read(id, 'DES-EDE3-CBC', false)]);
      expect(after!.pluginRaw).toBe('absent');
      expect(Buffer.from(after!.prefs, 'base64').toString('utf8')).toBe(SAMPLE_WITHOUT); // serialize(get_prefs())
      expect((await s.store.reset('sample@example.com', WRITE_CTX)).outcome).toBe('nothing');
    } finally {
      await s.close();
    }
  });

  for (const [cipher, encrypt] of [
    ['DES-EDE3-CBC', false],
    ['DES-EDE3-CBC', true],
    ['AES-256-CBC', true],
    ['AES-256-GCM', true],
  ] as const) {
    it(`${encrypt ? `encrypted (${cipher})` : 'plaintext'}: Roundcube's writes read by mail2fa, mail2fa's writes read by Roundcube`, async () => {
      const options = { des_key: DES_KEY, cipher_method: cipher, pref_encrypt: encrypt };
      const s = openRoundcubeStore(rc, options, { allowPlaintextWrites: !encrypt });
      const tag = `${cipher.toLowerCase()}-${encrypt ? 'enc' : 'plain'}`;
      try {
        // 1. Roundcube (the plugin's __set2FAconfig through rcube_user::save_prefs) writes; mail2fa reads.
        const secret = base32(randomBytes(10)); // the plugin's own 16-character secrets
        const rcUser = `rc-${tag}@example.com`;
        const rcId = await insertUser(rc, rcUser, 'imap.example.com', OTHER_PREFS);
        // Roundcube's save_prefs for that user, under this case's cipher and encryption setting.
        const roundcubeSave = async (fields: Record<string, unknown>) =>
          (
            await runOracle<{ ok: boolean }>(rcConf.dir, [
              { op: 'save', dsn: rc.dsn, userId: rcId, desKey: DES_KEY, cipher, encrypt, ...fields },
            ])
          )[0];
        // Roundcube's own GCM blobs whose tag holds a "\n" never decrypt, in Roundcube either (rcube-crypto.ts):
        // the plugin then lets the user in, and mail2fa says so. Save again until Roundcube wrote a readable one.
        for (let attempt = 0; ; attempt++) {
          const saved = await roundcubeSave({
            plugin: { secret, activate: true, recovery_codes: ['AAAAAAAAAA', 'BBBBBBBBBB'] },
          });
          expect(saved!.ok).toBe(true);
          const blob = /s:24:"twofactor_gauthenticator";s:\d+:"([A-Za-z0-9+/=]+)"/.exec(
            (await preferencesOf(rc, rcId))!.toString('latin1'),
          )?.[1];
          const raw = blob ? Buffer.from(blob, 'base64') : Buffer.alloc(0);
          const unreadable = cipher === 'AES-256-GCM' && raw.subarray(2, 18).includes(0x0a);
          if (!unreadable) break;
          expect(((await s.store.account(rcUser))!.notEnforced ?? []).join()).toMatch(/does not decrypt.*Broken 2FA/);
          expect(attempt).toBeLessThan(5);
        }
        const status = await s.store.account(rcUser);
        expect(status, JSON.stringify(status)).toMatchObject({
          activated: true,
          enforced: true,
          factors: [{ active: true, weak: true }],
        });
        expect(status!.details!.rows).toEqual([
          {
            userId: rcId,
            username: rcUser,
            mailHost: 'imap.example.com',
            plugin: 'enforced',
            encrypted: encrypt,
            recoveryCodes: 2,
          },
        ]);
        const [key] = await s.store.totpSecrets(rcUser);
        expect(base32(key!.key)).toBe(secret);
        expect(key!.storeWindow).toBe(2);

        // 2. mail2fa consumes a recovery code; Roundcube sees one left, the rest untouched.
        expect(await s.store.consumeRecoveryCode(rcUser, 'AAAAAAAAAA', WRITE_CTX)).toBe(true);
        expect(await s.store.consumeRecoveryCode(rcUser, 'AAAAAAAAAA', WRITE_CTX)).toBe(false);
        const [afterConsume] = await runOracle<OracleRead>(rcConf.dir, [read(rcId, cipher, encrypt)]);
        expect(afterConsume!.plugin).toEqual({ secret, activate: true, recovery_codes: ['BBBBBBBBBB'] });

        // 3. mail2fa resets: Roundcube reads every other setting exactly as before.
        const before = (await preferencesOf(rc, rcId))!;
        await s.store.reset(rcUser, WRITE_CTX);
        const after = (await preferencesOf(rc, rcId))!;
        expect(after).toEqual(removeStringKey(before, 'twofactor_gauthenticator'));
        const [rcAfter] = await runOracle<OracleRead>(rcConf.dir, [read(rcId, cipher, encrypt)]);
        expect(rcAfter!.pluginRaw).toBe('absent');

        // 4. mail2fa enrols (20-byte secret, recovery codes); Roundcube's plugin reads exactly that.
        const newKey = randomBytes(20);
        const codes = ['CCCCCCCCCC', 'DDDDDDDDDD', 'EEEEEEEEEE', 'FFFFFFFFFF'];
        const enrolled = await s.store.enrol(rcUser, { key: newKey, recoveryCodes: codes }, WRITE_CTX);
        expect(enrolled.detail).toMatch(encrypt ? /encrypted/ : /PLAINTEXT/);
        const [rcEnrolled] = await runOracle<OracleRead>(rcConf.dir, [read(rcId, cipher, encrypt)]);
        expect(rcEnrolled!.pluginRaw).toBe(encrypt ? 'string' : 'array');
        expect(rcEnrolled!.plugin).toEqual({ secret: base32(newKey), activate: true, recovery_codes: codes });
        // Every other setting is what Roundcube had: serialize(get_prefs()) minus the plugin key is unchanged.
        expect(removeStringKey(Buffer.from(rcEnrolled!.prefs, 'base64'), 'twofactor_gauthenticator')).toEqual(
          Buffer.from(rcAfter!.prefs, 'base64'),
        );
        await expect(s.store.enrol(rcUser, { key: newKey }, WRITE_CTX)).rejects.toMatchObject({
          code: 'already_enabled',
        });

        // 5. Roundcube saves another setting; the plugin's value survives its merge, mail2fa still reads it.
        const again = await roundcubeSave({
          set: { timezone: Buffer.from('s:3:"UTC";').toString('base64') },
          plugin: null,
        });
        expect(again!.ok).toBe(true);
        expect(base32((await s.store.totpSecrets(rcUser))[0]!.key)).toBe(base32(newKey));

        // 6. An empty recovery-code list is still an array for the plugin (a missing key is a PHP TypeError).
        await s.store.disable(rcUser, WRITE_CTX);
        await s.store.enrol(rcUser, { key: newKey }, WRITE_CTX);
        const [noCodes] = await runOracle<OracleRead>(rcConf.dir, [read(rcId, cipher, encrypt)]);
        expect(noCodes!.plugin).toEqual({ secret: base32(newKey), activate: true, recovery_codes: [] });
      } finally {
        await s.close();
      }
    });
  }

  it('a row with NULL preferences (never saved) gets exactly the plugin element; Roundcube reads it', async () => {
    const id = await insertUser(rc, 'fresh@example.com', 'localhost', null);
    const s = openRoundcubeStore(rc, { des_key: DES_KEY, pref_encrypt: true });
    try {
      const key = randomBytes(20);
      await s.store.enrol('fresh@example.com', { key, recoveryCodes: ['ZZZZZZZZZZ'] }, WRITE_CTX);
      const [r] = await runOracle<OracleRead>(rcConf.dir, [read(id, 'DES-EDE3-CBC', true)]);
      expect(r!.plugin).toEqual({ secret: base32(key), activate: true, recovery_codes: ['ZZZZZZZZZZ'] });
      expect((await preferencesOf(rc, id))!.toString('latin1')).toMatch(
        /^a:1:\{s:24:"twofactor_gauthenticator";s:\d+:"[A-Za-z0-9+/=]+";\}$/,
      );
    } finally {
      await s.close();
    }
  });
});
