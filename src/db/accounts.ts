/**
 * The mail system's mailbox table, read through a configurable mapping. mail2fa never alters its schema.
 *
 * Exact matching: the lookup uses the column's own index (`WHERE col = ?` / `IN (…)`), then keeps only rows
 * whose value equals the canonical address byte for byte. A case-insensitive or PAD SPACE collation (common
 * for PostfixAdmin's latin1 tables) can therefore widen the candidate set but never the match.
 */
import type { Knex } from 'knex';
import type { Config } from '../config.js';
import { Mail2faError, ExitCode, unknownAccount } from '../errors.js';
import type { Database } from './connection.js';
import { mapDbError } from './connection.js';

export interface AccountMapping {
  preset: 'mail2fa' | 'postfixadmin';
  table: string;
  email: string;
  password: string;
  active: string;
  domain: string;
  /** Column with an alternate address for customer contact (PostfixAdmin: email_other). */
  alternateEmail: string | null;
  /** PostfixAdmin's own plaintext TOTP secret column (4.x: totp_secret). */
  totpSecret: string | null;
}

const PRESETS: Record<AccountMapping['preset'], Omit<AccountMapping, 'preset'>> = {
  mail2fa: {
    table: 'mailbox',
    email: 'email',
    password: 'password',
    active: 'active',
    domain: 'domain',
    alternateEmail: 'alternate_email',
    totpSecret: null,
  },
  postfixadmin: {
    table: 'mailbox',
    email: 'username',
    password: 'password',
    active: 'active',
    domain: 'domain',
    alternateEmail: 'email_other',
    totpSecret: 'totp_secret',
  },
};

export function accountMapping(accounts: Config['accounts']): AccountMapping {
  const preset = PRESETS[accounts.preset];
  const cols = accounts.columns;
  return {
    preset: accounts.preset,
    table: `${accounts.tablePrefix}${accounts.table ?? preset.table}`,
    email: cols.email ?? preset.email,
    password: cols.password ?? preset.password,
    active: cols.active ?? preset.active,
    domain: cols.domain ?? preset.domain,
    alternateEmail: cols.alternateEmail === undefined ? preset.alternateEmail : cols.alternateEmail,
    totpSecret: cols.totpSecret === undefined ? preset.totpSecret : cols.totpSecret,
  };
}

export interface Mailbox {
  email: string;
  passwordHash: string;
  active: boolean;
  domain: string;
  alternateEmail: string | null;
}

/** Truthy values of an `active` column: 1, '1', true, 'y', 'yes' (PostfixAdmin uses TINYINT 1/0). */
export function isActive(value: unknown): boolean {
  if (typeof value === 'number' || typeof value === 'bigint') return Number(value) !== 0;
  if (typeof value === 'boolean') return value;
  if (typeof value === 'string') return /^(1|y|yes|true|t)$/i.test(value.trim());
  if (value instanceof Uint8Array) return value.length > 0 && value[0] !== 0 && value[0] !== 0x30;
  return false;
}

export class AccountRepository {
  constructor(
    private readonly db: Database,
    readonly mapping: AccountMapping,
  ) {}

  private select(knex: Knex | Knex.Transaction) {
    const mapping = this.mapping;
    const cols: Record<string, string> = {
      email: mapping.email,
      password_hash: mapping.password,
      active: mapping.active,
      domain: mapping.domain,
    };
    if (mapping.alternateEmail) cols.alternate_email = mapping.alternateEmail;
    return knex(mapping.table).select(cols);
  }

  /** The one mailbox whose address is exactly `address` (canonical); 67 when none, refused when several. */
  async findExact(address: string, trx?: Knex.Transaction): Promise<Mailbox> {
    let rows: Record<string, unknown>[];
    try {
      const column = await emailColumnCollation(this.db, this.mapping);
      const query = this.select(trx ?? this.db.knex);
      if (column && column.charset !== 'utf8mb4' && SQL_NAME.test(column.charset) && SQL_NAME.test(column.collation)) {
        // A latin1 column cannot be compared with a utf8mb4 literal it cannot hold: convert the literal.
        rows = await query.whereRaw(`?? = CONVERT(? USING ${column.charset}) COLLATE ${column.collation}`, [
          this.mapping.email,
          address,
        ]);
      } else rows = await query.where(this.mapping.email, address);
    } catch (err) {
      throw mapDbError(err, this.db.displayUrl);
    }
    const exact = rows.filter((r) => r.email === address);
    if (exact.length === 0) throw unknownAccount(address, await this.caseVariant(address, rows, trx));
    if (exact.length > 1) {
      throw new Mail2faError(
        'ambiguous_account',
        `${exact.length} mailbox rows have the address ${address}; refusing to guess`,
        ExitCode.DATAERR,
        `Fix the duplicate rows in ${this.mapping.table}.`,
      );
    }
    const row = exact[0]!;
    return {
      email: row.email as string,
      passwordHash: String(row.password_hash ?? ''),
      active: isActive(row.active),
      domain: String(row.domain ?? ''),
      alternateEmail: (row.alternate_email as string | null | undefined) ?? null,
    };
  }

  /**
   * For the hint of an unknown address: the one mailbox whose address equals it but for case (an agent copies
   * "Alice@Example.COM" from a ticket). Candidates come from index lookups only, never a scan: the rows the exact
   * query returned (a case-insensitive collation returns every case variant) and the all-lower-case address.
   */
  private async caseVariant(
    address: string,
    rows: Record<string, unknown>[],
    trx?: Knex.Transaction,
  ): Promise<string | undefined> {
    const folded = address.toLowerCase();
    const candidates = new Set(
      rows.map((r) => r.email).filter((e): e is string => typeof e === 'string' && e.toLowerCase() === folded),
    );
    if (folded !== address) {
      try {
        const lower = (await (trx ?? this.db.knex)(this.mapping.table)
          .select({ email: this.mapping.email })
          .where(this.mapping.email, folded)
          .limit(2)) as Array<{ email: unknown }>;
        for (const r of lower) if (r.email === folded) candidates.add(folded);
      } catch {
        return undefined; // only a hint
      }
    }
    return candidates.size === 1 ? [...candidates][0] : undefined;
  }
}

/** What to do when the mapped mailbox table does not exist: create the reference table, or fix the mapping. */
export function missingMailboxTableHint(mapping: AccountMapping): string {
  return mapping.preset === 'mail2fa'
    ? "Create the reference mailbox table with `mail2fa migrate --with-mailbox-table` (schema: docs/configuration.md), or point accounts.preset / accounts.table at your mail system's table."
    : "Check accounts.table / accounts.tablePrefix: the mailbox table is the mail system's own, mail2fa never creates it for this preset.";
}

/**
 * A driver error saying that the mapped mailbox table is missing ("Table 'db.mailbox' doesn't exist", "no such
 * table: mailbox", 'relation "mailbox" does not exist'), as its own configuration error (78) that names the table
 * and the way out, instead of "schema does not match" and the failed SQL; undefined for any other error.
 */
export function missingMailboxTableError(
  err: unknown,
  mapping: AccountMapping,
  where: string,
): Mail2faError | undefined {
  const message = String((err as { message?: unknown })?.message ?? '');
  const table = mapping.table.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
  const missing = new RegExp(
    `(Table '(?:[^'.]*\\.)?${table}' doesn't exist|no such table: (?:main\\.)?${table}(?:$|\\s)|relation "(?:[^".]*\\.)?${table}" does not exist)`,
  );
  if (!missing.test(message)) return undefined;
  return new Mail2faError(
    'mailbox_table_missing',
    `the mailbox table ${mapping.table} does not exist in ${where} (account mapping preset ${mapping.preset})`,
    ExitCode.CONFIG,
    missingMailboxTableHint(mapping),
  );
}

/** Addresses of `emails` that have a row in the mailbox table (exact column values, as stored). */
export async function existingMailboxes(
  knex: Knex,
  mapping: AccountMapping,
  emails: readonly string[],
): Promise<string[]> {
  const rows = (await knex(mapping.table)
    .whereIn(mapping.email, [...emails])
    .select({ email: mapping.email })) as { email: string }[];
  return rows.map((r) => r.email);
}

/** Replaces the rows of `mailboxes` in the reference mailbox table (the demo's sample accounts). */
export async function replaceMailboxes(
  trx: Knex.Transaction,
  mapping: AccountMapping,
  mailboxes: readonly { email: string; passwordHash: string; active: boolean }[],
): Promise<void> {
  await trx(mapping.table)
    .whereIn(
      mapping.email,
      mailboxes.map((b) => b.email),
    )
    .delete();
  for (const mailbox of mailboxes)
    await trx(mapping.table).insert({
      [mapping.email]: mailbox.email,
      [mapping.password]: mailbox.passwordHash,
      [mapping.active]: mailbox.active,
      [mapping.domain]: mailbox.email.split('@')[1],
    });
}

/** Creates the reference `mailbox` table (preset `mail2fa`) if missing: used by the embedded default and `demo`. */
export async function ensureReferenceMailboxTable(knex: Knex, mapping: AccountMapping, mysql: boolean): Promise<void> {
  if (mapping.preset !== 'mail2fa') return;
  if (await knex.schema.hasTable(mapping.table)) return;
  // Two first runs at once (two `migrate`, on one server or two Galera nodes): the one whose CREATE fails because
  // the table now exists leaves it to the other (its index is added by a separate statement).
  await knex.schema
    .createTable(mapping.table, (table) => {
      table.string(mapping.email, 320).primary();
      table.string(mapping.password, 255).notNullable();
      table.boolean(mapping.active).notNullable().defaultTo(true);
      table.string(mapping.domain, 253).notNullable().index(`${mapping.table}_domain`);
      if (mapping.alternateEmail) table.string(mapping.alternateEmail, 320).nullable();
      if (mysql) {
        table.engine('InnoDB');
        table.charset('utf8mb4');
        table.collate('utf8mb4_bin');
      }
    })
    .catch(async (err: unknown) => {
      if (!(await knex.schema.hasTable(mapping.table))) throw err;
    });
}

/**
 * Charset and collation of the mailbox table's email column (MySQL/MariaDB). PostfixAdmin's column is often
 * latin1_general_ci: comparing it with a utf8mb4 literal that latin1 cannot hold (e.g. "δ@example.com") is an
 * "Illegal mix of collations" error, so looked-up addresses are converted into the column's own collation
 * (lossy characters become "?", a candidate the exact check then drops) — which also keeps the index usable.
 */
export interface ColumnCollation {
  charset: string;
  collation: string;
}

const SQL_NAME = /^[A-Za-z0-9_]{1,64}$/;
const collationCache = new WeakMap<Database, Map<string, Promise<ColumnCollation | null>>>();

/** The email column's charset and collation (MySQL only; null on SQLite or when unknown). One query per run. */
export function emailColumnCollation(
  db: Database,
  mapping: Pick<AccountMapping, 'table' | 'email'>,
): Promise<ColumnCollation | null> {
  if (db.dialect !== 'mysql') return Promise.resolve(null);
  let perDb = collationCache.get(db);
  if (!perDb) collationCache.set(db, (perDb = new Map()));
  const cacheKey = `${mapping.table}.${mapping.email}`;
  let found = perDb.get(cacheKey);
  if (!found) {
    found = (async () => {
      try {
        const [rows] = (await db.knex.raw(
          'SELECT CHARACTER_SET_NAME AS charset, COLLATION_NAME AS collation FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND COLUMN_NAME = ?',
          [mapping.table, mapping.email],
        )) as [{ charset: string | null; collation: string | null }[]];
        const row = rows[0];
        return row?.charset && row.collation ? { charset: row.charset, collation: row.collation } : null;
      } catch (err) {
        throw mapDbError(err, db.displayUrl);
      }
    })();
    perDb.set(cacheKey, found);
  }
  return found;
}
