/** `mail2fa keys check|rotate|generate` through the built binary (run `npm run build` first). */
import { chmodSync, existsSync, readFileSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, expect, it } from 'vitest';
import { storeFactor } from '../../src/core/factors.js';
import { Vault } from '../../src/core/vault.js';
import { inTransaction, lockAccountState } from '../../src/db/tx.js';
import { parsePhone } from '../../src/sms/phone.js';
import { generateTotpSecret } from '../../src/totp/totp.js';
import { runCli } from '../helpers/cli.js';
import { Terminal } from '../helpers/terminal.js';
import { describeEachDb, useTestDb } from '../helpers/db.js';
import { dbSnapshot } from '../helpers/db-snapshot.js';
import { addMailbox } from '../helpers/context.js';

describeEachDb('mail2fa keys (CLI)', (kind) => {
  const scratch = useTestDb(kind);
  const secret = generateTotpSecret();
  const phone = parsePhone('011-45-20123456');
  let recoveryCodes: string[] = [];

  beforeAll(async () => {
    const db = await scratch.ctx.db();
    const vault = new Vault(scratch.ctx.masterKey(), scratch.ctx.tables, scratch.ctx.now);
    for (const e of ['app@example.com', 'sms@example.com']) await addMailbox(scratch.ctx, e);
    await inTransaction(db, scratch.ctx.tables, async (trx) => {
      await lockAccountState(trx, scratch.ctx.tables, db.dialect, 'app@example.com');
      recoveryCodes = await storeFactor(trx, scratch.ctx.tables, vault, scratch.ctx.now(), {
        account: 'app@example.com',
        method: 'totp',
        totpSecret: secret,
      });
      await lockAccountState(trx, scratch.ctx.tables, db.dialect, 'sms@example.com');
      await storeFactor(trx, scratch.ctx.tables, vault, scratch.ctx.now(), {
        account: 'sms@example.com',
        method: 'sms',
        phoneE164: phone.e164,
        phoneMasked: phone.masked,
      });
    });
  });

  const noSecrets = (text: string) => {
    expect(text).not.toContain(secret);
    expect(text).not.toContain(phone.e164);
    expect(text).not.toContain(phone.e164.slice(3));
    for (const c of recoveryCodes) expect(text).not.toContain(c);
  };

  it('keys check --json: one document with counts, exit 0, no secret', async () => {
    const r = await runCli(['keys', 'check', '--json'], { env: scratch.env });
    expect(r.code).toBe(0);
    const doc = JSON.parse(r.stdout);
    expect(doc).toMatchObject({ ok: true, keyId: scratch.ctx.masterKey().id, decrypted: 3, failed: 0 });
    expect(doc.columns).toContainEqual({ table: 'mail2fa_factor', column: 'secret_ct', ok: 1, failed: 0 });
    expect(r.stderr).not.toContain('\r'); // no progress bar without a terminal
    noSecrets(r.stdout + r.stderr);
  });

  it('keys generate writes a 0600 key file and never overwrites one (78)', async () => {
    const file = join(scratch.tdb.dir, 'gen.key');
    const r = await runCli(['keys', 'generate', file], { env: scratch.env });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/created key file .*gen\.key \(key [0-9a-f]{16}, mode 0600\)/);
    expect(statSync(file).mode & 0o777).toBe(0o600);
    const before = readFileSync(file, 'utf8');
    expect(before).toMatch(/^[A-Za-z0-9+/]{43}=\n$/);
    expect(r.stdout).not.toContain(before.trim());
    const again = await runCli(['keys', 'generate', file, '--json'], { env: scratch.env });
    expect(again.code).toBe(78);
    expect(JSON.parse(again.stdout).error.code).toBe('key_exists');
    expect(readFileSync(file, 'utf8')).toBe(before);
  });

  it('keys rotate refuses a missing or group-readable new key file (78), nothing changed', async () => {
    const before = await dbSnapshot(scratch.ctx);
    const missing = await runCli(['keys', 'rotate', '--new-key-file', join(scratch.tdb.dir, 'absent.key')], {
      env: scratch.env,
    });
    expect(missing.code).toBe(78);
    expect(missing.stderr).toContain('does not exist');
    expect(missing.stderr).toContain('mail2fa keys generate');
    const loose = join(scratch.tdb.dir, 'loose.key');
    expect((await runCli(['keys', 'generate', loose], { env: scratch.env })).code).toBe(0);
    chmodSync(loose, 0o644);
    const r = await runCli(['keys', 'rotate', '--new-key-file', loose, '--json'], { env: scratch.env });
    expect(r.code).toBe(78);
    expect(JSON.parse(r.stdout).error.code).toBe('key_permissions');
    const usage = await runCli(['keys', 'rotate'], { env: scratch.env });
    expect(usage.code).toBe(64);
    expect(await dbSnapshot(scratch.ctx)).toEqual(before);
  });

  it('keys rotate re-encrypts everything, says what to do next; the old key then fails keys check (78)', async () => {
    const file = join(scratch.tdb.dir, 'rotated.key');
    expect((await runCli(['keys', 'generate', file], { env: scratch.env })).code).toBe(0);
    const r = await runCli(['keys', 'rotate', '--new-key-file', file], { env: scratch.env });
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(
      /re-encrypted 3 stored secret\(s\) in 3 row\(s\) under key [0-9a-f]{16} \(was [0-9a-f]{16}\) in short batches/,
    );
    expect(r.stdout).toContain('MAIL2FA_KEY'); // the test loads its key from MAIL2FA_KEY: the advice says how to switch
    expect(r.stdout).toContain(file);
    noSecrets(r.stdout + r.stderr);

    const old = await runCli(['keys', 'check', '--json'], { env: scratch.env });
    expect(old.code).toBe(78);
    const doc = JSON.parse(old.stdout);
    expect(doc).toMatchObject({ ok: false, decrypted: 0, failed: 3, error: { code: 'undecryptable' } });
    expect(doc.failures.map((f: { account: string }) => f.account).sort()).toEqual([
      'app@example.com',
      'code-hash',
      'sms@example.com',
    ]);
    noSecrets(old.stdout + old.stderr);

    const human = await runCli(['keys', 'check'], { env: scratch.env });
    expect(human.code).toBe(78);
    expect(human.stdout).toContain('3 stored value(s) do NOT decrypt');
    expect(human.stdout).toContain('mail2fa_factor.secret_ct of app@example.com: sealed with another key');

    const withNew = { ...scratch.env, MAIL2FA_KEY: undefined, MAIL2FA_KEY_FILE: file };
    const ok = await runCli(['keys', 'check'], { env: withNew });
    expect(ok.code).toBe(0);
    expect(ok.stdout).toMatch(/all 3 stored secret\(s\) decrypt with key [0-9a-f]{16}/);

    // Rotating to the key already loaded is a usage error.
    const same = await runCli(['keys', 'rotate', '--new-key-file', file], { env: withNew });
    expect(same.code).toBe(64);
    expect(same.stderr).toContain('already in use');
  });

  it('draws a progress bar on a terminal only', async () => {
    const key2 = join(scratch.tdb.dir, 'second.key');
    const withNew = { ...scratch.env, MAIL2FA_KEY: undefined, MAIL2FA_KEY_FILE: join(scratch.tdb.dir, 'rotated.key') };
    expect((await runCli(['keys', 'generate', key2], { env: scratch.env })).code).toBe(0);
    const term = new Terminal(
      ['keys', 'rotate', '--new-key-file', key2],
      { ...withNew, NO_COLOR: undefined },
      { cols: 120, rows: 30, cwd: scratch.tdb.dir, timeoutMs: 20_000 },
    );
    const code = await term.exitCode();
    const output = term.output;
    expect(code).toBe(0);
    expect(output).toMatch(/re-encrypting \[#* *\] +\d+%/);
    expect(output).toContain('re-encrypted 3 stored secret(s)');
    expect(existsSync(key2)).toBe(true);
  });

  it('--help shows examples and exit codes', async () => {
    for (const sub of ['check', 'rotate', 'generate']) {
      const r = await runCli(['keys', sub, '--help']);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain('Examples:');
      expect(r.stdout).toContain('Exit codes:');
    }
  });
});
