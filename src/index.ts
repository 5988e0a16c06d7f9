/**
 * The library entry point (`import { openMail2fa } from 'mail2fa'`): what a webmail back end needs at sign-in,
 * on the same core as the CLI. No terminal I/O: nothing is printed, prompted or exited; answers are data.
 */
import { contextFromConfig, type Context } from './context.js';
import { loadConfig } from './config.js';
import { ExitCode, Mail2faError } from './core/errors.js';
import { factorSummary, summaryRequiresCode } from './core/owner.js';
import { statusBatches, type StatusRow } from './core/status.js';
import type { CodeKind } from './core/verification.js';
import { sessionsRevokedAt, verifySignInCode, type RejectReason } from './core/verify.js';
import type { SmsSender } from './sms/transports.js';

export { ExitCode, Mail2faError } from './core/errors.js';
export type { CodeKind } from './core/verification.js';
export type { RejectReason } from './core/verify.js';
export type { StatusRow } from './core/status.js';
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

/** The answer to one sign-in code. Only `ok: true` means "let the user in". Times are Date objects. */
export type VerifyCodeResult =
  | { ok: true; outcome: 'accepted'; email: string; kind: CodeKind; recoveryCodesLeft: number; sessionsRevokedAt: Date | null }
  | { ok: false; outcome: 'rejected'; email: string; reason: RejectReason; message: string; failedAttempts: number; lockedUntil: Date | null; sessionsRevokedAt: Date | null }
  | { ok: false; outcome: 'locked'; email: string; message: string; lockedUntil: Date; sessionsRevokedAt: Date | null }
  /** The code (or address) is not well-formed: nothing was checked or counted. */
  | { ok: false; outcome: 'malformed'; email: string; message: string }
  | { ok: false; outcome: 'unknown_account'; email: string; message: string };

export interface Mail2fa {
  /** Checks a sign-in code (TOTP, pending SMS code, recovery code, temporary access code); each is accepted once. */
  verifyCode(email: string, code: string): Promise<VerifyCodeResult>;
  /**
   * Whether the sign-in must ask for a code: 2FA is on in mail2fa's store or enforced by a configured foreign store
   * (PostfixAdmin's totp_secret, …), or customer service issued a temporary access code (`recover --temporary-code`). Unknown account → Mail2faError (exitCode 67); malformed address → 65.
   */
  requiresCode(email: string): Promise<boolean>;
  /** The account's 2FA status: the same row as `mail2fa status --json` (state 'unknown' / 'invalid' as data). */
  status(email: string): Promise<StatusRow>;
  /** When the account's sessions were last revoked (enable, disable, recover): sessions older than this must sign in again. */
  sessionsRevokedAt(email: string): Promise<Date | null>;
  /** Things worth logging once (e.g. a key file created for an embedded database). */
  readonly notices: readonly string[];
  /** Closes the database connections. */
  close(): Promise<void>;
}

const toDate = (iso: string | null): Date | null => (iso === null ? null : new Date(iso));

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
    ...(typeof options.config === 'string' ? { configPath: options.config } : options.config !== undefined ? { configObject: options.config } : {}),
  });
  const ctx: Context = contextFromConfig(config, { env, actor: options.actor, clock: options.clock, smsSender: options.smsSender });
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
      let result;
      try {
        result = await verifySignInCode(open(), { email, code });
      } catch (err) {
        if (err instanceof Mail2faError && (err.code === 'bad_code' || err.code === 'bad_address')) return { ok: false, outcome: 'malformed', email, message: err.message };
        if (err instanceof Mail2faError && err.code === 'unknown_account') return { ok: false, outcome: 'unknown_account', email, message: err.message };
        throw err;
      }
      const revoked = toDate(result.sessionsRevokedAt);
      switch (result.outcome) {
        case 'accepted':
          return { ok: true, outcome: 'accepted', email: result.email, kind: result.kind, recoveryCodesLeft: result.recoveryCodesLeft, sessionsRevokedAt: revoked };
        case 'rejected':
          return { ok: false, outcome: 'rejected', email: result.email, reason: result.reason, message: result.message, failedAttempts: result.failedAttempts, lockedUntil: toDate(result.lockedUntil), sessionsRevokedAt: revoked };
        case 'locked':
          return { ok: false, outcome: 'locked', email: result.email, message: `too many wrong attempts: locked until ${result.lockedUntil}`, lockedUntil: new Date(result.lockedUntil), sessionsRevokedAt: revoked };
      }
    },

    async requiresCode(email) {
      return summaryRequiresCode(await factorSummary(open(), email));
    },

    async status(email) {
      const c = open();
      const db = await c.db();
      for await (const batch of statusBatches({ db, tables: c.tables, mapping: c.mapping, now: c.now, stores: await c.stores() }, { kind: 'emails', emails: [email] })) {
        if (batch[0]) return batch[0];
      }
      throw new Mail2faError('internal', 'internal error (a bug, please report it): status returned no row', ExitCode.SOFTWARE);
    },

    async sessionsRevokedAt(email) {
      return toDate(await sessionsRevokedAt(open(), email));
    },

    async close() {
      if (closed) return;
      closed = true;
      await ctx.close();
    },
  };
}
