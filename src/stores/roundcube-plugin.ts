/**
 * The twofactor_gauthenticator plugin's own value inside Roundcube's preferences, read and
 * written as the plugin does (alexandregz/twofactor_gauthenticator, `__get2FAconfig` / `__set2FAconfig`):
 *   - plaintext: the PHP array `secret` (base32), `activate` (bool), `recovery_codes` (list of strings);
 *   - with `twofactor_pref_encrypt`: a string, `rcube::encrypt(json_encode($data))`; the plugin decrypts only
 *     while the option is on, and a blob that does not decrypt reads as "no 2FA" (it logs "Broken 2FA").
 * Pure functions: no SQL, no I/O.
 */
import { decodeValue, serializeValue, type PhpArray, type PhpValue } from './php-serialize.js';
import { rcubeDecrypt, rcubeEncrypt, type RcubeCryptoConfig } from './rcube-crypto.js';
import { MAX_SECRET_BYTES, MIN_SECRET_BYTES, STRONG_SECRET_BYTES, base32Encode } from '../totp/totp.js';

export const PLUGIN_KEY = 'twofactor_gauthenticator';

/** The plugin's data once decoded (plaintext array or decrypted JSON). */
export interface PluginData {
  secret: string | null;
  activate: boolean;
  /** Always an array in what the plugin can use (a missing list makes its sign-in throw a TypeError). */
  recoveryCodes: string[];
  /** Keys in their stored order (kept when rewriting). */
  order: Array<'secret' | 'activate' | 'recovery_codes'>;
}

export type PluginValue =
  | { form: 'array'; data: PluginData | null; problem?: string }
  | { form: 'encrypted'; blob: string; data: PluginData | null; problem?: string }
  | { form: 'other'; problem: string };

const KNOWN = new Set(['secret', 'activate', 'recovery_codes']);

function latin1(bytes: Buffer): string {
  return bytes.toString('latin1');
}

/** Strictly reads the decoded PHP array (or the decrypted JSON object) into PluginData, or says why not. */
function fromEntries(
  entries: Array<[string, unknown]>,
  kind: 'array' | 'JSON',
): { data: PluginData } | { problem: string } {
  if (entries.length === 0) return { data: { secret: null, activate: false, recoveryCodes: [], order: [] } };
  let secret: string | null = null;
  let activate = false;
  let recoveryCodes: string[] | undefined;
  const order: PluginData['order'] = [];
  for (const [key, value] of entries) {
    if (!KNOWN.has(key)) return { problem: `unexpected key "${key.slice(0, 40)}" in the plugin's ${kind}` };
    order.push(key as PluginData['order'][number]);
    if (key === 'secret') {
      if (value !== null && typeof value !== 'string')
        return { problem: `"secret" is not a string in the plugin's ${kind}` };
      secret = value as string | null;
    } else if (key === 'activate') {
      if (typeof value !== 'boolean') return { problem: `"activate" is not a boolean in the plugin's ${kind}` };
      activate = value;
    } else {
      if (!Array.isArray(value) || !value.every((c) => typeof c === 'string'))
        return { problem: `"recovery_codes" is not a list of strings in the plugin's ${kind}` };
      recoveryCodes = value as string[];
    }
  }
  if (!recoveryCodes) {
    return activate
      ? { problem: '"recovery_codes" is missing: the plugin fails at every sign-in (PHP TypeError)' }
      : { data: { secret, activate, recoveryCodes: [], order } };
  }
  return { data: { secret, activate, recoveryCodes, order } };
}

function phpArrayEntries(array: PhpArray): Array<[string, unknown]> | { problem: string } {
  const out: Array<[string, unknown]> = [];
  for (const [key, value] of array.entries) {
    if (key.kind !== 'string') return { problem: "integer key in the plugin's array" };
    const name = latin1(key.bytes);
    if (name === 'recovery_codes') {
      if (value === null || typeof value !== 'object' || Buffer.isBuffer(value) || value.kind !== 'array')
        return { problem: '"recovery_codes" is not an array' };
      const codes: string[] = [];
      for (const [index, [ck, cv]] of value.entries.entries()) {
        if (ck.kind !== 'int' || ck.value !== BigInt(index))
          return { problem: '"recovery_codes" is not a list (keys are not 0, 1, 2, …)' };
        if (!Buffer.isBuffer(cv)) return { problem: '"recovery_codes" holds a value that is not a string' };
        codes.push(cv.toString('utf8'));
      }
      out.push([name, codes]);
    } else if (Buffer.isBuffer(value)) out.push([name, value.toString('utf8')]);
    else if (value !== null && typeof value === 'object')
      out.push([name, value.kind]); // rejected by fromEntries
    else out.push([name, value]);
  }
  return out;
}

/** Reads the plugin's element (its serialized value bytes). `crypto` decrypts blobs (null when des_key is unknown). */
export function readPluginValue(valueBytes: Buffer, crypto: RcubeCryptoConfig | null): PluginValue {
  let value: PhpValue;
  try {
    value = decodeValue(valueBytes);
  } catch (err) {
    return { form: 'other', problem: `the plugin's value does not parse: ${(err as Error).message}` };
  }
  if (Buffer.isBuffer(value)) {
    const blob = latin1(value);
    if (!crypto)
      return {
        form: 'encrypted',
        blob,
        data: null,
        problem: 'encrypted, and no des_key is configured for this store: cannot be read',
      };
    const clear = rcubeDecrypt(crypto, value);
    if (!clear)
      return {
        form: 'encrypted',
        blob,
        data: null,
        problem: 'encrypted value does not decrypt with the configured des_key and cipher_method',
      };
    let json: unknown;
    try {
      json = JSON.parse(new TextDecoder('utf-8', { fatal: true }).decode(clear));
    } catch {
      return { form: 'encrypted', blob, data: null, problem: 'encrypted value decrypts to something that is not JSON' };
    }
    if (json === null || typeof json !== 'object' || Array.isArray(json)) {
      return { form: 'encrypted', blob, data: null, problem: 'encrypted value decrypts to JSON that is not an object' };
    }
    const result = fromEntries(Object.entries(json), 'JSON');
    return 'data' in result
      ? { form: 'encrypted', blob, data: result.data }
      : { form: 'encrypted', blob, data: null, problem: result.problem };
  }
  if (value !== null && typeof value === 'object' && value.kind === 'array') {
    const entries = phpArrayEntries(value);
    if ('problem' in entries) return { form: 'array', data: null, problem: entries.problem };
    const result = fromEntries(entries, 'array');
    return 'data' in result
      ? { form: 'array', data: result.data }
      : { form: 'array', data: null, problem: result.problem };
  }
  return { form: 'other', problem: "the plugin's value is neither an array nor an encrypted string" };
}

const B32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

export type SecretCheck = { key: Buffer; bytes: number; weak: boolean } | { problem: string };

/**
 * The HMAC key of a plugin secret, as authenticator apps compute it (RFC 4648 base32), provided the plugin's
 * decoder (PHPGangsta_GoogleAuthenticator::_base32Decode: upper-case A-Z2-7, "=" padding of 0/1/3/4/6, groups
 * of 8 with missing characters as zero bits) yields an HMAC-equivalent key — otherwise the plugin and the app
 * disagree and the secret is reported unusable. Never echoes the secret.
 */
export function checkPluginSecret(secret: string | null): SecretCheck {
  if (secret === null || secret === '') return { problem: 'no secret' };
  const match = /^([A-Z2-7]+)(=*)$/.exec(secret);
  if (!match) return { problem: 'secret is not upper-case base32 (A-Z, 2-7) as the plugin reads it' };
  const body = match[1]!;
  const pad = match[2]!.length;
  if (![0, 1, 3, 4, 6].includes(pad)) return { problem: 'secret has invalid "=" padding' };
  let bits = 0;
  let acc = 0;
  const out: number[] = [];
  for (const ch of body) {
    acc = (acc << 5) | B32.indexOf(ch);
    bits += 5;
    if (bits >= 8) {
      bits -= 8;
      out.push((acc >> bits) & 0xff);
      acc &= (1 << bits) - 1;
    }
  }
  if (acc !== 0)
    return { problem: 'secret has non-zero trailing bits: the plugin and authenticator apps compute different codes' };
  const pluginKeyLen = Math.ceil(body.length / 8) * 5;
  if (pluginKeyLen > 64 && body.length % 8 !== 0)
    return { problem: 'secret length makes the plugin use a different key than authenticator apps' };
  const bytes = out.length;
  if (bytes < MIN_SECRET_BYTES || bytes > MAX_SECRET_BYTES) {
    return { problem: `secret is ${bytes} bytes; mail2fa reads ${MIN_SECRET_BYTES}-${MAX_SECRET_BYTES}` };
  }
  return { key: Buffer.from(out), bytes, weak: bytes < STRONG_SECRET_BYTES };
}

/** RFC 4648 base32 without padding (what the plugin's own generator produces, at any length). */
export const base32 = (key: Buffer): string => base32Encode(key);

/** PHP `json_encode()` of a string with default flags ("/" escaped, non-ASCII as \uXXXX). */
function phpJsonString(text: string): string {
  let out = '"';
  for (let index = 0; index < text.length; index++) {
    const code = text.charCodeAt(index);
    const ch = text[index]!;
    if (ch === '"') out += '\\"';
    else if (ch === '\\') out += '\\\\';
    else if (ch === '/') out += '\\/';
    else if (code === 8) out += '\\b';
    else if (code === 12) out += '\\f';
    else if (code === 10) out += '\\n';
    else if (code === 13) out += '\\r';
    else if (code === 9) out += '\\t';
    else if (code < 0x20 || code > 0x7e) out += `\\u${code.toString(16).padStart(4, '0')}`;
    else out += ch;
  }
  return `${out}"`;
}

/** PHP `json_encode($data)` of the plugin's array, keys in `order` (then any missing ones). */
export function pluginJson(data: PluginData): string {
  const order = [
    ...data.order,
    ...(['secret', 'activate', 'recovery_codes'] as const).filter((k) => !data.order.includes(k)),
  ];
  const parts = order.map((key) => {
    if (key === 'secret') return `"secret":${data.secret === null ? 'null' : phpJsonString(data.secret)}`;
    if (key === 'activate') return `"activate":${data.activate ? 'true' : 'false'}`;
    return `"recovery_codes":[${data.recoveryCodes.map(phpJsonString).join(',')}]`;
  });
  return `{${parts.join(',')}}`;
}

/** PHP `serialize()` of the plugin's array, keys in `order` (then any missing ones). */
export function pluginSerialized(data: PluginData): Buffer {
  const order = [
    ...data.order,
    ...(['secret', 'activate', 'recovery_codes'] as const).filter((k) => !data.order.includes(k)),
  ];
  const utf8 = (x: string) => Buffer.from(x, 'utf8');
  const value: PhpArray = {
    kind: 'array',
    entries: order.map((key): [{ kind: 'string'; bytes: Buffer }, PhpValue] => {
      if (key === 'secret')
        return [{ kind: 'string', bytes: utf8('secret') }, data.secret === null ? null : utf8(data.secret)];
      if (key === 'activate') return [{ kind: 'string', bytes: utf8('activate') }, data.activate];
      return [
        { kind: 'string', bytes: utf8('recovery_codes') },
        { kind: 'array', entries: data.recoveryCodes.map((c, i) => [{ kind: 'int', value: BigInt(i) }, utf8(c)]) },
      ];
    }),
  };
  return serializeValue(value);
}

/**
 * The plugin's element value as the plugin's `__set2FAconfig` writes it: encrypted (`s:<n>:"<base64>";`) when
 * the site sets twofactor_pref_encrypt, else the plain array.
 */
export function pluginValueBytes(
  data: PluginData,
  encrypt: { crypto: RcubeCryptoConfig; random: (size: number) => Buffer } | null,
): Buffer {
  if (!encrypt) return pluginSerialized(data);
  const blob = rcubeEncrypt(encrypt.crypto, Buffer.from(pluginJson(data), 'utf8'), encrypt.random);
  return serializeValue(Buffer.from(blob, 'latin1'));
}
