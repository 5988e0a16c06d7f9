/**
 * mail2fa's own schema, as knex migrations kept in code (no migration files to ship or locate), recorded in
 * their own migrations table. Every table has a primary key; on MySQL/MariaDB every table is InnoDB, utf8mb4
 * with a binary collation so that account addresses compare byte for byte.
 *
 * Times are BIGINT milliseconds since the epoch (UTC): no time-zone or DATETIME-precision surprises across
 * SQLite and MySQL.
 */
import type { Knex } from 'knex';
import type { Tables } from './schema.js';

/** Longest address we store: 64 (local) + 1 + 253 (domain), plus room for IDNA growth. */
export const ACCOUNT_LENGTH = 320;

interface Migration {
  name: string;
  up(knex: Knex, t: Tables, mysql: boolean): Promise<void>;
  down(knex: Knex, t: Tables): Promise<void>;
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
    async up(knex, t, mysql) {
      await knex.schema.createTable(t.factor, (table) => {
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
      await knex.schema.createTable(t.recoveryCode, (table) => {
        table.bigIncrements('id').primary();
        table.string('account', ACCOUNT_LENGTH).notNullable();
        table.string('code_hash', 64).notNullable();
        table.bigInteger('created_at').notNullable();
        table.bigInteger('used_at').nullable();
        table.index(['account', 'used_at'], `${t.recoveryCode}_account`);
        tableOptions(table, mysql);
      });
      await knex.schema.createTable(t.enrolment, (table) => {
        table.string('account', ACCOUNT_LENGTH).primary(); // at most one pending enrolment per account
        table.string('id', 32).notNullable().unique(`${t.enrolment}_id`);
        table.string('method', 8).notNullable();
        table.text('secret_ct').nullable();
        table.text('phone_ct').nullable();
        table.string('phone_masked', 32).nullable();
        table.string('key_id', 16).notNullable();
        table.bigInteger('created_at').notNullable();
        table.bigInteger('expires_at').notNullable();
        tableOptions(table, mysql);
      });
      await knex.schema.createTable(t.challenge, (table) => {
        table.bigIncrements('id').primary();
        table.string('account', ACCOUNT_LENGTH).notNullable();
        table.string('purpose', 16).notNullable(); // 'sms' (sign-in/disable/enrol) | 'temporary'
        table.string('code_hash', 64).notNullable();
        table.bigInteger('created_at').notNullable();
        table.bigInteger('expires_at').notNullable();
        table.bigInteger('used_at').nullable();
        table.index(['account', 'purpose'], `${t.challenge}_account`);
        tableOptions(table, mysql);
      });
      await knex.schema.createTable(t.smsSend, (table) => {
        table.bigIncrements('id').primary();
        table.string('account', ACCOUNT_LENGTH).notNullable();
        table.bigInteger('sent_at').notNullable();
        table.index(['account', 'sent_at'], `${t.smsSend}_account`);
        tableOptions(table, mysql);
      });
      await knex.schema.createTable(t.accountState, (table) => {
        table.string('account', ACCOUNT_LENGTH).primary();
        table.integer('failed_attempts').notNullable().defaultTo(0);
        table.bigInteger('locked_until').nullable();
        table.bigInteger('sessions_revoked_at').nullable();
        tableOptions(table, mysql);
      });
      await knex.schema.createTable(t.audit, (table) => {
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
        table.index(['account', 'at'], `${t.audit}_account`);
        table.index(['at'], `${t.audit}_at`);
        tableOptions(table, mysql);
      });
      // The key for keyed hashes of codes: random, stored encrypted under the master key, so `keys rotate`
      // re-encrypts it and every stored code hash stays valid.
      await knex.schema.createTable(t.codeKey, (table) => {
        table.string('id', 16).primary();
        table.text('key_ct').notNullable();
        table.string('key_id', 16).notNullable();
        table.bigInteger('created_at').notNullable();
        tableOptions(table, mysql);
      });
    },
    async down(knex, t) {
      for (const name of [t.codeKey, t.audit, t.accountState, t.smsSend, t.challenge, t.enrolment, t.recoveryCode, t.factor]) {
        await knex.schema.dropTableIfExists(name);
      }
    },
  },
];

export const LATEST_MIGRATION = MIGRATIONS[MIGRATIONS.length - 1]!.name;

/** A knex migration source over the in-code list above. */
export function migrationSource(tables: Tables, mysql: boolean): Knex.MigrationSource<Migration> {
  return {
    getMigrations: async () => MIGRATIONS,
    getMigrationName: (m) => m.name,
    getMigration: async (m) => ({
      up: (knex: Knex) => m.up(knex, tables, mysql),
      down: (knex: Knex) => m.down(knex, tables),
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
