/**
 * PostfixAdmin's own TOTP (PRODUCT.md §8): PostfixAdmin 4.x keeps a PLAINTEXT base32 secret in
 * `mailbox.totp_secret` (NULL or '' = off). `status` reports it (src/db/statusQuery.ts); this module
 *   - moves those secrets into mail2fa's encrypted factor storage (`migrate-from postfixadmin`), optionally
 *     clearing the plaintext column — which is what turns PostfixAdmin's own TOTP off for the mailbox;
 *   - offers `recover` a hook that clears the column for one account (PostfixAdmin's own reset is an unlogged
 *     web button), inside recover's transaction and audited by it.
 *
 * Exact matching: PostfixAdmin's `username` column is latin1_general_ci (case-insensitive, PAD SPACE), so
 * `WHERE username = ?` can hit 'User@Example.com' or 'user@example.com ' for 'user@example.com'. Every write
 * here adds a byte-for-byte comparison (CAST … AS BINARY / BLOB), never trusting the column's collation.
 */
import type { Knex } from 'knex';
import type { Context } from '../context.js';
import type { AccountMapping } from '../db/accounts.js';
import { isActive } from '../db/accounts.js';
import type { Database, Dialect } from '../db/connection.js';
import { inTransaction, lockAccountStates } from '../db/tx.js';
import { totpCode } from '../totp/totp.js';
import { writeAudit } from './audit.js';
import { tryCanonicalAddress } from './address.js';
import { configError, tempFail } from './errors.js';
import { Vault } from './vault.js';

/** Secret sizes mail2fa's TOTP verifier accepts: RFC 4226's minimum of 128 bits up to 512 bits. */
export const MIN_SECRET_BYTES = 16;
export const MAX_SECRET_BYTES = 64;

/**
 * Validates a PostfixAdmin secret: RFC 4648 base32 (letters A–Z in either case, digits 2–7, optional `=`
 * padding), decoding to 16–64 bytes, and accepted by the TOTP verifier. Returns the canonical form (upper
 * case, no padding) or the reason it is unusable (the reason never contains the secret).
 */
export function parsePostfixadminSecret(raw: string): { secret: string } | { problem: string } {
  if (raw.length > 1024) return { problem: 'not a base32 secret (far too long)' };
  if (/\s/.test(raw)) return { problem: 'not a base32 secret (contains whitespace)' };
  const upper = raw.toUpperCase();
  const m = /^([A-Z2-7]*)(=*)$/.exec(upper);
  if (!m) return { problem: 'not a base32 secret (characters outside A-Z, 2-7)' };
  const body = m[1]!;
  const padding = m[2]!;
  if (padding && (upper.length % 8 !== 0 || padding.length > 6)) return { problem: 'not a base32 secret (wrong "=" padding)' };
  if ([1, 3, 6].includes(body.length % 8)) return { problem: 'not a base32 secret (impossible length)' };
  const bytes = Math.floor((body.length * 5) / 8);
  if (bytes < MIN_SECRET_BYTES || bytes > MAX_SECRET_BYTES) {
    return { problem: `secret is ${bytes} bytes; mail2fa accepts ${MIN_SECRET_BYTES}-${MAX_SECRET_BYTES} bytes (128-512 bits, RFC 4226)` };
  }
  try {
    totpCode(body, 0);
  } catch {
    return { problem: 'not accepted by the TOTP verifier' };
  }
  return { secret: body };
}

/** SQL comparing a column byte for byte with a Buffer parameter, whatever the column's charset/collation. */
function exactSql(dialect: Dialect): string {
  if (dialect === 'postgres') return "convert_to(CAST(?? AS text), 'UTF8') = ?";
  return dialect === 'mysql' ? 'CAST(CONVERT(?? USING utf8mb4) AS BINARY) = ?' : 'CAST(?? AS BLOB) = ?';
}

function requireTotpColumn(mapping: AccountMapping): string {
  if (!mapping.totpSecret) {
    throw configError(
      'no_totp_column',
      `the account mapping has no PostfixAdmin TOTP column (preset ${mapping.preset})`,
      'Use accounts.preset: postfixadmin (its column is totp_secret), or set accounts.columns.totpSecret.',
    );
  }
  return mapping.totpSecret;
}

/** Whether `account` (exactly) has a PostfixAdmin TOTP secret. False when the mapping has no such column. */
export async function hasPostfixadminTotp(q: Knex | Knex.Transaction, dialect: Dialect, mapping: AccountMapping, account: string): Promise<boolean> {
  if (!mapping.totpSecret) return false;
  const rows = (await q(mapping.table)
    .select({ secret: mapping.totpSecret })
    .where(mapping.email, account)
    .whereRaw(exactSql(dialect), [mapping.email, Buffer.from(account, 'utf8')])) as { secret: string | null }[];
  return rows.some((r) => r.secret !== null && r.secret !== '');
}

/**
 * For `recover`: clears PostfixAdmin's plaintext TOTP secret of exactly `tx.account`, in the caller's
 * transaction (the caller writes the audit row, e.g. detail { postfixadminTotpCleared: true }). Returns whether
 * a secret was cleared; false when there was none or the mapping has no TOTP column.
 */
export async function clearPostfixadminTotp(tx: { trx: Knex.Transaction; db: Pick<Database, 'dialect'>; account: string }, mapping: AccountMapping): Promise<boolean> {
  if (!mapping.totpSecret) return false;
  const cleared = await tx
    .trx(mapping.table)
    .update({ [mapping.totpSecret]: null })
    .where(mapping.email, tx.account)
    .whereRaw(exactSql(tx.db.dialect), [mapping.email, Buffer.from(tx.account, 'utf8')])
    .whereNotNull(mapping.totpSecret);
  return Number(cleared) > 0;
}

/** Mailboxes holding a non-empty plaintext secret (for `doctor`). */
export async function countPostfixadminTotp(db: Database, mapping: AccountMapping): Promise<number> {
  const column = requireTotpColumn(mapping);
  const row = (await db.knex(mapping.table).whereNotNull(column).whereNot(column, '').count({ n: '*' }).first()) as { n: number | string } | undefined;
  return Number(row?.n ?? 0);
}

export interface MigrationAccount {
  email: string;
  /** The mailbox's active flag (PostfixAdmin only asks active mailboxes for a code). */
  active: boolean;
  outcome: 'migrate' | 'enrolled' | 'invalid';
  /** Why an account is invalid (never the secret). */
  problem?: string;
}

export interface MigrationReport {
  ok: boolean;
  dryRun: boolean;
  clearPlaintext: boolean;
  /** `table.column` the secrets were read from. */
  source: string;
  /** Mailboxes with a non-empty secret. */
  found: number;
  /** Moved (or, in a dry run, would be moved) into mail2fa's storage. */
  migrated: number;
  /** Already enrolled in mail2fa: left untouched (their plaintext too). */
  skipped: number;
  invalid: number;
  /** Plaintext secrets cleared (0 in a dry run or without --clear-plaintext). */
  cleared: number;
  /** True when invalid secrets stopped the migration (nothing was changed). */
  refused: boolean;
  accounts: MigrationAccount[];
}

export interface MigrationOptions {
  dryRun: boolean;
  clearPlaintext: boolean;
  /** Migrate the valid ones and leave invalid rows untouched, instead of refusing the whole migration. */
  skipInvalid: boolean;
}

interface Candidate extends MigrationAccount {
  raw: string;
  secret?: string;
}

const BATCH = 200;

function chunks<T>(items: T[], size = BATCH): T[][] {
  const out: T[][] = [];
  for (let i = 0; i < items.length; i += size) out.push(items.slice(i, i + size));
  return out;
}

async function readCandidates(q: Knex | Knex.Transaction, mapping: AccountMapping, column: string): Promise<Candidate[]> {
  const rows = (await q(mapping.table)
    .select({ email: mapping.email, secret: column, active: mapping.active })
    .whereNotNull(column)) as { email: string; secret: string; active: unknown }[];
  const found = rows.filter((r) => String(r.secret) !== '');
  const perAddress = new Map<string, number>();
  for (const r of found) perAddress.set(r.email, (perAddress.get(r.email) ?? 0) + 1);
  return found
    .map((r): Candidate => {
      const base = { email: r.email, active: isActive(r.active), raw: String(r.secret) };
      if ((perAddress.get(r.email) ?? 0) > 1) return { ...base, outcome: 'invalid', problem: `${perAddress.get(r.email)} mailbox rows have this exact address` };
      const address = tryCanonicalAddress(r.email);
      if ('problem' in address) return { ...base, outcome: 'invalid', problem: `invalid address: ${address.problem}` };
      if (address.address !== r.email) {
        return { ...base, outcome: 'invalid', problem: `address is not in canonical form (should be ${address.address}); mail2fa matches addresses exactly` };
      }
      const secret = parsePostfixadminSecret(base.raw);
      if ('problem' in secret) return { ...base, outcome: 'invalid', problem: secret.problem };
      return { ...base, outcome: 'migrate', secret: secret.secret };
    })
    .sort((a, b) => (a.email < b.email ? -1 : a.email > b.email ? 1 : 0));
}

/** Marks candidates already enrolled in mail2fa (a factor row exists) as `enrolled`. */
async function markEnrolled(q: Knex | Knex.Transaction, ctx: Context, candidates: Candidate[]): Promise<void> {
  const pending = candidates.filter((c) => c.outcome === 'migrate');
  for (const batch of chunks(pending, 500)) {
    const rows = (await q(ctx.tables.factor).whereIn('account', batch.map((c) => c.email)).select('account')) as { account: string }[];
    const enrolled = new Set(rows.map((r) => r.account));
    for (const c of batch) if (enrolled.has(c.email)) c.outcome = 'enrolled';
  }
}

/** Locks the account-state rows of `accounts` (creating missing ones), as accountTransaction does for one. */
async function lockAccounts(trx: Knex.Transaction, ctx: Context, dialect: Dialect, accounts: string[]): Promise<void> {
  for (const batch of chunks(accounts)) await lockAccountStates(trx, ctx.tables, dialect, batch);
}

function report(o: MigrationOptions, source: string, candidates: Candidate[], cleared: number, refused: boolean): MigrationReport {
  const count = (outcome: MigrationAccount['outcome']) => candidates.filter((c) => c.outcome === outcome).length;
  return {
    ok: !refused,
    dryRun: o.dryRun,
    clearPlaintext: o.clearPlaintext,
    source,
    found: candidates.length,
    migrated: refused ? 0 : count('migrate'),
    skipped: count('enrolled'),
    invalid: count('invalid'),
    cleared,
    refused,
    accounts: candidates.map(({ email, active, outcome, problem }) => ({ email, active, outcome, ...(problem ? { problem } : {}) })),
  };
}

/**
 * `migrate-from postfixadmin`: every mailbox with a non-empty plaintext secret becomes a mail2fa TOTP factor
 * (sealed secret, no recovery codes: see the README), in ONE transaction with one audit row per account and a
 * summary row. Accounts already enrolled in mail2fa are skipped. Invalid secrets or non-canonical addresses
 * refuse the whole migration unless `skipInvalid`. With `clearPlaintext`, each migrated account's column is
 * set to NULL — only if it still holds the value that was migrated (else the whole run rolls back, 75).
 */
export async function migrateFromPostfixadmin(ctx: Context, o: MigrationOptions): Promise<MigrationReport> {
  const mapping = ctx.mapping;
  const column = requireTotpColumn(mapping);
  const source = `${mapping.table}.${column}`;
  const db = await ctx.db();

  if (o.dryRun) {
    const candidates = await readCandidates(db.knex, mapping, column);
    await markEnrolled(db.knex, ctx, candidates);
    const refused = !o.skipInvalid && candidates.some((c) => c.outcome === 'invalid');
    return report(o, source, candidates, 0, refused);
  }

  const vault = new Vault(ctx.masterKey(), ctx.tables, ctx.now);
  return inTransaction(db, ctx.tables, async (trx) => {
    const candidates = await readCandidates(trx, mapping, column);
    if (!o.skipInvalid && candidates.some((c) => c.outcome === 'invalid')) return report(o, source, candidates, 0, true);
    await lockAccounts(trx, ctx, db.dialect, candidates.filter((c) => c.outcome === 'migrate').map((c) => c.email));
    await markEnrolled(trx, ctx, candidates); // after the locks: an enrolment that just committed is seen
    const moving = candidates.filter((c) => c.outcome === 'migrate');
    const now = ctx.now();
    for (const batch of chunks(moving)) {
      await trx(ctx.tables.factor).insert(
        batch.map((c) => ({
          account: c.email,
          method: 'totp',
          secret_ct: vault.seal(ctx.tables.factor, 'secret_ct', c.email, c.secret!),
          phone_ct: null,
          phone_masked: null,
          key_id: vault.key.id,
          enrolled_at: now,
          last_used_at: null,
          last_totp_step: null,
          version: 0,
        })),
      );
    }
    let cleared = 0;
    for (const c of moving) {
      if (o.clearPlaintext) {
        const n = await trx(mapping.table)
          .update({ [column]: null })
          .where(mapping.email, c.email)
          .whereRaw(exactSql(db.dialect), [mapping.email, Buffer.from(c.email, 'utf8')])
          .whereRaw(exactSql(db.dialect), [column, Buffer.from(c.raw, 'utf8')]);
        if (Number(n) !== 1) {
          throw tempFail('changed', `the PostfixAdmin secret of ${c.email} changed while migrating; nothing was changed`, 'Run `mail2fa migrate-from postfixadmin` again.');
        }
        cleared++;
      }
      await writeAudit(trx, ctx.tables, ctx, {
        action: 'migrate-from',
        account: c.email,
        outcome: 'ok',
        detail: { source: 'postfixadmin', method: 'totp', plaintextCleared: o.clearPlaintext, recoveryCodes: 0 },
      });
    }
    const result = report(o, source, candidates, cleared, false);
    if (moving.length === 0) return result; // nothing changed: no summary row
    await writeAudit(trx, ctx.tables, ctx, {
      action: 'migrate-from',
      account: null,
      outcome: 'ok',
      detail: { source: 'postfixadmin', found: result.found, migrated: result.migrated, skipped: result.skipped, invalid: result.invalid, cleared },
    });
    return result;
  });
}
