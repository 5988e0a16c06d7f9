/**
 * The service's one connection to mail2fa's core: one context (one database pool, the master key) for the whole
 * process, and a per-request view of it that carries the request's actor and the end user's IP / user agent for
 * the audit rows. When the database cannot be opened (down at start-up, or lost before the first request),
 * the next request tries again: the service never needs a restart to recover.
 */
import type { Config } from '../config.js';
import { contextFromConfig, schemaVersion, type Context } from '../context.js';
import { LATEST_MIGRATION } from '../db/migrations.js';
import type { SmsSender } from '../sms/transports.js';

/** How long a pool dropped after a lost connection stays open for the requests still using it. */
const RETIRE_AFTER_MS = 30_000;

export interface RequestOrigin {
  /** The calling webmail's name: the audit actor is `serve:<client>`. */
  client: string;
  ip?: string;
  userAgent?: string;
}

export interface ServeCoreOptions {
  env?: NodeJS.ProcessEnv;
  clock?: () => number;
  smsSender?: SmsSender;
}

export interface Health {
  ok: boolean;
  database: 'ok' | 'unavailable';
  schema: 'current' | 'outdated' | 'unknown';
  key: 'loaded' | 'unavailable' | 'unknown';
}

export class ServeCore {
  private base: Context | undefined;
  private opening: Promise<Context> | undefined;
  private closed = false;
  private readonly retired = new Map<Context, NodeJS.Timeout>();

  constructor(
    readonly config: Config,
    private readonly options: ServeCoreOptions = {},
  ) {}

  /** The context for one request: the shared pool, this request's actor, origin and notices. */
  async forRequest(origin: RequestOrigin): Promise<Context> {
    const base = await this.shared();
    const origins = {
      ...(origin.ip ? { ip: origin.ip } : {}),
      ...(origin.userAgent ? { userAgent: origin.userAgent } : {}),
    };
    return { ...base, actor: `serve:${origin.client}`, origin: origins, notices: [] };
  }

  /** Opens the database and loads the key once; a failed open is forgotten so that the next call retries. */
  async shared(): Promise<Context> {
    if (this.closed) throw new Error('the service is shutting down');
    if (this.base) return this.base;
    this.opening ??= (async () => {
      const ctx = contextFromConfig(this.config, {
        env: this.options.env,
        clock: this.options.clock,
        smsSender: this.options.smsSender,
      });
      try {
        await ctx.db();
        ctx.masterKey();
      } catch (err) {
        await ctx.close().catch(() => {});
        throw err;
      }
      return ctx;
    })();
    try {
      this.base = await this.opening;
      return this.base;
    } finally {
      this.opening = undefined;
    }
  }

  /**
   * Drops the pool after a lost connection: the next request opens a fresh one (or gets a 503 while the database
   * is still down). Requests still running on the old pool finish or fail on their own; it is closed after them.
   */
  invalidate(): void {
    const old = this.base;
    if (!old) return;
    this.base = undefined;
    // Closed once the requests that hold it are surely over (request timeout + database connect timeout), so that
    // none of them fails on a pool closed under it; at once if the service stops first.
    const timer = setTimeout(() => this.retire(old), RETIRE_AFTER_MS);
    timer.unref();
    this.retired.set(old, timer);
  }

  private retire(ctx: Context): void {
    clearTimeout(this.retired.get(ctx));
    this.retired.delete(ctx);
    void ctx.close().catch(() => {});
  }

  /** Database reachable, schema current, key loaded: each reported, no error details. */
  async health(): Promise<Health> {
    let ctx: Context;
    try {
      ctx = await this.shared();
    } catch {
      return { ok: false, database: 'unavailable', schema: 'unknown', key: 'unknown' };
    }
    let version: string | null;
    try {
      version = await schemaVersion(await ctx.db(), ctx.tables);
    } catch {
      this.invalidate();
      return { ok: false, database: 'unavailable', schema: 'unknown', key: 'loaded' };
    }
    const schema = version === LATEST_MIGRATION ? 'current' : 'outdated';
    return { ok: schema === 'current', database: 'ok', schema, key: 'loaded' };
  }

  /** Closes the pool (after in-flight requests have finished). */
  async close(): Promise<void> {
    this.closed = true;
    const ctx = this.base ?? (await this.opening?.catch(() => undefined));
    this.base = undefined;
    for (const old of [...this.retired.keys()]) this.retire(old);
    await ctx?.close();
  }
}
