/** The global setup's stale-build check: a build older than its sources (or none) stops the run with the reason. */
import { mkdirSync, mkdtempSync, rmSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, expect, it } from 'vitest';
import { staleBuildProblem } from '../setup/fresh-build.js';

let root: string | undefined;
afterEach(() => {
  if (root) rmSync(root, { recursive: true, force: true });
});

/** A project tree whose files have the given ages (seconds before now). */
function tree(files: Record<string, number>): string {
  root = mkdtempSync(join(tmpdir(), 'mail2fa-fresh-build-'));
  const now = Date.now() / 1000;
  for (const [path, age] of Object.entries(files)) {
    const file = join(root, path);
    mkdirSync(join(file, '..'), { recursive: true });
    writeFileSync(file, 'x');
    utimesSync(file, now - age, now - age);
  }
  return root;
}

it('is fresh when dist/ and bundle/ hold a file newer than every source', () => {
  const dir = tree({
    'src/a.ts': 100,
    'src/core/b.ts': 50,
    'dist/a.js': 200,
    'dist/core/b.js': 40,
    'bundle/cli.js': 30,
  });
  expect(staleBuildProblem(dir)).toBeNull();
});

it('names the source changed after the last build', () => {
  const dir = tree({ 'src/a.ts': 100, 'src/core/b.ts': 10, 'dist/a.js': 40, 'bundle/cli.js': 40 });
  expect(staleBuildProblem(dir)).toBe('dist/ is older than src/ (src/core/b.ts changed after the last build)');
});

it('checks the bundle too, and a missing build', () => {
  expect(staleBuildProblem(tree({ 'src/a.ts': 100, 'dist/a.js': 40, 'bundle/cli.js': 200 }))).toBe(
    'bundle/ is older than src/ (src/a.ts changed after the last build)',
  );
  expect(staleBuildProblem(tree({ 'src/a.ts': 100, 'dist/a.js': 40 }))).toBe('bundle/ is missing');
});
