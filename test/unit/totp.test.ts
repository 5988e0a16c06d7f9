import { describe, expect, it } from 'vitest';
import { NobleCryptoPlugin, ScureBase32Plugin, generateSync } from 'otplib';
import {
  TOTP_DIGITS,
  TOTP_PERIOD,
  formatSecretForManualEntry,
  generateTotpSecret,
  isWellFormedCode,
  otpauthUri,
  timeStep,
  totpAcceptsSecret,
  totpCode,
  verifyTotp,
} from '../../src/totp/totp.js';

const crypto = new NobleCryptoPlugin();
const base32 = new ScureBase32Plugin();
const ascii = (s: string): Uint8Array => new TextEncoder().encode(s);

/** RFC 4226 Appendix D / RFC 6238 Appendix B SHA-1 seed: ASCII "12345678901234567890" (20 bytes). */
const RFC_SEED = '12345678901234567890';
/** The same seed in base32, as an authenticator app would receive it. */
const RFC_SEED_B32 = 'GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ';

describe('RFC 4226 Appendix D (HOTP) through otplib', () => {
  const expected = ['755224', '287082', '359152', '969429', '338314', '254676', '287922', '162583', '399871', '520489'];
  for (const [counter, code] of expected.entries()) {
    it(`counter ${counter} → ${code}`, () => {
      const got = generateSync({
        strategy: 'hotp',
        secret: ascii(RFC_SEED),
        counter,
        digits: 6,
        algorithm: 'sha1',
        crypto,
        base32,
      });
      expect(got).toBe(code);
    });
  }
});

describe('RFC 6238 Appendix B (TOTP) through otplib', () => {
  // [unix time, SHA-1, SHA-256, SHA-512] — 8 digits, 30 s, T0 = 0.
  const vectors: Array<[number, string, string, string]> = [
    [59, '94287082', '46119246', '90693936'],
    [1111111109, '07081804', '68084774', '25091201'],
    [1111111111, '14050471', '67062674', '99943326'],
    [1234567890, '89005924', '91819424', '93441116'],
    [2000000000, '69279037', '90698825', '38618901'],
    [20000000000, '65353130', '77737706', '47863826'],
  ];
  const seeds = {
    sha1: ascii(RFC_SEED),
    sha256: ascii('12345678901234567890123456789012'),
    sha512: ascii('1234567890123456789012345678901234567890123456789012345678901234'),
  };
  for (const [time, sha1, sha256, sha512] of vectors) {
    it(`T=${time}: SHA-1 ${sha1}`, () => {
      const gen = (algorithm: 'sha1' | 'sha256' | 'sha512') =>
        generateSync({
          strategy: 'totp',
          secret: seeds[algorithm],
          epoch: time,
          period: 30,
          digits: 8,
          algorithm,
          crypto,
          base32,
        });
      expect(gen('sha1')).toBe(sha1);
      expect(gen('sha256')).toBe(sha256);
      expect(gen('sha512')).toBe(sha512);
    });

    it(`T=${time}: our totpCode/verifyTotp (6 digits = last 6 of the 8-digit SHA-1 vector)`, () => {
      const six = sha1.slice(-6);
      expect(totpCode(RFC_SEED_B32, time * 1000)).toBe(six);
      expect(verifyTotp({ secret: RFC_SEED_B32, token: six, nowMs: time * 1000 })).toEqual({
        timeStep: Math.floor(time / 30),
      });
    });
  }
});

describe('constants and helpers', () => {
  it('uses 6 digits and 30 s', () => {
    expect(TOTP_DIGITS).toBe(6);
    expect(TOTP_PERIOD).toBe(30);
  });

  it('timeStep is floor(seconds / 30)', () => {
    expect(timeStep(0)).toBe(0);
    expect(timeStep(29_999)).toBe(0);
    expect(timeStep(30_000)).toBe(1);
    expect(timeStep(59_000)).toBe(1);
    expect(timeStep(1_111_111_109_000)).toBe(37037036);
  });

  it('formats the secret in groups of 4', () => {
    expect(formatSecretForManualEntry(RFC_SEED_B32)).toBe('GEZD GNBV GY3T QOJQ GEZD GNBV GY3T QOJQ');
    expect(formatSecretForManualEntry('ABCDEF')).toBe('ABCD EF');
    expect(formatSecretForManualEntry('')).toBe('');
  });
});

describe('generateTotpSecret', () => {
  it('is 20 random bytes in unpadded RFC 4648 base32', () => {
    const secret = generateTotpSecret();
    expect(secret).toMatch(/^[A-Z2-7]{32}$/);
    expect(base32.decode(secret)).toHaveLength(20);
    expect(base32.encode(base32.decode(secret), { padding: false })).toBe(secret);
  });

  it('differs between calls', () => {
    const secrets = new Set(Array.from({ length: 200 }, () => generateTotpSecret()));
    expect(secrets.size).toBe(200);
  });

  it('works end to end: code now verifies now', () => {
    const secret = generateTotpSecret();
    const now = Date.now();
    const code = totpCode(secret, now);
    expect(isWellFormedCode(code)).toBe(true);
    expect(verifyTotp({ secret, token: code, nowMs: now })).toEqual({ timeStep: timeStep(now) });
  });
});

describe('verifyTotp window (±1 step)', () => {
  // Mid-step, at the very start and at the very end of a step: the window is always exactly 3 steps.
  const start = 56_666_667 * 30_000; // 1_700_000_010_000, the first millisecond of a step
  const nows = [start, start + 15_000, start + 29_999];
  for (const now of nows) {
    const step = timeStep(now);
    const codeAt = (offset: number) => totpCode(RFC_SEED_B32, (step + offset) * 30_000 + 1_000);

    it(`at ${now}: accepts the current code and codes one step old or new`, () => {
      for (const offset of [-1, 0, 1]) {
        expect(verifyTotp({ secret: RFC_SEED_B32, token: codeAt(offset), nowMs: now })).toEqual({
          timeStep: step + offset,
        });
      }
    });

    it(`at ${now}: rejects codes two or more steps away`, () => {
      for (const offset of [-3, -2, 2, 3]) {
        const token = codeAt(offset);
        // The fixed RFC seed makes this deterministic; guard against a (1-in-a-million) equal code in the window.
        expect([-1, 0, 1].map(codeAt)).not.toContain(token);
        expect(verifyTotp({ secret: RFC_SEED_B32, token, nowMs: now })).toBeNull();
      }
    });
  }

  it('rejects a wrong code', () => {
    const now = 1_700_000_010_000;
    const good = totpCode(RFC_SEED_B32, now);
    const wrong = String((Number(good) + 1) % 1_000_000).padStart(6, '0');
    expect(verifyTotp({ secret: RFC_SEED_B32, token: wrong, nowMs: now })).toBeNull();
  });
});

describe('verifyTotp replay protection (afterTimeStep)', () => {
  const now = 1_700_000_010_000;
  const step = timeStep(now);
  const codeAt = (offset: number) => totpCode(RFC_SEED_B32, (step + offset) * 30_000);

  it('accepts once, then rejects the same code and older ones', () => {
    const first = verifyTotp({ secret: RFC_SEED_B32, token: codeAt(0), nowMs: now });
    expect(first).toEqual({ timeStep: step });
    const last = first!.timeStep;
    expect(verifyTotp({ secret: RFC_SEED_B32, token: codeAt(0), nowMs: now, afterTimeStep: last })).toBeNull();
    expect(verifyTotp({ secret: RFC_SEED_B32, token: codeAt(-1), nowMs: now, afterTimeStep: last })).toBeNull();
    // A later step is still fine.
    expect(verifyTotp({ secret: RFC_SEED_B32, token: codeAt(1), nowMs: now, afterTimeStep: last })).toEqual({
      timeStep: step + 1,
    });
  });

  it('a replay is rejected later too (same code, later time still within the window)', () => {
    expect(verifyTotp({ secret: RFC_SEED_B32, token: codeAt(0), nowMs: now + 30_000, afterTimeStep: step })).toBeNull();
  });

  it('null/undefined afterTimeStep means no previous use', () => {
    expect(verifyTotp({ secret: RFC_SEED_B32, token: codeAt(0), nowMs: now, afterTimeStep: null })).toEqual({
      timeStep: step,
    });
    expect(verifyTotp({ secret: RFC_SEED_B32, token: codeAt(0), nowMs: now, afterTimeStep: 0 })).toEqual({
      timeStep: step,
    });
  });

  it('afterTimeStep at or beyond the end of the window returns null instead of throwing', () => {
    for (const after of [step + 1, step + 2, step + 1000, Number.MAX_SAFE_INTEGER]) {
      expect(() =>
        verifyTotp({ secret: RFC_SEED_B32, token: codeAt(1), nowMs: now, afterTimeStep: after }),
      ).not.toThrow();
      expect(verifyTotp({ secret: RFC_SEED_B32, token: codeAt(1), nowMs: now, afterTimeStep: after })).toBeNull();
    }
  });

  it('a nonsensical afterTimeStep is a caller bug: throws (fail closed), never accepts', () => {
    for (const after of [-1, 1.5, Number.NaN, Number.POSITIVE_INFINITY]) {
      expect(() => verifyTotp({ secret: RFC_SEED_B32, token: codeAt(0), nowMs: now, afterTimeStep: after })).toThrow(
        RangeError,
      );
    }
  });
});

describe('strict code input', () => {
  const now = 1_700_000_010_000;
  const valid = totpCode(RFC_SEED_B32, now);
  const malformed: Array<[string, string]> = [
    ['five digits', '12345'],
    ['seven digits', '1234567'],
    ['inner space', '123 456'],
    ['leading space', ' 123456'],
    ['trailing newline', '123456\n'],
    ['fullwidth digits', '１２３４５６'],
    ['Arabic-Indic digits', '١٢٣٤٥٦'],
    ['exponent', '1e5'],
    ['six-char exponent', '1e5000'],
    ['plus sign', '+12345'],
    ['minus sign', '-12345'],
    ['hex', '0x1234'],
    ['empty', ''],
    ['NUL inside', '12345\u0000'],
    ['1 MB string', '1'.repeat(1024 * 1024)],
  ];

  for (const [name, token] of malformed) {
    it(`rejects ${name} without throwing`, () => {
      expect(isWellFormedCode(token)).toBe(false);
      expect(() => verifyTotp({ secret: RFC_SEED_B32, token, nowMs: now })).not.toThrow();
      expect(verifyTotp({ secret: RFC_SEED_B32, token, nowMs: now })).toBeNull();
    });
  }

  it('does not normalise a currently valid code', () => {
    expect(verifyTotp({ secret: RFC_SEED_B32, token: valid, nowMs: now })).not.toBeNull();
    const fullwidth = [...valid].map((d) => String.fromCodePoint(0xff10 + Number(d))).join('');
    for (const token of [
      ` ${valid}`,
      `${valid} `,
      `${valid}\n`,
      `+${valid}`,
      `${valid.slice(0, 3)} ${valid.slice(3)}`,
      fullwidth,
    ]) {
      expect(verifyTotp({ secret: RFC_SEED_B32, token, nowMs: now })).toBeNull();
    }
  });

  it('non-strings are rejected too (JavaScript callers)', () => {
    for (const token of [123456, null, undefined, {}, ['123456']] as unknown as string[]) {
      expect(isWellFormedCode(token)).toBe(false);
      expect(verifyTotp({ secret: RFC_SEED_B32, token, nowMs: now })).toBeNull();
    }
  });

  it('isWellFormedCode honours the digits argument', () => {
    expect(isWellFormedCode('123456')).toBe(true);
    expect(isWellFormedCode('000000')).toBe(true);
    expect(isWellFormedCode('12345678', 8)).toBe(true);
    expect(isWellFormedCode('123456', 8)).toBe(false);
    expect(isWellFormedCode('123456', 0)).toBe(false);
    expect(isWellFormedCode('123456', Number.NaN)).toBe(false);
  });
});

describe('bad secrets and times are errors, not "wrong code"', () => {
  it('throws for a secret that is not base32 or is too short', () => {
    expect(() => verifyTotp({ secret: 'not base32!', token: '123456', nowMs: 0 })).toThrow();
    expect(() => verifyTotp({ secret: 'JBSWY3DP', token: '123456', nowMs: 0 })).toThrow(); // 5 bytes
  });

  it('throws for a bad time', () => {
    expect(() => verifyTotp({ secret: RFC_SEED_B32, token: '123456', nowMs: Number.NaN })).toThrow(RangeError);
    expect(() => verifyTotp({ secret: RFC_SEED_B32, token: '123456', nowMs: -1 })).toThrow(RangeError);
    expect(() => totpCode(RFC_SEED_B32, Number.POSITIVE_INFINITY)).toThrow(RangeError);
  });
});

describe('otpauthUri', () => {
  it('parses with new URL and carries the right parameters', () => {
    const secret = generateTotpSecret();
    const uri = otpauthUri({ issuer: 'Example Mail', label: 'anna+test@example.com', secret });
    const url = new URL(uri);
    expect(url.protocol).toBe('otpauth:');
    expect(url.host).toBe('totp');
    expect(decodeURIComponent(url.pathname)).toBe('/Example Mail:anna+test@example.com');
    expect(url.searchParams.get('secret')).toBe(secret);
    expect(url.searchParams.get('issuer')).toBe('Example Mail');
    expect(url.searchParams.get('algorithm')).toBe('SHA1');
    expect(url.searchParams.get('digits')).toBe('6');
    expect(url.searchParams.get('period')).toBe('30');
    // Spaces are %20 (never '+', which apps may show literally); '+' and '@' in the address are encoded.
    expect(uri).toBe(
      `otpauth://totp/Example%20Mail:anna%2Btest%40example.com?secret=${secret}&issuer=Example%20Mail&algorithm=SHA1&digits=6&period=30`,
    );
  });

  it('encodes a colon, ampersand or non-ASCII so they cannot break the label or parameters', () => {
    const uri = otpauthUri({ issuer: 'A:B & Co', label: 'jürgen@exämple.de', secret: RFC_SEED_B32 });
    const url = new URL(uri);
    expect(uri).toMatch(/^[\x21-\x7e]+$/);
    expect(url.searchParams.get('issuer')).toBe('A:B & Co');
    const [issuer, label] = url.pathname.slice(1).split(':');
    expect(decodeURIComponent(issuer!)).toBe('A:B & Co');
    expect(decodeURIComponent(label!)).toBe('jürgen@exämple.de');
    expect([...url.searchParams.keys()]).toEqual(['secret', 'issuer', 'algorithm', 'digits', 'period']);
  });
});

describe('totpAcceptsSecret', () => {
  /** The old check: whether totpCode throws for this secret. */
  const byCode = (secret: string): boolean => {
    try {
      totpCode(secret, 0);
      return true;
    } catch {
      return false;
    }
  };

  it('agrees with totpCode on 20,000 random base32-like strings (lengths 0-110, trailing bits, odd characters)', () => {
    let seed = 12345;
    const next = (n: number) => {
      seed = (Math.imul(seed, 1103515245) + 12345) >>> 0;
      return seed % n;
    };
    const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567abcxyz0189=-_ ';
    let accepted = 0;
    for (let i = 0; i < 20000; i++) {
      const length = next(111);
      let s = '';
      // Mostly the base32 alphabet (so the length and trailing-bit cases dominate), sometimes anything else.
      for (let j = 0; j < length; j++) s += next(10) < 9 ? alphabet[next(32)] : alphabet[next(alphabet.length)];
      if (next(4) === 0) s = s.replace(/=/g, '') + '='.repeat(next(8));
      const expected = byCode(s);
      if (expected) accepted++;
      expect([s, totpAcceptsSecret(s)]).toEqual([s, expected]);
    }
    // Both answers occur often enough for the comparison to mean something.
    expect(accepted).toBeGreaterThan(1000);
    expect(accepted).toBeLessThan(19000);
  });

  it('refuses non-zero trailing bits and keys outside 10-64 bytes, like totpCode', () => {
    for (const s of [
      'JBSWY3DPEHPK3PXP',
      'JBSWY3DPEHPK3PXQ',
      'A'.repeat(16),
      'A'.repeat(15),
      'A'.repeat(103),
      'A'.repeat(104),
      '',
      'JBSWY3DP',
    ])
      expect([s, totpAcceptsSecret(s)]).toEqual([s, byCode(s)]);
  });
});
