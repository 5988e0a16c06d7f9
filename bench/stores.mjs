#!/usr/bin/env node
/**
 * `npm run bench:stores` — the foreign store adapters at scale (issue 18, target 5): bulk `status --all --format
 * ndjson` with ONE store configured, against the database's own command-line client reading the same rows. Not a
 * test: it prints numbers (and fails loudly when a result is wrong).
 *
 * Per store and database it seeds, deterministically, N mailboxes (bench/dataset.mjs's addresses) and the store's
 * own tables in their real formats, a realistic share enrolled:
 *   - roundcube       users.preferences, PHP serialize() of ~20 settings, the twofactor_gauthenticator element
 *                     as the plugin writes it (plaintext array); Roundcube's own schema (/usr/share/roundcube/SQL)
 *   - roundcube-enc   the same with twofactor_pref_encrypt: the element is rcube::encrypt(json_encode(…)),
 *                     DES-EDE3-CBC with a des_key (the store configured with pref_encrypt + des_key)
 *   - mailcow         mailcow's mailbox (attributes JSON with force_tfa) and tfa rows: TOTP, WebAuthn, both,
 *                     armed bypass (active = 0), a few admin rows
 *   - sogo            sogo_user_profile: c_defaults JSON (~1 KB of settings, SOGoTOTPEnabled) and c_settings
 *                     (General.totpKey)
 *   - postfixadmin    PostfixAdmin's mailbox table with totp_secret
 * on MariaDB and SQLite (SOGo also on PostgreSQL), then times `mail2fa --config <store> status --all --format
 * ndjson` against `mariadb --batch --quick` / `sqlite3 -batch` / `psql -At` running the SQL that reads the same
 * rows (the mailbox table LEFT JOIN the store's table, the columns and expressions the store's statusBatch reads;
 * mailcow: both tables read whole, its tfa has no index on username and a join would be quadratic).
 * Alternate runs (mail2fa, client, mail2fa, …), medians, peak RSS and CPU user+sys from GNU time, load average.
 *
 * Correctness, loudly: one untimed run per store parses every NDJSON line and compares what the store said per
 * account (activated, enforced, weak, problems, method) with the seeded counts; every timed run checks mail2fa's
 * summary line and line count, every client run its row count. Any difference: WRONG, exit 1.
 *
 * Options: --size N (default 100000) · --runs N (default 5) · --db all|mariadb|sqlite|postgres
 *          · --stores roundcube,roundcube-enc,mailcow,sogo,postfixadmin (default: all)
 *          · --mariadb-url mysql://root@127.0.0.1:3306 · --pg-url postgres://postgres@127.0.0.1:5432
 *            (databases m2fbench_<store> are DROPPED and recreated there)
 *          · --keep (keep the seeded databases and their configs, to profile or rerun by hand)
 *          · --prefix NAME (databases NAME_<store> and their own work directory instead of m2fbench_<store>)
 *          · --no-write (do not touch docs/benchmarks.md)
 *          · --bin PATH (measure another build's bin/mail2fa.js against the same data)
 */
import { createCipheriv } from 'node:crypto';
import { execFileSync, spawnSync } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { makeDataset } from './dataset.mjs';
import {
  haveGnuTime,
  loadAverage,
  machine,
  mariadbClient,
  measureSet,
  printHeaderHelp,
  psqlClient,
  runOnce,
} from './measure.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const DOC = join(ROOT, 'docs', 'benchmarks.md');
const NODE = process.execPath;
const ALL_STORES = ['roundcube', 'roundcube-enc', 'mailcow', 'sogo', 'postfixadmin'];

const { values: opt } = parseArgs({
  options: {
    size: { type: 'string', default: '100000' },
    runs: { type: 'string', default: '5' },
    db: { type: 'string', default: 'all' },
    stores: { type: 'string', default: ALL_STORES.join(',') },
    'mariadb-url': { type: 'string', default: process.env.MAIL2FA_BENCH_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306' },
    'pg-url': { type: 'string', default: process.env.MAIL2FA_BENCH_PG_URL ?? 'postgres://postgres@127.0.0.1:5432' },
    keep: { type: 'boolean', default: false },
    prefix: { type: 'string', default: 'm2fbench' },
    'no-write': { type: 'boolean', default: false },
    bin: { type: 'string' },
    help: { type: 'boolean', default: false },
  },
});
if (opt.help) {
  printHeaderHelp(import.meta.url);
  process.exit(0);
}
const BIN = resolve(opt.bin ?? join(ROOT, 'bin', 'mail2fa.js'));
const SIZE = Number(opt.size);
const RUNS = Number(opt.runs);
const STORES = opt.stores.split(',').filter(Boolean);
if (
  !Number.isInteger(SIZE) ||
  SIZE < 1000 ||
  !Number.isInteger(RUNS) ||
  RUNS < 1 ||
  !['all', 'mariadb', 'sqlite', 'postgres'].includes(opt.db) ||
  STORES.length === 0 ||
  !/^[a-z][a-z0-9_]{0,40}$/.test(opt.prefix) ||
  STORES.some((s) => !ALL_STORES.includes(s))
) {
  process.stderr.write(
    `usage: npm run bench:stores -- [--size N>=1000] [--runs N] [--db all|mariadb|sqlite|postgres] [--stores ${ALL_STORES.join(',')}] [--mariadb-url URL] [--pg-url URL] [--keep] [--prefix NAME] [--no-write] [--bin PATH]\n`,
  );
  process.exit(64);
}
const WARMUP = 1;
const log = (s) => process.stderr.write(`${s}\n`);
const secs = (ms) => `${(ms / 1000).toFixed(1)} s`;
const step = async (what, fn) => {
  const t = performance.now();
  log(`… ${what}`);
  const r = await fn();
  log(`  done in ${secs(performance.now() - t)}`);
  return r;
};
const have = (cmd) => spawnSync('sh', ['-c', `command -v ${cmd}`], { stdio: 'ignore' }).status === 0;

if (!existsSync(join(ROOT, 'dist', 'main.js'))) {
  log('dist/ is missing: run `npm run build` first (npm run bench:stores does).');
  process.exit(69);
}
const timeBin = haveGnuTime();
if (!timeBin)
  log('NOTE: GNU time (/usr/bin/time) is missing, so peak RSS and CPU are not measured: apt-get install time');
const wantMariadb = ['all', 'mariadb'].includes(opt.db) && have('mariadb');
const wantSqlite = ['all', 'sqlite'].includes(opt.db) && have('sqlite3');
const wantPostgres = ['all', 'postgres'].includes(opt.db) && have('psql');
for (const [want, name, client] of [
  [['all', 'mariadb'].includes(opt.db), 'MariaDB', 'mariadb'],
  [['all', 'sqlite'].includes(opt.db), 'SQLite', 'sqlite3'],
  [['all', 'postgres'].includes(opt.db), 'PostgreSQL', 'psql'],
])
  if (want && !have(client)) log(`NOTE: the ${client} client is missing: ${name} is not measured`);

// The prefix names the databases and the work directory, so that two people benchmarking on one machine (or a
// kept data set being profiled while someone else runs the bench) do not drop each other's data.
const WORK = join(tmpdir(), opt.prefix === 'm2fbench' ? 'mail2fa-bench-stores' : `mail2fa-bench-stores-${opt.prefix}`);
rmSync(WORK, { recursive: true, force: true });
mkdirSync(WORK, { recursive: true, mode: 0o700 });
const KEY = Buffer.alloc(32, 7).toString('base64');
function childEnv() {
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (k.startsWith('MAIL2FA_')) delete env[k];
  return { ...env, MAIL2FA_KEY: KEY, NO_COLOR: '1', MAIL2FA_HOME: join(WORK, 'home') };
}

const myUrl = new URL(opt['mariadb-url']);
const { args: mariadbConn, env: mariadbEnv } = mariadbClient(myUrl);
const mysqlDbUrl = (db) => {
  const u = new URL(opt['mariadb-url']);
  u.pathname = `/${db}`;
  return u.href;
};
function mariadb(sql, db, extra = []) {
  return execFileSync('mariadb', [...mariadbConn, ...extra, '--batch', '-N', ...(db ? [db] : []), '-e', sql], {
    env: mariadbEnv,
    encoding: 'utf8',
    maxBuffer: 1 << 26,
  });
}
const pgUrlBase = new URL(opt['pg-url']);
const { args: psqlConn, env: psqlEnv } = psqlClient(pgUrlBase);
const pgDbUrl = (db) => {
  const u = new URL(opt['pg-url']);
  u.pathname = `/${db}`;
  return u.href;
};
function psql(commands, db) {
  return execFileSync(
    'psql',
    [...psqlConn, '-X', '-q', '-At', '-v', 'ON_ERROR_STOP=1', '-d', db, ...commands.flatMap((c) => ['-c', c])],
    { env: psqlEnv, encoding: 'utf8', maxBuffer: 1 << 26 },
  );
}
function mail2faSync(args) {
  const r = spawnSync(NODE, [BIN, ...args], { env: childEnv(), encoding: 'utf8' });
  if (r.status !== 0) throw new Error(`mail2fa ${args.join(' ')} exited ${r.status}: ${r.stderr.trim()}`);
  return r.stdout;
}

/* ---------------------------------------------------------------------------------------------------- */
/* The stores' own formats                                                                              */

const ds = makeDataset(SIZE, Date.UTC(2026, 10, 27));
const EMAILS = ds.emails;

function mulberry32(seed) {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}
const B32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
const base32Of = (rand, chars) => Array.from({ length: chars }, () => B32[Math.floor(rand() * 32)]).join('');
const hexOf = (rand, chars) => Array.from({ length: chars }, () => Math.floor(rand() * 16).toString(16)).join('');
const b64Of = (rand, bytes) =>
  Buffer.from(Array.from({ length: bytes }, () => Math.floor(rand() * 256))).toString('base64url');

/** PHP serialize() of strings, ints, bools and (nested) arrays; string lengths in bytes, as PHP counts them. */
function phpSerialize(v) {
  if (v === null) return 'N;';
  if (typeof v === 'boolean') return `b:${v ? 1 : 0};`;
  if (typeof v === 'number') return `i:${v};`;
  if (typeof v === 'string') return `s:${Buffer.byteLength(v)}:"${v}";`;
  if (v && typeof v === 'object' && 'raw' in v) return v.raw; // an element value already serialized
  const entries = Array.isArray(v) ? v.map((x, i) => [i, x]) : Object.entries(v);
  return `a:${entries.length}:{${entries.map(([k, x]) => (typeof k === 'number' ? `i:${k};` : phpSerialize(k)) + phpSerialize(x)).join('')}}`;
}

const DES_KEY = 'rcmail-!24ByteDESkey*Str'; // Roundcube's sample des_key (24 bytes)
/** rcube::encrypt() with DES-EDE3-CBC and base64 (the bench's own implementation, not mail2fa's). */
function rcubeEncrypt(clear, rand) {
  for (;;) {
    const iv = Buffer.from(Array.from({ length: 8 }, () => Math.floor(rand() * 256)));
    const cipher = createCipheriv('des-ede3-cbc', Buffer.from(DES_KEY), iv);
    const raw = Buffer.concat([iv, cipher.update(clear, 'utf8'), cipher.final()]);
    // Roundcube's /^##(.{16})##/ would misread an IV that looks like a GCM tag prefix: draw again, as it never stores one.
    if (!(raw[0] === 0x23 && raw[1] === 0x23 && raw[18] === 0x23 && raw[19] === 0x23)) return raw.toString('base64');
  }
}

const FULL_NAMES = ['Anna Berg', 'Bo Dahl', 'Carla Frost', 'Dan Hansen', 'Emma Jensen', 'Finn Larsen', 'Greta Olsen'];
const ZONES = ['Europe/Copenhagen', 'Europe/Berlin', 'Europe/Stockholm', 'UTC', 'America/New_York'];

/** Roundcube's preferences for one user: what the settings screens save, plus the plugin's element (or not). */
function roundcubePrefs(i, rand, plugin) {
  const prefs = {
    client_hash: hexOf(rand, 32),
    timezone: ZONES[i % ZONES.length],
    date_format: 'Y-m-d',
    time_format: 'H:i',
    show_images: 1,
    htmleditor: i % 3,
    draft_autosave: 300,
    mail_read_time: 0,
    message_sort_col: 'date',
    message_sort_order: 'DESC',
    list_cols: ['threads', 'subject', 'status', 'fromto', 'date', 'size', 'flag', 'attachment'],
    compose_extwin: false,
    reply_mode: 1,
    spellcheck_before_send: false,
    mdn_requests: 0,
    default_font: 'Verdana',
    default_font_size: '10pt',
    newmail_notifier_basic: true,
    newmail_notifier_desktop: false,
    skin: 'elastic',
  };
  const entries = Object.entries(prefs);
  if (plugin) entries.splice(10 + (i % 8), 0, ['twofactor_gauthenticator', { raw: plugin }]);
  return phpSerialize(Object.fromEntries(entries));
}

/** What the plugin's __set2FAconfig stores: the array, or (twofactor_pref_encrypt) rcube::encrypt(json_encode(…)). */
function pluginValue(rand, { activate, secretChars, encrypted }) {
  const data = {
    secret: base32Of(rand, secretChars),
    activate,
    recovery_codes: Array.from({ length: 4 }, (_, k) => (k === 0 && rand() < 0.3 ? '' : hexOf(rand, 10))),
  };
  if (!encrypted) return phpSerialize(data);
  return phpSerialize(rcubeEncrypt(JSON.stringify(data), rand));
}

const MAILCOW_ATTRIBUTES = (forceTfa) =>
  JSON.stringify({
    force_pw_update: '0',
    tls_enforce_in: '0',
    tls_enforce_out: '0',
    sogo_access: '1',
    imap_access: '1',
    pop3_access: '1',
    smtp_access: '1',
    sieve_access: '1',
    relayhost: '0',
    passwd_update: '2025-03-14 09:26:53',
    mailbox_format: 'maildir:',
    quarantine_notification: 'hourly',
    quarantine_category: 'reject',
    force_tfa: forceTfa ? '1' : '0',
  });

function sogoDefaults(i, totp) {
  const name = FULL_NAMES[i % FULL_NAMES.length];
  const d = {
    SOGoLanguage: 'English',
    SOGoTimeZone: ZONES[i % ZONES.length],
    SOGoLoginModule: 'Mail',
    SOGoMailMessageCheck: 'every_5_minutes',
    SOGoMailComposeMessageType: 'html',
    SOGoMailReplyPlacement: 'below',
    SOGoMailSignaturePlacement: 'below',
    SOGoMailAutoSave: '5',
    SOGoMailAddOutgoingAddresses: 0,
    SOGoCalendarDefaultReminder: '-PT15M',
    SOGoDayStartTime: '08:00',
    SOGoDayEndTime: '18:00',
    SOGoFirstDayOfWeek: 1,
    SOGoShortDateFormat: '%d-%b-%y',
    SOGoLongDateFormat: '%A, %B %d, %Y',
    SOGoTimeFormat: '%H:%M',
    SOGoMailIdentities: [
      {
        fullName: name,
        email: EMAILS[i],
        replyTo: '',
        signature: `<p>Best regards,<br>${name}</p><p>Phone +45 1234 5678</p>`,
        isDefault: 1,
      },
    ],
    SOGoContactsCategories: ['Business Partner', 'Colleague', 'Competitor', 'Customer', 'Family', 'Friend'],
    SOGoCalendarCategoriesColors: {
      Anniversary: '#1F1F1F',
      Birthday: '#1F2F3F',
      Business: '#2F1F1F',
      Holiday: '#3F1F1F',
    },
    SOGoMailLabelsColors: {
      $label1: ['Important', '#f00'],
      $label2: ['Work', '#ff9a00'],
      $label3: ['Personal', '#009900'],
    },
  };
  if (totp !== undefined) d.SOGoTOTPEnabled = totp;
  return JSON.stringify(d);
}
function sogoSettings(totpKey) {
  const s = {
    Calendar: { SelectedList: 'calendarsList', View: 'weekview', FoldersOrder: ['personal'] },
    Contact: { SelectedAddressBook: 'personal' },
    Mail: { SortingState: ['arrival', '0'], ExpandedFolders: ['/0', '/0/folderINBOX'], MessageListState: 'unthreaded' },
  };
  if (totpKey) s.General = { totpKey };
  return JSON.stringify(s);
}

/**
 * One store's data: `tables` (name → { columns, rows }), the per-account truth (what the store must say), and
 * the reference client's row count. Deterministic per store.
 */
function storeData(store) {
  const rand = mulberry32({ roundcube: 1, 'roundcube-enc': 1, mailcow: 2, sogo: 3, postfixadmin: 4 }[store]);
  const truth = { activated: 0, enforced: 0, weak: 0, totp: 0, withRows: 0 };
  const tables = {};
  let refRows = SIZE;
  if (store === 'roundcube' || store === 'roundcube-enc') {
    const encrypted = store === 'roundcube-enc';
    const users = [];
    for (let i = 0; i < SIZE; i++) {
      if (rand() >= 0.85) continue; // never signed in to the webmail: no users row
      const p = rand();
      let plugin = null;
      if (p < 0.22) {
        const activate = p < 0.2;
        const secretChars = rand() < 0.7 ? 16 : 32;
        plugin = pluginValue(rand, { activate, secretChars, encrypted });
        if (activate) {
          truth.activated++;
          truth.enforced++;
          truth.totp++;
          if (secretChars === 16) truth.weak++;
        }
        truth.withRows++;
      }
      users.push([EMAILS[i], 'localhost', '2025-01-01 00:00:00', 'en_US', roundcubePrefs(i, rand, plugin)]);
    }
    tables.users = { columns: ['username', 'mail_host', 'created', 'language', 'preferences'], rows: users };
  } else if (store === 'mailcow') {
    const tfa = [];
    const mailbox = [];
    for (let i = 0; i < SIZE; i++) {
      const e = EMAILS[i];
      const at = e.indexOf('@');
      const force = rand() < 0.02;
      mailbox.push([e, '{SSHA256}bench', ds.active[i], e.slice(at + 1), MAILCOW_ATTRIBUTES(force)]);
      const r = rand();
      const kinds =
        r < 0.15 ? ['totp'] : r < 0.17 ? ['totp', 'webauthn'] : r < 0.18 ? ['webauthn'] : r < 0.185 ? ['off'] : [];
      if (kinds.length === 0) continue;
      truth.activated++;
      if (kinds[0] !== 'off') truth.enforced++;
      if (kinds.includes('totp')) truth.totp++;
      truth.weak += kinds.includes('totp') || kinds[0] === 'off' ? 1 : 0;
      for (const k of kinds) {
        if (k === 'webauthn')
          tfa.push([`YubiKey 5 NFC`, e, 'webauthn', null, b64Of(rand, 64), b64Of(rand, 77), 0, null, 1]);
        else
          tfa.push([
            k === 'off' ? 'Phone' : 'Authenticator',
            e,
            'totp',
            base32Of(rand, 16),
            null,
            null,
            0,
            null,
            k === 'off' ? 0 : 1,
          ]);
      }
    }
    // mailcow's admins keep their authenticators in the same table (not mailboxes: never reported).
    for (let a = 0; a < 3; a++)
      tfa.push(['Admin key', `admin${a}`, 'totp', base32Of(rand, 16), null, null, 0, null, 1]);
    refRows = SIZE + tfa.length;
    // Rows in enrolment order, not address order.
    for (let k = tfa.length - 1; k > 0; k--) {
      const j = Math.floor(rand() * (k + 1));
      [tfa[k], tfa[j]] = [tfa[j], tfa[k]];
    }
    tables.mailbox = { columns: ['username', 'password', 'active', 'domain', 'attributes'], rows: mailbox };
    tables.tfa = {
      columns: [
        'key_id',
        'username',
        'authmech',
        'secret',
        'keyHandle',
        'publicKey',
        'counter',
        'certificate',
        'active',
      ],
      rows: tfa,
    };
  } else if (store === 'sogo') {
    const profiles = [];
    for (let i = 0; i < SIZE; i++) {
      if (rand() >= 0.7) continue; // never used SOGo: no profile
      const t = rand();
      const on = t < 0.16;
      const key = t < 0.15 || (t >= 0.16 && t < 0.3) ? hexOf(rand, 20) : null;
      const flag = on ? 1 : t < 0.3 ? 0 : undefined;
      if (on) {
        truth.activated++;
        truth.totp++;
        truth.weak++; // SOGo's key is 80 bits of hex characters: every SOGo factor is weak
        if (key) truth.enforced++;
      }
      profiles.push([EMAILS[i], sogoDefaults(i, flag), sogoSettings(key)]);
    }
    tables.sogo_user_profile = { columns: ['c_uid', 'c_defaults', 'c_settings'], rows: profiles };
  } else if (store === 'postfixadmin') {
    const mailbox = [];
    for (let i = 0; i < SIZE; i++) {
      const e = EMAILS[i];
      const at = e.indexOf('@');
      const chars = rand() < 0.15 ? (rand() < 0.7 ? 16 : 32) : 0;
      const secret = chars ? base32Of(rand, chars) : rand() < 0.02 ? '' : null;
      if (chars) {
        truth.activated++;
        truth.totp++;
        if (ds.active[i]) truth.enforced++;
        if (chars === 16) truth.weak++;
      }
      mailbox.push([
        e,
        '{SHA512-CRYPT}bench',
        FULL_NAMES[i % FULL_NAMES.length],
        `${e.slice(at + 1)}/${e.slice(0, at)}/`,
        e.slice(0, at),
        e.slice(at + 1),
        ds.active[i],
        secret,
      ]);
    }
    tables.mailbox = {
      columns: ['username', 'password', 'name', 'maildir', 'local_part', 'domain', 'active', 'totp_secret'],
      rows: mailbox,
    };
  }
  return { tables, truth, refRows };
}

/* ---------------------------------------------------------------------------------------------------- */
/* Schemas, configurations and reference SQL                                                            */

const PLUGIN_LIKE = `'%s:24:"twofactor_gauthenticator";%'`;

/** DDL of the store's tables (mail2fa's own come from `mail2fa migrate`). */
function schema(store, dialect) {
  if (store.startsWith('roundcube')) {
    const sql = readFileSync(
      `/usr/share/roundcube/SQL/${dialect === 'mysql' ? 'mysql' : 'sqlite'}.initial.sql`,
      'utf8',
    );
    return [sql];
  }
  if (store === 'mailcow') {
    if (dialect === 'mysql')
      return [
        `CREATE TABLE tfa (id INT NOT NULL AUTO_INCREMENT, key_id VARCHAR(255) NOT NULL, username VARCHAR(255) NOT NULL,
          authmech ENUM('yubi_otp', 'u2f', 'hotp', 'totp', 'webauthn'), secret VARCHAR(255) DEFAULT NULL,
          keyHandle VARCHAR(1023) DEFAULT NULL, publicKey VARCHAR(4096) DEFAULT NULL, counter INT NOT NULL DEFAULT '0',
          certificate TEXT, active TINYINT(1) NOT NULL DEFAULT '0', PRIMARY KEY (id))
          ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci ROW_FORMAT=DYNAMIC`,
        `CREATE TABLE mailbox (username VARCHAR(255) NOT NULL, password VARCHAR(255) NOT NULL,
          active TINYINT(1) NOT NULL DEFAULT '1', domain VARCHAR(255) NOT NULL, attributes JSON, PRIMARY KEY (username))
          ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci`,
      ];
    return [
      `CREATE TABLE tfa (id INTEGER PRIMARY KEY AUTOINCREMENT, key_id TEXT NOT NULL, username TEXT NOT NULL COLLATE NOCASE,
        authmech TEXT, secret TEXT, keyHandle TEXT, publicKey TEXT, counter INTEGER NOT NULL DEFAULT 0, certificate TEXT,
        active INTEGER NOT NULL DEFAULT 0)`,
      `CREATE TABLE mailbox (username TEXT NOT NULL PRIMARY KEY COLLATE NOCASE, password TEXT NOT NULL,
        active INTEGER NOT NULL DEFAULT 1, domain TEXT NOT NULL, attributes TEXT)`,
    ];
  }
  if (store === 'sogo') {
    if (dialect === 'mysql')
      return [
        `CREATE TABLE sogo_user_profile (c_uid VARCHAR(255) NOT NULL PRIMARY KEY, c_defaults LONGTEXT, c_settings LONGTEXT)
          ENGINE=InnoDB DEFAULT CHARSET=utf8mb4 COLLATE=utf8mb4_general_ci`,
      ];
    if (dialect === 'postgres')
      return [
        'CREATE TABLE sogo_user_profile (c_uid VARCHAR(255) NOT NULL PRIMARY KEY, c_defaults TEXT, c_settings TEXT)',
      ];
    return [
      'CREATE TABLE sogo_user_profile (c_uid TEXT NOT NULL PRIMARY KEY COLLATE NOCASE, c_defaults TEXT, c_settings TEXT)',
    ];
  }
  // PostfixAdmin's mailbox (its 4.x schema; latin1_general_ci as PostfixAdmin creates it on MySQL).
  if (dialect === 'mysql')
    return [
      `CREATE TABLE mailbox (username varchar(255) NOT NULL, password varchar(255) NOT NULL,
        name varchar(255) CHARACTER SET utf8mb3 NOT NULL, maildir varchar(255) NOT NULL, quota bigint NOT NULL DEFAULT 0,
        local_part varchar(255) NOT NULL, domain varchar(255) NOT NULL,
        created datetime NOT NULL DEFAULT '2000-01-01 00:00:00', modified datetime NOT NULL DEFAULT '2000-01-01 00:00:00',
        active tinyint(1) NOT NULL DEFAULT 1, phone varchar(30) NOT NULL DEFAULT '', email_other varchar(255) NOT NULL DEFAULT '',
        token varchar(255) NOT NULL DEFAULT '', token_validity datetime NOT NULL DEFAULT '2000-01-01 00:00:00',
        password_expiry datetime NOT NULL DEFAULT '2000-01-01 00:00:00', smtp_active tinyint(1) NOT NULL DEFAULT 1,
        totp_secret varchar(255) DEFAULT NULL, PRIMARY KEY (username), KEY domain (domain))
        ENGINE=InnoDB DEFAULT CHARSET=latin1 COLLATE=latin1_general_ci`,
    ];
  return [
    `CREATE TABLE mailbox (username varchar(255) NOT NULL COLLATE NOCASE PRIMARY KEY, password varchar(255) NOT NULL,
      name varchar(255) NOT NULL, maildir varchar(255) NOT NULL, quota bigint NOT NULL DEFAULT 0,
      local_part varchar(255) NOT NULL, domain varchar(255) NOT NULL COLLATE NOCASE,
      created datetime NOT NULL DEFAULT '2000-01-01 00:00:00', modified datetime NOT NULL DEFAULT '2000-01-01 00:00:00',
      active tinyint NOT NULL DEFAULT 1, phone varchar(30) NOT NULL DEFAULT '', email_other varchar(255) NOT NULL DEFAULT '',
      token varchar(255) NOT NULL DEFAULT '', token_validity datetime NOT NULL DEFAULT '2000-01-01 00:00:00',
      password_expiry datetime NOT NULL DEFAULT '2000-01-01 00:00:00', smtp_active tinyint NOT NULL DEFAULT 1,
      totp_secret varchar(255) DEFAULT NULL)`,
  ];
}

/** Whether mail2fa's reference mailbox table (preset mail2fa) is the account table, or the store's own mailbox is. */
const ownMailbox = (store) => store === 'mailcow' || store === 'postfixadmin';

/** The configuration: the mail database, the account mapping, and that one store. */
function configFor(store, url, { withStore = true } = {}) {
  const config = { db: { url } };
  if (store === 'mailcow')
    config.accounts = { preset: 'postfixadmin', columns: { totpSecret: null, alternateEmail: null } };
  // PostfixAdmin's store comes with the preset (totpSecret: null switches it off).
  if (store === 'postfixadmin')
    config.accounts = { preset: 'postfixadmin', ...(withStore ? {} : { columns: { totpSecret: null } }) };
  if (!withStore) return config;
  const stores = {
    roundcube: [{ name: 'roundcube', kind: 'roundcube', options: {} }],
    'roundcube-enc': [{ name: 'roundcube', kind: 'roundcube', options: { pref_encrypt: true, des_key: DES_KEY } }],
    mailcow: [{ name: 'mailcow', kind: 'mailcow', options: {} }],
    sogo: [{ name: 'sogo', kind: 'sogo', options: {} }],
    postfixadmin: [],
  }[store];
  if (stores.length) config.stores = stores;
  return config;
}
const storeName = (store) => (store === 'roundcube-enc' ? 'roundcube' : store);

/** The SQL the reference client runs: the mailbox LEFT JOIN the store's table, what statusBatch reads of it. */
function referenceSql(store, dialect) {
  const bin = (col) =>
    dialect === 'mysql'
      ? `CAST(CONVERT(${col} USING utf8mb4) AS BINARY)`
      : dialect === 'sqlite'
        ? `CAST(${col} AS BLOB)`
        : col;
  if (store.startsWith('roundcube'))
    return `SELECT m.email, m.active, u.user_id, u.username, u.mail_host, CASE WHEN u.preferences LIKE ${PLUGIN_LIKE} THEN ${bin('u.preferences')} END AS prefs FROM mailbox m LEFT JOIN users u ON u.username = m.email`;
  // mailcow creates tfa without an index on username: a join would be quadratic on MariaDB (block nested loop,
  // minutes at this size), so the client reads the same rows as two whole-table reads — the fastest way to them.
  if (store === 'mailcow')
    return `SELECT username, active, ${dialect === 'mysql' ? 'CAST(attributes AS CHAR)' : 'attributes'} FROM mailbox; SELECT id, key_id, username, authmech, secret, active FROM tfa`;
  if (store === 'sogo')
    return 'SELECT m.email, m.active, p.c_uid, p.c_defaults, p.c_settings FROM mailbox m LEFT JOIN sogo_user_profile p ON p.c_uid = m.email';
  return 'SELECT username, active, domain, totp_secret FROM mailbox';
}

/* ---------------------------------------------------------------------------------------------------- */
/* Seeding                                                                                              */

/** Text for LOAD DATA / COPY: tab-separated, \N for NULL, backslash, tab and newline escaped. */
function writeTsv(file, rows) {
  const fd = openSync(file, 'w');
  let chunk = '';
  try {
    for (const row of rows) {
      chunk += `${row.map((v) => (v === null ? '\\N' : String(v).replace(/[\\\t\n]/g, (c) => ({ '\\': '\\\\', '\t': '\\t', '\n': '\\n' })[c]))).join('\t')}\n`;
      if (chunk.length > 1 << 20) {
        writeSync(fd, chunk);
        chunk = '';
      }
    }
    if (chunk) writeSync(fd, chunk);
  } finally {
    closeSync(fd);
  }
}

const MAIL2FA_MAILBOX = {
  columns: ['email', 'password', 'active', 'domain'],
  rows: () => EMAILS.map((e, i) => [e, '{SHA512-CRYPT}bench', ds.active[i], e.slice(e.indexOf('@') + 1)]),
};

function tablesToLoad(store, data) {
  const t = Object.entries(data.tables).map(([name, v]) => [name, v.columns, v.rows]);
  if (!ownMailbox(store)) t.unshift(['mailbox', MAIL2FA_MAILBOX.columns, MAIL2FA_MAILBOX.rows()]);
  return t;
}

async function seedMariadb(store, data) {
  const db = `${opt.prefix}_${store.replace('-', '_')}`;
  const url = mysqlDbUrl(db);
  mariadb(
    `DROP DATABASE IF EXISTS \`${db}\`; CREATE DATABASE \`${db}\` CHARACTER SET utf8mb4 COLLATE utf8mb4_unicode_ci`,
    null,
  );
  const config = join(WORK, `${store}-mysql.json`);
  writeFileSync(config, JSON.stringify(configFor(store, url)));
  const bareConfig = `${config.slice(0, -5)}-bare.json`;
  writeFileSync(bareConfig, JSON.stringify(configFor(store, url, { withStore: false })));
  for (const ddl of schema(store, 'mysql')) mariadb(ddl, db);
  mail2faSync(['--config', config, 'migrate', ...(ownMailbox(store) ? [] : ['--with-mailbox-table'])]);
  const statements = ['SET SESSION unique_checks = 0', 'SET SESSION foreign_key_checks = 0'];
  const files = [];
  for (const [table, columns, rows] of tablesToLoad(store, data)) {
    const file = join(WORK, `${store}-${table}.tsv`);
    writeTsv(file, rows);
    files.push(file);
    statements.push(
      `LOAD DATA LOCAL INFILE '${file}' INTO TABLE \`${table}\` CHARACTER SET utf8mb4 FIELDS TERMINATED BY '\\t' LINES TERMINATED BY '\\n' (${columns.map((c) => `\`${c}\``).join(', ')})`,
    );
  }
  statements.push(
    `ANALYZE TABLE ${tablesToLoad(store, data)
      .map(([t]) => `\`${t}\``)
      .join(', ')}`,
  );
  try {
    mariadb(statements.join(';\n'), db, ['--local-infile=1']);
  } finally {
    for (const f of files) rmSync(f, { force: true });
  }
  return { config, bareConfig, drop: () => mariadb(`DROP DATABASE IF EXISTS \`${db}\``, null), db };
}

async function seedSqlite(store, data) {
  const { default: Database } = await import('better-sqlite3');
  const file = join(WORK, `${store}.sqlite`);
  const config = join(WORK, `${store}-sqlite.json`);
  writeFileSync(config, JSON.stringify(configFor(store, `sqlite:${file}`)));
  const bareConfig = `${config.slice(0, -5)}-bare.json`;
  writeFileSync(bareConfig, JSON.stringify(configFor(store, `sqlite:${file}`, { withStore: false })));
  {
    const db = new Database(file);
    for (const ddl of schema(store, 'sqlite')) db.exec(ddl);
    db.close();
  }
  mail2faSync(['--config', config, 'migrate', ...(ownMailbox(store) ? [] : ['--with-mailbox-table'])]);
  const db = new Database(file);
  db.pragma('synchronous = OFF');
  db.transaction(() => {
    for (const [table, columns, rows] of tablesToLoad(store, data)) {
      const insert = db.prepare(
        `INSERT INTO "${table}" (${columns.map((c) => `"${c}"`).join(', ')}) VALUES (${columns.map(() => '?').join(', ')})`,
      );
      for (const row of rows) insert.run(row.map((v) => (typeof v === 'boolean' ? Number(v) : v)));
    }
  })();
  db.exec('ANALYZE');
  db.pragma('wal_checkpoint(TRUNCATE)');
  db.close();
  return { config, bareConfig, file, drop: () => rmSync(file, { force: true }) };
}

async function seedPostgres(store, data) {
  const db = `${opt.prefix}_${store.replace('-', '_')}`;
  psql([`DROP DATABASE IF EXISTS "${db}" WITH (FORCE)`], 'postgres');
  psql([`CREATE DATABASE "${db}" ENCODING 'UTF8' TEMPLATE template0`], 'postgres');
  const config = join(WORK, `${store}-pg.json`);
  writeFileSync(config, JSON.stringify(configFor(store, pgDbUrl(db))));
  const bareConfig = `${config.slice(0, -5)}-bare.json`;
  writeFileSync(bareConfig, JSON.stringify(configFor(store, pgDbUrl(db), { withStore: false })));
  for (const ddl of schema(store, 'postgres')) psql([ddl], db);
  mail2faSync(['--config', config, 'migrate', ...(ownMailbox(store) ? [] : ['--with-mailbox-table'])]);
  for (const [table, columns, rows] of tablesToLoad(store, data)) {
    const file = join(WORK, `${store}-${table}.tsv`);
    writeTsv(file, rows);
    try {
      psql([`\\copy "${table}" (${columns.map((c) => `"${c}"`).join(', ')}) FROM '${file}'`], db);
    } finally {
      rmSync(file, { force: true });
    }
  }
  psql(['VACUUM ANALYZE'], db);
  return {
    config,
    bareConfig,
    db,
    drop: () => psql([`DROP DATABASE IF EXISTS "${db}" WITH (FORCE)`], 'postgres'),
  };
}

/* ---------------------------------------------------------------------------------------------------- */
/* Checking and measuring                                                                               */

const SUMMARY =
  /^(\d+) accounts?, (\d+) with 2FA \((\d+) app, (\d+) SMS(?:, (\d+) temporary codes?)?\), (\d+) without/m;

/** Every NDJSON line of one untimed run, against the seeded truth (per account, what the store said). */
function fullCheck(store, truth, stdout) {
  const name = storeName(store);
  const got = { lines: 0, activated: 0, enforced: 0, weak: 0, totp: 0, problems: 0, otherStores: 0 };
  for (const line of stdout.split('\n')) {
    if (!line) continue;
    got.lines++;
    const row = JSON.parse(line);
    if (row.method === 'totp') got.totp++;
    for (const s of row.stores) {
      if (s.store !== name) {
        got.otherStores++;
        continue;
      }
      if (s.problems?.length) got.problems++;
      if (!s.activated) continue;
      got.activated++;
      if (s.enforced) got.enforced++;
      if (s.factors.some((f) => f.weak)) got.weak++;
    }
  }
  const want = {
    lines: SIZE,
    activated: truth.activated,
    enforced: truth.enforced,
    weak: truth.weak,
    totp: truth.totp,
    problems: 0,
    otherStores: 0,
  };
  for (const [k, v] of Object.entries(want)) if (got[k] !== v) return `${k}: mail2fa says ${got[k]}, seeded ${v}`;
  return null;
}

function statusCheck(truth) {
  return (r) => {
    if (r.code !== 0) return `exit ${r.code}: ${r.stderr.trim().split('\n').slice(-2).join(' | ')}`;
    const m = SUMMARY.exec(r.stderr);
    if (!m) return 'no summary line on stderr';
    if (+m[1] !== SIZE) return `summary says ${m[1]} accounts, seeded ${SIZE}`;
    if (+m[2] !== truth.activated) return `summary says ${m[2]} with 2FA, seeded ${truth.activated}`;
    if (+m[3] !== truth.totp) return `summary says ${m[3]} app, seeded ${truth.totp}`;
    if (r.lines !== SIZE) return `printed ${r.lines} lines, expected ${SIZE}`;
    return null;
  };
}
function rowCheck(want) {
  return (r) => {
    if (r.code !== 0) return `exit ${r.code}: ${r.stderr.trim().split('\n').slice(-2).join(' | ')}`;
    return r.lines === want ? null : `printed ${r.lines} rows, expected ${want}`;
  };
}

async function measure(store, kind, seeded, data) {
  const common = { tmp: WORK, timeBin };
  const mail2fa = {
    label: 'mail2fa',
    cmd: NODE,
    args: () => [BIN, '--config', seeded.config, 'status', '--all', '--format', 'ndjson'],
    ...common,
    env: childEnv(),
    countLines: true,
    check: statusCheck(data.truth),
  };
  // One untimed run whose every line is checked.
  const full = await runOnce(mail2fa.cmd, mail2fa.args(), {
    ...mail2fa,
    countLines: false,
    captureStdout: true,
    timeBin: false,
  });
  const fullProblem =
    full.code !== 0
      ? `exit ${full.code}: ${full.stderr.trim().split('\n').slice(-2).join(' | ')}`
      : fullCheck(store, data.truth, full.stdout);
  const dialect = kind === 'mariadb' ? 'mysql' : kind;
  const sql = referenceSql(store, dialect);
  const ref =
    kind === 'mariadb'
      ? {
          label: 'mariadb',
          cmd: 'mariadb',
          args: () => [...mariadbConn, '--batch', '--quick', '--skip-column-names', seeded.db, '-e', sql],
          env: mariadbEnv,
        }
      : kind === 'sqlite'
        ? { label: 'sqlite3', cmd: 'sqlite3', args: () => ['-batch', seeded.file, sql], env: process.env }
        : {
            label: 'psql',
            cmd: 'psql',
            args: () => [...psqlConn, '-X', '-At', '-d', seeded.db, '-c', sql],
            env: psqlEnv,
          };
  // mail2fa over the same mailbox table without the store: what its own pipeline costs before any store is read.
  const bare = {
    ...mail2fa,
    label: 'mail2fa without the store',
    args: () => [BIN, '--config', seeded.bareConfig, 'status', '--all', '--format', 'ndjson'],
    check: statusCheck({ activated: 0, totp: 0 }),
  };
  const [m, r, b] = await step(
    `${store} on ${kind}: status --all vs ${ref.label} (and mail2fa without the store), ${WARMUP + RUNS} rounds`,
    () =>
      measureSet([mail2fa, { ...ref, ...common, countLines: true, check: rowCheck(data.refRows) }, bare], {
        runs: RUNS,
        warmup: WARMUP,
      }),
  );
  if (fullProblem && !m.problem) m.problem = `full check: ${fullProblem}`;
  if (b.problem && !m.problem) m.problem = `without the store: ${b.problem}`;
  return { store, kind, m, ref: r, bare: b, refName: ref.label, sql };
}

/* ---------------------------------------------------------------------------------------------------- */
/* Run                                                                                                  */

const started = performance.now();
const info = machine({ mariadbArgs: wantMariadb ? mariadbConn : null, sqlite3: wantSqlite });
if (wantPostgres) {
  try {
    info.postgres = psql(['SELECT version()'], 'postgres')
      .trim()
      .replace(/ on .*$/, '');
  } catch {
    info.postgres = 'PostgreSQL (version unknown)';
  }
}
const loadBefore = loadAverage();
const results = [];
const truths = {};
const cleanups = [];
try {
  for (const store of STORES) {
    const data = await step(`building ${store}'s data (${SIZE.toLocaleString('en')} mailboxes)`, async () =>
      storeData(store),
    );
    truths[store] = data.truth;
    log(
      `  ${data.truth.activated.toLocaleString('en')} with 2FA in the store (${data.truth.enforced.toLocaleString('en')} enforced, ${data.truth.weak.toLocaleString('en')} weak)`,
    );
    const kinds = [
      ...(wantMariadb ? ['mariadb'] : []),
      ...(wantSqlite ? ['sqlite'] : []),
      ...(wantPostgres && store === 'sogo' ? ['postgres'] : []),
    ];
    for (const kind of kinds) {
      const seed = { mariadb: seedMariadb, sqlite: seedSqlite, postgres: seedPostgres }[kind];
      const seeded = await step(`seeding ${store} on ${kind}`, () => seed(store, data));
      cleanups.push(seeded.drop);
      results.push(await measure(store, kind, seeded, data));
      if (!opt.keep) {
        seeded.drop();
        cleanups.pop();
      }
    }
  }
} finally {
  if (!opt.keep) {
    for (const drop of cleanups) {
      try {
        drop();
      } catch {
        // already gone: nothing to clean up
      }
    }
    rmSync(WORK, { recursive: true, force: true });
  } else log(`kept: the ${opt.prefix}_* databases and ${WORK}`);
}
const loadAfter = loadAverage();
const totalMs = performance.now() - started;

/* ---------------------------------------------------------------------------------------------------- */
/* Report                                                                                               */

const TARGET = 2;
const fmtMs = (ms) =>
  ms >= 10_000 ? `${(ms / 1000).toFixed(1)} s` : ms >= 1000 ? `${(ms / 1000).toFixed(2)} s` : `${Math.round(ms)} ms`;
const fmtMb = (kb) => (kb === null ? 'n/a' : `${Math.round(kb / 1024)} MB`);
const fmtCpu = (s) => (s === null ? 'n/a' : `${s.toFixed(2)} s`);
const DB = { mariadb: 'MariaDB', sqlite: 'SQLite', postgres: 'PostgreSQL' };
let failed = false;
const table = results.map((x) => {
  const ratio = x.m.ms / x.ref.ms;
  const cpuRatio = x.m.cpuS !== null && x.ref.cpuS ? x.m.cpuS / x.ref.cpuS : null;
  const problem = x.m.problem ?? x.ref.problem;
  if (problem) failed = true;
  return {
    store: x.store,
    db: DB[x.kind],
    mail2fa: fmtMs(x.m.ms),
    reference: `${fmtMs(x.ref.ms)} (${x.refName})`,
    ratio: `${ratio.toFixed(2)}×`,
    bare: `${fmtMs(x.bare.ms)} / ${fmtCpu(x.bare.cpuS)} (${(x.bare.ms / x.ref.ms).toFixed(2)}×)`,
    rss: fmtMb(x.m.rssKb),
    cpu: `${fmtCpu(x.m.cpuS)} / ${fmtCpu(x.ref.cpuS)}${cpuRatio === null ? '' : ` (${cpuRatio.toFixed(1)}×)`}`,
    verdict: problem ? `WRONG: ${problem}` : ratio <= TARGET ? 'met' : 'MISSED',
    runs: `mail2fa ${x.m.times.map((t) => Math.round(t)).join(', ')}; ${x.refName} ${x.ref.times.map((t) => Math.round(t)).join(', ')}; without the store ${x.bare.times.map((t) => Math.round(t)).join(', ')}`,
  };
});
const HEAD = {
  store: 'store',
  db: 'database',
  mail2fa: 'mail2fa',
  reference: 'reference',
  ratio: 'ratio',
  rss: 'peak RSS',
  cpu: 'CPU mail2fa / ref.',
  bare: 'no store: wall / CPU (÷ ref.)',
  verdict: 'verdict',
};
const keys = Object.keys(HEAD);
const widths = keys.map((k) => Math.max(HEAD[k].length, ...table.map((t) => t[k].length)));
const line = (r) =>
  keys
    .map((k, i) => r[k].padEnd(widths[i]))
    .join('  ')
    .trimEnd();
process.stdout.write(
  `\n${line(HEAD)}\n${line(Object.fromEntries(keys.map((k, i) => [k, '-'.repeat(widths[i])])))}\n${table.map(line).join('\n')}\n`,
);
process.stdout.write(
  `\nwall-time medians of ${RUNS} rounds after ${WARMUP} warm-up round; CPU = user+sys; load average ${loadBefore ?? '?'} before, ${loadAfter ?? '?'} after; whole run ${secs(totalMs)}\n`,
);

if (!opt['no-write'] && !opt.bin) {
  const md = [];
  const truthText = STORES.map(
    (s) => `${s} ${truths[s].activated.toLocaleString('en')} (${truths[s].enforced.toLocaleString('en')} enforced)`,
  ).join(', ');
  md.push(
    `Run of \`npm run bench:stores${process.argv.length > 2 ? ` -- ${process.argv.slice(2).join(' ')}` : ''}\` on ${info.date}: ${SIZE.toLocaleString('en')} mailboxes per store, accounts with 2FA in the store: ${truthText}. Target: \`status --all --format ndjson\` with only that store configured ≤ ${TARGET}× the client reading the same rows (wall-time medians of ${RUNS} alternating rounds after ${WARMUP} warm-up); load average ${loadBefore ?? '?'} before, ${loadAfter ?? '?'} after; whole run ${secs(totalMs)}.`,
  );
  md.push('');
  md.push(
    `Machine: ${info.cores} cores (${info.cpuModel}), ${info.memoryGb} GiB memory, ${info.os}; Node ${info.node}; MariaDB ${info.mariadb}${info.innodbBufferPoolMb ? ` (innodb_buffer_pool_size ${info.innodbBufferPoolMb} MiB)` : ''}${info.sqlite ? `; sqlite3 ${info.sqlite}` : ''}${info.postgres ? `; ${info.postgres}` : ''}.`,
  );
  md.push('');
  md.push(
    '| store | database | mail2fa | reference | ratio | mail2fa peak RSS | CPU mail2fa / reference | mail2fa without the store: wall / CPU (÷ reference) | verdict |',
  );
  md.push('|---|---|---:|---:|---:|---:|---:|---:|---|');
  for (const t of table)
    md.push(
      `| ${t.store} | ${t.db} | ${t.mail2fa} | ${t.reference} | ${t.ratio} | ${t.rss} | ${t.cpu} | ${t.bare} | ${t.verdict} |`,
    );
  md.push('');
  md.push('Reference SQL per store (MariaDB form; SQLite and PostgreSQL read the same columns):');
  md.push('');
  for (const store of STORES) md.push(`- ${store}: \`${referenceSql(store, 'mysql')}\``);
  md.push('');
  md.push('Wall times of every counted run (ms), in order:');
  md.push('');
  for (const t of table) md.push(`- ${t.store}, ${t.db}: ${t.runs}`);
  const START = '<!-- bench:stores:start (written by bench/stores.mjs) -->';
  const END = '<!-- bench:stores:end -->';
  const block = `${START}\n${md.join('\n')}\n${END}`;
  let doc = existsSync(DOC) ? readFileSync(DOC, 'utf8') : '# Benchmarks\n';
  if (!doc.includes(START) || !doc.includes(END)) doc += `\n## Store adapters\n\n${START}\n${END}\n`;
  doc = doc.slice(0, doc.indexOf(START)) + block + doc.slice(doc.indexOf(END) + END.length);
  writeFileSync(DOC, doc);
  log(`written to ${DOC}`);
}
process.exitCode = failed ? 1 : 0;
