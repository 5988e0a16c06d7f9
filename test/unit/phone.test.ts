import { createRequire } from 'node:module';
import { describe, expect, it } from 'vitest';
import { ExitCode, Mail2faError } from '../../src/errors.js';
import { KNOWN_CALLING_CODES, PHONE_FORMAT_HINT, maskPhone, parsePhone } from '../../src/sms/phone.js';

function rejection(input: string): Mail2faError {
  try {
    parsePhone(input);
  } catch (err) {
    expect(err).toBeInstanceOf(Mail2faError);
    const e = err as Mail2faError;
    expect(e.code).toBe('bad_phone');
    expect(e.exitCode).toBe(ExitCode.DATAERR);
    expect(e.hint).toBe(PHONE_FORMAT_HINT);
    return e;
  }
  throw new Error(`expected ${JSON.stringify(input)} to be rejected`);
}

describe('parsePhone: valid numbers in both forms', () => {
  const cases: Array<[string, string, string, string, string]> = [
    // [011- form, E.164 form, e164, country, calling code]
    ['011-45-20123456', '+4520123456', '+4520123456', 'DK', '45'],
    ['011-45-32123456', '+45 32 12 34 56', '+4532123456', 'DK', '45'],
    ['011-1-2015550123', '+12015550123', '+12015550123', 'US', '1'],
    ['011 1 212 555 1234', '+1-212-555-1234', '+12125551234', 'US', '1'],
    ['011-44-7400123456', '+447400123456', '+447400123456', 'GB', '44'],
    ['011-49-15123456789', '+4915123456789', '+4915123456789', 'DE', '49'],
  ];
  for (const [article, plus, e164, country, cc] of cases) {
    it(`${article} and ${plus} → ${e164} (${country})`, () => {
      for (const input of [article, plus]) {
        const phone = parsePhone(input);
        expect(phone).toEqual({ e164, countryCallingCode: cc, country, masked: maskPhone(e164) });
      }
    });
  }

  it('accepts the 011 form without separators and with surrounding spaces', () => {
    expect(parsePhone('0114520123456').e164).toBe('+4520123456');
    expect(parsePhone('  011-45-20123456 ').e164).toBe('+4520123456');
  });

  it('masks the parsed number', () => {
    expect(parsePhone('011-45-20120123').masked).toBe('+45 ****0123');
  });
});

describe('parsePhone: rejections say why', () => {
  it('rejects the documented example 011-45-12345678: not a valid Danish number', () => {
    const e = rejection('011-45-12345678');
    expect(e.message).toMatch(/not a valid number for Denmark \(\+45\)/);
    expect(e.message).toMatch(/number plan/);
    expect(e.message).not.toContain('12345678');
    expect(rejection('+4512345678').message).toMatch(/Denmark/);
  });

  it('a Danish number with the wrong length names Denmark and the expected length', () => {
    expect(rejection('011-45-201234567').message).toMatch(
      /too long for Denmark \(\+45\): numbers there have 8 digits after \+45, this has 9/,
    );
    expect(rejection('+45 2012 345').message).toMatch(/too short for Denmark \(\+45\).*8 digits/);
  });

  it('rejects a number valid only in unallocated ranges (why max metadata is used)', () => {
    // min metadata accepts these; no Danish or German number starts this way.
    expect(rejection('+4585299584').message).toMatch(/Denmark/);
    expect(rejection('+49122140631').message).toMatch(/Germany/);
  });

  it('accepts only mobile numbers (or fixed-line-or-mobile where the country does not tell them apart), saying why', () => {
    const cases: Array<[string, RegExp]> = [
      ['+1 900 555 0123', /premium-rate number \(United States \(\+1\)\)/],
      ['+44 909 123 4567', /premium-rate number \(United Kingdom \(\+44\)\)/],
      ['011-49-9001-234567', /premium-rate number \(Germany \(\+49\)\)/],
      ['+45 90 12 34 56', /premium-rate number \(Denmark/],
      ['+44 800 123 4567', /toll-free number \(United Kingdom/],
      ['+800 1234 5678', /toll-free number \(the international network code \+800\)/],
      ['+44 843 123 4567', /premium-rate|shared-cost/],
      ['+881 6 1234 5678', /satellite or international network number \(the international network code \+881\)/],
      ['+870 773 111 111', /satellite or international network number/],
      ['+44 70 1234 5678', /personal \(forwarding\) number/],
      ['011-44-2079460958', /landline number \(United Kingdom/],
      ['011-49-301234567', /landline number \(Germany/],
    ];
    for (const [input, why] of cases) {
      const e = rejection(input);
      expect(e.message, input).toMatch(why);
      expect(e.message, input).toMatch(/SMS codes are sent to mobile phone numbers only/);
    }
    // Mobile ranges, and countries that do not distinguish mobile from fixed line.
    for (const ok of [
      '+447400123456',
      '+4915123456789',
      '+33612345678',
      '+61412345678',
      '+4520123456',
      '+12015550123',
    ]) {
      expect(parsePhone(ok).e164).toBe(ok);
    }
  });

  it('rejects an unknown country code', () => {
    expect(rejection('011-999-1234567').message).toMatch(
      /unknown country code: no country has the calling code \+9, \+99 or \+999/,
    );
    expect(rejection('+2891234567').message).toMatch(/unknown country code/);
  });

  it('rejects a North American number that matches no NANP country', () => {
    expect(rejection('+1 555 555 5555').message).toMatch(
      /not a valid number for \+1 \(United States and \d+ other countries\)/,
    );
  });

  it('rejects empty input', () => {
    expect(rejection('').message).toMatch(/no phone number given/);
    expect(rejection('   ').message).toMatch(/no phone number given/);
  });

  it('rejects letters', () => {
    expect(rejection('011-45-2012345a').message).toMatch(/letters/);
    expect(rejection('1-800-FLOWERS').message).toMatch(/letters/);
    expect(rejection('+45 twenty').message).toMatch(/letters/);
  });

  it('rejects over-long input and numbers longer than E.164 allows', () => {
    expect(rejection('+45' + '2'.repeat(40)).message).toMatch(/too long \(more than 40 characters\)/);
    expect(rejection('+4520123456789012345').message).toMatch(/too long/);
  });

  it('rejects control characters without echoing them', () => {
    for (const input of ['+4520123456\n', '011-45-2012\u001b[2J3456', '+45\u202e20123456', '+45\u000020123456']) {
      const e = rejection(input);
      expect(e.message).toMatch(/control characters/);
      expect(e.message).not.toMatch(/[\u0000-\u001f\u007f\u202e]/);
    }
  });

  it('rejects garbage and other formats with a reason', () => {
    expect(rejection('hello').message).toMatch(/letters/);
    expect(rejection('!!!').message).toMatch(/wrong format/);
    expect(rejection('+').message).toMatch(/wrong format/);
    expect(rejection('011').message).toMatch(/wrong format/);
    expect(rejection('20123456').message).toMatch(/wrong format: the country code is missing/);
    expect(rejection('0045 20123456').message).toMatch(/wrong format: 00 is the international prefix used in Europe/);
    expect(rejection('+1 (201) 555-0123').message).toMatch(/wrong format/);
    expect(rejection('+45--20123456').message).toMatch(/wrong format/);
    expect(rejection('+45 ２０１２３４５６').message).toMatch(/wrong format/); // full-width digits are not normalised
    expect(rejection('+45 20123456 ext. 12').message).toMatch(/letters/);
  });

  it('never echoes the input', () => {
    for (const input of ['011-45-12345678', '+4512345678', '+45 20123', '011-999-7654321', '+4576543210987654321']) {
      const e = rejection(input);
      expect(e.message).not.toContain(input.replace(/^\+|^011-?/, '').replace(/-/g, ''));
    }
  });
});

describe('maskPhone', () => {
  it('shows the calling code and the last 4 digits only', () => {
    expect(maskPhone('+4520120123')).toBe('+45 ****0123');
    expect(maskPhone('+4512345678')).toBe('+45 ****5678');
    expect(maskPhone('+12015550123')).toBe('+1 ******0123');
    expect(maskPhone('+447400123456')).toBe('+44 ******3456');
    expect(maskPhone('+4915123456789')).toBe('+49 *******6789');
    expect(maskPhone('+35312345678')).toBe('+353 ****5678');
  });

  it('reveals nothing for short or malformed values', () => {
    expect(maskPhone('+451234')).toBe('+45 ****');
    expect(maskPhone('+4512345')).toBe('+45 ****2345'); // at least 4 stars, so the length is not obvious
    expect(maskPhone('')).toBe('****');
    expect(maskPhone('4520123456')).toBe('****');
    expect(maskPhone('+45 20 12 34 56')).toBe('****');
    expect(maskPhone('+4520123456\n')).toBe('****');
  });

  it('never shows more than the last 4 digits of the subscriber number', () => {
    for (const e164 of ['+4520123456', '+12015550123', '+442079460958', '+8821234567890']) {
      const masked = maskPhone(e164);
      const visibleDigits = masked.replace(/^\+\d+ /, '').replace(/\*/g, '');
      expect(visibleDigits).toBe(e164.slice(-4));
    }
  });

  it("knows exactly libphonenumber-js's calling codes (so masking need not load it)", () => {
    const require = createRequire(import.meta.url);
    const metadata = require('libphonenumber-js/metadata.max.json') as {
      country_calling_codes: object;
      nonGeographic: object;
    };
    const expected = [...Object.keys(metadata.country_calling_codes), ...Object.keys(metadata.nonGeographic)].sort();
    expect([...KNOWN_CALLING_CODES].sort()).toEqual(expected);
  });
});
