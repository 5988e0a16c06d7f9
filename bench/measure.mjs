/**
 * Running one measured process: wall time from spawn to exit (hrtime, in this process) and peak RSS from
 * GNU time's wait4() rusage (`/usr/bin/time -f %M`). Every measured command — mail2fa, the mariadb/sqlite3
 * clients, bare node — runs through the same wrapper, so its few hundred microseconds cancel out of ratios.
 */
import { spawn, execFileSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, rmSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';

export const GNU_TIME = '/usr/bin/time';

/** Whether GNU time (for peak RSS) is installed; the bench says how to install it when it is not. */
export function haveGnuTime() {
  if (!existsSync(GNU_TIME)) return false;
  try {
    execFileSync(GNU_TIME, ['-f', '%M', 'true'], { stdio: 'ignore' });
    return true;
  } catch {
    return false;
  }
}

let counter = 0;

/**
 * Runs `cmd args` once. stdin: a file path, a string (piped), or null (empty). stdout goes to /dev/null unless
 * `captureStdout`. Resolves { ms, rssKb, code, stderr, stdout }.
 */
export function runOnce(cmd, args, { env, stdinFile, stdinText, captureStdout = false, tmp, timeBin }) {
  return new Promise((resolve, reject) => {
    const rssFile = join(tmp, `rss-${process.pid}-${counter++}`);
    const argv = timeBin ? [GNU_TIME, ['-f', '%M', '-o', rssFile, cmd, ...args]] : [cmd, args];
    const inFd = stdinFile ? openSync(stdinFile, 'r') : null;
    const outFd = captureStdout ? null : openSync('/dev/null', 'w');
    const t0 = process.hrtime.bigint();
    const child = spawn(argv[0], argv[1], {
      env,
      stdio: [inFd ?? (stdinText !== undefined ? 'pipe' : 'ignore'), outFd ?? 'pipe', 'pipe'],
    });
    let stderr = '';
    let stdout = '';
    child.stderr.setEncoding('utf8').on('data', (d) => {
      if (stderr.length < 65536) stderr += d;
    });
    if (captureStdout) child.stdout.setEncoding('utf8').on('data', (d) => (stdout += d));
    if (stdinText !== undefined && !inFd) child.stdin.end(stdinText);
    child.on('error', reject);
    child.on('close', (code) => {
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      if (inFd !== null) closeSync(inFd);
      if (outFd !== null) closeSync(outFd);
      let rssKb = null;
      if (timeBin && existsSync(rssFile)) {
        // GNU time prefixes "Command exited with non-zero status N" on its own line when the child fails.
        const lines = readFileSync(rssFile, 'utf8').trim().split('\n');
        rssKb = Number(lines[lines.length - 1]);
        rmSync(rssFile, { force: true });
      }
      resolve({ ms, rssKb: Number.isFinite(rssKb) ? rssKb : null, code, stderr, stdout });
    });
  });
}

export function median(values) {
  const v = [...values].sort((a, b) => a - b);
  const mid = Math.floor(v.length / 2);
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

/**
 * Runs a command `warmup + runs` times (the warm-up run fills the database's and the OS's caches and is not
 * counted); `check(result)` returns a problem string or null for every run. Returns the median, all wall
 * times, the highest peak RSS and the first problem.
 */
export async function measure(label, cmd, args, o) {
  const { runs, warmup = 1, check, before } = o;
  const times = [];
  let rssKb = null;
  let problem = null;
  for (let i = 0; i < warmup + runs; i++) {
    const extra = before ? await before(i) : {};
    const r = await runOnce(cmd, args(i), { ...o, ...extra });
    const p = check ? check(r) : r.code === 0 ? null : `exit ${r.code}: ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`;
    if (p && !problem) problem = p;
    if (i < warmup) continue;
    times.push(r.ms);
    if (r.rssKb !== null) rssKb = Math.max(rssKb ?? 0, r.rssKb);
  }
  return { label, ms: median(times), times, rssKb, problem };
}

function tryRun(cmd, args) {
  try {
    return execFileSync(cmd, args, { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).trim();
  } catch {
    return null;
  }
}

/** What the machine is: cores, memory, CPU model, OS, versions. */
export function machine({ mariadbArgs, sqlite3 }) {
  let cpuModel = cpus()[0]?.model ?? 'unknown';
  try {
    const info = readFileSync('/proc/cpuinfo', 'utf8');
    cpuModel = /model name\s*:\s*(.+)/.exec(info)?.[1] ?? cpuModel;
  } catch {}
  let os = tryRun('uname', ['-sr']) ?? process.platform;
  try {
    os = /PRETTY_NAME="([^"]+)"/.exec(readFileSync('/etc/os-release', 'utf8'))?.[1] + `, ${os}`;
  } catch {}
  const mariadb = mariadbArgs ? tryRun('mariadb', [...mariadbArgs, '-N', '-B', '-e', 'SELECT VERSION()']) : null;
  const bp = mariadbArgs ? tryRun('mariadb', [...mariadbArgs, '-N', '-B', '-e', 'SELECT @@innodb_buffer_pool_size']) : null;
  return {
    cores: Number(tryRun('nproc', [])) || cpus().length,
    memoryGb: (totalmem() / 2 ** 30).toFixed(1),
    cpuModel,
    os,
    node: process.version,
    mariadb: mariadb ?? 'not measured',
    innodbBufferPoolMb: bp ? Math.round(Number(bp) / 2 ** 20) : null,
    sqlite: sqlite3 ? tryRun('sqlite3', ['--version'])?.split(' ')[0] ?? 'unknown' : null,
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
  };
}
