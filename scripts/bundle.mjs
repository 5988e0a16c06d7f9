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
import { build } from 'esbuild';
import { readFileSync, rmSync } from 'node:fs';
import { dirname, join } from 'node:path';
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
  plugins: [ownZodCoreForMini],
  external: [
    // native addons and database drivers: loaded from node_modules when a database of that kind is opened
    'better-sqlite3',
    'mysql2',
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
