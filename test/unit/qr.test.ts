import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import pty from 'node-pty';
import qrcodeTerminal from 'qrcode-terminal';
import { QR_QUIET_ZONE, qrMatrix, renderQrForTerminal } from '../../src/totp/qr.js';
import { generateTotpSecret, otpauthUri } from '../../src/totp/totp.js';
import { decodeQrFromScreen } from '../helpers/qr-screen.js';

const ANSI = /\x1b\[[0-9;]*m/g;
const stripAnsi = (s: string) => s.replace(ANSI, '');

const uri = otpauthUri({ issuer: 'Example Mail', label: 'anna.berg+2fa@example.com', secret: generateTotpSecret() });

describe('renderQrForTerminal', () => {
  const out = renderQrForTerminal(uri);
  const lines = out.split('\n');

  it('decodes back to the exact otpauth URI', () => {
    expect(decodeQrFromScreen(out)).toBe(uri);
  });

  it('gives every line explicit colours (black on bright white) and resets at the end', () => {
    for (const line of lines) {
      expect(line.startsWith('\x1b[30;107m')).toBe(true);
      expect(line.endsWith('\x1b[0m')).toBe(true);
      // No glyph outside the coloured span: exactly the one colour code and the one reset.
      expect(line.match(ANSI)).toEqual(['\x1b[30;107m', '\x1b[0m']);
      expect(stripAnsi(line)).toMatch(/^[\u2580\u2584\u2588 ]+$/);
    }
    expect(out.endsWith('\n')).toBe(false);
  });

  it('has a 4-module light quiet zone on every side and two module rows per line', () => {
    const n = qrMatrix(uri).length;
    const size = n + 2 * QR_QUIET_ZONE;
    expect(lines).toHaveLength(Math.ceil(size / 2));
    const plain = lines.map(stripAnsi);
    for (const l of plain) expect([...l]).toHaveLength(size);
    // Top 4 module rows = 2 text lines, all light.
    expect(plain[0]).toBe(' '.repeat(size));
    expect(plain[1]).toBe(' '.repeat(size));
    // Left and right 4 columns light on every line; bottom: the last 4 module rows light.
    for (const l of plain) {
      expect(l.slice(0, 4)).toBe('    ');
      expect(l.slice(-4)).toBe('    ');
    }
    // n is odd, so size is odd: module rows n+4 … n+7 are the bottom quiet zone; the last line's lower half is
    // beyond the code and light too. Text line k holds module rows 2k and 2k+1.
    expect(size % 2).toBe(1);
    expect(plain.at(-1)).toBe(' '.repeat(size)); // rows size-1 (and nothing)
    expect(plain.at(-2)).toBe(' '.repeat(size)); // rows size-3, size-2
    const lastCodeLine = plain.at(-3)!; // rows n+3 (last code row) and n+4 (quiet)
    expect(lastCodeLine).not.toMatch(/[\u2584\u2588]/);
    expect(lastCodeLine).toMatch(/\u2580/);
  });

  it('honours a custom quiet zone', () => {
    const n = qrMatrix(uri).length;
    const wide = renderQrForTerminal(uri, { quietZone: 6 }).split('\n');
    expect([...stripAnsi(wide[0]!)]).toHaveLength(n + 12);
    expect(decodeQrFromScreen(wide.join('\n'))).toBe(uri);
    expect(() => renderQrForTerminal(uri, { quietZone: -1 })).toThrow(RangeError);
  });

  it('uses error correction level M', () => {
    // Format information: row 8, columns 0-5, 7, 8 and (7,8), (5..0, 8); the top two bits are the EC level
    // after unmasking with 101010000010010. M = 00, L = 01, H = 10, Q = 11.
    const m = qrMatrix(uri);
    const bits: boolean[] = [];
    for (const c of [0, 1, 2, 3, 4, 5, 7, 8]) bits.push(m[8]![c]!);
    for (const r of [7, 5, 4, 3, 2, 1, 0]) bits.push(m[r]![8]!);
    const raw = bits.reduce((acc, b) => (acc << 1) | (b ? 1 : 0), 0);
    const format = raw ^ 0b101010000010010;
    expect(format >> 13).toBe(0b00);
    const low = qrMatrix(uri, 'L');
    const bitsL: boolean[] = [];
    for (const c of [0, 1, 2, 3, 4, 5, 7, 8]) bitsL.push(low[8]![c]!);
    for (const r of [7, 5, 4, 3, 2, 1, 0]) bitsL.push(low[r]![8]!);
    expect((bitsL.reduce((acc, b) => (acc << 1) | (b ? 1 : 0), 0) ^ 0b101010000010010) >> 13).toBe(0b01);
  });

  it('round-trips texts of many lengths (QR versions 1 to 10+) and UTF-8', () => {
    for (let len = 1; len <= 300; len += 7) {
      const text = `otpauth://totp/${'x'.repeat(len)}`;
      expect(decodeQrFromScreen(renderQrForTerminal(text))).toBe(text);
    }
    const utf8 = 'Jürgen — 二要素認証 ✓';
    expect(decodeQrFromScreen(renderQrForTerminal(utf8))).toBe(utf8);
  });

  it('refuses text too long for any QR code with a clear error', () => {
    expect(() => renderQrForTerminal('x'.repeat(5000))).toThrow(/too long/);
  });
});

describe('decodeQrFromScreen', () => {
  const out = renderQrForTerminal(uri);

  it('decodes a plain capture without colour codes', () => {
    expect(decodeQrFromScreen(stripAnsi(out))).toBe(uri);
  });

  it('finds the code among other text, prompts, CR LF and cursor sequences', () => {
    const screen = [
      '\x1b[?25l\x1b[1mEnable two-factor authentication\x1b[22m for anna.berg+2fa@example.com',
      'Scan this QR code with Microsoft or Google Authenticator:',
      '',
      out
        .split('\n')
        .map((l) => `  ${l}`)
        .join('\r\n'),
      '',
      'Or enter this key manually: ABCD EFGH IJKL MNOP',
      '\x1b[32m?\x1b[39m Code from the app: \x1b[2K\r\x1b[32m?\x1b[39m Code from the app: 123456',
    ].join('\r\n');
    expect(decodeQrFromScreen(screen)).toBe(uri);
    expect(decodeQrFromScreen(stripAnsi(screen))).toBe(uri);
  });

  it("decodes qrcode-terminal's own uncoloured small output (light-on-dark glyphs) by trying both polarities", () => {
    let small = '';
    qrcodeTerminal.generate(uri, { small: true }, (s) => {
      small = s;
    });
    expect(decodeQrFromScreen(small)).toBe(uri);
  });

  it('honours 256-colour, 24-bit and reverse-video colours', () => {
    const as256 = out.replaceAll('\x1b[30;107m', '\x1b[38;5;16;48;5;231m');
    expect(decodeQrFromScreen(as256)).toBe(uri);
    const asRgb = out.replaceAll('\x1b[30;107m', '\x1b[38;2;0;0;0m\x1b[48;2;255;255;255m');
    expect(decodeQrFromScreen(asRgb)).toBe(uri);
    const reversed = out.replaceAll('\x1b[30;107m', '\x1b[97;40;7m');
    expect(decodeQrFromScreen(reversed)).toBe(uri);
  });

  it('judges dark and light by the colours, not the glyphs', () => {
    // The same picture drawn the other way round: white ink on black paper with complementary glyphs.
    const swap: Record<string, string> = { '\u2588': ' ', ' ': '\u2588', '\u2580': '\u2584', '\u2584': '\u2580' };
    const complementary = out
      .split('\n')
      .map((l) => `\x1b[97;40m${[...stripAnsi(l)].map((c) => swap[c] ?? c).join('')}\x1b[0m`)
      .join('\n');
    expect(decodeQrFromScreen(complementary)).toBe(uri);
    // Same glyphs, colours swapped: a photographic negative, which is not a scannable code.
    expect(decodeQrFromScreen(out.replaceAll('\x1b[30;107m', '\x1b[97;40m'))).toBeNull();
  });

  it('returns null when there is no QR code', () => {
    expect(decodeQrFromScreen('')).toBeNull();
    expect(decodeQrFromScreen('hello\nworld\n')).toBeNull();
    expect(decodeQrFromScreen('\u2588\u2588\u2580\u2584 progress\n')).toBeNull();
  });
});

describe('through a real pseudo-terminal', () => {
  const dir = mkdtempSync(join(tmpdir(), 'mail2fa-qr-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('decodes what `cat` prints into a pty (cols 200, rows 100)', async () => {
    const file = join(dir, 'qr.txt');
    writeFileSync(file, `Scan this code:\n${renderQrForTerminal(uri)}\nThen type the code.\n`);
    // node-pty on Linux drops output past ~4 KB when the child exits right after writing it
    // (microsoft/node-pty#726, #72). So the child prints a marker after `cat` and stays alive, reading stdin,
    // until we have seen the marker; then we press Enter and it exits.
    const marker = '--end-of-output--';
    const term = pty.spawn('/bin/sh', ['-c', 'cat "$1" && printf "%s\\n" "$2" && read -r _', 'sh', file, marker], {
      name: 'xterm-256color',
      cols: 200,
      rows: 100,
      cwd: dir,
      env: { ...process.env, TERM: 'xterm-256color' } as Record<string, string>,
    });
    let output = '';
    const exited = new Promise<number>((resolve) => term.onExit(({ exitCode }) => resolve(exitCode)));
    const sawMarker = new Promise<void>((resolve) => {
      term.onData((d) => {
        output += d;
        if (output.includes(marker)) resolve();
      });
    });
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        term.kill();
        reject(new Error(`pty timed out; got ${output.length} chars: ${JSON.stringify(output.slice(-200))}`));
      }, 10_000);
    });
    try {
      await Promise.race([sawMarker, timeout]);
      term.write('\r');
      expect(await Promise.race([exited, timeout])).toBe(0);
    } finally {
      clearTimeout(timer);
    }
    expect(output).toContain('\r\n'); // the pty's line discipline really ran (ONLCR)
    expect(output).toContain('\x1b[30;107m');
    const screen = output.slice(0, output.indexOf(marker));
    expect(decodeQrFromScreen(screen)).toBe(uri);
    expect(decodeQrFromScreen(output)).toBe(uri);
  });
});
