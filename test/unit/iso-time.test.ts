/**
 * isoTime formats by arithmetic for 1970-9999: it must print exactly what Date#toISOString prints without the
 * milliseconds, for every instant, and fall back to Date outside that range.
 */
import { describe, expect, it } from 'vitest';
import { isoTime } from '../../src/core/time.js';

const viaDate = (ms: number) => new Date(ms).toISOString().replace(/\.\d{3}Z$/, 'Z');

describe('isoTime', () => {
  it('is null for null and undefined', () => {
    expect(isoTime(null)).toBeNull();
    expect(isoTime(undefined)).toBeNull();
  });

  it('equals toISOString at the edges: epoch, leap days, century rules, ends of days and years, 9999', () => {
    const edges = [
      0,
      999,
      1000,
      86_399_999,
      86_400_000,
      Date.UTC(1999, 11, 31, 23, 59, 59),
      Date.UTC(2000, 1, 29, 12, 0, 0),
      Date.UTC(2000, 2, 1),
      Date.UTC(2024, 1, 29, 23, 59, 59, 999),
      Date.UTC(2100, 1, 28, 23, 59, 59),
      Date.UTC(2100, 2, 1),
      Date.UTC(2400, 1, 29),
      Date.UTC(2026, 10, 30, 4, 35, 33, 500),
      Date.UTC(9999, 11, 31, 23, 59, 59, 999),
    ];
    for (const ms of edges) expect(isoTime(ms)).toBe(viaDate(ms));
  });

  it('equals toISOString for every day from 1970 to 2200 and for 50,000 random instants up to 9999', () => {
    for (let day = 0; day < 84_000; day++) {
      const ms = day * 86_400_000 + ((day * 7_919_993) % 86_400_000);
      if (isoTime(ms) !== viaDate(ms)) expect(isoTime(ms)).toBe(viaDate(ms));
    }
    let seed = 42;
    const random = () => {
      seed = (seed * 1_103_515_245 + 12_345) % 2_147_483_648;
      return seed / 2_147_483_648;
    };
    for (let i = 0; i < 50_000; i++) {
      const ms = Math.floor(random() * 253_402_300_800_000) + (i % 2 ? 0.5 : 0);
      if (isoTime(ms) !== viaDate(ms)) expect(isoTime(ms)).toBe(viaDate(ms));
    }
  });

  it('falls back to Date before 1970 and from the year 10000 on', () => {
    for (const ms of [-1, -86_400_000, Date.UTC(1969, 11, 31, 23, 59, 59), 253_402_300_800_000, 8.64e15])
      expect(isoTime(ms)).toBe(viaDate(ms));
    expect(() => isoTime(Number.NaN)).toThrow(RangeError);
  });
});
