/**
 * `migrate-from postfixadmin`: moves the PLAINTEXT secrets of the configured PostfixAdmin store
 * (`mailbox.totp_secret`) into mail2fa's encrypted factor storage, optionally clearing the plaintext
 * column — which is what turns PostfixAdmin's own TOTP off for the mailbox. All or nothing, in ONE transaction: so
 * the store must live in mail2fa's own database. Everything else about PostfixAdmin's TOTP (status, verify, disable,
 * recover) goes through the store seam: src/stores/postfixadmin.ts holds its SQL.
 */
import type { Knex } from 'knex';
import type { ConfiguredStore } from '../config.js';
import type { Context } from '../context.js';
import { isActive } from '../db/accounts.js';
import type { Dialect } from '../db/connection.js';
import { chunks } from '../db/factor-import.js';
import { refreshStatusSummary } from '../db/status-summary.js';
import { factorsOf, insertFactorRows, type Q } from '../db/own-store.js';
import { inTransaction, lockAccountStates } from '../db/tx.js';
import {
  clearPostfixadminSecret,
  parsePostfixadminSecret,
  postfixadminLocation,
  readAllPostfixadminSecrets,
  type PostfixadminLocation,
  type PostfixadminOptions,
} from '../stores/postfixadmin.js';
import { writeAudit } from './audit-write.js';
import { tryCanonicalAddress } from './address.js';
import { configError, ExitCode, Mail2faError, tempFail } from '../errors.js';
import { Vault } from './vault.js';

/** The configured PostfixAdmin store (explicit, or mapped from `accounts.preset: postfixadmin`): where its secrets are. */
function postfixadminSource(ctx: Context): { name: string; loc: PostfixadminLocation; url: string | undefined } {
  const entry = ctx.config.stores.find((s) => s.kind === 'postfixadmin');
  if (!entry) {
    throw configError(
      'no_totp_column',
      `no PostfixAdmin store is configured (accounts preset ${ctx.mapping.preset}, no stores entry of kind postfixadmin)`,
      'Add a store of kind postfixadmin (see docs/stores.md), or use accounts.preset: postfixadmin (its column is totp_secret).',
    );
  }
  return {
    name: entry.name,
    loc: postfixadminLocation(entry as ConfiguredStore & { options: PostfixadminOptions }),
    url: entry.db?.url,
  };
}

export interface MigrationAccount {
  email: string;
  /** The mailbox's active flag (PostfixAdmin only asks active mailboxes for a code). */
  active: boolean;
  /** `clear`: already in mail2fa with this very secret (migrated before); with --clear-plaintext its plaintext goes. */
  outcome: 'migrate' | 'enrolled' | 'clear' | 'invalid';
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
  /** Already enrolled in mail2fa with another factor or secret: left untouched (their plaintext too). */
  skipped: number;
  /** With --clear-plaintext: already in mail2fa with the same secret (an earlier migration): only the plaintext goes. */
  alreadyMigrated: number;
  invalid: number;
  /** Plaintext secrets cleared, migrated now or before (0 in a dry run or without --clear-plaintext). */
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

async function readCandidates(knex: Knex | Knex.Transaction, loc: PostfixadminLocation): Promise<Candidate[]> {
  const rows = (await readAllPostfixadminSecrets(knex, loc)).map((row) => ({
    email: row.username,
    secret: String(row.secret),
    active: row.active,
  }));
  const found = rows.filter((r) => r.secret !== '');
  const perAddress = new Map<string, number>();
  for (const r of found) perAddress.set(r.email, (perAddress.get(r.email) ?? 0) + 1);
  return found
    .map((row): Candidate => {
      const base = { email: row.email, active: isActive(row.active), raw: String(row.secret) };
      if ((perAddress.get(row.email) ?? 0) > 1)
        return {
          ...base,
          outcome: 'invalid',
          problem: `${perAddress.get(row.email)} mailbox rows have this exact address`,
        };
      const address = tryCanonicalAddress(row.email);
      if ('problem' in address) return { ...base, outcome: 'invalid', problem: `invalid address: ${address.problem}` };
      if (address.address !== row.email) {
        return {
          ...base,
          outcome: 'invalid',
          problem: `address is not in canonical form (should be ${address.address}); mail2fa matches addresses exactly`,
        };
      }
      const secret = parsePostfixadminSecret(base.raw);
      if ('problem' in secret) return { ...base, outcome: 'invalid', problem: secret.problem };
      return { ...base, outcome: 'migrate', secret: secret.secret };
    })
    .sort((a, b) => (a.email < b.email ? -1 : a.email > b.email ? 1 : 0));
}

/**
 * Marks candidates already enrolled in mail2fa (a factor row exists) as `enrolled` — or, when `vault` is given
 * (--clear-plaintext), as `clear` if their mail2fa factor is TOTP with this very secret (migrated before), so that
 * "migrate first, clear later" works. A factor that cannot be decrypted is not the same secret.
 */
async function markEnrolled(knex: Q, ctx: Context, candidates: Candidate[], vault?: Vault): Promise<void> {
  const pending = candidates.filter((c) => c.outcome === 'migrate');
  for (const batch of chunks(pending, 500)) {
    const enrolled = await factorsOf(
      knex,
      ctx.tables,
      batch.map((c) => c.email),
    );
    for (const candidate of batch) {
      const factor = enrolled.get(candidate.email);
      if (!factor) continue;
      candidate.outcome =
        vault && factor.method === 'totp' && factor.secret_ct && sameSecret(vault, ctx, candidate, factor.secret_ct)
          ? 'clear'
          : 'enrolled';
    }
  }
}

function sameSecret(vault: Vault, ctx: Context, candidate: Candidate, sealed: string): boolean {
  try {
    return vault.open(ctx.tables.factor, 'secret_ct', candidate.email, sealed) === candidate.secret;
  } catch {
    return false;
  }
}

/** Locks the account-state rows of `accounts` (creating missing ones), as accountTransaction does for one. */
async function lockAccounts(trx: Knex.Transaction, ctx: Context, dialect: Dialect, accounts: string[]): Promise<void> {
  for (const batch of chunks(accounts)) await lockAccountStates(trx, ctx.tables, dialect, batch);
}

function report(
  options: MigrationOptions,
  source: string,
  candidates: Candidate[],
  cleared: number,
  refused: boolean,
): MigrationReport {
  const count = (outcome: MigrationAccount['outcome']) => candidates.filter((c) => c.outcome === outcome).length;
  return {
    ok: !refused,
    dryRun: options.dryRun,
    clearPlaintext: options.clearPlaintext,
    source,
    found: candidates.length,
    migrated: refused ? 0 : count('migrate'),
    skipped: count('enrolled'),
    alreadyMigrated: refused ? 0 : count('clear'),
    invalid: count('invalid'),
    cleared,
    refused,
    accounts: candidates.map(({ email, active, outcome, problem }) => ({
      email,
      active,
      outcome,
      ...(problem ? { problem } : {}),
    })),
  };
}

/**
 * `migrate-from postfixadmin`: every mailbox with a non-empty plaintext secret becomes a mail2fa TOTP factor
 * (sealed secret, no recovery codes: see the README), in ONE transaction with one audit row per account and a
 * summary row. Accounts already enrolled in mail2fa are skipped. Invalid secrets or non-canonical addresses
 * refuse the whole migration unless `skipInvalid`. With `clearPlaintext`, each migrated account's column is
 * set to NULL — only if it still holds the value that was migrated (else the whole run rolls back, 75).
 */
/** The refusal when invalid secrets stopped the migration. */
export function postfixadminRefusal(report: MigrationReport): Mail2faError {
  return new Mail2faError(
    'invalid_secrets',
    `${report.invalid} PostfixAdmin TOTP secret(s) cannot be migrated (listed above); nothing was changed`,
    ExitCode.DATAERR,
    'Fix or clear those rows in PostfixAdmin, or run again with --skip-invalid to migrate the others and leave them as they are.',
  );
}

export async function migrateFromPostfixadmin(ctx: Context, options: MigrationOptions): Promise<MigrationReport> {
  const { name, loc, url } = postfixadminSource(ctx);
  const source = `${loc.table}.${loc.secret}`;
  if (url !== undefined && url !== ctx.config.db.url) {
    // All or nothing needs one transaction: the secrets must sit in the database that holds mail2fa's tables.
    throw configError(
      'store_elsewhere',
      `migrate-from postfixadmin needs store ${name} in mail2fa's own database (it is in ${url.replace(/:[^:@/]*@/, ':****@')})`,
      'Run it with --db pointing at the PostfixAdmin database (mail2fa migrate there first), or move the secrets by hand.',
    );
  }
  const db = await ctx.db();

  // Seals and opens only (no code hashes): one Vault for the whole run is fine.
  const vault = options.clearPlaintext || !options.dryRun ? Vault.forContext(ctx, db) : undefined;
  const compare = options.clearPlaintext ? vault : undefined;
  if (options.dryRun) {
    const candidates = await readCandidates(db.knex, loc);
    await markEnrolled(db.knex, ctx, candidates, compare);
    const refused = !options.skipInvalid && candidates.some((c) => c.outcome === 'invalid');
    return report(options, source, candidates, 0, refused);
  }

  const sealer = vault!;
  return inTransaction(db, ctx.tables, async (trx) => {
    const candidates = await readCandidates(trx, loc);
    if (!options.skipInvalid && candidates.some((c) => c.outcome === 'invalid'))
      return report(options, source, candidates, 0, true);
    await lockAccounts(
      trx,
      ctx,
      db.dialect,
      candidates.filter((c) => c.outcome === 'migrate').map((c) => c.email),
    );
    await markEnrolled(trx, ctx, candidates, compare); // after the locks: an enrolment that just committed is seen
    const moving = candidates.filter((c) => c.outcome === 'migrate');
    const clearing = candidates.filter((c) => c.outcome === 'clear');
    const now = ctx.now();
    for (const batch of chunks(moving)) {
      await insertFactorRows(
        trx,
        ctx.tables,
        batch.map((candidate) => ({
          account: candidate.email,
          method: 'totp' as const,
          secret_ct: sealer.seal(ctx.tables.factor, 'secret_ct', candidate.email, candidate.secret!),
          phone_ct: null,
          phone_masked: null,
          key_id: sealer.key.id,
          enrolled_at: now,
          last_used_at: null,
          last_totp_step: null,
          version: 0,
        })),
      );
    }
    let cleared = 0;
    for (const candidate of [...moving, ...clearing]) {
      if (options.clearPlaintext) {
        const clearedRows = await clearPostfixadminSecret(trx, db.dialect, loc, candidate.email, candidate.raw);
        if (clearedRows !== 1) {
          throw tempFail(
            'changed',
            `the PostfixAdmin secret of ${candidate.email} changed while migrating; nothing was changed`,
            'Run `mail2fa migrate-from postfixadmin` again.',
          );
        }
        cleared++;
      }
      await writeAudit(trx, ctx.tables, ctx, {
        action: 'migrate-from',
        account: candidate.email,
        outcome: 'ok',
        detail:
          candidate.outcome === 'clear'
            ? { source: 'postfixadmin', method: 'totp', plaintextCleared: true, alreadyMigrated: true }
            : { source: 'postfixadmin', method: 'totp', plaintextCleared: options.clearPlaintext, recoveryCodes: 0 },
      });
    }
    for (const batch of chunks(moving.map((c) => c.email)))
      await refreshStatusSummary(trx, ctx.tables, db.dialect, batch);
    const result = report(options, source, candidates, cleared, false);
    if (moving.length === 0 && clearing.length === 0) return result; // nothing changed: no summary row
    await writeAudit(trx, ctx.tables, ctx, {
      action: 'migrate-from',
      account: null,
      outcome: 'ok',
      detail: {
        source: 'postfixadmin',
        found: result.found,
        migrated: result.migrated,
        skipped: result.skipped,
        alreadyMigrated: result.alreadyMigrated,
        invalid: result.invalid,
        cleared,
      },
    });
    return result;
  });
}
