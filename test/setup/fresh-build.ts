/**
 * Refuse to run against a stale build (checked by the global setup). Many suites spawn the BUILT binary (bin/mail2fa.js →
 * bundle/, dist/) as a user would; after an edit in src/ without `npm run build` they would test yesterday's code
 * and pass or fail for the wrong reason. `npm test` builds first, so this only stops a bare `npx vitest`.
 */
import { existsSync, readdirSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = fileURLToPath(new URL('../../', import.meta.url));

/** The newest modification time (ms) of any file below `dir`, and that file; null for an empty or absent folder. */
export function newestFile(dir: string): { path: string; mtimeMs: number } | null {
  if (!existsSync(dir)) return null;
  let newest: { path: string; mtimeMs: number } | null = null;
  for (const entry of readdirSync(dir, { recursive: true, withFileTypes: true })) {
    if (!entry.isFile()) continue;
    const path = join(entry.parentPath, entry.name);
    const { mtimeMs } = statSync(path);
    if (!newest || mtimeMs > newest.mtimeMs) newest = { path, mtimeMs };
  }
  return newest;
}

/** Why the build in `root` cannot be tested (absent or older than its sources), or null when it is fresh. */
export function staleBuildProblem(root: string): string | null {
  const source = newestFile(join(root, 'src'));
  if (!source) return null;
  for (const output of ['dist', 'bundle']) {
    const built = newestFile(join(root, output));
    if (!built) return `${output}/ is missing`;
    if (built.mtimeMs < source.mtimeMs)
      return `${output}/ is older than src/ (${relative(root, source.path)} changed after the last build)`;
  }
  return null;
}
