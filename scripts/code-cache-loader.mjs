/**
 * Loads the bundled CommonJS libraries of the CLI (bundle/knex.cjs, bundle/mysql2.cjs) with V8's code cache: the
 * compiled code of their functions, written beside them at build time (`<file>.cache`, scripts/bundle.mjs), so
 * that a run of mail2fa skips parsing and compiling them (knex alone is ~0.9 MB of source). Node 20 has no compile
 * cache of its own for this (module.enableCompileCache came with Node 22).
 *
 * The cache is only an accelerator: V8 checks it against the source and against its own version and flags, and
 * compiles from the source as usual when it does not fit (another Node version, a changed file, --cpu-prof …).
 * V8 does not checksum the cache's contents in release builds: a cache damaged on disk with its length intact
 * crashes the process. So each cache file ends in a CRC-32 of the data before it, checked here; a cache whose
 * CRC does not match is not handed to V8.
 * Part of the bundle (imported by the stand-in module for `knex`) and used by the build to write the cache.
 */
import { readFileSync } from 'node:fs';
import { Module, createRequire } from 'node:module';
import { basename, dirname, join } from 'node:path';
import { Script } from 'node:vm';
import { crc32 } from 'node:zlib';

const CRC_BYTES = 4;

/** The build's file contents for a code cache: the data, then its CRC-32 (big-endian). */
export function sealCache(data) {
  const crc = Buffer.alloc(CRC_BYTES);
  crc.writeUInt32BE(crc32(data));
  return Buffer.concat([data, crc]);
}

/** The code cache in a cache file's contents, or undefined when it is too short or its CRC-32 does not match. */
function openCache(contents) {
  if (contents.length <= CRC_BYTES) return undefined;
  const data = contents.subarray(0, contents.length - CRC_BYTES);
  return crc32(data) === contents.readUInt32BE(contents.length - CRC_BYTES) ? data : undefined;
}

/** Bundled CommonJS files, by file name: `require('./mysql2.cjs')` inside knex.cjs goes through the cache too. */
const loaded = new Map();

/** The compiled script of `file` (with its cache when one fits) and the module it defines, run once per process. */
export function loadCommonJs(file) {
  const known = loaded.get(file);
  if (known) return known.module.exports;
  const source = readFileSync(file, 'utf8');
  let cachedData;
  try {
    cachedData = openCache(readFileSync(`${file}.cache`));
  } catch {
    // no cache written (a build without it): compiled from source
  }
  const script = new Script(Module.wrap(source), { filename: file, cachedData });
  const module = { exports: {}, filename: file, id: file, loaded: false };
  const entry = { script, module, cacheRejected: cachedData ? script.cachedDataRejected === true : null };
  loaded.set(file, entry);
  const dir = dirname(file);
  const nodeRequire = createRequire(file);
  const require = (id) => (id.startsWith('./') && id.endsWith('.cjs') ? loadCommonJs(join(dir, id)) : nodeRequire(id));
  require.resolve = nodeRequire.resolve;
  require.cache = nodeRequire.cache;
  try {
    script.runInThisContext()(module.exports, require, module, file, dir);
  } catch (err) {
    loaded.delete(file);
    throw err;
  }
  module.loaded = true;
  return module.exports;
}

/** For the build: the code cache of every file loaded so far, with the functions compiled until now. */
export function codeCaches() {
  return [...loaded].map(([file, { script, cacheRejected }]) => ({
    file,
    name: basename(file),
    cacheRejected,
    data: script.createCachedData(),
  }));
}
