/**
 * Password verification against hashes made by real reference tools (doveadm pw, openssl passwd, libxcrypt),
 * stored in test/fixtures/password-hashes.json with the tool and version that produced them. Nothing here needs
 * doveadm or openssl at run time.
 */
import { describe, expect, it } from 'vitest';
import { readFileSync } from 'node:fs';
import { createHash } from 'node:crypto';
import { Mail2faError } from '../../src/errors.js';
import {
  MALFORMED_PASSWORD_HASH,
  PASSWORD_SCHEMES,
  UNKNOWN_PASSWORD_SCHEME,
  hashPassword,
  passwordScheme,
  verifyPassword,
  type PasswordScheme,
} from '../../src/crypto/passwords.js';

interface Fixture {
  scheme: PasswordScheme;
  password: 'nonascii' | 'ascii' | 'long';
  tool: 'doveadm' | 'openssl' | 'libxcrypt';
  command: string;
  hash: string;
}
interface DovecotCheck {
  what: string;
  stored: string;
  password: string;
  doveadm: string; // 'verified' | 'mismatch' | 'error: …'
}
interface FixtureFile {
  tools: Record<string, string>;
  passwords: Record<Fixture['password'], string>;
  fixtures: Fixture[];
  dovecotChecks: DovecotCheck[];
}

const data = JSON.parse(
  readFileSync(new URL('../fixtures/password-hashes.json', import.meta.url), 'utf8'),
) as FixtureFile;
const PW = data.passwords;

/** The password with one character changed (the second one: within bcrypt's 72 bytes for every fixture). */
function oneCharChanged(pw: string): string {
  const chars = Array.from(pw);
  const c = chars[1]!;
  chars[1] = c === 'x' ? 'y' : 'x';
  return chars.join('');
}

/** Awaits fn, expects a Mail2faError with exit 78 and `code`; checks no secret text appears. */
async function refusal(fn: () => unknown, code: string, secrets: string[] = []): Promise<Mail2faError> {
  let err: unknown;
  try {
    await fn();
  } catch (e) {
    err = e;
  }
  expect(err, 'expected a Mail2faError').toBeInstanceOf(Mail2faError);
  const e = err as Mail2faError;
  expect(e.code).toBe(code);
  expect(e.exitCode).toBe(78);
  const visible = `${e.message}\n${e.hint ?? ''}\n${JSON.stringify(e)}\n${String(e)}`;
  for (const s of secrets) expect(visible).not.toContain(s);
  return e;
}

describe('fixture file', () => {
  it('comes from real tools, with versions, and covers every scheme with a non-ASCII and an ASCII password', () => {
    expect(data.tools.doveadm).toMatch(/Dovecot 2\.\d+\.\d+/);
    expect(data.tools.openssl).toMatch(/OpenSSL \d/);
    expect(PW.nonascii).toBe('pässwörd€');
    expect(PW.nonascii.normalize('NFC')).toBe(PW.nonascii);
    expect(PW.nonascii.normalize('NFD')).not.toBe(PW.nonascii);
    expect(Buffer.byteLength(PW.long)).toBeGreaterThan(72); // past bcrypt's limit
    expect(Array.from(PW.long).length).toBeGreaterThan(64); // past nano-md5's md5crypt limit
    for (const scheme of PASSWORD_SCHEMES) {
      for (const pw of ['nonascii', 'ascii', 'long'] as const) {
        expect(
          data.fixtures.some((f) => f.scheme === scheme && f.password === pw && f.tool === 'doveadm'),
          `${scheme}/${pw}`,
        ).toBe(true);
      }
    }
  });
});

describe('verifyPassword against reference hashes', () => {
  for (const f of data.fixtures) {
    const pw = PW[f.password];
    it(`${f.tool}: ${f.command} → ${f.hash.slice(0, 24)}…`, async () => {
      expect(passwordScheme(f.hash)).toBe(f.scheme);
      const [right, wrong, changed, nfd, trailingSpace] = await Promise.all([
        verifyPassword(pw, f.hash),
        verifyPassword('wrong password', f.hash),
        verifyPassword(oneCharChanged(pw), f.hash),
        verifyPassword(pw.normalize('NFD'), f.hash),
        verifyPassword(pw + ' ', f.hash),
      ]);
      expect(right).toBe(true);
      expect(wrong).toBe(false);
      expect(changed).toBe(false);
      // Dovecot compares bytes: the NFD spelling of a non-ASCII password is a different password.
      if (pw.normalize('NFD') !== pw) expect(nfd).toBe(false);
      // A trailing space is significant, except after bcrypt's 72 bytes (as in Dovecot, checked below).
      const bcryptTruncates = /\$2[aby]\$/.test(f.hash) && Buffer.byteLength(pw) >= 72;
      expect(trailingSpace).toBe(bcryptTruncates);
    });
  }

  it('accepts the bare crypt forms ($6$, $5$, $2y$, $argon2i$, $argon2id$, $1$) without a {SCHEME} prefix', async () => {
    const bare = data.fixtures.filter(
      (f) => f.password === 'nonascii' && f.tool === 'doveadm' && /^\{[A-Z0-9-]+\}\$/.test(f.hash),
    );
    expect(bare.map((f) => f.scheme).sort()).toEqual([
      'ARGON2I',
      'ARGON2ID',
      'BLF-CRYPT',
      'BLF-CRYPT',
      'MD5-CRYPT',
      'SHA256-CRYPT',
      'SHA256-CRYPT',
      'SHA512-CRYPT',
      'SHA512-CRYPT',
    ]);
    for (const f of bare) {
      const stored = f.hash.replace(/^\{[^}]*\}/, '');
      expect(passwordScheme(stored)).toBe(f.scheme);
      expect(await verifyPassword(PW.nonascii, stored)).toBe(true);
      expect(await verifyPassword(PW.ascii, stored)).toBe(false);
    }
  });

  it('accepts a bare $2y$ hash (Dovecot writes $2y$; bcryptjs is fine with it)', async () => {
    const blf = data.fixtures.find((f) => f.scheme === 'BLF-CRYPT' && f.tool === 'doveadm' && f.password === 'ascii')!;
    const bare = blf.hash.replace('{BLF-CRYPT}', '');
    expect(bare.startsWith('$2y$')).toBe(true);
    expect(passwordScheme(bare)).toBe('BLF-CRYPT');
    expect(await verifyPassword(PW.ascii, bare)).toBe(true);
    expect(await verifyPassword(PW.nonascii, bare)).toBe(false);
    // The same hash relabelled $2b$ / $2a$ is the same algorithm for UTF-8 input.
    expect(await verifyPassword(PW.ascii, bare.replace('$2y$', '$2b$'))).toBe(true);
    expect(await verifyPassword(PW.ascii, bare.replace('$2y$', '$2a$'))).toBe(true);
  });

  it('reads the {SCHEME} prefix case-insensitively', async () => {
    const f = data.fixtures.find((x) => x.scheme === 'SSHA512' && x.password === 'nonascii')!;
    for (const prefix of ['{ssha512}', '{SSHA512}', '{Ssha512}']) {
      const stored = f.hash.replace('{SSHA512}', prefix);
      expect(passwordScheme(stored)).toBe('SSHA512');
      expect(await verifyPassword(PW.nonascii, stored)).toBe(true);
      expect(await verifyPassword(PW.ascii, stored)).toBe(false);
    }
    const crypt = data.fixtures.find((x) => x.scheme === 'ARGON2ID' && x.password === 'ascii')!;
    expect(await verifyPassword(PW.ascii, crypt.hash.replace('{ARGON2ID}', '{argon2id}'))).toBe(true);
  });
});

describe('agrees with Dovecot on edge cases (answers recorded from doveadm pw -t)', () => {
  for (const c of data.dovecotChecks) {
    it(`${c.what}: Dovecot says ${c.doveadm}`, async () => {
      if (c.doveadm === 'verified') expect(await verifyPassword(c.password, c.stored)).toBe(true);
      else if (c.doveadm === 'mismatch') expect(await verifyPassword(c.password, c.stored)).toBe(false);
      else {
        expect(c.doveadm).toMatch(/^error: /);
        await refusal(() => verifyPassword(c.password, c.stored), MALFORMED_PASSWORD_HASH, [c.password, c.stored]);
      }
    });
  }
});

describe('unknown or unsupported schemes', () => {
  it('names the scheme, exit 78, for Dovecot schemes we do not support', async () => {
    for (const name of [
      'CRAM-MD5',
      'SHA512',
      'SHA',
      'MD5',
      'CLEAR',
      'SSHA512.B64',
      'PLAIN-MD5.HEX',
      'SCRAM-SHA-256',
      'pbkdf2',
    ]) {
      const stored = `{${name}}c2VjcmV0LXZhbHVlLXh5eg==`;
      const e = await refusal(() => verifyPassword('S3cr3t-Pa55word!', stored), UNKNOWN_PASSWORD_SCHEME, [
        'S3cr3t-Pa55word!',
        'c2VjcmV0LXZhbHVlLXh5eg==',
      ]);
      expect(e.message).toContain(`{${name}}`);
      expect(e.hint).toMatch(/SHA512-CRYPT/);
      expect(() => passwordScheme(stored)).toThrow(Mail2faError);
    }
  });

  it('escapes control characters in the scheme name and keeps at most 40 characters of it', async () => {
    const e = await refusal(() => verifyPassword('x', '{EVIL\n\u001b[31mRED\u202e}abc'), UNKNOWN_PASSWORD_SCHEME);
    expect(e.message).not.toMatch(/[\n\u001b\u202e]/);
    expect(e.message).toContain('EVIL\\n\\x1b[31mRED\\u202e');
    const long = await refusal(() => verifyPassword('x', `{${'A'.repeat(100)}}abc`), UNKNOWN_PASSWORD_SCHEME);
    expect(long.message).toContain('A'.repeat(40));
    expect(long.message).not.toContain('A'.repeat(41));
  });

  it('names known but unsupported bare crypt forms, e.g. yescrypt from /etc/shadow', async () => {
    const e = await refusal(
      () => verifyPassword('pw', '$y$j9T$F5Jx5fExrKuPp53xLKQ..1$X3DX6M94c7o.9agCG9G317fhZg9SqC.5i5rd.RhAtQ7'),
      UNKNOWN_PASSWORD_SCHEME,
      ['F5Jx5fExrKuPp53xLKQ', 'X3DX6M94c7o'],
    );
    expect(e.message).toContain('$y$');
    expect(e.message).toContain('yescrypt');
    expect(
      (
        await refusal(
          () => verifyPassword('pw', '$argon2d$v=19$m=16,t=2,p=1$c2FsdHNhbHQ$aGFzaA'),
          UNKNOWN_PASSWORD_SCHEME,
        )
      ).message,
    ).toContain('$argon2d$');
  });

  it('refuses an unprefixed value it cannot recognise without echoing it (it may be a plaintext password)', async () => {
    for (const stored of ['S3cr3t-Pa55word!', '$S3cr3t$Pa55word!', '{S3cr3t-Pa55word!', 'ab01FAX.bQRSU']) {
      const e = await refusal(() => verifyPassword('S3cr3t-Pa55word!', stored), UNKNOWN_PASSWORD_SCHEME, [
        stored,
        'S3cr3t',
      ]);
      expect(e.message.length).toBeGreaterThan(20);
      expect(() => passwordScheme(stored)).toThrow(Mail2faError);
    }
  });
});

describe('empty or malformed stored values are errors, never a silent mismatch', () => {
  const secret = 'Hunter2-Correct-Horse!';
  const sha512 = data.fixtures.find(
    (f) => f.scheme === 'SHA512-CRYPT' && f.tool === 'doveadm' && f.password === 'ascii',
  )!.hash;
  const argon = data.fixtures.find((f) => f.scheme === 'ARGON2ID' && f.password === 'ascii')!.hash;
  const md5crypt = data.fixtures.find(
    (f) => f.scheme === 'MD5-CRYPT' && f.tool === 'openssl' && f.password === 'ascii',
  )!.hash;

  it('empty stored hash (and a NULL column read by JavaScript callers)', async () => {
    const e = await refusal(() => verifyPassword(secret, ''), MALFORMED_PASSWORD_HASH, [secret]);
    expect(e.message).toMatch(/empty/);
    await refusal(() => verifyPassword(secret, null as unknown as string), MALFORMED_PASSWORD_HASH, [secret]);
    expect(() => passwordScheme('')).toThrow(Mail2faError);
    // A prefix with nothing after it, {PLAIN} included: an empty password is never accepted.
    for (const s of ['{PLAIN}', '{SHA512-CRYPT}', '{ssha}', '{ARGON2ID}']) {
      await refusal(() => verifyPassword('', s), MALFORMED_PASSWORD_HASH);
    }
  });

  const cases: Array<[string, string]> = [
    ['truncated $6$', sha512.slice(0, -5)],
    ['bare truncated $6$', sha512.replace('{SHA512-CRYPT}', '').slice(0, -1)],
    ['$6$ with a trailing newline', `${sha512}\n`],
    ['$6$ with rounds below 1000', sha512.replace('$6$', '$6$rounds=10$')],
    ['$6$ with absurd rounds', sha512.replace('$6$', '$6$rounds=999999999$')],
    ['{MD5-CRYPT} holding a $6$ hash', sha512.replace('{SHA512-CRYPT}', '{MD5-CRYPT}')],
    ['{ARGON2ID} holding a $6$ hash', sha512.replace('{SHA512-CRYPT}', '{ARGON2ID}')],
    ['{SHA512-CRYPT} holding an Argon2 hash', argon.replace('{ARGON2ID}', '{SHA512-CRYPT}')],
    ['$1$ with a salt longer than 8', md5crypt.replace('$1$', '$1$toolong9')],
    ['$2y$ with cost 99', '$2y$99$abcdefghijklmnopqrstuuABCDEFGHIJKLMNOPQRSTUVWXYZ01234'],
    ['$2y$ too short', '$2y$10$abcdefghijklmnopqrstuu'],
    ['argon2 v=16', argon.replace('v=19', 'v=16')],
    ['argon2 without parameters', '{ARGON2ID}$argon2id$v=19$c2FsdHNhbHQ$aGFzaA'],
    ['{SSHA512} not base64', '{SSHA512}not base64!'],
    ['{SSHA256} too short', `{SSHA256}${Buffer.alloc(20).toString('base64')}`],
    ['{PLAIN-MD5} too short', '{PLAIN-MD5}3ab2c1301b7f469bd663e7e45529020'],
    ['{PLAIN-MD5} not hex', '{PLAIN-MD5}zab2c1301b7f469bd663e7e45529020a'],
  ];
  for (const [what, stored] of cases) {
    it(`${what}`, async () => {
      const payload = stored.replace(/^\{[^}]*\}/, '');
      const e = await refusal(() => verifyPassword(secret, stored), MALFORMED_PASSWORD_HASH, [secret, payload]);
      expect(e.message).toMatch(/malformed/);
    });
  }

  it('an Argon2 string the library rejects is an error too (not false)', async () => {
    // Well-formed shape, but memory cost 1 KiB is below Argon2's minimum.
    await refusal(
      () =>
        verifyPassword(
          secret,
          '$argon2id$v=19$m=1,t=1,p=1$c2FsdHNhbHRzYWx0$aGFzaGhhc2hoYXNoaGFzaGhhc2hoYXNoaGFzaGhhc2g',
        ),
      MALFORMED_PASSWORD_HASH,
      [secret, 'c2FsdHNhbHRzYWx0'],
    );
  });
});

describe('a password-shaped secret never appears in an error', () => {
  it('whatever goes wrong, neither the password nor the stored hash is in message, hint or JSON', async () => {
    // (By design the text between "{" and "}" is named, escaped and cut to 40 characters, so a plaintext password
    // stored as "{…}…" would show up there; this password has no "}".)
    const password = 'Tr1cky-P@ss-{SHA512-CRYPT-€';
    const stored = [
      '',
      password,
      `{PLAIN-MD5}${password}`,
      `{SSHA}${password}`,
      `{SHA512-CRYPT}${password}`,
      `$6$${password}`,
      `{NOPE}${password}`,
      `{${password}`,
    ];
    for (const s of stored) {
      let err: unknown;
      try {
        await verifyPassword(password, s);
      } catch (e) {
        err = e;
      }
      expect(err, s).toBeInstanceOf(Mail2faError);
      const e = err as Mail2faError;
      const visible = `${e.message}\n${e.hint ?? ''}\n${JSON.stringify(e)}\n${e.stack ?? ''}`;
      expect(visible).not.toContain(password);
      expect(visible).not.toContain('Tr1cky');
    }
  });
});

describe('password input', () => {
  const sha512 = data.fixtures.find(
    (f) => f.scheme === 'SHA512-CRYPT' && f.tool === 'doveadm' && f.password === 'nonascii',
  )!.hash;

  it('a password with a lone UTF-16 surrogate is simply wrong', async () => {
    expect(await verifyPassword('p\ud800ss', sha512)).toBe(false);
    expect(await verifyPassword('p\ud800ss', '{PLAIN}p\ufffdss')).toBe(false);
  });

  it('an absurdly long password is false quickly (SHA-crypt is quadratic in the length)', async () => {
    const start = Date.now();
    expect(await verifyPassword('x'.repeat(1_000_000), sha512)).toBe(false);
    expect(Date.now() - start).toBeLessThan(1000);
  });

  it('{PLAIN} compares exactly, non-ASCII included', async () => {
    expect(await verifyPassword(PW.nonascii, `{PLAIN}${PW.nonascii}`)).toBe(true);
    expect(await verifyPassword(PW.nonascii.normalize('NFD'), `{PLAIN}${PW.nonascii}`)).toBe(false);
    expect(await verifyPassword(`${PW.nonascii} `, `{PLAIN}${PW.nonascii}`)).toBe(false);
    expect(await verifyPassword(PW.nonascii.slice(0, -1), `{PLAIN}${PW.nonascii}`)).toBe(false);
  });
});

describe('hashPassword', () => {
  it('defaults to Dovecot-form {SHA512-CRYPT}$6$ with a 16-character random salt', async () => {
    const h = await hashPassword(PW.nonascii);
    expect(h).toMatch(/^\{SHA512-CRYPT\}\$6\$[./0-9A-Za-z]{16}\$[./0-9A-Za-z]{86}$/);
    expect(await hashPassword(PW.nonascii)).not.toBe(h);
    expect(await verifyPassword(PW.nonascii, h)).toBe(true);
  });

  const shapes: Record<PasswordScheme, RegExp> = {
    'SHA512-CRYPT': /^\{SHA512-CRYPT\}\$6\$[./0-9A-Za-z]{16}\$[./0-9A-Za-z]{86}$/,
    'SHA256-CRYPT': /^\{SHA256-CRYPT\}\$5\$[./0-9A-Za-z]{16}\$[./0-9A-Za-z]{43}$/,
    'BLF-CRYPT': /^\{BLF-CRYPT\}\$2y\$10\$[./0-9A-Za-z]{53}$/,
    ARGON2I: /^\{ARGON2I\}\$argon2i\$v=19\$m=\d+,t=\d+,p=\d+\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$/,
    ARGON2ID: /^\{ARGON2ID\}\$argon2id\$v=19\$m=\d+,t=\d+,p=\d+\$[A-Za-z0-9+/]+\$[A-Za-z0-9+/]+$/,
    'MD5-CRYPT': /^\{MD5-CRYPT\}\$1\$[./0-9A-Za-z]{8}\$[./0-9A-Za-z]{22}$/,
    SSHA512: /^\{SSHA512\}[A-Za-z0-9+/]{96}$/, // 64-byte digest + 8-byte salt
    SSHA256: /^\{SSHA256\}[A-Za-z0-9+/]{54}==$/, // 32 + 8 bytes
    SSHA: /^\{SSHA\}[A-Za-z0-9+/]{38}==$/, // 20 + 8 bytes
    'PLAIN-MD5': /^\{PLAIN-MD5\}[0-9a-f]{32}$/,
    PLAIN: /^\{PLAIN\}/,
  };
  for (const scheme of PASSWORD_SCHEMES) {
    it(`round trip: ${scheme}`, async () => {
      for (const pw of [PW.nonascii, PW.ascii, PW.long]) {
        const h = await hashPassword(pw, scheme);
        expect(h).toMatch(shapes[scheme]);
        expect(passwordScheme(h)).toBe(scheme);
        expect(await verifyPassword(pw, h)).toBe(true);
        expect(await verifyPassword(oneCharChanged(pw), h)).toBe(false);
        if (pw.normalize('NFD') !== pw) expect(await verifyPassword(pw.normalize('NFD'), h)).toBe(false);
      }
      if (scheme !== 'PLAIN' && scheme !== 'PLAIN-MD5') {
        expect(await hashPassword(PW.ascii, scheme)).not.toBe(await hashPassword(PW.ascii, scheme));
      }
    });
  }

  it('PLAIN-MD5 is the hex MD5 of the UTF-8 bytes (what doveadm writes)', async () => {
    const dove = data.fixtures.find((f) => f.scheme === 'PLAIN-MD5' && f.password === 'nonascii')!.hash;
    expect(await hashPassword(PW.nonascii, 'PLAIN-MD5')).toBe(dove);
    expect(dove).toBe(`{PLAIN-MD5}${createHash('md5').update(PW.nonascii, 'utf8').digest('hex')}`);
  });

  it('refuses an empty or ill-formed password (data error, exit 65)', async () => {
    for (const pw of ['', 'a\udc00b']) {
      const e = await hashPassword(pw).then(
        () => undefined,
        (err: unknown) => err,
      );
      expect(e).toBeInstanceOf(Mail2faError);
      expect((e as Mail2faError).exitCode).toBe(65);
    }
  });
});
