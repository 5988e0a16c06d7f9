/**
 * PostfixAdmin's own TOTP as a store: PostfixAdmin 4.x keeps a PLAINTEXT base32 secret in
 * `mailbox.totp_secret` (NULL or '' = off) and asks for a code at its login when `$CONF['totp']` is YES, the
 * mailbox is active and the secret non-empty. It keeps no replay state and no attempt counter: mail2fa verifies its
 * codes with its own (src/core), this module only reads and clears the column.
 *
 * Exact matching: PostfixAdmin's `username` column is latin1_general_ci (case-insensitive, PAD SPACE), so
 * `WHERE username = ?` can hit 'User@example.com' or 'user@example.com ' for 'user@example.com'. Look-ups use the
 * column's index and then keep only rows equal byte for byte; every write adds a byte-for-byte comparison of the
 * username AND of the secret that was read (compare-and-set), never trusting the column's collation.
 */
import { accessSync, constants as fsc } from 'node:fs';
import type { Knex } from 'knex';
import * as z from 'zod';
import { configError, Mail2faError, tempFail } from '../errors.js';
import { emailColumnCollation, isActive } from '../db/accounts.js';
import type { Database, Dialect } from '../db/connection.js';
import { mapDbError } from '../db/connection.js';
import {
  MAX_SECRET_BYTES,
  MIN_SECRET_BYTES,
  STRONG_SECRET_BYTES,
  base32Decode,
  totpAcceptsSecret,
} from '../totp/totp.js';
import { doctorOpen, exactSql } from './support.js';
import type {
  ExportedSecret,
  ForeignStore,
  StoreAccountStatus,
  StoreChange,
  StoreCheck,
  StoreConfigBase,
  StoreDefinition,
  StoreDeps,
  StoreFactor,
  StoreTotpSecret,
  StoreWriteContext,
} from './types.js';

const identifier = z
  .string()
  .regex(/^[A-Za-z_][A-Za-z0-9_]{0,63}$/, 'must be a plain SQL identifier (letters, digits, _)');

export const PostfixadminOptions = z.strictObject({
  /** The mailbox table, without the store's tablePrefix. */
  table: identifier.default('mailbox'),
  usernameColumn: identifier.default('username'),
  secretColumn: identifier.default('totp_secret'),
  activeColumn: identifier.default('active'),
  /** PostfixAdmin's `$CONF['totp']`: when NO, its login ignores the column (activated, not enforced). */
  totpEnabled: z.boolean().default(true),
});
export type PostfixadminOptions = z.infer<typeof PostfixadminOptions>;

/** Where the secrets are: table (prefix applied) and columns. */
export interface PostfixadminLocation {
  table: string;
  username: string;
  secret: string;
  active: string;
}

export function postfixadminLocation(config: StoreConfigBase & { options: PostfixadminOptions }): PostfixadminLocation {
  const options = config.options;
  return {
    table: `${config.tablePrefix ?? ''}${options.table}`,
    username: options.usernameColumn,
    secret: options.secretColumn,
    active: options.activeColumn,
  };
}

/**
 * Validates a PostfixAdmin secret: RFC 4648 base32 (letters A–Z in either case, digits 2–7, optional `=`
 * padding), decoding to 10–64 bytes, and accepted by the TOTP verifier. Returns the canonical form (upper case, no
 * padding) and its size, or the reason it is unusable (the reason never contains the secret).
 */
export function parsePostfixadminSecret(
  raw: string,
): { secret: string; bytes: number; weak: boolean } | { problem: string } {
  if (raw.length > 1024) return { problem: 'not a base32 secret (far too long)' };
  if (/\s/.test(raw)) return { problem: 'not a base32 secret (contains whitespace)' };
  const upper = raw.toUpperCase();
  const match = /^([A-Z2-7]*)(=*)$/.exec(upper);
  if (!match) return { problem: 'not a base32 secret (characters outside A-Z, 2-7)' };
  const body = match[1]!;
  const padding = match[2]!;
  if (padding && (upper.length % 8 !== 0 || padding.length > 6))
    return { problem: 'not a base32 secret (wrong "=" padding)' };
  if ([1, 3, 6].includes(body.length % 8)) return { problem: 'not a base32 secret (impossible length)' };
  const bytes = Math.floor((body.length * 5) / 8);
  if (bytes < MIN_SECRET_BYTES || bytes > MAX_SECRET_BYTES) {
    return {
      problem: `secret is ${bytes} bytes; mail2fa accepts ${MIN_SECRET_BYTES}-${MAX_SECRET_BYTES} bytes (80-512 bits)`,
    };
  }
  // What totpCode(body, 0) would refuse, without computing a code (status checks every secret in bulk).
  if (!totpAcceptsSecret(body)) return { problem: 'not accepted by the TOTP verifier' };
  return { secret: body, bytes, weak: bytes < STRONG_SECRET_BYTES };
}

const SQL_NAME = /^[A-Za-z0-9_]{1,64}$/;

export interface PostfixadminRow {
  username: string;
  secret: string | null;
  active: unknown;
}

/**
 * `WHERE username IN (…)` through the column's own index: on MySQL the addresses are converted into the column's
 * charset/collation (a latin1 column cannot be compared with a utf8mb4 literal it cannot hold). The caller keeps
 * exact matches only.
 */
async function whereUsernames(
  query: Knex.QueryBuilder,
  db: Database,
  loc: PostfixadminLocation,
  emails: readonly string[],
): Promise<Knex.QueryBuilder> {
  const column = await emailColumnCollation(db, { table: loc.table, email: loc.username });
  if (column && column.charset !== 'utf8mb4' && SQL_NAME.test(column.charset) && SQL_NAME.test(column.collation)) {
    const placeholder = `CONVERT(? USING ${column.charset}) COLLATE ${column.collation}`;
    return query.whereRaw(`?? IN (${emails.map(() => placeholder).join(', ')})`, [loc.username, ...emails]);
  }
  return query.whereIn(loc.username, [...emails]);
}

/** Rows of exactly these addresses (all of them, or only those with a non-NULL secret). Read-only. */
export async function readPostfixadminRows(
  db: Database,
  loc: PostfixadminLocation,
  emails: readonly string[],
  withSecretOnly: boolean,
  knex: Knex | Knex.Transaction = db.knex,
): Promise<PostfixadminRow[]> {
  if (emails.length === 0) return [];
  try {
    let query = knex(loc.table).select({ username: loc.username, secret: loc.secret, active: loc.active });
    if (withSecretOnly) query = query.whereNotNull(loc.secret);
    query = await whereUsernames(query, db, loc, emails);
    const wanted = new Set(emails);
    const rows = (await query) as PostfixadminRow[];
    return rows
      .filter((r) => wanted.has(r.username))
      .map((r) => ({ username: r.username, secret: r.secret === null ? null : String(r.secret), active: r.active }));
  } catch (err) {
    throw mapDbError(err, db.displayUrl);
  }
}

/** Every row holding a non-NULL secret (migrate-from), in any order. Read-only. */
export async function readAllPostfixadminSecrets(
  knex: Knex | Knex.Transaction,
  loc: PostfixadminLocation,
): Promise<PostfixadminRow[]> {
  return (await knex(loc.table)
    .select({ username: loc.username, secret: loc.secret, active: loc.active })
    .whereNotNull(loc.secret)) as PostfixadminRow[];
}

/**
 * Clears the secret of exactly `username` if it still holds exactly `expected` (compare-and-set, byte for byte on
 * both). Returns the number of rows changed (0 or 1).
 */
export async function clearPostfixadminSecret(
  knex: Knex | Knex.Transaction,
  dialect: Dialect,
  loc: PostfixadminLocation,
  username: string,
  expected: string,
): Promise<number> {
  const cleared = await knex(loc.table)
    .update({ [loc.secret]: null })
    .where(loc.username, username)
    .whereRaw(exactSql(dialect), [loc.username, Buffer.from(username, 'utf8')])
    .whereRaw(exactSql(dialect), [loc.secret, Buffer.from(expected, 'utf8')]);
  return Number(cleared);
}

/** Whether a raw column value counts as "on" in PostfixAdmin (non-empty). */
export function hasSecret(raw: string | null): raw is string {
  return raw !== null && raw !== '';
}

function statusOf(
  name: string,
  loc: PostfixadminLocation,
  options: PostfixadminOptions,
  row: PostfixadminRow,
): StoreAccountStatus {
  const base: StoreAccountStatus = {
    store: name,
    kind: 'postfixadmin',
    activated: false,
    enforced: false,
    factors: [],
  };
  if (!hasSecret(row.secret)) return base;
  const parsed = parsePostfixadminSecret(row.secret);
  const factor: StoreFactor = { kind: 'totp', active: true, ref: `${loc.table}.${loc.secret}` };
  const problems: string[] = [];
  if ('problem' in parsed) problems.push(`${loc.table}.${loc.secret}: ${parsed.problem}`);
  else if (parsed.weak) factor.weak = true;
  const notEnforced: string[] = [];
  if (!options.totpEnabled)
    notEnforced.push(
      "PostfixAdmin's $CONF['totp'] is off (store option totpEnabled: false): its login does not ask for the code",
    );
  if (!isActive(row.active)) notEnforced.push('the mailbox is inactive: nobody signs in to it');
  return {
    ...base,
    activated: true,
    enforced: notEnforced.length === 0,
    ...(notEnforced.length ? { notEnforced } : {}),
    factors: [factor],
    ...(problems.length ? { problems } : {}),
  };
}

const CAS_ATTEMPTS = 3;

export const postfixadminStore: StoreDefinition<PostfixadminOptions> = {
  kind: 'postfixadmin',
  optionsSchema: PostfixadminOptions as z.ZodType<PostfixadminOptions>,
  open(config, deps: StoreDeps): ForeignStore {
    const loc = postfixadminLocation(config);
    const options = config.options;
    const name = config.name;
    let dbPromise: Promise<Database> | undefined;
    const database = () => (dbPromise ??= config.db ? deps.openDatabase(config.db.url) : deps.mailDatabase());

    async function readOne(email: string, trx?: Knex.Transaction): Promise<PostfixadminRow | null> {
      const db = await database();
      const rows = await readPostfixadminRows(db, loc, [email], false, trx);
      if (rows.length > 1)
        throw configError(
          'ambiguous_account',
          `${rows.length} rows of ${loc.table} have the address ${email} (store ${name}); refusing to guess`,
          `Fix the duplicate rows in ${loc.table}.`,
        );
      return rows[0] ?? null;
    }

    /** Clears the column of exactly `email`, compare-and-set on the value read, retried when it changed meanwhile. */
    async function clear(email: string, what: string, ctx: StoreWriteContext): Promise<StoreChange> {
      const db = await database();
      const shared = ctx.sharedTransaction;
      for (let attempt = 1; attempt <= CAS_ATTEMPTS; attempt++) {
        const row = await readOne(email, shared);
        if (!row || !hasSecret(row.secret))
          return {
            store: name,
            kind: 'postfixadmin',
            outcome: 'nothing',
            detail: `no TOTP secret in ${loc.table}.${loc.secret}`,
          };
        let changed: number;
        try {
          changed = await clearPostfixadminSecret(shared ?? db.knex, db.dialect, loc, email, row.secret);
        } catch (err) {
          throw mapDbError(err, db.displayUrl);
        }
        if (changed === 1)
          return {
            store: name,
            kind: 'postfixadmin',
            outcome: 'changed',
            detail: `${what}: cleared ${loc.table}.${loc.secret}`,
            refs: [`${loc.table}.${loc.username}=${email}`],
          };
      }
      throw tempFail(
        'changed',
        `the PostfixAdmin TOTP secret of ${email} kept changing while mail2fa cleared it (store ${name})`,
        'Someone is editing it in PostfixAdmin right now; retry in a moment.',
      );
    }

    return {
      name,
      kind: 'postfixadmin',
      capabilities: new Set(['status', 'recover', 'verify', 'disable', 'migrate-out']),
      plaintextSecrets: true,

      async account(email) {
        const row = await readOne(email);
        return row ? statusOf(name, loc, options, row) : null;
      },

      async statusBatch(emails) {
        const db = await database();
        const out = new Map<string, StoreAccountStatus>();
        for (const row of await readPostfixadminRows(db, loc, emails, true)) {
          if (hasSecret(row.secret)) out.set(row.username, statusOf(name, loc, options, row));
        }
        return out;
      },

      reset: (email, ctx) => clear(email, 'recover', ctx),
      disable: (email, ctx) => clear(email, 'disable', ctx),

      async totpSecrets(email): Promise<StoreTotpSecret[]> {
        const row = await readOne(email);
        if (!row || !hasSecret(row.secret) || !options.totpEnabled) return [];
        const parsed = parsePostfixadminSecret(row.secret);
        if ('problem' in parsed) return [];
        return [{ key: base32Decode(parsed.secret), ref: `${loc.table}.${loc.secret}`, storeWindow: 1 }];
      },

      async *exportSecrets(batchSize): AsyncIterable<ExportedSecret[]> {
        const db = await database();
        let rows: PostfixadminRow[];
        try {
          rows = await readAllPostfixadminSecrets(db.knex, loc);
        } catch (err) {
          throw mapDbError(err, db.displayUrl);
        }
        let batch: ExportedSecret[] = [];
        for (const row of rows) {
          if (!hasSecret(row.secret)) continue;
          const parsed = parsePostfixadminSecret(String(row.secret));
          if ('problem' in parsed) continue;
          batch.push({
            email: row.username,
            key: base32Decode(parsed.secret),
            ref: `${loc.table}.${loc.secret}`,
            weak: parsed.weak,
          });
          if (batch.length >= batchSize) {
            yield batch;
            batch = [];
          }
        }
        if (batch.length) yield batch;
      },

      async doctor(): Promise<StoreCheck[]> {
        const label = `store ${name}`;
        const opened = await doctorOpen(label, database);
        if (!('db' in opened)) return opened.checks;
        const { db } = opened;
        const checks: StoreCheck[] = [];
        let info: Record<string, unknown>;
        try {
          info = (await db.knex(loc.table).columnInfo()) as Record<string, unknown>;
        } catch (err) {
          const error = mapDbError(err, db.displayUrl) as Mail2faError;
          return [{ name: label, status: 'fail', detail: error.message, exitCode: error.exitCode === 69 ? 69 : 78 }];
        }
        const wanted = [loc.username, loc.secret, loc.active];
        const missing = wanted.filter((c) => !(c in info));
        if (Object.keys(info).length === 0 || missing.length) {
          return [
            {
              name: label,
              status: 'fail',
              detail:
                Object.keys(info).length === 0
                  ? `table ${loc.table} not found in ${db.displayUrl}`
                  : `table ${loc.table} lacks column(s) ${missing.join(', ')}`,
              hint: `Set the store's tablePrefix / options (table, usernameColumn, secretColumn, activeColumn) in the config.`,
              exitCode: 78,
            },
          ];
        }
        checks.push({
          name: label,
          status: 'ok',
          detail: `postfixadmin: ${loc.table}(${wanted.join(', ')}) in ${db.displayUrl}`,
        });
        try {
          const row = (await db
            .knex(loc.table)
            .whereNotNull(loc.secret)
            .whereNot(loc.secret, '')
            .count({ n: '*' })
            .first()) as { n: number | string } | undefined;
          const count = Number(row?.n ?? 0);
          checks.push(
            count === 0
              ? {
                  name: 'postfixadmin totp',
                  status: 'ok',
                  detail: `no plaintext secrets in ${loc.table}.${loc.secret}`,
                }
              : {
                  name: 'postfixadmin totp',
                  status: 'warn',
                  detail: `${count} mailbox(es) keep a PLAINTEXT TOTP secret in ${loc.table}.${loc.secret} (PostfixAdmin's own TOTP, store ${name})`,
                  hint: '`mail2fa migrate-from postfixadmin --dry-run` shows how to move them into encrypted storage; --clear-plaintext then removes them.',
                },
          );
        } catch (err) {
          checks.push({
            name: 'postfixadmin totp',
            status: 'fail',
            detail: (mapDbError(err, db.displayUrl) as Error).message,
            exitCode: 78,
          });
        }
        if (!options.totpEnabled) {
          checks.push({
            name: `${label} enforcement`,
            status: 'warn',
            detail: "totpEnabled: false ($CONF['totp'] = NO): PostfixAdmin's login does not ask for these codes",
            hint: 'status shows such accounts as activated but not enforced.',
          });
        }
        checks.push(await writableCheck(db, loc, label));
        return checks;
      },

      async close() {
        // The databases are the core's (StoreDeps.openDatabase / mailDatabase): it closes them.
      },
    };
  },
};

/**
 * Can mail2fa write the column (recover, disable)? On MySQL an UPDATE that matches no row still needs the UPDATE
 * privilege, so a read-only user is refused without anything changing; on SQLite the file must be writable.
 */
async function writableCheck(db: Database, loc: PostfixadminLocation, label: string): Promise<StoreCheck> {
  const name = `${label} write access`;
  try {
    if (db.dialect === 'sqlite') {
      if (db.file) accessSync(db.file, fsc.W_OK);
    } else {
      await db
        .knex(loc.table)
        .update({ [loc.secret]: db.knex.ref(loc.secret) })
        .whereRaw('1 = 0');
    }
    return { name, status: 'ok', detail: `mail2fa may clear ${loc.table}.${loc.secret} (recover, disable)` };
  } catch (err) {
    const code = (err as { code?: string }).code ?? '';
    return {
      name,
      status: 'warn',
      detail: `read-only: ${code || (err as Error).message}; recover and disable cannot clear ${loc.table}.${loc.secret}`,
      hint: `Grant UPDATE on ${loc.table} to the store's database user, or reset PostfixAdmin's TOTP there by hand.`,
    };
  }
}
