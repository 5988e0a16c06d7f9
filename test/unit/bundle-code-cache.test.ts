/**
 * The built CLI loads commander, knex and the MariaDB driver from CommonJS files in bundle/ with V8 code caches
 * written by the build (scripts/code-cache-loader.mjs). A cache V8 refuses (built by another Node, or under other
 * flags) costs nothing but the start-up time it was for: this checks that the build's caches are accepted by the
 * Node that runs the tests, in a process of its own with default flags.
 */
import { spawnSync } from 'node:child_process';
import { copyFileSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = resolve(import.meta.dirname, '..', '..');
const BUNDLE = join(ROOT, 'bundle');

describe.skipIf(!existsSync(join(BUNDLE, 'knex.cjs')))('bundle code caches', () => {
  it('commander.cjs, knex.cjs, mysql2.cjs and better-sqlite3.cjs load with their caches accepted', () => {
    const loader = pathToFileURL(join(ROOT, 'scripts', 'code-cache-loader.mjs')).href;
    const script = [
      `const { loadCommonJs, codeCaches } = await import(${JSON.stringify(loader)});`,
      `const { Command } = loadCommonJs(${JSON.stringify(join(BUNDLE, 'commander.cjs'))});`,
      `const knex = loadCommonJs(${JSON.stringify(join(BUNDLE, 'knex.cjs'))});`,
      `loadCommonJs(${JSON.stringify(join(BUNDLE, 'mysql2.cjs'))});`,
      `const Sqlite = loadCommonJs(${JSON.stringify(join(BUNDLE, 'better-sqlite3.cjs'))});`,
      "if (typeof Command !== 'function' || typeof knex !== 'function') throw new Error('wrong exports');",
      // Without nativeBinding the bundled better-sqlite3 finds its addon in its own installation, not in bundle/.
      "const db = new Sqlite(':memory:'); if (db.prepare('select 41 + 1 as n').get().n !== 42) throw new Error('sqlite');",
      'db.close();',
      'console.log(JSON.stringify(codeCaches().map((c) => [c.name, c.cacheRejected])));',
    ].join('\n');
    const env = { ...process.env, NODE_OPTIONS: '' };
    const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { env, encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(JSON.parse(r.stdout)).toEqual([
      ['commander.cjs', false],
      ['knex.cjs', false],
      ['mysql2.cjs', false],
      ['better-sqlite3.cjs', false],
    ]);
  });

  it('a cache damaged inside (bytes flipped, length kept) is not used: the file compiles from source', () => {
    const dir = mkdtempSync(join(tmpdir(), 'mail2fa-cache-'));
    try {
      const file = join(dir, 'commander.cjs');
      copyFileSync(join(BUNDLE, 'commander.cjs'), file);
      const cache = readFileSync(join(BUNDLE, 'commander.cjs.cache'));
      for (let i = cache.length >> 1; i < (cache.length >> 1) + 4000 && i < cache.length; i++) cache[i]! ^= 0xff;
      writeFileSync(`${file}.cache`, cache);
      const loader = pathToFileURL(join(ROOT, 'scripts', 'code-cache-loader.mjs')).href;
      const script = [
        `const { loadCommonJs, codeCaches } = await import(${JSON.stringify(loader)});`,
        `const { Command } = loadCommonJs(${JSON.stringify(file)});`,
        "new Command('x').option('--db <url>').parse(['node', 'x', '--db', 'y']);",
        'console.log(JSON.stringify(codeCaches().map((c) => c.cacheRejected)));',
      ].join('\n');
      const env = { ...process.env, NODE_OPTIONS: '' };
      const r = spawnSync(process.execPath, ['--input-type=module', '-e', script], { env, encoding: 'utf8' });
      expect({ status: r.status, signal: r.signal, stderr: r.stderr }).toEqual({ status: 0, signal: null, stderr: '' });
      expect(JSON.parse(r.stdout)).not.toEqual([false]);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
