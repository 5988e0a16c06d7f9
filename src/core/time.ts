import { usageError } from '../errors.js';

const DAY_MS = 86_400_000;
/** 10000-01-01T00:00:00Z: below it (and from 1970 on) the year has four digits and the arithmetic below holds. */
const YEAR_10000_MS = 253_402_300_800_000;
const TWO_DIGITS = Array.from({ length: 100 }, (_, i) => String(i).padStart(2, '0'));

/**
 * Formats epoch milliseconds as an ISO-8601 UTC time without milliseconds: exactly
 * `new Date(ms).toISOString()` without its milliseconds, computed by hand for 1970-9999 (the civil-from-days
 * algorithm of H. Hinnant), since bulk status formats up to three dates per row and a Date plus a regular
 * expression per date cost three times as much.
 */
export function isoTime(ms: number | null | undefined): string | null {
  if (ms === null || ms === undefined) return null;
  if (!(ms >= 0 && ms < YEAR_10000_MS)) return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
  const days = Math.floor(ms / DAY_MS);
  const seconds = Math.floor((ms - days * DAY_MS) / 1000);
  const shifted = days + 719_468; // days since 0000-03-01
  const era = Math.floor(shifted / 146_097);
  const dayOfEra = shifted - era * 146_097;
  const yearOfEra = Math.floor(
    (dayOfEra - Math.floor(dayOfEra / 1460) + Math.floor(dayOfEra / 36_524) - Math.floor(dayOfEra / 146_096)) / 365,
  );
  const dayOfYear = dayOfEra - (365 * yearOfEra + Math.floor(yearOfEra / 4) - Math.floor(yearOfEra / 100));
  const monthFromMarch = Math.floor((5 * dayOfYear + 2) / 153);
  const day = dayOfYear - Math.floor((153 * monthFromMarch + 2) / 5) + 1;
  const month = monthFromMarch < 10 ? monthFromMarch + 3 : monthFromMarch - 9;
  const year = yearOfEra + era * 400 + (month <= 2 ? 1 : 0);
  const hour = Math.floor(seconds / 3600);
  const minute = Math.floor((seconds - hour * 3600) / 60);
  return `${TWO_DIGITS[Math.floor(year / 100)]}${TWO_DIGITS[year % 100]}-${TWO_DIGITS[month]}-${TWO_DIGITS[day]}T${TWO_DIGITS[hour]}:${TWO_DIGITS[minute]}:${TWO_DIGITS[seconds % 60]}Z`;
}

const UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** Parses "90s", "15m", "24h", "7d", "2w" into milliseconds; `flag` names the option in the error (exit 64). */
export function parseDuration(text: string, flag: string): number {
  const match = /^([1-9][0-9]{0,5})([smhdw])$/.exec(text);
  if (!match)
    throw usageError(`${flag}: "${text.slice(0, 40)}" is not a duration`, 'Use a number and a unit: 30m, 24h, 7d, 2w.');
  return Number(match[1]) * UNITS[match[2]!]!;
}
