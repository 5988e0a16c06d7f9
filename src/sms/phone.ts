/**
 * Phone numbers for SMS enrolment: the `011-<country code>-<number>` form users are told to type and E.164 `+<digits>`,
 * validated against the country's number plan, and masked for display ("+45 ****0123").
 */
import { createRequire } from 'node:module';
import type * as LibPhone from 'libphonenumber-js/max';
import { dataError } from '../errors.js';

export interface Phone {
  /** "+4520123456" */
  e164: string;
  /** "45" */
  countryCallingCode: string;
  /** ISO 3166 region, e.g. "DK"; absent for non-geographic numbers. */
  country?: string;
  /** "+45 ****0123" */
  masked: string;
}

export const PHONE_FORMAT_HINT = 'Use 011-<country code>-<number>, e.g. 011-45-20123456, or +4520123456';

const MAX_INPUT = 40;
/** E.164: at most 15 digits, country calling code included. */
const MAX_DIGITS = 15;

/**
 * `max` metadata, not `min`: with `min`, isValid() only checks the length and a coarse leading-digit pattern, so it
 * accepts numbers in ranges no country has allocated (e.g. +45 85…, +45 36 0…, +49 122…). Loaded lazily with
 * require(): importing libphonenumber-js costs ~50 ms (CJS) to ~90 ms (ESM), which commands that only mask
 * numbers must not pay.
 */
type Lib = typeof LibPhone;
interface MetadataJson {
  country_calling_codes: Record<string, string[]>;
  countries: Record<string, [string, string, string, number[], ...unknown[]]>;
}
let lib: { phone: Lib; metadata: MetadataJson } | undefined;
function loadLib(): { phone: Lib; metadata: MetadataJson } {
  if (!lib) {
    const require = createRequire(import.meta.url);
    lib = {
      phone: require('libphonenumber-js/max') as Lib,
      metadata: require('libphonenumber-js/metadata.max.json') as MetadataJson,
    };
  }
  return lib;
}

const badPhone = (why: string) => dataError('bad_phone', `invalid phone number: ${why}`, PHONE_FORMAT_HINT);

const CONTROL = /[\p{Cc}\p{Cf}\u2028\u2029]/u;
const LETTER = /\p{L}/u;
/** Digit groups separated by single spaces or dashes, after the international prefix (011 or +). */
const SHAPE = /^(\+|011)[ -]?([0-9]+(?:[ -][0-9]+)*)$/;

/**
 * Parses `011-<country code>-<number>` (e.g. 011-45-20123456) or E.164 (+4520123456), spaces or
 * dashes between digit groups allowed. Throws dataError('bad_phone') saying why; the input is never echoed.
 */
export function parsePhone(input: string): Phone {
  if (typeof input !== 'string') throw badPhone('wrong format: expected text');
  if (CONTROL.test(input)) throw badPhone('wrong format: it contains control characters');
  const text = input.trim();
  if (text === '') throw badPhone('no phone number given');
  if (text.length > MAX_INPUT) throw badPhone(`too long (more than ${MAX_INPUT} characters)`);
  if (LETTER.test(text)) throw badPhone('wrong format: it contains letters; a phone number has only digits');
  const shape = SHAPE.exec(text);
  if (!shape) {
    const compact = text.replace(/[ -]/g, '');
    if (/^00[1-9]/.test(compact)) {
      throw badPhone(
        'wrong format: 00 is the international prefix used in Europe; start with 011 (or +) followed by the country code',
      );
    }
    if (/^[0-9]+$/.test(compact))
      throw badPhone('wrong format: the country code is missing; start with 011 (or +) followed by the country code');
    throw badPhone(
      'wrong format: only digits are allowed, after 011 or +, with single spaces or dashes between groups',
    );
  }
  const prefix = shape[1]!;
  const digits = shape[2]!.replace(/[ -]/g, '');
  if (digits.length > MAX_DIGITS)
    throw badPhone(`too long: an international number has at most ${MAX_DIGITS} digits after ${prefix}`);

  const { phone: libphone, metadata } = loadLib();
  let parsed: LibPhone.PhoneNumber;
  try {
    // 011 is the North American international prefix, so the 011- form parses with default country US.
    parsed = libphone.parsePhoneNumberWithError(prefix === '011' ? `011${digits}` : `+${digits}`, 'US');
  } catch (err) {
    const reason = (err as { message?: string }).message;
    if (reason === 'INVALID_COUNTRY') {
      const candidates = [1, 2, 3].filter((n) => n <= digits.length).map((n) => `+${digits.slice(0, n)}`);
      throw badPhone(
        `unknown country code: no country has the calling code ${candidates.join(', ').replace(/, ([^,]*)$/, ' or $1')}`,
      );
    }
    if (reason === 'TOO_SHORT') throw badPhone('too short: the number after the country code is missing or incomplete');
    if (reason === 'TOO_LONG') throw badPhone('too long for an international number');
    throw badPhone('wrong format: not a phone number');
  }

  const cc = parsed.countryCallingCode;
  const where = regionLabel(parsed.country, cc, metadata);
  if (!parsed.isValid()) {
    const nationalLength = parsed.nationalNumber.length;
    // A shared code whose number matched no country (e.g. +1 555…): the main country's lengths apply.
    const lengthCountry = parsed.country ?? metadata.country_calling_codes[cc]?.[0];
    const lengths = lengthCountry ? metadata.countries[lengthCountry]?.[3] : undefined;
    const expected = lengths?.length ? describeLengths(lengths) : undefined;
    const lengthProblem = libphone.validatePhoneNumberLength(parsed.number);
    if (lengthProblem === 'TOO_SHORT' || lengthProblem === 'TOO_LONG' || lengthProblem === 'INVALID_LENGTH') {
      const what =
        lengthProblem === 'TOO_SHORT' ? 'too short' : lengthProblem === 'TOO_LONG' ? 'too long' : 'the wrong length';
      throw badPhone(
        `${what} for ${where}: ${expected ? `numbers there have ${expected} after +${cc}` : 'no number there has that many digits'}, this has ${nationalLength}`,
      );
    }
    throw badPhone(
      `not a valid number for ${where}: ${nationalLength} digit${nationalLength === 1 ? '' : 's'} after +${cc} is a possible length, but no number in the +${cc} number plan starts with these digits`,
    );
  }
  refuseUnlessMobile(parsed, where);
  return {
    e164: parsed.number,
    countryCallingCode: cc,
    ...(parsed.country ? { country: parsed.country } : {}),
    masked: maskPhone(parsed.number),
  };
}

/** Number types (libphonenumber-js `max` metadata) that are no mobile phone, and how the refusal names them. */
const NOT_MOBILE: Record<string, string> = {
  PREMIUM_RATE: 'a premium-rate number',
  TOLL_FREE: 'a toll-free number',
  SHARED_COST: 'a shared-cost number',
  FIXED_LINE: 'a landline number',
  VOIP: 'a VoIP number',
  PERSONAL_NUMBER: 'a personal (forwarding) number',
  PAGER: 'a pager number',
  UAN: 'a company (universal access) number',
  VOICEMAIL: 'a voicemail access number',
};

/**
 * SMS codes go to mobile phones only: a premium-rate, toll-free or shared-cost number could bill the site (or an
 * attacker's line) for every code, and a landline or satellite phone cannot receive them. Countries that do not
 * tell mobile from fixed-line numbers (the US, Denmark …) report FIXED_LINE_OR_MOBILE, which is accepted.
 */
function refuseUnlessMobile(parsed: LibPhone.PhoneNumber, where: string): void {
  const onlyMobile = 'SMS codes are sent to mobile phone numbers only';
  const type = parsed.getType();
  const named = type ? NOT_MOBILE[type] : undefined;
  if (named) throw badPhone(`this is ${named} (${where}); ${onlyMobile}`);
  // Non-geographic codes (+870, +881, +882 …): satellite phones and international networks, whatever their type.
  if (!parsed.country) throw badPhone(`this is a satellite or international network number (${where}); ${onlyMobile}`);
  if (type === 'MOBILE' || type === 'FIXED_LINE_OR_MOBILE') return;
  throw badPhone(`this number is in no mobile range of ${where}; ${onlyMobile}`);
}

let regionNames: Intl.DisplayNames | undefined;
function countryName(region: string): string {
  regionNames ??= new Intl.DisplayNames(['en'], { type: 'region' });
  try {
    return regionNames.of(region) ?? region;
  } catch {
    return region;
  }
}

/** "Denmark (+45)"; for a shared code whose number matched no country: "+1 (United States and 24 other countries)". */
function regionLabel(country: string | undefined, cc: string, metadata: MetadataJson): string {
  if (country) return `${countryName(country)} (+${cc})`;
  const sharing = metadata.country_calling_codes[cc] ?? [];
  const main = sharing[0];
  if (!main || main === '001') return `the international network code +${cc}`;
  if (sharing.length === 1) return `${countryName(main)} (+${cc})`;
  return `+${cc} (${countryName(main)} and ${sharing.length - 1} other countries)`;
}

function describeLengths(lengths: number[]): string {
  const unique = [...new Set(lengths)].sort((a, b) => a - b);
  if (unique.length === 1) return `${unique[0]} digits`;
  const contiguous = unique.every((n, i) => i === 0 || n === unique[i - 1]! + 1);
  if (contiguous && unique.length > 2) return `${unique[0]} to ${unique[unique.length - 1]} digits`;
  return `${unique.slice(0, -1).join(', ')} or ${unique[unique.length - 1]} digits`;
}

/**
 * Every assigned country calling code (geographic and non-geographic), as in libphonenumber-js's metadata; a test
 * keeps the two in step. Calling codes are prefix-free, so the first match of 1, 2 or 3 digits is the code. Kept
 * here so that masking never loads libphonenumber-js.
 */
const CALLING_CODES = new Set(
  (
    '1 7 20 27 30 31 32 33 34 36 39 40 41 43 44 45 46 47 48 49 51 52 53 54 55 56 57 58 60 61 62 63 64 65 66 81 82 84 86 ' +
    '90 91 92 93 94 95 98 211 212 213 216 218 220 221 222 223 224 225 226 227 228 229 230 231 232 233 234 235 236 237 ' +
    '238 239 240 241 242 243 244 245 246 247 248 249 250 251 252 253 254 255 256 257 258 260 261 262 263 264 265 266 ' +
    '267 268 269 290 291 297 298 299 350 351 352 353 354 355 356 357 358 359 370 371 372 373 374 375 376 377 378 380 ' +
    '381 382 383 385 386 387 389 420 421 423 500 501 502 503 504 505 506 507 508 509 590 591 592 593 594 595 596 597 ' +
    '598 599 670 672 673 674 675 676 677 678 679 680 681 682 683 685 686 687 688 689 690 691 692 800 808 850 852 853 ' +
    '855 856 870 878 880 881 882 883 886 888 960 961 962 963 964 965 966 967 968 970 971 972 973 974 975 976 977 979 ' +
    '992 993 994 995 996 998'
  ).split(' '),
);
export const KNOWN_CALLING_CODES: ReadonlySet<string> = CALLING_CODES;

/**
 * "+45 ****0123": the country calling code, then every other digit masked except the last 4. Never reveals more than
 * the last 4 digits, even for input that is not a well-formed E.164 number.
 */
export function maskPhone(e164: string): string {
  const match = /^\+([0-9]{1,15})$/.exec(e164);
  if (!match) return '****';
  const digits = match[1]!;
  const cc = [1, 2, 3].map((n) => digits.slice(0, n)).find((p) => p.length < digits.length && CALLING_CODES.has(p));
  const rest = cc ? digits.slice(cc.length) : digits;
  // Too few digits to hide anything while showing 4: mask them all.
  const shown = rest.length > 4 ? rest.slice(-4) : '';
  const masked = '*'.repeat(Math.max(rest.length - shown.length, 4)) + shown;
  return cc ? `+${cc} ${masked}` : `+${masked}`;
}
