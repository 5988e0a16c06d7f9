/**
 * `codes regenerate`: replaces all ten recovery codes after the owner proves ownership (password + current code).
 * The new codes are returned once, to be shown once; only their keyed hashes are stored.
 */
import type { Context } from '../context.js';
import { readFactor, replaceRecoveryCodes } from './factors.js';
import { accountTransaction, Refusal } from './guard.js';
import { checkPassword, notEnabled, proveOwner } from './owner.js';
import { isoTime } from './time.js';
import type { CodeKind, ParsedCode } from './factor-check.js';

export interface RegenerateInput {
  email: string;
  password: string;
  code: ParsedCode;
}

export interface RegenerateResult {
  email: string;
  method: 'totp' | 'sms';
  codeKind: CodeKind;
  /** The new recovery codes, in their canonical form. Shown once; not stored in plaintext. */
  recoveryCodes: string[];
  createdAt: string;
}

export async function regenerateRecoveryCodes(ctx: Context, input: RegenerateInput): Promise<RegenerateResult> {
  const { mailbox, passwordOk } = await checkPassword(ctx, input.email, input.password);
  return accountTransaction(ctx, mailbox.email, async (tx) => {
    const factor = await readFactor(tx.trx, ctx.tables, tx.account);
    if (!factor) throw notEnabled(tx.account, 'it has no recovery codes to replace');
    const kind = await proveOwner(tx, 'codes-regenerate', factor, passwordOk, input.code);
    if (kind instanceof Refusal) return kind;
    const codes = await replaceRecoveryCodes(tx.trx, ctx.tables, tx.vault(), tx.now, tx.account);
    await tx.audit({
      action: 'codes-regenerate',
      outcome: 'ok',
      detail: { method: factor.method, code: kind, count: codes.length },
    });
    return {
      email: tx.account,
      method: factor.method,
      codeKind: kind,
      recoveryCodes: codes,
      createdAt: isoTime(tx.now)!,
    };
  });
}
