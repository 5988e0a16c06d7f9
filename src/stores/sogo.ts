/**
 * SOGo's user profile as a store (PRODUCT.md §9.3): `sogo_user_profile(c_uid, c_defaults, c_settings)`, both
 * JSON text.
 *
 *   - On/off: `c_defaults.SOGoTOTPEnabled` (older SOGo: `SOGoGoogleAuthenticatorEnabled`); a missing key falls
 *     back to the domain/system default (`options.defaultEnabled` tells mail2fa what sogo.conf says).
 *   - Key: `c_settings.General.totpKey` (SOGo ≥ 5.12.5: 20 hex characters; the HMAC key is their ASCII bytes) or
 *     the first 12 characters of `General.PrivateSalt` (5.3–5.12.4). Neither → SOGo lets the user in without a
 *     code: activated but not enforced.
 *   - reset / disable: an explicit `SOGoTOTPEnabled: 0` (and `SOGoGoogleAuthenticatorEnabled: 0` when that is on),
 *     written by a strict parse of c_defaults and a rewrite of exactly that member's value (every other byte kept),
 *     compare-and-set on the old text. c_settings (the key) is never written.
 *   - cache: SOGo serves profiles from memcached (`<uid>+defaults`, `<uid>+settings`) for up to
 *     SOGoCacheCleanupInterval; after a change both keys are deleted on every configured memcached. A memcached
 *     that cannot be reached then is reported with the change (which happened), never ignored.
 *   - verify: SOGo accepts the current step only (window 0); `storeWindow: 0` asks mail2fa for the same.
 */
import type { Knex } from 'knex';
import { z } from 'zod';
import type { Database, Dialect } from '../db/connection.js';
import { escapeControl } from '../text.js';
import { memcachedDelete, memcachedVersion, parseMemcachedServer, type MemcachedServer } from './memcached.js';
import { JsonSyntaxError, member, parseStrictJson, setTopLevelMember, type JsonNode } from './strict-json.js';
import {
  doctorSchema,
  exactSql,
  doctorWriteAccess,
  lazyStoreDatabase,
  prefixed,
  sqlIdentifier,
  statusInChunks,
  StoreConflict,
  storeRead,
  storeTransaction,
  unparsable,
  whereExact,
} from './support.js';
import type {
  ForeignStore,
  StoreAccountStatus,
  StoreCapability,
  StoreChange,
  StoreCheck,
  StoreConfigBase,
  StoreDefinition,
  StoreDeps,
  StoreFactor,
  StoreTotpSecret,
  StoreWriteContext,
} from './types.js';

export const SogoOptionsSchema = z.strictObject({
  /** The table of SOGoProfileURL. */
  table: sqlIdentifier.default('sogo_user_profile'),
  /**
   * Which key SOGo uses: `totpKey` (≥ 5.12.5), `privateSalt` (5.3–5.12.4), or `auto` (totpKey when the profile has
   * one, else PrivateSalt).
   */
  keyGeneration: z.enum(['auto', 'totpKey', 'privateSalt']).default('auto'),
  /** What sogo.conf's SOGoTOTPEnabled (system or domain default) says, for profiles without the key. */
  defaultEnabled: z.boolean().default(false),
  /** SOGoMemcachedHost: "host:port" entries or unix socket paths; null = SOGo runs without memcached. */
  memcached: z
    .strictObject({
      servers: z
        .array(
          z.string().refine((s) => parseMemcachedServer(s) !== null, 'must be host:port, [v6]:port or /path/to/socket'),
        )
        .min(1),
      timeoutMs: z.number().int().min(50).max(30_000).default(1000),
    })
    .nullable()
    .default(null),
  /** SOGoCacheCleanupInterval in seconds (SOGo 300; mailcow sets 900): how long a stale cache entry may live. */
  cacheCleanupInterval: z.number().int().min(1).max(86_400).default(300),
});
export type SogoOptions = z.infer<typeof SogoOptionsSchema>;

const ENABLED = 'SOGoTOTPEnabled';
const ENABLED_OLD = 'SOGoGoogleAuthenticatorEnabled';
/** SOGo checks the current 30-second step only. */
const SOGO_TOTP_WINDOW = 0;

interface ProfileRow {
  c_uid: string;
  c_defaults: string | Buffer | null;
  c_settings: string | Buffer | null;
}

type Flag = { state: 'on' | 'off' | 'missing' } | { state: 'problem'; problem: string };

/** A JSON text column: the text, or why it cannot be trusted. */
function columnText(value: string | Buffer | null): { text: string | null } | { problem: string } {
  if (value === null) return { text: null };
  if (!Buffer.isBuffer(value)) return { text: value };
  const text = value.toString('utf8');
  return Buffer.from(text, 'utf8').equals(value) ? { text } : { problem: 'not valid UTF-8' };
}

/** `keepDepth`: how deep the reader keeps what it parsed (everything is checked): what the caller looks at. */
function parseObject(
  label: string,
  value: string | Buffer | null,
  keepDepth: number,
): { root: JsonNode | null; text: string | null } | { problem: string } {
  const col = columnText(value);
  if ('problem' in col) return { problem: `${label}: ${col.problem}` };
  if (col.text === null) return { root: null, text: null };
  try {
    const root = parseStrictJson(col.text, keepDepth);
    if (root.type !== 'object') return { problem: `${label} is not a JSON object` };
    return { root, text: col.text };
  } catch (err) {
    return { problem: `${label} does not parse (${err instanceof JsonSyntaxError ? err.message : 'unreadable'})` };
  }
}

/** SOGo's boolForKey on what SOGo writes (1/0) and what sogo-tool or older versions may have written. */
function parseFlag(root: JsonNode | null, key: string): Flag {
  const value = root ? member(root, key) : undefined;
  if (!value) return { state: 'missing' };
  if (value.type === 'number' && /^-?[0-9]+$/.test(value.raw)) return { state: Number(value.raw) !== 0 ? 'on' : 'off' };
  if (value.type === 'literal' && typeof value.value === 'boolean') return { state: value.value ? 'on' : 'off' };
  if (value.type === 'string' && ['1', 'YES', 'yes', 'true'].includes(value.value)) return { state: 'on' };
  if (value.type === 'string' && ['0', 'NO', 'no', 'false'].includes(value.value)) return { state: 'off' };
  return { state: 'problem', problem: `c_defaults.${key} is neither 0 nor 1` };
}

interface Profile {
  uid: string;
  ref: string;
  defaults: { root: JsonNode | null; text: string | null } | { problem: string };
  enabled: Flag;
  enabledOld: Flag;
  /** Effective on/off and where it comes from. */
  on: boolean;
  source: string;
  key?: { bytes: Buffer; generation: 'General.totpKey' | 'General.PrivateSalt' };
  problems: string[];
}

class SogoStore implements ForeignStore {
  readonly kind = 'sogo' as const;
  readonly name: string;
  /** The key sits in c_settings as plain text. */
  readonly plaintextSecrets = true;
  readonly capabilities: ReadonlySet<StoreCapability> = new Set<StoreCapability>([
    'status',
    'recover',
    'verify',
    'disable',
  ]);
  private readonly table: string;
  private readonly servers: MemcachedServer[];
  private readonly db: () => Promise<Database>;

  constructor(
    private readonly config: StoreConfigBase & { options: SogoOptions },
    deps: StoreDeps,
  ) {
    this.name = config.name;
    this.table = prefixed(config, config.options.table);
    this.servers = (config.options.memcached?.servers ?? []).map((s) => parseMemcachedServer(s)!);
    this.db = lazyStoreDatabase(config, deps);
  }

  private ref(uid: string): string {
    return `${this.table}.c_uid=${escapeControl(uid)}`;
  }

  private async rowsOf(
    knex: Knex | Knex.Transaction,
    dialect: Dialect,
    uids: readonly string[],
    columns: string[],
    lock = false,
  ): Promise<ProfileRow[]> {
    const wanted = new Set(uids);
    let query = knex(this.table)
      .select(columns)
      .whereIn('c_uid', [...wanted]);
    if (lock && dialect !== 'sqlite') query = query.forUpdate();
    return ((await query) as ProfileRow[]).filter((r) => wanted.has(r.c_uid));
  }

  private readKey(settings: ReturnType<typeof parseObject>, problems: string[]): Profile['key'] {
    if ('problem' in settings) {
      problems.push(settings.problem);
      return undefined;
    }
    const general = settings.root ? member(settings.root, 'General') : undefined;
    if (!general) return undefined;
    if (general.type !== 'object') {
      problems.push('c_settings.General is not a JSON object');
      return undefined;
    }
    const gen = this.config.options.keyGeneration;
    const totpKey = member(general, 'totpKey');
    if (totpKey && gen !== 'privateSalt') {
      if (totpKey.type === 'string' && /^[0-9a-f]{20}$/.test(totpKey.value))
        return { bytes: Buffer.from(totpKey.value, 'ascii'), generation: 'General.totpKey' };
      problems.push('c_settings.General.totpKey is not 20 lower-case hex characters');
      return undefined;
    }
    if (gen === 'totpKey') return undefined;
    const salt = member(general, 'PrivateSalt');
    if (!salt) return undefined;
    if (salt.type === 'string' && /^[\x21-\x7e]{12,}$/.test(salt.value))
      return { bytes: Buffer.from(salt.value.slice(0, 12), 'ascii'), generation: 'General.PrivateSalt' };
    problems.push('c_settings.General.PrivateSalt is not a string of at least 12 printable ASCII characters');
    return undefined;
  }

  private profile(row: ProfileRow): Profile {
    const problems: string[] = [];
    const defaults = parseObject('c_defaults', row.c_defaults, 1); // the top-level flags
    if ('problem' in defaults) problems.push(defaults.problem);
    const root = 'root' in defaults ? defaults.root : null;
    const enabled = parseFlag(root, ENABLED);
    const enabledOld = parseFlag(root, ENABLED_OLD);
    for (const f of [enabled, enabledOld]) if (f.state === 'problem') problems.push(f.problem);
    let on: boolean;
    let source: string;
    if (enabled.state === 'on' || enabled.state === 'off') {
      on = enabled.state === 'on';
      source = ENABLED;
    } else if (enabledOld.state === 'on' || enabledOld.state === 'off') {
      on = enabledOld.state === 'on';
      source = ENABLED_OLD;
    } else {
      on = this.config.options.defaultEnabled;
      source = 'system/domain default (options.defaultEnabled)';
    }
    const profile: Profile = {
      uid: row.c_uid,
      ref: this.ref(row.c_uid),
      defaults,
      enabled,
      enabledOld,
      on,
      source,
      problems,
    };
    const key = this.readKey(parseObject('c_settings', row.c_settings, 2), problems); // General.totpKey / PrivateSalt
    if (key) profile.key = key;
    return profile;
  }

  private statusOf(profile: Profile): StoreAccountStatus {
    const unreadable = 'problem' in profile.defaults || profile.enabled.state === 'problem';
    const factors: StoreFactor[] = [];
    if (profile.on || profile.key) {
      factors.push({
        kind: 'totp',
        active: profile.on && !unreadable,
        label: profile.key ? profile.key.generation : 'no key',
        weak: true,
        ref: profile.ref,
      });
    }
    const status: StoreAccountStatus = {
      store: this.name,
      kind: this.kind,
      activated: profile.on && !unreadable,
      enforced: profile.on && !unreadable && profile.key !== undefined,
      factors,
      details: { enabledBy: profile.source, key: profile.key ? profile.key.generation : null },
    };
    if (status.activated && !profile.key)
      status.notEnforced = [
        `${profile.source} is on but the profile has no TOTP key (General.totpKey / General.PrivateSalt): SOGo lets the user in without a code`,
      ];
    if (profile.problems.length > 0) status.problems = profile.problems;
    return status;
  }

  async account(email: string): Promise<StoreAccountStatus | null> {
    return (await this.statusBatch([email])).get(email) ?? null;
  }

  async statusBatch(emails: readonly string[]): Promise<Map<string, StoreAccountStatus>> {
    return statusInChunks(this.db, emails, 2000, async (db, batch, out) => {
      for (const row of await this.rowsOf(db.knex, db.dialect, batch, ['c_uid', 'c_defaults', 'c_settings']))
        out.set(row.c_uid, this.statusOf(this.profile(row)));
    });
  }

  async totpSecrets(email: string): Promise<StoreTotpSecret[]> {
    const db = await this.db();
    const rows = await storeRead(db, () =>
      this.rowsOf(db.knex, db.dialect, [email], ['c_uid', 'c_defaults', 'c_settings']),
    );
    const profile = rows[0] ? this.profile(rows[0]) : undefined;
    if (!profile || !profile.key || !this.statusOf(profile).enforced) return [];
    return [
      { key: profile.key.bytes, ref: `${profile.ref} (${profile.key.generation})`, storeWindow: SOGO_TOTP_WINDOW },
    ];
  }

  // ------------------------------------------------------------------------------------------------- writes

  private async turnOff(email: string, verb: string, ctx: StoreWriteContext): Promise<StoreChange> {
    const db = await this.db();
    const change = await storeTransaction(db, this.name, ctx.sharedTransaction, async (trx): Promise<StoreChange> => {
      const [row] = await this.rowsOf(trx, db.dialect, [email], ['c_uid', 'c_defaults', 'c_settings'], true);
      if (!row)
        return {
          store: this.name,
          kind: this.kind,
          outcome: 'nothing',
          detail: `no SOGo profile (${this.table}) for the account`,
        };
      const profile = this.profile(row);
      if ('problem' in profile.defaults)
        throw unparsable(this.name, `${profile.ref} c_defaults`, profile.defaults.problem);
      for (const f of [profile.enabled, profile.enabledOld])
        if (f.state === 'problem') throw unparsable(this.name, profile.ref, f.problem);
      const writes: string[] = [];
      if (profile.enabled.state !== 'off') writes.push(ENABLED);
      if (profile.enabledOld.state === 'on') writes.push(ENABLED_OLD);
      if (writes.length === 0)
        return { store: this.name, kind: this.kind, outcome: 'nothing', detail: `${ENABLED} is already 0` };

      const old = profile.defaults.text;
      let text = old ?? '{}';
      for (const key of writes) text = setTopLevelMember(text, parseStrictJson(text), key, '0');
      let update = whereExact(trx(this.table).where('c_uid', email), db.dialect, 'c_uid', email);
      update =
        old === null
          ? update.whereNull('c_defaults')
          : update.whereRaw(exactSql(db.dialect), ['c_defaults', Buffer.from(old, 'utf8')]);
      const changed = Number(await update.update({ c_defaults: text }));
      if (changed !== 1) throw new StoreConflict(`${profile.ref} c_defaults`);
      const was =
        profile.enabled.state === 'missing'
          ? `${ENABLED} was not set (${profile.source} applied)`
          : `${ENABLED} was on`;
      return {
        store: this.name,
        kind: this.kind,
        outcome: 'changed',
        detail: `${verb}: wrote ${writes.map((k) => `${k}: 0`).join(', ')} into c_defaults (${was}); the key in c_settings is untouched`,
        refs: [profile.ref],
      };
    });
    if (change.outcome !== 'changed') return change;
    const reported = await this.invalidateCache(email, change);
    // Inside mail2fa's transaction the new value is not committed yet: SOGo could cache the old one again in
    // between, so the entries are deleted once more when that transaction ends (what the first delete reported
    // about reachability stands for both).
    ctx.sharedTransaction?.executionPromise.then(
      () => this.deleteCacheEntries(email).catch(() => {}),
      () => {},
    );
    return reported;
  }

  private async deleteCacheEntries(uid: string): Promise<{ deleted: number; failures: string[] }> {
    const memcached = this.config.options.memcached!;
    const keys = [`${uid}+defaults`, `${uid}+settings`];
    const failures: string[] = [];
    let deleted = 0;
    for (const server of this.servers) {
      try {
        const result = await memcachedDelete(server, keys, memcached.timeoutMs);
        deleted += [...result.values()].filter((r) => r === 'DELETED').length;
      } catch (err) {
        failures.push(`${server.display}: ${(err as Error).message}`);
      }
    }
    return { deleted, failures };
  }

  /** Deletes `<uid>+defaults` and `<uid>+settings` on every configured memcached; failures are reported, not thrown. */
  private async invalidateCache(uid: string, change: StoreChange): Promise<StoreChange> {
    const memcached = this.config.options.memcached;
    if (!memcached)
      return {
        ...change,
        detail: `${change.detail}; no memcached configured (SOGo without a cache sees the change at once)`,
      };
    const { deleted, failures } = await this.deleteCacheEntries(uid);
    if (failures.length === 0) {
      return {
        ...change,
        detail: `${change.detail}; SOGo's cache entries deleted on ${this.servers.length} memcached server${this.servers.length === 1 ? '' : 's'} (${deleted} were cached)`,
      };
    }
    const message = `the change is saved, but SOGo's cache could not be cleared (${failures.join('; ')}): SOGo may keep using the old profile for up to ${this.config.options.cacheCleanupInterval} s (SOGoCacheCleanupInterval)`;
    return {
      ...change,
      detail: `${change.detail}; WARNING: ${message}`,
      error: { code: 'cache_invalidation_failed', message, exitCode: 69 },
    };
  }

  reset(email: string, ctx: StoreWriteContext): Promise<StoreChange> {
    return this.turnOff(email, 'SOGo TOTP turned off', ctx);
  }

  disable(email: string, ctx: StoreWriteContext): Promise<StoreChange> {
    return this.turnOff(email, 'SOGo TOTP turned off by the owner', ctx);
  }

  // ------------------------------------------------------------------------------------------------- doctor

  async doctor(): Promise<StoreCheck[]> {
    const name = (what: string) => `store ${this.name}: ${what}`;
    const { db, checks } = await doctorSchema(
      this.name,
      this.db,
      this.table,
      (d) => d.knex(this.table).select('c_uid', 'c_defaults', 'c_settings').limit(0),
      "Point the store at SOGo's database and the table of SOGoProfileURL.",
    );
    if (!db) return checks;
    checks.push({
      name: name('plaintext secrets'),
      status: 'warn',
      detail: `SOGo keeps each user's TOTP key in plaintext in ${this.table}.c_settings (80-bit keys); mail2fa only reads them`,
    });
    checks.push(
      await doctorWriteAccess(this.name, db, this.table, 'recover and disable', (trx) =>
        trx(this.table).whereRaw('1 = 0').update({ c_defaults: null }),
      ),
    );
    const memcached = this.config.options.memcached;
    if (!memcached) {
      checks.push({
        name: name('memcached'),
        status: 'warn',
        detail:
          'no memcached configured: if SOGo uses one (SOGoMemcachedHost), changes show only after SOGoCacheCleanupInterval',
        hint: 'Set options.memcached.servers to SOGoMemcachedHost.',
      });
    }
    for (const server of this.servers) {
      try {
        const version = await memcachedVersion(server, memcached!.timeoutMs);
        checks.push({
          name: name(`memcached ${server.display}`),
          status: 'ok',
          detail: `reachable (memcached ${escapeControl(version)})`,
        });
      } catch (err) {
        checks.push({
          name: name(`memcached ${server.display}`),
          status: 'fail',
          detail: `unreachable (${(err as Error).message}): after a recover SOGo may serve the old profile for up to ${this.config.options.cacheCleanupInterval} s`,
          exitCode: 69,
        });
      }
    }
    return checks;
  }

  async close(): Promise<void> {
    // The database belongs to the core; memcached connections are per call.
  }
}

export const sogoStore: StoreDefinition<SogoOptions> = {
  kind: 'sogo',
  optionsSchema: SogoOptionsSchema,
  open: (config, deps) => new SogoStore(config, deps),
};
