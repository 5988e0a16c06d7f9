/**
 * The benchmark's mail host: N mailboxes with a realistic share of 2FA (20 % app, 5 % SMS), ten recovery codes
 * per enrolled account (some used), account-state rows for every account with a factor or a temporary access code
 * and a few others, 0.1 % locked. The state rows carry the status summary (migration 0002) with exactly the values
 * mail2fa computes from the detail rows, so that a seeded database is one mail2fa could have written.
 * Deterministic (seeded PRNG): the same size always gives the same rows, so runs compare.
 *
 * Stored secrets are realistic-looking fixed sealed strings: `status` never decrypts them. The few accounts the
 * bench verifies codes for are enrolled through mail2fa's own library instead (see run.mjs).
 */
import { writeSync, openSync, closeSync } from 'node:fs';

const FIRST = [
  'anna',
  'bo',
  'carla',
  'dan',
  'emma',
  'finn',
  'greta',
  'hans',
  'ida',
  'jens',
  'karen',
  'lars',
  'mette',
  'niels',
  'olga',
  'peter',
  'rikke',
  'soren',
  'tove',
  'ulla',
  'viggo',
  'wilma',
  'yasmin',
  'zoe',
];
const LAST = [
  'andersen',
  'berg',
  'christensen',
  'dahl',
  'eriksen',
  'frost',
  'hansen',
  'jensen',
  'kristensen',
  'larsen',
  'madsen',
  'nielsen',
  'olsen',
  'pedersen',
  'rasmussen',
  'schmidt',
  'thomsen',
  'vestergaard',
];
const WORDS = ['nordlys', 'havblik', 'skovsti', 'bakketop', 'fjord', 'klit', 'engvej', 'molevej', 'strand', 'lynghus'];
const TLDS = ['dk', 'de', 'se', 'com', 'net', 'org'];

/** A {SHA512-CRYPT} hash as Dovecot writes them (status never reads it; it only gives rows their real width). */
const PASSWORD =
  '{SHA512-CRYPT}$6$Qd8Hq0G4oK1tV2aP$2wQeR9m3yJ1c7u0kz5Xv8bN4fL6hT2sD9pG0aW3eY7iU1oR5tZ8xC4vB6nM2kJ9hF1dS3aQ7wE0rT5yU8iO2p';
const DAY = 86_400_000;

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

export const METHOD_NONE = 0;
export const METHOD_TOTP = 1;
export const METHOD_SMS = 2;

/**
 * Builds the dataset in memory (≈ 100 MB at 1,000,000 mailboxes): sorted addresses (byte order, the primary
 * key's order, so bulk loads append) and per-mailbox attributes in typed arrays.
 */
export function makeDataset(n, now, { reserve = 0 } = {}) {
  const rand = mulberry32(20261127);
  const domainCount = Math.max(4, Math.round(n / 500));
  const domains = Array.from(
    { length: domainCount },
    (_, k) => `${WORDS[k % WORDS.length]}-${k}.${TLDS[k % TLDS.length]}`,
  );
  const emails = new Array(n);
  for (let i = 0; i < n; i++) {
    const local = `${FIRST[Math.floor(rand() * FIRST.length)]}.${LAST[Math.floor(rand() * LAST.length)]}.${i.toString(36)}`;
    emails[i] = `${local}@${domains[Math.floor(rand() * domainCount)]}`;
  }
  emails.sort();

  const method = new Uint8Array(n);
  const active = new Uint8Array(n);
  const usedCodes = new Uint8Array(n);
  const stateKind = new Uint8Array(n); // 0 none, 1 plain row, 2 locked
  const challenges = new Uint8Array(n); // 0 none; SMS users: sign-in codes sent; others: 255 = a temporary access code
  const enrolledAt = new Float64Array(n);
  const lastUsedAt = new Float64Array(n); // 0 = never
  const expected = {
    accounts: n,
    enabled: 0,
    totp: 0,
    sms: 0,
    temporaryCode: 0,
    locked: 0,
    recoveryCodes: 0,
    stateRows: 0,
    challenges: 0,
  };
  for (let i = 0; i < n; i++) {
    const r = rand();
    method[i] = r < 0.2 ? METHOD_TOTP : r < 0.25 ? METHOD_SMS : METHOD_NONE;
    active[i] = rand() < 0.98 ? 1 : 0;
    if (method[i]) {
      expected.enabled++;
      if (method[i] === METHOD_TOTP) expected.totp++;
      else expected.sms++;
      enrolledAt[i] = now - Math.floor(rand() * 730 * DAY);
      lastUsedAt[i] = rand() < 0.85 ? enrolledAt[i] + Math.floor(rand() * (now - enrolledAt[i])) : 0;
      const u = rand();
      usedCodes[i] = u < 0.6 ? 0 : u < 0.85 ? 1 : u < 0.95 ? 2 + Math.floor(rand() * 2) : 4 + Math.floor(rand() * 6);
    }
    // Challenges: SMS sign-in codes sent to a tenth of the SMS users (1-3, used or expired); a temporary access
    // code (`recover --temporary-code`, pending, used or expired) for 0.05 % of the accounts without a factor,
    // which status counts as "2FA still required".
    const c = rand();
    if (method[i] === METHOD_SMS && c < 0.1) challenges[i] = 1 + Math.floor(rand() * 3);
    else if (!method[i] && c < 0.0005) challenges[i] = 255;
    if (challenges[i] === 255) {
      expected.enabled++;
      expected.temporaryCode++;
      expected.challenges++;
    } else expected.challenges += challenges[i];
    const s = rand();
    // Every account with a factor or a temporary code has a state row (it carries the status summary, and mail2fa
    // keeps one for each: src/db/status-summary.ts); 2 % of the others too (failed sign-ins, revoked sessions).
    stateKind[i] = s < 0.001 ? 2 : method[i] || challenges[i] || s < 0.02 ? 1 : 0;
    if (stateKind[i] === 2) expected.locked++;
    if (stateKind[i]) expected.stateRows++;
  }
  // The first `reserve` app users get their factor through mail2fa's library (real sealed secrets, for verify).
  const reserved = [];
  for (let i = 0; i < n && reserved.length < reserve; i++) if (method[i] === METHOD_TOTP && active[i]) reserved.push(i);
  const isReserved = new Uint8Array(n);
  for (const i of reserved) isReserved[i] = 1;
  expected.recoveryCodes = (expected.totp + expected.sms) * 10; // the reserved ones get theirs from storeFactor
  return {
    n,
    now,
    emails,
    domains,
    method,
    active,
    usedCodes,
    stateKind,
    challenges,
    enrolledAt,
    lastUsedAt,
    expected,
    reserved,
    isReserved,
  };
}

/** Rows of each table, as arrays in the column order of COLUMNS; null = SQL NULL. */
export const COLUMNS = {
  mailbox: ['email', 'password', 'active', 'domain', 'alternate_email'],
  factor: [
    'account',
    'method',
    'secret_ct',
    'phone_ct',
    'phone_masked',
    'key_id',
    'enrolled_at',
    'last_used_at',
    'last_totp_step',
    'version',
  ],
  recovery_code: ['account', 'code_hash', 'created_at', 'used_at'],
  account_state: [
    'account',
    'failed_attempts',
    'locked_until',
    'sessions_revoked_at',
    // The status summary (src/db/status-summary.ts), as refreshStatusSummary computes it from the rows below.
    'method',
    'phone_masked',
    'enrolled_at',
    'last_used_at',
    'codes_left',
    'temp_expires_at',
    'temp_used_at',
  ],
  challenge: ['account', 'purpose', 'code_hash', 'created_at', 'expires_at', 'used_at'],
};

/** Account i's factor row as seeded (none for the reserved accounts: mail2fa's library enrols them). */
function seededFactor(ds, i) {
  if (!ds.method[i] || ds.isReserved[i]) return null;
  const totp = ds.method[i] === METHOD_TOTP;
  return {
    method: totp ? 'totp' : 'sms',
    phoneMasked: totp ? null : `+45 ****${String(1000 + (i % 9000)).padStart(4, '0')}`,
    enrolledAt: ds.enrolledAt[i],
    lastUsedAt: ds.lastUsedAt[i] || null,
  };
}

/** Account i's temporary access code as seeded (pending, used or expired: a third each), or null. */
function temporaryCode(ds, i) {
  if (ds.challenges[i] !== 255) return null;
  const created = ds.now - (i % 3 === 0 ? 3_600_000 : 3 * DAY);
  return { created, expires: created + DAY, used: i % 3 === 1 ? created + 600_000 : null };
}

/**
 * Account i's status summary: what refreshStatusSummary computes from the seeded factor, recovery-code and
 * challenge rows (src/db/status-summary.ts): the factor's method, masked phone and dates; the unused recovery codes
 * where a factor exists, else NULL; the latest expiry and use of its temporary codes (it has at most one).
 */
function summary(ds, i) {
  const f = seededFactor(ds, i);
  const t = temporaryCode(ds, i);
  return [
    f?.method ?? null,
    f?.phoneMasked ?? null,
    f?.enrolledAt ?? null,
    f?.lastUsedAt ?? null,
    f ? 10 - ds.usedCodes[i] : null,
    t?.expires ?? null,
    t?.used ?? null,
  ];
}

export function* rows(ds, table, sealed) {
  const { n, emails, now } = ds;
  if (table === 'mailbox') {
    for (let i = 0; i < n; i++) {
      const e = emails[i];
      const at = e.indexOf('@');
      yield [e, PASSWORD, ds.active[i], e.slice(at + 1), i % 3 === 0 ? `${e.slice(0, at)}@private.example` : null];
    }
  } else if (table === 'factor') {
    for (let i = 0; i < n; i++) {
      const f = seededFactor(ds, i);
      if (!f) continue;
      const totp = f.method === 'totp';
      yield [
        emails[i],
        f.method,
        totp ? sealed.secret : null,
        totp ? null : sealed.phone,
        f.phoneMasked,
        sealed.keyId,
        f.enrolledAt,
        f.lastUsedAt,
        totp && f.lastUsedAt ? Math.floor(f.lastUsedAt / 30000) : null,
        i % 3,
      ];
    }
  } else if (table === 'recovery_code') {
    const base = 'c4f1a9e07b3d52f8a6e19c0b7d4f2a85e3b6c9d0f1a2b3c4d5e6f708192a3b4c';
    for (let i = 0; i < n; i++) {
      if (!ds.method[i] || ds.isReserved[i]) continue;
      for (let k = 0; k < 10; k++) {
        const tag = (i * 10 + k).toString(16);
        yield [
          emails[i],
          base.slice(0, 64 - tag.length) + tag,
          ds.enrolledAt[i],
          k < ds.usedCodes[i] ? ds.enrolledAt[i] + (k + 1) * DAY : null,
        ];
      }
    }
  } else if (table === 'challenge') {
    const base = '9e107d9d372bb6826bd81d3542a419d6e277d4d731479571a2a5e5c5f0b8b7a1';
    for (let i = 0; i < n; i++) {
      const count = ds.challenges[i];
      if (!count) continue;
      const hash = (k) => {
        const tag = (i * 4 + k).toString(16);
        return base.slice(0, 64 - tag.length) + tag;
      };
      if (count === 255) {
        // Pending (valid 24 h), used, or expired: a third each.
        const t = temporaryCode(ds, i);
        yield [emails[i], 'temporary', hash(0), t.created, t.expires, t.used];
      } else {
        for (let k = 0; k < count; k++) {
          const created = now - (k + 1) * DAY;
          yield [emails[i], 'sms', hash(k), created, created + 600_000, k % 2 ? null : created + 60_000];
        }
      }
    }
  } else if (table === 'account_state') {
    for (let i = 0; i < n; i++) {
      const kind = ds.stateKind[i];
      if (!kind) continue;
      const revoked = ds.method[i] ? ds.enrolledAt[i] : null;
      if (kind === 2) yield [emails[i], 5, now + 3_600_000 + (i % 840) * 1000, revoked, ...summary(ds, i)];
      else yield [emails[i], 0, null, revoked, ...summary(ds, i)];
    }
  }
}

/** Writes a table's rows as a tab-separated file for LOAD DATA (\N = NULL); returns the row count. */
export function writeTsv(file, iterable) {
  const fd = openSync(file, 'w');
  let chunk = '';
  let count = 0;
  try {
    for (const row of iterable) {
      let line = '';
      for (let c = 0; c < row.length; c++) {
        const v = row[c];
        line += (c ? '\t' : '') + (v === null ? '\\N' : String(v));
      }
      chunk += `${line}\n`;
      count++;
      if (chunk.length > 1 << 20) {
        writeSync(fd, chunk);
        chunk = '';
      }
    }
    if (chunk) writeSync(fd, chunk);
  } finally {
    closeSync(fd);
  }
  return count;
}
