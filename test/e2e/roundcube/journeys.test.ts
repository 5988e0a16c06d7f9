/**
 * The user flows in a real webmail: Debian's Roundcube with this repository's
 * mail2fa plugin, Dovecot as its IMAP server, `mail2fa serve` on a Unix socket and Debian's Chromium, all on
 * loopback (stack.ts). One journey per flow, as a person would do it; screenshots of each step go to
 * test-artifacts/roundcube/ (MAIL2FA_E2E_ARTIFACTS).
 *
 * Needs the built binary (`npm run build`), roundcube-core + php-cli + php-sqlite3, dovecot-imapd and chromium.
 */
import { randomBytes } from 'node:crypto';
import { readFileSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterAll, beforeAll, describe, expect, it, vi } from 'vitest';
import { addMailbox } from '../../helpers/context.js';
import { lastOutboxCode, outboxMessages } from '../../helpers/enrolment.js';
import { enrolTotp, PASSWORD } from '../../helpers/seed-2fa.js';
import {
  Authenticator,
  eventually,
  expectLoginPage,
  expectMailView,
  newPerson,
  openTwoFactorSettings,
  settled,
  scanQr,
  shot,
  signIn,
  signOut,
  submitSignInCode,
  totp,
} from './person.js';
import { phpString, SKIP_WEBMAIL, startStack, type Stack } from './stack.js';

// Generous: the journeys drive a real browser on a shared 2-core machine.
vi.setConfig({ testTimeout: 240_000, hookTimeout: 90_000 });

let stack: Stack;

beforeAll(async () => {
  if (!SKIP_WEBMAIL) stack = await startStack();
});

afterAll(async () => {
  await stack?.stop();
});

/** Adds a mailbox (2FA off) that Dovecot accepts with PASSWORD. */
async function mailbox(email: string): Promise<void> {
  await addMailbox(stack.ctx, email, PASSWORD);
  stack.syncPasswords();
}

/** One journey: a failure carries the tail of PHP's, Roundcube's and serve's logs. */
function journey(title: string, body: () => Promise<void>): void {
  it(title, () =>
    body().catch((err: Error) => {
      err.message += `\n${stack.logs()}`;
      throw err;
    }),
  );
}

(SKIP_WEBMAIL ? describe.skip : describe)('Roundcube + mail2fa: the user flows end to end', () => {
  journey(
    'enable with the app: QR code scanned from the screen, signed out everywhere, a code at sign-in, replay refused, disable',
    async () => {
      const email = 'alice@example.com';
      await mailbox(email);
      const { context, page } = await newPerson(stack.browser);
      // A second browser (another device) signed in before 2FA is turned on: it must be signed out too.
      const other = await newPerson(stack.browser);
      try {
        await signIn(other.page, stack.url, email, PASSWORD);
        await expectMailView(other.page);

        expect(await signIn(page, stack.url, email, PASSWORD)).toBe(200);
        await expectMailView(page);
        await shot(page, '01-signed-in');

        let settingsPage = await openTwoFactorSettings(page);
        await eventually(() => settingsPage.locator('#mail2fa-status').textContent()).toContain('Off');
        await eventually(() => settingsPage.locator('#mail2fa-lost').textContent()).toContain(
          'Write to customer service',
        );
        expect(await settingsPage.locator('#mail2fa-support').getAttribute('href')).toBe('mailto:support@example.com');
        await shot(page, '02-settings-2fa-off');

        // Wrong password first: refused, nothing shown.
        await settingsPage.locator('#mail2fa-password-app').fill('not my password');
        await settingsPage.locator('#mail2fa-enable-app-submit').click();
        await eventually(() => settingsPage.locator('#mail2fa-message').textContent()).toContain(
          'password is not correct',
        );
        expect(await settingsPage.locator('#mail2fa-qr').count()).toBe(0);

        await settingsPage.locator('#mail2fa-password-app').fill(PASSWORD);
        await settingsPage.locator('#mail2fa-enable-app-submit').click();
        const qr = settingsPage.locator('#mail2fa-qr');
        await qr.waitFor();
        await shot(page, '03-enable-app-qr');

        // The phone's camera: the QR code decoded from the screenshot's pixels.
        const uri = await scanQr(page, qr);
        expect(uri).toMatch(/^otpauth:\/\/totp\//);
        expect(decodeURIComponent(uri)).toContain(email);
        const app = Authenticator.fromUri(uri);
        // The secret for manual entry, in groups, is the same secret.
        const grouped = (await settingsPage.locator('#mail2fa-secret').textContent())!;
        expect(grouped.replace(/\s+/g, '')).toBe(app.secret);
        expect(grouped).toMatch(/^[A-Z2-7]{4}( [A-Z2-7]{4})+$/);
        expect(Buffer.from(app.secret, 'ascii').length).toBe(32); // 20 bytes = 160 bits

        await settingsPage.locator('#mail2fa-code-confirm').fill(await app.next());
        await settingsPage.locator('#mail2fa-confirm-submit').click();
        const codes = settingsPage.locator('#mail2fa-recovery-codes li');
        await codes.first().waitFor();
        const recoveryCodes = await codes.allTextContents();
        expect(recoveryCodes).toHaveLength(10);
        await eventually(() => settingsPage.locator('#mail2fa-enabled').textContent()).toContain(
          'You will be signed out',
        );
        await shot(page, '04-enable-app-recovery-codes');

        // The other device's next click lands on the sign-in page.
        await other.page.click('#taskmenu a.settings');
        await expectLoginPage(other.page);
        await eventually(() => other.page.locator('#messagestack').textContent()).toContain('you have been signed out');

        await Promise.all([page.waitForNavigation(), settingsPage.locator('#mail2fa-signout').click()]);
        await expectLoginPage(page);

        // Sign in: the password is not enough any more.
        await signIn(page, stack.url, email, PASSWORD);
        await page.locator('#mail2fa-code').waitFor();
        expect(await page.locator('#mail2fa-code-form').isVisible()).toBe(true);
        await shot(page, '05-sign-in-code-step');

        // Half-open: no mail request is served before the code.
        const ajax = await page.evaluate(async () => {
          const token = (globalThis as unknown as { rcmail: { env: { request_token: string } } }).rcmail.env
            .request_token;
          const r = await fetch('./?_task=mail&_action=list&_mbox=INBOX&_remote=1', {
            headers: { 'X-Roundcube-Request': token },
          });
          return { status: r.status, body: await r.text() };
        });
        expect(ajax.status).toBe(403);
        expect(ajax.body).not.toContain('messagelist');
        await page.goto(`${stack.url}/?_task=mail&_mbox=INBOX`);
        expect(await page.locator('#messagelist').count()).toBe(0);
        await page.locator('#mail2fa-code').waitFor();

        const code = await app.next();
        await submitSignInCode(page, code);
        await expectMailView(page);
        await shot(page, '06-signed-in-with-code');

        // Replay: the same code again, on a new sign-in, is refused.
        await signOut(page);
        await signIn(page, stack.url, email, PASSWORD);
        await submitSignInCode(page, code);
        await eventually(() => page.locator('#mail2fa-message').textContent()).toContain('not correct');
        await shot(page, '07-replayed-code-refused');
        // A recovery code instead (the phone is elsewhere): once.
        await submitSignInCode(page, recoveryCodes[0]!);
        await expectMailView(page);

        settingsPage = await openTwoFactorSettings(page);
        await eventually(() => settingsPage.locator('#mail2fa-status').textContent()).toContain('Authenticator app');
        expect(await settingsPage.locator('#mail2fa-status').textContent()).toMatch(/Recovery codes left\s*9/);
        await shot(page, '08-settings-2fa-on');

        // New recovery codes (password + a recovery code): the old ones stop working.
        await settingsPage.locator('#mail2fa-password-regenerate').fill(PASSWORD);
        await settingsPage.locator('#mail2fa-code-regenerate').fill(recoveryCodes[1]!);
        await settingsPage.locator('#mail2fa-regenerate-submit').click();
        const fresh = settingsPage.locator('#mail2fa-regenerated li');
        await fresh.first().waitFor();
        const newCodes = await fresh.allTextContents();
        expect(newCodes).toHaveLength(10);
        expect(newCodes.filter((c) => recoveryCodes.includes(c))).toEqual([]);

        // Disable: password and a current code.
        settingsPage = await openTwoFactorSettings(page);
        expect(await settingsPage.locator('#mail2fa-status').textContent()).toMatch(/Recovery codes left\s*10/);
        await settingsPage.locator('#mail2fa-password-disable').fill(PASSWORD);
        await settingsPage.locator('#mail2fa-code-disable').fill(recoveryCodes[2]!);
        await settingsPage.locator('#mail2fa-disable-submit').click();
        await eventually(() => settingsPage.locator('#mail2fa-message').textContent()).toContain('not correct');
        await settingsPage.locator('#mail2fa-password-disable').fill(PASSWORD);
        await settingsPage.locator('#mail2fa-code-disable').fill(await app.next());
        await settingsPage.locator('#mail2fa-disable-submit').click();
        await eventually(() => settingsPage.locator('#mail2fa-disabled').textContent()).toContain(
          'has now been disabled',
        );
        await shot(page, '09-disabled');
        await Promise.all([page.waitForNavigation(), settingsPage.locator('#mail2fa-signout').click()]);
        await expectLoginPage(page);

        // Without the phone nearby: the password alone signs in again.
        await signIn(page, stack.url, email, PASSWORD);
        await expectMailView(page);
      } finally {
        await other.context.close();
        await context.close();
      }
    },
  );

  journey(
    'enable with SMS: phone as 011-CC-number, texted code from the outbox, then a texted code at every sign-in',
    async () => {
      const email = 'gina@example.com';
      await mailbox(email);
      // The site's default: the revocation check is cached for 30 s.
      stack.setPluginConfig({ mail2fa_revocation_check_interval: '30' });
      const { context, page } = await newPerson(stack.browser);
      try {
        await signIn(page, stack.url, email, PASSWORD);
        await expectMailView(page);
        const settingsPage = await openTwoFactorSettings(page);

        // The documented example number is not a valid Danish number: mail2fa says why.
        await settingsPage.locator('#mail2fa-password-sms').fill(PASSWORD);
        await settingsPage.locator('#mail2fa-phone').fill('011-45-12345678');
        await settingsPage.locator('#mail2fa-enable-sms-submit').click();
        await eventually(() => settingsPage.locator('#mail2fa-message').textContent()).toContain(
          'phone number is not valid',
        );
        await shot(page, '10-enable-sms-invalid-number');

        const before = outboxMessages(stack.outbox).length;
        await settingsPage.locator('#mail2fa-password-sms').fill(PASSWORD);
        await settingsPage.locator('#mail2fa-phone').fill('011-45-20123456');
        await settingsPage.locator('#mail2fa-enable-sms-submit').click();
        await eventually(() => settingsPage.locator('#mail2fa-confirm').textContent()).toContain('+45 ****3456');
        expect(outboxMessages(stack.outbox).length).toBe(before + 1);
        expect(outboxMessages(stack.outbox).at(-1)!.to).toBe('+4520123456');
        await shot(page, '11-enable-sms-code-sent');

        await settingsPage.locator('#mail2fa-code-confirm').fill(lastOutboxCode(stack.outbox));
        await settingsPage.locator('#mail2fa-confirm-submit').click();
        await settingsPage.locator('#mail2fa-recovery-codes li').first().waitFor();
        await eventually(() => settingsPage.locator('#mail2fa-enabled').textContent()).toContain('code we text you');
        // Not pressing "Sign out": the next click signs out anyway, cache or not.
        await settled(page);
        await page.click('#taskmenu a.mail');
        await expectLoginPage(page);

        // Sign in: "Send me a code", the code from the outbox.
        await signIn(page, stack.url, email, PASSWORD);
        await page.locator('#mail2fa-send').waitFor();
        await Promise.all([page.waitForNavigation(), page.click('#mail2fa-send')]);
        await eventually(() => page.locator('#mail2fa-message').textContent()).toContain(
          'We sent a code to +45 ****3456',
        );
        await shot(page, '12-sign-in-sms-code-sent');
        await submitSignInCode(page, lastOutboxCode(stack.outbox));
        await expectMailView(page);

        // Disable with a texted code ("send me a code", then password + code).
        const settings = await openTwoFactorSettings(page);
        await eventually(() => settings.locator('#mail2fa-status').textContent()).toContain(
          'Text message to +45 ****3456',
        );
        await settings.locator('#mail2fa-password-disable').fill(PASSWORD);
        await settings.locator('#mail2fa-disable-send').click();
        await eventually(() => settings.locator('#mail2fa-message').textContent()).toContain('We sent a code');
        await settings.locator('#mail2fa-password-disable').fill(PASSWORD);
        await settings.locator('#mail2fa-code-disable').fill(lastOutboxCode(stack.outbox));
        await settings.locator('#mail2fa-disable-submit').click();
        await eventually(() => settings.locator('#mail2fa-disabled').textContent()).toContain('has now been disabled');
      } finally {
        stack.setPluginConfig({ mail2fa_revocation_check_interval: '0' });
        await context.close();
      }
    },
  );

  journey('five wrong codes lock the account; the right code is refused while locked (in Danish)', async () => {
    const email = 'bob@example.com';
    const { secret } = await enrolTotp(stack.ctx, email);
    stack.syncPasswords();
    // The plugin's settings from mail2fa.inc.php in Roundcube's config directory (as documented).
    const pluginConfigFile = join(stack.roundcubeDir, 'config/mail2fa.inc.php');
    writeFileSync(pluginConfigFile, "<?php\n$config['mail2fa_support_contact'] = 'https://help.example.com/2fa';\n");
    stack.setPluginConfig({ mail2fa_support_contact: null });
    const { context, page } = await newPerson(stack.browser, { locale: 'da-DK' });
    try {
      await signIn(page, stack.url, email, PASSWORD);
      await page.locator('#mail2fa-code').waitFor();
      expect(await page.locator('.mail2fa-signin').textContent()).toContain('To-faktor-godkendelse');
      expect(await page.locator('#mail2fa-lost').textContent()).toContain('Mistet din telefon? Skriv til kundeservice');
      expect(await page.locator('#mail2fa-support').getAttribute('href')).toBe('https://help.example.com/2fa');
      const right = totp(secret, Math.floor(Date.now() / 30_000));
      const wrong = right === '000000' ? '111111' : '000000';
      for (let i = 1; i <= 4; i++) {
        await submitSignInCode(page, wrong);
        await eventually(() => page.locator('#mail2fa-message').textContent()).toContain(`${5 - i} forsøg tilbage`);
      }
      await submitSignInCode(page, wrong);
      await eventually(() => page.locator('#mail2fa-message').textContent()).toMatch(
        /Kontoen er låst indtil \d{4}-\d{2}-\d{2} \d{2}:\d{2}/,
      );
      await shot(page, '13-locked-after-five-wrong-codes-da');
      await submitSignInCode(page, totp(secret, Math.floor(Date.now() / 30_000)));
      await eventually(() => page.locator('#mail2fa-message').textContent()).toContain('Kontoen er låst');
      expect(await page.locator('#messagelist').count()).toBe(0);
      const status = await stack.cli(['status', email, '--json']);
      expect(JSON.parse(status.stdout).accounts[0].lockedUntil).toMatch(/^\d{4}-/);
      // Each refusal is in mail2fa's audit log, acted by the webmail, with the end user's address and browser.
      const audit = JSON.parse((await stack.cli(['audit', '--account', email, '--json'])).stdout) as {
        events: Array<{ actor: string; action: string; outcome: string; detail: Record<string, unknown> | null }>;
      };
      const refusals = audit.events.filter((e) => e.action === 'verify' && e.outcome === 'refused');
      expect(refusals.length).toBeGreaterThanOrEqual(6);
      for (const e of refusals) {
        expect(e.actor).toBe('serve:roundcube');
        expect(e.detail).toMatchObject({ ip: '127.0.0.1' });
        expect(String(e.detail?.userAgent)).toContain('Chrome');
      }
    } finally {
      rmSync(pluginConfigFile, { force: true });
      stack.setPluginConfig({ mail2fa_support_contact: phpString('mailto:support@example.com') });
      await context.close();
    }
  });

  journey(
    "customer service's recover signs the user out at the next click; the temporary code signs in once, straight to setup",
    async () => {
      const email = 'frank@example.net';
      const { secret } = await enrolTotp(stack.ctx, email);
      stack.syncPasswords();
      const app = new Authenticator(secret);
      const { context, page } = await newPerson(stack.browser);
      try {
        await signIn(page, stack.url, email, PASSWORD);
        await submitSignInCode(page, await app.next());
        await expectMailView(page);

        const r = await stack.cli([
          'recover',
          email,
          '--ticket',
          'T-4711',
          '--reason',
          'lost phone',
          '--temporary-code',
          '--yes',
          '--json',
        ]);
        expect(r.code, r.stderr).toBe(0);
        const temporary = JSON.parse(r.stdout).temporaryCode.code as string;

        await page.click('#taskmenu a.settings');
        await expectLoginPage(page);
        await eventually(() => page.locator('#messagestack').textContent()).toContain('you have been signed out');
        await shot(page, '14-signed-out-after-recover');

        await signIn(page, stack.url, email, PASSWORD);
        await page.locator('#mail2fa-code').waitFor();
        expect(await page.locator('.mail2fa-intro').textContent()).toContain('temporary code');
        // The lost phone's codes no longer work.
        await submitSignInCode(page, await app.next());
        await eventually(() => page.locator('#mail2fa-message').textContent()).toContain('not correct');
        await submitSignInCode(page, temporary);
        await eventually(() => page.url()).toContain('plugin.mail2fa');
        await page.locator('#mail2fa-enable-app').waitFor();
        await shot(page, '15-temporary-code-then-setup');

        // The temporary code works once.
        await signOut(page);
        await signIn(page, stack.url, email, PASSWORD);
        await submitSignInCode(page, temporary);
        await eventually(() => page.locator('#mail2fa-message').textContent()).toContain('not correct');
      } finally {
        await context.close();
      }
    },
  );

  journey('fails closed: with mail2fa serve down nobody is let in, signed-in sessions get a clear page', async () => {
    const email = 'henry@example.com';
    await mailbox(email);
    const { context, page } = await newPerson(stack.browser);
    try {
      await signIn(page, stack.url, email, PASSWORD);
      await expectMailView(page);
      await stack.stopServe();
      try {
        // Signed in: the next click is answered with the "unavailable" page, not with mail.
        const res = await page.goto(`${stack.url}/?_task=mail&_mbox=INBOX`);
        expect(res?.status()).toBe(503);
        await eventually(() => page.locator('#mail2fa-message').textContent()).toContain('cannot be checked right now');
        expect(await page.locator('#messagelist').count()).toBe(0);

        // A new sign-in (2FA off, but mail2fa cannot say so): refused, and no session is left behind.
        const fresh = await newPerson(stack.browser);
        try {
          expect(await signIn(fresh.page, stack.url, email, PASSWORD)).toBe(503);
          await shot(fresh.page, '16-fail-closed');
          await fresh.page.goto(`${stack.url}/?_task=mail`);
          await expectLoginPage(fresh.page);
        } finally {
          await fresh.context.close();
        }
      } finally {
        await stack.startServe();
      }
      // Back up: the same session goes on.
      await page.goto(`${stack.url}/?_task=mail&_mbox=INBOX`);
      await expectMailView(page);
    } finally {
      await context.close();
    }
  });

  journey(
    'serve over loopback TCP with a bearer token; a wrong token fails closed; only the explicit fail-open setting lets users in while serve is down',
    async () => {
      const email = 'ivan@example.com';
      const { secret } = await enrolTotp(stack.ctx, email);
      stack.syncPasswords();
      const app = new Authenticator(secret);
      const tokenFile = join(stack.db.dir, 'serve.token');
      writeFileSync(tokenFile, `${randomBytes(24).toString('hex')}\n`, { mode: 0o640 });
      const wrongTokenFile = join(stack.db.dir, 'wrong.token');
      writeFileSync(wrongTokenFile, `${randomBytes(24).toString('hex')}\n`, { mode: 0o640 });
      const tcp = await stack.startTcpServe(tokenFile);
      const { context, page } = await newPerson(stack.browser);
      try {
        stack.setPluginConfig({ mail2fa_serve: phpString(tcp.url), mail2fa_token_file: phpString(tokenFile) });
        await signIn(page, stack.url, email, PASSWORD);
        await submitSignInCode(page, await app.next());
        await expectMailView(page);
        await signOut(page);

        // The wrong token: serve answers 401, and the plugin lets nobody in.
        stack.setPluginConfig({ mail2fa_token_file: phpString(wrongTokenFile) });
        expect(await signIn(page, stack.url, email, PASSWORD)).toBe(503);
        await eventually(() => page.locator('#mail2fa-message').textContent()).toContain('cannot be checked right now');

        // Serve down, fail_open explicitly on: the password alone signs in (logged), for 2FA users too.
        await tcp.stop();
        stack.setPluginConfig({ mail2fa_token_file: phpString(tokenFile), mail2fa_fail_open: 'true' });
        await page.goto(stack.url);
        await signIn(page, stack.url, email, PASSWORD);
        await expectMailView(page);
        expect(readFileSync(join(stack.roundcubeDir, 'logs/mail2fa.log'), 'utf8')).toContain(
          `FAIL OPEN: ${email} signed in without the 2FA check`,
        );
        await signOut(page);
        // fail_open must be exactly true: a truthy string does not count.
        stack.setPluginConfig({ mail2fa_fail_open: "'yes'" });
        expect(await signIn(page, stack.url, email, PASSWORD)).toBe(503);
      } finally {
        stack.setPluginConfig({
          mail2fa_serve: phpString(`unix://${stack.socket}`),
          mail2fa_token_file: null,
          mail2fa_fail_open: null,
        });
        await tcp.stop();
        await context.close();
      }
    },
  );

  journey(
    'an address mail2fa does not know is refused, unless the site allows unknown accounts explicitly',
    async () => {
      const email = 'judy@example.com';
      await mailbox(email);
      // Dovecot still knows her; mail2fa's mailbox table no longer does.
      const db = await stack.ctx.db();
      await db.knex('mailbox').where({ email }).delete();
      const { context, page } = await newPerson(stack.browser);
      try {
        expect(await signIn(page, stack.url, email, PASSWORD)).toBe(503);
        await eventually(() => page.locator('#mail2fa-message').textContent()).toContain(
          'not known to two-factor authentication',
        );
        stack.setPluginConfig({ mail2fa_unknown_accounts: "'allow'" });
        await page.goto(stack.url);
        await signIn(page, stack.url, email, PASSWORD);
        await expectMailView(page);
      } finally {
        stack.setPluginConfig({ mail2fa_unknown_accounts: null });
        await context.close();
      }
    },
  );

  journey(
    "moving off twofactor_gauthenticator: the old plugin's secret is asked for through the roundcube store, then migrate-from roundcube moves it, same app",
    async () => {
      const email = 'kate@example.com';
      await mailbox(email);
      const { context, page } = await newPerson(stack.browser);
      const roundcubeDb = join(stack.roundcubeDir, 'roundcube.db');
      const config = join(stack.db.dir, 'mail2fa-with-roundcube-store.json');
      writeFileSync(
        config,
        JSON.stringify({
          stores: [
            {
              name: 'roundcube',
              kind: 'roundcube',
              db: { url: `sqlite:${roundcubeDb}` },
              options: { pref_encrypt: false },
            },
          ],
        }),
      );
      const withStore = { MAIL2FA_CONFIG: config };
      const preferences = () => {
        const rc = new Database(roundcubeDb, { readonly: true });
        try {
          return (
            (
              rc.prepare('SELECT preferences FROM users WHERE username = ?').get(email) as {
                preferences: string | null;
              }
            ).preferences ?? ''
          );
        } finally {
          rc.close();
        }
      };
      try {
        // Her Roundcube row as the old plugin left it: a plaintext 80-bit secret inside users.preferences.
        // Written before any sign-in: a Roundcube request in flight saves its own copy of the preferences.
        const secret = Array.from(randomBytes(16), (b) => 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567'[b % 32]).join('');
        const rc = new Database(roundcubeDb);
        rc.prepare(
          "INSERT INTO users (username, mail_host, created, language, preferences) VALUES (?, '127.0.0.1', datetime('now'), 'en_US', ?)",
        ).run(
          email,
          `a:1:{s:24:"twofactor_gauthenticator";a:3:{s:6:"secret";s:16:"${secret}";s:8:"activate";b:1;s:14:"recovery_codes";a:0:{}}}`,
        );
        rc.close();

        // Step 1: mail2fa knows the old plugin as a store; the Roundcube plugin list is ['mail2fa'] only.
        await stack.stopServe();
        await stack.startServe(withStore);
        const app = new Authenticator(secret);
        await signIn(page, stack.url, email, PASSWORD);
        await page.locator('#mail2fa-code').waitFor();
        await submitSignInCode(page, await app.next());
        await expectMailView(page);
        await signOut(page);

        // Step 2: migrate-from roundcube moves the secret into mail2fa's encrypted store and clears the old copy.
        const migrated = await stack.cli(['migrate-from', 'roundcube', '--clear-source', '--yes'], { env: withStore });
        expect(migrated.code, migrated.stderr + migrated.stdout).toBe(0);
        const after = preferences();
        expect(after).not.toContain('twofactor_gauthenticator');
        expect(after).not.toContain(secret);
        expect(after).toMatch(/s:11:"client_hash";s:\d+:"[^"]+";/); // Roundcube's own setting (its first sign-in) kept
        const status = JSON.parse((await stack.cli(['status', email, '--json'])).stdout) as {
          accounts: Array<{ method: string; source: string }>;
        };
        expect(status.accounts[0]).toMatchObject({ method: 'totp', source: 'mail2fa' });

        // The same authenticator app signs her in, now from mail2fa's own store (even without the store configured).
        await stack.stopServe();
        await stack.startServe();
        await signIn(page, stack.url, email, PASSWORD);
        await page.locator('#mail2fa-code').waitFor();
        await submitSignInCode(page, await app.next());
        await expectMailView(page);
      } finally {
        await stack.stopServe();
        await stack.startServe();
        await context.close();
      }
    },
  );
});
