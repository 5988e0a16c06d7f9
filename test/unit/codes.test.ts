import { describe, expect, it } from 'vitest';
import { createHmac, randomBytes } from 'node:crypto';
import { Mail2faError } from '../../src/errors.js';
import {
  CODE_ALPHABET,
  RECOVERY_CODE_BITS,
  TEMPORARY_CODE_BITS,
  codeHash,
  hashesEqual,
  newHashKey,
  newRecoveryCode,
  newTemporaryCode,
  parseRecoveryCode,
  parseTemporaryCode,
  randomDigits,
} from '../../src/crypto/one-time-codes.js';

const SYMBOL = /^[0-9a-hjkmnp-tv-z]$/;

describe('alphabet', () => {
  it('is Crockford base32 in lower case: 32 distinct symbols without i, l, o, u', () => {
    expect(CODE_ALPHABET).toBe('0123456789abcdefghjkmnpqrstvwxyz');
    expect(new Set(CODE_ALPHABET).size).toBe(32);
    for (const c of 'ilou') expect(CODE_ALPHABET).not.toContain(c);
  });
});

describe('recovery codes', () => {
  it('look like xxxxx-xxxxx in the alphabet, 50 bits', () => {
    expect(RECOVERY_CODE_BITS).toBe(50);
    for (let i = 0; i < 500; i++) {
      const c = newRecoveryCode();
      expect(c).toMatch(/^[0-9a-hjkmnp-tv-z]{5}-[0-9a-hjkmnp-tv-z]{5}$/);
      expect(parseRecoveryCode(c)).toBe(c);
    }
  });

  it('are distinct and use the whole alphabet', () => {
    const codes = Array.from({ length: 2000 }, newRecoveryCode);
    expect(new Set(codes).size).toBe(codes.length);
    const used = new Set(codes.join('').replace(/-/g, ''));
    expect(used.size).toBe(32);
  });

  it('parse: canonical or upper case (letters are case-insensitive) → canonical lower case', () => {
    expect(parseRecoveryCode('7k3qd-m9x2a')).toBe('7k3qd-m9x2a');
    expect(parseRecoveryCode('7K3QD-M9X2A')).toBe('7k3qd-m9x2a');
    expect(parseRecoveryCode('7K3qd-m9X2a')).toBe('7k3qd-m9x2a');
    expect(parseRecoveryCode('00000-zzzzz')).toBe('00000-zzzzz');
  });

  it.each([
    ['empty', ''],
    ['missing dash', '7k3qdm9x2a'],
    ['dash moved', '7k3q-dm9x2a'],
    ['two dashes', '7k3qd--m9x2a'],
    ['space instead of dash', '7k3qd m9x2a'],
    ['leading space', ' 7k3qd-m9x2a'],
    ['trailing space', '7k3qd-m9x2a '],
    ['trailing newline', '7k3qd-m9x2a\n'],
    ['inner space', '7k3 qd-m9x2a'],
    ['too short', '7k3qd-m9x2'],
    ['too long', '7k3qd-m9x2ab'],
    ['letter i', '7k3qi-m9x2a'],
    ['letter l', '7k3ql-m9x2a'],
    ['letter o', '7k3qo-m9x2a'],
    ['letter u', '7k3qu-m9x2a'],
    ['letter O', '7K3QO-M9X2A'],
    ['letter I', '7K3QI-M9X2A'],
    ['Kelvin sign for k', '7\u212a3qd-m9x2a'],
    ['long s for s', '7k3q\u017f-m9x2a'],
    ['fullwidth digit', '\uff17k3qd-m9x2a'],
    ['Arabic-Indic digit', '\u0667k3qd-m9x2a'],
    ['en dash', '7k3qd\u2013m9x2a'],
    ['non-breaking hyphen', '7k3qd\u2011m9x2a'],
    ['underscore', '7k3qd_m9x2a'],
    ['zero-width space', '7k3qd-\u200bm9x2a'],
    ['Cyrillic a', '7k3qd-m9x2\u0430'],
    ['temporary-code shape', '7k3q-dm9x-2abc-defg'],
  ])('parse rejects %s', (_n, input) => {
    expect(parseRecoveryCode(input)).toBeNull();
  });

  it('parse rejects non-strings', () => {
    expect(parseRecoveryCode(undefined as unknown as string)).toBeNull();
    expect(parseRecoveryCode(12345 as unknown as string)).toBeNull();
  });
});

describe('temporary access codes', () => {
  it('look like xxxx-xxxx-xxxx-xxxx, 80 bits (≥ 64)', () => {
    expect(TEMPORARY_CODE_BITS).toBe(80);
    expect(TEMPORARY_CODE_BITS).toBeGreaterThanOrEqual(64);
    for (let i = 0; i < 500; i++) {
      const c = newTemporaryCode();
      expect(c).toMatch(/^([0-9a-hjkmnp-tv-z]{4}-){3}[0-9a-hjkmnp-tv-z]{4}$/);
      // entropy actually present: 16 symbols of a 32-symbol alphabet
      const symbols = c.replace(/-/g, '');
      expect(symbols.length * Math.log2(CODE_ALPHABET.length)).toBeGreaterThanOrEqual(64);
      for (const s of symbols) expect(s).toMatch(SYMBOL);
      expect(parseTemporaryCode(c)).toBe(c);
    }
    const codes = Array.from({ length: 2000 }, newTemporaryCode);
    expect(new Set(codes).size).toBe(codes.length);
  });

  it('parse: canonical or upper case → canonical', () => {
    expect(parseTemporaryCode('abcd-efgh-jkmn-pqrs')).toBe('abcd-efgh-jkmn-pqrs');
    expect(parseTemporaryCode('ABCD-EFGH-JKMN-PQRS')).toBe('abcd-efgh-jkmn-pqrs');
  });

  it.each([
    ['no dashes', 'abcdefghjkmnpqrs'],
    ['spaces', 'abcd efgh jkmn pqrs'],
    ['one dash missing', 'abcd-efghjkmn-pqrs'],
    ['too short', 'abcd-efgh-jkmn-pqr'],
    ['too long', 'abcd-efgh-jkmn-pqrst'],
    ['ambiguous letter', 'abcd-efgh-ijkm-npqr'],
    ['letter u', 'abcd-efgh-jkmn-pqru'],
    ['trailing newline', 'abcd-efgh-jkmn-pqrs\n'],
    ['unicode look-alike', 'abcd-efgh-jkmn-pq\u0433s'],
    ['recovery-code shape', '7k3qd-m9x2a'],
  ])('parse rejects %s', (_n, input) => {
    expect(parseTemporaryCode(input)).toBeNull();
  });
});

describe('randomDigits', () => {
  it('returns exactly n ASCII digits', () => {
    for (const n of [1, 6, 8, 10, 64]) {
      const d = randomDigits(n);
      expect(d).toHaveLength(n);
      expect(d).toMatch(/^[0-9]+$/);
    }
  });

  it('keeps leading zeros (it is a string, not a number)', () => {
    let sawLeadingZero = false;
    for (let i = 0; i < 2000 && !sawLeadingZero; i++) sawLeadingZero = randomDigits(6).startsWith('0');
    expect(sawLeadingZero).toBe(true);
  });

  it('is roughly uniform over many samples', () => {
    const counts = new Array<number>(10).fill(0);
    const samples = 20_000;
    for (let i = 0; i < samples; i++) for (const ch of randomDigits(6)) counts[Number(ch)]!++;
    const total = samples * 6; // 120,000 digits, 12,000 expected per digit, σ ≈ 104
    let chi2 = 0;
    for (const c of counts) {
      expect(Math.abs(c - total / 10)).toBeLessThan(700); // > 6σ: never flaky
      chi2 += (c - total / 10) ** 2 / (total / 10);
    }
    expect(chi2).toBeLessThan(40); // 9 degrees of freedom; p < 1e-5
    // positions are independent of each other: no digit pinned at any position
    const firsts = new Set(Array.from({ length: 500 }, () => randomDigits(6)[0]));
    expect(firsts.size).toBe(10);
    // 6-digit codes are mostly distinct
    const codes = new Set(Array.from({ length: 1000 }, () => randomDigits(6)));
    expect(codes.size).toBeGreaterThan(990);
  });

  it('refuses a bad length', () => {
    for (const n of [0, -1, 1.5, NaN, Infinity]) expect(() => randomDigits(n)).toThrow(Mail2faError);
  });
});

describe('codeHash / hashesEqual', () => {
  const hk = newHashKey();

  it('is HMAC-SHA256 over "mail2fa-code\\0" + purpose + "\\0" + account + "\\0" + code, hex', () => {
    const expected = createHmac('sha256', hk)
      .update('mail2fa-code\0recovery\0alice@example.com\0abcde-fghjk')
      .digest('hex');
    expect(codeHash(hk, 'recovery', 'alice@example.com', 'abcde-fghjk')).toBe(expected);
    expect(expected).toMatch(/^[0-9a-f]{64}$/);
  });

  it('is deterministic and differs per purpose, account, code and key', () => {
    const base = codeHash(hk, 'sms', 'alice@example.com', '123456');
    expect(codeHash(hk, 'sms', 'alice@example.com', '123456')).toBe(base);
    const variants = [
      codeHash(hk, 'recovery', 'alice@example.com', '123456'),
      codeHash(hk, 'temporary', 'alice@example.com', '123456'),
      codeHash(hk, 'sms', 'bob@example.com', '123456'),
      codeHash(hk, 'sms', 'Alice@example.com', '123456'),
      codeHash(hk, 'sms', 'alice@example.com', '123457'),
      codeHash(newHashKey(), 'sms', 'alice@example.com', '123456'),
    ];
    expect(new Set([base, ...variants]).size).toBe(variants.length + 1);
    // the hash does not contain the code or account
    expect(base).not.toContain('123456');
  });

  it('refuses a missing/short key, unknown purpose and NUL in fields (programming errors)', () => {
    expect(() => codeHash(Buffer.alloc(0), 'sms', 'a@b', '1')).toThrow(Mail2faError);
    expect(() => codeHash(randomBytes(16), 'sms', 'a@b', '1')).toThrow(Mail2faError);
    expect(() => codeHash(hk, 'totp' as 'sms', 'a@b', '1')).toThrow(Mail2faError);
    expect(() => codeHash(hk, 'sms', 'a@b\0', '1')).toThrow(Mail2faError);
    expect(() => codeHash(hk, 'sms', 'a@b', '1\0')).toThrow(Mail2faError);
  });

  it('hashesEqual compares exactly', () => {
    const a = codeHash(hk, 'sms', 'a@b', '111111');
    const b = codeHash(hk, 'sms', 'a@b', '222222');
    expect(hashesEqual(a, a)).toBe(true);
    expect(hashesEqual(a, String(a))).toBe(true);
    expect(hashesEqual(a, b)).toBe(false);
    expect(hashesEqual(a, a.slice(0, 63))).toBe(false);
    expect(hashesEqual(a, a + '0')).toBe(false);
    expect(hashesEqual(a, a.toUpperCase())).toBe(false);
    expect(hashesEqual('', '')).toBe(true);
    expect(hashesEqual(a, null as unknown as string)).toBe(false);
  });

  it('newHashKey returns 32 fresh random bytes', () => {
    const a = newHashKey();
    const b = newHashKey();
    expect(a.length).toBe(32);
    expect(a.equals(b)).toBe(false);
  });
});
