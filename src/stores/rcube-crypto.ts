/**
 * Roundcube's `rcube::encrypt()` / `rcube::decrypt()` (program/lib/Roundcube/rcube.php, 1.6), byte-compatible, for
 * the twofactor_gauthenticator plugin's `twofactor_pref_encrypt` blobs:
 *   - key: the raw bytes of the `des_key` string, NUL-padded or truncated to the cipher's key length (what PHP's
 *     openssl_encrypt does with a key of the wrong length);
 *   - cipher: `cipher_method` (default DES-EDE3-CBC), IV of the cipher's IV length from the CSPRNG, PKCS#7;
 *   - stored: base64(IV ‖ ciphertext); AEAD ciphers: base64("##" ‖ 16-byte tag ‖ "##" ‖ IV ‖ ciphertext).
 *
 * Roundcube finds the tag with `preg_match('/^##(.{16})##/', …)`, whose `.` does not match a newline byte: a tag
 * containing 0x0A is never found and the blob never decrypts (about 6 % of GCM encryptions). A CBC blob whose
 * IV happens to match that pattern would likewise be misread. `rcubeEncrypt` therefore draws a new IV until the
 * result is one Roundcube reads back; `rcubeDecrypt` applies the same pattern, so it fails exactly where
 * Roundcube fails.
 */
import { createCipheriv, createDecipheriv } from 'node:crypto';

export const RCUBE_CIPHERS = {
  'des-ede3-cbc': { key: 24, iv: 8, aead: false },
  'aes-128-cbc': { key: 16, iv: 16, aead: false },
  'aes-192-cbc': { key: 24, iv: 16, aead: false },
  'aes-256-cbc': { key: 32, iv: 16, aead: false },
  'aes-128-gcm': { key: 16, iv: 12, aead: true },
  'aes-192-gcm': { key: 24, iv: 12, aead: true },
  'aes-256-gcm': { key: 32, iv: 12, aead: true },
} as const;
export type RcubeCipher = keyof typeof RCUBE_CIPHERS;

export function isRcubeCipher(name: string): name is RcubeCipher {
  return Object.hasOwn(RCUBE_CIPHERS, name.toLowerCase());
}

export interface RcubeCryptoConfig {
  /** Roundcube's `des_key`, as the string in its config (its bytes are the key material). */
  desKey: Buffer;
  /** Roundcube's `cipher_method` (case-insensitive; default DES-EDE3-CBC). */
  cipher: RcubeCipher;
}

const TAG_LEN = 16;

function cipherKey(config: RcubeCryptoConfig): Buffer {
  const len = RCUBE_CIPHERS[config.cipher].key;
  const key = Buffer.alloc(len); // NUL padding
  config.desKey.copy(key, 0, 0, Math.min(len, config.desKey.length));
  return key;
}

/** `/^##(.{16})##/` as PCRE reads it (no /s flag: `.` is any byte but "\n"). */
function tagPrefix(raw: Buffer): Buffer | null {
  if (
    raw.length < 4 + TAG_LEN ||
    raw[0] !== 0x23 ||
    raw[1] !== 0x23 ||
    raw[2 + TAG_LEN] !== 0x23 ||
    raw[3 + TAG_LEN] !== 0x23
  )
    return null;
  const tag = raw.subarray(2, 2 + TAG_LEN);
  return tag.includes(0x0a) ? null : tag;
}

/**
 * `rcube::encrypt($clear)` with base64: returns the stored form. `random` supplies the IV bytes (injectable).
 * The result always decrypts with `rcube::decrypt` (see the module comment).
 */
export function rcubeEncrypt(config: RcubeCryptoConfig, clear: Buffer, random: (size: number) => Buffer): string {
  if (clear.length === 0) throw new RangeError('rcubeEncrypt: empty input (Roundcube returns "" for it)');
  const spec = RCUBE_CIPHERS[config.cipher];
  const key = cipherKey(config);
  for (let attempt = 0; attempt < 64; attempt++) {
    const iv = random(spec.iv);
    const cipher = createCipheriv(config.cipher, key, iv);
    const body = Buffer.concat([iv, cipher.update(clear), cipher.final()]);
    const raw = spec.aead
      ? Buffer.concat([
          Buffer.from('##'),
          (cipher as ReturnType<typeof createCipheriv> & { getAuthTag(): Buffer }).getAuthTag(),
          Buffer.from('##'),
          body,
        ])
      : body;
    const readBack = tagPrefix(raw);
    if (spec.aead ? readBack !== null : readBack === null) return raw.toString('base64');
  }
  throw new Error('rcubeEncrypt: no readable ciphertext after 64 IVs (broken random source?)');
}

/**
 * `rcube::decrypt($cipher)` with base64: the clear bytes, or `null` where Roundcube returns false (not base64,
 * too short, wrong key or cipher, failed padding or tag check).
 */
export function rcubeDecrypt(config: RcubeCryptoConfig, stored: string | Buffer): Buffer | null {
  const text = Buffer.isBuffer(stored) ? stored.toString('latin1') : stored;
  if (text.length === 0) return null;
  // PHP's base64_decode (non-strict, as Roundcube calls it) skips every character outside the alphabet, "="
  // included, and drops an incomplete last group: Node's decoder of the cleaned text does exactly that.
  let raw = Buffer.from(text.replace(/[^A-Za-z0-9+/]/g, ''), 'base64');
  const spec = RCUBE_CIPHERS[config.cipher];
  const tag = tagPrefix(raw);
  if (tag) raw = raw.subarray(4 + TAG_LEN);
  if (raw.length < spec.iv) return null;
  const iv = raw.subarray(0, spec.iv);
  const body = raw.subarray(spec.iv);
  try {
    if (spec.aead) {
      if (!tag) return null; // PHP: openssl_decrypt of a GCM cipher without a tag fails
      const decipher = createDecipheriv(config.cipher as 'aes-256-gcm', cipherKey(config), iv, {
        authTagLength: TAG_LEN,
      });
      decipher.setAuthTag(tag);
      return Buffer.concat([decipher.update(body), decipher.final()]);
    }
    const decipher = createDecipheriv(config.cipher, cipherKey(config), iv);
    return Buffer.concat([decipher.update(body), decipher.final()]);
  } catch {
    return null;
  }
}
