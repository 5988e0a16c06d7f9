/**
 * Seed data for the `status` suites: the same mailboxes and 2FA states on SQLite, MariaDB and PostgreSQL, in mail2fa's
 * reference table or in a PostfixAdmin-shaped one (PostfixAdmin's real MySQL DDL: latin1, latin1_general_ci,
 * case-insensitive and PAD SPACE), plus a snapshot of every table to prove that a command changed nothing.
 */
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Knex } from 'knex';
import type { Context } from '../../src/context.js';
import { storeFactor } from '../../src/core/factors.js';
import { LOCKOUT_MS } from '../../src/core/lockout.js';
import { Vault } from '../../src/core/vault.js';
import { inTransaction, lockAccountState } from '../../src/db/tx.js';
import { generateTotpSecret } from '../../src/totp/totp.js';
import type { TestDb } from './db.js';

/**
 * PostfixAdmin 4.x's `mailbox` table as its setup creates it on MySQL/MariaDB. `unique: false` drops the primary
 * key on username (a hand-made or damaged table), the only way both "User@…" and "user@…" can exist under a
 * case-insensitive collation.
 */
export function postfixAdminMailboxDdl(table: string, unique = true): string {
  return `CREATE TABLE \`${table}\` (
  \`username\` varchar(255) NOT NULL,
  \`password\` varchar(255) NOT NULL,
  \`name\` varchar(255) CHARACTER SET utf8mb3 COLLATE utf8mb3_general_ci NOT NULL,
  \`maildir\` varchar(255) NOT NULL,
  \`quota\` bigint(20) NOT NULL DEFAULT 0,
  \`local_part\` varchar(255) NOT NULL,
  \`domain\` varchar(255) NOT NULL,
  \`created\` datetime NOT NULL DEFAULT '2000-01-01 00:00:00',
  \`modified\` datetime NOT NULL DEFAULT '2000-01-01 00:00:00',
  \`active\` tinyint(1) NOT NULL DEFAULT 1,
  \`phone\` varchar(30) CHARACTER SET utf8mb3 COLLATE utf8mb3_general_ci NOT NULL DEFAULT '',
  \`email_other\` varchar(255) CHARACTER SET utf8mb3 COLLATE utf8mb3_general_ci NOT NULL DEFAULT '',
  \`token\` varchar(255) CHARACTER SET utf8mb3 COLLATE utf8mb3_general_ci NOT NULL DEFAULT '',
  \`token_validity\` datetime NOT NULL DEFAULT '2000-01-01 00:00:00',
  \`password_expiry\` datetime NOT NULL DEFAULT '2000-01-01 00:00:00',
  \`smtp_active\` tinyint(1) NOT NULL DEFAULT 1,
  \`totp_secret\` varchar(255) DEFAULT NULL,
  ${unique ? 'PRIMARY KEY (`username`)' : 'KEY `username` (`username`)'},
  KEY \`domain\` (\`domain\`)
) ENGINE=InnoDB DEFAULT CHARSET=latin1 COLLATE=latin1_general_ci COMMENT='Postfix Admin - Virtual Mailboxes'`;
}

/** The closest SQLite can come: NOCASE makes username and domain case-insensitive (it has no PAD SPACE). */
export function postfixAdminMailboxSqlite(table: string, unique = true): string {
  return `CREATE TABLE "${table}" (
  username varchar(255) NOT NULL COLLATE NOCASE${unique ? ' PRIMARY KEY' : ''},
  password varchar(255) NOT NULL,
  name varchar(255) NOT NULL,
  maildir varchar(255) NOT NULL,
  quota bigint NOT NULL DEFAULT 0,
  local_part varchar(255) NOT NULL,
  domain varchar(255) NOT NULL COLLATE NOCASE,
  created datetime NOT NULL DEFAULT '2000-01-01 00:00:00',
  modified datetime NOT NULL DEFAULT '2000-01-01 00:00:00',
  active tinyint NOT NULL DEFAULT 1,
  phone varchar(30) NOT NULL DEFAULT '',
  email_other varchar(255) NOT NULL DEFAULT '',
  token varchar(255) NOT NULL DEFAULT '',
  token_validity datetime NOT NULL DEFAULT '2000-01-01 00:00:00',
  password_expiry datetime NOT NULL DEFAULT '2000-01-01 00:00:00',
  smtp_active tinyint NOT NULL DEFAULT 1,
  totp_secret varchar(255) DEFAULT NULL
)`;
}

const PG_CI_COLLATION = 'mail2fa_test_ci';

/**
 * PostfixAdmin's `mailbox` table as its PostgreSQL setup leaves it (boolean flags, timestamptz times), made as
 * hostile as MariaDB's latin1_general_ci: username and domain in a case-insensitive, non-deterministic ICU
 * collation (what a site gets from citext or such a collation), so "user@…" finds "User@…" unless mail2fa
 * compares exactly. PostgreSQL has no PAD SPACE: a trailing space stays significant.
 */
export function postfixAdminMailboxPostgres(table: string, unique = true): string {
  return `CREATE TABLE "${table}" (
  username varchar(255) COLLATE ${PG_CI_COLLATION} NOT NULL,
  password varchar(255) NOT NULL DEFAULT '',
  name varchar(255) NOT NULL DEFAULT '',
  maildir varchar(255) NOT NULL DEFAULT '',
  quota bigint NOT NULL DEFAULT 0,
  local_part varchar(255) NOT NULL DEFAULT '',
  domain varchar(255) COLLATE ${PG_CI_COLLATION} NOT NULL,
  created timestamp with time zone DEFAULT now(),
  modified timestamp with time zone DEFAULT now(),
  active boolean NOT NULL DEFAULT true,
  phone varchar(30) NOT NULL DEFAULT '',
  email_other varchar(255) NOT NULL DEFAULT '',
  token varchar(255) NOT NULL DEFAULT '',
  token_validity timestamp with time zone DEFAULT '2000-01-01',
  password_expiry timestamp with time zone DEFAULT '2000-01-01',
  smtp_active boolean NOT NULL DEFAULT true,
  totp_secret varchar(255) DEFAULT NULL${
    unique
      ? `,
  CONSTRAINT "${table}_key" PRIMARY KEY (username)`
      : ''
  }
)`;
}

export async function createPostfixAdminMailbox(
  knex: Knex,
  kind: TestDb['kind'],
  table: string,
  unique = true,
): Promise<void> {
  if (kind === 'postgres') {
    await knex.raw(
      `CREATE COLLATION IF NOT EXISTS ${PG_CI_COLLATION} (provider = icu, locale = 'und-u-ks-level2', deterministic = false)`,
    );
    await knex.raw(postfixAdminMailboxPostgres(table, unique));
    await knex.raw(`CREATE INDEX "${table}_domain_idx" ON "${table}" (domain)`);
    if (!unique) await knex.raw(`CREATE INDEX "${table}_username_idx" ON "${table}" (username)`);
    return;
  }
  await knex.raw(kind === 'mariadb' ? postfixAdminMailboxDdl(table, unique) : postfixAdminMailboxSqlite(table, unique));
  if (kind === 'sqlite') await knex.raw(`CREATE INDEX "${table}_domain" ON "${table}" (domain)`);
}

/** A PostfixAdmin mailbox row; `totp` fills PostfixAdmin's own (plaintext) totp_secret column. */
export async function insertPostfixAdminMailbox(
  knex: Knex,
  table: string,
  username: string,
  o: { active?: boolean; totp?: string; domain?: string } = {},
): Promise<void> {
  const at = username.lastIndexOf('@');
  await knex(table).insert({
    username,
    password: '{PLAIN}not-used-by-status',
    name: 'Test User',
    maildir: `${username.slice(at + 1)}/${username.slice(0, at)}/`,
    local_part: username.slice(0, at),
    domain: o.domain ?? username.slice(at + 1),
    active: o.active === false ? 0 : 1,
    totp_secret: o.totp ?? null,
  });
}

/** A config file selecting the PostfixAdmin preset (optionally with a table prefix). */
export function postfixAdminConfig(dir: string, tablePrefix = ''): string {
  const path = join(dir, `postfixadmin${tablePrefix}.yaml`);
  writeFileSync(path, `accounts:\n  preset: postfixadmin\n  tablePrefix: "${tablePrefix}"\n`);
  return path;
}

export interface FactorSeed {
  account: string;
  method: 'totp' | 'sms';
  /** Recovery codes marked used (of 10). */
  usedCodes?: number;
  /** Locked for 15 minutes from `now`. */
  locked?: boolean;
  lastUsedAt?: number;
}

/** Stores factors exactly as enrolment does (sealed secret, hashed recovery codes), with lockouts and usage. */
export async function seedFactors(ctx: Context, now: number, seeds: FactorSeed[]): Promise<void> {
  const db = await ctx.db();
  const vault = new Vault(ctx.masterKey(), ctx.tables, () => now);
  await inTransaction(db, ctx.tables, async (trx) => {
    for (const s of seeds) {
      await lockAccountState(trx, ctx.tables, db.dialect, s.account);
      if (s.method === 'totp')
        await storeFactor(trx, ctx.tables, vault, now, {
          account: s.account,
          method: 'totp',
          totpSecret: generateTotpSecret(),
        });
      else
        await storeFactor(trx, ctx.tables, vault, now, {
          account: s.account,
          method: 'sms',
          phoneE164: '+4520123456',
          phoneMasked: '+45 ****3456',
        });
      if (s.usedCodes) {
        const ids = (await trx(ctx.tables.recoveryCode)
          .where({ account: s.account })
          .orderBy('id')
          .limit(s.usedCodes)
          .select('id')) as { id: number }[];
        await trx(ctx.tables.recoveryCode)
          .whereIn(
            'id',
            ids.map((r) => r.id),
          )
          .update({ used_at: now });
      }
      if (s.lastUsedAt !== undefined)
        await trx(ctx.tables.factor).where({ account: s.account }).update({ last_used_at: s.lastUsedAt });
      if (s.locked)
        await trx(ctx.tables.accountState)
          .where({ account: s.account })
          .update({ failed_attempts: 5, locked_until: now + LOCKOUT_MS });
    }
  });
}

/** Every row of every table (mail2fa's and the mailbox table), in a stable order: equal snapshots = nothing changed. */
export async function snapshot(knex: Knex, kind: TestDb['kind']): Promise<Record<string, unknown[]>> {
  const names = await tableNamesOf(knex, kind);
  const out: Record<string, unknown[]> = {};
  for (const name of names) {
    const rows = (await knex(name).select()) as Record<string, unknown>[];
    out[name] = rows
      .map((r) => JSON.stringify(r, (_k, v: unknown) => (Buffer.isBuffer(v) ? v.toString('hex') : v)))
      .sort();
  }
  return out;
}

/** Every base table of the test database, sorted. */
export async function tableNamesOf(knex: Knex, kind: TestDb['kind']): Promise<string[]> {
  if (kind === 'sqlite')
    return (
      (await knex.raw(
        "SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%' ORDER BY name",
      )) as { name: string }[]
    ).map((r) => r.name);
  if (kind === 'postgres') {
    return (
      (await knex.raw(
        "SELECT table_name AS name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE' ORDER BY table_name",
      )) as { rows: { name: string }[] }
    ).rows.map((r) => r.name);
  }
  return (
    (await knex.raw(
      'SELECT TABLE_NAME AS name FROM information_schema.TABLES WHERE TABLE_SCHEMA = DATABASE() ORDER BY TABLE_NAME',
    )) as [{ name: string }[]]
  )[0].map((r) => r.name);
}
