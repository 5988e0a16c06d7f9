/**
 * mailcow's `tfa` store on MariaDB (mailcow's own database, utf8mb4 case-insensitive collation)
 * and SQLite (COLLATE NOCASE): status of every authenticator kind and force_tfa, exact matching, reset, the
 * one-login bypass, enrol behind the plaintext opt-in, TOTP secrets, export/clear, refusals, doctor.
 */
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createTestDb, describeEachDb, MARIADB_ADMIN_URL, type TestDb } from '../helpers/db.js';
import { createMailcowSchema, refusal, storeHarness, writeCtx, type StoreHarness } from '../helpers/store-fixtures.js';
import { mailcowStore, MailcowOptionsSchema } from '../../src/stores/mailcow.js';
import { base32Encode as encodeBase32 } from '../../src/totp/totp.js';
import type { ExportedSecret, ForeignStore } from '../../src/stores/types.js';

const USER = 'user@example.com';
/** RFC 4648's "Hello!\xde\xad\xbe\xef": mailcow's usual 16-character (80-bit) secret. */
const SECRET16 = 'JBSWY3DPEHPK3PXP';
const SECRET16_BYTES = Buffer.from('48656c6c6f21deadbeef', 'hex');

function open(
  h: StoreHarness,
  extra: Record<string, unknown> = {},
  options: Record<string, unknown> = {},
): ForeignStore {
  return mailcowStore.open(
    { name: 'mailcow', kind: 'mailcow', ...extra, options: MailcowOptionsSchema.parse(options) },
    h.deps,
  );
}

async function allRows(h: StoreHarness) {
  return h.db.knex('tfa').select('id', 'key_id', 'username', 'authmech', 'secret', 'active').orderBy('id');
}

describeEachDb(
  'mailcow tfa store',
  (kind) => {
    let testDb: TestDb;
    let h: StoreHarness;

    beforeEach(async () => {
      testDb = await createTestDb(kind);
      h = await storeHarness(testDb);
      await createMailcowSchema(h.db);
      await h.db.knex('mailbox').insert([
        {
          username: USER,
          password: 'x',
          domain: 'example.com',
          attributes: JSON.stringify({ force_tfa: '1', tls_enforce_in: '0' }),
        },
        { username: 'plain@example.com', password: 'x', domain: 'example.com', attributes: '{"force_tfa":"0"}' },
        { username: 'forced@example.com', password: 'x', domain: 'example.com', attributes: '{"force_tfa":1}' },
      ]);
      await h.db.knex('tfa').insert([
        { key_id: 'phone', username: USER, authmech: 'totp', secret: SECRET16, active: 1 },
        { key_id: 'yubikey', username: USER, authmech: 'webauthn', keyHandle: 'kh', publicKey: 'pk', active: 1 },
        { key_id: 'otp', username: USER, authmech: 'yubi_otp', secret: 'id:key:cccccccccccc', active: 1 },
        // Rows the collation would match for USER: must never be read or touched as USER's.
        { key_id: 'decoy-case', username: 'User@Example.com', authmech: 'totp', secret: SECRET16, active: 1 },
        { key_id: 'decoy-space', username: `${USER} `, authmech: 'totp', secret: SECRET16, active: 1 },
        {
          key_id: 'bypass',
          username: 'idle@example.com',
          authmech: 'totp',
          secret: 'GNTDOOBWHA2TAZJTHA3TKNJQMZSGCYRY',
          active: 0,
        },
        { key_id: 'admin', username: 'admin', authmech: 'totp', secret: 'GNTDOOBWHA2TAZJTHA3TKNJQMZSGCYRY', active: 1 },
      ]);
    });

    afterEach(async () => {
      await h.close();
      await testDb.drop();
    });

    it('status lists every authenticator kind of exactly the address, with force_tfa', async () => {
      const store = open(h);
      const s = await store.account(USER);
      expect(s).not.toBeNull();
      expect(s!.activated).toBe(true);
      expect(s!.enforced).toBe(true);
      expect(s!.factors.map((f) => f.kind)).toEqual(['totp', 'webauthn', 'yubi_otp']);
      expect(s!.factors.map((f) => f.label)).toEqual(['phone', 'yubikey', 'otp']);
      expect(s!.factors[0]!.weak).toBe(true); // 80-bit secret
      expect(s!.details).toMatchObject({ authenticators: 3, forceTfa: true, kinds: ['totp', 'webauthn', 'yubi_otp'] });
      expect(s!.problems).toBeUndefined();
      expect(JSON.stringify(s)).not.toContain(SECRET16);
    });

    it('statusBatch: one map for many addresses; inactive rows are the one-login bypass; force_tfa without rows', async () => {
      const store = open(h);
      const map = await store.statusBatch([
        USER,
        'idle@example.com',
        'plain@example.com',
        'forced@example.com',
        'nobody@example.com',
        'User@Example.com',
      ]);
      expect([...map.keys()].sort()).toEqual(
        ['User@Example.com', 'forced@example.com', 'idle@example.com', USER].sort(),
      );
      expect(map.get('User@Example.com')!.factors).toHaveLength(1); // its own row only
      const idle = map.get('idle@example.com')!;
      expect(idle.activated).toBe(true);
      expect(idle.enforced).toBe(false);
      expect(idle.notEnforced![0]).toMatch(/active = 0.*re-activates/);
      const forced = map.get('forced@example.com')!;
      expect(forced).toMatchObject({ activated: false, enforced: false, details: { forceTfa: true } });
      expect(await store.account('nobody@example.com')).toBeNull();
    });

    it('statusBatch asks the database twice per batch (tfa, mailbox), never once per address', async () => {
      const emails = Array.from({ length: 400 }, (_, i) => `u${i}@example.com`).concat(USER);
      let queries = 0;
      const count = () => void queries++;
      h.db.knex.on('query', count);
      try {
        const map = await open(h).statusBatch(emails);
        expect([...map.keys()]).toEqual([USER]);
      } finally {
        h.db.knex.removeListener('query', count);
      }
      expect(queries).toBe(2);
    });

    it('reset deletes every row of exactly the address in one go; a re-run finds nothing', async () => {
      const store = open(h);
      const before = await allRows(h);
      const change = await store.reset!(USER, writeCtx);
      expect(change.outcome).toBe('changed');
      expect(change.detail).toMatch(/deleted 3 tfa rows \(totp, webauthn, yubi_otp\)/);
      const mine = before.filter((r) => r.username === USER).map((r) => `tfa.id=${r.id}`);
      expect(change.refs).toEqual(mine);
      const after = await allRows(h);
      expect(after).toEqual(before.filter((r) => r.username !== USER));
      expect(after.map((r) => r.key_id)).toEqual(expect.arrayContaining(['decoy-case', 'decoy-space']));
      expect(await store.account(USER)).toMatchObject({ activated: false, factors: [] }); // force_tfa still shown
      expect((await store.reset!(USER, writeCtx)).outcome).toBe('nothing');
    });

    it('reset refuses a row it cannot read (unknown authmech) and changes nothing', async () => {
      await h.db.knex('tfa').insert({ key_id: 'odd', username: USER, authmech: null, active: 1 });
      const store = open(h);
      const before = await allRows(h);
      expect((await store.account(USER))!.problems).toEqual([expect.stringMatching(/unknown authmech/)]);
      for (const write of [
        () => store.reset!(USER, writeCtx),
        () => store.disable!(USER, writeCtx),
        () => store.temporaryBypass!(USER, writeCtx),
      ]) {
        const err = await refusal(write());
        expect(err.exitCode).toBe(65);
        expect(err.code).toBe('store_value_unparsable');
      }
      expect(await allRows(h)).toEqual(before);
    });

    it("temporaryBypass sets active = 0 on the address's rows only and says mailcow re-arms them", async () => {
      const store = open(h);
      const before = await allRows(h);
      const change = await store.temporaryBypass!(USER, writeCtx);
      expect(change.outcome).toBe('changed');
      expect(change.detail).toMatch(/active = 0 on 3 tfa rows.*next password sign-in.*back to active/);
      const after = await allRows(h);
      for (const r of after) {
        const was = before.find((b) => b.id === r.id)!;
        expect(Number(r.active)).toBe(r.username === USER ? 0 : Number(was.active));
      }
      const s = await store.account(USER);
      expect(s).toMatchObject({ activated: true, enforced: false });
      expect(await store.totpSecrets!(USER)).toEqual([]);
      expect((await store.temporaryBypass!(USER, writeCtx)).outcome).toBe('nothing');
    });

    it('enrol needs allowPlaintextWrites, writes one active TOTP row, and refuses a second one', async () => {
      const key = Buffer.from('0123456789abcdef0123', 'ascii');
      const closed = open(h);
      const before = await allRows(h);
      const err = await refusal(closed.enrol!('plain@example.com', { key }, writeCtx));
      expect(err.exitCode).toBe(78);
      expect(await allRows(h)).toEqual(before);

      const store = open(h, { allowPlaintextWrites: true });
      const change = await store.enrol!('plain@example.com', { key, label: 'mail2fa' }, writeCtx);
      expect(change.outcome).toBe('changed');
      const rows = (await allRows(h)).filter((r) => r.username === 'plain@example.com');
      expect(rows).toEqual([
        expect.objectContaining({ key_id: 'mail2fa', authmech: 'totp', secret: encodeBase32(key) }),
      ]);
      expect(Number(rows[0]!.active)).toBe(1);
      expect(change.refs).toEqual([`tfa.id=${rows[0]!.id}`]);
      expect(change.detail).not.toContain(encodeBase32(key));
      const secrets = await store.totpSecrets!('plain@example.com');
      expect(secrets.map((s) => s.key)).toEqual([key]);

      const again = await refusal(store.enrol!('plain@example.com', { key }, writeCtx));
      expect(again.code).toBe('already_enabled');
      expect((await allRows(h)).filter((r) => r.username === 'plain@example.com')).toHaveLength(1);
    });

    it('totpSecrets: the active TOTP rows of exactly the address, key bytes decoded, mailcow window ±1', async () => {
      const store = open(h);
      const secrets = await store.totpSecrets!(USER);
      expect(secrets).toHaveLength(1);
      expect(secrets[0]!.key.equals(SECRET16_BYTES)).toBe(true);
      expect(secrets[0]!.storeWindow).toBe(1);
      expect(secrets[0]!.ref).toMatch(/^tfa\.id=\d+$/);
      expect(await store.totpSecrets!('idle@example.com')).toEqual([]); // active = 0
    });

    it('exportSecrets yields active TOTP rows of mailbox addresses; clearMigrated removes only their TOTP rows', async () => {
      const store = open(h);
      const got: ExportedSecret[] = [];
      for await (const batch of store.exportSecrets!(2)) got.push(...batch);
      expect(got.map((g) => g.email).sort()).toEqual(['User@Example.com', USER, `${USER} `].sort());
      expect(got.every((g) => g.weak)).toBe(true);
      const change = await store.clearMigrated!([USER], writeCtx);
      expect(change.outcome).toBe('changed');
      expect(change.refs).toHaveLength(1);
      const left = (await allRows(h)).filter((r) => r.username === USER).map((r) => r.authmech);
      expect(left).toEqual(['webauthn', 'yubi_otp']);
      expect((await allRows(h)).filter((r) => r.key_id.startsWith('decoy'))).toHaveLength(2);
    });

    it("inside mail2fa's transaction (sharedTransaction): the deletion commits or rolls back with it", async () => {
      const store = open(h);
      const before = await allRows(h);
      const rollback = new Error('rollback');
      await expect(
        h.db.knex.transaction(async (trx) => {
          expect((await store.reset!(USER, { ...writeCtx, sharedTransaction: trx })).outcome).toBe('changed');
          throw rollback;
        }),
      ).rejects.toBe(rollback);
      expect(await allRows(h)).toEqual(before);
      await h.db.knex.transaction(async (trx) => {
        expect((await store.temporaryBypass!(USER, { ...writeCtx, sharedTransaction: trx })).outcome).toBe('changed');
        expect((await store.reset!(USER, { ...writeCtx, sharedTransaction: trx })).outcome).toBe('changed');
      });
      expect(await allRows(h)).toEqual(before.filter((r) => r.username !== USER));
    });

    it('disable removes every authenticator of the address', async () => {
      const store = open(h);
      const change = await store.disable!(USER, writeCtx);
      expect(change).toMatchObject({ outcome: 'changed', store: 'mailcow', kind: 'mailcow' });
      expect((await allRows(h)).some((r) => r.username === USER)).toBe(false);
    });

    it('a malformed mailbox.attributes is a problem in status, never guessed', async () => {
      await h.db.knex('mailbox').insert({
        username: 'odd@example.com',
        password: 'x',
        domain: 'example.com',
        attributes: kind === 'mariadb' ? '{"force_tfa":"yes"}' : '{"force_tfa":1,"force_tfa":0}',
      });
      const s = await open(h).account('odd@example.com');
      expect(s!.problems![0]).toMatch(
        kind === 'mariadb' ? /force_tfa is neither 0 nor 1/ : /duplicate key "force_tfa"/,
      );
    });

    it('doctor: schema, plaintext secrets, write access', async () => {
      const checks = await open(h).doctor();
      const by = Object.fromEntries(checks.map((c) => [c.name.replace('store mailcow: ', ''), c]));
      expect(by.schema!.status).toBe('ok');
      expect(by['plaintext secrets']).toMatchObject({ status: 'warn' });
      expect(by['plaintext secrets']!.detail).toMatch(/totp: 5/);
      expect(by['write access']!.status).toBe('ok');
      await h.db.knex.raw('DROP TABLE tfa');
      const broken = await open(h).doctor();
      expect(broken.find((c) => c.name.endsWith('schema'))).toMatchObject({ status: 'fail', exitCode: 78 });
    });

    if (kind === 'mariadb') {
      it('two agents resetting at once: exactly one deletes, the other finds nothing', async () => {
        const other = await storeHarness(testDb);
        try {
          const results = await Promise.all([open(h).reset!(USER, writeCtx), open(other).reset!(USER, writeCtx)]);
          expect(results.map((r) => r.outcome).sort()).toEqual(['changed', 'nothing']);
          expect((await allRows(h)).some((r) => r.username === USER)).toBe(false);
        } finally {
          await other.close();
        }
      });

      it('a failed write never carries the secret in its message', async () => {
        await h.db.knex('tfa').delete();
        await h.db.knex.raw('ALTER TABLE tfa MODIFY secret VARCHAR(8)');
        const key = Buffer.from('0123456789abcdef0123', 'ascii');
        const err = await open(h, { allowPlaintextWrites: true }).enrol!('plain@example.com', { key }, writeCtx).then(
          () => null,
          (e: unknown) => e as Error,
        );
        expect(err).toBeInstanceOf(Error);
        expect(err!.message).toMatch(/too long/i);
        expect(err!.message).not.toContain(encodeBase32(key));
        expect(err!.message).not.toContain(encodeBase32(key).slice(0, 8));
        expect((await allRows(h)).some((r) => r.username === 'plain@example.com')).toBe(false);
      });

      it('doctor names a read-only database user', async () => {
        const mysql = await import('mysql2/promise');
        const admin = new URL(MARIADB_ADMIN_URL);
        const c = await mysql.createConnection({
          host: admin.hostname,
          port: Number(admin.port || 3306),
          user: decodeURIComponent(admin.username || 'root'),
        });
        const dbName = new URL(testDb.url).pathname.slice(1);
        const user = `ro_${dbName.slice(-10)}`;
        await c.query(`CREATE USER '${user}'@'%' IDENTIFIED BY 'ro-pass'`);
        await c.query(`GRANT SELECT ON \`${dbName}\`.* TO '${user}'@'%'`);
        try {
          const url = new URL(testDb.url);
          url.username = user;
          url.password = 'ro-pass';
          const store = open(h, { db: { url: url.toString() } });
          const checks = await store.doctor();
          expect(checks.find((x) => x.name.endsWith('write access'))).toMatchObject({ status: 'warn' });
          expect(checks.find((x) => x.name.endsWith('write access'))!.detail).toMatch(/read-only/);
          expect((await store.account(USER))!.factors).toHaveLength(3);
          const err = await refusal(store.reset!(USER, writeCtx));
          expect(err.exitCode).not.toBe(0);
          expect((await allRows(h)).filter((r) => r.username === USER)).toHaveLength(3);
        } finally {
          await c.query(`DROP USER '${user}'@'%'`);
          await c.end();
        }
      });
    }
  },
  ['sqlite', 'mariadb'],
); // mailcow runs on MariaDB only (its schema is MySQL DDL); SQLite is the hostile stand-in

describe('mailcow options', () => {
  it('refuses unknown keys and non-identifiers', () => {
    expect(MailcowOptionsSchema.safeParse({ tabel: 'tfa' }).success).toBe(false);
    expect(MailcowOptionsSchema.safeParse({ table: 'tfa; drop' }).success).toBe(false);
    expect(MailcowOptionsSchema.parse({})).toEqual({ table: 'tfa', mailboxTable: 'mailbox' });
  });
});
