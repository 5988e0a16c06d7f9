/** `status`: which accounts (addresses, --all, --domain, --file), which of them to show, and the format. */
import * as z from 'zod/mini';
import { usageError } from '../../errors.js';
import { GLOBALS, flag, resolve, rule, text } from './parse.js';

export const STATUS_FORMATS = ['table', 'json', 'ndjson', 'csv'] as const;

const flags = z.object({
  emails: z.array(z.string()),
  all: flag(),
  domain: text(),
  file: text(),
  enabled: flag(),
  disabled: flag(),
  format: z.optional(z.enum(STATUS_FORMATS)),
  requireEnabled: flag(),
  ...GLOBALS,
});
type Flags = z.output<typeof flags>;

const sources = (f: Flags) =>
  [f.emails.length > 0, f.all || f.domain !== undefined, f.file !== undefined].filter(Boolean).length;

/** Where the addresses come from. */
export type StatusSource =
  | { kind: 'emails'; emails: string[] }
  | { kind: 'all' }
  | { kind: 'domain'; domain: string }
  | { kind: 'file'; file: string };

export const statusInput = z.pipe(
  flags.check(
    rule((f) =>
      f.json && f.format && f.format !== 'json' ? usageError(`--json conflicts with --format ${f.format}`) : undefined,
    ),
    rule((f) => (f.enabled && f.disabled ? usageError('--enabled and --disabled exclude each other') : undefined)),
    rule((f) =>
      sources(f) === 0
        ? usageError(
            'say which accounts: give addresses, --all, --domain D or --file F',
            'Example: mail2fa status --all',
          )
        : undefined,
    ),
    rule((f) =>
      sources(f) > 1 ? usageError('give addresses, --all/--domain or --file, not several of them') : undefined,
    ),
    rule((f) =>
      f.all && f.domain !== undefined
        ? usageError('--all and --domain exclude each other', 'Use --domain D alone for one domain.')
        : undefined,
    ),
  ),
  resolve(({ emails, all, domain, file, enabled, disabled, format, ...rest }: Flags) => {
    const source: StatusSource =
      domain !== undefined
        ? { kind: 'domain', domain }
        : all
          ? { kind: 'all' }
          : file !== undefined
            ? { kind: 'file', file }
            : { kind: 'emails', emails };
    const filter = enabled ? ('enabled' as const) : disabled ? ('disabled' as const) : undefined;
    return {
      ...rest,
      source,
      ...(filter ? { filter } : {}),
      format: rest.json ? ('json' as const) : (format ?? 'table'),
    };
  }),
);
export type StatusInput = z.output<typeof statusInput>;
