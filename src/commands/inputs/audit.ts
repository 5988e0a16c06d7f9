/** `audit`: the filters, the order, the row limit and the format. --since/--until are read against the clock later. */
import * as z from 'zod/mini';
import { usageError } from '../../errors.js';
import { GLOBALS, flag, resolve, rule, text } from './parse.js';

export const AUDIT_FORMATS = ['table', 'json', 'ndjson', 'csv'] as const;
export const AUDIT_OUTCOMES = ['ok', 'refused', 'failed'] as const;

const flags = z.object({
  ...GLOBALS,
  account: text(),
  since: text(),
  until: text(),
  action: text(),
  // The program's global --actor: audit writes nothing, so here it filters (the command declares it too).
  actor: text(),
  ticket: text(),
  outcome: z.optional(z.enum(AUDIT_OUTCOMES)),
  format: z.optional(z.enum(AUDIT_FORMATS)),
  limit: text(),
  oldestFirst: flag(),
});
type Flags = z.output<typeof flags>;

export const auditInput = z.pipe(
  flags.check(
    rule((f) =>
      f.json && f.format && f.format !== 'json' ? usageError(`--json conflicts with --format ${f.format}`) : undefined,
    ),
    rule((f) =>
      f.limit !== undefined && !/^[1-9][0-9]{0,8}$/.test(f.limit)
        ? usageError('--limit: must be a positive whole number')
        : undefined,
    ),
  ),
  resolve(({ format, limit, oldestFirst, ...rest }: Flags) => ({
    ...rest,
    format: rest.json ? ('json' as const) : (format ?? 'table'),
    ...(limit === undefined ? {} : { limit: Number(limit) }),
    order: oldestFirst ? ('oldest-first' as const) : ('newest-first' as const),
  })),
);
export type AuditInput = z.output<typeof auditInput>;
