#!/usr/bin/env node
/**
 * Writes docs/exit-codes.md from src/exit-codes.ts (through the tsc build in dist/, so run `npm run docs`, which
 * builds first). `--check` writes nothing and exits 1 when the committed page differs.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { exitCodesMarkdown } from '../dist/ui/exit-codes-render.js';

const page = join(dirname(fileURLToPath(import.meta.url)), '..', 'docs', 'exit-codes.md');
const wanted = exitCodesMarkdown();
if (process.argv.includes('--check')) {
  const stale = readFileSync(page, 'utf8') !== wanted;
  if (stale) process.stderr.write('docs/exit-codes.md is stale: run `npm run docs`\n');
  process.exitCode = stale ? 1 : 0;
} else {
  writeFileSync(page, wanted);
  process.stdout.write('wrote docs/exit-codes.md\n');
}
