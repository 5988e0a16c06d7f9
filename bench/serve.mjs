#!/usr/bin/env node
/**
 * `npm run bench:serve` — `mail2fa serve` latency (a run of its own: `npm run bench` does not include it):
 *
 *   - POST /v1/verify with a correct TOTP over the Unix socket, 50 concurrent clients (autocannon), a different
 *     account per request (a code is accepted once): p50, p99, throughput; every answer must be "accepted";
 *   - POST /v1/requires-code, 50 concurrent clients: p50, p99, throughput;
 *   - the baseline: one `mail2fa verify <address>` spawned per sign-in (what a PHP webmail does without serve).
 *
 * On MariaDB (a scratch database, DROPPED and recreated) and on SQLite. Results are printed and written between
 * the serve markers of docs/benchmarks.md, with the machine described.
 *
 * Options: --help · --accounts N (default 8000: verifies per database) · --rate N (default 500/s: the offered rate for latency) · --connections N (default 50) · --db both|mariadb|sqlite
 *          · --mariadb-url mysql://root@127.0.0.1:3306/mail2fa_bench_serve · --cli-runs N (default 5) · --no-write
 * Env: MAIL2FA_BENCH_SERVE_NODE_ARGS — node flags for the service process (e.g. "--cpu-prof --cpu-prof-dir=/tmp/prof").
 */
import { spawn, spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync, writeFileSync, createWriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { Agent, request } from 'node:http';
import autocannon from 'autocannon';
import { loadAverage, machine, median, printHeaderHelp } from './measure.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const DOC = join(ROOT, 'docs', 'benchmarks.md');
const BIN = join(ROOT, 'bin', 'mail2fa.js');
const dist = (p) => import(pathToFileURL(join(ROOT, 'dist', p)).href);
const START = '<!-- bench:serve:start (written by bench/serve.mjs) -->';
const END = '<!-- bench:serve:end -->';

const { values: opt } = parseArgs({
  options: {
    accounts: { type: 'string', default: '8000' },
    connections: { type: 'string', default: '50' },
    db: { type: 'string', default: 'both' },
    'mariadb-url': {
      type: 'string',
      default: process.env.MAIL2FA_BENCH_SERVE_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/mail2fa_bench_serve',
    },
    'cli-runs': { type: 'string', default: '5' },
    rate: { type: 'string', default: '500' },
    'no-write': { type: 'boolean', default: false },
    help: { type: 'boolean', short: 'h', default: false },
  },
});
if (opt.help) {
  printHeaderHelp(import.meta.url);
  process.exit(0);
}
const ACCOUNTS = Number(opt.accounts);
const CONNECTIONS = Number(opt.connections);
const CLI_RUNS = Number(opt['cli-runs']);
/** The rate the latency targets are stated at (verifies per second), offered by all connections together. */
const RATE = Number(opt.rate);
const KEY = randomBytes(32).toString('base64');
const WORK = mkdtempSync(join(tmpdir(), 'mail2fa-bench-serve-'));
const PASSWORD = 'bench-password';

const log = (s) => process.stderr.write(`${s}\n`);

/** mail2fa's schema and ACCOUNTS mailboxes, each with an app factor sealed with the bench key. Returns the secrets. */
async function seed(dbUrl, env) {
  const { loadConfig } = await dist('config.js');
  const { contextFromConfig } = await dist('context.js');
  const { migratorConfig } = await dist('db/migrations.js');
  const { ensureReferenceMailboxTable } = await dist('db/accounts.js');
  const { hashPassword } = await dist('crypto/passwords.js');
  const { Vault } = await dist('core/vault.js');
  const { generateTotpSecret } = await dist('totp/totp.js');
  const { lockAccountStates } = await dist('db/tx.js');
  const { refreshStatusSummary } = await dist('db/status-summary.js');
  const config = await loadConfig({ dbUrl, env });
  const ctx = contextFromConfig(config, { env, actor: 'bench', skipSchemaCheck: true });
  const secrets = [];
  try {
    const db = await ctx.db();
    const mysql = db.dialect === 'mysql';
    await db.knex.migrate.latest(migratorConfig(ctx.tables, mysql));
    await ensureReferenceMailboxTable(db.knex, ctx.mapping, mysql);
    const m = ctx.mapping;
    const hash = await hashPassword(PASSWORD, 'SHA512-CRYPT');
    const vault = new Vault(ctx.masterKey(), ctx.tables, Date.now);
    const now = Date.now();
    for (let start = 0; start < ACCOUNTS; start += 500) {
      const mailboxes = [];
      const factors = [];
      for (let i = start; i < Math.min(ACCOUNTS, start + 500); i++) {
        const email = `user${i}@bench.example`;
        const secret = generateTotpSecret();
        secrets.push({ email, secret });
        mailboxes.push({ [m.email]: email, [m.password]: hash, [m.active]: true, [m.domain]: 'bench.example' });
        factors.push({
          account: email,
          method: 'totp',
          secret_ct: vault.seal(ctx.tables.factor, 'secret_ct', email, secret),
          phone_ct: null,
          phone_masked: null,
          key_id: vault.key.id,
          enrolled_at: now,
          last_used_at: null,
          last_totp_step: null,
          version: 0,
        });
      }
      await db.knex.transaction(async (trx) => {
        await trx(m.table).insert(mailboxes);
        await trx(ctx.tables.factor).insert(factors);
        // State rows with their status summary, as enrolment leaves them (the verifies then update them).
        const accounts = factors.map((f) => f.account);
        await lockAccountStates(trx, ctx.tables, db.dialect, accounts);
        await refreshStatusSummary(trx, ctx.tables, db.dialect, accounts);
      });
    }
  } finally {
    await ctx.close();
  }
  return secrets;
}

function startServe(dbUrl, env, socket) {
  return new Promise((resolvePromise, reject) => {
    const nodeArgs = process.env.MAIL2FA_BENCH_SERVE_NODE_ARGS?.split(' ').filter(Boolean) ?? [];
    const child = spawn(
      process.execPath,
      [...nodeArgs, BIN, '--db', dbUrl, 'serve', '--socket', socket, '--client-name', 'bench'],
      { env, stdio: ['ignore', 'ignore', 'pipe'] },
    );
    const logFile = createWriteStream(join(WORK, `serve-${Date.now()}.log`));
    let head = '';
    child.stderr.on('data', (d) => {
      logFile.write(d);
      if (head !== null) {
        head += d;
        if (head.includes('"event":"listening"')) {
          head = null;
          resolvePromise(child);
        }
      }
    });
    child.on('exit', (code) => head !== null && reject(new Error(`serve exited ${code}: ${head}`)));
  });
}

function stopServe(child) {
  return new Promise((r) => {
    child.once('exit', r);
    child.kill('SIGTERM');
  });
}

/** CPU seconds (user + system) the process has used so far, from /proc (clock ticks of 10 ms). */
function cpuSeconds(pid) {
  try {
    const fields = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' ');
    return (Number(fields[11]) + Number(fields[12])) / 100;
  } catch {
    return NaN;
  }
}

/** Runs `work` and adds the service's CPU per request to its result: a measure that other load on the machine hardly skews. */
async function withCpu(pid, work) {
  const before = cpuSeconds(pid);
  const out = await work();
  out.cpuMsPerRequest = ((cpuSeconds(pid) - before) * 1000) / out.result.requests.total;
  return out;
}

/** autocannon over the socket; `body(i)` gives the i-th request's JSON; `check(status, body)` → problem or null. */
function load({ socket, path, amount, duration, body, check }) {
  let i = 0;
  const problems = new Map();
  return new Promise((resolvePromise, reject) => {
    autocannon(
      {
        url: `http://mail2fa${path}`,
        socketPath: socket,
        connections: CONNECTIONS,
        ...(amount ? { amount } : { duration }),
        requests: [
          {
            method: 'POST',
            headers: { 'content-type': 'application/json', 'mail2fa-client': 'bench' },
            setupRequest: (req) => ({ ...req, body: JSON.stringify(body(i++)) }),
            onResponse: (status, text) => {
              const problem = check(status, text);
              if (problem) problems.set(problem, (problems.get(problem) ?? 0) + 1);
            },
          },
        ],
      },
      (err, result) => (err ? reject(err) : resolvePromise({ result, problems })),
    );
  });
}

/**
 * Open loop at a fixed rate (what the latency targets mean): request i is due at start + i/rate, whatever the
 * earlier answers do, over at most CONNECTIONS keep-alive connections; its latency counts from when it was due
 * (no coordinated omission: a stalled service cannot hide its queue). autocannon's own rate limit sends each
 * second's requests in one burst, so it is used for the flat-out runs only.
 */
/** One POST of a JSON payload over the service's socket; `answer(status, text)` or `failed(err)` when it ends. */
function postJson({ socket, path, agent, payload }, answer, failed) {
  const req = request(
    {
      socketPath: socket,
      path,
      method: 'POST',
      agent,
      headers: {
        'content-type': 'application/json',
        'content-length': Buffer.byteLength(payload),
        'mail2fa-client': 'bench',
      },
    },
    (res) => {
      let text = '';
      res.setEncoding('utf8').on('data', (d) => (text += d));
      res.on('end', () => answer(res.statusCode, text));
    },
  );
  req.on('error', failed);
  req.end(payload);
}

/** The latency percentiles of a run, in the shape the report reads (autocannon's). */
function latencySummary(latencies, duration, problems) {
  latencies.sort((a, b) => a - b);
  const pct = (q) => latencies[Math.min(latencies.length - 1, Math.floor(q * latencies.length))];
  return {
    result: { requests: { total: latencies.length }, duration, latency: { p50: pct(0.5), p99: pct(0.99) } },
    problems,
  };
}

async function openLoop({ socket, path, rate, amount, body, check }) {
  const agent = new Agent({ keepAlive: true, maxSockets: CONNECTIONS });
  const latencies = [];
  const problems = new Map();
  const start = performance.now() + 20;
  const due = (i) => start + (i * 1000) / rate;
  let scheduled = 0; // requests whose time has come
  let started = 0; // requests sent (at most CONNECTIONS in flight; the rest wait here, their clocks running)
  let finished = 0;
  let wake;
  const send = (i) => {
    // The body (a TOTP code) is made when the request really leaves: a queue cannot age its code.
    const payload = JSON.stringify(body(i));
    const done = (problem) => {
      latencies.push(performance.now() - due(i));
      if (problem) problems.set(problem, (problems.get(problem) ?? 0) + 1);
      finished++;
      wake?.();
    };
    postJson(
      { socket, path, agent, payload },
      (status, text) => done(check(status, text)),
      (err) => done(err.code ?? err.message),
    );
  };
  while (finished < amount) {
    const now = performance.now();
    while (scheduled < amount && due(scheduled) <= now) scheduled++;
    while (started < scheduled && started - finished < CONNECTIONS) send(started++);
    await new Promise((r) => {
      wake = r;
      setTimeout(r, 1);
    });
  }
  const duration = (performance.now() - start) / 1000;
  agent.destroy();
  return latencySummary(latencies, duration, problems);
}

/** One client, one request at a time over one keep-alive connection: the service's own latency, no queue. */
async function sequential({ socket, path, amount, body, check }) {
  const agent = new Agent({ keepAlive: true, maxSockets: 1 });
  const latencies = [];
  const problems = new Map();
  const t0 = performance.now();
  for (let i = 0; i < amount; i++) {
    const payload = JSON.stringify(body(i));
    const started = performance.now();
    const [status, text] = await new Promise((done, fail) =>
      postJson({ socket, path, agent, payload }, (code, reply) => done([code, reply]), fail),
    );
    latencies.push(performance.now() - started);
    const problem = check(status, text);
    if (problem) problems.set(problem, (problems.get(problem) ?? 0) + 1);
  }
  const duration = (performance.now() - t0) / 1000;
  agent.destroy();
  return latencySummary(latencies, duration, problems);
}

async function cliBaseline(dbUrl, env, secrets) {
  const { totpCode } = await dist('totp/totp.js');
  const times = [];
  for (let r = 0; r < CLI_RUNS + 1; r++) {
    const { email, secret } = secrets[r];
    const t0 = process.hrtime.bigint();
    const res = spawnSync(process.execPath, [BIN, '--db', dbUrl, 'verify', email], {
      env,
      input: `${totpCode(secret, Date.now())}\n`,
      encoding: 'utf8',
    });
    const ms = Number(process.hrtime.bigint() - t0) / 1e6;
    if (res.status !== 0) throw new Error(`mail2fa verify exited ${res.status}: ${res.stderr}`);
    if (r > 0) times.push(ms); // the first run warms the page cache
  }
  return { median: median(times), times };
}

async function measure(kind) {
  const dbUrl = kind === 'sqlite' ? `sqlite:${join(WORK, 'bench.sqlite')}` : opt['mariadb-url'];
  const env = { ...process.env, MAIL2FA_KEY: KEY, MAIL2FA_HOME: join(WORK, `home-${kind}`), NO_COLOR: '1' };
  delete env.MAIL2FA_CONFIG;
  delete env.MAIL2FA_KEY_FILE;
  if (kind === 'mariadb') {
    const u = new URL(dbUrl);
    const name = u.pathname.slice(1);
    const args = ['-h', u.hostname, '-P', u.port || '3306', '-u', decodeURIComponent(u.username || 'root')];
    const r = spawnSync(
      'mariadb',
      [...args, '-e', `DROP DATABASE IF EXISTS \`${name}\`; CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4`],
      { encoding: 'utf8' },
    );
    if (r.status !== 0) throw new Error(`cannot create ${name}: ${r.stderr}`);
  }
  log(`${kind}: seeding ${ACCOUNTS} accounts with app 2FA …`);
  const secrets = await seed(dbUrl, env);
  const socket = join(WORK, `serve-${kind}.sock`);
  const child = await startServe(dbUrl, env, socket);
  const { totpCode } = await dist('totp/totp.js');
  try {
    // Warm-up: the first requests pay for lazy imports and pool connections.
    log(`${kind}: warm-up …`);
    await load({
      socket,
      path: '/v1/requires-code',
      duration: 2,
      body: (i) => ({ email: secrets[i % secrets.length].email }),
      check: () => null,
    });
    // Each account is used once (a code is accepted once); its code is computed when its request is sent, so
    // that a slow phase cannot outlive the codes' 30-second steps.
    const verifyCheck = (status, text) =>
      status === 200 && text.includes('"outcome":"accepted"')
        ? null
        : `${status} ${/"(?:outcome|code)":"[a-z_]+"/.exec(text)?.[0] ?? text.slice(0, 60)}${/"reason":"[a-z_]+"/.exec(text)?.[0] ?? ''}`;
    const verifyBody = (list) => (i) => {
      const { email, secret } = list[i];
      return { email, code: totpCode(secret, Date.now()), ip: '192.0.2.10', userAgent: 'autocannon' };
    };
    const pool = secrets.slice(CLI_RUNS + 1);
    const one = pool.slice(0, 200);
    const atRate = pool.slice(one.length, one.length + RATE * 4);
    const flat = pool.slice(one.length + atRate.length);
    log(`${kind}: verify × ${one.length}, one client at a time …`);
    const single = await withCpu(child.pid, () =>
      sequential({ socket, path: '/v1/verify', amount: one.length, body: verifyBody(one), check: verifyCheck }),
    );
    log(`${kind}: verify at ${RATE}/s × ${atRate.length}, at most ${CONNECTIONS} connections …`);
    const verify = await withCpu(child.pid, () =>
      openLoop({
        socket,
        path: '/v1/verify',
        amount: atRate.length,
        rate: RATE,
        body: verifyBody(atRate),
        check: verifyCheck,
      }),
    );
    // Flat out over the accounts set aside for it: each account's code is accepted once, so the run is as long as
    // there are accounts (a time-bound run on a fast machine would run out of them and measure 404s).
    log(`${kind}: verify flat out, ${flat.length} verifies, ${CONNECTIONS} connections …`);
    const saturated = await withCpu(child.pid, () =>
      load({ socket, path: '/v1/verify', amount: flat.length, body: verifyBody(flat), check: verifyCheck }),
    );
    log(`${kind}: requires-code at ${RATE}/s, 4 s, then flat out, 5 s …`);
    const requiresBody = (i) => ({ email: secrets[(i * 7919) % secrets.length].email });
    const requiresCheck = (status, text) =>
      status === 200 && text.includes('"requiresCode":true') ? null : `${status} ${text.slice(0, 120)}`;
    const requires = await withCpu(child.pid, () =>
      openLoop({
        socket,
        path: '/v1/requires-code',
        amount: RATE * 4,
        rate: RATE,
        body: requiresBody,
        check: requiresCheck,
      }),
    );
    const requiresFlat = await withCpu(child.pid, () =>
      load({ socket, path: '/v1/requires-code', duration: 5, body: requiresBody, check: requiresCheck }),
    );
    log(`${kind}: baseline, mail2fa verify spawned ${CLI_RUNS} times …`);
    const cli = await cliBaseline(dbUrl, env, secrets);
    return { kind, single, verify, saturated, requires, requiresFlat, cli };
  } finally {
    await stopServe(child);
  }
}

const fmtMs = (v) => (v >= 100 ? `${Math.round(v)} ms` : `${v.toFixed(v >= 10 ? 1 : 2)} ms`);

function rowsFor(r) {
  const v = r.verify.result;
  const one = r.single.result;
  const f = r.saturated.result;
  const q = r.requires.result;
  const qf = r.requiresFlat.result;
  const name = r.kind === 'sqlite' ? 'SQLite' : 'MariaDB';
  const rate = (res) => Math.round(res.requests.total / res.duration);
  const bad = (p) => [...p.problems.values()].reduce((a, b) => a + b, 0);
  const cpu = (p) => (Number.isFinite(p.cpuMsPerRequest) ? `${p.cpuMsPerRequest.toFixed(2)} ms` : '?');
  const answers = (p, good) => (bad(p) === 0 ? good : `${bad(p)} WRONG`);
  const all = [r.single, r.verify, r.saturated, r.requires, r.requiresFlat];
  return {
    verdict:
      v.latency.p50 <= 5 &&
      v.latency.p99 <= 25 &&
      rate(f) >= 500 &&
      q.latency.p50 <= 2 &&
      all.every((p) => bad(p) === 0),
    lines: [
      `| ${name} | verify (correct TOTP), one client at a time | ${one.requests.total} | ${fmtMs(one.latency.p50)} | ${fmtMs(one.latency.p99)} | ${rate(one)}/s | ${cpu(r.single)} | ${answers(r.single, 'all accepted')} | |`,
      `| ${name} | verify (correct TOTP), offered ${RATE}/s | ${v.requests.total} | ${fmtMs(v.latency.p50)} | ${fmtMs(v.latency.p99)} | ${rate(v)}/s | ${cpu(r.verify)} | ${answers(r.verify, 'all accepted')} | p50 ≤ 5 ms, p99 ≤ 25 ms |`,
      `| ${name} | verify (correct TOTP), flat out | ${f.requests.total} | ${fmtMs(f.latency.p50)} | ${fmtMs(f.latency.p99)} | ${rate(f)}/s | ${cpu(r.saturated)} | ${answers(r.saturated, 'all accepted')} | ≥ 500/s |`,
      `| ${name} | requires-code, offered ${RATE}/s | ${q.requests.total} | ${fmtMs(q.latency.p50)} | ${fmtMs(q.latency.p99)} | ${rate(q)}/s | ${cpu(r.requires)} | ${answers(r.requires, 'all correct')} | p50 ≤ 2 ms |`,
      `| ${name} | requires-code, flat out | ${qf.requests.total} | ${fmtMs(qf.latency.p50)} | ${fmtMs(qf.latency.p99)} | ${rate(qf)}/s | ${cpu(r.requiresFlat)} | ${answers(r.requiresFlat, 'all correct')} | |`,
      `| ${name} | \`mail2fa verify\` spawned per sign-in (baseline) | ${r.cli.times.length} | ${fmtMs(r.cli.median)} | | | | ${(r.cli.median / one.latency.p50).toFixed(0)}× the one-client serve p50 | |`,
    ],
    problems: all.flatMap((p) => [...p.problems]).map(([p, n]) => `${name}: ${n}× ${p}`),
  };
}

const kinds = opt.db === 'both' ? ['mariadb', 'sqlite'] : [opt.db];
const loadStart = loadAverage();
const t0 = Date.now();
const results = [];
try {
  for (const kind of kinds) results.push(await measure(kind));
} finally {
  rmSync(WORK, { recursive: true, force: true });
}
const u = new URL(opt['mariadb-url']);
const m = machine({
  mariadbArgs: kinds.includes('mariadb')
    ? ['-h', u.hostname, '-P', u.port || '3306', '-u', decodeURIComponent(u.username || 'root')]
    : null,
  sqlite3: false,
});
const rendered = results.map(rowsFor);
const text = [
  `Run of \`npm run bench:serve\` on ${m.date}: ${ACCOUNTS.toLocaleString('en')} mailboxes with app 2FA per database, ${CONNECTIONS} concurrent clients (autocannon ${JSON.parse(readFileSync(join(ROOT, 'node_modules', 'autocannon', 'package.json'), 'utf8')).version}, flat out; a paced open-loop client for latency; both in the bench process on the same machine) over the Unix socket; one verify per account (each code is accepted once), its TOTP computed as the request is sent. Latency is measured open-loop at an offered rate of ${RATE} requests/s spread evenly over time (at most ${CONNECTIONS} connections; each latency counts from when its request was due), throughput flat out (each connection sends its next request as soon as the answer arrives, so latency there is mostly queueing: 50 in flight ÷ throughput); whole run ${((Date.now() - t0) / 1000).toFixed(1)} s.`,
  '',
  `Machine: ${m.cores} cores (${m.cpuModel}), ${m.memoryGb} GiB memory, ${m.os}; Node ${m.node}; MariaDB ${m.mariadb}. Load average (1 min) ${loadStart} at the start, ${loadAverage()} at the end: the service, the load generator and the database share the 2 cores${loadStart > 1.5 ? ', and other work was running on the machine' : ''}.`,
  '',
  '| database | measurement | requests | p50 | p99 | throughput | service CPU / request | answers | target |',
  '|---|---|---:|---:|---:|---:|---:|---|---|',
  ...rendered.flatMap((r) => r.lines),
  '',
  `Capacity from the service's CPU per request (flat out), if it had one core to itself: ${results.map((r) => `${r.kind === 'sqlite' ? 'SQLite' : 'MariaDB'} verify ≈ ${Math.round(1000 / r.saturated.cpuMsPerRequest)}/s, requires-code ≈ ${Math.round(1000 / r.requiresFlat.cpuMsPerRequest)}/s`).join('; ')} (the database server's own CPU not included).`,
  '',
  `Verdict: ${rendered.every((r) => r.verdict) ? 'every target met' : 'targets MISSED (see the table)'}.${rendered.some((r) => r.problems.length) ? ` Unexpected answers: ${rendered.flatMap((r) => r.problems).join('; ')}.` : ''}`,
].join('\n');
process.stdout.write(`${text}\n`);
if (!opt['no-write']) {
  const doc = readFileSync(DOC, 'utf8');
  const block = `${START}\n${text}\n${END}`;
  writeFileSync(
    DOC,
    doc.includes(START)
      ? doc.replace(new RegExp(`${START.replace(/[()]/g, '\\$&')}[\\s\\S]*?${END}`), block)
      : `${doc.trimEnd()}\n\n## \`mail2fa serve\`\n\n${block}\n`,
  );
  log(`written to ${DOC}`);
}
if (!rendered.every((r) => r.verdict)) process.exitCode = 1;
