/**
 * The mail system's mailbox table, read through a configurable mapping. mail2fa never alters its schema.
 *
 * Exact matching: the lookup uses the column's own index (`WHERE col = ?` / `IN (…)`), then keeps only rows
 * whose value equals the canonical address byte for byte. A case-insensitive or PAD SPACE collation (common
 * for PostfixAdmin's latin1 tables) can therefore widen the candidate set but never the match.
 */
import type { Knex } from 'knex';
import type { Config } from '../config.js';
import { Mail2faError, ExitCode, unknownAccount } from '../core/errors.js';
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
  mail2fa: { table: 'mailbox', email: 'email', password: 'password', active: 'active', domain: 'domain', alternateEmail: 'alternate_email', totpSecret: null },
  postfixadmin: { table: 'mailbox', email: 'username', password: 'password', active: 'active', domain: 'domain', alternateEmail: 'email_other', totpSecret: 'totp_secret' },
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
    const m = this.mapping;
    const cols: Record<string, string> = { email: m.email, password_hash: m.password, active: m.active, domain: m.domain };
    if (m.alternateEmail) cols.alternate_email = m.alternateEmail;
    return knex(m.table).select(cols);
  }

  /** The one mailbox whose address is exactly `address` (canonical); 67 when none, refused when several. */
  async findExact(address: string, trx?: Knex.Transaction): Promise<Mailbox> {
    let rows: Record<string, unknown>[];
    try {
      rows = await this.select(trx ?? this.db.knex).where(this.mapping.email, address);
    } catch (err) {
      throw mapDbError(err, this.db.displayUrl);
    }
    const exact = rows.filter((r) => r.email === address);
    if (exact.length === 0) throw unknownAccount(address);
    if (exact.length > 1) {
      throw new Mail2faError('ambiguous_account', `${exact.length} mailbox rows have the address ${address}; refusing to guess`, ExitCode.DATAERR, `Fix the duplicate rows in ${this.mapping.table}.`);
    }
    const r = exact[0]!;
    return {
      email: r.email as string,
      passwordHash: String(r.password_hash ?? ''),
      active: isActive(r.active),
      domain: String(r.domain ?? ''),
      alternateEmail: (r.alternate_email as string | null | undefined) ?? null,
    };
  }
}

/** Creates the reference `mailbox` table (preset `mail2fa`) if missing: used by the embedded default and `demo`. */
export async function ensureReferenceMailboxTable(knex: Knex, mapping: AccountMapping, mysql: boolean): Promise<void> {
  if (mapping.preset !== 'mail2fa') return;
  if (await knex.schema.hasTable(mapping.table)) return;
  await knex.schema.createTable(mapping.table, (table) => {
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
  });
}
