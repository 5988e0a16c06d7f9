/**
 * `migrate-from <store>` for a foreign store module (e.g. `migrate-from roundcube`): every secret the store's
 * sign-in checks becomes a mail2fa TOTP factor (same secret: users keep their authenticator app), sealed, in ONE
 * transaction with one audit row per account and a summary row. Optionally the store's own copies are removed
 * afterwards (`clearMigrated`, compare-and-set in the store, all rows or none) before mail2fa commits: all or
 * nothing, as `migrate-from postfixadmin` does.
 *
 * Accounts already enrolled in mail2fa are skipped (their store copy too); addresses without a mailbox row are
 * skipped and listed; unusable store values refuse the whole run unless `skipInvalid`.
 */
import type { Context } from '../context.js';
import { refreshStatusSummary } from '../db/status-summary.js';
import { chunks, enrolledAccounts, existingMailboxes, insertImportedTotp } from '../db/factor-import.js';
import { inTransaction, lockAccountStates } from '../db/tx.js';
import { base32Encode } from '../totp/totp.js';
import type { ForeignStore } from '../stores/types.js';
import { tryCanonicalAddress } from './address.js';
import { writeAudit } from './audit-write.js';
import { configError, ExitCode, Mail2faError, usageError } from '../errors.js';
import { storeWriteContext } from './stores.js';
import { Vault } from './vault.js';

export interface StoreMigrationOptions {
  dryRun: boolean;
  /** Remove the store's own copies of the migrated secrets (turns the store's own 2FA off for those accounts). */
  clear: boolean;
  skipInvalid: boolean;
}

export interface StoreMigrationAccount {
  email: string;
  outcome: 'migrate' | 'enrolled' | 'no-mailbox' | 'invalid';
  weak: boolean;
  /** Why it cannot be migrated (never the secret). */
  problem?: string;
  /** Non-secret references of the store rows (e.g. users.user_id=12). */
  refs: string[];
}

export interface StoreMigrationReport {
  ok: boolean;
  dryRun: boolean;
  clear: boolean;
  store: string;
  kind: string;
  /** Accounts with a factor in the store. */
  found: number;
  migrated: number;
  /** Already enrolled in mail2fa: left untouched (their store copy too). */
  skipped: number;
  /** No mailbox row with this address: left untouched. */
  noMailbox: number;
  invalid: number;
  /** Migrated secrets shorter than 128 bits. */
  weak: number;
  /** Store rows whose copy was removed (0 in a dry run or without `clear`). */
  cleared: number;
  refused: boolean;
  accounts: StoreMigrationAccount[];
}

const BATCH = 1000;

type Candidate = StoreMigrationAccount & { key?: Buffer };

async function collect(store: ForeignStore): Promise<Candidate[]> {
  const byEmail = new Map<string, Candidate>();
  for await (const batch of store.exportSecrets!(BATCH)) {
    for (const exported of batch) {
      const prev = byEmail.get(exported.email);
      const entry = prev ?? {
        email: exported.email,
        outcome: 'migrate' as StoreMigrationAccount['outcome'],
        weak: false,
        refs: [],
      };
      entry.refs.push(exported.ref);
      if (exported.problem) {
        entry.outcome = 'invalid';
        entry.problem ??= exported.problem;
      } else if (entry.outcome !== 'invalid') {
        if (entry.key && !entry.key.equals(exported.key)) {
          entry.outcome = 'invalid';
          entry.problem = 'the store holds different secrets for this address';
        } else {
          entry.key = exported.key;
          entry.weak = exported.weak;
        }
      }
      byEmail.set(exported.email, entry);
    }
  }
  for (const candidate of byEmail.values()) {
    if (candidate.outcome !== 'migrate') continue;
    const canonical = tryCanonicalAddress(candidate.email);
    if ('problem' in canonical)
      Object.assign(candidate, { outcome: 'invalid', problem: `invalid address: ${canonical.problem}` });
    else if (canonical.address !== candidate.email)
      Object.assign(candidate, {
        outcome: 'invalid',
        problem: `address is not in canonical form (should be ${canonical.address}); mail2fa matches addresses exactly`,
      });
  }
  return [...byEmail.values()].sort((a, b) => (a.email < b.email ? -1 : a.email > b.email ? 1 : 0));
}

function report(
  store: ForeignStore,
  options: StoreMigrationOptions,
  accounts: Candidate[],
  cleared: number,
  refused: boolean,
): StoreMigrationReport {
  const count = (outcome: StoreMigrationAccount['outcome']) => accounts.filter((a) => a.outcome === outcome).length;
  return {
    ok: !refused,
    dryRun: options.dryRun,
    clear: options.clear,
    store: store.name,
    kind: store.kind,
    found: accounts.length,
    migrated: refused ? 0 : count('migrate'),
    skipped: count('enrolled'),
    noMailbox: count('no-mailbox'),
    invalid: count('invalid'),
    weak: refused ? 0 : accounts.filter((a) => a.outcome === 'migrate' && a.weak).length,
    cleared,
    refused,
    accounts: accounts.map(({ email, outcome, weak, problem, refs }) => ({
      email,
      outcome,
      weak,
      refs,
      ...(problem ? { problem } : {}),
    })),
  };
}

/** The refusal when invalid values stopped the migration. */
export function migrationRefusal(migration: StoreMigrationReport): Mail2faError {
  return new Mail2faError(
    'invalid_secrets',
    `${migration.invalid} ${migration.kind} 2FA value(s) cannot be migrated (listed above); nothing was changed`,
    ExitCode.DATAERR,
    `Fix or remove those settings in ${migration.kind}, or run again with --skip-invalid to migrate the others and leave them as they are.`,
  );
}

export async function migrateFromStore(
  ctx: Context,
  store: ForeignStore,
  options: StoreMigrationOptions,
): Promise<StoreMigrationReport> {
  if (!store.exportSecrets || (options.clear && !store.clearMigrated)) {
    throw new Mail2faError(
      'store_capability',
      `store "${store.name}" (${store.kind}) cannot export its secrets`,
      ExitCode.CONFIG,
    );
  }
  const accounts = await collect(store);
  const db = await ctx.db();
  const classify = async (knex: Parameters<typeof existingMailboxes>[0]) => {
    const pending = accounts.filter((a) => a.outcome === 'migrate');
    const existing = await existingMailboxes(
      knex,
      ctx.mapping,
      pending.map((a) => a.email),
    );
    for (const a of pending) if (!existing.has(a.email)) a.outcome = 'no-mailbox';
    const stillPending = pending.filter((a) => a.outcome === 'migrate');
    const enrolled = await enrolledAccounts(
      knex,
      ctx.tables,
      stillPending.map((a) => a.email),
    );
    for (const a of stillPending) if (enrolled.has(a.email)) a.outcome = 'enrolled';
  };
  const refused = !options.skipInvalid && accounts.some((a) => a.outcome === 'invalid');

  if (options.dryRun || refused) {
    if (!refused) await classify(db.knex);
    return report(store, options, accounts, 0, refused);
  }

  const vault = new Vault(ctx.masterKey(), ctx.tables, ctx.now);
  return inTransaction(db, ctx.tables, async (trx) => {
    for (const a of accounts) if (a.outcome !== 'invalid') a.outcome = 'migrate'; // a retried transaction starts over
    const candidates = accounts.filter((a) => a.outcome === 'migrate').map((a) => a.email);
    for (const batch of chunks(candidates, 500)) await lockAccountStates(trx, ctx.tables, db.dialect, batch);
    await classify(trx); // after the locks: an enrolment that just committed is seen
    const moving = accounts.filter((a) => a.outcome === 'migrate') as Array<StoreMigrationAccount & { key: Buffer }>;
    const now = ctx.now();
    await insertImportedTotp(
      trx,
      ctx.tables,
      vault,
      now,
      moving.map((a) => ({ account: a.email, secret: base32Encode(a.key) })),
    );
    for (const candidate of moving) {
      await writeAudit(trx, ctx.tables, ctx, {
        action: 'migrate-from',
        account: candidate.email,
        outcome: 'ok',
        detail: {
          source: store.kind,
          store: store.name,
          method: 'totp',
          weak: candidate.weak,
          storeCleared: options.clear,
          recoveryCodes: 0,
        },
      });
    }
    let cleared = 0;
    if (options.clear && moving.length > 0) {
      // Inside mail2fa's transaction: if the store refuses (changed meanwhile: 75), nothing is committed anywhere.
      const change = await store.clearMigrated!(
        moving.map((a) => a.email),
        storeWriteContext(ctx.config, store, trx, now, ctx.actor),
      );
      cleared = change.refs?.length ?? 0;
    }
    for (const batch of chunks(moving, 500))
      await refreshStatusSummary(
        trx,
        ctx.tables,
        db.dialect,
        batch.map((a) => a.email),
      );
    const result = report(store, options, accounts, cleared, false);
    if (moving.length === 0) return result;
    await writeAudit(trx, ctx.tables, ctx, {
      action: 'migrate-from',
      account: null,
      outcome: 'ok',
      detail: {
        source: store.kind,
        store: store.name,
        found: result.found,
        migrated: result.migrated,
        skipped: result.skipped,
        noMailbox: result.noMailbox,
        invalid: result.invalid,
        cleared,
      },
    });
    return result;
  });
}

/**
 * The configured store `migrate-from <kind>` reads: the only store of that kind, or the one named by `--store`.
 * None configured → 78; several and no name → 64 naming them.
 */
export async function sourceStore(ctx: Context, kind: string, name?: string): Promise<ForeignStore> {
  const stores = (await ctx.stores()).filter((s) => s.kind === kind);
  if (name !== undefined) {
    const named = stores.find((s) => s.name === name);
    if (!named)
      throw usageError(
        `--store: no ${kind} store named "${name}"`,
        stores.length ? `Configured ${kind} stores: ${stores.map((s) => s.name).join(', ')}.` : undefined,
      );
    return named;
  }
  if (stores.length === 0) {
    throw configError(
      'no_store',
      `no ${kind} store is configured`,
      `Add it to the config's stores: list (see docs/${kind === 'roundcube' ? 'roundcube-store' : 'configuration'}.md).`,
    );
  }
  if (stores.length > 1)
    throw usageError(
      `${stores.length} ${kind} stores are configured: name one with --store`,
      `Configured: ${stores.map((s) => s.name).join(', ')}.`,
    );
  return stores[0]!;
}
