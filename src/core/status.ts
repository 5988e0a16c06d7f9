/**
 * `status`: one row per account, for one address, a list (file/stdin, any length) or whole tables.
 * Returns batches of rows (an async generator), so output streams in constant memory.
 */
import type { AccountMapping } from '../db/accounts.js';
import { isActive } from '../db/accounts.js';
import type { Database } from '../db/connection.js';
import type { Tables } from '../db/schema.js';
import { lookupStatusRows, streamStatusRows, type StatusDbRow } from '../db/status-query.js';
import type { ForeignStore, StoreAccountStatus } from '../stores/types.js';
import { isoTime } from './time.js';
import { invalidEcho, preview, tryCanonicalAddress } from './address.js';
import { dataError } from '../errors.js';
import { asMail2faError, OWN_STORE, storeFailure } from './stores.js';

export type AccountState = 'ok' | 'unknown' | 'invalid' | 'ambiguous';

export interface StatusRow {
  email: string;
  state: AccountState;
  /** The mailbox's own active flag. */
  active: boolean | null;
  /** 2FA is switched on in at least one store (or required by a temporary access code). */
  enabled: boolean | null;
  /**
   * Sign-in really asks for a code: enabled in a store that nothing bypasses (a foreign store's own configuration,
   * an inactive mailbox in PostfixAdmin: see `stores[].notEnforced`).
   */
  enforced: boolean | null;
  method: 'totp' | 'sms' | null;
  /** The first of `sources` (kept for scripts written before stores were configurable), or null. */
  source: string | null;
  /** Every store in which 2FA is on for the account, in order: "mail2fa" first, then the configured stores' names. */
  sources: string[];
  /** What each of those stores says (no secrets): factors, `weak` secrets, activated vs enforced, problems. */
  stores: StoreAccountStatus[];
  phone: string | null;
  enrolledAt: string | null;
  lastUsedAt: string | null;
  recoveryCodesLeft: number | null;
  lockedUntil: string | null;
  /**
   * A temporary access code from `recover --temporary-code`. While its row exists (pending, used or expired)
   * and no new factor is enrolled, 2FA stays required: `enabled` is true with `method` null.
   */
  temporaryCode: TemporaryCodeState | null;
  /** Why a row is invalid/ambiguous. */
  problem?: string;
}

export interface TemporaryCodeState {
  state: 'pending' | 'used' | 'expired';
  expiresAt: string;
}

export function temporaryCodeState(
  temporary: { expiresAt: number; usedAt: number | null },
  now: number,
): TemporaryCodeState {
  return {
    state: temporary.usedAt !== null ? 'used' : temporary.expiresAt > now ? 'pending' : 'expired',
    expiresAt: isoTime(temporary.expiresAt)!,
  };
}

export interface StatusDeps {
  db: Database;
  tables: Tables;
  mapping: AccountMapping;
  now: () => number;
  /** Foreign stores to ask per batch (store.statusBatch: never one query per account). */
  stores?: readonly ForeignStore[];
}

export type StatusSelection =
  | { kind: 'all' }
  | { kind: 'domain'; domain: string }
  | { kind: 'emails'; emails: Iterable<string> | AsyncIterable<string> };

const LOOKUP_BATCH = 500;

function num(value: number | string | null | undefined): number | null {
  return value === null || value === undefined ? null : Number(value);
}

/**
 * mail2fa's own store as a StoreAccountStatus (for `stores` of a status row). Only seven distinct values exist,
 * so they are built once and frozen: a million-row status then shares them instead of allocating two objects and
 * an array per row, and a renderer may cache the JSON of a frozen value.
 */
const OWN_STATUSES = new Map<string, StoreAccountStatus>();
function ownStoreStatus(method: 'totp' | 'sms' | null, temporaryCode: TemporaryCodeState | null): StoreAccountStatus {
  const key = `${method ?? ''}/${temporaryCode?.state ?? ''}`;
  let status = OWN_STATUSES.get(key);
  if (!status) {
    status = deepFreeze<StoreAccountStatus>({
      store: OWN_STORE,
      kind: 'mail2fa',
      activated: true,
      enforced: true,
      factors: method ? [{ kind: method, active: true }] : [],
      ...(temporaryCode ? { details: { temporaryCode: temporaryCode.state } } : {}),
    });
    OWN_STATUSES.set(key, status);
  }
  return status;
}

function deepFreeze<T extends object>(value: T): T {
  for (const inner of Object.values(value))
    if (inner !== null && typeof inner === 'object') deepFreeze(inner as object);
  return Object.freeze(value);
}

export function toStatusRow(row: StatusDbRow, now: number): StatusRow {
  const ours = row.method === 'totp' || row.method === 'sms' ? row.method : null;
  const lockedUntil = num(row.locked_until);
  const tempExpires = num(row.temp_expires_at);
  const temporaryCode =
    tempExpires === null ? null : temporaryCodeState({ expiresAt: tempExpires, usedAt: num(row.temp_used_at) }, now);
  const on = Boolean(ours) || temporaryCode !== null;
  return {
    email: row.email,
    state: 'ok',
    active: isActive(row.active),
    enabled: on,
    enforced: on,
    method: ours,
    source: on ? OWN_STORE : null,
    sources: on ? [OWN_STORE] : [],
    stores: on ? [ownStoreStatus(ours, temporaryCode)] : [],
    phone: ours === 'sms' ? row.phone_masked : null,
    enrolledAt: isoTime(num(row.enrolled_at)),
    lastUsedAt: isoTime(num(row.last_used_at)),
    recoveryCodesLeft: ours ? Number(row.codes_left ?? 0) : null,
    lockedUntil: lockedUntil !== null && lockedUntil > now ? isoTime(lockedUntil) : null,
    temporaryCode,
  };
}

export function emptyRow(email: string, state: AccountState, problem?: string): StatusRow {
  return {
    email,
    state,
    active: null,
    enabled: null,
    enforced: null,
    method: null,
    source: null,
    sources: [],
    stores: [],
    phone: null,
    enrolledAt: null,
    lastUsedAt: null,
    recoveryCodesLeft: null,
    lockedUntil: null,
    temporaryCode: null,
    ...(problem ? { problem } : {}),
  };
}

/**
 * Adds what the foreign stores say to a batch of rows: one statusBatch call per store per batch, the stores asked
 * in parallel. A store that cannot answer fails the command, naming the store: a status that silently left out
 * the store sign-in enforces would be wrong.
 */
export async function addForeignStores(
  rows: StatusRow[],
  stores: readonly ForeignStore[] | undefined,
): Promise<StatusRow[]> {
  if (!stores?.length) return rows;
  const emails = [...new Set(rows.filter((r) => r.state === 'ok').map((r) => r.email))];
  if (emails.length === 0) return rows;
  const answers = await Promise.all(
    stores.map(async (store) => {
      try {
        return await store.statusBatch(emails);
      } catch (err) {
        throw storeFailure(store, asMail2faError(err));
      }
    }),
  );
  for (const row of rows) {
    if (row.state !== 'ok') continue;
    for (const answer of answers) {
      const status = answer.get(row.email);
      if (!status || (!status.activated && !status.problems?.length)) continue;
      row.stores.push(status);
      if (!status.activated) continue;
      row.sources.push(status.store);
      row.enabled = true;
      if (status.enforced) row.enforced = true;
      if (!row.method && status.factors.some((f) => f.kind === 'totp' && f.active)) row.method = 'totp';
    }
    row.source = row.sources[0] ?? null;
  }
  return rows;
}

export async function* statusBatches(deps: StatusDeps, selection: StatusSelection): AsyncGenerator<StatusRow[]> {
  const now = deps.now();
  if (selection.kind === 'all' || selection.kind === 'domain') {
    let domain: string | undefined;
    if (selection.kind === 'domain') {
      const parsed = tryCanonicalAddress(`x@${selection.domain}`);
      if ('problem' in parsed)
        throw dataError(
          'bad_domain',
          `invalid domain "${preview(selection.domain)}"`,
          'Give a domain name such as example.com.',
        );
      domain = parsed.address.slice(2);
    }
    const where = domain ? { kind: 'domain' as const, domain } : { kind: 'all' as const };
    // The foreign stores answer batch N while the mailbox rows of batch N+1 are read (one batch ahead, in order):
    // the wait is the slower of the two reads, not their sum.
    let ahead: Promise<StatusRow[]> | undefined;
    // A store that scans a table per read asks for more addresses per read (statusBatchSize): mailbox batches are
    // gathered up to that many before the stores are asked.
    const gather = Math.max(0, ...(deps.stores ?? []).map((s) => s.statusBatchSize ?? 0));
    let gathered: StatusRow[] = [];
    const askStores = async function* (rows: StatusRow[]): AsyncGenerator<StatusRow[]> {
      const next = addForeignStores(rows, deps.stores);
      next.catch(() => {}); // awaited below; a rejection before then is not unhandled
      const previous = ahead;
      ahead = next;
      if (previous) yield await previous;
    };
    try {
      for await (const batch of streamStatusRows(deps.db, deps.tables, deps.mapping, where)) {
        const rows: StatusRow[] = [];
        for (const row of batch) {
          // A case-insensitive domain column may return "Example.COM" rows for "example.com": keep exact ones.
          if (domain !== undefined && row.domain !== domain) continue;
          rows.push(toStatusRow(row, now));
        }
        if (!rows.length) continue;
        if (!deps.stores?.length) {
          yield rows;
          continue;
        }
        if (gathered.length + rows.length < gather) {
          gathered = gathered.length ? gathered.concat(rows) : rows;
          continue;
        }
        const all = gathered.length ? gathered.concat(rows) : rows;
        gathered = [];
        yield* askStores(all);
      }
      if (gathered.length) yield* askStores(gathered);
      if (ahead) yield await ahead;
    } finally {
      // Stopped early or failed: the batch still being read must settle before the databases close.
      await ahead?.catch(() => {});
    }
    return;
  }

  type Listed = { input: string; address?: string; problem?: string };
  let pending: Listed[] = [];
  const lookUp = async (listed: Listed[]): Promise<StatusRow[]> => {
    const addresses = [...new Set(listed.filter((p) => p.address).map((p) => p.address!))];
    const found = await lookupStatusRows(deps.db, deps.tables, deps.mapping, addresses);
    const byEmail = new Map<string, StatusDbRow[]>();
    for (const row of found) {
      const list = byEmail.get(row.email);
      if (list) list.push(row);
      else byEmail.set(row.email, [row]);
    }
    const rows: StatusRow[] = [];
    for (const item of listed) {
      let row: StatusRow;
      if (!item.address) row = emptyRow(item.input, 'invalid', item.problem);
      else {
        const matches = byEmail.get(item.address) ?? []; // exact: Map keys compare byte for byte
        if (matches.length === 0) row = emptyRow(item.address, 'unknown');
        else if (matches.length > 1)
          row = emptyRow(item.address, 'ambiguous', `${matches.length} mailbox rows have this address`);
        else row = toStatusRow(matches[0]!, now);
      }
      rows.push(row);
    }
    return addForeignStores(rows, deps.stores);
  };
  // One batch looked up ahead: the database answers batch n+1 while batch n is formatted and written (two
  // batches in memory at most). Results are yielded in input order; a failed lookup fails when its turn comes.
  let ahead: Promise<StatusRow[]> | null = null;
  const startLookup = (): Promise<StatusRow[]> => {
    const started = lookUp(pending);
    pending = [];
    started.catch(() => {}); // awaited in its turn; never an unhandled rejection meanwhile
    return started;
  };
  for await (const input of selection.emails as AsyncIterable<string>) {
    const parsed = tryCanonicalAddress(input);
    // An invalid input is echoed escaped (never raw) and cut to a short prefix that says how long it was: a list
    // file that is something else (a key, a password file) must not be printed through the rows.
    pending.push(
      'problem' in parsed ? { input: invalidEcho(input), problem: parsed.problem } : { input, address: parsed.address },
    );
    if (pending.length >= LOOKUP_BATCH) {
      const next = startLookup();
      if (ahead) {
        const rows = await ahead;
        if (rows.length) yield rows;
      }
      ahead = next;
    }
  }
  const last = pending.length ? startLookup() : null;
  for (const lookup of [ahead, last]) {
    if (!lookup) continue;
    const rows = await lookup;
    if (rows.length) yield rows;
  }
}

export interface StatusSummary {
  accounts: number;
  enabled: number;
  disabled: number;
  unknown: number;
  invalid: number;
  /** How the enabled accounts sign in; `temporaryCode`: no factor yet, 2FA kept by a recover --temporary-code. */
  byMethod: { totp: number; sms: number; temporaryCode: number };
  /** With --enabled / --disabled: the filter, and how many rows it let through (the counts above cover them all). */
  filter?: 'enabled' | 'disabled';
  shown?: number;
}

export function newSummary(): StatusSummary {
  return {
    accounts: 0,
    enabled: 0,
    disabled: 0,
    unknown: 0,
    invalid: 0,
    byMethod: { totp: 0, sms: 0, temporaryCode: 0 },
  };
}

export function addToSummary(summary: StatusSummary, row: StatusRow): void {
  if (row.state === 'unknown') summary.unknown++;
  else if (row.state === 'invalid' || row.state === 'ambiguous') summary.invalid++;
  else {
    summary.accounts++;
    if (row.enabled) {
      summary.enabled++;
      if (row.method) summary.byMethod[row.method]++;
      else if (row.temporaryCode) summary.byMethod.temporaryCode++;
    } else summary.disabled++;
  }
}

/** Whether a row passes --enabled / --disabled (unknown and invalid rows pass neither). */
export function matchesFilter(row: StatusRow, filter: 'enabled' | 'disabled' | undefined): boolean {
  if (!filter) return true;
  if (row.state !== 'ok') return false;
  return filter === 'enabled' ? row.enabled === true : row.enabled === false;
}
