/**
 * `keys rotate` with a key file (docs/keys.md), through the built binary: the new key is
 * installed as the key file (the old one kept as <key file>.old), sign-ins work at every moment — right after
 * the key file changed and before the rows moved too — an interrupted rotation is finished by `keys rotate`
 * alone, a new rotation waits for an unfinished one, and no hint about a key ever suggests `recover`.
 */
import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, expect, it, vi } from 'vitest';
import { installKeyFile } from '../../src/crypto/keys.js';
import { totpCode } from '../../src/totp/totp.js';
import { runCli } from '../helpers/cli.js';
import { describeEachDb, useTestDb } from '../helpers/db.js';
import { testEnv, TEST_KEY } from '../helpers/context.js';
import { enrolTotp } from '../helpers/seed-2fa.js';

vi.setConfig({ testTimeout: 120_000 });

describeEachDb('keys rotate with a key file: both keys accepted during the switch', (kind) => {
  const scratch = useTestDb(kind);
  let keyFile: string;
  let env: Record<string, string | undefined>;
  const secrets = new Map<string, string>();
  beforeAll(async () => {
    keyFile = join(scratch.tdb.dir, 'master.key');
    writeFileSync(keyFile, `${TEST_KEY}\n`, { mode: 0o600 });
    env = { ...testEnv(scratch.tdb), MAIL2FA_KEY: undefined, MAIL2FA_KEY_FILE: keyFile };
    for (let i = 0; i < 5; i++) {
      const { email, secret } = await enrolTotp(scratch.ctx, `live${i}@example.com`);
      secrets.set(email, secret);
    }
  });

  /** Signs in every account once with a current TOTP code (the accounts at once, as a live site would). */
  async function everyoneSignsIn(): Promise<void> {
    // Each round signs in with the current code; the replay mark of the last round is cleared first.
    await (await scratch.ctx.db()).knex(scratch.ctx.tables.factor).update({ last_totp_step: null });
    await Promise.all(
      [...secrets].map(async ([email, secret]) => {
        const r = await runCli(['verify', email, '--code', totpCode(secret, Date.now())], { env });
        expect(r.code, `${email}: ${r.stderr}`).toBe(0);
      }),
    );
  }

  it('installs the new key as the key file, keeps the old one, re-encrypts; an interrupted rotation is finished by `keys rotate`', async () => {
    const first = join(scratch.tdb.dir, 'first.key');
    expect((await runCli(['keys', 'generate', first], { env })).code).toBe(0);
    // Nothing to finish yet: a usage error that names the real next step.
    const nothing = await runCli(['keys', 'rotate'], { env });
    expect(nothing.code).toBe(64);
    expect(nothing.stderr).toContain('--new-key-file');

    // An interruption right after the key file changed (what a crash during `keys rotate` leaves behind).
    installKeyFile(keyFile, first);
    expect(readFileSync(`${keyFile}.old`, 'utf8').trim()).toBe(TEST_KEY);
    expect(readFileSync(keyFile, 'utf8')).toBe(readFileSync(first, 'utf8'));
    await everyoneSignsIn(); // rows still under the old key: read with <key file>.old

    // A rotation to yet another key must wait until this one is finished — and says how.
    const second = join(scratch.tdb.dir, 'second.key');
    expect((await runCli(['keys', 'generate', second], { env })).code).toBe(0);
    const early = await runCli(['keys', 'rotate', '--new-key-file', second], { env });
    expect(early.code).toBe(78);
    expect(early.stderr).toContain('an earlier rotation has not finished');
    expect(early.stderr).toContain('hint: Finish it first: run `mail2fa keys rotate` without --new-key-file');
    expect(early.stderr).not.toContain('recover');

    const finish = await runCli(['--json', 'keys', 'rotate'], { env });
    expect(finish.code, finish.stderr).toBe(0);
    expect(JSON.parse(finish.stdout)).toMatchObject({ ok: true, reencrypted: 6 }); // 5 secrets + the code-hash key
    const check = await runCli(['keys', 'check'], { env });
    expect(check.code, check.stdout).toBe(0);
    await everyoneSignsIn();

    // Now the second rotation, in one command: installed, re-encrypted, the first key kept as .old.
    const r = await runCli(['keys', 'rotate', '--new-key-file', second], { env });
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain(`The new key is now the key file ${keyFile}; the old key is kept as ${keyFile}.old`);
    expect(readFileSync(keyFile, 'utf8')).toBe(readFileSync(second, 'utf8'));
    expect(readFileSync(`${keyFile}.old`, 'utf8')).toBe(readFileSync(first, 'utf8'));
    await everyoneSignsIn();
    expect((await runCli(['keys', 'check'], { env })).code).toBe(0);
  });

  it('a value under a key nobody holds: 78 naming the key id and where keys are looked for, never `recover`', async () => {
    const elsewhere = join(scratch.tdb.dir, 'unrelated.key');
    expect((await runCli(['keys', 'generate', elsewhere], { env })).code).toBe(0);
    const [email, secret] = [...secrets][0]!;
    const r = await runCli(['verify', email, '--code', totpCode(secret, Date.now() + 10 * 30_000)], {
      env: { ...env, MAIL2FA_KEY_FILE: elsewhere },
    });
    expect(r.code).toBe(78);
    expect(r.stderr).toMatch(/was encrypted with key [0-9a-f]{16}/);
    expect(r.stderr).toContain('<key file>.old');
    expect(r.stderr).not.toContain('recover');
    const check = await runCli(['keys', 'check'], { env: { ...env, MAIL2FA_KEY_FILE: elsewhere } });
    expect(check.code).toBe(78);
    expect(check.stdout + check.stderr).not.toContain('recover');
  });
});
