/**
 * Verifies (and, for demo/test seeding, produces) mailbox password hashes in the schemes Dovecot and
 * PostfixAdmin store. Behaviour follows Dovecot 2.3 (`doveadm pw -t`), checked against hashes
 * made by `doveadm pw` and `openssl passwd` with non-ASCII passwords (test/fixtures/password-hashes.json):
 *
 * - Passwords are compared as their UTF-8 bytes, without Unicode normalisation (like Dovecot): an NFD-typed
 *   password does not match an NFC-hashed one.
 * - `{SCHEME}` names are case-insensitive. Bare crypt forms (`$6$`, `$5$`, `$2a$`/`$2b$`/`$2y$`, `$argon2i$`,
 *   `$argon2id$`, `$1$`) are recognised too (PostfixAdmin often stores bare `$1$`).
 * - As in Dovecot (which hands them to libc crypt(3)), `{SHA512-CRYPT}` and `{SHA256-CRYPT}` verify whichever
 *   crypt form their value holds (`$1$`, `$2?$`, `$5$`, `$6$`); `{ARGON2I}`/`{ARGON2ID}` accept either Argon2
 *   variant (libsodium does); `{BLF-CRYPT}` needs `$2a$`/`$2b$`/`$2y$` and `{MD5-CRYPT}` needs `$1$`.
 * - `{SSHA512}`/`{SSHA256}`/`{SSHA}` are base64(digest || salt) with at least one salt byte; `{PLAIN-MD5}` is hex
 *   (either case) or base64 of the 16-byte digest; `{PLAIN}` is the password itself.
 * - Anything else (other Dovecot schemes, `.HEX`/`.B64` suffixes, aliases such as `{CLEAR}` or `{MD5}`) is a
 *   clear configuration error naming the scheme, never a silent mismatch. So is an empty or malformed value.
 *
 * Digest comparisons are constant-time. Error messages never contain the stored hash or the password.
 * Libraries are imported lazily inside their scheme's branch so that CLI start-up stays light.
 */
import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import type { Algorithm as Argon2Algorithm } from '@node-rs/argon2';
import { configError, dataError, internalError } from '../errors.js';
import { escapeControl } from '../text.js';

export type PasswordScheme =
  | 'SHA512-CRYPT'
  | 'SHA256-CRYPT'
  | 'BLF-CRYPT'
  | 'ARGON2I'
  | 'ARGON2ID'
  | 'MD5-CRYPT'
  | 'SSHA512'
  | 'SSHA256'
  | 'SSHA'
  | 'PLAIN-MD5'
  | 'PLAIN';

export const PASSWORD_SCHEMES: readonly PasswordScheme[] = [
  'SHA512-CRYPT',
  'SHA256-CRYPT',
  'BLF-CRYPT',
  'ARGON2I',
  'ARGON2ID',
  'MD5-CRYPT',
  'SSHA512',
  'SSHA256',
  'SSHA',
  'PLAIN-MD5',
  'PLAIN',
];

/** Error codes thrown by this module (both exit 78, configuration). */
export const UNKNOWN_PASSWORD_SCHEME = 'unknown_password_scheme';
export const MALFORMED_PASSWORD_HASH = 'malformed_password_hash';

/**
 * Passwords longer than this (UTF-8 bytes) are rejected (verifyPassword returns false) before any hashing:
 * SHA-crypt is quadratic in the password length, so an unbounded password is a denial of service. No real
 * mail password comes close; Dovecot's own auth protocol limits a whole request to 16 KiB.
 */
export const MAX_PASSWORD_BYTES = 4096;

/** SHA-crypt rounds above this are refused (Dovecot allows up to 999,999,999; that would stall for minutes). */
const MAX_SHA_CRYPT_ROUNDS = 10_000_000;

const SUPPORTED_HINT =
  'Supported: {SHA512-CRYPT}/$6$, {SHA256-CRYPT}/$5$, {BLF-CRYPT}/$2y$/$2b$/$2a$, {ARGON2I}, {ARGON2ID}, ' +
  '{MD5-CRYPT}/$1$, {SSHA512}, {SSHA256}, {SSHA}, {PLAIN-MD5}, {PLAIN}. ' +
  'Re-hash the password with a supported scheme (e.g. `doveadm pw -s SHA512-CRYPT`).';

const CRYPT_ALPHABET = './0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz';

// Crypt forms we can verify, and their regular expressions (anchored, whole payload).
const SHA_CRYPT_RE = /^\$([56])\$(?:rounds=([0-9]{1,10})\$)?([./0-9A-Za-z]{0,16})\$([./0-9A-Za-z]+)$/;
const BCRYPT_RE = /^\$2([aby])\$([0-9]{2})\$([./A-Za-z0-9]{22})([./A-Za-z0-9]{31})$/;
const MD5_CRYPT_RE = /^\$1\$([!-#%-~]{0,8})\$([./0-9A-Za-z]{22})$/;
const ARGON2_RE = /^\$argon2(id|i)\$v=19\$m=[0-9]{1,10},t=[0-9]{1,10},p=[0-9]{1,3}\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$/;
const BASE64_RE = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;
const HEX32_RE = /^[0-9a-fA-F]{32}$/;
// A lone UTF-16 surrogate (in `u` mode a well-formed pair is one code point and does not match).
const LONE_SURROGATE_RE = /\p{Cs}/u;

/** Crypt ids we recognise but cannot verify, named in the error so the admin knows what they have. */
const UNSUPPORTED_CRYPT_IDS: ReadonlyArray<[string, string]> = [
  ['$y$', 'yescrypt'],
  ['$gy$', 'gost-yescrypt'],
  ['$7$', 'scrypt'],
  ['$2x$', 'bcrypt with the pre-2011 8-bit bug'],
  ['$3$', 'NT hash'],
  ['$argon2d$', 'Argon2d'],
  ['$md5', 'Sun MD5'],
  ['$sha1$', 'NetBSD SHA-1 crypt'],
  ['$pbkdf2', 'PBKDF2'],
  ['$scrypt$', 'scrypt'],
];

interface ParsedHash {
  scheme: PasswordScheme;
  /** The value after the `{SCHEME}` prefix (the whole value for bare crypt forms). */
  payload: string;
  /** How to name the scheme in messages: `{SHA512-CRYPT}` or `$6$`. */
  label: string;
}

/** Names a scheme for an error message: control characters escaped, at most 40 characters of it. */
function safeName(name: string): string {
  const chars = Array.from(name);
  const cut = chars.length > 40 ? chars.slice(0, 40).join('') + '…' : name;
  return escapeControl(cut);
}

function unknownScheme(name: string) {
  return configError(
    UNKNOWN_PASSWORD_SCHEME,
    `unsupported password scheme {${safeName(name)}} in the stored password hash`,
    SUPPORTED_HINT,
  );
}

function malformed(label: string, why: string) {
  return configError(
    MALFORMED_PASSWORD_HASH,
    `the stored ${label} password hash is malformed: ${why}`,
    'Check the mailbox password column (and the column mapping in the configuration); re-set the password if needed.',
  );
}

function parseStored(stored: string): ParsedHash {
  if (stored === null || stored === undefined || stored === '') {
    throw configError(
      MALFORMED_PASSWORD_HASH,
      'the account has no stored password hash (the password field is empty)',
      'Set a password for the mailbox first, or check the password column in the configuration mapping.',
    );
  }
  if (typeof stored !== 'string') throw internalError('verifyPassword: the stored password hash is not a string');

  if (stored.startsWith('{')) {
    const close = stored.indexOf('}');
    if (close < 0) {
      throw configError(
        UNKNOWN_PASSWORD_SCHEME,
        'the stored password hash starts with "{" but has no closing "}" after the scheme name',
        SUPPORTED_HINT,
      );
    }
    const name = stored.slice(1, close);
    const scheme = name.toUpperCase() as PasswordScheme;
    if (!PASSWORD_SCHEMES.includes(scheme)) throw unknownScheme(name);
    const payload = stored.slice(close + 1);
    const label = `{${scheme}}`;
    if (payload === '') throw malformed(label, 'nothing follows the scheme prefix');
    return { scheme, payload, label };
  }

  if (stored.startsWith('$')) {
    const bare = bareCryptScheme(stored);
    if (bare) return { scheme: bare, payload: stored, label: bareLabel(stored) };
    for (const [id, what] of UNSUPPORTED_CRYPT_IDS) {
      if (stored.startsWith(id)) {
        throw configError(
          UNKNOWN_PASSWORD_SCHEME,
          `unsupported password scheme ${id.endsWith('$') ? id : `${id}…`} (${what}) in the stored password hash`,
          SUPPORTED_HINT,
        );
      }
    }
  }
  throw configError(
    UNKNOWN_PASSWORD_SCHEME,
    'unrecognised stored password hash: no {SCHEME} prefix and not a supported crypt form ' +
      '($6$, $5$, $2y$/$2b$/$2a$, $argon2i$, $argon2id$, $1$)',
    SUPPORTED_HINT + ' Dovecot reads unprefixed hashes with its default_pass_scheme: prefix them with that scheme.',
  );
}

function bareCryptScheme(value: string): PasswordScheme | undefined {
  if (value.startsWith('$6$')) return 'SHA512-CRYPT';
  if (value.startsWith('$5$')) return 'SHA256-CRYPT';
  if (/^\$2[aby]\$/.test(value)) return 'BLF-CRYPT';
  if (value.startsWith('$argon2id$')) return 'ARGON2ID';
  if (value.startsWith('$argon2i$')) return 'ARGON2I';
  if (value.startsWith('$1$')) return 'MD5-CRYPT';
  return undefined;
}

function bareLabel(value: string): string {
  const match = /^\$(?:argon2id|argon2i|2[aby]|[156])\$/.exec(value);
  return match ? match[0] : '$?$';
}

/**
 * Detects the scheme of a stored hash: Dovecot `{SCHEME}` prefix (case-insensitive), or bare crypt forms
 * `$6$`, `$5$`, `$2y$`/`$2b$`/`$2a$`, `$argon2i$`/`$argon2id$`, `$1$`. Throws Mail2faError (exit 78) on an
 * unknown scheme and on an empty value. Returns the declared scheme; it does not validate the rest.
 */
export function passwordScheme(stored: string): PasswordScheme {
  return parseStored(stored).scheme;
}

/** Constant-time equality of two byte strings; unequal lengths are false (after a dummy comparison). */
function bytesEqual(first: Uint8Array, second: Uint8Array): boolean {
  if (first.length !== second.length) {
    timingSafeEqual(first, first);
    return false;
  }
  return timingSafeEqual(first, second);
}

/** Constant-time equality of two ASCII strings. */
function asciiEqual(first: string, second: string): boolean {
  return bytesEqual(Buffer.from(first, 'latin1'), Buffer.from(second, 'latin1'));
}

/**
 * Verifies `password` (a JavaScript string, compared as UTF-8 bytes, not normalised) against the stored hash.
 * Returns true or false. Throws Mail2faError (exit 78): code `unknown_password_scheme` naming the scheme when
 * it is unknown or unsupported (e.g. `{CRAM-MD5}`), code `malformed_password_hash` when the stored value is
 * empty or malformed for its scheme. Messages never include the hash or the password.
 * A password that is not well-formed Unicode (lone surrogates) or longer than MAX_PASSWORD_BYTES is false.
 */
export async function verifyPassword(password: string, stored: string): Promise<boolean> {
  if (typeof password !== 'string') throw internalError('verifyPassword: the password is not a string');
  const parsed = parseStored(stored);
  const check = prepareCheck(parsed); // validates the stored value first: malformed is an error for any password
  if (LONE_SURROGATE_RE.test(password)) return false;
  const pw = Buffer.from(password, 'utf8');
  if (pw.length > MAX_PASSWORD_BYTES) return false;
  return check(password, pw);
}

type Check = (password: string, pw: Buffer) => Promise<boolean> | boolean;

/** Validates the stored value for its scheme and returns the function that checks a password against it. */
function prepareCheck({ scheme, payload, label }: ParsedHash): Check {
  switch (scheme) {
    case 'SHA512-CRYPT':
    case 'SHA256-CRYPT':
      // Dovecot passes these to libc crypt(3), which dispatches on the value's own prefix.
      return cryptCheck(payload, label, ['$6$', '$5$', '$2', '$1$']);
    case 'BLF-CRYPT':
      // Dovecot's own bcrypt: "Password is not blowfish password" for anything but $2a$/$2b$/$2y$.
      return cryptCheck(payload, label, ['$2']);
    case 'MD5-CRYPT':
      return cryptCheck(payload, label, ['$1$']);
    case 'ARGON2I':
    case 'ARGON2ID':
      return cryptCheck(payload, label, ['$argon2']);
    case 'SSHA512':
      return saltedDigestCheck('sha512', 64, payload, label);
    case 'SSHA256':
      return saltedDigestCheck('sha256', 32, payload, label);
    case 'SSHA':
      return saltedDigestCheck('sha1', 20, payload, label);
    case 'PLAIN-MD5': {
      let digest: Buffer;
      if (HEX32_RE.test(payload)) digest = Buffer.from(payload, 'hex');
      else if (payload.length === 24 && BASE64_RE.test(payload)) digest = Buffer.from(payload, 'base64');
      else throw malformed(label, 'expected 32 hexadecimal digits (or the base64 form of a 16-byte MD5 digest)');
      return (_password, pw) => bytesEqual(createHash('md5').update(pw).digest(), digest);
    }
    case 'PLAIN': {
      // Compare digests so that neither the content nor the length of the stored password leaks through timing.
      const want = createHash('sha256').update(payload, 'utf8').digest();
      return (_password, pw) => bytesEqual(createHash('sha256').update(pw).digest(), want);
    }
  }
}

function saltedDigestCheck(algorithm: string, digestLength: number, payload: string, label: string): Check {
  if (!BASE64_RE.test(payload)) throw malformed(label, 'not valid base64');
  const raw = Buffer.from(payload, 'base64');
  if (raw.length <= digestLength) throw malformed(label, `too short (needs a ${digestLength}-byte digest and a salt)`);
  const digest = raw.subarray(0, digestLength);
  const salt = raw.subarray(digestLength);
  return (_password, pw) => bytesEqual(createHash(algorithm).update(pw).update(salt).digest(), digest);
}

/** A crypt-style value (`$id$…`): checks it is one of `allowed` prefixes and well-formed, returns its checker. */
function cryptCheck(value: string, label: string, allowed: readonly string[]): Check {
  if (!allowed.some((prefix) => value.startsWith(prefix))) {
    const id = bareCryptScheme(value) ? bareLabel(value) : undefined;
    throw malformed(
      label,
      id
        ? `it holds a ${id} hash, which this scheme cannot verify`
        : `expected a value starting with ${allowed.join(' or ')}`,
    );
  }

  if (value.startsWith('$6$') || value.startsWith('$5$')) {
    const match = SHA_CRYPT_RE.exec(value);
    const id = value.slice(0, 3);
    const hashLength = id === '$6$' ? 86 : 43;
    if (!match || match[4]!.length !== hashLength) throw malformed(label, `not a valid ${id} (SHA-crypt) hash`);
    const rounds = match[2] === undefined ? undefined : Number(match[2]);
    if (rounds !== undefined && (rounds < 1000 || rounds > MAX_SHA_CRYPT_ROUNDS)) {
      throw malformed(label, `rounds=${rounds} is outside the supported range 1000–${MAX_SHA_CRYPT_ROUNDS}`);
    }
    const setting = `${id}${rounds === undefined ? '' : `rounds=${rounds}$`}${match[3]!}`;
    const expected = match[4]!;
    return async (password) => {
      const { encrypt } = await import('unixcrypt');
      const computed = encrypt(password, setting);
      return asciiEqual(computed.slice(computed.lastIndexOf('$') + 1), expected);
    };
  }

  if (value.startsWith('$2')) {
    const match = BCRYPT_RE.exec(value);
    const cost = match ? Number(match[2]) : NaN;
    if (!match || cost < 4 || cost > 31) throw malformed(label, 'not a valid bcrypt ($2y$/$2b$/$2a$) hash');
    // bcryptjs accepts $2a$, $2b$ and $2y$ (the same algorithm for UTF-8 input) and keeps the minor in its output.
    const setting = value.slice(0, 29);
    const expected = match[4]!;
    return async (password) => {
      const bcrypt = (await import('bcryptjs')).default;
      const computed = await bcrypt.hash(password, setting);
      return asciiEqual(computed.slice(29), expected);
    };
  }

  if (value.startsWith('$1$')) {
    const match = MD5_CRYPT_RE.exec(value);
    if (!match) throw malformed(label, 'not a valid $1$ (MD5-crypt) hash');
    const salt = Buffer.from(match[1]!, 'latin1');
    const expected = match[2]!;
    return (_password, pw) => asciiEqual(md5CryptDigest(pw, salt), expected);
  }

  // Argon2 (PHC string). Only version 19 exists in Dovecot/libsodium.
  if (!ARGON2_RE.test(value)) throw malformed(label, 'not a valid Argon2 PHC string ($argon2i$ / $argon2id$, v=19)');
  return async (_password, pw) => {
    const argon2 = await import('@node-rs/argon2');
    try {
      // @node-rs/argon2 (RustCrypto argon2) compares the digest in constant time.
      return await argon2.verify(value, pw);
    } catch {
      throw malformed(label, 'the Argon2 library rejected its parameters');
    }
  };
}

/**
 * MD5-crypt (`$1$`, Poul-Henning Kamp's algorithm as in glibc, Dovecot and `openssl passwd -1`) over raw bytes.
 * Implemented with node:crypto because nano-md5's md5crypt throws for passwords over 64 characters
 * ("too long key"), which the real algorithm (and Dovecot) accepts. Returns the 22-character digest part.
 */
function md5CryptDigest(pw: Buffer, salt: Buffer): string {
  const md5 = () => createHash('md5');
  const alternate = md5().update(pw).update(salt).update(pw).digest();
  const ctx = md5().update(pw).update('$1$').update(salt);
  for (let left = pw.length; left > 0; left -= 16) ctx.update(alternate.subarray(0, Math.min(16, left)));
  for (let i = pw.length; i > 0; i >>= 1) ctx.update(i & 1 ? Buffer.of(0) : pw.subarray(0, 1));
  let final = ctx.digest();
  for (let index = 0; index < 1000; index++) {
    const round = md5();
    round.update(index & 1 ? pw : final);
    if (index % 3) round.update(salt);
    if (index % 7) round.update(pw);
    round.update(index & 1 ? final : pw);
    final = round.digest();
  }
  const byteAt = (i: number) => final[i]!;
  let out = '';
  const to64 = (value: number, n: number) => {
    for (let k = 0; k < n; k++, value >>= 6) out += CRYPT_ALPHABET[value & 0x3f];
  };
  to64((byteAt(0) << 16) | (byteAt(6) << 8) | byteAt(12), 4);
  to64((byteAt(1) << 16) | (byteAt(7) << 8) | byteAt(13), 4);
  to64((byteAt(2) << 16) | (byteAt(8) << 8) | byteAt(14), 4);
  to64((byteAt(3) << 16) | (byteAt(9) << 8) | byteAt(15), 4);
  to64((byteAt(4) << 16) | (byteAt(10) << 8) | byteAt(5), 4);
  to64(byteAt(11), 2);
  return out;
}

/** `n` random characters of the crypt alphabet (64 symbols: a byte's low 6 bits are uniform). */
function cryptSalt(length: number): string {
  return Array.from(randomBytes(length), (byte) => CRYPT_ALPHABET[byte & 0x3f]).join('');
}

/**
 * Produces a hash for seeding demo/test mailboxes, in Dovecot's `{SCHEME}` form (default
 * `{SHA512-CRYPT}$6$…`). Every PasswordScheme is supported; BLF-CRYPT is written as `$2y$` (cost 10) like
 * Dovecot, Argon2 with @node-rs/argon2's defaults (m=19456, t=2, p=1), SSHA* with an 8-byte salt.
 * Throws a data error (exit 65) for an empty password or one that is not well-formed Unicode.
 */
export async function hashPassword(password: string, scheme: PasswordScheme = 'SHA512-CRYPT'): Promise<string> {
  if (typeof password !== 'string' || password === '') {
    throw dataError('invalid_password', 'the password must not be empty');
  }
  if (LONE_SURROGATE_RE.test(password)) throw dataError('invalid_password', 'the password is not valid Unicode text');
  const pw = Buffer.from(password, 'utf8');
  if (pw.length > MAX_PASSWORD_BYTES) {
    throw dataError('invalid_password', `the password is longer than ${MAX_PASSWORD_BYTES} bytes`);
  }
  const prefix = `{${scheme}}`;
  switch (scheme) {
    case 'SHA512-CRYPT':
    case 'SHA256-CRYPT': {
      const { encrypt } = await import('unixcrypt');
      return prefix + encrypt(password, `${scheme === 'SHA512-CRYPT' ? '$6$' : '$5$'}${cryptSalt(16)}`);
    }
    case 'BLF-CRYPT': {
      const bcrypt = (await import('bcryptjs')).default;
      const hashed = await bcrypt.hash(password, await bcrypt.genSalt(10));
      return prefix + hashed.replace(/^\$2b\$/, '$2y$');
    }
    case 'ARGON2I':
    case 'ARGON2ID': {
      const argon2 = await import('@node-rs/argon2');
      // Algorithm is a `const enum` (Argon2i = 1, Argon2id = 2): use the values, the enum object is type-only here.
      const algorithm = (scheme === 'ARGON2I' ? 1 : 2) as Argon2Algorithm;
      return prefix + (await argon2.hash(pw, { algorithm }));
    }
    case 'MD5-CRYPT': {
      const salt = cryptSalt(8);
      return `${prefix}$1$${salt}$${md5CryptDigest(pw, Buffer.from(salt, 'latin1'))}`;
    }
    case 'SSHA512':
    case 'SSHA256':
    case 'SSHA': {
      const algorithm = scheme === 'SSHA512' ? 'sha512' : scheme === 'SSHA256' ? 'sha256' : 'sha1';
      const salt = randomBytes(8);
      const digest = createHash(algorithm).update(pw).update(salt).digest();
      return prefix + Buffer.concat([digest, salt]).toString('base64');
    }
    case 'PLAIN-MD5':
      return prefix + createHash('md5').update(pw).digest('hex');
    case 'PLAIN':
      return prefix + password;
    default:
      throw unknownScheme(String(scheme));
  }
}
