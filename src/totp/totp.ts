/**
 * TOTP per RFC 6238 (HOTP per RFC 4226 underneath): SHA-1, 6 digits, 30-second steps, window ±1 step —
 * what Microsoft and Google Authenticator scan (PRODUCT.md §3 rules 1-3).
 *
 * Built on otplib 13's functional, synchronous API (`generateSync` / `verifySync`). otplib 13 needs a crypto
 * plugin (HMAC) and a base32 plugin; both are wired explicitly here: the pure-JS noble plugin (synchronous HMAC)
 * and the scure base32 plugin, both shipped with otplib. Secrets themselves come from node:crypto's CSPRNG.
 *
 * otplib 13 pitfalls handled here (§7): `epochTolerance` is in SECONDS (30 = ±1 step) and defaults to 0;
 * `verifySync` THROWS on a malformed token and when `afterTimeStep` is beyond the window, so input is validated
 * first and those cases return `null`.
 */
import { randomBytes } from 'node:crypto';
import { NobleCryptoPlugin, ScureBase32Plugin, createGuardrails, generateSync, verifySync } from 'otplib';

export const TOTP_DIGITS = 6;
export const TOTP_PERIOD = 30;
/** Size of a generated secret: 160 bits, the HMAC-SHA-1 output size recommended by RFC 4226 §4. */
export const TOTP_SECRET_BYTES = 20;

/**
 * Secret sizes the verifier accepts: foreign stores (the Roundcube plugin, mailcow) often hold 80-bit secrets, so
 * 10-64 bytes are read and checked (PRODUCT.md §9); mail2fa itself always generates 20. otplib's default floor is
 * 16 bytes (RFC 4226's minimum), lowered here through its guardrails for reading only.
 */
export const MIN_SECRET_BYTES = 10;
export const MAX_SECRET_BYTES = 64;
/** Below this a secret is flagged `weak` (RFC 4226 §4 asks for at least 128 bits). */
export const STRONG_SECRET_BYTES = 16;

const ALGORITHM = 'sha1' as const;
const crypto = new NobleCryptoPlugin();
const base32 = new ScureBase32Plugin();
const guardrails = createGuardrails({ MIN_SECRET_BYTES, MAX_SECRET_BYTES });

/** RFC 4648 base32 of `bytes`, upper case, no padding. */
export function base32Encode(bytes: Uint8Array): string {
  return base32.encode(bytes, { padding: false });
}

/** 20 random bytes from node:crypto randomBytes, base32 (RFC 4648, no padding): 32 characters. */
export function generateTotpSecret(): string {
  return base32.encode(new Uint8Array(randomBytes(TOTP_SECRET_BYTES)), { padding: false });
}

/**
 * `otpauth://totp/<Issuer>:<label>?secret=…&issuer=…&algorithm=SHA1&digits=6&period=30` (Google's Key URI
 * format). Issuer and label are percent-encoded separately (so a ':' inside either cannot split the label);
 * spaces become %20, never '+', which some authenticator apps would show literally.
 */
export function otpauthUri(o: { issuer: string; label: string; secret: string }): string {
  if (o.issuer === '' || o.label === '' || o.secret === '') {
    throw new TypeError('otpauthUri: issuer, label and secret must be non-empty');
  }
  const path = `${encodeURIComponent(o.issuer)}:${encodeURIComponent(o.label)}`;
  const params = [
    `secret=${encodeURIComponent(o.secret)}`,
    `issuer=${encodeURIComponent(o.issuer)}`,
    'algorithm=SHA1',
    `digits=${TOTP_DIGITS}`,
    `period=${TOTP_PERIOD}`,
  ];
  return `otpauth://totp/${path}?${params.join('&')}`;
}

/**
 * Strict check, no normalisation: exactly `digits` ASCII digits [0-9]. Anything else — surrounding or inner
 * whitespace, signs, exponents, non-ASCII digits, empty, oversized, non-strings — is `false`.
 */
export function isWellFormedCode(token: string, digits: number = TOTP_DIGITS): boolean {
  if (typeof token !== 'string' || !Number.isSafeInteger(digits) || digits < 1) return false;
  if (token.length !== digits) return false;
  for (let i = 0; i < token.length; i++) {
    const c = token.charCodeAt(i);
    if (c < 0x30 || c > 0x39) return false;
  }
  return true;
}

/** The RFC 6238 time step T = floor(unixSeconds / 30) for a time in milliseconds. */
export function timeStep(nowMs: number): number {
  return Math.floor(epochSeconds(nowMs) / TOTP_PERIOD);
}

function epochSeconds(nowMs: number): number {
  if (typeof nowMs !== 'number' || !Number.isFinite(nowMs) || nowMs < 0) {
    throw new RangeError('TOTP time must be a finite, non-negative number of milliseconds');
  }
  return Math.floor(nowMs / 1000);
}

/** The 6-digit code of `secret` (base32) for the time `nowMs` (for tests and the demo). */
export function totpCode(secret: string, nowMs: number): string {
  return generateSync({
    strategy: 'totp',
    secret,
    epoch: epochSeconds(nowMs),
    period: TOTP_PERIOD,
    digits: TOTP_DIGITS,
    algorithm: ALGORITHM,
    crypto,
    base32,
    guardrails,
  });
}

/**
 * Verifies `token` against `secret` (base32) at time `nowMs` with a window of ±1 step.
 * Returns the matched time step (persist it: it is the next call's `afterTimeStep`), or `null` when the code is
 * wrong, malformed, or for a step <= `afterTimeStep` (replay).
 *
 * Throws (never returns null) for caller bugs and bad data that must not be counted as a wrong code: a secret
 * that is not valid base32 or not 10-64 bytes, a bad `nowMs`, or an `afterTimeStep` that is not a non-negative
 * integer. Either way nothing is accepted (fail closed).
 */
export function verifyTotp(o: {
  secret: string;
  token: string;
  nowMs: number;
  afterTimeStep?: number | null;
}): { timeStep: number } | null {
  const epoch = epochSeconds(o.nowMs);
  const after = o.afterTimeStep ?? undefined;
  if (after !== undefined && (!Number.isSafeInteger(after) || after < 0)) {
    throw new RangeError('afterTimeStep must be a non-negative integer');
  }
  if (!isWellFormedCode(o.token, TOTP_DIGITS)) return null;
  // Every step in the window is already used: otplib would throw when afterTimeStep exceeds the window's end.
  if (after !== undefined && after >= Math.floor(epoch / TOTP_PERIOD) + 1) return null;

  let result: ReturnType<typeof verifySync>;
  try {
    result = verifySync({
      strategy: 'totp',
      secret: o.secret,
      token: o.token,
      epoch,
      period: TOTP_PERIOD,
      digits: TOTP_DIGITS,
      algorithm: ALGORITHM,
      epochTolerance: TOTP_PERIOD, // seconds: ±1 step
      ...(after !== undefined ? { afterTimeStep: after } : {}),
      crypto,
      base32,
      guardrails,
    });
  } catch (err) {
    // Token and afterTimeStep problems are input errors: a rejection. Anything else (bad secret, HMAC failure)
    // is a bug or corrupt data and must surface as such.
    const name = err instanceof Error ? err.name : '';
    if (name.startsWith('Token') || name.startsWith('AfterTimeStep')) return null;
    throw err;
  }
  if (!result.valid || !('timeStep' in result) || typeof result.timeStep !== 'number') return null;
  // Belt and braces: the replay rule is ours, not only otplib's.
  if (after !== undefined && result.timeStep <= after) return null;
  return { timeStep: result.timeStep };
}

/** The secret in groups of 4 for manual entry: "ABCD EFGH …". */
export function formatSecretForManualEntry(secret: string): string {
  return (secret.match(/.{1,4}/g) ?? []).join(' ');
}
