/**
 * A real webmail on loopback for the Roundcube plugin's journeys: Debian's Roundcube copied
 * into a scratch directory and served by PHP's built-in server with this repository's plugin, Dovecot as its
 * IMAP server (passwords from mail2fa's mailbox table), `mail2fa serve` on a Unix socket over a scratch SQLite
 * database, and Debian's Chromium driven by playwright-core. `stop()` tears every part down.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { chmodSync, cpSync, existsSync, mkdirSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { request } from 'node:http';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Database from 'better-sqlite3';
import { chromium, type Browser } from 'playwright-core';
import type { Context } from '../../../src/context.js';
import { BIN, runCli, type CliResult } from '../../helpers/cli.js';
import { createTestDb, type TestDb } from '../../helpers/db.js';
import { testContext, testEnv } from '../../helpers/context.js';
import { closedPort } from '../../helpers/enrolment.js';

export const REPO = fileURLToPath(new URL('../../../', import.meta.url));
export { phpString };
export const PLUGIN_DIR = join(REPO, 'integrations/roundcube/mail2fa');
const ROUNDCUBE_TREE = '/var/lib/roundcube';
const CHROMIUM = process.env.MAIL2FA_CHROMIUM ?? '/usr/bin/chromium';

const REQUIRE_WEBMAIL = process.env.MAIL2FA_REQUIRE_ROUNDCUBE === '1';

function probe(): string | null {
  for (const [f, pkg] of [
    [join(ROUNDCUBE_TREE, 'public_html/index.php'), 'roundcube-core'],
    ['/usr/share/roundcube/SQL/sqlite.initial.sql', 'roundcube-core'],
    ['/usr/sbin/dovecot', 'dovecot-imapd'],
    [CHROMIUM, 'chromium'],
  ] as const) {
    if (!existsSync(f)) return `${f} missing (Debian package ${pkg})`;
  }
  const php = spawnSync('php', ['-r', 'echo extension_loaded("pdo_sqlite") ? "ok" : "no";'], { encoding: 'utf8' });
  if (php.error) return `php not found (Debian package php-cli): ${php.error.message}`;
  if (php.stdout !== 'ok') return 'php lacks pdo_sqlite (Debian package php-sqlite3)';
  return null;
}

/** Why the webmail stack cannot run here (null: it can). */
export const WEBMAIL_PROBLEM = probe();
if (WEBMAIL_PROBLEM && !REQUIRE_WEBMAIL) {
  process.stderr.write(
    `\n*** NOTICE: the webmail stack is unavailable (${WEBMAIL_PROBLEM}): the Roundcube plugin journeys are SKIPPED. Set MAIL2FA_REQUIRE_ROUNDCUBE=1 to make this a failure. ***\n\n`,
  );
}
/** Skip the journeys (with the notice above) unless the stack is here or required. */
export const SKIP_WEBMAIL = WEBMAIL_PROBLEM !== null && !REQUIRE_WEBMAIL;

/** Where the journeys' screenshots go (kept after the run; CI can publish the folder). */
export const ARTIFACTS = process.env.MAIL2FA_E2E_ARTIFACTS ?? join(REPO, 'test-artifacts/roundcube');

export interface StackOptions {
  /** Extra `$config[...]` settings for the plugin (PHP literals by key). */
  pluginConfig?: Record<string, string>;
  /** Roundcube's UI language (default en_US). */
  language?: string;
  /** Start `mail2fa serve` with the stack (default true). */
  serve?: boolean;
}

export interface Stack {
  url: string;
  db: TestDb;
  /** The environment to run `mail2fa` commands against the same database as serve. */
  env: Record<string, string>;
  /** mail2fa's SMS outbox file (the embedded default transport). */
  outbox: string;
  socket: string;
  roundcubeDir: string;
  browser: Browser;
  /** An in-process context on the same database, for seeding accounts (close is handled by stop()). */
  ctx: Context;
  /** Writes Dovecot's passwd-file from mail2fa's mailbox table (call after adding mailboxes). */
  syncPasswords(): void;
  /** Runs the built `mail2fa` CLI against the same database (an agent at the terminal). */
  cli(args: string[], o?: { input?: string; env?: Record<string, string> }): Promise<CliResult>;
  /** Stops serve (to test fail-closed) and starts it again, optionally with more environment (e.g. MAIL2FA_CONFIG). */
  stopServe(): Promise<void>;
  startServe(extraEnv?: Record<string, string>): Promise<void>;
  /** A second serve on loopback TCP with a bearer token file; stopped by the returned function (and by stop()). */
  startTcpServe(tokenFile: string): Promise<{ url: string; stop: () => Promise<void> }>;
  /** Changes the plugin's settings in Roundcube's config (PHP literals by key; null removes a key). */
  setPluginConfig(settings: Record<string, string | null>): void;
  /** Roundcube's and PHP's logs, for failure messages. */
  logs(): string;
  stop(): Promise<void>;
}

async function waitFor(what: string, probe: () => Promise<boolean>, timeoutMs = 20_000): Promise<void> {
  const end = Date.now() + timeoutMs;
  while (Date.now() < end) {
    if (await probe().catch(() => false)) return;
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error(`${what} did not come up within ${timeoutMs} ms`);
}

const tcpOpen = (port: number) =>
  new Promise<boolean>((resolve) => {
    const s = connect(port, '127.0.0.1');
    s.once('connect', () => (s.destroy(), resolve(true)));
    s.once('error', () => resolve(false));
  });

const httpOk = (opts: { port?: number; socketPath?: string; path: string }) =>
  new Promise<boolean>((resolve) => {
    const req = request({ host: '127.0.0.1', ...opts, method: 'GET', timeout: 2000 }, (res) => {
      res.resume();
      resolve(res.statusCode === 200);
    });
    req.once('error', () => resolve(false));
    req.end();
  });

interface Proc {
  child: ChildProcess;
  output: () => string;
  stopped?: boolean;
}

function startProcess(cmd: string, args: string[], o: { cwd?: string; env?: Record<string, string> } = {}): Proc {
  // Its own process group: PHP's server forks workers, and stopping must reach them too.
  const child = spawn(cmd, args, {
    cwd: o.cwd,
    env: { ...process.env, ...o.env } as NodeJS.ProcessEnv,
    stdio: ['ignore', 'pipe', 'pipe'],
    detached: true,
  });
  let out = '';
  const keep = (d: Buffer) => {
    // PHP's built-in server logs every connection; keep the requests and errors.
    out += d.toString('utf8').replace(/^.*\] 127\.0\.0\.1:\d+ (Accepted|Closing)\n/gm, '');
    if (out.length > 200_000) out = out.slice(-100_000);
  };
  child.stdout!.on('data', keep);
  child.stderr!.on('data', keep);
  return { child, output: () => out };
}

/** Stops the process and its process group (forked workers included). */
async function stopProcess(p: Proc | undefined): Promise<void> {
  if (!p || p.stopped) return;
  p.stopped = true;
  const group = (signal: NodeJS.Signals) => {
    try {
      process.kill(-p.child.pid!, signal);
    } catch {
      // the group is gone already
    }
  };
  const running = p.child.exitCode === null && p.child.signalCode === null;
  const exited = running ? new Promise<void>((done) => p.child.once('exit', () => done())) : Promise.resolve();
  group('SIGTERM');
  const timer = setTimeout(() => group('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
  // Workers that outlive their parent (PHP_CLI_SERVER_WORKERS) get the last word.
  group('SIGKILL');
}

const phpString = (s: string) => `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;

/** Dovecot with its own config: loopback only, own base_dir, passwd-file passdb, no TLS. */
function dovecotConfig(dir: string, port: number): string {
  const root = process.getuid?.() === 0;
  const me = root ? null : (process.env.USER ?? 'nobody');
  const uid = root ? 65534 : process.getuid!();
  const gid = root ? 65534 : process.getgid!();
  return `# generated by the Roundcube journeys' test stack
base_dir = ${dir}/run
instance_name = mail2fa-e2e-${port}
listen = 127.0.0.1
protocols = imap
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
log_path = ${dir}/dovecot.log
mail_location = maildir:${dir}/mail/%u
first_valid_uid = 1
${me ? `default_internal_user = ${me}\ndefault_login_user = ${me}\n` : ''}passdb {
  driver = passwd-file
  args = username_format=%u ${dir}/passwd
}
userdb {
  driver = static
  args = uid=${uid} gid=${gid} home=${dir}/mail/%u
}
service imap-login {
  inet_listener imap {
    address = 127.0.0.1
    port = ${port}
  }
  inet_listener imaps {
    port = 0
  }
}
service anvil {
  chroot =
}
`;
}

function writeRoundcubeConfig(dir: string, imapPort: number, plugin: Record<string, string>, o: StackOptions): void {
  const lines = [
    '<?php',
    "// generated by the Roundcube journeys' test stack",
    '$config = [];',
    `$config['db_dsnw'] = ${phpString(`sqlite:///${join(dir, 'roundcube.db')}?mode=0646`)};`,
    `$config['imap_host'] = ${phpString(`127.0.0.1:${imapPort}`)};`,
    "$config['smtp_host'] = '';",
    "$config['des_key'] = 'e2e-des-key-0123456789abcd';",
    "$config['plugins'] = ['mail2fa'];",
    "$config['skin'] = 'elastic';",
    `$config['log_dir'] = ${phpString(join(dir, 'logs') + '/')};`,
    `$config['temp_dir'] = ${phpString(join(dir, 'temp') + '/')};`,
    "$config['enable_spellcheck'] = false;",
    // No fixed language: Roundcube follows the browser's Accept-Language (a journey runs in Danish).
    ...(o.language ? [`$config['language'] = ${phpString(o.language)};`] : []),
    "$config['product_name'] = 'Webmail';",
    ...Object.entries(plugin).map(([k, v]) => `$config[${phpString(k)}] = ${v};`),
    '',
  ];
  writeFileSync(join(dir, 'config/config.inc.php'), lines.join('\n'));
}

/** Debian's Roundcube tree (symlinks) copied, with its own config, SQLite database, logs and temp. */
function roundcubeTree(dir: string, imapPort: number, plugin: Record<string, string>, o: StackOptions): void {
  cpSync(ROUNDCUBE_TREE, dir, { recursive: true, verbatimSymlinks: true });
  for (const sub of ['config', 'logs', 'temp']) {
    rmSync(join(dir, sub), { recursive: true, force: true });
    mkdirSync(join(dir, sub));
  }
  symlinkSync('/etc/roundcube/defaults.inc.php', join(dir, 'config/defaults.inc.php'));
  symlinkSync('/etc/roundcube/mimetypes.php', join(dir, 'config/mimetypes.php'));
  symlinkSync(PLUGIN_DIR, join(dir, 'plugins/mail2fa'));
  const db = new Database(join(dir, 'roundcube.db'));
  db.exec(readFileSync('/usr/share/roundcube/SQL/sqlite.initial.sql', 'utf8'));
  db.close();
  writeRoundcubeConfig(dir, imapPort, plugin, o);
}

export async function startStack(o: StackOptions = {}): Promise<Stack> {
  if (WEBMAIL_PROBLEM)
    throw new Error(`the webmail stack is required (MAIL2FA_REQUIRE_ROUNDCUBE=1) but unavailable: ${WEBMAIL_PROBLEM}`);
  const db = await createTestDb('sqlite');
  chmodSync(db.dir, 0o755);
  const env = testEnv(db, { MAIL2FA_CONFIG: '' });
  const ctx = await testContext(db);
  const socket = join(db.dir, 'serve.sock');
  const outbox = join(db.dir, 'home', 'sms-outbox.ndjson');
  const dovecotDir = join(db.dir, 'dovecot');
  mkdirSync(join(dovecotDir, 'mail'), { recursive: true });
  chmodSync(join(dovecotDir, 'mail'), 0o777);
  const roundcubeDir = join(db.dir, 'roundcube');
  const [imapPort, httpPort] = [await closedPort(), await closedPort()];
  const procs: { dovecot?: Proc; serve?: Proc; php?: Proc; tcp: Proc[] } = { tcp: [] };
  const plugin: Record<string, string> = {
    mail2fa_serve: phpString(`unix://${socket}`),
    mail2fa_support_contact: phpString('mailto:support@example.com'),
    mail2fa_revocation_check_interval: '0',
    ...o.pluginConfig,
  };
  let browser: Browser | undefined;
  mkdirSync(ARTIFACTS, { recursive: true });

  const syncPasswords = () => {
    const sqlite = new Database(db.url.slice('sqlite:'.length), { readonly: true });
    const rows = sqlite.prepare('SELECT email, password FROM mailbox WHERE active = 1').all() as {
      email: string;
      password: string;
    }[];
    sqlite.close();
    writeFileSync(join(dovecotDir, 'passwd'), rows.map((r) => `${r.email}:${r.password}\n`).join(''));
    // Dovecot's passwd-file driver stats the file at most once per second (passwd_file_sync returns its cached
    // copy while last_sync_time == ioloop_time): a lookup earlier in this same second, by a previous journey's
    // IMAP session, would hide the new line until the next second. Wait until that second has passed.
    const nextSecond = Math.ceil(Date.now() / 1000) * 1000 + 20;
    Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, Math.max(0, nextSecond - Date.now()));
  };

  const startServe = async (extraEnv: Record<string, string> = {}) => {
    procs.serve = startProcess(
      process.execPath,
      [BIN, 'serve', '--socket', socket, '--socket-mode', '666', '--client-name', 'roundcube'],
      { env: { ...env, ...extraEnv } },
    );
    await waitFor('mail2fa serve', () => httpOk({ socketPath: socket, path: '/healthz' })).catch((e: Error) => {
      throw new Error(`${e.message}\n${procs.serve?.output()}`);
    });
  };

  const stack: Stack = {
    url: `http://127.0.0.1:${httpPort}`,
    db,
    env,
    outbox,
    socket,
    roundcubeDir,
    get browser() {
      return browser!;
    },
    ctx,
    syncPasswords,
    // A busy machine can take long to start the CLI: a generous limit, so that a slow start is not a failure.
    cli: (args, c = {}) => runCli(args, { env: { ...env, ...c.env }, input: c.input, timeoutMs: 60_000 }),
    stopServe: async () => stopProcess(procs.serve),
    startServe,
    startTcpServe: async (tokenFile) => {
      const port = await closedPort();
      const p = startProcess(
        process.execPath,
        [BIN, 'serve', '--listen', `127.0.0.1:${port}`, '--token-file', tokenFile, '--client-name', 'roundcube'],
        { env },
      );
      procs.tcp.push(p);
      await waitFor('mail2fa serve (TCP)', () => httpOk({ port, path: '/healthz' })).catch((e: Error) => {
        throw new Error(`${e.message}\n${p.output()}`);
      });
      return { url: `http://127.0.0.1:${port}`, stop: () => stopProcess(p) };
    },
    setPluginConfig: (settings) => {
      for (const [k, v] of Object.entries(settings)) {
        if (v === null) delete plugin[k];
        else plugin[k] = v;
      }
      writeRoundcubeConfig(roundcubeDir, imapPort, plugin, o);
    },
    logs: () =>
      [
        `--- php -S\n${procs.php?.output().slice(-4000) ?? ''}`,
        ...(existsSync(join(roundcubeDir, 'logs/errors.log'))
          ? [`--- roundcube errors.log\n${readFileSync(join(roundcubeDir, 'logs/errors.log'), 'utf8').slice(-4000)}`]
          : []),
        `--- serve\n${procs.serve?.output().slice(-3000) ?? ''}`,
      ].join('\n'),
    stop: async () => {
      await browser?.close().catch(() => {});
      await Promise.all([
        stopProcess(procs.php),
        stopProcess(procs.serve),
        stopProcess(procs.dovecot),
        ...procs.tcp.map(stopProcess),
      ]);
      await ctx.close();
      await db.drop();
    },
  };

  try {
    syncPasswords();
    writeFileSync(join(dovecotDir, 'dovecot.conf'), dovecotConfig(dovecotDir, imapPort));
    procs.dovecot = startProcess('/usr/sbin/dovecot', ['-c', join(dovecotDir, 'dovecot.conf'), '-F']);
    roundcubeTree(roundcubeDir, imapPort, plugin, o);
    procs.php = startProcess(
      'php',
      [
        '-d',
        'opcache.enable=0',
        '-d',
        'opcache.enable_cli=0',
        '-d',
        'display_errors=stderr',
        '-S',
        `127.0.0.1:${httpPort}`,
      ],
      {
        cwd: join(roundcubeDir, 'public_html'),
        env: { PHP_CLI_SERVER_WORKERS: '2' },
      },
    );
    const [, , , b] = await Promise.all([
      o.serve === false ? Promise.resolve() : startServe(),
      waitFor('dovecot', () => tcpOpen(imapPort)),
      waitFor('php -S', () => httpOk({ port: httpPort, path: '/' })),
      chromium.launch({
        executablePath: CHROMIUM,
        args: [
          '--headless',
          '--no-sandbox',
          '--disable-gpu',
          '--disable-background-networking',
          '--disable-component-update',
          '--disable-sync',
        ],
      }),
    ]);
    browser = b;
    return stack;
  } catch (err) {
    const logs = stack.logs();
    await stack.stop().catch(() => {});
    throw new Error(`${(err as Error).message}\n${logs}`, { cause: err });
  }
}
