/**
 * The reply customer service pastes to the customer after `recover`: what was done, how to sign in now, how to
 * turn 2FA on again. Plain text for an e-mail, not escaped here (the terminal rendering escapes it when shown).
 */
import type { NothingToRecover, RecoveryDone, RecoveryResult } from '../core/recover.js';

/** Where the webmail's users turn two-factor authentication on. */
const TURN_ON_PATH = 'Settings > Password > Two-Factor Authentication';

const INACTIVE_NOTE =
  'Note: the mailbox itself is currently deactivated, so signing in will not work yet; we will contact you about that.';

function methodWords(method: 'totp' | 'sms' | null, phone: string | null, postfixadminTotp = false): string {
  if (method === 'totp' || postfixadminTotp) return 'the authenticator app';
  if (method === 'sms') return phone ? `text messages to ${phone}` : 'text messages to your old phone';
  return 'your old second factor';
}

/**
 * The reply for a result: none while a recovery is incomplete (the customer is told once it is done), nor when
 * the only 2FA found is PostfixAdmin's own column (no longer reached: recover clears that column).
 */
export function customerReply(result: RecoveryResult): string | null {
  if (result.outcome === 'nothing-to-recover') return nothingToRecoverReply(result);
  return result.complete ? recoveredReply(result) : null;
}

/** The reply after a complete recovery: what was removed, and how to sign in (with the temporary code, if any). */
export function recoveredReply(result: RecoveryDone): string {
  const before = result.before;
  const lines = [`Hello,`, ''];
  const what =
    before.method || before.postfixadminTotp
      ? `${methodWords(before.method, before.phone, before.postfixadminTotp)} as the second step of signing in to ${result.email}`
      : `the pending two-factor authentication setup of ${result.email}`;
  if (result.temporaryCode) {
    lines.push(
      `As requested in ticket ${result.ticket}, we have removed ${what}, and signed you out everywhere. Two-factor authentication is still required for your address.`,
      '',
      'To sign in, enter your email address and password as usual. When you are asked for a code, enter this temporary access code:',
      '',
      `    ${result.temporaryCode.code}`,
      '',
      `It works once and expires at ${result.temporaryCode.expiresAt.replace('T', ' ').replace('Z', ' UTC')}.`,
      '',
      `Right after signing in, set up your new phone: select ${TURN_ON_PATH}, choose the authenticator app or text messages, and follow the steps. If the code has expired or was used before you finished, write to us again.`,
    );
    if (before.stores.some((view) => view.oneLoginBypass && (view.status?.activated || view.error))) {
      lines.push(
        '',
        'If the sign-in page does not ask for a code at all, that is this one-time exception: the next sign-in with your password lets you in without one. Right after it, remove the lost phone from your two-factor settings and add the new one, because from the following sign-in on a code from your registered devices is asked for again.',
      );
    }
  } else {
    lines.push(
      `As requested in ticket ${result.ticket}, we have turned off two-factor authentication for ${result.email} (${methodWords(before.method, before.phone, before.postfixadminTotp)}), and signed you out everywhere.`,
      '',
      'You can now sign in to the webmail with your email address and password alone.',
      '',
      `We recommend turning two-factor authentication on again with your new phone: sign in, select ${TURN_ON_PATH}, choose the authenticator app or text messages, and follow the steps.`,
    );
  }
  if (!before.active) lines.push('', INACTIVE_NOTE);
  lines.push('', 'Kind regards,', 'Customer service');
  return lines.join('\n');
}

/** The reply when 2FA was not on: the password alone signs in, and how to turn 2FA on. */
function nothingToRecoverReply(result: NothingToRecover): string | null {
  const summary = result.before;
  if (summary.postfixadminTotp) return null;
  const lines = [
    'Hello,',
    '',
    `About ticket ${result.ticket}: two-factor authentication is not turned on for ${summary.email}, so no code from a phone is needed to sign in. You can sign in to the webmail with your email address and password alone.`,
  ];
  if (!summary.active) lines.push('', INACTIVE_NOTE);
  lines.push(
    '',
    `To protect your account, you can turn two-factor authentication on: sign in, select ${TURN_ON_PATH}, and follow the steps.`,
    '',
    'Kind regards,',
    'Customer service',
  );
  return lines.join('\n');
}
