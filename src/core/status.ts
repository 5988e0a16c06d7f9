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

export function temporaryCodeState(t: { expiresAt: number; usedAt: number | null }, now: number): TemporaryCodeState {
  return {
    state: t.usedAt !== null ? 'used' : t.expiresAt > now ? 'pending' : 'expired',
    expiresAt: isoTime(t.expiresAt)!,
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

function num(v: number | string | null | undefined): number | null {
  return v === null || v === undefined ? null : Number(v);
}

/** mail2fa's own store as a StoreAccountStatus (for `stores` of a status row). */
function ownStoreStatus(method: 'totp' | 'sms' | null, temporaryCode: TemporaryCodeState | null): StoreAccountStatus {
  return {
    store: OWN_STORE,
    kind: 'mail2fa',
    activated: true,
    enforced: true,
    factors: method ? [{ kind: method, active: true }] : [],
    ...(temporaryCode ? { details: { temporaryCode: temporaryCode.state } } : {}),
  };
}

export function toStatusRow(r: StatusDbRow, now: number): StatusRow {
  const ours = r.method === 'totp' || r.method === 'sms' ? r.method : null;
  const lockedUntil = num(r.locked_until);
  const tempExpires = num(r.temp_expires_at);
  const temporaryCode =
    tempExpires === null ? null : temporaryCodeState({ expiresAt: tempExpires, usedAt: num(r.temp_used_at) }, now);
  const on = Boolean(ours) || temporaryCode !== null;
  return {
    email: r.email,
    state: 'ok',
    active: isActive(r.active),
    enabled: on,
    enforced: on,
    method: ours,
    source: on ? OWN_STORE : null,
    sources: on ? [OWN_STORE] : [],
    stores: on ? [ownStoreStatus(ours, temporaryCode)] : [],
    phone: ours === 'sms' ? r.phone_masked : null,
    enrolledAt: isoTime(num(r.enrolled_at)),
    lastUsedAt: isoTime(num(r.last_used_at)),
    recoveryCodesLeft: ours ? Number(r.codes_left ?? 0) : null,
    lockedUntil: lockedUntil !== null && lockedUntil > now ? isoTime(lockedUntil) : null,
    temporaryCode,
  };
}

function emptyRow(email: string, state: AccountState, problem?: string): StatusRow {
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
    try {
      for await (const batch of streamStatusRows(deps.db, deps.tables, deps.mapping, where)) {
        const rows: StatusRow[] = [];
        for (const r of batch) {
          // A case-insensitive domain column may return "Example.COM" rows for "example.com": keep exact ones.
          if (domain !== undefined && r.domain !== domain) continue;
          rows.push(toStatusRow(r, now));
        }
        if (!rows.length) continue;
        if (!deps.stores?.length) {
          yield rows;
          continue;
        }
        const next = addForeignStores(rows, deps.stores);
        next.catch(() => {}); // awaited below; a rejection before then is not unhandled
        const previous = ahead;
        ahead = next;
        if (previous) yield await previous;
      }
      if (ahead) yield await ahead;
    } finally {
      // Stopped early or failed: the batch still being read must settle before the databases close.
      await ahead?.catch(() => {});
    }
    return;
  }

  let pending: { input: string; address?: string; problem?: string }[] = [];
  const flush = async (): Promise<StatusRow[]> => {
    const addresses = [...new Set(pending.filter((p) => p.address).map((p) => p.address!))];
    const found = await lookupStatusRows(deps.db, deps.tables, deps.mapping, addresses);
    const byEmail = new Map<string, StatusDbRow[]>();
    for (const r of found) {
      const list = byEmail.get(r.email);
      if (list) list.push(r);
      else byEmail.set(r.email, [r]);
    }
    const rows: StatusRow[] = [];
    for (const p of pending) {
      let row: StatusRow;
      if (!p.address) row = emptyRow(p.input, 'invalid', p.problem);
      else {
        const matches = byEmail.get(p.address) ?? []; // exact: Map keys compare byte for byte
        if (matches.length === 0) row = emptyRow(p.address, 'unknown');
        else if (matches.length > 1)
          row = emptyRow(p.address, 'ambiguous', `${matches.length} mailbox rows have this address`);
        else row = toStatusRow(matches[0]!, now);
      }
      rows.push(row);
    }
    pending = [];
    return addForeignStores(rows, deps.stores);
  };
  for await (const input of selection.emails as AsyncIterable<string>) {
    const parsed = tryCanonicalAddress(input);
    // An invalid input is echoed escaped (never raw) and cut to a short prefix that says how long it was: a list
    // file that is something else (a key, a password file) must not be printed through the rows.
    pending.push(
      'problem' in parsed ? { input: invalidEcho(input), problem: parsed.problem } : { input, address: parsed.address },
    );
    if (pending.length >= LOOKUP_BATCH) {
      const rows = await flush();
      if (rows.length) yield rows;
    }
  }
  if (pending.length) {
    const rows = await flush();
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

export function addToSummary(s: StatusSummary, row: StatusRow): void {
  if (row.state === 'unknown') s.unknown++;
  else if (row.state === 'invalid' || row.state === 'ambiguous') s.invalid++;
  else {
    s.accounts++;
    if (row.enabled) {
      s.enabled++;
      if (row.method) s.byMethod[row.method]++;
      else if (row.temporaryCode) s.byMethod.temporaryCode++;
    } else s.disabled++;
  }
}

/** Whether a row passes --enabled / --disabled (unknown and invalid rows pass neither). */
export function matchesFilter(row: StatusRow, filter: 'enabled' | 'disabled' | undefined): boolean {
  if (!filter) return true;
  if (row.state !== 'ok') return false;
  return filter === 'enabled' ? row.enabled === true : row.enabled === false;
}
