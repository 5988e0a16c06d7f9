/** `recover`: the ticket, the reason, and the temporary access code's lifetime. */
import * as z from 'zod/mini';
import { usageError } from '../../errors.js';
import { checkTemporaryCodeTtl, requireTicket, TEMPORARY_CODE_DEFAULT_TTL_MS } from '../../core/recover.js';
import { parseDuration } from '../../core/time.js';
import { GLOBALS, flag, resolve, rule, text } from './parse.js';

const flags = z.object({
  email: z.string(),
  ticket: text(),
  reason: text(),
  temporaryCode: flag(),
  ttl: text(),
  yes: flag(),
  ...GLOBALS,
});
type Flags = z.output<typeof flags>;

export const recoverInput = z.pipe(
  flags.check(
    // The ticket is required before anything else is looked at; its configured pattern is checked later, in core.
    rule((f) => requireTicket(f.ticket)),
    rule((f) =>
      f.ttl !== undefined && !f.temporaryCode
        ? usageError('--ttl goes with --temporary-code', 'Add --temporary-code, or leave out --ttl.')
        : undefined,
    ),
  ),
  resolve(({ ticket, temporaryCode, ttl, ...rest }: Flags) => {
    requireTicket(ticket); // checked by the first rule: here it only narrows the type
    const temporaryCodeTtlMs = temporaryCode
      ? checkTemporaryCodeTtl(ttl === undefined ? TEMPORARY_CODE_DEFAULT_TTL_MS : parseDuration(ttl, '--ttl'))
      : null;
    return { ...rest, ticket, temporaryCodeTtlMs };
  }),
);
export type RecoverInput = z.output<typeof recoverInput>;
