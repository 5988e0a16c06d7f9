/**
 * One-time codes: generation from the OS CSPRNG, strict parsing (no normalising) and keyed hashes for storage
 * (SMS, recovery and temporary codes are stored only as HMAC-SHA256 under a per-database hash key).
 *
 * Recovery and temporary access codes use Crockford's base32 alphabet in lower case,
 * `0123456789abcdefghjkmnpqrstvwxyz`: 32 symbols (5 bits each) without the letters i, l, o and u, so no
 * symbol can be misread as another (0 vs o, 1 vs i/l). Documented canonical forms:
 *   - recovery code: 10 symbols as `xxxxx-xxxxx` (50 bits), e.g. `7k3qd-m9x2a`;
 *   - temporary access code: 16 symbols as `xxxx-xxxx-xxxx-xxxx` (80 bits).
 * Input is parsed strictly: letters are case-insensitive (ASCII only), the dash(es) are required in their
 * place, and nothing else is accepted — no spaces, no missing or extra dashes, no i/l/o/u, no look-alike
 * Unicode. Parsing returns the canonical (lower-case) form, which is what gets hashed.
 */
import { createHmac, randomBytes, randomInt, timingSafeEqual } from 'node:crypto';
import { internalError } from '../errors.js';

export type CodePurpose = 'recovery' | 'sms' | 'temporary';
const PURPOSES: ReadonlySet<string> = new Set<CodePurpose>(['recovery', 'sms', 'temporary']);

/** Crockford base32, lower case. */
export const CODE_ALPHABET = '0123456789abcdefghjkmnpqrstvwxyz';
const BITS_PER_SYMBOL = Math.log2(CODE_ALPHABET.length); // 5

export const RECOVERY_CODE_SYMBOLS = 10;
export const TEMPORARY_CODE_SYMBOLS = 16;
export const RECOVERY_CODE_BITS = RECOVERY_CODE_SYMBOLS * BITS_PER_SYMBOL; // 50
export const TEMPORARY_CODE_BITS = TEMPORARY_CODE_SYMBOLS * BITS_PER_SYMBOL; // 80
export const HASH_KEY_BYTES = 32;

// Explicit ASCII classes, no /i or /u flag: case-insensitive matching with /u would let Unicode look-alikes
// (e.g. KELVIN SIGN U+212A for k, LONG S U+017F for s) through case folding.
const SYM = '[0-9a-hjkmnp-tv-zA-HJKMNP-TV-Z]';
const RECOVERY_RE = new RegExp(`^${SYM}{5}-${SYM}{5}$`);
const TEMPORARY_RE = new RegExp(`^${SYM}{4}-${SYM}{4}-${SYM}{4}-${SYM}{4}$`);

/**
 * HMAC-SHA256 (hex) of a one-time code bound to its purpose and account:
 * HMAC(hashKey, "mail2fa-code\0" + purpose + "\0" + account + "\0" + code). Hash the canonical form of the code.
 */
export function codeHash(hashKey: Buffer, purpose: CodePurpose, account: string, code: string): string {
  if (!Buffer.isBuffer(hashKey) || hashKey.length < HASH_KEY_BYTES)
    throw internalError(`code hash key must be at least ${HASH_KEY_BYTES} bytes`);
  if (!PURPOSES.has(purpose)) throw internalError(`unknown code purpose ${JSON.stringify(purpose)}`);
  if (typeof account !== 'string' || typeof code !== 'string')
    throw internalError('code hash: account and code must be strings');
  // NUL separates the fields: a field containing one would make the encoding ambiguous.
  if (account.includes('\0') || code.includes('\0')) throw internalError('code hash: NUL in account or code');
  return createHmac('sha256', hashKey).update(`mail2fa-code\0${purpose}\0${account}\0${code}`, 'utf8').digest('hex');
}

/** Constant-time comparison of two hashes (hex strings). Different lengths compare unequal. */
export function hashesEqual(first: string, second: string): boolean {
  if (typeof first !== 'string' || typeof second !== 'string') return false;
  const firstBytes = Buffer.from(first, 'utf8');
  const secondBytes = Buffer.from(second, 'utf8');
  if (firstBytes.length !== secondBytes.length) {
    timingSafeEqual(firstBytes, firstBytes); // same work either way; the length of a hash is not secret
    return false;
  }
  return timingSafeEqual(firstBytes, secondBytes);
}

/** `n` uniformly random decimal digits from the CSPRNG (leading zeros included). */
export function randomDigits(count: number): string {
  if (!Number.isSafeInteger(count) || count < 1 || count > 1024)
    throw internalError(`randomDigits: bad length ${count}`);
  let out = '';
  for (let i = 0; i < count; i++) out += String(randomInt(10));
  return out;
}

function randomSymbols(count: number): string {
  let out = '';
  for (let i = 0; i < count; i++) out += CODE_ALPHABET[randomInt(CODE_ALPHABET.length)];
  return out;
}

function group(text: string, size: number): string {
  const parts: string[] = [];
  for (let i = 0; i < text.length; i += size) parts.push(text.slice(i, i + size));
  return parts.join('-');
}

/** A new recovery code in canonical form `xxxxx-xxxxx` (50 bits). */
export function newRecoveryCode(): string {
  return group(randomSymbols(RECOVERY_CODE_SYMBOLS), 5);
}

/** The canonical form of a typed recovery code, or null if it is not exactly one (see the module comment). */
export function parseRecoveryCode(input: string): string | null {
  if (typeof input !== 'string' || !RECOVERY_RE.test(input)) return null;
  return input.toLowerCase();
}

/** A new temporary access code in canonical form `xxxx-xxxx-xxxx-xxxx` (80 bits). */
export function newTemporaryCode(): string {
  return group(randomSymbols(TEMPORARY_CODE_SYMBOLS), 4);
}

/** The canonical form of a typed temporary access code, or null if it is not exactly one. */
export function parseTemporaryCode(input: string): string | null {
  if (typeof input !== 'string' || !TEMPORARY_RE.test(input)) return null;
  return input.toLowerCase();
}

/** A fresh 32-byte random key for hashing codes (stored encrypted under the master key in the database). */
export function newHashKey(): Buffer {
  return randomBytes(HASH_KEY_BYTES);
}
