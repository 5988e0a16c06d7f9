/**
 * The master key: 32 random bytes that encrypt the secrets stored at rest and the key that hashes
 * one-time codes. It comes from `MAIL2FA_KEY` (env) or a key file, never from argv (visible to every user in ps).
 *
 * Key file format: exactly one line holding the 32 bytes as standard base64 (44 characters, with its `=`
 * padding) or as hex (64 characters), optionally followed by one newline (LF or CRLF). Nothing else: no
 * spaces, comments or blank lines. The file must be a regular file (symlinks to one are followed) that grants
 * nothing to group or others (mode 0600 or 0400), as ssh requires for private keys.
 *
 * Every refusal is a configError (exit 78) with its own code: key_missing, key_empty, key_malformed,
 * key_length, key_permissions, key_not_file, key_unreadable (and key_exists / key_create_failed when writing).
 * No message, hint or inspected object ever contains key material.
 */
import {
  closeSync,
  constants as fsc,
  fchmodSync,
  fstatSync,
  fsyncSync,
  linkSync,
  lstatSync,
  mkdirSync,
  openSync,
  readSync,
  renameSync,
  unlinkSync,
  writeSync,
} from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import { basename, dirname, join } from 'node:path';
import { configError, Mail2faError } from '../errors.js';
import { escapeControl } from '../text.js';

export interface MasterKey {
  /** 16 hex chars: the first 8 bytes of SHA-256("mail2fa-key-id\0" || key). Not secret. */
  id: string;
  /** The 32 key bytes. Secret. */
  bytes: Buffer;
  /** Where the key came from (for `doctor`); absent for keys built in memory. */
  source?: 'env' | 'file' | 'created';
}

export const KEY_BYTES = 32;
/** Largest key file we read: a key line is at most 66 bytes; anything much bigger is not a key file. */
const MAX_KEY_FILE_BYTES = 4096;

const INSPECT = Symbol.for('nodejs.util.inspect.custom');

/** The key id of some key bytes (16 hex chars). */
export function keyIdOf(bytes: Buffer): string {
  return createHash('sha256').update('mail2fa-key-id\0', 'utf8').update(bytes).digest().subarray(0, 8).toString('hex');
}

/**
 * Wraps 32 key bytes as a MasterKey (copied into a buffer of their own). The object prints as
 * `MasterKey { id }` in console.log/util.inspect and serialises as `{"id":…}` in JSON: the bytes never leak
 * through logging.
 */
export function masterKeyFromBytes(bytes: Buffer, source?: MasterKey['source']): MasterKey {
  if (!Buffer.isBuffer(bytes) || bytes.length !== KEY_BYTES) {
    throw configError(
      'key_length',
      `a master key must be exactly ${KEY_BYTES} bytes (got ${Buffer.isBuffer(bytes) ? bytes.length : 'no buffer'})`,
    );
  }
  const own = Buffer.alloc(KEY_BYTES);
  bytes.copy(own);
  const key: MasterKey = { id: keyIdOf(own), bytes: own };
  if (source) key.source = source;
  Object.defineProperty(key, 'toJSON', { value: () => ({ id: key.id }), enumerable: false });
  Object.defineProperty(key, INSPECT, { value: () => `MasterKey { id: '${key.id}' }`, enumerable: false });
  return key;
}

/* ------------------------------------------------------------------------------------------------------ */

const CREATE_HINT = (file: string) =>
  `To create a new key: (umask 077; openssl rand -base64 32 > ${shellQuote(file)}). ` +
  'If this database already holds 2FA data, restore the original key file instead: a new key cannot read it.';

function show(file: string): string {
  return escapeControl(file);
}

function shellQuote(text: string): string {
  if (/^[A-Za-z0-9_./@%+=:,-]+$/.test(text)) return text;
  return `'${escapeControl(text).replace(/'/g, `'\\''`)}'`;
}

type Where = { kind: 'env' } | { kind: 'file'; file: string };

function describe(where: Where): string {
  return where.kind === 'env' ? 'MAIL2FA_KEY' : `key file ${show(where.file)}`;
}

const FORMAT = `one line holding ${KEY_BYTES} bytes as base64 (44 characters) or hex (64 characters), and nothing else`;

/**
 * Parses the text of a key (file content or env value). Throws key_empty / key_malformed / key_length; the
 * messages describe the problem (line count, kind of character, byte count) but never the content.
 */
function parseKeyText(raw: Buffer, where: Where): Buffer {
  let end = raw.length;
  if (end > 0 && raw[end - 1] === 0x0a) {
    end--;
    if (end > 0 && raw[end - 1] === 0x0d) end--;
  }
  const body = raw.subarray(0, end);
  const what = describe(where);
  const hint =
    where.kind === 'env'
      ? `MAIL2FA_KEY must hold ${FORMAT}. Prefer a key file (MAIL2FA_KEY_FILE) with mode 0600.`
      : `A key file holds ${FORMAT}. ${CREATE_HINT(where.file)}`;

  if (body.length === 0 || body.every((b) => b === 0x20 || b === 0x09 || b === 0x0a || b === 0x0d)) {
    throw configError('key_empty', `${what} is empty`, hint);
  }
  let problem: string | undefined;
  if (body.some((b) => b >= 0x80)) problem = 'it contains non-ASCII characters';
  else if (body.includes(0x0a) || body.includes(0x0d)) problem = 'it has more than one line';
  else if (body.some((b) => b === 0x20 || b === 0x09)) problem = 'it contains spaces or tabs';
  else if (body.some((b) => b < 0x20 || b === 0x7f)) problem = 'it contains control characters';
  if (problem) throw configError('key_malformed', `${what} is malformed: ${problem}`, hint);

  const text = body.toString('latin1');
  let bytes: Buffer;
  if (/^[0-9a-fA-F]+$/.test(text)) {
    if (text.length % 2 !== 0) {
      throw configError(
        'key_malformed',
        `${what} is malformed: it looks like hex but has an odd number of digits (${text.length})`,
        hint,
      );
    }
    bytes = Buffer.from(text, 'hex');
  } else if (/^[A-Za-z0-9+/]+={0,2}$/.test(text) && text.length % 4 === 0) {
    bytes = Buffer.from(text, 'base64');
    if (bytes.toString('base64') !== text) {
      bytes.fill(0);
      throw configError('key_malformed', `${what} is malformed: it is not canonical base64`, hint);
    }
  } else {
    const why = /^[A-Za-z0-9+/_=-]+$/.test(text)
      ? 'it is neither standard base64 with its "=" padding nor hex'
      : 'it contains characters that are neither base64 nor hex';
    throw configError('key_malformed', `${what} is malformed: ${why}`, hint);
  }
  if (bytes.length !== KEY_BYTES) {
    const length = bytes.length;
    bytes.fill(0);
    throw configError(
      'key_length',
      `${what} holds ${length} byte${length === 1 ? '' : 's'}; a master key must be exactly ${KEY_BYTES} bytes`,
      hint,
    );
  }
  return bytes;
}

function errnoOf(err: unknown): string | undefined {
  return typeof err === 'object' && err !== null && 'code' in err && typeof (err as { code: unknown }).code === 'string'
    ? (err as { code: string }).code
    : undefined;
}

function modeString(mode: number): string {
  return (mode & 0o7777).toString(8).padStart(4, '0');
}

/** Reads and checks a key file. All checks run on the opened descriptor (no stat/open race). */
function readKeyFile(file: string): Buffer {
  const where: Where = { kind: 'file', file };
  let fd: number;
  try {
    // O_NONBLOCK: opening a FIFO must not hang; it is refused below as "not a regular file".
    fd = openSync(file, fsc.O_RDONLY | fsc.O_NONBLOCK | fsc.O_NOCTTY);
  } catch (err) {
    const code = errnoOf(err);
    if (code === 'ENOENT') {
      throw configError(
        'key_missing',
        `key file ${show(file)} does not exist`,
        `Check MAIL2FA_KEY_FILE / key.file in the config. ${CREATE_HINT(file)}`,
      );
    }
    if (code === 'EACCES' || code === 'EPERM') {
      throw configError(
        'key_unreadable',
        `key file ${show(file)} cannot be read: permission denied`,
        'Run mail2fa as the user that owns the key file, or fix its owner (the mode must stay 0600).',
      );
    }
    if (code === 'ENXIO') {
      throw configError(
        'key_not_file',
        `key file ${show(file)} is not a regular file`,
        'Point MAIL2FA_KEY_FILE / key.file at a regular file holding the key.',
      );
    }
    throw configError(
      'key_unreadable',
      `key file ${show(file)} cannot be read (${code ?? 'unknown error'})`,
      'Check MAIL2FA_KEY_FILE / key.file in the config.',
    );
  }
  try {
    const st = fstatSync(fd);
    if (!st.isFile()) {
      const kind = st.isDirectory() ? 'a directory' : 'not a regular file';
      throw configError(
        'key_not_file',
        `key file ${show(file)} is ${kind}`,
        'Point MAIL2FA_KEY_FILE / key.file at a regular file holding the key.',
      );
    }
    if ((st.mode & 0o077) !== 0) {
      throw configError(
        'key_permissions',
        `key file ${show(file)} is accessible by group or others (mode ${modeString(st.mode)}); refusing to use it`,
        `Run: chmod 600 ${shellQuote(file)}`,
      );
    }
    if (st.size > MAX_KEY_FILE_BYTES) {
      throw configError(
        'key_malformed',
        `key file ${show(file)} is malformed: it is far too large (${st.size} bytes) to be a key file`,
        `A key file holds ${FORMAT}.`,
      );
    }
    const buf = Buffer.alloc(MAX_KEY_FILE_BYTES + 1);
    let len = 0;
    try {
      for (;;) {
        const bytesRead = readSync(fd, buf, len, buf.length - len, null);
        if (bytesRead === 0) break;
        len += bytesRead;
        if (len >= buf.length) break;
      }
    } catch (err) {
      buf.fill(0);
      throw configError(
        'key_unreadable',
        `key file ${show(file)} cannot be read (${errnoOf(err) ?? 'unknown error'})`,
        'Check MAIL2FA_KEY_FILE / key.file in the config.',
      );
    }
    try {
      if (len > MAX_KEY_FILE_BYTES) {
        throw configError(
          'key_malformed',
          `key file ${show(file)} is malformed: it is far too large to be a key file`,
          `A key file holds ${FORMAT}.`,
        );
      }
      return parseKeyText(buf.subarray(0, len), where);
    } finally {
      buf.fill(0);
    }
  } finally {
    closeSync(fd);
  }
}

/**
 * Loads the master key: env MAIL2FA_KEY wins if set (even to an empty string, which is refused as key_empty,
 * rather than silently falling back to a file); else the key file (path already resolved by the caller from
 * config/env). `env` defaults to process.env.
 */
export function loadMasterKey(options: { file?: string; env?: NodeJS.ProcessEnv }): MasterKey {
  const env = options.env ?? process.env;
  const fromEnv = env.MAIL2FA_KEY;
  if (fromEnv !== undefined) {
    const raw = Buffer.from(fromEnv, 'utf8');
    try {
      return masterKeyFromBytes(parseKeyText(raw, { kind: 'env' }), 'env');
    } finally {
      raw.fill(0);
    }
  }
  if (options.file) {
    const bytes = readKeyFile(options.file);
    try {
      return masterKeyFromBytes(bytes, 'file');
    } finally {
      bytes.fill(0);
    }
  }
  throw configError(
    'key_missing',
    'no master key configured',
    'Set MAIL2FA_KEY_FILE (or key.file in the config file) to the key file, or MAIL2FA_KEY to the key itself (32 bytes, base64 or hex). The key is never read from the command line.',
  );
}

/**
 * Creates `file` holding a fresh random key, never overwriting anything. The key is written to a temporary
 * file created with O_EXCL and mode 0600 in the same directory and then hard-linked into place, so another
 * process never sees a half-written key file and an existing file is never replaced. Returns null if `file`
 * already exists.
 */
function createKeyFile(file: string): MasterKey | null {
  const dir = dirname(file);
  const failed = (err: unknown): Mail2faError =>
    err instanceof Mail2faError
      ? err
      : configError(
          'key_create_failed',
          `cannot create key file ${show(file)} (${errnoOf(err) ?? String(err)})`,
          'Set MAIL2FA_KEY_FILE (or key.file in the config) to a writable location.',
        );
  try {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  } catch (e) {
    throw failed(e);
  }
  const bytes = randomBytes(KEY_BYTES);
  const line = Buffer.from(bytes.toString('base64') + '\n', 'latin1');
  const writeExclusive = (path: string): void => writeNewPrivateFile(path, line);
  const tmp = join(dir, `.${basename(file)}.${process.pid}.${randomBytes(6).toString('hex')}.tmp`);
  try {
    try {
      writeExclusive(tmp);
    } catch (e) {
      throw failed(e);
    }
    try {
      linkSync(tmp, file);
    } catch (err) {
      const code = errnoOf(err);
      if (code === 'EEXIST') return null;
      if (code === 'EPERM' || code === 'ENOTSUP' || code === 'EOPNOTSUPP' || code === 'EMLINK' || code === 'ENOSYS') {
        // A file system without hard links: create the file itself, still exclusively and 0600.
        try {
          writeExclusive(file);
        } catch (e2) {
          if (errnoOf(e2) === 'EEXIST') return null;
          throw failed(e2);
        }
      } else {
        throw failed(err);
      }
    }
    syncDirectory(dir);
    return masterKeyFromBytes(bytes, 'created');
  } finally {
    try {
      unlinkSync(tmp);
    } catch {
      /* not created, or already gone */
    }
    line.fill(0);
    bytes.fill(0);
  }
}

/**
 * Writes `content` to a file that must not exist yet (O_EXCL, no symlink followed), mode 0600 whatever the umask,
 * and flushes it to disk before closing.
 */
function writeNewPrivateFile(path: string, content: Buffer): void {
  const fd = openSync(path, fsc.O_WRONLY | fsc.O_CREAT | fsc.O_EXCL | fsc.O_NOFOLLOW, 0o600);
  try {
    fchmodSync(fd, 0o600);
    let off = 0;
    while (off < content.length) off += writeSync(fd, content, off, content.length - off);
    fsyncSync(fd);
  } finally {
    closeSync(fd);
  }
}

/** Flushes a directory's entries (a new or renamed file in it) to disk; best effort, where the platform allows. */
function syncDirectory(dir: string): void {
  try {
    const dfd = openSync(dir, fsc.O_RDONLY);
    try {
      fsyncSync(dfd);
    } finally {
      closeSync(dfd);
    }
  } catch {
    /* best effort */
  }
}

function exists(file: string): boolean {
  try {
    lstatSync(file);
    return true;
  } catch (err) {
    const code = errnoOf(err);
    if (code === 'ENOENT' || code === 'ENOTDIR') return false; // creating it reports why it cannot be
    return true; // let the loader report the real problem (EACCES, ENOTDIR, …)
  }
}

/**
 * For the embedded default: if `file` does not exist, creates it (mode 0600, directory 0700 if missing) with
 * 32 random bytes as base64 and returns { key, created: true } — the caller says so. Otherwise loads it with
 * the same checks as loadMasterKey. Safe against two processes doing this at once: exactly one creates it.
 */
export function loadOrCreateKeyFile(file: string): { key: MasterKey; created: boolean } {
  if (!exists(file)) {
    const key = createKeyFile(file);
    if (key) return { key, created: true };
  }
  return { key: loadMasterKey({ file, env: {} }), created: false };
}

/**
 * Writes a new key file (mode 0600, directory 0700 if missing) holding 32 random bytes as base64, for
 * `keys generate` / `keys rotate --new-key-file`. Refuses (key_exists) to overwrite an existing file.
 */
export function writeNewKeyFile(file: string): MasterKey {
  const refuse = () =>
    configError(
      'key_exists',
      `key file ${show(file)} already exists; refusing to overwrite it`,
      'Choose a path that does not exist yet; an existing key may still be needed to read the database.',
    );
  if (exists(file)) throw refuse();
  const key = createKeyFile(file);
  if (!key) throw refuse();
  return key;
}

/**
 * The keys a process holds: `current` seals (and opens); `previous`, the key a `keys rotate` replaced (kept as
 * `<key file>.old` next to the key file), only opens values still sealed under it while the rotation re-encrypts
 * them. See docs/keys.md.
 */
export interface KeyRing {
  current: MasterKey;
  previous?: MasterKey;
  /** The key file `current` came from (absent for MAIL2FA_KEY). */
  file?: string;
}

/** Where the key a rotation replaced is kept: next to the key file. */
export function previousKeyFile(file: string): string {
  return `${file}.old`;
}

/** The previous key for a key file, if `<file>.old` exists (checked like every key file). */
export function loadPreviousKey(file: string): MasterKey | undefined {
  const old = previousKeyFile(file);
  if (!exists(old)) return undefined;
  return loadMasterKey({ file: old, env: {} });
}

/**
 * Puts the key of `newFile` in place of the key file `file`, atomically (a temporary copy renamed over it: a
 * reader sees the old key or the new one, never a partial file), after keeping the replaced key as
 * `<file>.old` (an older `<file>.old` is kept too, renamed `<file>.old.<its key id>`: no key is ever deleted).
 * `newFile` is left where it is.
 */
export function installKeyFile(file: string, newFile: string): { previousFile: string } {
  const current = loadMasterKey({ file, env: {} });
  const next = loadMasterKey({ file: newFile, env: {} });
  const old = previousKeyFile(file);
  const fail = (err: unknown) =>
    configError(
      'key_install_failed',
      `cannot install the new key as ${show(file)} (${errnoOf(err) ?? String(err)})`,
      "Check that the key file's directory is writable by this user; nothing was changed in the database.",
    );
  try {
    if (exists(old)) {
      const older = loadMasterKey({ file: old, env: {} });
      if (older.id !== current.id) renameSync(old, `${old}.${older.id}`);
    }
    const dir = dirname(file);
    const keepTmp = join(dir, `.${basename(file)}.${process.pid}.${randomBytes(6).toString('hex')}.old`);
    linkSync(file, keepTmp);
    renameSync(keepTmp, old);
    const tmp = join(dir, `.${basename(file)}.${process.pid}.${randomBytes(6).toString('hex')}.new`);
    const line = Buffer.from(next.bytes.toString('base64') + '\n', 'latin1');
    try {
      writeNewPrivateFile(tmp, line);
      renameSync(tmp, file);
    } finally {
      line.fill(0);
      try {
        unlinkSync(tmp);
      } catch {
        /* renamed into place */
      }
    }
    syncDirectory(dir);
  } catch (e) {
    throw e instanceof Mail2faError ? e : fail(e);
  } finally {
    current.bytes.fill(0);
    next.bytes.fill(0);
  }
  return { previousFile: old };
}
