/**
 * Child processes for the tests: `runCli` runs the built binary (bin/mail2fa.js → bundle/) as a user would, and
 * `runNode` any Node script or `-e` program (a second process on the built library in dist/, say), each capturing
 * stdout, stderr and how it ended.
 */
import { spawn } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export const BIN = fileURLToPath(new URL('../../bin/mail2fa.js', import.meta.url));

export interface CliResult {
  code: number | null;
  stdout: string;
  stderr: string;
}

export interface NodeResult extends CliResult {
  /** The signal that ended it, or null. */
  signal: NodeJS.Signals | null;
}

export interface RunOptions {
  /** The child's whole environment (an undefined value leaves the variable out). */
  env?: Record<string, string | undefined>;
  /** Written to stdin, which is then closed. */
  input?: string;
  cwd?: string;
  /** Killed (SIGKILL) after this long; default 20 s. */
  timeoutMs?: number;
  /** The reader goes away before the child writes anything (`… | true`): its writes fail with EPIPE. */
  closeStdout?: boolean;
}

/** Runs `node …nodeArgs` with exactly `o.env`. */
export function runNode(nodeArgs: string[], o: RunOptions = {}): Promise<NodeResult> {
  return new Promise((resolve, reject) => {
    const env: Record<string, string> = {};
    for (const [name, value] of Object.entries(o.env ?? process.env)) if (value !== undefined) env[name] = value;
    const child = spawn(process.execPath, nodeArgs, { env, cwd: o.cwd, stdio: ['pipe', 'pipe', 'pipe'] });
    let stdout = '';
    let stderr = '';
    if (o.closeStdout) child.stdout.destroy();
    else child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d));
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    const timer = setTimeout(() => child.kill('SIGKILL'), o.timeoutMs ?? 20_000);
    child.on('error', reject);
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      resolve({ code, signal, stdout, stderr });
    });
    child.stdin.on('error', () => {});
    child.stdin.end(o.input ?? '');
  });
}

/** The documents of NDJSON output, one a line (blank lines, such as the one after the final newline, skipped). */
export function ndjsonRows<T = Record<string, any>>(stdout: string): T[] {
  return stdout
    .trim()
    .split('\n')
    .filter(Boolean)
    .map((line) => JSON.parse(line) as T);
}

/** Runs the built CLI with `args`; `o.env` is laid over this process's environment, with NO_COLOR=1. */
export function runCli(args: string[], o: RunOptions = {}): Promise<CliResult> {
  return runNode([BIN, ...args], { ...o, env: { ...process.env, NO_COLOR: '1', ...o.env } });
}

/** Runs an ES module program (`node --input-type=module -e program …args`); `env` is laid over this process's. */
export function runModuleProgram(
  program: string,
  args: string[],
  env: Record<string, string | undefined>,
  o: Omit<RunOptions, 'env'> = {},
): Promise<NodeResult> {
  return runNode(['--input-type=module', '-e', program, ...args], { ...o, env: { ...process.env, ...env } });
}
