#!/usr/bin/env node
/**
 * Writes the V8 code caches of the bundled commander.cjs, knex.cjs and mysql2.cjs (`<file>.cache`, read by
 * scripts/code-cache-loader.mjs). Run by scripts/bundle.mjs in a Node process of its own. The libraries are loaded
 * and then exercised the way a single-account command uses them — a knex on an in-memory SQLite database (reads,
 * locking reads, inserts, updates, a transaction, a schema probe) and the MySQL query compiler — so that the
 * functions compiled by then, not only the top level, are in the cache.
 *
 * Usage: node scripts/write-code-cache.mjs <bundle dir>
 */
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { codeCaches, loadCommonJs, sealCache } from './code-cache-loader.mjs';

const dir = resolve(process.argv[2] ?? 'bundle');

// commander: a program with options, a command and its arguments, parsed (what every run does first).
const { Command, Option } = loadCommonJs(join(dir, 'commander.cjs'));
const program = new Command('x')
  .exitOverride()
  .addOption(new Option('--db <url>', 'database'))
  .option('--json', 'json')
  .option('--no-color', 'no colours');
program.addCommand(
  new Command('status')
    .argument('[email...]', 'addresses')
    .option('--all', 'all')
    .addOption(new Option('--format <format>', 'format').choices(['table', 'json']))
    .action(() => {}),
);
program.parse(['node', 'x', '--db', 'sqlite:x', 'status', 'a@example.org', '--format', 'json']);

const knexFactory = loadCommonJs(join(dir, 'knex.cjs'));

async function exercise(knex) {
  await knex.raw('select 1');
  await knex.schema.hasTable('t');
  await knex.schema.createTable('t', (t) => {
    t.string('account', 320).primary();
    t.integer('n').notNullable();
    t.bigInteger('at').nullable();
  });
  await knex('t').insert({ account: 'a', n: 0 }).onConflict('account').ignore();
  await knex.transaction(async (trx) => {
    await trx('t').where('account', '').update({ n: 0 });
    await trx('t').where({ account: 'a' }).first();
    await trx('t').where({ account: 'a' }).update({ n: 1, at: Date.now() });
    await trx('t').insert({ account: 'b', n: 2, at: null });
    await trx('t').where('account', 'a').whereNull('at').count({ n: '*' }).first();
    await trx('t').select('account', 'n').whereIn('account', ['a', 'b']).orderBy('account', 'desc').limit(1);
  });
  await knex('t').where('account', 'b').del();
  await knex
    .transaction(async (trx) => {
      await trx('t').insert({ account: 'c', n: 3 });
      throw new Error('rolled back on purpose');
    })
    .catch(() => {});
}

const sqlite = knexFactory({ client: 'better-sqlite3', connection: { filename: ':memory:' }, useNullAsDefault: true });
try {
  await exercise(sqlite);
} finally {
  await sqlite.destroy();
}

// MySQL/MariaDB: compiles the dialect's statements without a server (loading mysql2.cjs on the way).
const mysql = knexFactory({ client: 'mysql2', connection: { host: '127.0.0.1', user: 'x', database: 'x' } });
mysql('t').where({ account: 'a' }).first().forUpdate().toSQL();
mysql('t').insert({ account: 'a', n: 0 }).toSQL();
mysql('t').where({ account: 'a' }).update({ n: 1 }).toSQL();
mysql('t').where('account', 'a').whereNull('at').count({ n: '*' }).toSQL();
mysql.raw('INSERT INTO ?? (account) VALUES (?) ON DUPLICATE KEY UPDATE account = account', ['t', 'a']).toSQL();
await mysql.destroy();

for (const { file, name, data, cacheRejected } of codeCaches()) {
  writeFileSync(`${file}.cache`, sealCache(data));
  process.stdout.write(
    `${name}.cache: ${data.length} bytes${cacheRejected === false ? ' (an older cache was used)' : ''}\n`,
  );
}
