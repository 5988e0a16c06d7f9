/**
 * What a person does in the webmail, as small steps over Playwright: sign in, open Settings › Two-Factor
 * Authentication, read a QR code off the screen with a "camera" (a screenshot decoded from its pixels), and an
 * authenticator app that computes codes from the decoded secret (RFC 6238 written out here, independent of
 * mail2fa's own TOTP code) and, like a person, never types the same code twice.
 */
import { createHmac } from 'node:crypto';
import { join } from 'node:path';
import jsQRModule from 'jsqr';
import type { Browser, BrowserContext, Locator, Page } from 'playwright-core';
import { expect } from 'vitest';
import { ARTIFACTS } from './stack.js';

// jsqr is CommonJS with a TypeScript `export default` (see test/helpers/qr-screen.ts).
type JsQR = typeof jsQRModule.default;
const jsQR: JsQR = (jsQRModule as unknown as { default?: JsQR }).default ?? (jsQRModule as unknown as JsQR);

/** expect.poll with a patience that fits a busy machine (vitest's default is 1 s). */
export function eventually<T>(read: () => Promise<T> | T) {
  return expect.poll(read, { timeout: 30_000, interval: 100 });
}

export async function newPerson(
  browser: Browser,
  o: { locale?: string } = {},
): Promise<{ context: BrowserContext; page: Page }> {
  const context = await browser.newContext({
    locale: o.locale ?? 'en-US',
    viewport: { width: 1280, height: 800 },
    timezoneId: 'UTC',
  });
  const page = await context.newPage();
  page.setDefaultTimeout(30_000);
  return { context, page };
}

/** A screenshot of the whole window, kept as a test artifact. */
export async function shot(page: Page, name: string): Promise<void> {
  await page.screenshot({ path: join(ARTIFACTS, `${name}.png`) });
}

/** Types address and password into Roundcube's sign-in form and submits it; returns the HTTP status of the answer. */
export async function signIn(page: Page, url: string, email: string, password: string): Promise<number> {
  if (
    !(await page
      .locator('#rcmloginuser')
      .isVisible()
      .catch(() => false))
  )
    await page.goto(url);
  await page.fill('#rcmloginuser', email);
  await page.fill('#rcmloginpwd', password);
  const [response] = await Promise.all([page.waitForNavigation(), page.click('#rcmloginsubmit')]);
  return response?.status() ?? 0;
}

/**
 * Roundcube's client ignores clicks while it is loading or busy with a request, and a request still in flight
 * (unread counts, quota) can write the session back after a sign-out: wait until the page is quiet, as a person
 * who reads the screen before clicking would.
 */
export async function settled(page: Page): Promise<void> {
  await page.waitForLoadState('networkidle');
  await page.waitForFunction(() => {
    const rc = (globalThis as unknown as { rcmail?: { loaded?: boolean; busy?: boolean } }).rcmail;
    return rc?.loaded === true && !rc.busy;
  });
}

export async function expectMailView(page: Page): Promise<void> {
  await eventually(() => page.url()).toContain('_task=mail');
  await page.locator('#messagelist').waitFor({ state: 'attached' });
  await settled(page);
}

export async function expectLoginPage(page: Page): Promise<void> {
  await page.locator('#rcmloginuser').waitFor();
}

export async function signOut(page: Page): Promise<void> {
  await settled(page);
  await Promise.all([page.waitForNavigation(), page.click('#taskmenu a.logout')]);
  await expectLoginPage(page);
}

/** Settings › Two-Factor Authentication (a plugin section: Elastic shows it as a whole page, not in the frame). */
export async function openTwoFactorSettings(page: Page, title = 'Two-Factor Authentication'): Promise<Page> {
  await settled(page);
  if (!(await page.locator('#settings-menu').isVisible())) await page.click('#taskmenu a.settings');
  await page.locator('#settings-menu').waitFor();
  await settled(page);
  await page.locator('#settings-menu').getByText(title, { exact: true }).click();
  await page.locator('#mail2fa-settings').waitFor();
  return page;
}

/** Types the code at the sign-in code step and submits it. */
export async function submitSignInCode(page: Page, code: string): Promise<void> {
  await page.fill('#mail2fa-code', code);
  await Promise.all([page.waitForNavigation(), page.click('#mail2fa-submit')]);
}

/** The "camera": decodes the QR code shown by `element` from a screenshot's pixels. */
export async function scanQr(page: Page, element: Locator): Promise<string> {
  const png = await element.screenshot();
  // Turn the PNG into RGBA pixels with the browser's own image decoder, on a blank page of the same browser.
  const blank = await page.context().newPage();
  try {
    const img = await blank.evaluate(async (b64: string) => {
      // Browser globals, typed here because the test project has no DOM library.
      interface Bitmap {
        width: number;
        height: number;
      }
      interface Canvas2d {
        drawImage(b: Bitmap, x: number, y: number): void;
        getImageData(x: number, y: number, w: number, h: number): { data: Uint8ClampedArray };
      }
      const g = globalThis as unknown as {
        createImageBitmap(b: Blob): Promise<Bitmap>;
        OffscreenCanvas: new (w: number, h: number) => { getContext(kind: '2d'): Canvas2d | null };
      };
      const blob = await (await fetch(`data:image/png;base64,${b64}`)).blob();
      const bitmap = await g.createImageBitmap(blob);
      const ctx = new g.OffscreenCanvas(bitmap.width, bitmap.height).getContext('2d')!;
      ctx.drawImage(bitmap, 0, 0);
      const data = ctx.getImageData(0, 0, bitmap.width, bitmap.height).data;
      let bin = '';
      for (let i = 0; i < data.length; i += 0x8000) bin += String.fromCharCode(...data.subarray(i, i + 0x8000));
      return { width: bitmap.width, height: bitmap.height, rgba: btoa(bin) };
    }, png.toString('base64'));
    const decoded = jsQR(new Uint8ClampedArray(Buffer.from(img.rgba, 'base64')), img.width, img.height);
    if (!decoded) throw new Error(`no QR code found in the ${img.width}×${img.height} screenshot`);
    return decoded.data;
  } finally {
    await blank.close();
  }
}

function base32Decode(s: string): Buffer {
  const alphabet = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';
  let bits = 0;
  let value = 0;
  const out: number[] = [];
  for (const ch of s.replace(/=+$/, '').toUpperCase()) {
    const i = alphabet.indexOf(ch);
    if (i < 0) throw new Error(`not base32: ${ch}`);
    value = (value << 5) | i;
    bits += 5;
    if (bits >= 8) {
      out.push((value >>> (bits - 8)) & 0xff);
      bits -= 8;
    }
  }
  return Buffer.from(out);
}

/** RFC 6238 with SHA-1, 6 digits, 30 s — what Microsoft/Google Authenticator compute. */
export function totp(secret: string, step: number): string {
  const counter = Buffer.alloc(8);
  counter.writeBigUInt64BE(BigInt(step));
  const mac = createHmac('sha1', base32Decode(secret)).update(counter).digest();
  const offset = mac[mac.length - 1]! & 0x0f;
  const n = (mac.readUInt32BE(offset) & 0x7fffffff) % 1_000_000;
  return n.toString().padStart(6, '0');
}

/**
 * An authenticator app holding one secret. `next()` gives a code for a time step later than every code given
 * before and inside the ±1-step window of now (waiting for the clock only when both cannot hold), so a journey
 * can confirm, sign in and disable back to back without tripping mail2fa's replay protection.
 */
export class Authenticator {
  private lastStep = -Infinity;
  constructor(readonly secret: string) {}

  static fromUri(uri: string): Authenticator {
    const u = new URL(uri);
    expect(u.protocol).toBe('otpauth:');
    expect(u.host).toBe('totp');
    const secret = u.searchParams.get('secret');
    if (!secret) throw new Error(`no secret in ${uri}`);
    return new Authenticator(secret);
  }

  async next(): Promise<string> {
    for (;;) {
      const nowMs = Date.now();
      const now = Math.floor(nowMs / 30_000);
      const left = (now + 1) * 30_000 - nowMs;
      // Too close to the next step, a code for the previous step could fall out of the window while it travels.
      const step = Math.max(this.lastStep + 1, left > 10_000 ? now - 1 : now);
      if (step <= now + 1) {
        this.lastStep = step;
        return totp(this.secret, step);
      }
      await new Promise((r) => setTimeout(r, left + 50));
    }
  }

  /** The code given last (for the replay test). */
  last(): string {
    return totp(this.secret, this.lastStep);
  }
}
