/**
 * AES-256-GCM secret box for the secrets stored at rest (TOTP secrets, phone numbers: never stored in plaintext).
 *
 * Format (compact ASCII, fits a VARCHAR): `v1.<keyId>.<nonce>.<ciphertext+tag>` with nonce (12 random bytes)
 * and ciphertext+tag (16-byte tag) in unpadded base64url. The AES key is derived from the master key with
 * HKDF-SHA256 (info "mail2fa aes-256-gcm v1"), never the master key bytes themselves. The additional
 * authenticated data binds the format version, the key id, and the table, column and account the value
 * belongs to (each length-prefixed), so a ciphertext copied to another row, column or account fails as an
 * integrity error — never as a "wrong code".
 */
import { createCipheriv, createDecipheriv, createSecretKey, hkdfSync, randomBytes, type KeyObject } from 'node:crypto';
import { configError, internalError, type Mail2faError } from '../errors.js';
import { escapeControl } from '../text.js';
import type { MasterKey } from './keys.js';

export interface BoxContext {
  table: string;
  column: string;
  account: string;
}

const VERSION = 'v1';
const AAD_LABEL = 'mail2fa:v1';
const HKDF_INFO = 'mail2fa aes-256-gcm v1';
const NONCE_BYTES = 12;
const TAG_BYTES = 16;
const KEY_ID = /^[0-9a-f]{16}$/;
const B64URL = /^[A-Za-z0-9_-]+$/;
// In /u mode a well-formed surrogate pair is one code point, so this matches only lone surrogates.
const LONE_SURROGATE = /\p{Cs}/u;

// ignoreBOM: a leading U+FEFF is part of the plaintext, not a marker to strip.
const UTF8 = new TextDecoder('utf-8', { fatal: true, ignoreBOM: true });

/** Derived AES keys, cached per master-key buffer (bulk re-encryption derives once). */
const derived = new WeakMap<Buffer, KeyObject>();

function aesKey(key: MasterKey): KeyObject {
  let derivedKey = derived.get(key.bytes);
  if (!derivedKey) {
    const raw = Buffer.from(hkdfSync('sha256', key.bytes, Buffer.alloc(0), HKDF_INFO, 32));
    derivedKey = createSecretKey(raw);
    raw.fill(0);
    derived.set(key.bytes, derivedKey);
  }
  return derivedKey;
}

function wellFormed(value: unknown, what: string): string {
  if (typeof value !== 'string') throw internalError(`secret box: ${what} is not a string`);
  if (LONE_SURROGATE.test(value)) throw internalError(`secret box: ${what} is not well-formed Unicode`);
  return value;
}

/** "mail2fa:v1" ‖ keyId ‖ table ‖ column ‖ account, each as a 4-byte big-endian length and its UTF-8 bytes. */
function aad(keyId: string, ctx: BoxContext): Buffer {
  const parts = [
    AAD_LABEL,
    keyId,
    wellFormed(ctx.table, 'table'),
    wellFormed(ctx.column, 'column'),
    wellFormed(ctx.account, 'account'),
  ].map((s) => Buffer.from(s, 'utf8'));
  const out: Buffer[] = [];
  for (const part of parts) {
    const len = Buffer.alloc(4);
    len.writeUInt32BE(part.length);
    out.push(len, part);
  }
  return Buffer.concat(out);
}

/** Encrypts `plaintext` for one table/column/account with a fresh random nonce. */
export function seal(key: MasterKey, ctx: BoxContext, plaintext: string): string {
  if (!KEY_ID.test(key.id)) throw internalError('secret box: master key has no valid id');
  const nonce = randomBytes(NONCE_BYTES);
  const cipher = createCipheriv('aes-256-gcm', aesKey(key), nonce, { authTagLength: TAG_BYTES });
  cipher.setAAD(aad(key.id, ctx));
  const pt = Buffer.from(wellFormed(plaintext, 'plaintext'), 'utf8');
  const ct = Buffer.concat([cipher.update(pt), cipher.final(), cipher.getAuthTag()]);
  pt.fill(0);
  return `${VERSION}.${key.id}.${nonce.toString('base64url')}.${ct.toString('base64url')}`;
}

interface Parsed {
  keyId: string;
  nonce: Buffer;
  body: Buffer;
}

function b64url(text: string): Buffer | null {
  if (!B64URL.test(text)) return null;
  const bytes = Buffer.from(text, 'base64url');
  return bytes.toString('base64url') === text ? bytes : null; // canonical only: one blob, one encoding
}

function parse(sealed: unknown): Parsed | null {
  if (typeof sealed !== 'string' || sealed.length > 1_000_000) return null;
  const parts = sealed.split('.');
  if (parts.length !== 4) return null;
  const [version, keyId, nonceText, bodyText] = parts as [string, string, string, string];
  if (version !== VERSION || !KEY_ID.test(keyId)) return null;
  const nonce = b64url(nonceText);
  const body = b64url(bodyText);
  if (!nonce || nonce.length !== NONCE_BYTES || !body || body.length < TAG_BYTES) return null;
  return { keyId, nonce, body };
}

function integrity(ctx: BoxContext): Mail2faError {
  const account = escapeControl(String(ctx.account));
  return configError(
    'integrity',
    `stored secret for ${account} failed its integrity check (tampered, copied from another account, or wrong key)`,
    `The value in ${escapeControl(String(ctx.table))}.${escapeControl(String(ctx.column))} cannot be trusted. ` +
      'Check that the key file (MAIL2FA_KEY_FILE / key.file) is the one this database was set up with; ' +
      `if the row was altered or copied, reset the account's 2FA with \`mail2fa recover\`.`,
  );
}

/**
 * Decrypts a value sealed for the same table/column/account. Throws configError 'key_mismatch' when the blob
 * names another key id than the loaded key's, and configError 'integrity' when the blob is malformed,
 * tampered with, or belongs to another table, column or account.
 */
export function open(key: MasterKey, ctx: BoxContext, sealed: string): string {
  const parts = parse(sealed);
  if (!parts) throw integrity(ctx);
  if (parts.keyId !== key.id) {
    throw configError(
      'key_mismatch',
      `stored secret for ${escapeControl(String(ctx.account))} was encrypted with key ${parts.keyId}, the loaded key is ${key.id}`,
      `Load key ${parts.keyId}: it is the key file this database was encrypted with (MAIL2FA_KEY_FILE / key.file), or — while a rotation moves rows to the new key — the previous key, kept next to the key file as <key file>.old. Run \`mail2fa keys check\` to see which rows need which key (docs/keys.md).`,
    );
  }
  const tag = parts.body.subarray(parts.body.length - TAG_BYTES);
  const ct = parts.body.subarray(0, parts.body.length - TAG_BYTES);
  let pt: Buffer;
  try {
    const decipher = createDecipheriv('aes-256-gcm', aesKey(key), parts.nonce, { authTagLength: TAG_BYTES });
    decipher.setAAD(aad(key.id, ctx));
    decipher.setAuthTag(tag);
    pt = Buffer.concat([decipher.update(ct), decipher.final()]);
  } catch (err) {
    if (err instanceof Error && err.name === 'Mail2faError') throw err;
    throw integrity(ctx);
  }
  try {
    return UTF8.decode(pt);
  } catch {
    throw integrity(ctx);
  } finally {
    pt.fill(0);
  }
}

/** The key id a sealed value names, or null if it is not a well-formed sealed value. */
export function sealedKeyId(sealed: string): string | null {
  return parse(sealed)?.keyId ?? null;
}
