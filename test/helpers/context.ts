/**
 * In-process test contexts over a real database (see db.ts): mail2fa's schema migrated, the reference mailbox
 * table created, a master key in the environment, and an adjustable clock.
 */
import { randomBytes } from 'node:crypto';
import { join } from 'node:path';
import { contextFromConfig, type Context } from '../../src/context.js';
import { loadConfig } from '../../src/config.js';
import { hashPassword, type PasswordScheme } from '../../src/crypto/passwords.js';
import { ensureReferenceMailboxTable } from '../../src/db/accounts.js';
import { migratorConfig } from '../../src/db/migrations.js';
import type { SmsSender } from '../../src/sms/transports.js';
import type { TestDb } from './db.js';

export interface TestClock {
  now: number;
  advance(ms: number): void;
}

export function testClock(start = Date.UTC(2026, 10, 27, 12, 0, 0)): TestClock {
  const clock = {
    now: start,
    advance(ms: number) {
      clock.now += ms;
    },
  };
  return clock;
}

/** The environment tests run commands with: a fixed master key, the scratch dir as MAIL2FA_HOME. */
export function testEnv(db: TestDb, extra: Record<string, string> = {}): Record<string, string> {
  return { MAIL2FA_HOME: join(db.dir, 'home'), MAIL2FA_KEY: TEST_KEY, MAIL2FA_DB_URL: db.url, ...extra };
}

export const TEST_KEY = randomBytes(32).toString('base64');

export interface TestContextOptions {
  clock?: TestClock;
  configPath?: string;
  actor?: string;
  smsSender?: SmsSender;
  env?: Record<string, string>;
  /** false: leave mail2fa's schema alone (a test that migrates step by step); the mailbox table is created anyway. */
  migrate?: boolean;
}

/** A context on `db` with the schema in place. Close it with ctx.close(). */
export async function testContext(db: TestDb, o: TestContextOptions = {}): Promise<Context> {
  const env = { ...process.env, ...testEnv(db), ...o.env };
  delete env.MAIL2FA_CONFIG;
  const config = await loadConfig({ dbUrl: db.url, configPath: o.configPath, env });
  const clock = o.clock;
  const ctx = contextFromConfig(config, {
    env,
    actor: o.actor ?? 'test-agent',
    clock: clock ? () => clock.now : undefined,
    smsSender: o.smsSender,
    skipSchemaCheck: true,
  });
  const knexDb = await ctx.db();
  if (o.migrate !== false) await knexDb.knex.migrate.latest(migratorConfig(ctx.tables, knexDb.dialect === 'mysql'));
  await ensureReferenceMailboxTable(knexDb.knex, ctx.mapping, knexDb.dialect === 'mysql');
  return ctx;
}

/** Inserts a mailbox into the reference table (preset mail2fa). */
export async function addMailbox(
  ctx: Context,
  email: string,
  password = 'correct horse',
  o: { scheme?: PasswordScheme; active?: boolean } = {},
): Promise<void> {
  const db = await ctx.db();
  const m = ctx.mapping;
  await db.knex(m.table).insert({
    [m.email]: email,
    [m.password]: await hashPassword(password, o.scheme ?? 'SHA512-CRYPT'),
    [m.active]: o.active ?? true,
    [m.domain]: email.slice(email.lastIndexOf('@') + 1),
  });
}
