/**
 * The library entry point (`import { openMail2fa } from 'mail2fa'`): what a webmail back end needs at sign-in,
 * on the same core as the CLI. No terminal I/O: nothing is printed, prompted or exited; answers are data.
 */
import { contextFromConfig, type Context } from './context.js';
import { loadConfig } from './config.js';
import { ExitCode, Mail2faError } from './errors.js';
import { factorSummary, summaryRequiresCode } from './core/owner.js';
import { statusBatches, type StatusRow } from './core/status.js';
import { sessionsRevokedAt } from './core/sign-in.js';
import type { SmsSender } from './sms/transports.js';
import { verifyCodeAnswer, type VerifyCodeResult } from './verify-answer.js';

export { ExitCode, Mail2faError } from './errors.js';
export type { CodeKind } from './core/factor-check.js';
export type { RejectReason } from './core/sign-in.js';
export type { StatusRow } from './core/status.js';
export type { VerifyCodeResult } from './verify-answer.js';
export type { SmsSender, SmsMessage, SmsDelivery } from './sms/transports.js';

export interface OpenOptions {
  /** A config file (YAML or JSON) — the same file the CLI reads — or its settings as an object. */
  config?: string | Record<string, unknown>;
  /** Database URL (`sqlite:PATH`, `mysql://…`, `mariadb://…`, `postgres://…`); overrides the config and MAIL2FA_DB_URL. */
  db?: string;
  /** The master key file (32 bytes, base64 or hex, mode 0600); overrides the config, MAIL2FA_KEY_FILE and MAIL2FA_KEY. */
  keyFile?: string;
  /** Environment to read MAIL2FA_* settings from (default: process.env). */
  env?: NodeJS.ProcessEnv;
  /** Who is acting, for the audit log (default: the OS user). */
  actor?: string;
  /** Clock in epoch milliseconds (tests). */
  clock?: () => number;
  /** SMS sender to use instead of the configured transport. */
  smsSender?: SmsSender;
}

export interface Mail2fa {
  /** Checks a sign-in code (TOTP, pending SMS code, recovery code, temporary access code); each is accepted once. */
  verifyCode(email: string, code: string): Promise<VerifyCodeResult>;
  /**
   * Whether the sign-in must ask for a code: 2FA is on in mail2fa's store or enforced by a configured foreign store
   * (PostfixAdmin's totp_secret, …), or customer service issued a temporary access code (`recover --temporary-code`).
   * An unknown or malformed address is `true` (fail closed): verifyCode then answers `unknown_account` / `malformed`.
   */
  requiresCode(email: string): Promise<boolean>;
  /** The account's 2FA status: the same row as `mail2fa status --json` (state 'unknown' / 'invalid' as data). */
  status(email: string): Promise<StatusRow>;
  /** When the account's sessions were last revoked (enable, disable, recover): sessions older than this must sign in again. Null for unknown or malformed addresses. */
  sessionsRevokedAt(email: string): Promise<Date | null>;
  /** Things worth logging once (e.g. a key file created for an embedded database). */
  readonly notices: readonly string[];
  /** Closes the database connections. */
  close(): Promise<void>;
}

const toDate = (iso: string | null): Date | null => (iso === null ? null : new Date(iso));

/** An unknown or malformed address: an answer the library returns as data, never throws. */
const isAddressAnswer = (err: unknown): boolean =>
  err instanceof Mail2faError && (err.code === 'unknown_account' || err.code === 'bad_address');

/**
 * Opens mail2fa: loads and validates the configuration (flags-like options > MAIL2FA_* environment > config >
 * defaults), connects to the database and checks its schema, and loads the master key — so configuration
 * problems surface here, as a Mail2faError with `code`, `exitCode` and `hint`.
 */
export async function openMail2fa(options: OpenOptions = {}): Promise<Mail2fa> {
  const env: NodeJS.ProcessEnv = { ...(options.env ?? process.env) };
  if (options.config !== undefined && typeof options.config !== 'string') delete env.MAIL2FA_CONFIG;
  if (options.keyFile !== undefined) {
    delete env.MAIL2FA_KEY;
    env.MAIL2FA_KEY_FILE = options.keyFile;
  }
  const config = await loadConfig({
    env,
    dbUrl: options.db,
    ...(typeof options.config === 'string'
      ? { configPath: options.config }
      : options.config !== undefined
        ? { configObject: options.config }
        : {}),
  });
  const ctx: Context = contextFromConfig(config, {
    env,
    actor: options.actor,
    clock: options.clock,
    smsSender: options.smsSender,
  });
  try {
    await ctx.db();
    ctx.masterKey();
  } catch (err) {
    await ctx.close();
    throw err;
  }
  let closed = false;
  const open = () => {
    if (closed) throw new Mail2faError('closed', 'this mail2fa handle was closed', ExitCode.SOFTWARE);
    return ctx;
  };

  return {
    notices: ctx.notices,

    async verifyCode(email, code) {
      return verifyCodeAnswer(open(), email, code);
    },

    async requiresCode(email) {
      let summary;
      try {
        summary = await factorSummary(open(), email);
      } catch (err) {
        // Data, not an exception, and fail closed: ask for a code, which verifyCode then answers as
        // unknown_account / malformed. (Answering false would wave through an address typed differently from
        // its mailbox row.)
        if (isAddressAnswer(err)) return true;
        throw err;
      }
      return summaryRequiresCode(summary);
    },

    async status(email) {
      const context = open();
      const db = await context.db();
      for await (const batch of statusBatches(
        { db, tables: context.tables, mapping: context.mapping, now: context.now, stores: await context.stores() },
        { kind: 'emails', emails: [email] },
      )) {
        if (batch[0]) return batch[0];
      }
      throw new Mail2faError(
        'internal',
        'internal error (a bug, please report it): status returned no row',
        ExitCode.SOFTWARE,
      );
    },

    async sessionsRevokedAt(email) {
      try {
        return toDate(await sessionsRevokedAt(open(), email));
      } catch (err) {
        if (isAddressAnswer(err)) return null; // a malformed address has no sessions to revoke
        throw err;
      }
    },

    async close() {
      if (closed) return;
      closed = true;
      await ctx.close();
    },
  };
}
