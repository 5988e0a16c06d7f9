/**
 * Running one measured process: wall time from spawn to exit (hrtime, in this process) and peak RSS from
 * GNU time's wait4() rusage (`/usr/bin/time -f %M`). Every measured command — mail2fa, the mariadb/sqlite3
 * clients, bare node — runs through the same wrapper, so its few hundred microseconds cancel out of ratios.
 */
import { spawn, execFileSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readFileSync, rmSync } from 'node:fs';
import { cpus, totalmem } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';

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
 * Runs `cmd args` once. stdin: a file (stdinFile), a string (stdinText), or nothing. stdout goes to /dev/null unless
 * `captureStdout` (kept) or `countLines` (read through a pipe and only its newlines counted, so that a result's row
 * count can be checked without holding it). Resolves { ms, rssKb, cpuS, code, stderr, stdout, lines }.
 */
export function runOnce(
  cmd,
  args,
  { env, stdinFile, stdinText, captureStdout = false, countLines = false, tmp, timeBin, cwd },
) {
  return new Promise((resolve, reject) => {
    const rssFile = join(tmp, `rss-${process.pid}-${counter++}`);
    const argv = timeBin ? [GNU_TIME, ['-f', '%M %U %S', '-o', rssFile, cmd, ...args]] : [cmd, args];
    const inFd = stdinFile ? openSync(stdinFile, 'r') : null;
    const outFd = captureStdout || countLines ? null : openSync('/dev/null', 'w');
    const t0 = process.hrtime.bigint();
    const child = spawn(argv[0], argv[1], {
      env,
      cwd,
      stdio: [inFd ?? (stdinText !== undefined ? 'pipe' : 'ignore'), outFd ?? 'pipe', 'pipe'],
    });
    let stderr = '';
    let stdout = '';
    child.stderr.setEncoding('utf8').on('data', (d) => {
      if (stderr.length < 65536) stderr += d;
    });
    if (captureStdout) child.stdout.setEncoding('utf8').on('data', (d) => (stdout += d));
    let lines = null;
    if (countLines && !captureStdout) {
      lines = 0;
      child.stdout.on('data', (d) => {
        for (let i = d.indexOf(10); i !== -1; i = d.indexOf(10, i + 1)) lines++;
      });
    }
    if (stdinText !== undefined && !inFd) child.stdin.end(stdinText);
    child.on('error', reject);
    child.on('close', (code) => {
      const ms = Number(process.hrtime.bigint() - t0) / 1e6;
      if (inFd !== null) closeSync(inFd);
      if (outFd !== null) closeSync(outFd);
      let rssKb = null;
      let cpuS = null;
      if (timeBin && existsSync(rssFile)) {
        // GNU time prefixes "Command exited with non-zero status N" on its own line when the child fails.
        const timeLines = readFileSync(rssFile, 'utf8').trim().split('\n');
        const [rss, user, sys] = timeLines[timeLines.length - 1].split(' ').map(Number);
        rssKb = Number.isFinite(rss) ? rss : null;
        cpuS = Number.isFinite(user) && Number.isFinite(sys) ? user + sys : null;
        rmSync(rssFile, { force: true });
      }
      resolve({
        ms,
        rssKb,
        cpuS,
        code,
        stderr,
        stdout: captureStdout ? stdout : '',
        lines: captureStdout ? stdout.split('\n').length - 1 : lines,
      });
    });
  });
}

export function median(values) {
  const v = [...values].sort((a, b) => a - b);
  const mid = Math.floor(v.length / 2);
  return v.length % 2 ? v[mid] : (v[mid - 1] + v[mid]) / 2;
}

/**
 * Runs several commands `warmup + runs` times each, round-robin (A B C A B C …), so that a change in the
 * machine's load during the run affects all of them alike; the warm-up round fills the database's and the OS's
 * caches and is not counted. A spec: { label, cmd, args(i), check?(result) → problem|null, before?(i) → extra
 * runOnce options, …runOnce options }. Returns per spec: median wall ms, all wall times, median CPU seconds
 * (user+sys, when GNU time is there), the highest peak RSS and the first problem seen.
 */
export async function measureSet(specs, { runs, warmup = 1 }) {
  const out = specs.map((spec) => ({ label: spec.label, times: [], cpu: [], rssKb: null, problem: null }));
  for (let i = 0; i < warmup + runs; i++) {
    for (const [k, spec] of specs.entries()) {
      const extra = spec.before ? await spec.before(i) : {};
      const r = await runOnce(spec.cmd, spec.args(i), { ...spec, ...extra });
      const res = out[k];
      const p = spec.check
        ? spec.check(r)
        : r.code === 0
          ? null
          : `exit ${r.code}: ${r.stderr.trim().split('\n').slice(-3).join(' | ')}`;
      if (p && !res.problem) res.problem = p;
      if (i < warmup) continue;
      res.times.push(r.ms);
      if (r.cpuS !== null) res.cpu.push(r.cpuS);
      if (r.rssKb !== null) res.rssKb = Math.max(res.rssKb ?? 0, r.rssKb);
    }
  }
  for (const res of out) {
    res.ms = median(res.times);
    res.cpuS = res.cpu.length ? median(res.cpu) : null;
  }
  return out;
}

/** The 1-minute load average (other work on the machine skews wall times; the report says how busy it was). */
export function loadAverage() {
  try {
    return Number(readFileSync('/proc/loadavg', 'utf8').split(' ')[0]);
  } catch {
    return null;
  }
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
  const bp = mariadbArgs
    ? tryRun('mariadb', [...mariadbArgs, '-N', '-B', '-e', 'SELECT @@innodb_buffer_pool_size'])
    : null;
  return {
    cores: Number(tryRun('nproc', [])) || cpus().length,
    memoryGb: (totalmem() / 2 ** 30).toFixed(1),
    cpuModel,
    os,
    node: process.version,
    mariadb: mariadb ?? 'not measured',
    innodbBufferPoolMb: bp ? Math.round(Number(bp) / 2 ** 20) : null,
    sqlite: sqlite3 ? (tryRun('sqlite3', ['--version'])?.split(' ')[0] ?? 'unknown') : null,
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
  };
}

/** `--help` of a bench script: the script's header comment, printed as text. */
export function printHeaderHelp(moduleUrl) {
  process.stdout.write(
    readFileSync(fileURLToPath(moduleUrl), 'utf8')
      .split('*/')[0]
      .replace(/^#!.*\n\/\*\*\n/, '')
      .replace(/^ \* ?/gm, ''),
  );
}

/** Connection arguments and environment (password out of argv) for the `mariadb` client. */
export function mariadbClient(url) {
  return {
    args: [
      '-h',
      url.hostname || '127.0.0.1',
      '-P',
      url.port || '3306',
      '-u',
      decodeURIComponent(url.username || 'root'),
    ],
    env: url.password ? { ...process.env, MYSQL_PWD: decodeURIComponent(url.password) } : process.env,
  };
}

/** Connection arguments and environment (password out of argv) for `psql`. */
export function psqlClient(url) {
  return {
    args: [
      '-h',
      url.hostname || '127.0.0.1',
      '-p',
      url.port || '5432',
      '-U',
      decodeURIComponent(url.username || 'postgres'),
    ],
    env: url.password ? { ...process.env, PGPASSWORD: decodeURIComponent(url.password) } : process.env,
  };
}
