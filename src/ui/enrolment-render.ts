/**
 * The text of `enable`: the QR block and manual key, the "code sent" line, the recovery codes and the help
 * article's closing message. Pure functions over the core's results; the command writes them.
 */
import type { CompletedEnrolment, StartedEnrolment } from '../core/enrolment.js';
import { escapeControl } from '../text.js';
import { formatSecretForManualEntry } from '../totp/totp.js';

/** The QR code (drawn by the caller, always in explicit colours) and the key for typing it in by hand. */
export function appSetupText(started: StartedEnrolment, qr: string): string {
  const totp = started.totp!;
  return [
    'In your authenticator app (e.g. Microsoft Authenticator) choose "Add account",',
    'then scan this QR code:',
    '',
    qr,
    '',
    'Can\'t scan it? Add the account by hand ("enter a setup key"):',
    `  Account:  ${escapeControl(totp.label)}`,
    `  Issuer:   ${escapeControl(totp.issuer)}`,
    `  Key:      ${formatSecretForManualEntry(totp.secret)}`,
    '  Type:     time based, 6 digits, every 30 seconds',
    '',
  ].join('\n');
}

/** The two-step form's "what now" after --start. */
export function confirmHint(started: StartedEnrolment): string {
  const source = started.method === 'totp' ? 'the code the app shows' : 'the code from the text message';
  return [
    `Enrolment ${started.enrolmentId} is pending until ${started.expiresAt}${started.replacing ? ` (it will replace the current ${started.replacing === 'totp' ? 'authenticator app' : 'SMS'} factor)` : ''}.`,
    `Confirm it within 10 minutes with ${source}:`,
    `  mail2fa enable ${escapeControl(started.email)} --confirm --code CODE${started.store ? ` --store ${escapeControl(started.store)}` : ''}`,
    '',
  ].join('\n');
}

/** Recovery codes, once, in two columns, and the closing message users expect. */
export function completedText(done: CompletedEnrolment): string {
  const how = done.method === 'totp' ? 'authenticator app' : `SMS to ${done.phone ?? 'the phone'}`;
  const codes = done.recoveryCodes;
  const half = Math.ceil(codes.length / 2);
  const rows: string[] = [];
  for (let index = 0; index < half; index++) {
    const left = `${String(index + 1).padStart(2)}. ${codes[index]}`;
    const right =
      codes[index + half] !== undefined ? `${String(index + half + 1).padStart(2)}. ${codes[index + half]}` : '';
    rows.push(`  ${left}    ${right}`.trimEnd());
  }
  const everySignIn =
    done.method === 'totp'
      ? 'Going forward you will be asked to open the app on your phone\nand enter the code every time you sign in.'
      : 'Going forward you will be asked to type the one-time code received\non your phone every time you sign in.';
  return [
    '',
    `Two-factor authentication is now on for ${escapeControl(done.email)} (${how}${done.store ? `, in store ${escapeControl(done.store)}` : ''})${done.replaced ? `, replacing the previous ${done.replaced === 'totp' ? 'authenticator app' : 'SMS'} factor` : ''}.`,
    '',
    'Recovery codes: each works once, in place of a code, if you lose your phone.',
    'Keep them somewhere safe now: they are not shown again.',
    '',
    ...rows,
    '',
    'You have been signed out and will be asked to sign in once more.',
    `Done! ${everySignIn}`,
    '',
  ].join('\n');
}
