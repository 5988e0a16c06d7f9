/**
 * `mail2fa doctor` through the built binary: passes on a healthy install and fails loudly — with every other
 * check still listed — on each piece broken on purpose: stopped database, wrong database password, MyISAM
 * table, missing column, group-readable key, unreachable webhook, invalid config, missing sign-out program.
 */
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { writeNewKeyFile } from '../../src/crypto/keys.js';
import { runCli } from '../helpers/cli.js';
import { createTestDb, describeEachDb, useTestDb } from '../helpers/db.js';
import { enrolTotp } from '../helpers/seed-2fa.js';

interface DoctorDoc {
  ok: boolean;
  exitCode: number;
  checks: { name: string; status: string; detail: string; hint?: string }[];
}

/** A TCP port on 127.0.0.1 that nothing listens on. */
async function closedPort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const { port } = server.address() as AddressInfo;
  await new Promise<void>((r) => server.close(() => r()));
  return port;
}

const ALL = [
  'config',
  'database',
  'schema',
  'account mapping',
  'status summary',
  'key',
  'sms gateway',
  'sign-out action',
];

describeEachDb('mail2fa doctor (CLI)', (kind) => {
  const scratch = useTestDb(kind);
  let webhook: Server;
  let webhookUrl: string;

  const doctor = async (o: { config?: unknown; env?: Record<string, string | undefined>; db?: string } = {}) => {
    const args = ['doctor', '--json'];
    if (o.config !== undefined) {
      const file = join(scratch.tdb.dir, `config-${randomBytes(4).toString('hex')}.json`);
      writeFileSync(file, JSON.stringify(o.config));
      args.unshift('--config', file);
    }
    if (o.db) args.unshift('--db', o.db);
    const r = await runCli(args, { env: { ...scratch.env, ...o.env } });
    const doc = JSON.parse(r.stdout) as DoctorDoc;
    const by = Object.fromEntries(doc.checks.map((c) => [c.name, c]));
    return { r, doc, by };
  };

  beforeAll(async () => {
    // Enrolled as enable does it (the account's transaction keeps its status summary current).
    await enrolTotp(scratch.ctx, 'jane@example.com');
    webhook = createServer((req, res) => {
      res.statusCode = req.method === 'HEAD' ? 405 : 200;
      res.end();
    });
    await new Promise<void>((r) => webhook.listen(0, '127.0.0.1', r));
    webhookUrl = `http://127.0.0.1:${(webhook.address() as AddressInfo).port}/sms`;
  });
  afterAll(async () => {
    await new Promise<void>((r) => (webhook ? webhook.close(() => r()) : r()));
  });

  it('passes on a healthy install (sign-out "none" is a warning), in JSON and for humans', async () => {
    const { r, doc, by } = await doctor({ config: { sms: { transport: 'webhook', webhook: { url: webhookUrl } } } });
    expect(r.code).toBe(0);
    expect(doc.ok).toBe(true);
    for (const name of ALL) expect(by[name], name).toBeDefined();
    if (kind === 'mariadb') expect(by['storage engine']!.status).toBe('ok');
    expect(doc.checks.filter((c) => c.status !== 'ok').map((c) => [c.name, c.status])).toEqual([
      ['sign-out action', 'warn'],
    ]);
    expect(by.key!.detail).toMatch(/decrypts a sample of 2 stored secret\(s\)/);
    expect(by['sms gateway']!.detail).toContain('reachable');
    expect(by.database!.detail).toMatch({ mariadb: /MariaDB/, postgres: /PostgreSQL/, sqlite: /SQLite/ }[kind]);

    const human = await runCli(['doctor'], { env: scratch.env });
    expect(human.code).toBe(0);
    expect(human.stdout).toMatch(/^ok {4}config/m);
    expect(human.stdout).toMatch(/^warn {2}sign-out action/m);
    expect(human.stdout).toContain('all checks passed, 1 warning(s)');
  });

  it('stopped database: 69, the database check fails and every other check is still listed', async () => {
    const url = {
      mariadb: `mysql://root@127.0.0.1:${await closedPort()}/test`,
      postgres: `postgres://postgres@127.0.0.1:${await closedPort()}/test`,
      sqlite: `sqlite:${scratch.tdb.dir}`,
    }[kind]; // a directory is no database file
    const { r, doc, by } = await doctor({ db: url });
    expect(r.code).toBe(69);
    expect(doc.exitCode).toBe(69);
    expect(by.database).toMatchObject({ status: 'fail' });
    expect(by.database!.detail).toMatch(
      kind === 'sqlite' ? /cannot open the SQLite database/ : /database unavailable at .*ECONNREFUSED/,
    );
    for (const name of ALL) expect(by[name], name).toBeDefined();
    expect(by.schema!.status).toBe('skip');
    expect(by['account mapping']!.status).toBe('skip');
    expect(by['status summary']!.status).toBe('skip');
    expect(by.key!.status).toBe('ok');
    expect(by['sms gateway']!.status).toBe('ok');

    const human = await runCli(['--db', url, 'doctor'], { env: scratch.env });
    expect(human.code).toBe(69);
    expect(human.stdout).toMatch(/^FAIL {2}database/m);
    expect(human.stdout).toMatch(/^skip {2}schema/m);
  });

  it('invalid configuration: 78, reported as a failed check with the others skipped', async () => {
    const { r, doc, by } = await doctor({ config: { sms: { transport: 'pigeon' }, issuer: '' } });
    expect(r.code).toBe(78);
    expect(by.config!.status).toBe('fail');
    expect(by.config!.detail).toContain('2 problems');
    expect(doc.checks.map((c) => c.name)).toEqual(ALL);
    expect(doc.checks.slice(1).every((c) => c.status === 'skip')).toBe(true);
  });

  it('missing column in the account mapping: 78', async () => {
    const { r, by } = await doctor({ config: { accounts: { columns: { domain: 'maildomain' } } } });
    expect(r.code).toBe(78);
    expect(by['account mapping']).toMatchObject({ status: 'fail' });
    expect(by['account mapping']!.detail).toContain('lacks column(s) maildomain');
    expect(by.database!.status).toBe('ok');
  });

  it('group-readable key file: 78; a readable key that does not decrypt the data: 78', async () => {
    const dir = join(scratch.tdb.dir, 'keys');
    mkdirSync(dir, { recursive: true });
    const loose = join(dir, 'loose.key');
    writeNewKeyFile(loose);
    chmodSync(loose, 0o640);
    const a = await doctor({ env: { MAIL2FA_KEY: undefined, MAIL2FA_KEY_FILE: loose } });
    expect(a.r.code).toBe(78);
    expect(a.by.key).toMatchObject({ status: 'fail' });
    expect(a.by.key!.detail).toContain('accessible by group or others (mode 0640)');
    expect(a.by.key!.hint).toContain('chmod 600');
    expect(a.by.database!.status).toBe('ok');

    const other = join(dir, 'other.key');
    writeNewKeyFile(other);
    const b = await doctor({ env: { MAIL2FA_KEY: undefined, MAIL2FA_KEY_FILE: other } });
    expect(b.r.code).toBe(78);
    expect(b.by.key!.detail).toMatch(
      /does NOT decrypt stored secrets: mail2fa_\w+\.\w+ of \S+ sealed with another key/,
    );
  });

  it('unreachable webhook: 69', async () => {
    const { r, by } = await doctor({
      config: { sms: { transport: 'webhook', webhook: { url: `http://127.0.0.1:${await closedPort()}/sms` } } },
    });
    expect(r.code).toBe(69);
    expect(by['sms gateway']).toMatchObject({ status: 'fail' });
    expect(by['sms gateway']!.detail).toContain('webhook');
    expect(by.database!.status).toBe('ok');
  });

  it('sign-out command that does not exist: 78; one that does: ok', async () => {
    const bad = await doctor({
      config: { signOut: { action: 'command', command: ['/nonexistent/doveadm', 'kick', '{email}'] } },
    });
    expect(bad.r.code).toBe(78);
    expect(bad.by['sign-out action']).toMatchObject({ status: 'fail' });
    const good = await doctor({ config: { signOut: { action: 'command', command: ['true', '--', '{email}'] } } });
    expect(good.by['sign-out action']!.status).toBe('ok');
    expect(good.r.code).toBe(0);
  });

  it('schema missing (never migrated): 78, key not sampled', async () => {
    const empty = await createTestDb(kind);
    // An existing, empty SQLite file (doctor reports a missing file as such and creates nothing: the test below).
    if (kind === 'sqlite') writeFileSync(empty.url.slice('sqlite:'.length), '');
    try {
      const { r, by } = await doctor({ db: empty.url });
      expect(r.code).toBe(78);
      expect(by.schema).toMatchObject({ status: 'fail', detail: "mail2fa's tables do not exist" });
      expect(by['status summary']).toMatchObject({
        status: 'skip',
        detail: 'not checked: the schema is not up to date',
      });
      expect(by.key!.detail).toContain('not tested against stored secrets');
    } finally {
      await empty.drop();
    }
  });

  if (kind === 'mariadb') {
    it('wrong database password: 69 (the right one passes)', async () => {
      const db = await scratch.ctx.db();
      const user = `m2f_doc_${randomBytes(3).toString('hex')}`;
      const dbName = new URL(scratch.tdb.url).pathname.slice(1);
      await db.knex.raw(`CREATE USER '${user}'@'%' IDENTIFIED BY 'right-pass'`);
      try {
        await db.knex.raw(`GRANT ALL ON \`${dbName}\`.* TO '${user}'@'%'`);
        const good = await doctor({ db: `mysql://${user}:right-pass@127.0.0.1:3306/${dbName}` });
        expect(good.by.database!.status).toBe('ok');
        expect(good.r.code).toBe(0);
        const bad = await doctor({ db: `mysql://${user}:wrong-pass@127.0.0.1:3306/${dbName}` });
        expect(bad.r.code).toBe(69);
        expect(bad.by.database!.detail).toContain('refused the login');
        expect(bad.r.stdout).not.toContain('wrong-pass');
        expect(bad.by.key!.status).toBe('ok');
      } finally {
        await db.knex.raw(`DROP USER '${user}'@'%'`);
      }
    });

    it('a MyISAM table: 78, named', async () => {
      const db = await scratch.ctx.db();
      await db.knex.raw(`ALTER TABLE \`${scratch.ctx.tables.codeKey}\` ENGINE=MyISAM`);
      try {
        const { r, by } = await doctor();
        expect(r.code).toBe(78);
        expect(by['storage engine']).toMatchObject({
          status: 'fail',
          detail: `not InnoDB: ${scratch.ctx.tables.codeKey} (MyISAM)`,
        });
      } finally {
        await db.knex.raw(`ALTER TABLE \`${scratch.ctx.tables.codeKey}\` ENGINE=InnoDB`);
      }
      expect((await doctor()).r.code).toBe(0);
    });
  }
});

it('a mistyped SQLite path: 78, the database and the key reported missing, and nothing created', async () => {
  const dir = join(tmpdir(), `mail2fa-doctor-missing-${process.pid}-${randomBytes(4).toString('hex')}`);
  const file = join(dir, 'nope', 'db.sqlite');
  const r = await runCli(['--db', `sqlite:${file}`, 'doctor', '--json'], {
    env: {
      MAIL2FA_HOME: join(dir, 'home'),
      MAIL2FA_CONFIG: undefined,
      MAIL2FA_KEY_FILE: undefined,
      MAIL2FA_KEY: undefined,
    },
  });
  expect(r.code).toBe(78);
  const report = JSON.parse(r.stdout) as { checks: { name: string; status: string; detail: string }[] };
  expect(report.checks.find((c) => c.name === 'database')).toMatchObject({ status: 'fail' });
  expect(report.checks.find((c) => c.name === 'database')!.detail).toContain('no such file');
  expect(report.checks.find((c) => c.name === 'key')).toMatchObject({ status: 'fail' });
  expect(existsSync(join(dir, 'nope'))).toBe(false);
  expect(r.stderr).not.toContain('created a new master key file');
});
