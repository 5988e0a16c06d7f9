/**
 * The suites' scratch databases start as clones of one migrated template (test/helpers/db-template.ts): a clone
 * must hold exactly the schema and rows that migrating an empty database gives, or every suite would test
 * something other than what `mail2fa migrate` creates.
 */
import { expect, inject, it } from 'vitest';
import type { Knex } from 'knex';
import type { Context } from '../../src/context.js';
import { testContext } from '../helpers/context.js';
import { tableRows } from '../helpers/db-snapshot.js';
import { createTestDb, describeEachDb, type DbKind } from '../helpers/db.js';

/** Tables, columns, indexes and constraints as the server describes them. */
async function schemaOf(knex: Knex, kind: DbKind): Promise<unknown> {
  if (kind === 'sqlite')
    return knex.raw("SELECT type, name, tbl_name, sql FROM sqlite_master WHERE name NOT LIKE 'sqlite_%' ORDER BY name");
  if (kind === 'postgres') {
    const columns = await knex.raw(
      `SELECT table_name, column_name, ordinal_position, data_type, character_maximum_length, is_nullable, column_default
         FROM information_schema.columns WHERE table_schema = current_schema() ORDER BY table_name, ordinal_position`,
    );
    const indexes = await knex.raw(
      'SELECT tablename, indexname, indexdef FROM pg_indexes WHERE schemaname = current_schema() ORDER BY indexname',
    );
    const constraints = await knex.raw(
      `SELECT conname, contype, pg_get_constraintdef(oid) AS def FROM pg_constraint
         WHERE connamespace = current_schema()::regnamespace ORDER BY conname`,
    );
    return [columns.rows, indexes.rows, constraints.rows];
  }
  const [tables] = (await knex.raw('SHOW TABLES')) as [Record<string, string>[]];
  const out: string[] = [];
  for (const row of tables) {
    const [[created]] = (await knex.raw(`SHOW CREATE TABLE \`${Object.values(row)[0]}\``)) as [
      { 'Create Table': string }[],
    ];
    out.push(created!['Create Table'].replace(/ AUTO_INCREMENT=\d+/, ''));
  }
  return out;
}

/** The migrations table's rows without their run times. */
async function migrationsOf(ctx: Context): Promise<unknown> {
  const rows = await tableRows((await ctx.db()).knex, [ctx.tables.migrations, ctx.tables.migrationsLock]);
  return Object.values(rows).map((table) => table.map(({ migration_time: _time, ...rest }) => rest));
}

describeEachDb('the migrated template', (kind) => {
  it('a clone has the schema and rows of a freshly migrated database', async () => {
    // The global setup made a template for this server, so the clone below is a copy, not a fresh migration.
    expect(inject('mail2faDbTemplates')[kind]).toBeDefined();
    const fresh = await createTestDb(kind);
    const clone = await createTestDb(kind, { migrated: true });
    const [freshCtx, cloneCtx] = [await testContext(fresh), await testContext(clone)];
    try {
      const [freshKnex, cloneKnex] = [(await freshCtx.db()).knex, (await cloneCtx.db()).knex];
      const freshSchema = await schemaOf(freshKnex, kind);
      expect(JSON.stringify(freshSchema)).toContain(freshCtx.tables.factor);
      expect(await schemaOf(cloneKnex, kind)).toEqual(freshSchema);
      expect(await migrationsOf(cloneCtx)).toEqual(await migrationsOf(freshCtx));
    } finally {
      await freshCtx.close();
      await cloneCtx.close();
      await fresh.drop();
      await clone.drop();
    }
  });
});
