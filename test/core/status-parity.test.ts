/**
 * `status` gives the same rows on SQLite and MariaDB for the same seeded data: in mail2fa's reference table
 * and in a PostfixAdmin `mailbox` table created with PostfixAdmin's real DDL (latin1_general_ci: case-insensitive
 * and PAD SPACE), where exact matching must still hold. Expectations are literal, so both databases are held
 * to one and the same answer.
 */
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { Context } from '../../src/context.js';
import { addToSummary, newSummary, statusBatches, type StatusRow } from '../../src/core/status.js';
import type { StoreAccountStatus } from '../../src/stores/types.js';
import { summaryLine } from '../../src/ui/status-render.js';
import { createTestDb, describeEachDb, type TestDb } from '../helpers/db.js';
import { addMailbox, testClock, testContext } from '../helpers/context.js';
import { createPostfixAdminMailbox, insertPostfixAdminMailbox, postfixAdminConfig } from '../fixtures/postfixadmin.js';
import { allTablesSnapshot } from '../helpers/db-snapshot.js';
import { collectStatusRows, seedFactors } from '../helpers/status-seed.js';
import { refreshAllSummaries } from '../../src/db/status-summary.js';

const clock = testClock(Date.UTC(2026, 0, 15, 9, 30, 0));
const NOW = '2026-01-15T09:30:00Z';
const LOCKED_UNTIL = '2026-01-15T09:45:00Z';
const LAST_USED = Date.UTC(2026, 0, 14, 8, 0, 0);

const collect = collectStatusRows;

const byEmail = (a: StatusRow, b: StatusRow) => (a.email < b.email ? -1 : a.email > b.email ? 1 : 0);

const base = {
  state: 'ok' as const,
  active: true,
  phone: null,
  enrolledAt: null,
  lastUsedAt: null,
  recoveryCodesLeft: null,
  lockedUntil: null,
  temporaryCode: null,
};
/** What mail2fa's own store says about an account with 2FA on (status `stores`). */
const own = (method: 'totp' | 'sms' | null, temporaryCode?: 'pending' | 'used'): StoreAccountStatus => ({
  store: 'mail2fa',
  kind: 'mail2fa',
  activated: true,
  enforced: true,
  factors: method ? [{ kind: method, active: true }] : [],
  ...(temporaryCode ? { details: { temporaryCode } } : {}),
});
const on = { enabled: true, enforced: true, source: 'mail2fa', sources: ['mail2fa'] };
const off = (email: string, active = true): StatusRow => ({
  ...base,
  email,
  active,
  enabled: false,
  enforced: false,
  method: null,
  source: null,
  sources: [],
  stores: [],
});
const totp = (email: string, extra: Partial<StatusRow> = {}): StatusRow => ({
  ...base,
  email,
  ...on,
  stores: [own('totp')],
  method: 'totp',
  enrolledAt: NOW,
  recoveryCodesLeft: 10,
  ...extra,
});
const sms = (email: string): StatusRow => ({
  ...base,
  email,
  ...on,
  stores: [own('sms')],
  method: 'sms',
  phone: '+45 ****3456',
  enrolledAt: NOW,
  recoveryCodesLeft: 10,
});
const temporary = (email: string, state: 'pending' | 'used'): StatusRow => ({
  ...off(email),
  ...on,
  stores: [own(null, state)],
  temporaryCode: { state, expiresAt: '2026-01-16T09:30:00Z' },
});
const unknown = (email: string): StatusRow => ({
  email,
  state: 'unknown',
  active: null,
  enabled: null,
  enforced: null,
  method: null,
  source: null,
  sources: [],
  stores: [],
  phone: null,
  enrolledAt: null,
  lastUsedAt: null,
  recoveryCodesLeft: null,
  lockedUntil: null,
  temporaryCode: null,
});
/** frank@example.net: PostfixAdmin's own TOTP (its totp_secret column, through the postfixadmin store); 80 bits: weak. */
const frank: StatusRow = {
  ...off('frank@example.net'),
  enabled: true,
  enforced: true,
  method: 'totp',
  source: 'postfixadmin',
  sources: ['postfixadmin'],
  stores: [
    {
      store: 'postfixadmin',
      kind: 'postfixadmin',
      activated: true,
      enforced: true,
      factors: [{ kind: 'totp', active: true, ref: 'mailbox.totp_secret', weak: true }],
    },
  ],
};

/** The factors of both suites: also orphans for "user@…" and "trail@…" that no mailbox row may borrow. */
const FACTORS = [
  { account: 'bob@example.com', method: 'totp' as const, lastUsedAt: LAST_USED },
  { account: 'carol@example.com', method: 'sms' as const },
  { account: 'dave@example.org', method: 'totp' as const, locked: true, usedCodes: 3 },
  { account: 'User@example.com', method: 'totp' as const },
  { account: 'user@example.com', method: 'sms' as const },
  { account: 'jürgen@example.com', method: 'totp' as const },
  { account: 'trail@example.com', method: 'totp' as const },
];

const LOOKUPS = [
  'carol@example.com',
  'nobody@example.com',
  'User@example.com',
  'USER@example.com',
  'a_c@example.com', // LIKE would match abc@example.com
  'ab%@example.com',
  '%@example.com',
  "o'hara@example.com",
  "x'OR'1'='1@example.com",
  'trail@example.com', // the DB holds "trail@example.com " (trailing space)
  'δ@example.com', // not representable in latin1
  'jürgen@example.com',
  'bob@EXAMPLE.com', // canonical: the domain is lower-cased
  'carol@example.com', // duplicates keep their place
];

describeEachDb('status parity, preset mail2fa', (kind) => {
  let tdb: TestDb;
  let ctx: Context;
  beforeAll(async () => {
    tdb = await createTestDb(kind);
    ctx = await testContext(tdb, { clock });
    for (const e of [
      'alice@example.com',
      'bob@example.com',
      'carol@example.com',
      'dave@example.org',
      'User@example.com',
      'user@example.com',
      'jürgen@example.com',
      'abc@example.com',
      'trail@example.com ',
      'δ@example.com',
    ]) {
      await addMailbox(ctx, e, 'pw', { scheme: 'PLAIN' });
    }
    await addMailbox(ctx, 'erin@example.org', 'pw', { scheme: 'PLAIN', active: false });
    await seedFactors(ctx, clock.now, FACTORS);
    // recover --temporary-code: no factor, 2FA still required through a single-use code (pending / used).
    for (const e of ['tina@example.org', 'ted@example.org']) await addMailbox(ctx, e, 'pw', { scheme: 'PLAIN' });
    const knex = (await ctx.db()).knex;
    await knex(ctx.tables.challenge).insert([
      {
        account: 'tina@example.org',
        purpose: 'temporary',
        code_hash: 'a'.repeat(64),
        created_at: clock.now,
        expires_at: clock.now + 86_400_000,
        used_at: null,
      },
      {
        account: 'ted@example.org',
        purpose: 'temporary',
        code_hash: 'b'.repeat(64),
        created_at: clock.now,
        expires_at: clock.now + 86_400_000,
        used_at: clock.now,
      },
      // Orphan codes of spellings without a mailbox row: the mailboxes "trail@example.com " and "User@example.com"
      // must not borrow them (the summary's state row is joined by exact account).
      {
        account: 'trail@example.com',
        purpose: 'temporary',
        code_hash: 'c'.repeat(64),
        created_at: clock.now,
        expires_at: clock.now + 86_400_000,
        used_at: null,
      },
      {
        account: 'USER@example.com',
        purpose: 'temporary',
        code_hash: 'd'.repeat(64),
        created_at: clock.now,
        expires_at: clock.now + 86_400_000,
        used_at: null,
      },
    ]);
    // Rows written by hand: their state rows and status summaries, as the migration fills them.
    await refreshAllSummaries(knex, ctx.tables, (await ctx.db()).dialect);
  });
  afterAll(async () => {
    await ctx?.close();
    await tdb?.drop();
  });

  it('--all: every mailbox row, each with its own factor only', async () => {
    const rows = (await collect(ctx, { kind: 'all' })).sort(byEmail);
    expect(rows).toEqual(
      [
        off('alice@example.com'),
        totp('bob@example.com', { lastUsedAt: '2026-01-14T08:00:00Z' }),
        sms('carol@example.com'),
        totp('dave@example.org', { recoveryCodesLeft: 7, lockedUntil: LOCKED_UNTIL }),
        off('erin@example.org', false),
        totp('User@example.com'),
        sms('user@example.com'),
        totp('jürgen@example.com'),
        off('abc@example.com'),
        off('trail@example.com '), // PAD SPACE must not lend it the factor of "trail@example.com"
        off('δ@example.com'),
        temporary('tina@example.org', 'pending'),
        temporary('ted@example.org', 'used'),
      ].sort(byEmail),
    );
  });

  it('a list: exact matches only, unknown per row, input order and duplicates kept', async () => {
    const rows = await collect(ctx, { kind: 'emails', emails: LOOKUPS });
    expect(rows).toEqual([
      sms('carol@example.com'),
      unknown('nobody@example.com'),
      totp('User@example.com'),
      unknown('USER@example.com'),
      unknown('a_c@example.com'),
      unknown('ab%@example.com'),
      unknown('%@example.com'),
      unknown("o'hara@example.com"),
      unknown("x'OR'1'='1@example.com"),
      unknown('trail@example.com'),
      off('δ@example.com'),
      totp('jürgen@example.com'),
      totp('bob@example.com', { lastUsedAt: '2026-01-14T08:00:00Z' }),
      sms('carol@example.com'),
    ]);
  });

  it('--domain: exact domain, streamed; a temporary code keeps 2FA required', async () => {
    const rows = (await collect(ctx, { kind: 'domain', domain: 'example.org' })).sort(byEmail);
    expect(rows).toEqual([
      totp('dave@example.org', { recoveryCodesLeft: 7, lockedUntil: LOCKED_UNTIL }),
      off('erin@example.org', false),
      temporary('ted@example.org', 'used'),
      temporary('tina@example.org', 'pending'),
    ]);
    const summary = newSummary();
    for (const r of rows) addToSummary(summary, r);
    expect(summary).toEqual({
      accounts: 4,
      enabled: 3,
      disabled: 1,
      unknown: 0,
      invalid: 0,
      byMethod: { totp: 1, sms: 0, temporaryCode: 2 },
    });
    expect(summaryLine(summary)).toBe('4 accounts, 3 with 2FA (1 app, 0 SMS, 2 temporary codes), 1 without');
  });

  it('a lock that has expired is not shown', async () => {
    const later = { ...ctx, now: () => clock.now + 16 * 60_000 };
    const db = await ctx.db();
    const rows: StatusRow[] = [];
    for await (const b of statusBatches(
      { db, tables: ctx.tables, mapping: ctx.mapping, now: later.now },
      { kind: 'emails', emails: ['dave@example.org'] },
    ))
      rows.push(...b);
    expect(rows[0]!.lockedUntil).toBeNull();
  });
});

describeEachDb('status parity, PostfixAdmin mailbox table (real DDL)', (kind) => {
  let tdb: TestDb;
  let ctx: Context;
  beforeAll(async () => {
    tdb = await createTestDb(kind);
    ctx = await testContext(tdb, { clock, configPath: postfixAdminConfig(tdb.dir) });
    const knex = (await ctx.db()).knex;
    await createPostfixAdminMailbox(knex, kind, 'mailbox');
    for (const e of [
      'alice@example.com',
      'bob@example.com',
      'carol@example.com',
      'dave@example.org',
      'User@example.com',
      'jürgen@example.com',
      'abc@example.com',
      'trail@example.com ',
    ]) {
      await insertPostfixAdminMailbox(knex, 'mailbox', e);
    }
    await insertPostfixAdminMailbox(knex, 'mailbox', 'erin@example.org', { active: false });
    await insertPostfixAdminMailbox(knex, 'mailbox', 'frank@example.net', { totp: 'JBSWY3DPEHPK3PXP' }); // PostfixAdmin's own TOTP
    await insertPostfixAdminMailbox(knex, 'mailbox', 'gina@example.net', { totp: '' }); // empty = off
    await seedFactors(ctx, clock.now, FACTORS);
  });
  afterAll(async () => {
    await ctx?.close();
    await tdb?.drop();
  });

  it('the collation is case-insensitive: "user@…" cannot be added beside "User@…"', async () => {
    const knex = (await ctx.db()).knex;
    await expect(insertPostfixAdminMailbox(knex, 'mailbox', 'user@example.com')).rejects.toThrow(
      /Duplicate entry|UNIQUE constraint|duplicate key value/,
    );
    if (kind === 'mariadb') {
      // …and PAD SPACE: the row with a trailing space equals the one without.
      const [rows] = (await knex.raw("SELECT username FROM mailbox WHERE username = 'trail@example.com'")) as [
        { username: string }[],
      ];
      expect(rows.map((r) => r.username)).toEqual(['trail@example.com ']);
    }
  });

  it('--all: every row, factors joined exactly, PostfixAdmin totp_secret shown as its own source', async () => {
    const rows = (await collect(ctx, { kind: 'all' })).sort(byEmail);
    expect(rows).toEqual(
      [
        off('alice@example.com'),
        totp('bob@example.com', { lastUsedAt: '2026-01-14T08:00:00Z' }),
        sms('carol@example.com'),
        totp('dave@example.org', { recoveryCodesLeft: 7, lockedUntil: LOCKED_UNTIL }),
        off('erin@example.org', false),
        frank,
        off('gina@example.net'),
        totp('User@example.com'),
        totp('jürgen@example.com'),
        off('abc@example.com'),
        off('trail@example.com '),
      ].sort(byEmail),
    );
  });

  it('a list: exact matching holds on the case-insensitive PAD SPACE collation; no collation error', async () => {
    const rows = await collect(ctx, { kind: 'emails', emails: [...LOOKUPS, 'user@example.com', 'frank@example.net'] });
    expect(rows).toEqual([
      sms('carol@example.com'),
      unknown('nobody@example.com'),
      totp('User@example.com'),
      unknown('USER@example.com'),
      unknown('a_c@example.com'),
      unknown('ab%@example.com'),
      unknown('%@example.com'),
      unknown("o'hara@example.com"),
      unknown("x'OR'1'='1@example.com"),
      unknown('trail@example.com'),
      unknown('δ@example.com'),
      totp('jürgen@example.com'),
      totp('bob@example.com', { lastUsedAt: '2026-01-14T08:00:00Z' }),
      sms('carol@example.com'),
      unknown('user@example.com'), // the collation finds "User@example.com": not a match
      frank,
    ]);
  });

  it('--domain on the case-insensitive domain column keeps only the exact domain', async () => {
    const knex = (await ctx.db()).knex;
    await insertPostfixAdminMailbox(knex, 'mailbox', 'hank@Example.NET', { domain: 'Example.NET' });
    try {
      const rows = (await collect(ctx, { kind: 'domain', domain: 'EXAMPLE.net' })).sort(byEmail);
      expect(rows.map((r) => r.email)).toEqual(['frank@example.net', 'gina@example.net']);
    } finally {
      await knex('mailbox').where({ username: 'hank@Example.NET' }).delete();
    }
  });

  it('reading changes nothing', async () => {
    const knex = (await ctx.db()).knex;
    const before = await allTablesSnapshot(knex, kind);
    await collect(ctx, { kind: 'all' });
    await collect(ctx, { kind: 'emails', emails: LOOKUPS });
    expect(await allTablesSnapshot(knex, kind)).toEqual(before);
  });
});

describeEachDb('status parity, PostfixAdmin-shaped table without a unique key, with a table prefix', (kind) => {
  let tdb: TestDb;
  let ctx: Context;
  beforeAll(async () => {
    tdb = await createTestDb(kind);
    ctx = await testContext(tdb, { clock, configPath: postfixAdminConfig(tdb.dir, 'pfa_') });
    const knex = (await ctx.db()).knex;
    await createPostfixAdminMailbox(knex, kind, 'pfa_mailbox', false);
    for (const e of [
      'User@example.com',
      'user@example.com',
      'trail@example.com',
      'trail@example.com ',
      'twin@example.com',
      'twin@example.com',
    ]) {
      await insertPostfixAdminMailbox(knex, 'pfa_mailbox', e);
    }
    await seedFactors(ctx, clock.now, FACTORS);
  });
  afterAll(async () => {
    await ctx?.close();
    await tdb?.drop();
  });

  it('both "User@" and "user@" exist: a lookup of one never returns the other', async () => {
    expect(await collect(ctx, { kind: 'emails', emails: ['user@example.com'] })).toEqual([sms('user@example.com')]);
    expect(await collect(ctx, { kind: 'emails', emails: ['User@example.com'] })).toEqual([totp('User@example.com')]);
    expect(await collect(ctx, { kind: 'emails', emails: ['trail@example.com'] })).toEqual([totp('trail@example.com')]);
  });

  it('two rows with one address are reported as ambiguous, not guessed', async () => {
    const rows = await collect(ctx, { kind: 'emails', emails: ['twin@example.com'] });
    expect(rows).toEqual([
      { ...unknown('twin@example.com'), state: 'ambiguous', problem: '2 mailbox rows have this address' },
    ]);
  });

  it('--all lists each row with its own factor', async () => {
    const rows = (await collect(ctx, { kind: 'all' })).sort(byEmail);
    expect(rows).toEqual(
      [
        totp('User@example.com'),
        totp('trail@example.com'),
        off('trail@example.com '),
        off('twin@example.com'),
        off('twin@example.com'),
        sms('user@example.com'),
      ].sort(byEmail),
    );
  });
});
