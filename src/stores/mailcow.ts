/**
 * mailcow's `tfa` table as a store. Every authenticator of a user is one row (`totp`,
 * `webauthn`, `u2f`, `yubi_otp`, `hotp`; several per user); mailcow's sign-in — and so the SOGo webmail behind
 * it — asks for a second factor when the user has a row with `active = 1`.
 *
 *   - status: every row, whatever its kind (a WebAuthn key is 2FA even though mail2fa cannot check it), and
 *     mailbox.attributes' `force_tfa`. Rows that all have `active = 0` are mailcow's one-login bypass: the next
 *     password sign-in passes without a code and mailcow sets them back to 1 — activated, not enforced.
 *   - reset / disable: delete every row of the user in one transaction, by id, exactly the rows read.
 *   - temporaryBypass: mailcow's own "disable TFA for the next login" (`active = 0`), which mailcow re-arms.
 *   - enrol: a TOTP row with a plaintext base32 secret (needs `allowPlaintextWrites`).
 *   - totpSecrets / exportSecrets / clearMigrated: the active TOTP rows (mailcow checks them ±1 step).
 *
 * Exact matching: `tfa.username` has a case-insensitive, PAD SPACE collation, so `username = ?` also returns
 * 'User@Example.com' and 'user@example.com '. Reads filter the rows byte for byte; writes go by row id plus a
 * byte-exact comparison, and a write that does not hit exactly the rows read is retried.
 */
import type { Knex } from 'knex';
import * as z from 'zod';
import type { Database } from '../db/connection.js';
import { configError, dataError } from '../errors.js';
import { escapeControl } from '../text.js';
import { base32Encode, STRONG_SECRET_BYTES } from '../totp/totp.js';
import { parseStrictJson, member, JsonSyntaxError } from './strict-json.js';
import {
  chunked,
  decodeBase32Secret,
  doctorSchema,
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
  EnrolInput,
  ExportedSecret,
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

export const MailcowOptionsSchema = z.strictObject({
  /** mailcow's authenticator table. */
  table: sqlIdentifier.default('tfa'),
  /** mailcow's mailbox table (for `attributes.force_tfa`); null = do not read it. Same database as `table`. */
  mailboxTable: sqlIdentifier.nullable().default('mailbox'),
});
export type MailcowOptions = z.infer<typeof MailcowOptionsSchema>;

/** mailcow's `authmech` ENUM, mapped to the seam's factor kinds. */
const AUTHMECH: Record<string, StoreFactor['kind']> = {
  totp: 'totp',
  webauthn: 'webauthn',
  u2f: 'u2f',
  yubi_otp: 'yubi_otp',
  hotp: 'hotp',
};

/** mailcow's TOTP check accepts the current step ±1 (RobThree TwoFactorAuth's default discrepancy). */
const MAILCOW_TOTP_WINDOW = 1;
const BATCH = 500;
/**
 * Addresses per status read: mailcow creates `tfa` without an index on username, so every read scans the table:
 * the fewer reads, the fewer scans. Bulk status reads mailboxes 500 at a time and gathers four batches for this
 * store (`statusBatchSize`); with 500 per read, `tfa` was scanned four times as often.
 */
const STATUS_BATCH = 2000;

interface TfaRow {
  id: number;
  key_id: string | null;
  username: string;
  authmech: string | null;
  secret: string | null;
  active: unknown;
}

interface ParsedRow {
  id: number;
  ref: string;
  kind: StoreFactor['kind'];
  authmech: string;
  active: boolean | null;
  label?: string;
  /** Only for TOTP rows whose secret parses. */
  key?: Buffer;
  /** Problems that make the row unsafe to change (unknown authmech, odd `active`). */
  structural: string[];
  /** Problems that only make the row unusable for verification (TOTP secret). */
  secretProblem?: string;
}

function parseActive(value: unknown): boolean | null {
  if (value === 1 || value === '1' || value === true) return true;
  if (value === 0 || value === '0' || value === false) return false;
  return null;
}

function parseRow(row: TfaRow): ParsedRow {
  const ref = `tfa.id=${row.id}`;
  const authmech = row.authmech ?? '';
  const kind = AUTHMECH[authmech] ?? 'unknown';
  const structural: string[] = [];
  if (kind === 'unknown') structural.push(`${ref}: unknown authmech "${escapeControl(authmech.slice(0, 40))}"`);
  const active = parseActive(row.active);
  if (active === null) structural.push(`${ref}: active is neither 0 nor 1`);
  const parsed: ParsedRow = { id: Number(row.id), ref, kind, authmech, active, structural };
  if (row.key_id) parsed.label = escapeControl(row.key_id.slice(0, 255));
  if (kind === 'totp') {
    const decoded = decodeBase32Secret(row.secret ?? '');
    if ('key' in decoded) parsed.key = decoded.key;
    else parsed.secretProblem = `${ref}: TOTP secret unusable (${decoded.problem})`;
  }
  return parsed;
}

function toFactor(row: ParsedRow): StoreFactor {
  const factor: StoreFactor = { kind: row.kind, active: row.active === true, ref: row.ref };
  if (row.label !== undefined) factor.label = row.label;
  if (row.key && row.key.length < STRONG_SECRET_BYTES) factor.weak = true;
  return factor;
}

/** mailbox.attributes → force_tfa: true/false, or a problem (never guessed). */
function parseForceTfa(raw: unknown): { forceTfa: boolean } | { problem: string } | null {
  if (raw === null || raw === undefined) return null;
  const text = Buffer.isBuffer(raw) ? raw.toString('utf8') : String(raw);
  let root;
  try {
    root = parseStrictJson(text, 1); // force_tfa is a top-level member
  } catch (err) {
    return {
      problem: `mailbox.attributes is not valid JSON (${err instanceof JsonSyntaxError ? err.message : 'unreadable'})`,
    };
  }
  if (root.type !== 'object') return { problem: 'mailbox.attributes is not a JSON object' };
  const forceTfa = member(root, 'force_tfa');
  if (!forceTfa) return { forceTfa: false };
  if (forceTfa.type === 'number' && (forceTfa.raw === '0' || forceTfa.raw === '1'))
    return { forceTfa: forceTfa.raw === '1' };
  if (forceTfa.type === 'string' && (forceTfa.value === '0' || forceTfa.value === '1'))
    return { forceTfa: forceTfa.value === '1' };
  if (forceTfa.type === 'literal' && typeof forceTfa.value === 'boolean') return { forceTfa: forceTfa.value };
  return { problem: 'mailbox.attributes.force_tfa is neither 0 nor 1' };
}

class MailcowStore implements ForeignStore {
  readonly kind = 'mailcow' as const;
  readonly name: string;
  /** Bulk status gathers its batches of 500 mailboxes to this many: one scan of `tfa` per 2,000 addresses. */
  readonly statusBatchSize = STATUS_BATCH;
  readonly plaintextSecrets = true;
  readonly capabilities: ReadonlySet<StoreCapability> = new Set<StoreCapability>([
    'status',
    'recover',
    'verify',
    'disable',
    'enable',
    'migrate-out',
    'temporary-bypass',
  ]);
  private readonly table: string;
  private readonly mailboxTable: string | null;
  private readonly db: () => Promise<Database>;

  constructor(
    private readonly config: StoreConfigBase & { options: MailcowOptions },
    deps: StoreDeps,
  ) {
    this.name = config.name;
    this.table = prefixed(config, config.options.table);
    this.mailboxTable = config.options.mailboxTable === null ? null : prefixed(config, config.options.mailboxTable);
    this.db = lazyStoreDatabase(config, deps);
  }

  // -------------------------------------------------------------------------------------------------- reads

  /** The rows of exactly these usernames (the collation's matches are filtered out byte for byte). */
  private async rowsOf(knex: Knex | Knex.Transaction, emails: readonly string[], lock = false): Promise<TfaRow[]> {
    const wanted = new Set(emails);
    let query = knex(this.table)
      .select('id', 'key_id', 'username', 'authmech', 'secret', 'active')
      .whereIn('username', [...wanted])
      .orderBy('id');
    if (lock && (await this.db()).dialect !== 'sqlite') query = query.forUpdate();
    const rows = (await query) as TfaRow[];
    return rows.filter((r) => wanted.has(r.username));
  }

  private async forceTfaOf(
    db: Database,
    emails: readonly string[],
  ): Promise<Map<string, ReturnType<typeof parseForceTfa>>> {
    const out = new Map<string, ReturnType<typeof parseForceTfa>>();
    if (!this.mailboxTable) return out;
    const wanted = new Set(emails);
    // MariaDB reports JSON columns as such and mysql2 would parse them (losing duplicate keys): read the text.
    const attributes =
      db.dialect === 'mysql' ? db.knex.raw('CAST(?? AS CHAR) AS ??', ['attributes', 'attributes']) : 'attributes';
    const rows = (await db
      .knex(this.mailboxTable)
      .select('username', attributes)
      .whereIn('username', [...wanted])) as { username: string; attributes: unknown }[];
    for (const r of rows) if (wanted.has(r.username)) out.set(r.username, parseForceTfa(r.attributes));
    return out;
  }

  private statusOf(
    email: string,
    rows: TfaRow[],
    force: ReturnType<typeof parseForceTfa> | undefined,
  ): StoreAccountStatus | null {
    const forceTfa = force && 'forceTfa' in force ? force.forceTfa : undefined;
    if (rows.length === 0 && !forceTfa && !(force && 'problem' in force)) return null;
    const parsed = rows.map(parseRow);
    const problems = parsed.flatMap((r) => [...r.structural, ...(r.secretProblem ? [r.secretProblem] : [])]);
    if (force && 'problem' in force) problems.push(force.problem);
    const activeRows = parsed.filter((r) => r.active === true);
    const status: StoreAccountStatus = {
      store: this.name,
      kind: this.kind,
      // Inactive rows are armed too: mailcow sets them back to active at the next password sign-in.
      activated: parsed.length > 0,
      enforced: activeRows.length > 0,
      factors: parsed.map(toFactor),
      details: {
        authenticators: parsed.length,
        kinds: [...new Set(parsed.map((r) => r.authmech || 'unknown'))].sort(),
        ...(forceTfa !== undefined ? { forceTfa } : {}),
        ...(parsed.some((r) => r.kind !== 'totp' && r.kind !== 'unknown')
          ? { notVerifiableByMail2fa: parsed.filter((r) => r.kind !== 'totp').map((r) => r.ref) }
          : {}),
      },
    };
    if (parsed.length > 0 && activeRows.length === 0) {
      status.notEnforced = [
        `all ${parsed.length} tfa rows have active = 0 (mailcow's one-login bypass): the next password sign-in passes without a code, then mailcow re-activates them`,
      ];
    }
    if (parsed.length === 0 && forceTfa) {
      status.notEnforced = [
        'no authenticator yet: force_tfa makes mailcow ask the user to set one up at the next sign-in',
      ];
    }
    if (problems.length > 0) status.problems = problems;
    return status;
  }

  async account(email: string): Promise<StoreAccountStatus | null> {
    return (await this.statusBatch([email])).get(email) ?? null;
  }

  async statusBatch(emails: readonly string[]): Promise<Map<string, StoreAccountStatus>> {
    return statusInChunks(this.db, emails, STATUS_BATCH, async (db, batch, out) => {
      // Both reads at once (two pool connections): mailcow's tfa has no index on username, so its read is a scan.
      const [rows, force] = await Promise.all([this.rowsOf(db.knex, batch), this.forceTfaOf(db, batch)]);
      const byUser = new Map<string, TfaRow[]>();
      for (const r of rows) byUser.set(r.username, [...(byUser.get(r.username) ?? []), r]);
      for (const email of batch) {
        const status = this.statusOf(email, byUser.get(email) ?? [], force.get(email));
        if (status) out.set(email, status);
      }
    });
  }

  async totpSecrets(email: string): Promise<StoreTotpSecret[]> {
    const db = await this.db();
    const rows = await storeRead(db, () => this.rowsOf(db.knex, [email]));
    return rows
      .map(parseRow)
      .filter((r) => r.kind === 'totp' && r.active === true && r.key)
      .map((r) => ({ key: r.key!, ref: r.ref, storeWindow: MAILCOW_TOTP_WINDOW }));
  }

  async *exportSecrets(batchSize: number): AsyncIterable<ExportedSecret[]> {
    const db = await this.db();
    let after = 0;
    for (;;) {
      const rows = await storeRead(
        db,
        () =>
          db
            .knex(this.table)
            .select('id', 'key_id', 'username', 'authmech', 'secret', 'active')
            .where('authmech', 'totp')
            .where('id', '>', after)
            .orderBy('id')
            .limit(batchSize) as Promise<TfaRow[]>,
      );
      if (rows.length === 0) return;
      after = Number(rows.at(-1)!.id);
      const batch: ExportedSecret[] = [];
      for (const row of rows) {
        const parsed = parseRow(row);
        // Only what mailcow's sign-in would accept, and only mailbox users (tfa also holds admins).
        if (parsed.kind !== 'totp' || parsed.active !== true || !parsed.key || !row.username.includes('@')) continue;
        batch.push({
          email: row.username,
          key: parsed.key,
          ref: parsed.ref,
          weak: parsed.key.length < STRONG_SECRET_BYTES,
        });
      }
      if (batch.length > 0) yield batch;
    }
  }

  // ------------------------------------------------------------------------------------------------- writes

  /** Deletes exactly `ids` (rows of `email`), then checks that no row of `email` is left. */
  private async deleteExactly(
    trx: Knex.Transaction,
    db: Database,
    email: string,
    ids: number[],
    onlyTotp: boolean,
  ): Promise<void> {
    let deleted = 0;
    for (const part of chunked(ids, BATCH)) {
      deleted += Number(await whereExact(trx(this.table).whereIn('id', part), db.dialect, 'username', email).delete());
    }
    if (deleted !== ids.length) throw new StoreConflict(`${this.table} rows of the account`);
    let left = whereExact(trx(this.table).where('username', email), db.dialect, 'username', email);
    if (onlyTotp) left = left.where('authmech', 'totp');
    const remaining = (await left.count({ n: '*' }).first()) as { n: number | string } | undefined;
    if (Number(remaining?.n ?? 0) !== 0) throw new StoreConflict(`${this.table} rows of the account`);
  }

  private refuseStructural(parsed: ParsedRow[]): void {
    const bad = parsed.flatMap((r) => r.structural);
    if (bad.length > 0) throw unparsable(this.name, `${this.table} rows of the account`, bad.join('; '));
  }

  private async removeAll(email: string, verb: string, ctx: StoreWriteContext): Promise<StoreChange> {
    const db = await this.db();
    return storeTransaction(db, this.name, ctx.sharedTransaction, async (trx) => {
      const parsed = (await this.rowsOf(trx, [email], true)).map(parseRow);
      this.refuseStructural(parsed);
      if (parsed.length === 0)
        return {
          store: this.name,
          kind: this.kind,
          outcome: 'nothing',
          detail: `no ${this.table} rows for the account`,
        };
      await this.deleteExactly(
        trx,
        db,
        email,
        parsed.map((r) => r.id),
        false,
      );
      const kinds = [...new Set(parsed.map((r) => r.authmech))].sort().join(', ');
      return {
        store: this.name,
        kind: this.kind,
        outcome: 'changed',
        detail: `${verb}: deleted ${parsed.length} ${this.table} row${parsed.length === 1 ? '' : 's'} (${kinds})`,
        refs: parsed.map((r) => r.ref),
      };
    });
  }

  reset(email: string, ctx: StoreWriteContext): Promise<StoreChange> {
    return this.removeAll(email, 'every mailcow authenticator removed', ctx);
  }

  disable(email: string, ctx: StoreWriteContext): Promise<StoreChange> {
    return this.removeAll(email, 'mailcow 2FA turned off', ctx);
  }

  async temporaryBypass(email: string, ctx: StoreWriteContext): Promise<StoreChange> {
    const db = await this.db();
    return storeTransaction(db, this.name, ctx.sharedTransaction, async (trx) => {
      const parsed = (await this.rowsOf(trx, [email], true)).map(parseRow);
      this.refuseStructural(parsed);
      if (parsed.length === 0)
        return {
          store: this.name,
          kind: this.kind,
          outcome: 'nothing',
          detail: `no ${this.table} rows for the account: mailcow asks for no code anyway`,
        };
      const armed = parsed.filter((r) => r.active === true);
      const rearm =
        'mailcow lets the next password sign-in through without a code and then sets them back to active (one-login bypass; the authenticators stay)';
      if (armed.length === 0)
        return {
          store: this.name,
          kind: this.kind,
          outcome: 'nothing',
          detail: `all ${parsed.length} ${this.table} rows already have active = 0: ${rearm}`,
        };
      let changed = 0;
      for (const part of chunked(
        armed.map((r) => r.id),
        BATCH,
      )) {
        changed += Number(
          await whereExact(
            trx(this.table).whereIn('id', part).where('active', 1),
            db.dialect,
            'username',
            email,
          ).update({ active: 0 }),
        );
      }
      if (changed !== armed.length) throw new StoreConflict(`${this.table} rows of the account`);
      return {
        store: this.name,
        kind: this.kind,
        outcome: 'changed',
        detail: `set active = 0 on ${armed.length} ${this.table} row${armed.length === 1 ? '' : 's'}: ${rearm}`,
        refs: armed.map((r) => r.ref),
      };
    });
  }

  async enrol(email: string, input: EnrolInput, ctx: StoreWriteContext): Promise<StoreChange> {
    if (!this.config.allowPlaintextWrites) {
      throw configError(
        'plaintext_store',
        `store ${this.name}: mailcow keeps TOTP secrets in plaintext; writing one needs allowPlaintextWrites: true in its config`,
        'Set allowPlaintextWrites: true on this store only if the site accepts plaintext secrets in the mailcow database.',
      );
    }
    if (input.key.length < 20)
      throw dataError(
        'weak_secret',
        `store ${this.name}: refusing to write a ${input.key.length}-byte secret (mail2fa writes 20 bytes)`,
      );
    const label = input.label ?? 'mail2fa';
    if (label.length === 0 || label.length > 255 || /[\u0000-\u001f\u007f]/.test(label))
      throw dataError(
        'bad_label',
        `store ${this.name}: the authenticator label must be 1-255 characters without control characters`,
      );
    const db = await this.db();
    return storeTransaction(db, this.name, ctx.sharedTransaction, async (trx) => {
      const parsed = (await this.rowsOf(trx, [email], true)).map(parseRow);
      this.refuseStructural(parsed);
      const totp = parsed.filter((r) => r.kind === 'totp');
      if (totp.length > 0) {
        throw dataError(
          'already_enabled',
          `store ${this.name}: ${email} already has a mailcow TOTP authenticator (${totp.map((r) => r.ref).join(', ')})`,
          'Remove it first (`mail2fa disable` or `recover`).',
        );
      }
      const inserted = (await trx(this.table).insert({
        key_id: label,
        username: email,
        authmech: 'totp',
        secret: base32Encode(input.key),
        active: 1,
      })) as number[];
      const ref = inserted[0] !== undefined ? `tfa.id=${inserted[0]}` : undefined;
      return {
        store: this.name,
        kind: this.kind,
        outcome: 'changed',
        detail: `added a TOTP authenticator "${escapeControl(label)}" (plaintext secret in ${this.table}, as mailcow stores it)`,
        ...(ref ? { refs: [ref] } : {}),
      };
    });
  }

  async clearMigrated(emails: readonly string[], ctx: StoreWriteContext): Promise<StoreChange> {
    const db = await this.db();
    return storeTransaction(db, this.name, ctx.sharedTransaction, async (trx) => {
      const refs: string[] = [];
      for (const batch of chunked([...new Set(emails)], BATCH)) {
        const rows = (await this.rowsOf(trx, batch, true))
          .map((r) => ({ row: r, parsed: parseRow(r) }))
          .filter((r) => r.parsed.kind === 'totp');
        const byUser = new Map<string, number[]>();
        for (const r of rows) byUser.set(r.row.username, [...(byUser.get(r.row.username) ?? []), r.parsed.id]);
        for (const [email, ids] of byUser) await this.deleteExactly(trx, db, email, ids, true);
        refs.push(...rows.map((r) => r.parsed.ref));
      }
      if (refs.length === 0)
        return { store: this.name, kind: this.kind, outcome: 'nothing', detail: 'no TOTP rows left to clear' };
      return {
        store: this.name,
        kind: this.kind,
        outcome: 'changed',
        detail: `deleted ${refs.length} migrated plaintext TOTP row${refs.length === 1 ? '' : 's'} from ${this.table}`,
        refs,
      };
    });
  }

  // ------------------------------------------------------------------------------------------------- doctor

  async doctor(): Promise<StoreCheck[]> {
    const name = (what: string) => `store ${this.name}: ${what}`;
    const { db, checks } = await doctorSchema(
      this.name,
      this.db,
      this.table,
      (database) =>
        database
          .knex(this.table)
          .select('id', 'key_id', 'username', 'authmech', 'secret', 'keyHandle', 'publicKey', 'counter', 'active')
          .limit(0),
      "Point the store at mailcow's database (db.url, usually mysql://…@127.0.0.1:13306/mailcow) and table.",
    );
    if (!db) return checks;
    if (this.mailboxTable) {
      try {
        await db.knex(this.mailboxTable).select('username', 'attributes').limit(0);
        checks.push({
          name: name('mailbox attributes'),
          status: 'ok',
          detail: `${this.mailboxTable}.attributes readable (force_tfa)`,
        });
      } catch (err) {
        checks.push({
          name: name('mailbox attributes'),
          status: 'warn',
          detail: `${this.mailboxTable}.attributes: ${(err as Error).message.split('\n')[0]}`,
          hint: 'Set options.mailboxTable: null to skip force_tfa.',
        });
      }
    }
    try {
      const counts = (await db.knex(this.table).select('authmech').count({ n: '*' }).groupBy('authmech')) as {
        authmech: string | null;
        n: number | string;
      }[];
      const totp = Number(counts.find((c) => c.authmech === 'totp')?.n ?? 0);
      const summary = counts.map((c) => `${c.authmech ?? 'NULL'}: ${Number(c.n)}`).join(', ') || 'no rows';
      checks.push({
        name: name('plaintext secrets'),
        status: totp > 0 || this.config.allowPlaintextWrites ? 'warn' : 'ok',
        detail: `${this.table} keeps TOTP secrets in plaintext (${summary})${this.config.allowPlaintextWrites ? '; allowPlaintextWrites is on: mail2fa writes plaintext secrets here' : ''}`,
        ...(totp > 0 ? { hint: "`mail2fa migrate-from` can move them into mail2fa's encrypted store." } : {}),
      });
    } catch (err) {
      checks.push({ name: name('plaintext secrets'), status: 'fail', detail: (err as Error).message.split('\n')[0]! });
    }
    checks.push(
      await doctorWriteAccess(this.name, db, this.table, 'recover, disable and enable', (trx) =>
        trx(this.table).whereRaw('1 = 0').delete(),
      ),
    );
    return checks;
  }

  async close(): Promise<void> {
    // The database belongs to the core (StoreDeps.openDatabase): nothing of our own to close.
  }
}

export const mailcowStore: StoreDefinition<MailcowOptions> = {
  kind: 'mailcow',
  optionsSchema: MailcowOptionsSchema,
  open: (config, deps) => new MailcowStore(config, deps),
};
