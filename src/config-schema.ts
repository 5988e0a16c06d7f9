/**
 * The config file's schema (zod) and its validation: every problem at once. Loaded only when there is a config
 * file or object to check: a run on the defaults (the embedded database, env and flags only) never loads zod, which
 * is a good part of a single command's start-up time (docs/benchmarks.md).
 */
import * as z from 'zod';
import { escapeControl } from './text.js';
import { knownStoreKinds, storeDefinition } from './stores/registry.js';
import { OWN_STORE_NAME, checkDbUrl } from './config.js';

const identifier = z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_]{0,63}$/, 'must be a plain SQL identifier (letters, digits, _)');
const prefix = z.string().regex(/^[A-Za-z0-9_]{0,32}$/, 'may hold only letters, digits and _ (at most 32)');

const AccountsSchema = z.strictObject({
  /** `mail2fa`: the reference `mailbox` table; `postfixadmin`: PostfixAdmin's `mailbox` table. */
  preset: z.enum(['mail2fa', 'postfixadmin']).default('mail2fa'),
  /** Prefix of the mail system's tables (PostfixAdmin's $CONF['database_prefix']). */
  tablePrefix: prefix.default(''),
  table: identifier.optional(),
  columns: z
    .strictObject({
      email: identifier,
      password: identifier,
      active: identifier,
      domain: identifier,
      alternateEmail: identifier.nullable(),
      totpSecret: identifier.nullable(),
    })
    .partial()
    .default({}),
});

const SmsSchema = z.strictObject({
  transport: z.enum(['outbox', 'webhook', 'twilio']).default('outbox'),
  timeoutMs: z.number().int().min(100).max(120_000).default(10_000),
  outbox: z.strictObject({ path: z.string().min(1).optional() }).default({}),
  webhook: z
    .strictObject({
      url: z.url().optional(),
      /** e.g. "Authorization: Bearer abc"; or from a file / env (MAIL2FA_SMS_WEBHOOK_AUTH_HEADER[_FILE]). */
      authHeader: z.string().optional(),
      authHeaderFile: z.string().optional(),
    })
    .default({}),
  twilio: z
    .strictObject({
      baseUrl: z.url().default('https://api.twilio.com'),
      accountSid: z.string().optional(),
      authToken: z.string().optional(),
      authTokenFile: z.string().optional(),
      from: z.string().optional(),
    })
    .default({ baseUrl: 'https://api.twilio.com' }),
});

const SignOutSchema = z.strictObject({
  action: z.enum(['none', 'sql', 'command']).default('none'),
  /** Parameterised statement; `?` (or `:email`) is bound to the address. Runs in the command's transaction. */
  sql: z.string().optional(),
  /** argv of a program run without a shell; the string "{email}" in any argument is replaced by the address. */
  command: z.array(z.string().min(1)).min(1).optional(),
});

/**
 * A foreign store the site's sign-in enforces (docs/stores.md). `options` are the store's own,
 * validated by its module's schema; `db` defaults to the mail database.
 */
export const StoreEntrySchema = z.strictObject({
  name: z
    .string()
    .regex(
      /^[a-z][a-z0-9_-]{0,31}$/,
      'must be lower-case letters, digits, - or _ (at most 32), starting with a letter',
    ),
  kind: z.string().min(1),
  db: z
    .strictObject({
      url: z.string().min(1),
      connectTimeoutMs: z.number().int().min(100).max(120_000).optional(),
    })
    .optional(),
  tablePrefix: prefix.optional(),
  /** The site allows mail2fa to write secrets into this store although it keeps them in plaintext. */
  allowPlaintextWrites: z.boolean().default(false),
  options: z.unknown().optional(),
});

export const ConfigFileSchema = z.strictObject({
  db: z
    .strictObject({
      url: z.string().min(1).optional(),
      connectTimeoutMs: z.number().int().min(100).max(120_000).default(5000),
    })
    .default({ connectTimeoutMs: 5000 }),
  /** Prefix of mail2fa's own tables. */
  tablePrefix: prefix.default('mail2fa_'),
  accounts: AccountsSchema.default({ preset: 'mail2fa', tablePrefix: '', columns: {} }),
  key: z.strictObject({ file: z.string().min(1).optional() }).default({}),
  issuer: z.string().min(1).max(64).default('Webmail'),
  sms: SmsSchema.default(SmsSchema.parse({})),
  signOut: SignOutSchema.default({ action: 'none' }),
  /** Regular expression a customer-service ticket ID must match. */
  ticketPattern: z.string().default('^[A-Za-z0-9][A-Za-z0-9._:#/-]{0,63}$'),
  /** Foreign stores, in the order commands act on them (after mail2fa's own store, which is always first). */
  stores: z.array(StoreEntrySchema).default([]),
});
export type ConfigFile = z.infer<typeof ConfigFileSchema>;

export function formatIssues(error: z.ZodError, source: string): string[] {
  // Keys come from the file as written: escaped, so a key cannot forge a line of the report.
  return error.issues.map((issue) =>
    escapeControl(
      `${source}: ${issue.path.length ? issue.path.map(String).join('.') : '(top level)'}: ${issue.message}`,
    ),
  );
}

/**
 * Validates a config file's settings (already parsed from YAML/JSON): the schema, the cross-field rules and each
 * store entry with its own module's schema. Problems go into `problems` (reported at once by the caller).
 */
export async function validateConfigFile(
  raw: object,
  source: string,
  problems: string[],
  checkFileDbUrl: boolean,
): Promise<{ file: ConfigFile | undefined; storeOptions: unknown[] }> {
  const parsed = ConfigFileSchema.safeParse(raw);
  if (!parsed.success) problems.push(...formatIssues(parsed.error, source));

  const file = parsed.success ? parsed.data : undefined;
  if (file?.db.url !== undefined && checkFileDbUrl) problems.push(...checkDbUrl(file.db.url, `${source}: db.url`));
  if (file) {
    try {
      new RegExp(file.ticketPattern);
    } catch {
      problems.push(`${source}: ticketPattern: not a valid regular expression`);
    }
    if (file.signOut.action === 'sql' && !file.signOut.sql)
      problems.push(`${source}: signOut.sql: required when signOut.action is "sql"`);
    if (file.signOut.action === 'command' && !file.signOut.command)
      problems.push(`${source}: signOut.command: required when signOut.action is "command"`);
    if (file.sms.transport === 'webhook' && !file.sms.webhook.url)
      problems.push(`${source}: sms.webhook.url: required when sms.transport is "webhook"`);
    if (file.sms.transport === 'twilio') {
      for (const k of ['accountSid', 'from'] as const)
        if (!file.sms.twilio[k]) problems.push(`${source}: sms.twilio.${k}: required when sms.transport is "twilio"`);
    }
  }
  // Each store entry is checked on its own too, so that one bad setting elsewhere does not hide the stores' problems.
  const rawStores = (raw as { stores?: unknown }).stores;
  const storeEntries = file
    ? file.stores
    : Array.isArray(rawStores)
      ? rawStores.map((e) => StoreEntrySchema.safeParse(e).data)
      : [];
  const storeOptions = await checkStores(storeEntries, source, problems);
  return { file, storeOptions };
}

/**
 * Each store entry: a known kind (not mail2fa's own, which is always on), a unique name, a valid database URL,
 * and options accepted by the store's own schema. Problems are collected (reported at once); returns the parsed
 * options per entry.
 */
async function checkStores(
  entries: ReadonlyArray<ConfigFile['stores'][number] | undefined>,
  source: string,
  problems: string[],
): Promise<unknown[]> {
  const seen = new Set<string>([OWN_STORE_NAME]);
  const parsed: unknown[] = [];
  for (const [index, entry] of entries.entries()) {
    const where = `${source}: stores.${index}`;
    if (!entry) {
      parsed.push(undefined); // its own problems are reported by the schema
      continue;
    }
    if (seen.has(entry.name))
      problems.push(
        `${where}.name: "${entry.name}" is ${entry.name === OWN_STORE_NAME ? "the name of mail2fa's own store" : 'used twice'}`,
      );
    seen.add(entry.name);
    if (entry.db?.url !== undefined) problems.push(...checkDbUrl(entry.db.url, `${where}.db.url`));
    if (entry.kind === OWN_STORE_NAME) {
      problems.push(`${where}.kind: mail2fa's own store is always on (and first); list only foreign stores here`);
      parsed.push(undefined);
      continue;
    }
    const definition = await storeDefinition(entry.kind);
    if (!definition) {
      problems.push(
        escapeControl(`${where}.kind: unknown store kind "${entry.kind}" (known: ${knownStoreKinds().join(', ')})`),
      );
      parsed.push(undefined);
      continue;
    }
    const options = definition.optionsSchema.safeParse(entry.options ?? {});
    if (options.success) parsed.push(options.data);
    else {
      problems.push(
        ...formatIssues(options.error, source).map((line) =>
          line.replace(`${source}: `, `${where}.options.`).replace(/\.options\.\(top level\)/, '.options'),
        ),
      );
      parsed.push(undefined);
    }
  }
  return parsed;
}
