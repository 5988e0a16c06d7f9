#!/usr/bin/env node
// Launcher only: everything lives in dist/ (built by `npm install` / `npm run build`).
import('../dist/main.js').then((m) => m.run(process.argv)).catch((err) => {
  process.stderr.write(`mail2fa: internal error (a bug, please report it): ${err && err.message ? err.message : err}\n`);
  process.exitCode = 70;
});
