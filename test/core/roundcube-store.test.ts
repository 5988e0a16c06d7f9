/**
 * The Roundcube store module (src/stores/roundcube.ts) on real Roundcube schemas (SQLite, MariaDB): what status
 * reports (activated vs enforced, weak, problems, several rows), compare-and-set writes, refusals, migration
 * export/clear, session sign-out, doctor, and bulk status in one query per batch.
 */
import { randomBytes } from 'node:crypto';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { Mail2faError } from '../../src/errors.js';
import { base32, pluginSerialized } from '../../src/stores/roundcube-plugin.js';
import { sessionUserId } from '../../src/stores/roundcube.js';
import {
  createRoundcubeDb,
  describeRoundcube,
  describeRoundcubeEachDb,
  type RoundcubeDb,
} from '../helpers/roundcube.js';
import {
  WRITE_CTX,
  encryptedPluginValue,
  insertUser,
  openRoundcubeStore,
  preferencesOf,
} from '../helpers/roundcube-store.js';
import { failure as thrown } from '../helpers/enrolment.js';

const DES_KEY = 'Rc-test-des-key-0123456!';
const SECRET16 = 'JBSWY3DPEHPK3PXP'; // 10 bytes: weak
const SECRET32 = base32(Buffer.alloc(20, 7)); // 20 bytes

function plugin(o: { secret?: string | null; activate?: boolean; codes?: string[] }): string {
  return pluginSerialized({
    secret: o.secret === undefined ? SECRET32 : o.secret,
    activate: o.activate ?? true,
    recoveryCodes: o.codes ?? [],
    order: ['secret', 'activate', 'recovery_codes'],
  }).toString('latin1');
}
function prefsWith(value: string, before = 's:8:"timezone";s:3:"UTC";'): string {
  return `a:2:{${before}s:24:"twofactor_gauthenticator";${value}}`;
}
function encrypted(o: { secret?: string; activate?: boolean }, key = DES_KEY): string {
  return encryptedPluginValue(key, 'des-ede3-cbc', { secret: o.secret ?? SECRET32, activate: o.activate });
}

describeRoundcubeEachDb('Roundcube store', (kind) => {
  let rc: RoundcubeDb;
  beforeAll(async () => {
    rc = await createRoundcubeDb(kind);
  });
  afterAll(async () => {
    await rc?.drop();
  });

  it("status: activated vs enforced, with the plugin's own reasons", async () => {
    await insertUser(rc, 'on@example.com', 'localhost', prefsWith(plugin({})));
    await insertUser(rc, 'weak@example.com', 'localhost', prefsWith(plugin({ secret: SECRET16 })));
    await insertUser(rc, 'off@example.com', 'localhost', prefsWith(plugin({ activate: false })));
    await insertUser(rc, 'cleared@example.com', 'localhost', prefsWith('a:0:{}'));
    await insertUser(rc, 'lower@example.com', 'localhost', prefsWith(plugin({ secret: 'jbswy3dpehpk3pxp' })));
    await insertUser(
      rc,
      'nocodes@example.com',
      'localhost',
      prefsWith('a:2:{s:6:"secret";s:16:"JBSWY3DPEHPK3PXP";s:8:"activate";b:1;}'),
    );
    await insertUser(rc, 'enc@example.com', 'localhost', prefsWith(encrypted({})));
    await insertUser(rc, 'broken@example.com', 'localhost', prefsWith(encrypted({}, 'another-key-entirely-xyz')));
    await insertUser(rc, 'none@example.com', 'localhost', 'a:1:{s:8:"timezone";s:3:"UTC";}');

    const plain = openRoundcubeStore(rc, {});
    const enc = openRoundcubeStore(rc, { des_key: DES_KEY, pref_encrypt: true });
    const allowed = openRoundcubeStore(rc, {
      users_allowed_2FA: ['^admin.*@example\\.com$'],
      whitelist: ['10.0.0.0/8'],
    });
    try {
      expect(await plain.store.account('on@example.com')).toMatchObject({
        activated: true,
        enforced: true,
        factors: [{ kind: 'totp', active: true, ref: expect.stringMatching(/^users\.user_id=\d+$/) }],
      });
      expect((await plain.store.account('on@example.com'))!.factors[0]!.weak).toBeUndefined();
      expect(await plain.store.account('weak@example.com')).toMatchObject({
        activated: true,
        enforced: true,
        factors: [{ weak: true }],
      });
      expect(await plain.store.account('off@example.com')).toMatchObject({
        activated: false,
        enforced: false,
        factors: [{ active: false }],
      });
      expect(await plain.store.account('cleared@example.com')).toMatchObject({
        activated: false,
        factors: [{ active: false }],
      });
      const lower = (await plain.store.account('lower@example.com'))!;
      expect(lower.problems!.join()).toMatch(/not upper-case base32/);
      expect(lower.problems!.join()).not.toContain('jbswy3dp'); // never the secret
      expect((await plain.store.account('nocodes@example.com'))!.problems!.join()).toMatch(
        /recovery_codes.*missing.*TypeError/,
      );
      expect(await plain.store.account('none@example.com')).toMatchObject({ activated: false, factors: [] });
      expect(await plain.store.account('nobody@example.com')).toBeNull();

      // Encrypted while the store says the option is off: the plugin reads no 2FA.
      const encOff = (await plain.store.account('enc@example.com'))!;
      expect(encOff).toMatchObject({ activated: true, enforced: false });
      expect(encOff.notEnforced!.join()).toMatch(/encrypted but .*twofactor_pref_encrypt is off/);
      expect(await enc.store.account('enc@example.com')).toMatchObject({ activated: true, enforced: true });
      const broken = (await enc.store.account('broken@example.com'))!;
      expect(broken).toMatchObject({ activated: true, enforced: false });
      expect(broken.notEnforced!.join()).toMatch(/does not decrypt.*Broken 2FA/);

      const bypassed = (await allowed.store.account('on@example.com'))!;
      expect(bypassed).toMatchObject({ activated: true, enforced: false });
      expect(bypassed.notEnforced!.join('\n')).toMatch(/matches no users_allowed_2FA pattern/);
      expect(bypassed.notEnforced!.join('\n')).toMatch(/whitelist is non-empty.*X-Forwarded-For/);
    } finally {
      await Promise.all([plain.close(), enc.close(), allowed.close()]);
    }
  });

  it('every row of an address: several mail_hosts, a bare login with mail_domain, login_lc, mail_hosts filter', async () => {
    const a = await insertUser(rc, 'john@multi.example', 'imap1.multi.example', prefsWith(plugin({})));
    const b = await insertUser(rc, 'john@multi.example', 'imap2.multi.example', prefsWith(plugin({ activate: false })));
    const c = await insertUser(rc, 'john', 'imap3.multi.example', prefsWith(plugin({ secret: SECRET16 })));
    await insertUser(rc, 'john', 'imap.other.example', prefsWith(plugin({}))); // another domain's john
    const s = openRoundcubeStore(rc, {
      mail_domain: { 'imap3.multi.example': 'multi.example', 'imap.other.example': 'other.example' },
    });
    const only = openRoundcubeStore(rc, { mail_hosts: ['imap2.multi.example'] });
    try {
      const st = (await s.store.account('John@multi.example'))!; // login_lc 2: Roundcube stored it lower-cased
      expect(st.factors.map((f) => f.ref)).toEqual([`users.user_id=${a}`, `users.user_id=${b}`, `users.user_id=${c}`]);
      expect(st.factors.map((f) => [f.label, f.active])).toEqual([
        ['imap1.multi.example', true],
        ['imap2.multi.example', false],
        ['imap3.multi.example', true],
      ]);
      expect(st).toMatchObject({ activated: true, enforced: true });
      expect(await openRoundcubeStore(rc, { login_lc: 0 }).store.account('John@multi.example')).toBeNull();
      expect(await only.store.account('john@multi.example')).toMatchObject({
        activated: false,
        factors: [{ label: 'imap2.multi.example' }],
      });

      const batch = await s.store.statusBatch(['john@multi.example', 'john@other.example', 'nobody@multi.example']);
      expect([...batch.keys()].sort()).toEqual(['john@multi.example', 'john@other.example']);
      expect(batch.get('john@multi.example')!.factors).toHaveLength(3);

      const change = await s.store.reset('john@multi.example', WRITE_CTX);
      expect(change.refs).toEqual([`users.user_id=${a}`, `users.user_id=${b}`, `users.user_id=${c}`]);
      expect(change.detail).toMatch(/from 3 Roundcube rows/);
      expect(await s.store.account('john@other.example')).toMatchObject({ activated: true }); // untouched
    } finally {
      await Promise.all([s.close(), only.close()]);
    }
  });

  it('refuses preferences it cannot parse exactly (65) and writes nothing', async () => {
    const odd = prefsWith(plugin({}), 's:3:"obj";O:8:"stdClass":0:{}');
    const id = await insertUser(rc, 'odd@example.com', 'localhost', odd);
    const trailing = await insertUser(rc, 'trail@example.com', 'localhost', `${prefsWith(plugin({}))}x`);
    const s = openRoundcubeStore(rc, { des_key: DES_KEY, pref_encrypt: true });
    try {
      // PHP may read it and the plugin ask: assumed on (so recover tries, and refuses with the reason), never "off".
      const oddStatus = (await s.store.account('odd@example.com'))!;
      expect(oddStatus).toMatchObject({
        activated: true,
        factors: [{ active: true }],
        details: { rows: [{ plugin: 'unreadable (assumed on)' }] },
      });
      expect(oddStatus.problems!.join()).toMatch(/do not parse exactly.*objects/);
      for (const [email, row, before] of [
        ['odd@example.com', id, odd],
        ['trail@example.com', trailing, `${prefsWith(plugin({}))}x`],
      ] as const) {
        for (const write of [
          () => s.store.reset(email, WRITE_CTX),
          () => s.store.disable(email, WRITE_CTX),
          () => s.store.enrol(email, { key: randomBytes(20) }, WRITE_CTX),
        ]) {
          const e = await thrown(write());
          expect(e.exitCode).toBe(65);
          expect((await preferencesOf(rc, row))!.toString('utf8')).toBe(before);
        }
      }
    } finally {
      await s.close();
    }
  });

  it('writing a secret into a plaintext store needs allowPlaintextWrites (78, nothing written); no row → 67', async () => {
    const id = await insertUser(rc, 'plain@example.com', 'localhost', 'a:0:{}');
    const s = openRoundcubeStore(rc, {});
    try {
      const e = await thrown(s.store.enrol('plain@example.com', { key: randomBytes(20) }, WRITE_CTX));
      expect(e.exitCode).toBe(78);
      expect(e.hint).toMatch(/allowPlaintextWrites/);
      expect((await preferencesOf(rc, id))!.toString()).toBe('a:0:{}');
      const none = await thrown(
        openRoundcubeStore(rc, { des_key: DES_KEY, pref_encrypt: true }).store.enrol(
          'ghost@example.com',
          { key: randomBytes(20) },
          WRITE_CTX,
        ),
      );
      expect(none.exitCode).toBe(67);
    } finally {
      await s.close();
    }
  });

  it('migrate: exports usable secrets per address, flags the rest, clears only what was exported', async () => {
    const prefix = 'mig_';
    const m = await createRoundcubeDb(kind, prefix);
    try {
      const ok = await insertUser(m, 'ok@example.com', 'localhost', prefsWith(plugin({ secret: SECRET16 })), prefix);
      await insertUser(m, 'bare', 'localhost', prefsWith(plugin({})), prefix);
      await insertUser(m, 'bad@example.com', 'localhost', prefsWith(plugin({ secret: 'AB' })), prefix);
      await insertUser(m, 'off@example.com', 'localhost', prefsWith(plugin({ activate: false })), prefix);
      const changes = await insertUser(m, 'changes@example.com', 'localhost', prefsWith(plugin({})), prefix);
      const s = openRoundcubeStore(m, {}, { tablePrefix: prefix });
      try {
        const exported = [];
        for await (const batch of s.store.exportSecrets(2)) exported.push(...batch);
        expect(exported.map((e) => [e.email, e.problem ? 'problem' : base32(e.key), e.weak])).toEqual([
          ['ok@example.com', SECRET16, true],
          ['bare', 'problem', false],
          ['bad@example.com', 'problem', false],
          ['changes@example.com', SECRET32, false],
        ]);
        expect(exported[1]!.problem).toMatch(/no domain and no mail_domain/);
        // A user re-enrols in Roundcube after the export: clearing refuses (75), nothing is cleared.
        const newer = prefsWith(plugin({ secret: base32(Buffer.alloc(20, 9)) }));
        await m.exec(
          m.kind === 'sqlite'
            ? `UPDATE ${prefix}users SET preferences = ? WHERE user_id = ?`
            : `UPDATE ${prefix}users SET preferences = ? WHERE user_id = ?`,
          [newer, changes],
        );
        const e = await thrown(s.store.clearMigrated(['ok@example.com', 'changes@example.com'], WRITE_CTX));
        expect(e.exitCode).toBe(75);
        expect((await preferencesOf(m, ok, prefix))!.toString()).toBe(prefsWith(plugin({ secret: SECRET16 })));
        const cleared = await s.store.clearMigrated(['ok@example.com'], WRITE_CTX);
        expect(cleared).toMatchObject({ outcome: 'changed', refs: [`${prefix}users.user_id=${ok}`] });
        expect((await preferencesOf(m, ok, prefix))!.toString()).toBe('a:1:{s:8:"timezone";s:3:"UTC";}');
      } finally {
        await s.close();
      }
    } finally {
      await m.drop();
    }
  });

  it("session sign-out deletes exactly the user's Roundcube sessions", async () => {
    const id = await insertUser(rc, 'sess@example.com', 'localhost', prefsWith(plugin({})));
    const other = id + 1000;
    const vars = (uid: number, extra = '') =>
      Buffer.from(`language|s:5:"en_US";${extra}user_id|i:${uid};username|s:16:"sess@example.com";`).toString('base64');
    const tricky = Buffer.from(`note|s:13:"user_id|i:${id};";user_id|i:${other};`).toString('base64');
    const now = kind === 'sqlite' ? "datetime('now')" : 'NOW()';
    for (const [sid, v] of [
      ['s-mine-1', vars(id)],
      ['s-mine-2', vars(id, 'compose|a:1:{i:0;s:1:";";}')],
      ['s-other', vars(other)],
      ['s-tricky', tricky],
    ]) {
      await rc.exec(`INSERT INTO session (sess_id, changed, ip, vars) VALUES (?, ${now}, '127.0.0.1', ?)`, [sid, v]);
    }
    expect(sessionUserId(Buffer.from(tricky, 'base64'))).toBe(other);
    const s = openRoundcubeStore(rc, { session_signout: true });
    try {
      const change = await s.store.reset('sess@example.com', WRITE_CTX);
      expect(change.detail).toMatch(/signed out 2 Roundcube sessions/);
      const left = (await rc.exec('SELECT sess_id FROM session ORDER BY sess_id')) as Array<{ sess_id: string }>;
      expect(left.map((r) => r.sess_id)).toEqual(['s-other', 's-tricky']);
    } finally {
      await s.close();
    }
  });

  it('doctor: reachable, schema, plaintext secrets, bypass lists, undecryptable values', async () => {
    await insertUser(rc, 'doc-plain@example.com', 'localhost', prefsWith(plugin({})));
    await insertUser(rc, 'doc-broken@example.com', 'localhost', prefsWith(encrypted({}, 'another-key-entirely-xyz')));
    const s = openRoundcubeStore(rc, { des_key: DES_KEY, pref_encrypt: true, whitelist: ['192.168.0.0/16'] });
    try {
      const checks = await s.store.doctor();
      const byName = Object.fromEntries(checks.map((c) => [c.name, c]));
      expect(byName['store roundcube']!.status).toBe('ok');
      expect(byName['store roundcube: plaintext']).toMatchObject({
        status: 'warn',
        detail: expect.stringMatching(/PLAINTEXT/),
      });
      expect(byName['store roundcube: whitelist']).toMatchObject({
        status: 'warn',
        detail: expect.stringMatching(/client-supplied headers/),
      });
      expect(byName['store roundcube: write access']).toMatchObject({ status: 'ok' });
      expect(byName['store roundcube: encrypted values']).toMatchObject({
        status: 'warn',
        detail: expect.stringMatching(/do not decrypt.*lets those users in/),
      });
      const missing = await openRoundcubeStore(rc, {}, { tablePrefix: 'nope_' }).store.doctor();
      expect(missing[0]).toMatchObject({ status: 'fail', exitCode: 78 });
    } finally {
      await s.close();
    }
  });
});

describeRoundcube('Roundcube store: compare-and-set against a concurrent Roundcube save [sqlite]', () => {
  let rc: RoundcubeDb;
  beforeAll(async () => {
    rc = await createRoundcubeDb('sqlite');
  });
  afterAll(async () => {
    await rc?.drop();
  });

  it('retries when Roundcube saved between read and write: the new setting survives, only the plugin key goes', async () => {
    const id = await insertUser(rc, 'race@example.com', 'localhost', prefsWith(plugin({})));
    const s = openRoundcubeStore(rc, {});
    const side = new Database(rc.url.slice('sqlite:'.length));
    side.pragma('busy_timeout = 2000');
    let saves = 0;
    try {
      const db = await s.db();
      db.knex.on('query', (q: { sql: string }) => {
        if (/^update/i.test(q.sql) && saves === 0) {
          saves++;
          // Roundcube saves another setting right now (a synchronous write from another connection).
          side
            .prepare('UPDATE users SET preferences = ? WHERE user_id = ?')
            .run(prefsWith(plugin({}), 's:8:"timezone";s:13:"Europe/Berlin";'), id);
        }
      });
      const change = await s.store.reset('race@example.com', WRITE_CTX);
      expect(change.outcome).toBe('changed');
      expect(saves).toBe(1);
      expect((await preferencesOf(rc, id))!.toString()).toBe('a:1:{s:8:"timezone";s:13:"Europe/Berlin";}');
    } finally {
      side.close();
      await s.close();
    }
  });

  it("gives up with 75 when Roundcube keeps saving, leaving Roundcube's last value intact", async () => {
    const id = await insertUser(rc, 'busy@example.com', 'localhost', prefsWith(plugin({})));
    const s = openRoundcubeStore(rc, {});
    const side = new Database(rc.url.slice('sqlite:'.length));
    let n = 0;
    try {
      const db = await s.db();
      db.knex.on('query', (q: { sql: string }) => {
        if (/^update/i.test(q.sql))
          side
            .prepare('UPDATE users SET preferences = ? WHERE user_id = ?')
            .run(prefsWith(plugin({}), `s:8:"timezone";s:${String(++n).length}:"${n}";`), id);
      });
      const e = await thrown(s.store.reset('busy@example.com', WRITE_CTX));
      expect(e.exitCode).toBe(75);
      expect((await preferencesOf(rc, id))!.toString()).toBe(prefsWith(plugin({}), `s:8:"timezone";s:1:"${n}";`));
    } finally {
      side.close();
      await s.close();
    }
  });

  it("in mail2fa's own database, writes run on the shared transaction: they roll back and commit with it", async () => {
    const id = await insertUser(rc, 'shared@example.com', 'localhost', prefsWith(plugin({})));
    const s = openRoundcubeStore(rc, { session_signout: true });
    try {
      const db = await s.db(); // one SQLite connection: a second transaction would wait forever
      await expect(
        db.knex.transaction(async (trx) => {
          const change = await s.store.reset('shared@example.com', { ...WRITE_CTX, sharedTransaction: trx });
          expect(change.outcome).toBe('changed');
          throw new Error("mail2fa's own change failed");
        }),
      ).rejects.toThrow(/own change failed/);
      expect((await preferencesOf(rc, id))!.toString()).toBe(prefsWith(plugin({})));
      await db.knex.transaction(async (trx) => {
        await s.store.reset('shared@example.com', { ...WRITE_CTX, sharedTransaction: trx });
      });
      expect((await preferencesOf(rc, id))!.toString()).toBe('a:1:{s:8:"timezone";s:3:"UTC";}');
    } finally {
      await s.close();
    }
  });

  it('random corruptions of a stored value: reset refuses (65) and leaves the bytes as they were, or removes exactly the element', async () => {
    const base = prefsWith(plugin({ codes: ['ABCDEFGHIJ'] }), 's:9:"signature";s:12:"Grüße; \\"x\\"";');
    const s = openRoundcubeStore(rc, {});
    let seed = 7;
    const rnd = (n: number) => ((seed = (seed * 1103515245 + 12345) & 0x7fffffff), seed % n);
    let refused = 0;
    try {
      for (let i = 0; i < 60; i++) {
        const bytes = Buffer.from(base, 'utf8');
        const pos = rnd(bytes.length);
        const mutated = [
          () => bytes.subarray(0, pos), // truncated
          () => Buffer.concat([bytes, Buffer.from(';')]), // trailing
          () => Buffer.concat([bytes.subarray(0, pos), bytes.subarray(pos + 1)]), // a byte lost
          () => Buffer.concat([bytes.subarray(0, pos), Buffer.from('R:1;'), bytes.subarray(pos)]), // junk inserted
        ][i % 4]!();
        const email = `fuzz${i}@example.com`;
        const id = await insertUser(rc, email, 'localhost', mutated);
        const outcome = await s.store.reset(email, WRITE_CTX).catch((e: Mail2faError) => e);
        const after = await preferencesOf(rc, id);
        if (outcome instanceof Mail2faError) {
          expect(outcome.exitCode).toBe(65);
          expect(after).toEqual(mutated);
          refused++;
        } else if (outcome.outcome === 'nothing') {
          expect(after).toEqual(mutated); // the key's own bytes were hit: nothing to remove, nothing written
          expect(mutated.includes(Buffer.from('s:24:"twofactor_gauthenticator";'))).toBe(false);
        } else {
          // Accepted: the value was valid, and only the plugin element (and the count) changed.
          expect(after!.length).toBeLessThan(mutated.length);
          expect(after!.includes(Buffer.from('twofactor_gauthenticator'))).toBe(false);
        }
      }
    } finally {
      await s.close();
    }
    expect(refused).toBeGreaterThan(40);
  });

  it('bulk status over 100,000 Roundcube users: one query per batch of 1,000 addresses', async () => {
    const big = new Database(rc.url.slice('sqlite:'.length));
    const on = prefsWith(plugin({}));
    const off =
      'a:3:{s:8:"timezone";s:3:"UTC";s:9:"signature";s:40:"A signature long enough to be realistic.";s:8:"language";s:5:"en_US";}';
    const insert = big.prepare(
      "INSERT INTO users (username, mail_host, created, preferences) VALUES (?, 'bulk', '2024-01-01', ?)",
    );
    big.transaction(() => {
      for (let i = 0; i < 100_000; i++) insert.run(`u${i}@bulk.example`, i % 10 === 0 ? on : off);
    })();
    big.close();
    const s = openRoundcubeStore(rc, { mail_hosts: ['bulk'] });
    try {
      const db = await s.db();
      let queries = 0;
      db.knex.on('query', () => queries++);
      let activated = 0;
      const started = Date.now();
      const heapBefore = process.memoryUsage().heapUsed;
      let heapPeak = heapBefore;
      for (let start = 0; start < 100_000; start += 1000) {
        const emails = Array.from({ length: 1000 }, (_, i) => `u${start + i}@bulk.example`);
        const batch = await s.store.statusBatch(emails);
        for (const st of batch.values()) if (st.activated) activated++;
        heapPeak = Math.max(heapPeak, process.memoryUsage().heapUsed);
      }
      expect(activated).toBe(10_000);
      expect(queries).toBe(100);
      expect(heapPeak - heapBefore).toBeLessThan(64 * 1024 * 1024);
      expect(Date.now() - started).toBeLessThan(30_000);
    } finally {
      await s.close();
    }
  });
});
