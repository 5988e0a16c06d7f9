/**
 * QR codes drawn in the terminal with half-block characters, two modules per character row, with explicit
 * colours on every line: dark modules black on light modules bright white, so the code scans on dark AND light
 * terminal themes (qrcode-terminal's own "small" mode is uncoloured and comes out inverted on light themes).
 *
 * The module matrix comes from qrcode-terminal's vendored QR model (Kazuhiko Arase's QRCode), at error
 * correction level M (qrcode-terminal itself uses L).
 */
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);

interface VendorQRCode {
  addData(data: string): void;
  make(): void;
  getModuleCount(): number;
  isDark(row: number, col: number): boolean;
}
type VendorQRCodeCtor = new (typeNumber: number, errorCorrectLevel: number) => VendorQRCode;

let vendor: { QRCode: VendorQRCodeCtor; levels: Record<QrErrorCorrection, number> } | undefined;

function loadVendor(): NonNullable<typeof vendor> {
  vendor ??= {
    QRCode: require('qrcode-terminal/vendor/QRCode/index.js') as VendorQRCodeCtor,
    levels: require('qrcode-terminal/vendor/QRCode/QRErrorCorrectLevel.js') as Record<QrErrorCorrection, number>,
  };
  return vendor;
}

export type QrErrorCorrection = 'L' | 'M' | 'Q' | 'H';

/** Default quiet zone (ISO/IEC 18004 asks for 4 modules; phone cameras need it). */
export const QR_QUIET_ZONE = 4;

/**
 * SGR: black foreground on bright-white background. Dark modules are drawn as ink, light ones as paper. These stay
 * explicit escape sequences rather than chalk: the code must scan on any terminal theme, so it always draws exactly
 * these two colours (the caller decides, by the colour policy in ui/colour.ts, whether it is drawn in colour at all).
 */
const COLOURS = '\x1b[30;107m';
const RESET = '\x1b[0m';

const UPPER = '\u2580'; // ▀ top module dark
const LOWER = '\u2584'; // ▄ bottom module dark
const FULL = '\u2588'; // █ both dark
const EMPTY = ' '; // both light

/**
 * The QR module matrix for `text` (UTF-8, byte mode): `matrix[row][col]` is true for a dark module.
 * No quiet zone is included.
 */
export function qrMatrix(text: string, errorCorrection: QrErrorCorrection = 'M'): boolean[][] {
  const { QRCode, levels } = loadVendor();
  const level = levels[errorCorrection];
  if (level === undefined) throw new RangeError(`unknown QR error correction level ${String(errorCorrection)}`);
  // The vendored encoder writes charCodeAt(i) as one byte: give it the UTF-8 bytes as a binary string.
  const bytes = Buffer.from(text, 'utf8').toString('latin1');
  const qr = new QRCode(-1, level);
  qr.addData(bytes);
  try {
    qr.make();
  } catch (err) {
    throw new RangeError(
      `text too long for a QR code (${Buffer.byteLength(text, 'utf8')} bytes): ${err instanceof Error ? err.message : String(err)}`,
      { cause: err },
    );
  }
  const size = qr.getModuleCount();
  const matrix: boolean[][] = [];
  for (let rowIndex = 0; rowIndex < size; rowIndex++) {
    const row: boolean[] = [];
    for (let c = 0; c < size; c++) row.push(qr.isDark(rowIndex, c) === true);
    matrix.push(row);
  }
  return matrix;
}

/**
 * Draws the QR code of `text` for a terminal: one text line per two module rows, using ▀ ▄ █ and space in
 * black on bright white (`ESC[30;107m`), every line starting with its own colours and ending with `ESC[0m`.
 * Default quiet zone: 4 modules on every side, in the light colour. Lines are joined with '\n' (no trailing
 * newline). The output is `(n + 2·quietZone)` columns wide. `colour: false` leaves the escapes out.
 */
export function renderQrForTerminal(
  text: string,
  opts?: { quietZone?: number; errorCorrection?: QrErrorCorrection; colour?: boolean },
): string {
  const quiet = opts?.quietZone ?? QR_QUIET_ZONE;
  if (!Number.isSafeInteger(quiet) || quiet < 0) throw new RangeError('quietZone must be a non-negative integer');
  const matrix = qrMatrix(text, opts?.errorCorrection ?? 'M');
  const modules = matrix.length;
  const size = modules + 2 * quiet;
  const dark = (row: number, column: number): boolean => {
    const rr = row - quiet;
    const cc = column - quiet;
    if (rr < 0 || cc < 0 || rr >= modules || cc >= modules) return false;
    return matrix[rr]?.[cc] === true;
  };

  // colour: false (a pipe, --no-color, NO_COLOR): the same blocks without escapes, dark modules in the default
  // foreground colour; it scans where text is dark on light (a file, a light terminal theme).
  const [begin, end] = opts?.colour === false ? ['', ''] : [COLOURS, RESET];
  const lines: string[] = [];
  for (let row = 0; row < size; row += 2) {
    let line = begin;
    for (let column = 0; column < size; column++) {
      const top = dark(row, column);
      const bottom = row + 1 < size && dark(row + 1, column);
      line += top ? (bottom ? FULL : UPPER) : bottom ? LOWER : EMPTY;
    }
    lines.push(line + end);
  }
  return lines.join('\n');
}
