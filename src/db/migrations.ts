/**
 * mail2fa's own schema, as knex migrations kept in code (no migration files to ship or locate), recorded in
 * their own migrations table. Every table has a primary key; on MySQL/MariaDB every table is InnoDB, utf8mb4
 * with a binary collation so that account addresses compare byte for byte.
 *
 * Times are BIGINT milliseconds since the epoch (UTC): no time-zone or DATETIME-precision surprises across
 * SQLite and MySQL.
 */
import type { Knex } from 'knex';
import { tempFail } from '../errors.js';
import type { Database } from './connection.js';
import type { Tables } from './schema.js';
import { refreshAllSummaries, SUMMARY_COLUMNS } from './status-summary.js';

/** Longest address we store: 64 (local) + 1 + 253 (domain), plus room for IDNA growth. */
export const ACCOUNT_LENGTH = 320;

interface Migration {
  name: string;
  up(knex: Knex, tables: Tables, mysql: boolean): Promise<void>;
  down(knex: Knex, tables: Tables): Promise<void>;
}

function tableOptions(table: Knex.CreateTableBuilder, mysql: boolean): void {
  if (mysql) {
    table.engine('InnoDB');
    table.charset('utf8mb4');
    table.collate('utf8mb4_bin');
  }
}

const MIGRATIONS: Migration[] = [
  {
    name: '0001_initial',
    async up(knex, tables, mysql) {
      await knex.schema.createTable(tables.factor, (table) => {
        table.string('account', ACCOUNT_LENGTH).primary();
        table.string('method', 8).notNullable(); // 'totp' | 'sms'
        table.text('secret_ct').nullable(); // AES-256-GCM, AAD bound to table/column/account
        table.text('phone_ct').nullable();
        table.string('phone_masked', 32).nullable(); // "+45 ****5678": display only, never the number
        table.string('key_id', 16).notNullable();
        table.bigInteger('enrolled_at').notNullable();
        table.bigInteger('last_used_at').nullable();
        table.bigInteger('last_totp_step').nullable(); // replay protection (compare-and-set)
        table.integer('version').notNullable().defaultTo(0);
        tableOptions(table, mysql);
      });
      await knex.schema.createTable(tables.recoveryCode, (table) => {
        table.bigIncrements('id').primary();
        table.string('account', ACCOUNT_LENGTH).notNullable();
        table.string('code_hash', 64).notNullable();
        table.bigInteger('created_at').notNullable();
        table.bigInteger('used_at').nullable();
        table.index(['account', 'used_at'], `${tables.recoveryCode}_account`);
        tableOptions(table, mysql);
      });
      await knex.schema.createTable(tables.enrolment, (table) => {
        table.string('account', ACCOUNT_LENGTH).primary(); // at most one pending enrolment per account
        table.string('id', 32).notNullable().unique(`${tables.enrolment}_id`);
        table.string('method', 8).notNullable();
        table.text('secret_ct').nullable();
        table.text('phone_ct').nullable();
        table.string('phone_masked', 32).nullable();
        table.string('key_id', 16).notNullable();
        table.bigInteger('created_at').notNullable();
        table.bigInteger('expires_at').notNullable();
        tableOptions(table, mysql);
      });
      await knex.schema.createTable(tables.challenge, (table) => {
        table.bigIncrements('id').primary();
        table.string('account', ACCOUNT_LENGTH).notNullable();
        table.string('purpose', 16).notNullable(); // 'sms' (sign-in/disable/enrol) | 'temporary'
        table.string('code_hash', 64).notNullable();
        table.bigInteger('created_at').notNullable();
        table.bigInteger('expires_at').notNullable();
        table.bigInteger('used_at').nullable();
        table.index(['account', 'purpose'], `${tables.challenge}_account`);
        tableOptions(table, mysql);
      });
      await knex.schema.createTable(tables.smsSend, (table) => {
        table.bigIncrements('id').primary();
        table.string('account', ACCOUNT_LENGTH).notNullable();
        table.bigInteger('sent_at').notNullable();
        table.index(['account', 'sent_at'], `${tables.smsSend}_account`);
        tableOptions(table, mysql);
      });
      await knex.schema.createTable(tables.accountState, (table) => {
        table.string('account', ACCOUNT_LENGTH).primary();
        table.integer('failed_attempts').notNullable().defaultTo(0);
        table.bigInteger('locked_until').nullable();
        table.bigInteger('sessions_revoked_at').nullable();
        tableOptions(table, mysql);
      });
      await knex.schema.createTable(tables.audit, (table) => {
        table.bigIncrements('id').primary();
        table.bigInteger('at').notNullable();
        table.string('actor', 128).notNullable();
        table.string('action', 32).notNullable();
        table.string('account', ACCOUNT_LENGTH).nullable();
        table.string('ticket', 64).nullable();
        table.text('reason').nullable();
        table.string('outcome', 16).notNullable(); // 'ok' | 'refused' | 'failed'
        table.text('detail').nullable(); // JSON, never a secret
        table.string('tool_version', 32).notNullable();
        table.string('host', 255).notNullable();
        table.index(['account', 'at'], `${tables.audit}_account`);
        table.index(['at'], `${tables.audit}_at`);
        tableOptions(table, mysql);
      });
      // The key for keyed hashes of codes: random, stored encrypted under the master key, so `keys rotate`
      // re-encrypts it and every stored code hash stays valid.
      await knex.schema.createTable(tables.codeKey, (table) => {
        table.string('id', 16).primary();
        table.text('key_ct').notNullable();
        table.string('key_id', 16).notNullable();
        table.bigInteger('created_at').notNullable();
        tableOptions(table, mysql);
      });
    },
    async down(knex, tables) {
      for (const name of [
        tables.codeKey,
        tables.audit,
        tables.accountState,
        tables.smsSend,
        tables.challenge,
        tables.enrolment,
        tables.recoveryCode,
        tables.factor,
      ]) {
        await knex.schema.dropTableIfExists(name);
      }
    },
  },
  {
    // The status summary (src/db/status-summary.ts): what `status` shows of an account, in its state row, so that
    // bulk status joins one table. Filled here for existing data; every change keeps it current from now on.
    name: '0002_status_summary',
    async up(knex, tables, mysql) {
      // MySQL/MariaDB run migrations outside a transaction (DDL commits by itself): if the fill below failed after
      // the columns were added, the next run finds them and only fills.
      if (!(await knex.schema.hasColumn(tables.accountState, 'temp_used_at')))
        await knex.schema.alterTable(tables.accountState, (table) => {
          table.string('method', 8).nullable();
          table.string('phone_masked', 32).nullable();
          table.bigInteger('enrolled_at').nullable();
          table.bigInteger('last_used_at').nullable();
          table.integer('codes_left').nullable();
          table.bigInteger('temp_expires_at').nullable();
          table.bigInteger('temp_used_at').nullable();
        });
      await refreshAllSummaries(knex, tables, mysql ? 'mysql' : dialectOf(knex));
    },
    async down(knex, tables) {
      await knex.schema.alterTable(tables.accountState, (table) => {
        table.dropColumns(...SUMMARY_COLUMNS);
      });
    },
  },
];

/** The dialect behind a knex instance (the migrations get knex, and a flag for MySQL). */
function dialectOf(knex: Knex): 'postgres' | 'sqlite' {
  return (knex.client as { dialect?: string }).dialect === 'postgresql' ? 'postgres' : 'sqlite';
}

export const LATEST_MIGRATION = MIGRATIONS[MIGRATIONS.length - 1]!.name;

/** A knex migration source over the in-code list above. */
export function migrationSource(tables: Tables, mysql: boolean): Knex.MigrationSource<Migration> {
  return {
    getMigrations: async () => MIGRATIONS,
    getMigrationName: (m) => m.name,
    getMigration: async (migration) => ({
      up: (knex: Knex) => migration.up(knex, tables, mysql),
      down: (knex: Knex) => migration.down(knex, tables),
    }),
  };
}

export function migratorConfig(tables: Tables, mysql: boolean): Knex.MigratorConfig {
  return {
    migrationSource: migrationSource(tables, mysql),
    tableName: tables.migrations,
    // MySQL cannot roll back DDL, and SQLite handles it per statement; one migration = one unit.
    disableTransactions: mysql,
  };
}

/** The latest applied migration, or null when mail2fa's tables were never created. Reads only. */
export async function readSchemaVersion(knex: Knex, tables: Tables): Promise<string | null> {
  // One statement (every command runs it first): a missing migrations table is the error, not a second probe.
  try {
    const row = (await knex(tables.migrations).orderBy('id', 'desc').first('name')) as { name: string } | undefined;
    return row?.name ?? null;
  } catch (err) {
    if (isMissingTable(err)) return null;
    throw err;
  }
}

/** "No such table" from MySQL/MariaDB (1146), PostgreSQL (42P01) or SQLite. */
function isMissingTable(err: unknown): boolean {
  const e = err as { code?: unknown; errno?: unknown; message?: unknown } | null;
  return (
    e?.code === 'ER_NO_SUCH_TABLE' ||
    e?.errno === 1146 ||
    e?.code === '42P01' ||
    (e?.code === 'SQLITE_ERROR' && typeof e.message === 'string' && /no such table/.test(e.message))
  );
}

/**
 * Creates knex's migrations and lock tables if missing, race-free: `CREATE TABLE IF NOT EXISTS`, and the lock
 * row inserted with a fixed key (knex's own check-then-insert lets two concurrent first runs insert two lock
 * rows, after which its lock can never be taken again).
 */
async function ensureMigratorTables(knex: Knex, tables: Tables): Promise<void> {
  await knex.schema.createTableIfNotExists(tables.migrations, (table) => {
    table.increments();
    table.string('name');
    table.integer('batch');
    table.timestamp('migration_time');
  });
  await knex.schema.createTableIfNotExists(tables.migrationsLock, (table) => {
    table.increments('index').primary();
    table.integer('is_locked');
  });
  await knex(tables.migrationsLock).insert({ index: 1, is_locked: 0 }).onConflict('index').ignore();
}

/** How long a migration waits for a concurrent one (default 20 s; MAIL2FA_MIGRATE_WAIT_MS overrides). */
function migrateWaitMs(): number {
  const waitMs = Number(process.env.MAIL2FA_MIGRATE_WAIT_MS);
  return Number.isFinite(waitMs) && waitMs >= 0 ? waitMs : 20_000;
}

/** Another process migrating at the same moment: its tables appear, its lock is held, its writes conflict. */
function concurrentMigration(err: unknown): boolean {
  const driverError = err as { code?: string; message?: string };
  return (
    [
      'ER_TABLE_EXISTS_ERROR',
      'ER_LOCK_DEADLOCK',
      'ER_LOCK_WAIT_TIMEOUT',
      'ER_DUP_ENTRY',
      'SQLITE_BUSY',
      'SQLITE_LOCKED',
      '40P01',
      '42P07',
      '23505',
    ].includes(driverError.code ?? '') ||
    // knex turns every failure to take its lock (a Galera certification failure at COMMIT included) into a
    // code-less LockError carrying the message only.
    /already exists|Migration table is already locked|database is locked|Deadlock found|Lock wait timeout|try restarting transaction/.test(
      driverError.message ?? '',
    )
  );
}

export class MigrationBusy extends Error {
  constructor(cause: unknown) {
    super('another migration is running', { cause });
  }
}

/**
 * Brings mail2fa's schema to the latest migration. Safe against concurrent runs (on one server, or on several
 * Galera nodes): a run that finds another one at work waits, re-reads the version, and returns when the other
 * has finished (applied = []); after `waitMs` it throws MigrationBusy (exit 75 for the caller).
 */
export async function migrateToLatest(
  knex: Knex,
  tables: Tables,
  mysql: boolean,
  options: { waitMs?: number } = {},
): Promise<{ applied: string[] }> {
  const deadline = Date.now() + (options.waitMs ?? migrateWaitMs());
  for (let attempt = 1; ; attempt++) {
    try {
      if ((await readSchemaVersion(knex, tables)) === LATEST_MIGRATION) return { applied: [] };
      await ensureMigratorTables(knex, tables);
      const [, names] = (await knex.migrate.latest(migratorConfig(tables, mysql))) as [number, string[]];
      return { applied: names };
    } catch (err) {
      if (!concurrentMigration(err)) throw err;
      if (Date.now() > deadline) {
        // A lock or a conflict that outlasted the wait is "busy"; a table that keeps "already existing" without
        // its migration being recorded is a half-created schema, not a busy one.
        if (
          /already exists/.test((err as Error).message ?? '') ||
          (err as { code?: string }).code === 'ER_TABLE_EXISTS_ERROR'
        )
          throw err;
        throw new MigrationBusy(err);
      }
      await new Promise((r) => setTimeout(r, Math.min(50 * attempt, 500) + Math.floor(Math.random() * 50)));
    }
  }
}

/** migrateToLatest with a concurrent migration that outlasted the wait as 75 (busy, retry). */
export async function migrateOrBusy(db: Database, tables: Tables): Promise<{ applied: string[] }> {
  try {
    return await migrateToLatest(db.knex, tables, db.dialect === 'mysql');
  } catch (err) {
    if (err instanceof MigrationBusy) {
      throw tempFail(
        'migration_locked',
        `another migration holds the lock on ${db.displayUrl}`,
        'Retry when it has finished; if none is running, a crashed one left its lock: set is_locked = 0 in the migrations_lock table.',
      );
    }
    throw err;
  }
}
