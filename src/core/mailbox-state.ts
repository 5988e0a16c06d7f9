/**
 * Refusals that depend on the mailbox row itself, shared by the commands that act for the mailbox's user
 * (enable, send-code): an inactive mailbox cannot sign in, so it gets no factor and no sign-in code.
 */
import type { Mailbox } from '../db/accounts.js';
import { dataError } from '../errors.js';
import { Refusal, type AccountTx } from './guard.js';

/** Refuses (exit 65, audited under `action`) when the mailbox's active flag is off; null when it is active. */
export async function refuseInactiveMailbox(tx: AccountTx, mailbox: Mailbox, action: string): Promise<Refusal | null> {
  if (mailbox.active) return null;
  await tx.audit({ action, outcome: 'refused', reason: 'mailbox inactive' });
  return new Refusal(
    dataError(
      'mailbox_inactive',
      `the mailbox ${mailbox.email} is inactive (its active flag is off): it cannot sign in, so 2FA cannot be used for it`,
      'Reactivate the mailbox in the mail system first, then retry.',
    ),
  );
}
