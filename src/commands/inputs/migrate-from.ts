/** `migrate-from <source>`: which foreign store, and what to do with its own copy of the secrets. */
import * as z from 'zod/mini';
import { usageError } from '../../errors.js';
import { GLOBALS, flag, resolve, rule, text } from './parse.js';

export const MIGRATION_SOURCES = ['postfixadmin', 'roundcube'] as const;
type Source = (typeof MIGRATION_SOURCES)[number];
const isSource = (source: string): source is Source => (MIGRATION_SOURCES as readonly string[]).includes(source);

const flags = z.object({
  source: z.string(),
  dryRun: flag(),
  clearSource: flag(),
  clearPlaintext: flag(),
  store: text(),
  skipInvalid: flag(),
  yes: flag(),
  ...GLOBALS,
});
type Flags = z.output<typeof flags>;

export const migrateFromInput = z.pipe(
  flags.check(
    rule((f) =>
      isSource(f.source)
        ? undefined
        : usageError(
            `unknown source "${f.source}": ${MIGRATION_SOURCES.join(' or ')}`,
            'Example: mail2fa migrate-from roundcube --dry-run',
          ),
    ),
    rule((f) =>
      f.source === 'postfixadmin' && f.store !== undefined
        ? usageError('--store applies to migrate-from roundcube only')
        : undefined,
    ),
  ),
  resolve(({ source, clearSource, clearPlaintext, ...rest }: Flags) => ({
    ...rest,
    source: source as Source, // checked by the first rule
    // --clear-plaintext is PostfixAdmin's name for it.
    clear: clearSource || clearPlaintext,
  })),
);
export type MigrateFromInput = z.output<typeof migrateFromInput>;
