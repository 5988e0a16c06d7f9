/**
 * `send-code`: a sign-in code by SMS to the account's enrolled phone (for the webmail's sign-in page, and for
 * `disable` on SMS accounts). The number is decrypted only to hand it to the gateway; the rate limit, "only the
 * newest code is valid" and "nothing stored when the gateway fails" live in sms-challenge.ts.
 */
import type { Context } from '../context.js';
import { maskPhone } from '../sms/phone.js';
import type { SmsDelivery } from '../sms/transports.js';
import { canonicalAddress } from './address.js';
import { dataError } from '../errors.js';
import { readFactor } from './factors.js';
import { Refusal, accountTransaction } from './guard.js';
import { refuseInactiveMailbox } from './mailbox-state.js';
import { notEnabled } from './owner.js';
import { abandonSmsChallenge, activateSmsChallenge, deliverSmsChallenge, recordSmsChallenge } from './sms-challenge.js';

export interface SentSignInCode {
  email: string;
  /** Masked: "+45 ****3456". */
  phone: string;
  expiresAt: string;
  delivery: SmsDelivery;
}

export async function sendSignInCode(ctx: Context, input: { email: string }): Promise<SentSignInCode> {
  const email = canonicalAddress(input.email);
  const mailbox = await (await ctx.accounts()).findExact(email);
  const tables = ctx.tables;
  // Record, then send outside any transaction, then activate (or remove) the code: no write transaction stays
  // open across the gateway's network round trip.
  const pending = await accountTransaction(ctx, email, async (tx) => {
    // A locked account cannot sign in with any code: do not spend a text message on it.
    const locked = await tx.refuseIfLocked('send-code');
    if (locked) return locked;
    const inactive = await refuseInactiveMailbox(tx, mailbox, 'send-code');
    if (inactive) return inactive;
    const factor = await readFactor(tx.trx, tables, email);
    if (factor?.method !== 'sms' || !factor.phone_ct) {
      await tx.audit({ action: 'send-code', outcome: 'refused', reason: factor ? 'not an SMS account' : '2FA off' });
      return new Refusal(
        factor
          ? dataError(
              'not_sms',
              `${email} uses an authenticator app, not SMS: there is no code to send`,
              'Sign in with the code the app shows (or a recovery code).',
            )
          : notEnabled(email, 'there is no phone to send a code to'),
      );
    }
    // An integrity failure here (a tampered or copied row) is a 78, not a send.
    const e164 = tx.vault().open(tables.factor, 'phone_ct', email, factor.phone_ct);
    return recordSmsChallenge(tx, { e164, masked: factor.phone_masked ?? maskPhone(e164) }, 'send-code');
  });
  const sent = await deliverSmsChallenge(ctx, pending);
  const done = await accountTransaction(ctx, email, (tx) =>
    'error' in sent ? abandonSmsChallenge(tx, pending, sent.error) : activateSmsChallenge(tx, pending, sent.delivery),
  );
  return { email, phone: done.maskedPhone, expiresAt: done.expiresAt, delivery: done.delivery };
}
