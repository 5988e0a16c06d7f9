import { usageError } from '../errors.js';

/** Formats epoch milliseconds as an ISO-8601 UTC time without milliseconds. */
export function isoTime(ms: number | null | undefined): string | null {
  if (ms === null || ms === undefined) return null;
  return new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');
}

const UNITS: Record<string, number> = { s: 1000, m: 60_000, h: 3_600_000, d: 86_400_000, w: 604_800_000 };

/** Parses "90s", "15m", "24h", "7d", "2w" into milliseconds; `flag` names the option in the error (exit 64). */
export function parseDuration(text: string, flag: string): number {
  const match = /^([1-9][0-9]{0,5})([smhdw])$/.exec(text);
  if (!match)
    throw usageError(`${flag}: "${text.slice(0, 40)}" is not a duration`, 'Use a number and a unit: 30m, 24h, 7d, 2w.');
  return Number(match[1]) * UNITS[match[2]!]!;
}
