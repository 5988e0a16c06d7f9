#!/usr/bin/env node
// Launcher only: the CLI is the esbuild bundle in bundle/ (built by `npm install` / `npm run build` from the
// tsc output's sources); dist/ is the library and the fallback when no bundle was built.
if (process.argv.includes('--verbose')) process.setSourceMapsEnabled(true);
const fail = (err) => {
  process.stderr.write(
    `mail2fa: internal error (a bug, please report it): ${err && err.message ? err.message : err}\n`,
  );
  process.exitCode = 70;
};
import('../bundle/cli.js')
  .catch((err) => {
    if (err && err.code === 'ERR_MODULE_NOT_FOUND' && String(err.message).includes('bundle/cli.js'))
      return import('../dist/main.js');
    throw err;
  })
  .then((m) => m.run(process.argv))
  .catch(fail);
