/** The reply for the customer after `recover`, and the `recover --json` document that carries it. */
import { describe, expect, it } from 'vitest';
import type { NothingToRecover, RecoveryDone, RecoverySummary } from '../../src/core/recover.js';
import { customerReply } from '../../src/ui/customer-reply-render.js';
import { recoverySummary } from '../fixtures/recovery-summary.js';
import { nothingText, recoverDocument, recoveredText } from '../../src/ui/recover-render.js';

const before = recoverySummary;

const done = (o: Partial<RecoveryDone> = {}): RecoveryDone => ({
  outcome: 'recovered',
  email: 'jane@example.com',
  ticket: 'T-1001',
  reason: null,
  actor: 'agent',
  before: before(),
  removed: { method: 'sms', recoveryCodes: 10, challenges: 0, enrolment: false, postfixadminTotp: false },
  stores: [{ store: 'mail2fa', kind: 'mail2fa', outcome: 'changed', detail: 'removed the SMS phone' }],
  complete: true,
  exitCode: 0,
  lockCleared: false,
  sessionsRevokedAt: '2026-11-30T01:00:00.000Z',
  twoFactorRequired: false,
  temporaryCode: null,
  signOut: { ok: true, detail: '' },
  ...o,
});

const nothing = (o: Partial<RecoverySummary> = {}): NothingToRecover => ({
  outcome: 'nothing-to-recover',
  email: 'jane@example.com',
  ticket: 'T-1002',
  reason: null,
  actor: 'agent',
  before: before({ enabled: false, method: null, phone: null, ...o }),
});

describe('customerReply', () => {
  it('2FA turned off: what was removed, the password alone signs in, how to turn 2FA on again', () => {
    expect(customerReply(done())).toBe(
      [
        'Hello,',
        '',
        'As requested in ticket T-1001, we have turned off two-factor authentication for jane@example.com (text messages to +45 ****3456), and signed you out everywhere.',
        '',
        'You can now sign in to the webmail with your email address and password alone.',
        '',
        'We recommend turning two-factor authentication on again with your new phone: sign in, select Settings > Password > Two-Factor Authentication, choose the authenticator app or text messages, and follow the steps.',
        '',
        'Kind regards,',
        'Customer service',
      ].join('\n'),
    );
  });

  it('a temporary access code: the code, its expiry in UTC, and the one-login exception of a bypass store', () => {
    const reply = customerReply(
      done({
        before: before({
          method: 'totp',
          stores: [
            {
              store: 'mc',
              kind: 'mailcow',
              status: null,
              error: { code: 'x', message: 'down', exitCode: 69 },
              oneLoginBypass: true,
            },
          ],
        }),
        twoFactorRequired: true,
        temporaryCode: { code: 'abcd-efgh-jkmn-pqrs', expiresAt: '2026-12-01T10:00:00Z', bits: 80 },
      }),
    )!;
    expect(reply).toContain(
      'As requested in ticket T-1001, we have removed the authenticator app as the second step of signing in to jane@example.com, and signed you out everywhere. Two-factor authentication is still required for your address.',
    );
    expect(reply).toContain('\n\n    abcd-efgh-jkmn-pqrs\n\nIt works once and expires at 2026-12-01 10:00:00 UTC.\n');
    expect(reply).toContain('If the sign-in page does not ask for a code at all, that is this one-time exception');
    expect(reply.endsWith('\n\nKind regards,\nCustomer service')).toBe(true);
  });

  it('an inactive mailbox gets a note; an incomplete recovery and PostfixAdmin-only 2FA get no reply', () => {
    expect(customerReply(done({ before: before({ active: false }) }))).toContain(
      '\n\nNote: the mailbox itself is currently deactivated, so signing in will not work yet; we will contact you about that.\n\nKind regards,',
    );
    expect(customerReply(done({ complete: false, exitCode: 69 }))).toBeNull();
    expect(customerReply(nothing({ postfixadminTotp: true }))).toBeNull();
  });

  it('nothing to recover: 2FA is not on, the password alone signs in', () => {
    expect(customerReply(nothing())).toBe(
      [
        'Hello,',
        '',
        'About ticket T-1002: two-factor authentication is not turned on for jane@example.com, so no code from a phone is needed to sign in. You can sign in to the webmail with your email address and password alone.',
        '',
        'To protect your account, you can turn two-factor authentication on: sign in, select Settings > Password > Two-Factor Authentication, and follow the steps.',
        '',
        'Kind regards,',
        'Customer service',
      ].join('\n'),
    );
  });

  it('the terminal shows the reply between rulers with control characters escaped; the reply itself stays plain', () => {
    const result = nothing({ email: 'jane@example.com\u001b[2J' });
    expect(customerReply(result)).toContain('for jane@example.com\u001b[2J, so');
    const shown = nothingText(result);
    expect(shown).toContain('for jane@example.com\\x1b[2J, so');
    expect(shown).not.toContain('\u001b');
    expect(shown).toContain(`Reply for the customer (copy between the lines):\n${'-'.repeat(72)}\nHello,\n`);
    expect(recoveredText(done())).toContain(`\n${'-'.repeat(72)}\nHello,\n\nAs requested in ticket T-1001`);
  });
});

describe('recoverDocument', () => {
  it('ok, the result, then the reply (the same order as the result always had)', () => {
    const result = done();
    const document = recoverDocument(result);
    expect(Object.keys(document)).toEqual(['ok', ...Object.keys(result), 'reply']);
    expect(document).toMatchObject({ ok: true, reply: customerReply(result) });
    expect(recoverDocument(nothing())).toMatchObject({
      ok: true,
      outcome: 'nothing-to-recover',
      reply: customerReply(nothing()),
    });
  });

  it('incomplete: not ok, no reply, and an error naming the stores that were not reset', () => {
    const result = done({
      complete: false,
      exitCode: 69,
      stores: [
        { store: 'mail2fa', kind: 'mail2fa', outcome: 'changed', detail: 'removed' },
        { store: 'pfa', kind: 'postfixadmin', outcome: 'failed', detail: 'unreachable' },
      ],
    });
    expect(recoverDocument(result)).toEqual({
      ok: false,
      ...result,
      reply: null,
      error: {
        code: 'recover_incomplete',
        message: '2FA was not reset in every store: pfa',
        hint: 'Run the same recover command again: it completes the rest.',
      },
    });
  });
});
