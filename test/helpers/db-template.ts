/**
 * Migrate once per database kind and clone: the global setup migrates one template per reachable server at the
 * start of the run, and every suite's scratch database starts as a copy of it instead of running the migrations
 * again (about a second of DDL per suite on MariaDB). SQLite: a migrated file, copied. PostgreSQL: a template
 * database, cloned with CREATE DATABASE … TEMPLATE. MariaDB: the template's SHOW CREATE TABLE statements and rows,
 * replayed into the new database (CREATE TABLE … LIKE would drop foreign keys).
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { testContext } from './context.js';
import {
  MARIADB_ADMIN_URL,
  POSTGRES_ADMIN_URL,
  databaseUrl,
  mariadbAdminConnection,
  postgresAdminConnection,
  probe,
} from './db-servers.js';

export interface DbTemplates {
  /** A migrated SQLite file to copy. */
  sqlite?: string;
  /** Statements that recreate the migrated schema and its rows in the current (USEd) MariaDB database. */
  mariadb?: string[];
  /** A migrated PostgreSQL database to use as CREATE DATABASE's template. */
  postgres?: string;
}

/** Migrates `url` the way testContext does for every suite. */
async function migrate(kind: 'sqlite' | 'mariadb' | 'postgres', url: string, dir: string): Promise<void> {
  const ctx = await testContext({ kind, url, dir, drop: async () => {} });
  await ctx.close();
}

/** Builds the templates of the reachable servers; `drop` removes what is left of them at the end of the run. */
export async function createDbTemplates(): Promise<{ templates: DbTemplates; drop(): Promise<void> }> {
  const dir = mkdtempSync(join(tmpdir(), 'mail2fa-template-'));
  const templates: DbTemplates = {};
  const suffix = randomBytes(5).toString('hex');

  const sqliteFile = join(dir, 'template.sqlite');
  await migrate('sqlite', `sqlite:${sqliteFile}`, dir);
  templates.sqlite = sqliteFile;

  if ((await probe(mariadbAdminConnection)) === null) {
    const name = `mail2fa_tpl_${suffix}`;
    const admin = await mariadbAdminConnection();
    try {
      await admin.query(`CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci`);
      await migrate('mariadb', databaseUrl(MARIADB_ADMIN_URL, name), dir);
      const statements: string[] = [];
      const [tables] = (await admin.query(`SHOW TABLES FROM \`${name}\``)) as unknown as [Record<string, string>[]];
      for (const row of tables) {
        const table = Object.values(row)[0]!;
        const [[created]] = (await admin.query(`SHOW CREATE TABLE \`${name}\`.\`${table}\``)) as unknown as [
          { 'Create Table': string }[],
        ];
        statements.push(created!['Create Table']);
        const [rows] = (await admin.query(`SELECT * FROM \`${name}\`.\`${table}\``)) as unknown as [
          Record<string, unknown>[],
        ];
        for (const values of rows) statements.push(admin.format(`INSERT INTO \`${table}\` SET ?`, [values]));
      }
      templates.mariadb = statements;
    } finally {
      await admin.query(`DROP DATABASE IF EXISTS \`${name}\``);
      await admin.end();
    }
  }

  let postgresTemplate: string | undefined;
  if ((await probe(() => postgresAdminConnection())) === null) {
    postgresTemplate = `mail2fa_tpl_${suffix}`;
    const admin = await postgresAdminConnection();
    try {
      await admin.query(`CREATE DATABASE "${postgresTemplate}" ENCODING 'UTF8' TEMPLATE template0`);
    } finally {
      await admin.end();
    }
    await migrate('postgres', databaseUrl(POSTGRES_ADMIN_URL, postgresTemplate), dir);
    templates.postgres = postgresTemplate;
  }

  return {
    templates,
    async drop() {
      rmSync(dir, { recursive: true, force: true });
      if (postgresTemplate) {
        const admin = await postgresAdminConnection();
        await admin.query(`DROP DATABASE IF EXISTS "${postgresTemplate}" WITH (FORCE)`);
        await admin.end();
      }
    },
  };
}
