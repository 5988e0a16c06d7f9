/**
 * `mail2fa demo` and the README quick start (`mail2fa demo` then `mail2fa status --all`) on a fresh
 * MAIL2FA_HOME, through the built binary; re-running changes nothing; --reset restores every sample state.
 */
import { mkdtempSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { openDatabase, type Database } from '../../src/db/connection.js';
import { runCli } from '../helpers/cli.js';
import { createTestDb, describeEachDb, type TestDb } from '../helpers/db.js';
import { allTablesSnapshot } from '../helpers/db-snapshot.js';

/** What `status --all` shows right after `demo` (times vary; the rest is fixed). */
const DEMO_STATES = [
  {
    email: 'alice@example.com',
    active: true,
    enabled: false,
    method: null,
    phone: null,
    recoveryCodesLeft: null,
    locked: false,
  },
  {
    email: 'bob@example.com',
    active: true,
    enabled: true,
    method: 'totp',
    phone: null,
    recoveryCodesLeft: 10,
    locked: false,
  },
  {
    email: 'carol@example.com',
    active: true,
    enabled: true,
    method: 'sms',
    phone: '+45 ****3456',
    recoveryCodesLeft: 10,
    locked: false,
  },
  {
    email: 'dave@example.org',
    active: true,
    enabled: true,
    method: 'totp',
    phone: null,
    recoveryCodesLeft: 10,
    locked: true,
  },
  {
    email: 'erin@example.org',
    active: false,
    enabled: false,
    method: null,
    phone: null,
    recoveryCodesLeft: null,
    locked: false,
  },
  {
    email: 'frank@example.net',
    active: true,
    enabled: true,
    method: 'totp',
    phone: null,
    recoveryCodesLeft: 3,
    locked: false,
  },
];

type Row = {
  email: string;
  active: boolean;
  enabled: boolean;
  method: string | null;
  phone: string | null;
  recoveryCodesLeft: number | null;
  lockedUntil: string | null;
};
const states = (stdout: string) =>
  stdout
    .split('\n')
    .filter(Boolean)
    .map((l) => JSON.parse(l) as Row)
    .map(({ email, active, enabled, method, phone, recoveryCodesLeft, lockedUntil }) => ({
      email,
      active,
      enabled,
      method,
      phone,
      recoveryCodesLeft,
      locked: lockedUntil !== null,
    }))
    .sort((a, b) => a.email.localeCompare(b.email));

const secrets = (stdout: string) => [...stdout.matchAll(/^ {2}(\S+@\S+)\s+([A-Z2-7]{32})$/gm)].map((m) => [m[1], m[2]]);

describe('README quick start on a fresh MAIL2FA_HOME (embedded SQLite, no key configured)', () => {
  const home = join(mkdtempSync(join(tmpdir(), 'mail2fa-demo-')), 'home');
  const env = {
    MAIL2FA_HOME: home,
    MAIL2FA_DB_URL: undefined,
    MAIL2FA_CONFIG: undefined,
    MAIL2FA_KEY: undefined,
    MAIL2FA_KEY_FILE: undefined,
  };
  const file = join(home, 'mail2fa.sqlite');
  let firstOutput = '';
  let db: Database | undefined;
  afterAll(async () => {
    await db?.close();
  });

  it('mail2fa demo: creates the database, a 0600 key file, and prints the demo passwords', async () => {
    const r = await runCli(['demo'], { env });
    expect(r.code).toBe(0);
    firstOutput = r.stdout;
    expect(r.stdout).toContain(`Demo mailboxes created in sqlite:${file}`);
    for (const [email, password] of [
      ['alice@example.com', 'alice-demo-pw'],
      ['bob@example.com', 'bob-demo-pw'],
      ['frank@example.net', 'frank-demo-pw'],
    ]) {
      expect(r.stdout).toMatch(new RegExp(`^${email.replace(/\./g, '\\.')}\\s+${password}\\s`, 'm'));
    }
    expect(secrets(r.stdout).map(([e]) => e)).toEqual(['bob@example.com', 'dave@example.org', 'frank@example.net']);
    expect(r.stderr).toContain(`created a new master key file ${file}.key (mode 0600)`);
    expect(statSync(`${file}.key`).mode & 0o777).toBe(0o600);
  });

  it('mail2fa status --all: the sample states', async () => {
    const table = await runCli(['status', '--all'], { env });
    expect(table.code).toBe(0);
    expect(table.stdout.trimEnd().split('\n').at(-1)).toBe('6 accounts, 4 with 2FA (3 app, 1 SMS), 2 without');
    const r = await runCli(['status', '--all', '--format', 'ndjson'], { env });
    expect(r.code).toBe(0);
    expect(states(r.stdout)).toEqual(DEMO_STATES);
  });

  it('running demo again changes nothing and exits 0', async () => {
    db = await openDatabase({ url: `sqlite:${file}`, connectTimeoutMs: 2000 });
    const before = await allTablesSnapshot(db.knex, 'sqlite');
    const r = await runCli(['demo'], { env });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('already exist');
    expect(r.stdout).toContain('nothing changed');
    expect(r.stdout).toContain('alice-demo-pw');
    expect(r.stderr).toBe('');
    expect(await allTablesSnapshot(db.knex, 'sqlite')).toEqual(before);
  });

  it('demo --reset restores every sample state, with fresh authenticator secrets', async () => {
    // Disturb the demo: bob's factor gone, dave unlocked, alice's mailbox deleted.
    await db!.knex('mail2fa_factor').where({ account: 'bob@example.com' }).delete();
    await db!
      .knex('mail2fa_account_state')
      .where({ account: 'dave@example.org' })
      .update({ locked_until: null, failed_attempts: 0 });
    await db!.knex('mailbox').where({ email: 'alice@example.com' }).delete();
    const changed = states((await runCli(['status', '--all', '--format', 'ndjson'], { env })).stdout);
    expect(changed).not.toEqual(DEMO_STATES);

    const r = await runCli(['demo', '--reset'], { env });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('Demo mailboxes created');
    const fresh = secrets(r.stdout);
    expect(fresh).toHaveLength(3);
    for (const [email, secret] of secrets(firstOutput)) expect(fresh).not.toContainEqual([email, secret]);
    expect(states((await runCli(['status', '--all', '--format', 'ndjson'], { env })).stdout)).toEqual(DEMO_STATES);
  });

  it('demo --json: one document', async () => {
    const r = await runCli(['--json', 'demo'], { env });
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout) as { ok: boolean; created: boolean; accounts: { email: string }[] };
    expect(doc).toMatchObject({ ok: true, created: false });
    expect(doc.accounts.map((a) => a.email)).toHaveLength(6);
    expect(r.stdout.trimEnd().includes('\n')).toBe(false);
  });
});

describeEachDb('demo on a database named with --db (not the embedded default)', (kind) => {
  let tdb: TestDb;
  beforeAll(async () => {
    tdb = await createTestDb(kind);
  });
  afterAll(async () => {
    await tdb?.drop();
  });

  it('creates its tables there (no prior migrate needed), and status reads them', async () => {
    const env = {
      MAIL2FA_HOME: join(tdb.dir, 'home'),
      MAIL2FA_KEY: Buffer.alloc(32, 9).toString('base64'),
      MAIL2FA_DB_URL: undefined,
      MAIL2FA_CONFIG: undefined,
      MAIL2FA_KEY_FILE: undefined,
    };
    const r = await runCli(['--db', tdb.url, 'demo'], { env });
    expect(r.stderr).toBe('');
    expect(r.code).toBe(0);
    const s = await runCli(['--db', tdb.url, 'status', '--all', '--format', 'ndjson'], { env });
    expect(s.code).toBe(0);
    expect(states(s.stdout)).toEqual(DEMO_STATES);
    const again = await runCli(['--db', tdb.url, 'demo', '--reset'], { env });
    expect(again.code).toBe(0);
  });
});
