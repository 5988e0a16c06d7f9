/**
 * A real 3-node MariaDB Galera cluster for the Galera suite, from Debian's `mariadb-server` and `galera-4`, all
 * on loopback ports of its own (never 3306): SQL 3311–3313, group communication 4571–4573, IST 4581–4583,
 * rsync SST 4591–4593 (MAIL2FA_GALERA_PORT_OFFSET shifts them all).
 *
 * Each node runs `mariadbd --defaults-file=<its own file>` (first argument; never --no-defaults, which would make
 * it ignore the file and fall back to the system datadir and port 3306) as the `mysql` user with its datadir
 * owned by it (rsync SST runs with the server's privileges). Node 1 bootstraps with --wsrep-new-cluster, the
 * others join by SST. Everything lives in one temp dir; teardown kills the nodes by PID.
 *
 * Without the packages (or without root) the suite is skipped with a notice, unless MAIL2FA_REQUIRE_GALERA=1.
 */
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import {
  chmodSync,
  chownSync,
  existsSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import type { Connection } from 'mysql2/promise';

export const GALERA_PROVIDER = '/usr/lib/galera/libgalera_smm.so';
const MARIADBD = '/usr/sbin/mariadbd';
const REQUIRE = process.env.MAIL2FA_REQUIRE_GALERA === '1';
const OFFSET = Number(process.env.MAIL2FA_GALERA_PORT_OFFSET ?? 0);

/** Why the cluster cannot run here, or null. */
export function galeraProblem(): string | null {
  if (!existsSync(GALERA_PROVIDER)) return `${GALERA_PROVIDER} missing (Debian package galera-4)`;
  if (!existsSync(MARIADBD)) return `${MARIADBD} missing (Debian package mariadb-server)`;
  if (spawnSync('which', ['rsync']).status !== 0) return 'rsync missing (Debian package rsync, for the state transfer)';
  if (typeof process.getuid === 'function' && process.getuid() !== 0)
    return 'not root (the nodes run as the mysql user)';
  if (spawnSync('id', ['mysql']).status !== 0) return 'no mysql user';
  return null;
}

const problem = galeraProblem();
export const galeraSkipped = problem !== null && !REQUIRE;
if (problem) {
  process.stderr.write(
    REQUIRE
      ? `\n*** Galera required (MAIL2FA_REQUIRE_GALERA=1) but unavailable: ${problem} ***\n\n`
      : `\n*** NOTICE: Galera suite SKIPPED: ${problem}. Set MAIL2FA_REQUIRE_GALERA=1 to make this a failure. ***\n\n`,
  );
}

export interface GaleraNode {
  index: number;
  name: string;
  port: number;
  dir: string;
  process: ChildProcess | null;
  /** mysql://root@127.0.0.1:PORT/DB */
  url(database: string): string;
}

export interface GaleraCluster {
  nodes: GaleraNode[];
  dir: string;
  /** A fresh database (created on node 1, replicated); returns its name. */
  createDatabase(): Promise<string>;
  /** A root connection to a node (optionally to a database). */
  connect(node: GaleraNode, database?: string): Promise<Connection>;
  /** Waits until every running node reports the given cluster size, Synced. */
  waitForSize(size: number, timeoutMs?: number): Promise<void>;
  /** SIGKILL a node (by PID) and wait for it to die. */
  kill(node: GaleraNode): Promise<void>;
  /** Starts a stopped node again (it rejoins by IST/SST). */
  restart(node: GaleraNode): Promise<void>;
  stop(): Promise<void>;
}

function nodeConfig(base: string, i: number): string {
  const gm = (n: number) => 4570 + n + OFFSET;
  const dir = join(base, `node${i}`);
  return [
    '[mariadbd]',
    'user=mysql',
    `datadir=${dir}/data`,
    `socket=${dir}/mysqld.sock`,
    `pid-file=${dir}/mysqld.pid`,
    `log-error=${dir}/error.log`,
    `port=${3310 + i + OFFSET}`,
    'bind-address=127.0.0.1',
    'skip-name-resolve',
    'skip-log-bin',
    'innodb_buffer_pool_size=32M',
    'innodb_log_file_size=16M',
    'innodb_flush_log_at_trx_commit=0',
    'innodb_autoinc_lock_mode=2',
    'innodb_lock_wait_timeout=20',
    'binlog_format=ROW',
    'default_storage_engine=InnoDB',
    'performance_schema=OFF',
    'max_connections=200',
    'wsrep_on=ON',
    `wsrep_provider=${GALERA_PROVIDER}`,
    'wsrep_cluster_name=mail2fa_test',
    `wsrep_cluster_address=gcomm://127.0.0.1:${gm(1)},127.0.0.1:${gm(2)},127.0.0.1:${gm(3)}`,
    `wsrep_node_name=node${i}`,
    'wsrep_node_address=127.0.0.1',
    `wsrep_provider_options="gmcast.listen_addr=tcp://127.0.0.1:${gm(i)};ist.recv_addr=127.0.0.1:${4580 + i + OFFSET};gcache.size=32M;evs.suspect_timeout=PT3S;evs.inactive_timeout=PT5S;evs.install_timeout=PT5S"`,
    'wsrep_sst_method=rsync',
    `wsrep_sst_receive_address=127.0.0.1:${4590 + i + OFFSET}`,
    'wsrep_slave_threads=2',
    '',
  ].join('\n');
}

function mysqlUid(): { uid: number; gid: number } {
  const uid = Number(spawnSync('id', ['-u', 'mysql'], { encoding: 'utf8' }).stdout.trim());
  const gid = Number(spawnSync('id', ['-g', 'mysql'], { encoding: 'utf8' }).stdout.trim());
  return { uid, gid };
}

async function sleep(ms: number): Promise<void> {
  await new Promise((r) => setTimeout(r, ms));
}

/**
 * A run that was killed (not torn down) leaves its nodes running on our ports: stop those — only processes whose
 * command line names a defaults file inside a mail2fa-galera-* temp dir, found by the PID files they wrote.
 */
function reapStaleClusters(): void {
  for (const name of readdirSync(tmpdir())) {
    if (!name.startsWith('mail2fa-galera-')) continue;
    const base = join(tmpdir(), name);
    for (const i of [1, 2, 3]) {
      const pidFile = join(base, `node${i}`, 'mysqld.pid');
      try {
        const pid = Number(readFileSync(pidFile, 'utf8').trim());
        const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8');
        if (cmdline.includes(`--defaults-file=${join(base, `node${i}`, 'my.cnf')}`)) {
          process.kill(pid, 'SIGKILL');
          for (let w = 0; w < 100 && existsSync(`/proc/${pid}`); w++) spawnSync('sleep', ['0.05']);
        }
      } catch {
        /* no PID file, or the process is gone */
      }
    }
    rmSync(base, { recursive: true, force: true });
  }
}

export async function startGaleraCluster(): Promise<GaleraCluster> {
  if (problem) throw new Error(`Galera cluster unavailable: ${problem}`);
  reapStaleClusters();
  const mysql = await import('mysql2/promise');
  const base = mkdtempSync(join(tmpdir(), 'mail2fa-galera-'));
  chmodSync(base, 0o755); // the mysql user must reach its node directories
  const { uid, gid } = mysqlUid();
  const nodes: GaleraNode[] = [1, 2, 3].map((i) => {
    const dir = join(base, `node${i}`);
    mkdirSync(join(dir, 'data'), { recursive: true });
    writeFileSync(join(dir, 'my.cnf'), nodeConfig(base, i));
    chownSync(dir, uid, gid);
    chownSync(join(dir, 'data'), uid, gid);
    const port = 3310 + i + OFFSET;
    return {
      index: i,
      name: `node${i}`,
      port,
      dir,
      process: null,
      url: (db: string) => `mysql://root@127.0.0.1:${port}/${db}`,
    };
  });

  // Node 1's datadir from mariadb-install-db; the others receive theirs by state transfer (rsync SST).
  const install = spawnSync(
    'mariadb-install-db',
    [
      '--no-defaults',
      '--user=mysql',
      `--datadir=${join(nodes[0]!.dir, 'data')}`,
      '--auth-root-authentication-method=normal',
      '--skip-test-db',
      '--innodb-log-file-size=16M',
    ],
    { encoding: 'utf8' },
  );
  if (install.status !== 0) throw new Error(`mariadb-install-db failed: ${install.stderr || install.stdout}`);

  const errorLog = (node: GaleraNode) => {
    try {
      return readFileSync(join(node.dir, 'error.log'), 'utf8').split('\n').slice(-25).join('\n');
    } catch {
      return '(no error log)';
    }
  };

  const launch = (node: GaleraNode, bootstrap: boolean) => {
    const args = [`--defaults-file=${join(node.dir, 'my.cnf')}`];
    if (bootstrap) args.push('--wsrep-new-cluster');
    const child = spawn(MARIADBD, args, { stdio: 'ignore' });
    node.process = child;
    child.on('exit', () => {
      if (node.process === child) node.process = null;
    });
  };

  const connect = async (node: GaleraNode, database?: string): Promise<Connection> =>
    mysql.createConnection({
      host: '127.0.0.1',
      port: node.port,
      user: 'root',
      connectTimeout: 3000,
      multipleStatements: true,
      ...(database ? { database } : {}),
    });

  const status = async (node: GaleraNode): Promise<Record<string, string>> => {
    const c = await connect(node);
    try {
      const [rows] = await c.query(
        "SHOW GLOBAL STATUS WHERE Variable_name IN ('wsrep_cluster_size','wsrep_local_state_comment','wsrep_ready','wsrep_cluster_status')",
      );
      return Object.fromEntries(
        (rows as { Variable_name: string; Value: string }[]).map((r) => [r.Variable_name, r.Value]),
      );
    } finally {
      await c.end();
    }
  };

  const waitReady = async (node: GaleraNode, timeoutMs: number) => {
    const deadline = Date.now() + timeoutMs;
    for (;;) {
      if (!node.process) throw new Error(`${node.name} exited during start-up:\n${errorLog(node)}`);
      try {
        const s = await status(node);
        if (s.wsrep_ready === 'ON' && s.wsrep_local_state_comment === 'Synced') return;
      } catch {
        /* not accepting connections yet */
      }
      if (Date.now() > deadline) throw new Error(`${node.name} not ready after ${timeoutMs} ms:\n${errorLog(node)}`);
      await sleep(250);
    }
  };

  const cluster: GaleraCluster = {
    nodes,
    dir: base,
    async createDatabase() {
      const name = `mail2fa_g_${randomBytes(4).toString('hex')}`;
      const c = await connect(nodes.find((n) => n.process)!);
      await c.query(`CREATE DATABASE \`${name}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_general_ci`);
      await c.end();
      return name;
    },
    connect,
    async waitForSize(size, timeoutMs = 60_000) {
      const deadline = Date.now() + timeoutMs;
      for (;;) {
        const running = nodes.filter((n) => n.process);
        let ok = running.length === size;
        for (const n of running) {
          if (!ok) break;
          try {
            const s = await status(n);
            ok =
              s.wsrep_cluster_size === String(size) &&
              s.wsrep_local_state_comment === 'Synced' &&
              s.wsrep_ready === 'ON';
          } catch {
            ok = false;
          }
        }
        if (ok) return;
        if (Date.now() > deadline)
          throw new Error(
            `cluster did not reach size ${size}:\n${running.map((n) => `${n.name}:\n${errorLog(n)}`).join('\n')}`,
          );
        await sleep(300);
      }
    },
    async kill(node) {
      const child = node.process;
      if (!child) return;
      const exited = new Promise<void>((r) => child.once('exit', () => r()));
      child.kill('SIGKILL');
      await exited;
    },
    async restart(node) {
      launch(node, false);
      await waitReady(node, 60_000);
    },
    async stop() {
      await Promise.all(
        nodes.map(async (n) => {
          const child = n.process;
          if (!child) return;
          const exited = new Promise<void>((r) => child.once('exit', () => r()));
          child.kill('SIGTERM');
          const timer = setTimeout(() => child.kill('SIGKILL'), 15_000);
          await exited;
          clearTimeout(timer);
        }),
      );
      rmSync(base, { recursive: true, force: true });
    },
  };

  try {
    launch(nodes[0]!, true);
    await waitReady(nodes[0]!, 30_000);
    // TCP root login for the tests (install-db's root is bound to localhost); replicated to the joiners by SST.
    const c = await mysql.createConnection({ socketPath: join(nodes[0]!.dir, 'mysqld.sock'), user: 'root' });
    await c.query("CREATE USER IF NOT EXISTS 'root'@'127.0.0.1'");
    await c.query("GRANT ALL ON *.* TO 'root'@'127.0.0.1' WITH GRANT OPTION");
    await c.end();
    // Joiners one at a time: two simultaneous SSTs from one donor just queue.
    for (const node of nodes.slice(1)) {
      launch(node, false);
      await waitReady(node, 60_000);
    }
    await cluster.waitForSize(3);
  } catch (err) {
    await cluster.stop().catch(() => {});
    throw err;
  }
  return cluster;
}
