import { describe, expect, it } from 'vitest';
import { createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';
import { Mail2faError } from '../../src/errors.js';
import { open, seal, sealedKeyId, type BoxContext } from '../../src/crypto/box.js';
import { masterKeyFromBytes } from '../../src/crypto/keys.js';

const key = masterKeyFromBytes(randomBytes(32));
const ctx: BoxContext = { table: 'mail2fa_factors', column: 'secret', account: 'alice@example.com' };
const SECRET = 'JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP';

function thrown(fn: () => unknown): Mail2faError {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(Mail2faError);
    return e as Mail2faError;
  }
  throw new Error('expected a Mail2faError');
}

function expectIntegrity(fn: () => unknown, account = ctx.account): Mail2faError {
  const e = thrown(fn);
  expect(e.code).toBe('integrity');
  expect(e.exitCode).toBe(78);
  expect(e.message).toBe(
    `stored secret for ${account} failed its integrity check (tampered, copied from another account, or wrong key)`,
  );
  expect(e.message).not.toMatch(/wrong code/i);
  expect(e.message).not.toContain(SECRET);
  return e;
}

describe('seal / open', () => {
  it('round-trips', () => {
    const sealed = seal(key, ctx, SECRET);
    expect(open(key, ctx, sealed)).toBe(SECRET);
  });

  it('round-trips the empty string, unicode, a leading BOM and long values', () => {
    for (const value of ['', '+4520123456', 'Ünïcødé ✓ 𝄞 日本語 🙂', '\ufeffbom', 'x'.repeat(10_000), '\0nul\0']) {
      expect(open(key, ctx, seal(key, ctx, value))).toBe(value);
    }
  });

  it('works with unicode in the context (IDN local part, NFC)', () => {
    const c = { ...ctx, account: 'jürgen@xn--mller-kva.example' };
    expect(open(key, c, seal(key, c, SECRET))).toBe(SECRET);
  });

  it('produces a compact ASCII string v1.<keyId>.<nonce>.<ciphertext+tag>', () => {
    const sealed = seal(key, ctx, SECRET);
    expect(sealed).toMatch(/^v1\.[0-9a-f]{16}\.[A-Za-z0-9_-]{16}\.[A-Za-z0-9_-]+$/);
    const [, id, nonce, body] = sealed.split('.') as [string, string, string, string];
    expect(id).toBe(key.id);
    expect(Buffer.from(nonce, 'base64url').length).toBe(12);
    expect(Buffer.from(body, 'base64url').length).toBe(Buffer.byteLength(SECRET) + 16);
    expect(sealedKeyId(sealed)).toBe(key.id);
    // fits a VARCHAR(255) for a 20-byte TOTP secret in base32 and a phone number
    expect(sealed.length).toBeLessThan(255);
  });

  it('never shows the plaintext (nor its base64/hex) in the output', () => {
    const sealed = seal(key, ctx, SECRET);
    expect(sealed).not.toContain(SECRET);
    expect(sealed).not.toContain(SECRET.slice(0, 8));
    expect(sealed).not.toContain(Buffer.from(SECRET).toString('base64url').slice(0, 8));
    expect(sealed).not.toContain(Buffer.from(SECRET).toString('hex').slice(0, 8));
    const phone = '+4520123456';
    expect(seal(key, ctx, phone)).not.toContain('20123456');
  });

  it('uses a fresh nonce every time', () => {
    const seen = new Set<string>();
    const nonces = new Set<string>();
    for (let i = 0; i < 200; i++) {
      const s = seal(key, ctx, SECRET);
      seen.add(s);
      nonces.add(s.split('.')[2]!);
    }
    expect(seen.size).toBe(200);
    expect(nonces.size).toBe(200);
  });

  it('encrypts with an HKDF-derived key, not the master key bytes, and binds the AAD', () => {
    const sealed = seal(key, ctx, SECRET);
    const [, , nonceText, bodyText] = sealed.split('.') as [string, string, string, string];
    const nonce = Buffer.from(nonceText, 'base64url');
    const body = Buffer.from(bodyText, 'base64url');
    const tryKey = (k: Buffer, aad: Buffer | null): string | null => {
      try {
        const d = createDecipheriv('aes-256-gcm', k, nonce, { authTagLength: 16 });
        if (aad) d.setAAD(aad);
        d.setAuthTag(body.subarray(body.length - 16));
        return Buffer.concat([d.update(body.subarray(0, body.length - 16)), d.final()]).toString('utf8');
      } catch {
        return null;
      }
    };
    const derived = Buffer.from(hkdfSync('sha256', key.bytes, Buffer.alloc(0), 'mail2fa aes-256-gcm v1', 32));
    const lp = (s: string) => {
      const b = Buffer.from(s, 'utf8');
      const l = Buffer.alloc(4);
      l.writeUInt32BE(b.length);
      return Buffer.concat([l, b]);
    };
    const aad = Buffer.concat(['mail2fa:v1', key.id, ctx.table, ctx.column, ctx.account].map(lp));
    expect(tryKey(derived, aad)).toBe(SECRET); // documented construction
    expect(tryKey(key.bytes, aad)).toBeNull(); // not the raw master key
    expect(tryKey(derived, null)).toBeNull(); // AAD is bound
  });
});

describe('integrity', () => {
  it('a ciphertext copied to another account fails as an integrity error', () => {
    const sealed = seal(key, ctx, SECRET);
    expectIntegrity(() => open(key, { ...ctx, account: 'bob@example.com' }, sealed), 'bob@example.com');
  });

  it('a ciphertext copied to another column or table fails as an integrity error', () => {
    const sealed = seal(key, ctx, SECRET);
    expectIntegrity(() => open(key, { ...ctx, column: 'phone' }, sealed));
    expectIntegrity(() => open(key, { ...ctx, table: 'mail2fa_pending' }, sealed));
  });

  it('the AAD encoding is unambiguous (shifting characters between fields does not verify)', () => {
    const a = { table: 'ab', column: 'c', account: 'x@y' };
    const b = { table: 'a', column: 'bc', account: 'x@y' };
    expectIntegrity(() => open(key, b, seal(key, a, SECRET)), 'x@y');
    const c = { table: 't', column: 'c', account: 'a@b' };
    const d = { table: 't', column: 'ca', account: '@b' };
    expectIntegrity(() => open(key, d, seal(key, c, SECRET)), '@b');
  });

  it('is case- and normalisation-exact on the account', () => {
    const sealed = seal(key, ctx, SECRET);
    expectIntegrity(() => open(key, { ...ctx, account: 'Alice@example.com' }, sealed), 'Alice@example.com');
    expectIntegrity(() => open(key, { ...ctx, account: 'alice@example.com ' }, sealed), 'alice@example.com ');
  });

  it('any flipped byte or character fails as an integrity error', () => {
    const sealed = seal(key, ctx, SECRET);
    const [v, id, nonceText, bodyText] = sealed.split('.') as [string, string, string, string];
    const body = Buffer.from(bodyText, 'base64url');
    for (let i = 0; i < body.length; i++) {
      const t = Buffer.from(body);
      t[i] = t[i]! ^ 0x01;
      expectIntegrity(() => open(key, ctx, `${v}.${id}.${nonceText}.${t.toString('base64url')}`));
    }
    const nonce = Buffer.from(nonceText, 'base64url');
    for (let i = 0; i < nonce.length; i++) {
      const t = Buffer.from(nonce);
      t[i] = t[i]! ^ 0x80;
      expectIntegrity(() => open(key, ctx, `${v}.${id}.${t.toString('base64url')}.${bodyText}`));
    }
    // truncated tag, appended bytes
    expectIntegrity(() =>
      open(key, ctx, `${v}.${id}.${nonceText}.${body.subarray(0, body.length - 1).toString('base64url')}`),
    );
    expectIntegrity(() =>
      open(key, ctx, `${v}.${id}.${nonceText}.${Buffer.concat([body, Buffer.from([0])]).toString('base64url')}`),
    );
  });

  it.each([
    ['empty', ''],
    ['plaintext', SECRET],
    ['wrong version', 'v2.0123456789abcdef.AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA'],
    ['too few parts', 'v1.0123456789abcdef.AAAAAAAAAAAAAAAA'],
    ['too many parts', 'v1.0123456789abcdef.AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA.x'],
    ['bad key id', 'v1.XYZ.AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA'],
    ['short nonce', 'v1.0123456789abcdef.AAAA.AAAAAAAAAAAAAAAAAAAAAA'],
    ['short body', 'v1.0123456789abcdef.AAAAAAAAAAAAAAAA.AAAA'],
    ['padded base64', 'v1.0123456789abcdef.AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA=='],
    ['standard base64 chars', 'v1.0123456789abcdef.AAAAAAAAAAAAAAA+.AAAAAAAAAAAAAAAAAAAAAA'],
    ['whitespace', ' v1.0123456789abcdef.AAAAAAAAAAAAAAAA.AAAAAAAAAAAAAAAAAAAAAA'],
  ])('a malformed blob (%s) is an integrity error', (_n, blob) => {
    expectIntegrity(() => open(key, ctx, blob));
    expect(sealedKeyId(blob)).toBeNull();
  });

  it('a blob re-labelled with the loaded key id still fails the integrity check', () => {
    const other = masterKeyFromBytes(randomBytes(32));
    const sealed = seal(other, ctx, SECRET);
    const relabelled = sealed.replace(`.${other.id}.`, `.${key.id}.`);
    expectIntegrity(() => open(key, ctx, relabelled));
  });

  it('escapes control characters of the account in the message', () => {
    const e = thrown(() => open(key, { ...ctx, account: 'evil\n@x' }, 'garbage'));
    expect(e.code).toBe('integrity');
    expect(e.message).not.toContain('\n');
  });
});

describe('key mismatch', () => {
  it('a value sealed under another key is key_mismatch naming both key ids', () => {
    const other = masterKeyFromBytes(randomBytes(32));
    const sealed = seal(other, ctx, SECRET);
    const e = thrown(() => open(key, ctx, sealed));
    expect(e.code).toBe('key_mismatch');
    expect(e.exitCode).toBe(78);
    expect(e.message).toContain(other.id);
    expect(e.message).toContain(key.id);
    expect(e.message).toContain(ctx.account);
    // The real next step: load that key — the key file, or during a rotation <key file>.old — and
    // `keys check`; never `recover`.
    expect(e.hint).toMatch(/keys check/);
    expect(e.hint).toMatch(/key file|MAIL2FA_KEY_FILE/);
    expect(e.hint).toMatch(/\.old/);
    expect(e.hint).not.toMatch(/recover/);
    expect(e.message + (e.hint ?? '')).not.toContain(SECRET);
    expect(sealedKeyId(sealed)).toBe(other.id);
  });

  it("the same key bytes loaded twice open each other's values", () => {
    const bytes = randomBytes(32);
    const a = masterKeyFromBytes(bytes);
    const b = masterKeyFromBytes(bytes);
    expect(open(b, ctx, seal(a, ctx, SECRET))).toBe(SECRET);
  });
});
