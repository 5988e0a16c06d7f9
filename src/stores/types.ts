/**
 * The store seam: where a site's 2FA lives. mail2fa's own encrypted store is one store; a
 * webmail's or admin panel's own store (PostfixAdmin's column, the Roundcube plugin's preferences, mailcow's
 * `tfa`, SOGo's profile) is another. Commands act on every configured store that holds 2FA for an account.
 *
 * A foreign store module:
 *   - lives in `src/stores/<kind>.ts` (or a folder), holds ALL of its SQL and parsing;
 *   - exports a `StoreDefinition` (options schema + `open`), registered with one line in `src/stores/registry.ts`;
 *   - declares what it can do (`capabilities`); the core refuses a missing capability with the store named;
 *   - never changes anything in a read (`account`, `statusBatch`); every write is compare-and-set against what was
 *     read, retried a few times, then a `tempFail` (75); a value that does not parse exactly is refused
 *     (`dataError` 65 / `configError` 78), never repaired;
 *   - keeps no replay state or attempt counter of its own: mail2fa keeps those in its own tables (the core calls
 *     `totpSecrets` and runs mail2fa's verifier with replay protection and lockout).
 *
 * Auditing is the core's job: store methods return what they did (`StoreChange`) and the core writes one audit
 * row naming each store and its outcome.
 */
import type { Knex } from 'knex';
import type { ZodType } from 'zod';
import type { Database } from '../db/connection.js';

export type StoreKind = 'mail2fa' | 'postfixadmin' | 'roundcube' | 'mailcow' | 'sogo';

export type StoreCapability =
  /** `account` and `statusBatch`. Every store has it. */
  | 'status'
  /** `reset`: remove every factor of the account in this store (customer service, lost phone). */
  | 'recover'
  /** `totpSecrets` (+ `consumeRecoveryCode` when the store has its own recovery codes): codes can be checked. */
  | 'verify'
  /** `disable`: the owner turns 2FA off (the core has checked password + code). */
  | 'disable'
  /** `enrol`: write a new TOTP factor into this store. */
  | 'enable'
  /** `exportSecrets`: `migrate-from <kind>` can move its secrets into mail2fa's encrypted store. */
  | 'migrate-out'
  /** `temporaryBypass`: the store's own one-login bypass (mailcow). */
  | 'temporary-bypass';

/** One authenticator as a store holds it. Never contains a secret. */
export interface StoreFactor {
  kind: 'totp' | 'sms' | 'webauthn' | 'u2f' | 'yubi_otp' | 'hotp' | 'unknown';
  /** Whether this factor is switched on in the store. */
  active: boolean;
  /** A non-secret label: the Roundcube row's `mail_host`, mailcow's `key_id`, SOGo's key generation… */
  label?: string;
  /** Secret shorter than 128 bits (foreign stores often use 80). */
  weak?: boolean;
  /** A stable, non-secret reference to the row/element (e.g. "users.user_id=12", "tfa.id=7"), for audit rows. */
  ref?: string;
}

/** What one store says about one account. No secrets. */
export interface StoreAccountStatus {
  /** The configured store's name. */
  store: string;
  kind: StoreKind;
  /** The account has at least one active factor in this store. */
  activated: boolean;
  /**
   * Sign-in really asks for a code: activated AND nothing in the store's own configuration bypasses it. When
   * activated but not enforced, `notEnforced` says why (e.g. "whitelist is non-empty: the plugin trusts
   * client-supplied IP headers", "SOGoTOTPEnabled is 1 but no key: SOGo lets the user in").
   */
  enforced: boolean;
  notEnforced?: string[];
  factors: StoreFactor[];
  /** Values found that do not parse exactly (the store is then neither repaired nor written). */
  problems?: string[];
  /** Non-secret, store-specific facts worth showing (mailcow `force_tfa`, Roundcube rows, …). JSON-safe. */
  details?: Record<string, unknown>;
}

/** The result of a store write, for the audit row and the agent's report. */
export interface StoreChange {
  store: string;
  kind: StoreKind;
  /** 'changed': rows written; 'nothing': nothing to do (idempotent re-run); 'failed': see `error`. */
  outcome: 'changed' | 'nothing' | 'failed';
  /** Human, non-secret: "removed twofactor_gauthenticator from 2 Roundcube rows", "deleted 3 tfa rows". */
  detail: string;
  /** Non-secret references of what was changed. */
  refs?: string[];
  error?: { code: string; message: string; exitCode: number };
}

/** A TOTP secret a store holds for the account, so mail2fa can verify codes (replay/lockout in mail2fa's tables). */
export interface StoreTotpSecret {
  /** The HMAC key bytes (base32-decoded; for SOGo the ASCII bytes of the key string). */
  key: Buffer;
  /** Which factor it is (non-secret), e.g. "tfa.id=7". */
  ref: string;
  /** The store's own acceptance window in steps (Roundcube plugin ±2, mailcow ±1, SOGo 0); mail2fa uses ±1 at most. */
  storeWindow?: number;
}

export interface EnrolInput {
  /** 20 random bytes from mail2fa (never shorter). */
  key: Buffer;
  /** Plaintext recovery codes to store in the store's own format, when the store keeps its own (Roundcube plugin). */
  recoveryCodes?: string[];
  /** A non-secret label (mailcow `key_id`). */
  label?: string;
}

export interface ExportedSecret {
  email: string;
  key: Buffer;
  ref: string;
  weak: boolean;
  /**
   * Set when the store holds a factor for this row that cannot be migrated (unusable secret, value that does not
   * parse or decrypt, address that cannot be told); `key` is then empty. `migrate-from` refuses or skips these.
   */
  problem?: string;
}

export interface ForeignStore {
  readonly name: string;
  readonly kind: StoreKind;
  readonly capabilities: ReadonlySet<StoreCapability>;
  /** The store keeps secrets in plaintext (or only reversibly with a key the site holds); writing needs an opt-in. */
  readonly plaintextSecrets: boolean;

  /** One account (already canonical). `null` = the store has no row at all for it. Read-only. */
  account(email: string): Promise<StoreAccountStatus | null>;
  /**
   * Many accounts at once, in one (or a few) queries — never one query per account. Missing accounts are absent
   * from the map. Used by bulk `status` per batch of mailbox rows (500 addresses, or `statusBatchSize`). Read-only.
   */
  statusBatch(emails: readonly string[]): Promise<Map<string, StoreAccountStatus>>;
  /**
   * Addresses per statusBatch call the store would rather get in bulk status (default: one batch of mailbox rows,
   * 500). A store whose every read scans a table (mailcow's `tfa` has no index on username) asks for more: bulk
   * status then gathers mailbox batches up to this many before asking it.
   */
  readonly statusBatchSize?: number;

  /** `recover`: remove every factor of the account in this store, idempotently (a re-run finds 'nothing'). */
  reset?(email: string, ctx: StoreWriteContext): Promise<StoreChange>;
  /** `disable` (password and code already checked by the core). */
  disable?(email: string, ctx: StoreWriteContext): Promise<StoreChange>;
  /** `enable --store <name>`: write a new TOTP factor. Refuses when the account already has one. */
  enrol?(email: string, input: EnrolInput, ctx: StoreWriteContext): Promise<StoreChange>;
  /** The account's TOTP secrets that sign-in accepts (active ones only). */
  totpSecrets?(email: string): Promise<StoreTotpSecret[]>;
  /** Consume one of the store's own recovery codes (single use, compare-and-set); true when it existed. */
  consumeRecoveryCode?(email: string, code: string, ctx: StoreWriteContext): Promise<boolean>;
  /** The store's own one-login bypass (mailcow: set active = 0; re-armed by mailcow after one sign-in). */
  temporaryBypass?(email: string, ctx: StoreWriteContext): Promise<StoreChange>;
  /** `migrate-from`: every usable secret, in batches. Read-only. */
  exportSecrets?(batchSize: number): AsyncIterable<ExportedSecret[]>;
  /** After a successful migration: remove the plaintext copies of these accounts (compare-and-set). */
  clearMigrated?(emails: readonly string[], ctx: StoreWriteContext): Promise<StoreChange>;

  /** `doctor`: reachable, schema as expected, read-only user, plaintext store, bypass settings. Never throws. */
  doctor(): Promise<StoreCheck[]>;
  close(): Promise<void>;
}

export interface StoreWriteContext {
  now: number;
  /** For audit-worthy notes and messages: who acts. */
  actor: string;
  /**
   * Set when the store lives in mail2fa's own database (no `db.url` of its own, or the same URL) and the core calls
   * it inside mail2fa's account transaction: the store MUST run its statements on this transaction. Its change then
   * commits or rolls back with mail2fa's own and audit row — and on SQLite (one connection per database) any other
   * query would wait for the transaction forever. Stores in other databases get undefined and use their own.
   */
  sharedTransaction?: Knex.Transaction;
}

export interface StoreCheck {
  name: string;
  status: 'ok' | 'warn' | 'fail' | 'skip';
  detail: string;
  hint?: string;
  exitCode?: number;
}

/** What every configured store entry has; `options` are the store's own, validated by its `optionsSchema`. */
export interface StoreConfigBase {
  name: string;
  kind: StoreKind;
  /** The store's database (default: the mail database, `db.url`). */
  db?: { url: string; connectTimeoutMs?: number };
  tablePrefix?: string;
  /** The site explicitly allows mail2fa to write secrets into this plaintext store. */
  allowPlaintextWrites?: boolean;
}

export interface StoreDeps {
  /** Opens (or reuses) a database by URL; the core closes it. */
  openDatabase(url: string): Promise<Database>;
  /** Mail database (the mailbox table) — some stores (mailcow `force_tfa`) read beside it. */
  mailDatabase(): Promise<Database>;
  now: () => number;
  /** CSPRNG bytes (injectable like the clock). */
  randomBytes: (size: number) => Buffer;
}

export interface StoreDefinition<O = unknown> {
  kind: StoreKind;
  /** zod schema of the store's `options` (strict: unknown keys are config errors). */
  optionsSchema: ZodType<O>;
  open(config: StoreConfigBase & { options: O }, deps: StoreDeps): ForeignStore;
}
