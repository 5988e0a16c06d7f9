/**
 * Roundcube's `twofactor_gauthenticator` plugin as a store (docs/roundcube-store.md). Its state is
 * one element of `users.preferences`, the PHP `serialize()` of ALL of the user's settings, one row per
 * (username, mail_host). Every write removes, replaces or appends that one element byte-wise
 * (src/stores/php-serialize.ts), compare-and-set against the exact bytes read, all rows of a change in one
 * transaction, retried when Roundcube saved meanwhile, then 75. A value that does not parse exactly is refused
 * (65) and nothing is written: Roundcube reads an unparsable value as empty, which would turn 2FA off and lose
 * every other setting at the user's next save.
 *
 * The plugin keeps no replay state and accepts ±2 steps; mail2fa verifies the secrets it reads here at ±1 with
 * its own replay protection and lockout.
 */
import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { Knex } from 'knex';
import * as z from 'zod';
import { configError, dataError, Mail2faError, tempFail, unknownAccount } from '../errors.js';
import type { Database } from '../db/connection.js';
import { mapDbError } from '../db/connection.js';
import {
  StoreConflict,
  doctorOpen,
  doctorWriteAccess,
  driverError,
  lazyStoreDatabase,
  storeRead,
  storeTransaction,
} from './support.js';
import {
  PhpSerializeError,
  findStringKey,
  parseTopLevel,
  removeStringKey,
  setStringKey,
  valueEnd,
  type TopLevelArray,
} from './php-serialize.js';
import { isRcubeCipher, type RcubeCipher, type RcubeCryptoConfig } from './rcube-crypto.js';
import {
  PLUGIN_KEY,
  base32,
  checkPluginSecret,
  pluginSerialized,
  pluginValueBytes,
  readPluginValue,
  type PluginData,
  type PluginValue,
} from './roundcube-plugin.js';
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

// ---------------------------------------------------------------------------------------------------- options

function validRegex(pattern: string): boolean {
  try {
    new RegExp(pattern);
    return true;
  } catch {
    return false;
  }
}

const CIDR =
  /^(?:(?:25[0-5]|2[0-4]\d|1?\d?\d)(?:\.(?:25[0-5]|2[0-4]\d|1?\d?\d)){3}(?:\/(?:3[0-2]|[12]?\d))?|[0-9A-Fa-f:.]*:[0-9A-Fa-f:.]*(?:\/(?:12[0-8]|1[01]\d|\d?\d))?)$/;
const DOMAIN = /^[a-z0-9]([a-z0-9.-]*[a-z0-9])?$/;

/**
 * The store's options: Roundcube's and the plugin's own setting names where they exist, with the values the site
 * runs with (mail2fa cannot read a PHP config). The Roundcube database's `db_prefix` is the store's `tablePrefix`.
 */
export const RoundcubeOptions = z
  .strictObject({
    /** Roundcube's `des_key` (or `des_key_file`: a file holding it, one trailing newline ignored). */
    des_key: z.string().min(1).optional(),
    des_key_file: z.string().min(1).optional(),
    /** Roundcube's `cipher_method`. */
    cipher_method: z
      .string()
      .default('DES-EDE3-CBC')
      .refine(isRcubeCipher, { message: 'must be one of DES-EDE3-CBC, AES-128/192/256-CBC, AES-128/192/256-GCM' })
      .transform((s) => s.toLowerCase() as RcubeCipher),
    /** The plugin's `twofactor_pref_encrypt`. */
    pref_encrypt: z.boolean().default(false),
    /** The plugin's `users_allowed_2FA` (regular expressions; null = everyone). */
    users_allowed_2FA: z
      .array(z.string().refine(validRegex, { message: 'is not a valid regular expression' }))
      .nullable()
      .default(null),
    /** The plugin's `whitelist` (IP addresses / CIDR ranges that skip 2FA). */
    whitelist: z.array(z.string().regex(CIDR, 'must be an IP address or CIDR range')).default([]),
    /** Roundcube's `login_lc` (2 = lower-case the whole username, 1 = the domain only, 0 = as typed). */
    login_lc: z.union([z.literal(0), z.literal(1), z.literal(2)]).default(2),
    /** Only rows of these IMAP hosts (`users.mail_host`, without the port). Default: every host. */
    mail_hosts: z.array(z.string().min(1)).min(1).optional(),
    /**
     * Roundcube's `mail_domain` (a domain, or mail_host → domain): rows whose username has no "@" belong to
     * `<username>@<domain>`. Without it such rows are not matched to any address.
     */
    mail_domain: z
      .union([
        z.string().regex(DOMAIN, 'must be a plain domain name'),
        z.record(z.string(), z.string().regex(DOMAIN, 'must be a plain domain name')),
      ])
      .optional(),
    /** Also delete the user's Roundcube sessions (`session` table, session_storage = db) on recover and disable. */
    session_signout: z.boolean().default(false),
  })
  .refine((o) => !(o.des_key && o.des_key_file), { message: 'set des_key or des_key_file, not both' })
  .refine((o) => !o.pref_encrypt || o.des_key || o.des_key_file, {
    message: "pref_encrypt needs des_key (or des_key_file): the plugin encrypts with Roundcube's des_key",
  });
export type RoundcubeOptions = z.output<typeof RoundcubeOptions>;

// ---------------------------------------------------------------------------------------------------- rows

export interface RoundcubeRow {
  userId: number;
  username: string;
  mailHost: string;
  /** The exact bytes of `preferences` (null when NULL). */
  prefs: Buffer | null;
}

/** What one row says (no secrets except `key`, which never leaves this module but through totpSecrets/export). */
interface RowReading {
  row: RoundcubeRow;
  ref: string;
  /** The parsed preferences, or why they cannot be edited. */
  top: TopLevelArray | null;
  prefsProblem?: string;
  /** The plugin's element is present. */
  present: boolean;
  value?: PluginValue;
  data?: PluginData | null;
  activated: boolean;
  notEnforced: string[];
  problems: string[];
  key?: Buffer;
  weak?: boolean;
}

const KEY_PATTERN = `%s:24:"${PLUGIN_KEY}";%`;
const KEY_BYTES = Buffer.from(`s:24:"${PLUGIN_KEY}";`);

/** Roundcube's `username` for an address, as its login stores it (login_lc). */
export function roundcubeUsername(email: string, loginLc: 0 | 1 | 2): string {
  if (loginLc === 2) return email.toLowerCase();
  const at = email.lastIndexOf('@');
  return loginLc === 1 ? `${email.slice(0, at)}@${email.slice(at + 1).toLowerCase()}` : email;
}

function plural(count: number, one: string, many = `${one}s`): string {
  return `${count} ${count === 1 ? one : many}`;
}

export const roundcubeStore: StoreDefinition<RoundcubeOptions> = {
  kind: 'roundcube',
  optionsSchema: RoundcubeOptions as unknown as z.ZodType<RoundcubeOptions>,
  open(config, deps) {
    return new RoundcubeStore(config, deps);
  },
};

export class RoundcubeStore implements ForeignStore {
  readonly kind = 'roundcube' as const;
  readonly name: string;
  readonly capabilities = new Set(['status', 'recover', 'verify', 'disable', 'enable', 'migrate-out'] as const);
  readonly plaintextSecrets: boolean;
  private readonly o: RoundcubeOptions;
  private readonly users: string;
  private readonly sessions: string;
  private readonly database: () => Promise<Database>;
  private cryptoConfig?: RcubeCryptoConfig | null;
  /** exportSecrets → clearMigrated: per address, the SHA-256 of each exported key (never the key itself). */
  private readonly exported = new Map<string, Buffer>();
  private readonly userRegexes: RegExp[] | null;

  constructor(
    private readonly config: StoreConfigBase & { options: RoundcubeOptions },
    private readonly deps: StoreDeps,
  ) {
    this.name = config.name;
    this.o = config.options;
    this.plaintextSecrets = !this.o.pref_encrypt;
    const prefix = config.tablePrefix ?? '';
    this.users = `${prefix}users`;
    this.sessions = `${prefix}session`;
    this.userRegexes = this.o.users_allowed_2FA ? this.o.users_allowed_2FA.map((r) => new RegExp(r)) : null;
    this.database = lazyStoreDatabase(config, deps);
  }

  /** des_key + cipher_method, or null when no des_key is configured. */
  private crypto(): RcubeCryptoConfig | null {
    if (this.cryptoConfig !== undefined) return this.cryptoConfig;
    let key: Buffer | null = null;
    if (this.o.des_key) key = Buffer.from(this.o.des_key, 'utf8');
    else if (this.o.des_key_file) {
      try {
        key = readFileSync(this.o.des_key_file);
      } catch (err) {
        throw configError(
          'des_key_file',
          `store ${this.name}: cannot read des_key_file ${this.o.des_key_file}: ${(err as NodeJS.ErrnoException).code ?? 'error'}`,
        );
      }
      if (key.at(-1) === 0x0a) key = key.subarray(0, key.at(-2) === 0x0d ? -2 : -1);
      if (key.length === 0)
        throw configError('des_key_file', `store ${this.name}: des_key_file ${this.o.des_key_file} is empty`);
    }
    this.cryptoConfig = key ? { desKey: key, cipher: this.o.cipher_method } : null;
    return this.cryptoConfig;
  }

  // -------------------------------------------------------------------------------------------- SQL

  private prefsSql(db: Database): string {
    switch (db.dialect) {
      case 'sqlite':
        return 'CAST(preferences AS BLOB)';
      case 'mysql':
        return 'CAST(CONVERT(preferences USING utf8mb4) AS BINARY)';
      default:
        throw configError(
          'store_dialect',
          `store ${this.name}: Roundcube on ${String(db.dialect)} is not supported yet`,
        );
    }
  }

  /** The value to bind for a new `preferences` (bytes kept exactly: SQLite stores TEXT, MySQL converts from utf8mb4). */
  private prefsValueSql(db: Database): string {
    return db.dialect === 'sqlite' ? 'CAST(? AS TEXT)' : 'CONVERT(? USING utf8mb4)';
  }

  private toRow(row: {
    user_id: number | string;
    username: string | Buffer;
    mail_host: string | Buffer;
    prefs: Buffer | string | null;
  }): RoundcubeRow {
    const str = (v: string | Buffer) => (Buffer.isBuffer(v) ? v.toString('utf8') : String(v));
    return {
      userId: Number(row.user_id),
      username: str(row.username),
      mailHost: str(row.mail_host),
      prefs: row.prefs === null ? null : Buffer.isBuffer(row.prefs) ? row.prefs : Buffer.from(row.prefs, 'utf8'),
    };
  }

  /**
   * Rows whose username is one of `usernames` (and of the configured mail_hosts). With `onlyPlugin`, the
   * preferences of rows that cannot hold the plugin's key are not fetched (NULL): bulk status reads less.
   */
  private async rowsByUsername(
    knex: Knex | Knex.Transaction,
    db: Database,
    usernames: readonly string[],
    onlyPlugin: boolean,
  ): Promise<RoundcubeRow[]> {
    if (usernames.length === 0) return [];
    const prefs = this.prefsSql(db);
    const select = onlyPlugin ? `CASE WHEN preferences LIKE ? THEN ${prefs} END AS prefs` : `${prefs} AS prefs`;
    let query = knex(this.users)
      .select('user_id', 'username', 'mail_host', knex.raw(select, onlyPlugin ? [KEY_PATTERN] : []))
      .whereIn('username', [...usernames]);
    if (this.o.mail_hosts) query = query.whereIn('mail_host', this.o.mail_hosts);
    const rows = (await query) as Array<Parameters<RoundcubeStore['toRow']>[0]>;
    return rows.map((r) => this.toRow(r));
  }

  private mailDomainFor(mailHost: string): string | undefined {
    const domain = this.o.mail_domain;
    if (domain === undefined) return undefined;
    return typeof domain === 'string' ? domain : Object.hasOwn(domain, mailHost) ? domain[mailHost] : undefined;
  }

  /** The address a row belongs to (null when it cannot be told: a bare login without mail_domain). */
  rowAddress(row: RoundcubeRow): string | null {
    if (row.username.includes('@')) return row.username;
    const domain = this.mailDomainFor(row.mailHost);
    return domain ? `${row.username}@${domain}` : null;
  }

  /** The usernames under which `email` can have rows: the full address, and the bare local part with mail_domain. */
  private candidates(email: string): string[] {
    const full = roundcubeUsername(email, this.o.login_lc);
    const at = email.lastIndexOf('@');
    const domain = email.slice(at + 1);
    const local = email.slice(0, at);
    const hasBare =
      this.o.mail_domain !== undefined &&
      (typeof this.o.mail_domain === 'string'
        ? this.o.mail_domain === domain
        : Object.values(this.o.mail_domain).includes(domain));
    return hasBare ? [full, this.o.login_lc === 2 ? local.toLowerCase() : local] : [full];
  }

  private belongs(row: RoundcubeRow, email: string): boolean {
    const [full, bare] = this.candidates(email);
    if (row.username === full) return true;
    return (
      bare !== undefined &&
      row.username === bare &&
      this.mailDomainFor(row.mailHost) === email.slice(email.lastIndexOf('@') + 1)
    );
  }

  /** The rows of `email`: in `trx` when given (errors go up raw, for the transaction loop), else a mapped read. */
  private async rowsOf(email: string, trx?: Knex.Transaction): Promise<RoundcubeRow[]> {
    const db = await this.database();
    const rows = trx
      ? await this.rowsByUsername(trx, db, this.candidates(email), false)
      : await storeRead(db, () => this.rowsByUsername(db.knex, db, this.candidates(email), false));
    return rows.filter((r) => this.belongs(r, email)).sort((a, b) => a.userId - b.userId);
  }

  // -------------------------------------------------------------------------------------------- reading

  private read(row: RoundcubeRow): RowReading {
    const ref = `${this.users}.user_id=${row.userId}`;
    const reading: RowReading = {
      row,
      ref,
      top: null,
      present: false,
      activated: false,
      notEnforced: [],
      problems: [],
    };
    if (row.prefs === null || row.prefs.length === 0) {
      reading.top = parseTopLevel(Buffer.from('a:0:{}'));
      return reading;
    }
    try {
      reading.top = parseTopLevel(row.prefs);
    } catch (err) {
      if (!(err instanceof PhpSerializeError)) throw err;
      reading.prefsProblem = `${ref}: preferences do not parse exactly (${err.message}); mail2fa reads and writes nothing there`;
      reading.problems.push(reading.prefsProblem);
      if (row.prefs.includes(KEY_BYTES)) {
        // PHP may still read these (objects, references…) and the plugin ask for a code: assume it does (fail
        // closed), so that recover and disable try, refuse with 65 and say why, instead of finding "nothing".
        reading.present = true;
        reading.activated = true;
      }
      return reading;
    }
    const el = findStringKey(reading.top, PLUGIN_KEY);
    if (!el) return reading;
    reading.present = true;
    const value = readPluginValue(row.prefs.subarray(el.valueStart, el.end), this.crypto());
    reading.value = value;
    if (value.form === 'other') {
      reading.problems.push(`${ref}: ${value.problem}`);
      return reading;
    }
    reading.data = value.data;
    if (value.form === 'encrypted' && !this.o.pref_encrypt) {
      // The plugin only decrypts while twofactor_pref_encrypt is on; otherwise it reads the string as "no 2FA".
      const on = value.data ? value.data.activate : true;
      if (on) {
        reading.activated = true;
        reading.notEnforced.push(
          'the value is encrypted but the store says twofactor_pref_encrypt is off: the plugin reads no 2FA (set pref_encrypt: true if the site has it on)',
        );
      }
      if (value.problem) reading.problems.push(`${ref}: ${value.problem}`);
      this.secretOf(reading);
      return reading;
    }
    if (!value.data) {
      reading.problems.push(`${ref}: ${value.problem}`);
      if (value.form === 'encrypted') {
        reading.activated = true;
        reading.notEnforced.push(`${value.problem}: the plugin logs "Broken 2FA" and lets the user in`);
      }
      return reading;
    }
    if (!value.data.activate) return reading;
    const secret = this.secretOf(reading);
    if (!secret) {
      reading.notEnforced.push('activate is on but the secret is unusable');
      reading.activated = true;
      return reading;
    }
    reading.activated = true;
    this.bypasses(reading);
    return reading;
  }

  /** Checks the secret of `r.data`; sets key/weak, or records the problem. */
  private secretOf(reading: RowReading): Buffer | null {
    if (!reading.data || reading.data.secret === null) {
      if (reading.data?.activate) reading.problems.push(`${reading.ref}: activate is on but there is no secret`);
      return null;
    }
    const check = checkPluginSecret(reading.data.secret);
    if ('problem' in check) {
      reading.problems.push(`${reading.ref}: ${check.problem}`);
      return null;
    }
    reading.key = check.key;
    reading.weak = check.weak;
    return check.key;
  }

  private bypasses(reading: RowReading): void {
    if (this.userRegexes && !this.userRegexes.some((re) => re.test(reading.row.username))) {
      reading.notEnforced.push(
        `username ${reading.row.username} matches no users_allowed_2FA pattern: the plugin skips 2FA for it`,
      );
    }
    if (this.o.whitelist.length > 0) {
      reading.notEnforced.push(
        `whitelist is non-empty (${plural(this.o.whitelist.length, 'range')}): the plugin trusts the client-supplied Client-IP / X-Forwarded-For headers, so anyone can claim a whitelisted address`,
      );
    }
  }

  private status(readings: RowReading[]): StoreAccountStatus {
    const factors: StoreFactor[] = [];
    const problems: string[] = [];
    const notEnforced: string[] = [];
    let enforced = false;
    const many = readings.length > 1;
    for (const reading of readings) {
      problems.push(...reading.problems);
      if (reading.present) {
        factors.push({
          kind: 'totp',
          active: reading.activated,
          label: reading.row.mailHost,
          ref: reading.ref,
          ...(reading.weak ? { weak: true } : {}),
        });
      }
      if (reading.activated && reading.notEnforced.length === 0) enforced = true;
      if (reading.activated)
        notEnforced.push(
          ...reading.notEnforced.map((n) => (many ? `${reading.ref} (${reading.row.mailHost}): ${n}` : n)),
        );
    }
    const activated = readings.some((r) => r.activated);
    return {
      store: this.name,
      kind: 'roundcube',
      activated,
      enforced,
      ...(activated && !enforced && notEnforced.length ? { notEnforced } : {}),
      factors,
      ...(problems.length ? { problems } : {}),
      details: {
        rows: readings.map((reading) => ({
          userId: reading.row.userId,
          username: reading.row.username,
          mailHost: reading.row.mailHost,
          plugin: !reading.present
            ? 'none'
            : reading.prefsProblem
              ? 'unreadable (assumed on)'
              : reading.activated
                ? reading.notEnforced.length
                  ? 'activated, not enforced'
                  : 'enforced'
                : reading.value?.form === 'other' || (reading.data === null && reading.present)
                  ? 'unreadable'
                  : 'off',
          ...(reading.present && reading.value && reading.value.form !== 'other'
            ? { encrypted: reading.value.form === 'encrypted' }
            : {}),
          ...(reading.data ? { recoveryCodes: reading.data.recoveryCodes.filter((c) => c !== '').length } : {}),
        })),
      },
    };
  }

  async account(email: string): Promise<StoreAccountStatus | null> {
    const rows = await this.rowsOf(email);
    if (rows.length === 0) return null;
    return this.status(rows.map((r) => this.read(r)));
  }

  /** One query per batch; only rows that hold the plugin's key are read in full (bulk status, constant memory). */
  async statusBatch(emails: readonly string[]): Promise<Map<string, StoreAccountStatus>> {
    const out = new Map<string, StoreAccountStatus>();
    if (emails.length === 0) return out;
    const db = await this.database();
    const byUsername = new Map<string, string[]>();
    for (const email of emails) {
      for (const u of this.candidates(email)) byUsername.set(u, [...(byUsername.get(u) ?? []), email]);
    }
    const rows = await storeRead(db, () => this.rowsByUsername(db.knex, db, [...byUsername.keys()], true));
    const perEmail = new Map<string, RoundcubeRow[]>();
    for (const row of rows) {
      if (row.prefs === null) continue; // no plugin key: nothing to report
      for (const email of byUsername.get(row.username) ?? []) {
        if (this.belongs(row, email)) perEmail.set(email, [...(perEmail.get(email) ?? []), row]);
      }
    }
    for (const [email, list] of perEmail)
      out.set(email, this.status(list.sort((a, b) => a.userId - b.userId).map((r) => this.read(r))));
    return out;
  }

  // -------------------------------------------------------------------------------------------- writing

  /**
   * In one transaction (a savepoint of mail2fa's when the store shares its database): reads the rows of `email`,
   * lets `plan` compute each row's new preferences (absent = leave the row alone), and writes them, each
   * compare-and-set on the exact bytes read. Roundcube saving meanwhile rolls the attempt back and it starts over
   * (src/stores/support.ts: a few times, then 75). Every written value is read back and must be byte-identical.
   */
  private async edit(
    email: string,
    ctx: StoreWriteContext,
    plan: (readings: RowReading[]) => Map<number, Buffer>,
  ): Promise<{ written: RowReading[] }> {
    const db = await this.database();
    return storeTransaction(db, this.name, ctx.sharedTransaction, async (trx) => {
      const readings = (await this.rowsOf(email, trx)).map((r) => this.read(r));
      const changes = plan(readings);
      for (const reading of readings) {
        const next = changes.get(reading.row.userId);
        if (next) await this.casWrite(trx, db, reading.row, next);
      }
      return { written: readings.filter((r) => changes.has(r.row.userId)) };
    });
  }

  private async casWrite(trx: Knex.Transaction, db: Database, row: RoundcubeRow, next: Buffer): Promise<void> {
    const prefs = this.prefsSql(db);
    const where = row.prefs === null ? 'preferences IS NULL' : `${prefs} = ?`;
    const changed = await trx(this.users)
      .update({ preferences: trx.raw(this.prefsValueSql(db), [next]) })
      .where('user_id', row.userId)
      .whereRaw(where, row.prefs === null ? [] : [row.prefs]);
    if (Number(changed) !== 1) throw new StoreConflict(`${this.users}.user_id=${row.userId}`);
    const back = (await trx(this.users)
      .select(trx.raw(`${prefs} AS prefs`))
      .where('user_id', row.userId)
      .first()) as { prefs: Buffer | string | null } | undefined;
    const bytes =
      back?.prefs === null || back?.prefs === undefined
        ? null
        : Buffer.isBuffer(back.prefs)
          ? back.prefs
          : Buffer.from(back.prefs, 'utf8');
    if (!bytes || !bytes.equals(next)) {
      throw new Mail2faError(
        'write_mismatch',
        `store ${this.name}: the preferences written to ${this.users}.user_id=${row.userId} did not read back byte for byte (column charset?); rolled back`,
        78,
        'Check that users.preferences is a utf8mb4 (MySQL) or TEXT (SQLite) column; see docs/roundcube-store.md.',
      );
    }
  }

  /** Refuses (65, nothing written) when a row of the account has preferences that do not parse but may hold the plugin's key. */
  private refuseUnparsable(readings: RowReading[]): void {
    const bad = readings.filter((r) => r.prefsProblem && r.row.prefs && r.row.prefs.includes(KEY_BYTES));
    if (bad.length) {
      throw dataError(
        'unparsable_preferences',
        `store ${this.name}: ${bad[0]!.prefsProblem}`,
        'Nothing was written. Fix the row in Roundcube (e.g. bin/moduserprefs.sh) or ask the user to save their settings once.',
      );
    }
  }

  private async removeKey(email: string, ctx: StoreWriteContext): Promise<StoreChange> {
    const { written } = await this.edit(email, ctx, (readings) => {
      this.refuseUnparsable(readings);
      const changes = new Map<number, Buffer>();
      for (const reading of readings) {
        if (!reading.present || !reading.row.prefs) continue;
        changes.set(reading.row.userId, removeStringKey(reading.row.prefs, PLUGIN_KEY)!);
      }
      return changes;
    });
    if (written.length === 0)
      return {
        store: this.name,
        kind: 'roundcube',
        outcome: 'nothing',
        detail: 'no twofactor_gauthenticator settings in Roundcube',
      };
    const signedOut = this.o.session_signout
      ? await this.signOut(
          written.map((r) => r.row.userId),
          ctx.sharedTransaction,
        )
      : null;
    return {
      store: this.name,
      kind: 'roundcube',
      outcome: 'changed',
      detail:
        `removed twofactor_gauthenticator from ${plural(written.length, 'Roundcube row')} (every other preference unchanged); ` +
        'remembered devices are ended (they are bound to the secret)' +
        (signedOut === null ? '' : `; ${signedOut}`),
      refs: written.map((r) => r.ref),
    };
  }

  reset(email: string, ctx: StoreWriteContext): Promise<StoreChange> {
    return this.removeKey(email, ctx);
  }

  disable(email: string, ctx: StoreWriteContext): Promise<StoreChange> {
    return this.removeKey(email, ctx);
  }

  async enrol(
    email: string,
    input: { key: Buffer; recoveryCodes?: string[] },
    ctx: StoreWriteContext,
  ): Promise<StoreChange> {
    if (!this.o.pref_encrypt && !this.config.allowPlaintextWrites) {
      throw configError(
        'plaintext_store',
        `store ${this.name} keeps the plugin's secret in PLAINTEXT (twofactor_pref_encrypt is off); mail2fa does not write secrets there unless allowed`,
        "Turn on the plugin's twofactor_pref_encrypt (and set pref_encrypt: true, des_key), or set allowPlaintextWrites: true on the store.",
      );
    }
    if (input.key.length < 16 || input.key.length > 64) throw new RangeError('enrol: key must be 16-64 bytes');
    const codes = input.recoveryCodes ?? [];
    for (const c of codes)
      if (!/^[\x21-\x7e]{1,64}$/.test(c)) throw new RangeError('enrol: recovery codes must be printable ASCII');
    const data: PluginData = {
      secret: base32(input.key),
      activate: true,
      recoveryCodes: codes,
      order: ['secret', 'activate', 'recovery_codes'],
    };
    const crypto = this.o.pref_encrypt ? this.crypto() : null;
    if (this.o.pref_encrypt && !crypto) throw configError('des_key', `store ${this.name}: pref_encrypt needs des_key`);
    let rowsSeen = 0;
    const { written } = await this.edit(email, ctx, (readings) => {
      rowsSeen = readings.length;
      this.refuseUnparsable(readings);
      const unreadable = readings.find((r) => r.prefsProblem);
      if (unreadable)
        throw dataError(
          'unparsable_preferences',
          `store ${this.name}: ${unreadable.prefsProblem}`,
          'Nothing was written.',
        );
      const on = readings.find((r) => r.activated);
      if (on) {
        throw new Mail2faError(
          'already_enabled',
          `${email} already has 2FA in Roundcube (${on.ref}, store ${this.name})`,
          65,
          'Turn it off first (mail2fa disable, or recover for a lost phone).',
        );
      }
      const value = pluginValueBytes(data, crypto ? { crypto, random: this.deps.randomBytes } : null);
      return new Map(readings.map((r) => [r.row.userId, setStringKey(r.row.prefs, PLUGIN_KEY, value)]));
    });
    if (rowsSeen === 0) {
      const error = unknownAccount(email);
      throw new Mail2faError(
        error.code,
        `${email} has no Roundcube user row (store ${this.name})`,
        error.exitCode,
        'The user must sign in to the webmail once, so Roundcube creates its row.',
      );
    }
    return {
      store: this.name,
      kind: 'roundcube',
      outcome: 'changed',
      detail: `wrote twofactor_gauthenticator (${crypto ? `encrypted, ${this.o.cipher_method.toUpperCase()}` : 'PLAINTEXT'}, ${plural(codes.length, 'recovery code')}) to ${plural(written.length, 'Roundcube row')}`,
      refs: written.map((r) => r.ref),
    };
  }

  async totpSecrets(email: string): Promise<StoreTotpSecret[]> {
    const out: StoreTotpSecret[] = [];
    for (const reading of (await this.rowsOf(email)).map((row) => this.read(row))) {
      if (!reading.activated || !reading.key) continue;
      if (reading.value?.form === 'encrypted' && !this.o.pref_encrypt) continue; // the plugin does not read it
      if (out.some((s) => s.key.equals(reading.key!))) continue;
      out.push({ key: reading.key, ref: reading.ref, storeWindow: 2 });
    }
    return out;
  }

  /**
   * Consumes one of the plugin's recovery codes (exact match; the plugin removes every equal entry), in every row
   * holding it, compare-and-set. Plaintext values are rewritten only when re-serializing them reproduces the stored
   * bytes exactly; encrypted ones are re-encrypted as the plugin does.
   */
  async consumeRecoveryCode(email: string, code: string, ctx: StoreWriteContext): Promise<boolean> {
    if (code === '') return false;
    const { written } = await this.edit(email, ctx, (readings) => {
      const changes = new Map<number, Buffer>();
      for (const reading of readings) {
        if (
          !reading.activated ||
          !reading.data ||
          !reading.row.prefs ||
          !reading.top ||
          !reading.data.recoveryCodes.includes(code)
        )
          continue;
        if (reading.value?.form === 'encrypted' && !this.o.pref_encrypt) continue;
        const el = findStringKey(reading.top, PLUGIN_KEY)!;
        const next: PluginData = {
          ...reading.data,
          recoveryCodes: reading.data.recoveryCodes.filter((c) => c !== code),
        };
        let value: Buffer;
        if (reading.value?.form === 'encrypted') {
          value = pluginValueBytes(next, { crypto: this.crypto()!, random: this.deps.randomBytes });
        } else {
          if (!pluginSerialized(reading.data).equals(reading.row.prefs.subarray(el.valueStart, el.end))) {
            throw dataError(
              'unexpected_plugin_value',
              `store ${this.name}: ${reading.ref}: the plugin's value is not in the form the plugin writes; not rewritten`,
            );
          }
          value = pluginSerialized(next);
        }
        changes.set(reading.row.userId, setStringKey(reading.row.prefs, PLUGIN_KEY, value));
      }
      return changes;
    });
    return written.length > 0;
  }

  // -------------------------------------------------------------------------------------------- migrate

  /** Every row whose preferences may hold the plugin's key, in user_id order (keyset pages). Read-only. */
  private async *scan(batchSize: number): AsyncIterable<RoundcubeRow[]> {
    const db = await this.database();
    const prefs = this.prefsSql(db);
    let after = 0;
    for (;;) {
      let query = db
        .knex(this.users)
        .select('user_id', 'username', 'mail_host', db.knex.raw(`${prefs} AS prefs`))
        .where('user_id', '>', after)
        .whereRaw('preferences LIKE ?', [KEY_PATTERN]);
      if (this.o.mail_hosts) query = query.whereIn('mail_host', this.o.mail_hosts);
      const rows = (
        (await storeRead(db, () => query.orderBy('user_id').limit(batchSize))) as Array<
          Parameters<RoundcubeStore['toRow']>[0]
        >
      ).map((r) => this.toRow(r));
      if (rows.length === 0) return;
      yield rows;
      after = rows[rows.length - 1]!.userId;
      if (rows.length < batchSize) return;
    }
  }

  /**
   * `migrate-from roundcube`: the secret of every row where the plugin asks for a code, per address. Rows whose
   * address cannot be told (bare login without mail_domain) or whose value is unusable come with `problem`.
   */
  async *exportSecrets(batchSize: number): AsyncIterable<ExportedSecret[]> {
    this.exported.clear(); // a new export (e.g. after a dry-run preview) starts from what is stored now
    for await (const rows of this.scan(batchSize)) {
      const batch: ExportedSecret[] = [];
      for (const row of rows) {
        const reading = this.read(row);
        const email = this.rowAddress(row);
        if (!reading.present) continue;
        const base = { email: email ?? row.username, ref: reading.ref, weak: Boolean(reading.weak) };
        if (!email) {
          batch.push({
            ...base,
            key: Buffer.alloc(0),
            problem: `${reading.ref}: username "${row.username}" has no domain and no mail_domain is configured for ${row.mailHost}`,
          });
          continue;
        }
        if (reading.prefsProblem) {
          batch.push({ ...base, key: Buffer.alloc(0), problem: reading.prefsProblem });
          continue;
        }
        if (!reading.activated) continue;
        if (!reading.key || (reading.value?.form === 'encrypted' && !this.o.pref_encrypt)) {
          batch.push({
            ...base,
            key: Buffer.alloc(0),
            problem: [...reading.problems, ...reading.notEnforced][0] ?? `${reading.ref}: unusable`,
          });
          continue;
        }
        const digest = createHash('sha256').update(reading.key).digest();
        const seen = this.exported.get(email);
        if (seen && !seen.equals(digest)) {
          batch.push({
            ...base,
            key: Buffer.alloc(0),
            problem: `${reading.ref}: another Roundcube row of ${email} holds a different secret`,
          });
          continue;
        }
        this.exported.set(email, digest);
        batch.push({ ...base, key: reading.key });
      }
      if (batch.length) yield batch;
    }
  }

  /**
   * After a successful migration: removes the plugin's key from every row of these addresses — only where the
   * secret is still the one exported (else 75, nothing written). All rows in one transaction.
   */
  async clearMigrated(emails: readonly string[], ctx: StoreWriteContext): Promise<StoreChange> {
    const db = await this.database();
    const refs = await storeTransaction(db, this.name, ctx.sharedTransaction, async (trx) => {
      const done: string[] = [];
      for (let index = 0; index < emails.length; index += 500) {
        const byUsername = new Map<string, string[]>();
        for (const e of emails.slice(index, index + 500))
          for (const u of this.candidates(e)) byUsername.set(u, [...(byUsername.get(u) ?? []), e]);
        const rows = await this.rowsByUsername(trx, db, [...byUsername.keys()], false);
        for (const row of rows.sort((a, b) => a.userId - b.userId)) {
          const email = (byUsername.get(row.username) ?? []).find((e) => this.belongs(row, e));
          if (!email) continue;
          const reading = this.read(row);
          if (!reading.present) continue;
          const digest = this.exported.get(email);
          if (
            reading.prefsProblem ||
            !reading.key ||
            !digest ||
            !timingSafeEqual(createHash('sha256').update(reading.key).digest(), digest)
          ) {
            if (reading.activated || reading.prefsProblem)
              throw tempFail(
                'changed',
                `store ${this.name}: ${reading.ref} changed since it was exported; nothing was cleared`,
                'Run the migration again.',
              );
            continue;
          }
          await this.casWrite(trx, db, row, removeStringKey(row.prefs!, PLUGIN_KEY)!);
          done.push(reading.ref);
        }
      }
      return done;
    });
    return refs.length
      ? {
          store: this.name,
          kind: 'roundcube',
          outcome: 'changed',
          detail: `removed twofactor_gauthenticator from ${plural(refs.length, 'Roundcube row')}`,
          refs,
        }
      : {
          store: this.name,
          kind: 'roundcube',
          outcome: 'nothing',
          detail: 'no twofactor_gauthenticator settings to remove',
        };
  }

  // -------------------------------------------------------------------------------------------- sessions

  /**
   * Deletes the Roundcube sessions (table `session`, session_storage = db) of these users: rows whose base64
   * `vars` hold `user_id|i:<id>;` as a top-level session variable. Returns a human summary.
   */
  private async signOut(userIds: number[], shared?: Knex.Transaction): Promise<string> {
    const db = await this.database();
    const knex = shared ?? db.knex;
    const wanted = new Set(userIds);
    const doomed: string[] = [];
    let after = '';
    try {
      for (;;) {
        const rows = (await knex(this.sessions)
          .select('sess_id', 'vars')
          .where('sess_id', '>', after)
          .orderBy('sess_id')
          .limit(500)) as Array<{ sess_id: string; vars: string | Buffer }>;
        if (rows.length === 0) break;
        for (const reading of rows) {
          const id = sessionUserId(Buffer.from(String(reading.vars), 'base64'));
          if (id !== null && wanted.has(id)) doomed.push(reading.sess_id);
        }
        after = rows[rows.length - 1]!.sess_id;
        if (rows.length < 500) break;
      }
      for (let index = 0; index < doomed.length; index += 500)
        await knex(this.sessions)
          .whereIn('sess_id', doomed.slice(index, index + 500))
          .delete();
    } catch (err) {
      const error = mapDbError(driverError(err), db.displayUrl); // driverError: no SQL, whose bound values are session ids
      return `Roundcube sessions NOT signed out (${error.message})`;
    }
    return `signed out ${plural(doomed.length, 'Roundcube session')}`;
  }

  // -------------------------------------------------------------------------------------------- doctor

  async doctor(): Promise<StoreCheck[]> {
    const label = `store ${this.name}`;
    const opened = await doctorOpen(label, this.database);
    if (!('db' in opened)) return opened.checks;
    const { db } = opened;
    const checks: StoreCheck[] = [];
    try {
      const info = (await db.knex(this.users).columnInfo()) as Record<string, { type?: string }>;
      const missing = ['user_id', 'username', 'mail_host', 'preferences'].filter((c) => !(c in info));
      if (Object.keys(info).length === 0 || missing.length) {
        return [
          {
            name: label,
            status: 'fail',
            detail:
              Object.keys(info).length === 0
                ? `table ${this.users} not found in ${db.displayUrl}`
                : `table ${this.users} lacks column(s) ${missing.join(', ')}`,
            hint: "Point the store's db.url at Roundcube's database; Roundcube's db_prefix is the store's tablePrefix.",
            exitCode: 78,
          },
        ];
      }
      checks.push({ name: label, status: 'ok', detail: `roundcube: ${this.users} in ${db.displayUrl}` });
    } catch (err) {
      const error = mapDbError(err, db.displayUrl) as Mail2faError;
      return [{ name: label, status: 'fail', detail: error.message, exitCode: error.exitCode === 69 ? 69 : 78 }];
    }
    try {
      this.crypto();
    } catch (err) {
      checks.push({
        name: `store ${this.name}: des_key`,
        status: 'fail',
        detail: (err as Error).message,
        exitCode: 78,
      });
    }
    let rows = 0;
    let plaintext = 0;
    let encrypted = 0;
    let broken = 0;
    let unparsable = 0;
    try {
      for await (const batch of this.scan(1000)) {
        for (const row of batch) {
          const reading = this.read(row);
          if (!reading.present && !reading.prefsProblem) continue;
          rows++;
          if (reading.prefsProblem) unparsable++;
          else if (reading.value?.form === 'array' && reading.data?.secret) plaintext++;
          else if (reading.value?.form === 'encrypted') {
            encrypted++;
            if (!reading.data) broken++;
          }
        }
      }
    } catch (err) {
      checks.push({ name: `store ${this.name}: rows`, status: 'fail', detail: (err as Error).message, exitCode: 78 });
      return checks;
    }
    checks.push({
      name: `store ${this.name}: rows`,
      status: 'ok',
      detail: `${plural(rows, 'Roundcube row')} with twofactor_gauthenticator settings (${encrypted} encrypted, ${plaintext} plaintext)`,
    });
    if (plaintext > 0) {
      checks.push({
        name: `store ${this.name}: plaintext`,
        status: 'warn',
        detail: `${plural(plaintext, 'Roundcube row')} keep the TOTP secret in PLAINTEXT in ${this.users}.preferences`,
        hint: "`mail2fa migrate-from roundcube --dry-run` shows how to move them into mail2fa's encrypted storage; or turn on the plugin's twofactor_pref_encrypt (it encrypts at the user's next save).",
      });
    }
    if (this.plaintextSecrets && this.config.allowPlaintextWrites) {
      checks.push({
        name: `store ${this.name}: plaintext writes`,
        status: 'warn',
        detail: "allowPlaintextWrites is on: `enable --store` writes secrets into Roundcube's preferences in plaintext",
      });
    }
    if (broken > 0) {
      checks.push({
        name: `store ${this.name}: encrypted values`,
        status: 'warn',
        detail: `${plural(broken, 'encrypted value')} do not decrypt with the configured des_key/cipher_method${this.o.pref_encrypt ? ': the plugin lets those users in without a code' : ''}`,
        hint: "Check des_key and cipher_method against Roundcube's config.inc.php.",
      });
    }
    if (encrypted > 0 && !this.o.pref_encrypt) {
      checks.push({
        name: `store ${this.name}: pref_encrypt`,
        status: 'warn',
        detail: `${plural(encrypted, 'row')} hold encrypted values but pref_encrypt is off: the plugin reads them as no 2FA`,
        hint: 'Set pref_encrypt: true if the site has twofactor_pref_encrypt on.',
      });
    }
    if (unparsable > 0) {
      checks.push({
        name: `store ${this.name}: preferences`,
        status: 'warn',
        detail: `${plural(unparsable, 'row')} have preferences mail2fa cannot parse exactly; it will not write them`,
      });
    }
    if (this.o.whitelist.length > 0) {
      checks.push({
        name: `store ${this.name}: whitelist`,
        status: 'warn',
        detail: `whitelist has ${plural(this.o.whitelist.length, 'range')}: the plugin reads the client IP from client-supplied headers (Client-IP, X-Forwarded-For) first, so anyone can skip 2FA`,
        hint: "Empty the plugin's whitelist; status shows these accounts as activated but not enforced.",
      });
    }
    checks.push(
      ...(await this.writableChecks(db).catch((err: Error) => [
        { name: `store ${this.name}: write access`, status: 'warn' as const, detail: err.message },
      ])),
    );
    if (this.o.users_allowed_2FA) {
      checks.push({
        name: `store ${this.name}: users_allowed_2FA`,
        status: 'warn',
        detail: `users_allowed_2FA is set (${plural(this.o.users_allowed_2FA.length, 'pattern')}): users outside it skip 2FA even when activated`,
      });
    }
    return checks;
  }

  /**
   * Can mail2fa write `preferences` (recover, disable, enable)? support.ts's probe (an UPDATE matching no row, rolled
   * back); on MySQL the column must also be utf8mb4/utf8, what Roundcube's connection speaks.
   */
  private async writableChecks(db: Database): Promise<StoreCheck[]> {
    const checks = [
      await doctorWriteAccess(
        this.name,
        db,
        `${this.users}.preferences`,
        'recover, disable, enable and consuming recovery codes',
        (trx) =>
          trx(this.users)
            .update({ preferences: trx.ref('preferences') })
            .whereRaw('1 = 0'),
      ),
    ];
    if (db.dialect === 'mysql') {
      const rows = (await db.knex.raw(
        'SELECT CHARACTER_SET_NAME AS cs FROM information_schema.COLUMNS WHERE TABLE_SCHEMA = DATABASE() AND TABLE_NAME = ? AND COLUMN_NAME = ?',
        [this.users, 'preferences'],
      )) as [Array<{ cs: string | null }>];
      const cs = rows[0]?.[0]?.cs ?? null;
      if (cs && !/^utf8(mb3|mb4)?$/.test(cs)) {
        checks.push({
          name: `store ${this.name}: charset`,
          status: 'warn',
          detail: `${this.users}.preferences is ${cs}, not utf8mb4: mail2fa refuses writes whose bytes would not read back exactly`,
          hint: 'Roundcube expects utf8mb4 (its mysql.initial.sql).',
        });
      }
    }
    return checks;
  }

  async close(): Promise<void> {
    // The databases are the core's (StoreDeps.openDatabase / mailDatabase): it closes them.
  }
}

/**
 * The `user_id` of a PHP session string (`name|<serialized value>` pairs, Roundcube's session format), or null.
 * Only a top-level `user_id|i:<n>;` counts: the pairs are walked with the strict value reader, never searched.
 */
export function sessionUserId(vars: Buffer): number | null {
  if (!vars.includes('user_id|i:')) return null;
  let pos = 0;
  try {
    while (pos < vars.length) {
      const bar = vars.indexOf(0x7c, pos);
      if (bar < 0) return null;
      const end = valueEnd(vars, bar + 1);
      if (vars.toString('latin1', pos, bar) === 'user_id') {
        const match = /^i:(\d+);$/.exec(vars.toString('latin1', bar + 1, end));
        return match ? Number(match[1]) : null;
      }
      pos = end;
    }
  } catch {
    return null; // a session this reader cannot walk (objects…): not signed out, never guessed
  }
  return null;
}
