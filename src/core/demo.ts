/**
 * `demo`: sample mailboxes in every interesting 2FA state, with known passwords, so a new user can try each
 * command at once. The factors are stored exactly as real enrolments store them (sealed secrets, hashed codes).
 */
import { resetAccountState, setAttempts, useFirstRecoveryCodes } from '../db/own-store.js';
import type { Context } from '../context.js';
import { hashPassword, type PasswordScheme } from '../crypto/passwords.js';
import { ensureReferenceMailboxTable, existingMailboxes, replaceMailboxes } from '../db/accounts.js';
import { migrateOrBusy } from '../db/migrations.js';
import { inTransaction, lockAccountState } from '../db/tx.js';
import { parsePhone } from '../sms/phone.js';
import { generateTotpSecret } from '../totp/totp.js';
import { writeAudit } from './audit-write.js';
import { configError, dataError } from '../errors.js';
import { LOCKOUT_MS, MAX_FAILED_ATTEMPTS } from './lockout.js';
import { refreshStatusSummary } from '../db/status-summary.js';
import { removeFactor, storeFactor } from './factors.js';
import { Vault, ensureCodeHashKey } from './vault.js';

export interface DemoAccount {
  email: string;
  password: string;
  scheme: PasswordScheme;
  active: boolean;
  state: string;
  /** For the app accounts: the TOTP secret, printed so the demo can be driven with any authenticator. */
  totpSecret?: string;
  phone?: string;
}

const SAMPLES: Array<
  Omit<DemoAccount, 'totpSecret'> & { factor?: 'totp' | 'sms'; locked?: boolean; usedCodes?: number }
> = [
  { email: 'alice@example.com', password: 'alice-demo-pw', scheme: 'SHA512-CRYPT', active: true, state: '2FA off' },
  {
    email: 'bob@example.com',
    password: 'bob-demo-pw',
    scheme: 'BLF-CRYPT',
    active: true,
    state: '2FA on (authenticator app)',
    factor: 'totp',
  },
  {
    email: 'carol@example.com',
    password: 'carol-demo-pw',
    scheme: 'ARGON2ID',
    active: true,
    state: '2FA on (SMS)',
    factor: 'sms',
    phone: '011-45-20123456',
  },
  {
    email: 'dave@example.org',
    password: 'dave-demo-pw',
    scheme: 'MD5-CRYPT',
    active: true,
    state: '2FA on (app), locked after 5 wrong codes',
    factor: 'totp',
    locked: true,
  },
  {
    email: 'erin@example.org',
    password: 'erin-demo-pw',
    scheme: 'SSHA512',
    active: false,
    state: 'mailbox inactive, 2FA off',
  },
  {
    email: 'frank@example.net',
    password: 'frank-demo-pw',
    scheme: 'SHA512-CRYPT',
    active: true,
    state: '2FA on (app), 7 of 10 recovery codes used',
    factor: 'totp',
    usedCodes: 7,
  },
];

/** What `demo` did: where, whether it created the mailboxes (or found them), and each mailbox with its password. */
export interface DemoResult {
  database: string;
  created: boolean;
  accounts: DemoAccount[];
}

export async function seedDemo(ctx: Context, opts: { reset: boolean }): Promise<DemoResult> {
  if (ctx.mapping.preset !== 'mail2fa')
    throw configError(
      'demo_preset',
      'demo seeds the reference mailbox table (preset mail2fa) only',
      'Run demo against the embedded default or a scratch database.',
    );
  const db = await ctx.db();
  const mysql = db.dialect === 'mysql';
  await migrateOrBusy(db, ctx.tables);
  await ensureReferenceMailboxTable(db.knex, ctx.mapping, mysql);
  const mapping = ctx.mapping;
  const existing = await existingMailboxes(
    db.knex,
    mapping,
    SAMPLES.map((s) => s.email),
  );
  if (existing.length && existing.length < SAMPLES.length && !opts.reset) {
    throw dataError(
      'demo_partial',
      `${existing.length} of the ${SAMPLES.length} demo mailboxes exist in ${db.displayUrl}; refusing to guess`,
      'Use `mail2fa demo --reset` to recreate all of them.',
    );
  }
  if (existing.length && !opts.reset) {
    // Nothing to do, and nothing lost: say so, and list the (constant) demo passwords again.
    return {
      database: db.displayUrl,
      created: false,
      accounts: SAMPLES.map(({ email, password, scheme, active, state }) => ({
        email,
        password,
        scheme,
        active,
        state,
      })),
    };
  }
  // Created and committed before the transaction that hashes the demo's recovery codes with it.
  await ensureCodeHashKey(db, ctx.tables, ctx.masterKey(), ctx.now);
  const hashes = await Promise.all(SAMPLES.map((s) => hashPassword(s.password, s.scheme)));
  const accounts: DemoAccount[] = [];
  await inTransaction(db, ctx.tables, async (trx) => {
    const vault = Vault.forContext(ctx, db);
    const now = ctx.now();
    await replaceMailboxes(
      trx,
      mapping,
      SAMPLES.map((s, i) => ({ email: s.email, passwordHash: hashes[i]!, active: s.active })),
    );
    for (const sample of SAMPLES) {
      const state = await lockAccountState(trx, ctx.tables, db.dialect, sample.email);
      await removeFactor(trx, ctx.tables, sample.email);
      await resetAccountState(trx, ctx.tables, sample.email);
      const account: DemoAccount = {
        email: sample.email,
        password: sample.password,
        scheme: sample.scheme,
        active: sample.active,
        state: sample.state,
        ...(sample.phone ? { phone: sample.phone } : {}),
      };
      if (sample.factor === 'totp') {
        account.totpSecret = generateTotpSecret();
        await storeFactor(trx, ctx.tables, vault, now, {
          account: sample.email,
          method: 'totp',
          totpSecret: account.totpSecret,
        });
      } else if (sample.factor === 'sms') {
        const phone = parsePhone(sample.phone!);
        await storeFactor(trx, ctx.tables, vault, now, {
          account: sample.email,
          method: 'sms',
          phoneE164: phone.e164,
          phoneMasked: phone.masked,
        });
      }
      if (sample.usedCodes) await useFirstRecoveryCodes(trx, ctx.tables, sample.email, sample.usedCodes, now);
      if (sample.locked) await setAttempts(trx, ctx.tables, state.account, MAX_FAILED_ATTEMPTS, now + LOCKOUT_MS);
      await refreshStatusSummary(trx, ctx.tables, db.dialect, [sample.email]);
      accounts.push(account);
    }
    await writeAudit(trx, ctx.tables, ctx, {
      action: 'demo',
      account: null,
      outcome: 'ok',
      detail: { accounts: SAMPLES.length },
    });
  });
  return { database: db.displayUrl, created: true, accounts };
}
