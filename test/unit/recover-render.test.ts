/**
 * What `recover` shows the agent. Word-boundary wrapping at the terminal width (none when not a
 * terminal), singular/plural of wrong attempts, and a plan that says "clear the lock" only when there is one.
 */
import { describe, expect, it } from 'vitest';
import type { RecoveryDone, RecoverySummary } from '../../src/core/recover.js';
import { recoveredText, summaryText, wrapLine } from '../../src/ui/recover-render.js';
import { recoverySummary } from '../fixtures/recovery-summary.js';

const summary = (o: Partial<RecoverySummary> = {}): RecoverySummary =>
  recoverySummary({ email: 'a.rather.long.address.for.wrapping@example.com', ...o });
const plan = {
  ticket: 'T-1',
  reason: 'lost phone on a train, identity checked by a call-back to the number on file',
  actor: 'agent',
  temporaryCodeTtlMs: 24 * 3600_000,
};
const words = (text: string) => text.split(/\s+/).filter(Boolean);

describe('recover summary: wrong attempts and the lock', () => {
  it('"1 wrong attempt", and no "clear the lock" when nothing is locked', () => {
    const one = summaryText(summary({ failedAttempts: 1 }), plan);
    expect(one).toContain('not locked (1 wrong attempt in a row)');
    expect(one).not.toMatch(/1 wrong attempts/);
    expect(one).not.toContain('clear the lock');
    expect(one).toContain('reset the count of wrong attempts');
    const none = summaryText(summary(), plan);
    expect(none).not.toMatch(/clear the lock|wrong attempts/);
    const locked = summaryText(summary({ failedAttempts: 5, lockedUntil: '2026-11-30T02:00:00Z' }), plan);
    expect(locked).toContain('LOCKED until 2026-11-30T02:00:00Z (5 wrong attempts)');
    expect(locked).toContain('clear the lock');
  });

  it('the result says what was cleared: a lock, or only a count', () => {
    const done = (before: RecoverySummary): RecoveryDone => ({
      outcome: 'recovered',
      email: before.email,
      ticket: 'T-1',
      reason: null,
      actor: 'agent',
      before,
      removed: { method: 'sms', recoveryCodes: 10, challenges: 0, enrolment: false, postfixadminTotp: false },
      stores: [],
      complete: true,
      exitCode: 0,
      lockCleared: true,
      sessionsRevokedAt: '2026-11-30T01:00:00.000Z',
      twoFactorRequired: false,
      temporaryCode: null,
      signOut: { ok: true, detail: '' },
    });
    expect(recoveredText(done(summary({ failedAttempts: 2 })))).toContain('wrong-attempt count reset');
    expect(recoveredText(done(summary({ failedAttempts: 2 })))).not.toContain('lock cleared');
    expect(recoveredText(done(summary({ failedAttempts: 5, lockedUntil: '2026-11-30T02:00:00Z' })))).toContain(
      'lock cleared',
    );
  });
});

describe('wrapping at the terminal width', () => {
  it('wraps on word boundaries with a hanging indent; lines that fit are kept', () => {
    const line = `  ${'reason'.padEnd(20)}${plan.reason}`;
    const wrapped = wrapLine(line, 50, 22);
    for (const l of wrapped.split('\n')) expect(l.length).toBeLessThanOrEqual(50);
    expect(
      wrapped
        .split('\n')
        .slice(1)
        .every((l) => l.startsWith(' '.repeat(22)) && l[22] !== ' '),
    ).toBe(true);
    expect(words(wrapped)).toEqual(words(line));
    expect(wrapLine('short', 50, 0)).toBe('short');
    // A word longer than the width is cut (nothing else can be done), the rest still on word boundaries.
    expect(
      wrapLine(`x ${'y'.repeat(30)} z`, 20, 0)
        .split('\n')
        .every((l) => l.length <= 20),
    ).toBe(true);
  });

  it('summary at 80 columns: no line longer, no word cut; without a width nothing is wrapped', () => {
    const s = summary({ failedAttempts: 1 });
    const wide = summaryText(s, plan);
    const narrow = summaryText(s, plan, 80);
    expect(wide.split('\n').some((l) => l.length > 80)).toBe(true);
    for (const l of narrow.split('\n')) expect(l.length).toBeLessThanOrEqual(80);
    expect(words(narrow)).toEqual(words(wide));
  });
});
