/**
 * Rules across stores (docs/stores.md): mail2fa's own store is always first; foreign stores
 * follow in the configured order. The core never queries a store's tables: it calls the ForeignStore methods and
 * turns their answers and failures into one report.
 */
import type { Config } from '../config.js';
import type { Trx } from '../db/tx.js';
import type {
  ForeignStore,
  StoreAccountStatus,
  StoreCapability,
  StoreChange,
  StoreWriteContext,
} from '../stores/types.js';
import { ExitCode, Mail2faError, configError } from '../errors.js';

/** The name of mail2fa's own store (status `sources`, audit rows, `--store`). */
export const OWN_STORE = 'mail2fa';

const CAPABILITY_WORDS: Record<StoreCapability, string> = {
  status: 'report status',
  recover: 'reset 2FA (recover)',
  verify: 'check codes (verify)',
  disable: 'turn 2FA off (disable)',
  enable: 'enrol a factor (enable)',
  'migrate-out': 'export its secrets (migrate-from)',
  'temporary-bypass': 'issue a one-login bypass',
};

/** 78 naming the store, when a command needs what it cannot do. */
export function missingCapability(
  store: Pick<ForeignStore, 'name' | 'kind'>,
  capability: StoreCapability,
  why?: string,
): Mail2faError {
  return configError(
    'store_capability',
    `store "${store.name}" (${store.kind}) cannot ${CAPABILITY_WORDS[capability]}${why ? `: ${why}` : ''}`,
    `Do it in ${store.kind} itself, or configure a store that can (see docs/stores.md).`,
  );
}

/** What one foreign store said about an account: its status, or why it could not be asked. */
export interface StoreReading {
  store: ForeignStore;
  status: StoreAccountStatus | null;
  error?: Mail2faError;
}

/** Asks every store about one account, in order; a store that fails is reported, not fatal. Read-only. */
export async function readStores(stores: readonly ForeignStore[], email: string): Promise<StoreReading[]> {
  return Promise.all(
    stores.map(async (store): Promise<StoreReading> => {
      try {
        return { store, status: await store.account(email) };
      } catch (err) {
        return { store, status: null, error: asMail2faError(err) };
      }
    }),
  );
}

/** Throws the first store failure of `readings` (a command that must know every store's answer). */
export function requireReadings(readings: readonly StoreReading[]): void {
  const failed = readings.find((r) => r.error);
  if (failed) throw storeFailure(failed.store, failed.error!);
}

/** A store's error, re-worded with the store's name, keeping its exit code. */
export function storeFailure(store: Pick<ForeignStore, 'name' | 'kind'>, err: Mail2faError): Mail2faError {
  return new Mail2faError(err.code, `store "${store.name}" (${store.kind}): ${err.message}`, err.exitCode, err.hint);
}

export function asMail2faError(err: unknown): Mail2faError {
  if (err instanceof Mail2faError) return err;
  return new Mail2faError(
    'store_failed',
    (err as Error)?.message?.split('\n')[0] ?? String(err),
    ExitCode.SOFTWARE,
    'This is a bug in mail2fa: please report it.',
  );
}

/** The StoreChange recording that a store's write failed (the core goes on with the next store). */
export function failedChange(store: ForeignStore, err: unknown): StoreChange {
  const failure = storeFailure(store, asMail2faError(err));
  return {
    store: store.name,
    kind: store.kind,
    outcome: 'failed',
    detail: failure.message,
    error: { code: failure.code, message: failure.message, exitCode: failure.exitCode },
  };
}

/**
 * `recover --temporary-code` on a store with a one-login bypass of its own (mailcow: `active = 0`, re-armed by
 * mailcow after one sign-in): its sign-in cannot take mail2fa's temporary code, so the store's own bypass is what
 * keeps 2FA required there while letting the user in once.
 */
export function usesOneLoginBypass(store: ForeignStore, temporaryCode: boolean): boolean {
  return temporaryCode && store.temporaryBypass !== undefined && store.capabilities.has('temporary-bypass');
}

/** Stores in which the account has 2FA switched on. */
export function activatedIn(readings: readonly StoreReading[]): StoreReading[] {
  return readings.filter((r) => r.status?.activated);
}

/**
 * The exit code of a partial failure: 69 when a store was unavailable, else 75 (changed meanwhile, busy), else the
 * first failure's own code.
 */
export function partialExitCode(changes: readonly StoreChange[]): number {
  const failed = changes.filter((c) => c.outcome === 'failed');
  if (failed.some((c) => c.error?.exitCode === ExitCode.UNAVAILABLE)) return ExitCode.UNAVAILABLE;
  if (failed.some((c) => c.error?.exitCode === ExitCode.TEMPFAIL)) return ExitCode.TEMPFAIL;
  return failed[0]?.error?.exitCode ?? ExitCode.OK;
}

/** One non-secret audit detail per store: { "store:NAME": "changed" | "nothing" | "failed: CODE" }. */
export function auditOutcomes(changes: readonly StoreChange[]): Record<string, string> {
  return Object.fromEntries(
    changes.map((change) => [
      `store:${change.store}`,
      change.outcome === 'failed' ? `failed: ${change.error?.code ?? 'error'}` : change.outcome,
    ]),
  );
}

/** A foreign store's TOTP secret, named by its store (for messages and audit rows; never the secret). */
export interface ForeignSecret {
  store: string;
  key: Buffer;
  ref: string;
}

/** What the foreign stores require of one account at sign-in, and what mail2fa can check for them. */
export interface ForeignFactors {
  /** Some store enforces 2FA for the account (sign-in asks for a code). */
  required: boolean;
  /** Stores in which 2FA is on (activated), in order. */
  stores: string[];
  /** TOTP secrets mail2fa can verify (stores with the 'verify' capability). */
  secrets: ForeignSecret[];
  /** Stores that keep recovery codes of their own that mail2fa can consume. */
  recoveryStores: ForeignStore[];
}

export const NO_FOREIGN_FACTORS: ForeignFactors = { required: false, stores: [], secrets: [], recoveryStores: [] };

/**
 * Reads every foreign store for one account: what it enforces and the secrets mail2fa can check. Fails closed: a
 * store that cannot be read throws (named), since "not required" could let a sign-in through without its code.
 */
export async function foreignFactors(stores: readonly ForeignStore[], email: string): Promise<ForeignFactors> {
  if (stores.length === 0) return NO_FOREIGN_FACTORS;
  const readings = await readStores(stores, email);
  requireReadings(readings);
  const out: ForeignFactors = { required: false, stores: [], secrets: [], recoveryStores: [] };
  for (const { store, status } of readings) {
    if (!status?.activated) continue;
    out.stores.push(store.name);
    if (status.enforced) out.required = true;
    if (!store.capabilities.has('verify')) continue;
    try {
      if (store.totpSecrets)
        for (const s of await store.totpSecrets(email)) out.secrets.push({ store: store.name, key: s.key, ref: s.ref });
    } catch (err) {
      throw storeFailure(store, asMail2faError(err));
    }
    if (store.consumeRecoveryCode) out.recoveryStores.push(store);
  }
  return out;
}

/**
 * The write context for `store` inside mail2fa's account transaction `trx`: a store in mail2fa's own database joins
 * that transaction (one commit for both, and no second connection SQLite would wait for); others get none.
 */
export function storeWriteContext(
  config: Pick<Config, 'stores' | 'db'>,
  store: ForeignStore,
  trx: Trx,
  now: number,
  actor: string,
): StoreWriteContext {
  const entry = config.stores.find((s) => s.name === store.name);
  const shared = entry !== undefined && (entry.db === undefined || entry.db.url === config.db.url);
  return { now, actor, ...(shared ? { sharedTransaction: trx } : {}) };
}
