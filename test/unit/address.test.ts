/** Canonical addresses: no trimming, domain lower-cased + IDNA, local part NFC, clear problems. */
import { describe, expect, it } from 'vitest';
import { canonicalAddress, MAX_ADDRESS_LENGTH, preview, tryCanonicalAddress } from '../../src/core/address.js';
import { Mail2faError } from '../../src/errors.js';

const problem = (input: string) => {
  const r = tryCanonicalAddress(input);
  return 'problem' in r ? r.problem : null;
};

describe('canonicalAddress', () => {
  it.each([
    ['jane@example.com', 'jane@example.com'],
    ['Jane.Doe@Example.COM', 'Jane.Doe@example.com'], // local part case is kept: it may be significant
    ['jane@bücher.example', 'jane@xn--bcher-kva.example'],
    ['jane@XN--BCHER-KVA.example', 'jane@xn--bcher-kva.example'],
    ['jo\u0065\u0301@example.com', 'jo\u00e9@example.com'], // NFD → NFC
    ['a_c@example.com', 'a_c@example.com'], // SQL wildcards are ordinary characters
    ['100%@example.com', '100%@example.com'],
    ["o'hara@example.com", "o'hara@example.com"],
    ['"quoted"@example.com', '"quoted"@example.com'],
    ['=cmd@example.com', '=cmd@example.com'],
  ])('%s → %s', (input, canonical) => {
    expect(canonicalAddress(input)).toBe(canonical);
  });

  it.each([
    ['', 'empty'],
    ['jane.example.com', 'no "@"'],
    ['@example.com', 'nothing before "@"'],
    ['jane@', 'nothing after "@"'],
    ['jane@example.com ', 'leading or trailing whitespace'],
    [' jane@example.com', 'leading or trailing whitespace'],
    ['jane@example.com\t', 'leading or trailing whitespace'],
    ['ja ne@example.com', 'contains whitespace'],
    ['jane\u00a0doe@example.com', 'contains whitespace'],
    ['jane@example.com\u2028', 'leading or trailing whitespace'],
    ['ja\x1b[31mne@example.com', 'contains control characters'],
    ['ja\nne@example.com', 'contains control characters'],
    ['ja\u0000ne@example.com', 'contains control characters'],
    ['ja\u009bne@example.com', 'contains control characters'],
    ['a@b@example.com', 'more than one "@"'],
    ['jane@localhost', '"localhost" is not a valid domain name'],
    ['jane@exa_mple.com', '"exa_mple.com" is not a valid domain name'],
    ["jane@example.com' OR 1=1", 'contains whitespace'],
    ["jane@example.com';--", `"example.com';--" is not a valid domain name`],
    [`${'x'.repeat(65)}@example.com`, 'local part longer than 64 characters'],
    [
      `x@${'a'.repeat(60)}.${'b'.repeat(60)}.${'c'.repeat(60)}.${'d'.repeat(60)}.${'e'.repeat(60)}.com`,
      'domain longer than 253 characters',
    ],
    ['x'.repeat(MAX_ADDRESS_LENGTH + 1), `longer than ${MAX_ADDRESS_LENGTH} characters`],
  ])('%j is refused: %s', (input, why) => {
    // Bulk rows (tryCanonicalAddress) never quote the input in the problem: the row echoes a short prefix only.
    expect(problem(input)).toBe(why.replace(/^".*" is (?=not a valid domain name$)/, ''));
    try {
      canonicalAddress(input);
      expect.unreachable();
    } catch (err) {
      expect(err).toBeInstanceOf(Mail2faError);
      expect((err as Mail2faError).exitCode).toBe(65);
      expect((err as Mail2faError).message).toContain(why);
      // The message never carries a raw control character.
      expect((err as Mail2faError).message).not.toMatch(/[\u0000-\u001f\u007f-\u009f]/);
    }
  });

  it('a 1 MB input is refused quickly, and echoed short', () => {
    const huge = `${'a'.repeat(1024 * 1024)}@example.com`;
    const started = process.hrtime.bigint();
    expect(problem(huge)).toBe(`longer than ${MAX_ADDRESS_LENGTH} characters`);
    expect(Number(process.hrtime.bigint() - started) / 1e6).toBeLessThan(200);
    try {
      canonicalAddress(huge);
    } catch (err) {
      expect((err as Error).message.length).toBeLessThan(300);
      expect((err as Error).message).toContain(`(${huge.length} chars)`);
    }
  });
});

describe('preview', () => {
  it('escapes control characters and says how long a cut input was', () => {
    expect(preview('a\x1b[2Jb\nc')).toBe('a\\x1b[2Jb\\nc');
    expect(preview('x'.repeat(100), 10)).toBe(`${'x'.repeat(10)}…(100 chars)`);
    expect(preview('\u202eevil')).toBe('\\u202eevil');
  });
});
