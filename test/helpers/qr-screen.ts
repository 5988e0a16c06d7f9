/**
 * Reads a QR code off a terminal screen, as a person pointing a phone at it would.
 *
 * Input: terminal text either as a program writes it to a (pseudo-)terminal — ANSI colour codes, CR/LF, cursor
 * movements and line erasures included — or as a plain capture of a terminal emulator's buffer (no colours).
 * A small virtual terminal replays the text into a grid of cells (character + foreground + background), the
 * half-block QR region is located (▀ ▄ █ and coloured spaces), each cell becomes two modules (top and bottom
 * half) whose dark/light value comes from the colours, and the bitmap (4×4 px per module, white margin) is
 * decoded with jsQR.
 *
 * Colours: explicit SGR colours (16-colour, bright, 256-colour, 24-bit, reverse video) are judged by luminance.
 * Where the terminal's default colours are used (no SGR, or a plain capture), both polarities are tried: default
 * foreground dark on a light default background, and the reverse (a dark theme).
 *
 * Limitations: absolute cursor positioning is taken relative to the first line of the input (no scrolling
 * model); East Asian wide characters are approximated.
 */
import jsQRModule from 'jsqr';

type Colour = 'default' | number; // number: 0xRRGGBB
interface Cell {
  ch: string;
  fg: Colour;
  bg: Colour;
}

// jsqr is CommonJS with a TypeScript `export default`: under NodeNext the default import is module.exports,
// which at run time is the function itself (also carrying `.default`).
type JsQR = typeof jsQRModule.default;
const jsQR: JsQR = (jsQRModule as unknown as { default?: JsQR }).default ?? (jsQRModule as unknown as JsQR);

// xterm's default 16-colour palette.
const PALETTE16 = [
  0x000000, 0xcd0000, 0x00cd00, 0xcdcd00, 0x0000ee, 0xcd00cd, 0x00cdcd, 0xe5e5e5, 0x7f7f7f, 0xff0000, 0x00ff00,
  0xffff00, 0x5c5cff, 0xff00ff, 0x00ffff, 0xffffff,
];

function palette256(n: number): number {
  if (n < 16) return PALETTE16[n] ?? 0;
  if (n < 232) {
    const i = n - 16;
    const level = (v: number) => (v === 0 ? 0 : 55 + v * 40);
    return (level(Math.floor(i / 36)) << 16) | (level(Math.floor(i / 6) % 6) << 8) | level(i % 6);
  }
  const g = 8 + (n - 232) * 10;
  return (g << 16) | (g << 8) | g;
}

function isDarkRgb(rgb: number): boolean {
  const r = (rgb >> 16) & 255;
  const g = (rgb >> 8) & 255;
  const b = rgb & 255;
  return (0.2126 * r + 0.7152 * g + 0.0722 * b) / 255 < 0.5;
}

function isWide(cp: number): boolean {
  return (
    (cp >= 0x1100 && cp <= 0x115f) ||
    (cp >= 0x2e80 && cp <= 0xa4cf && cp !== 0x303f) ||
    (cp >= 0xac00 && cp <= 0xd7a3) ||
    (cp >= 0xf900 && cp <= 0xfaff) ||
    (cp >= 0xfe30 && cp <= 0xfe4f) ||
    (cp >= 0xff00 && cp <= 0xff60) ||
    (cp >= 0xffe0 && cp <= 0xffe6) ||
    (cp >= 0x1f300 && cp <= 0x1f64f) ||
    (cp >= 0x1f900 && cp <= 0x1f9ff) ||
    (cp >= 0x20000 && cp <= 0x3fffd)
  );
}

/** Replays terminal output into a grid of cells. */
function replay(screen: string): Cell[][] {
  const grid: Cell[][] = [];
  let row = 0;
  let col = 0;
  let fg: Colour = 'default';
  let bg: Colour = 'default';
  let reverse = false;
  let saved = { row: 0, col: 0 };

  const line = (r: number): Cell[] => {
    while (grid.length <= r) grid.push([]);
    return grid[r]!;
  };
  const blank = (): Cell => ({ ch: ' ', fg: 'default', bg: 'default' });
  const put = (ch: string, width: number) => {
    const l = line(row);
    while (l.length < col) l.push(blank());
    const cell: Cell = { ch, fg: reverse ? bg : fg, bg: reverse ? fg : bg };
    l[col] = cell;
    if (width === 2) l[col + 1] = { ch: '', fg: cell.fg, bg: cell.bg };
    col += width;
  };
  const eraseLine = (mode: number) => {
    const l = line(row);
    const bgNow = reverse ? fg : bg;
    const filler = (): Cell => ({ ch: ' ', fg: 'default', bg: bgNow });
    if (mode === 2) l.splice(0, l.length);
    else if (mode === 1) for (let c = 0; c <= col && c < l.length; c++) l[c] = filler();
    else l.splice(col);
  };

  const sgr = (params: string) => {
    const parts = params === '' ? ['0'] : params.split(';');
    for (let i = 0; i < parts.length; i++) {
      const p = parts[i] ?? '';
      // Colon sub-parameters (38:2::r:g:b, 38:5:n).
      if (p.includes(':')) {
        const sub = p.split(':').map((s) => (s === '' ? 0 : Number(s)));
        const which = sub[0];
        if (which === 38 || which === 48) {
          let colour: Colour | undefined;
          if (sub[1] === 5) colour = palette256(sub[2] ?? 0);
          else if (sub[1] === 2) {
            const rgb = sub.length >= 6 ? sub.slice(3, 6) : sub.slice(2, 5);
            colour = ((rgb[0] ?? 0) << 16) | ((rgb[1] ?? 0) << 8) | (rgb[2] ?? 0);
          }
          if (colour !== undefined) {
            if (which === 38) fg = colour;
            else bg = colour;
          }
        }
        continue;
      }
      const n = p === '' ? 0 : Number(p);
      if (n === 0) {
        fg = 'default';
        bg = 'default';
        reverse = false;
      } else if (n === 7) reverse = true;
      else if (n === 27) reverse = false;
      else if (n >= 30 && n <= 37) fg = PALETTE16[n - 30]!;
      else if (n >= 40 && n <= 47) bg = PALETTE16[n - 40]!;
      else if (n >= 90 && n <= 97) fg = PALETTE16[n - 90 + 8]!;
      else if (n >= 100 && n <= 107) bg = PALETTE16[n - 100 + 8]!;
      else if (n === 39) fg = 'default';
      else if (n === 49) bg = 'default';
      else if (n === 38 || n === 48) {
        const mode = Number(parts[i + 1]);
        let colour: Colour | undefined;
        if (mode === 5) {
          colour = palette256(Number(parts[i + 2] ?? 0));
          i += 2;
        } else if (mode === 2) {
          colour = (Number(parts[i + 2] ?? 0) << 16) | (Number(parts[i + 3] ?? 0) << 8) | Number(parts[i + 4] ?? 0);
          i += 4;
        }
        if (colour !== undefined) {
          if (n === 38) fg = colour;
          else bg = colour;
        }
      }
    }
  };

  const chars = Array.from(screen);
  for (let i = 0; i < chars.length; i++) {
    const ch = chars[i]!;
    if (ch === '\x1b') {
      const next = chars[i + 1];
      if (next === '[') {
        // CSI: parameters, intermediates, final byte.
        let j = i + 2;
        let params = '';
        while (j < chars.length && /[0-9:;<=>?]/.test(chars[j]!)) params += chars[j++];
        while (j < chars.length && /[ -/]/.test(chars[j]!)) j++;
        const final = chars[j] ?? '';
        i = j;
        if (params.startsWith('?') || params.startsWith('>') || params.startsWith('<') || params.startsWith('=')) {
          continue; // private modes (cursor visibility, bracketed paste …)
        }
        const nums = params.split(';').map((s) => (s === '' ? 0 : Number(s)));
        const a = nums[0] ?? 0;
        const count = Math.max(1, a);
        switch (final) {
          case 'm':
            sgr(params);
            break;
          case 'A':
            row = Math.max(0, row - count);
            break;
          case 'B':
            row += count;
            break;
          case 'C':
            col += count;
            break;
          case 'D':
            col = Math.max(0, col - count);
            break;
          case 'E':
            row += count;
            col = 0;
            break;
          case 'F':
            row = Math.max(0, row - count);
            col = 0;
            break;
          case 'G':
            col = count - 1;
            break;
          case 'H':
          case 'f':
            row = Math.max(1, a) - 1;
            col = Math.max(1, nums[1] ?? 1) - 1;
            break;
          case 'J':
            if (a === 2 || a === 3) grid.splice(0, grid.length);
            else if (a === 0) {
              eraseLine(0);
              grid.splice(row + 1);
            }
            break;
          case 'K':
            eraseLine(a);
            break;
          default:
            break; // other CSI sequences do not change the cells we care about
        }
      } else if (next === ']' || next === 'P' || next === '_' || next === '^') {
        // OSC / DCS / APC / PM: until BEL or ST.
        let j = i + 2;
        while (j < chars.length && chars[j] !== '\x07' && !(chars[j] === '\x1b' && chars[j + 1] === '\\')) j++;
        i = chars[j] === '\x07' ? j : j + 1;
      } else if (next === '7') {
        saved = { row, col };
        i += 1;
      } else if (next === '8') {
        ({ row, col } = saved);
        i += 1;
      } else if (next === '(' || next === ')' || next === '#') {
        i += 2; // charset designation
      } else {
        i += 1;
      }
      continue;
    }
    if (ch === '\n') {
      row += 1;
      col = 0; // plain strings use bare LF; a pty's ONLCR gives CR LF anyway
      continue;
    }
    if (ch === '\r') {
      col = 0;
      continue;
    }
    if (ch === '\b') {
      col = Math.max(0, col - 1);
      continue;
    }
    if (ch === '\t') {
      col = (Math.floor(col / 8) + 1) * 8;
      continue;
    }
    const cp = ch.codePointAt(0)!;
    if (cp < 0x20 || (cp >= 0x7f && cp < 0xa0)) continue;
    if (cp >= 0x300 && cp <= 0x36f) continue; // combining marks: no cell of their own
    put(ch, isWide(cp) ? 2 : 1);
  }
  return grid;
}

const BLOCKS = new Set(['\u2580', '\u2584', '\u2588']);

function isQrCell(cell: Cell | undefined): boolean {
  if (!cell) return false;
  return BLOCKS.has(cell.ch) || (cell.ch === ' ' && cell.bg !== 'default');
}

interface Region {
  top: number;
  bottom: number; // inclusive
  left: number;
  right: number; // inclusive
}

/** Runs of consecutive lines that contain half-block characters (or coloured spaces), biggest first. */
function findRegions(grid: Cell[][]): Region[] {
  const regions: Array<Region & { weight: number }> = [];
  let current: (Region & { weight: number }) | undefined;
  for (let r = 0; r < grid.length; r++) {
    const l = grid[r] ?? [];
    let first = -1;
    let last = -1;
    let weight = 0;
    for (let c = 0; c < l.length; c++) {
      if (isQrCell(l[c])) {
        if (first < 0) first = c;
        last = c;
        if (BLOCKS.has(l[c]!.ch)) weight++;
      }
    }
    if (first >= 0) {
      if (current) {
        current.bottom = r;
        current.left = Math.min(current.left, first);
        current.right = Math.max(current.right, last);
        current.weight += weight;
      } else {
        current = { top: r, bottom: r, left: first, right: last, weight };
      }
    } else if (current) {
      regions.push(current);
      current = undefined;
    }
  }
  if (current) regions.push(current);
  return regions.filter((r) => r.weight > 0).sort((a, b) => b.weight - a.weight);
}

/** Whether a cell's colour is dark; `inkDark` decides the terminal's default foreground (background is the opposite). */
function colourIsDark(colour: Colour, isForeground: boolean, inkDark: boolean): boolean {
  if (colour === 'default') return isForeground ? inkDark : !inkDark;
  return isDarkRgb(colour);
}

function rasterise(
  grid: Cell[][],
  region: Region,
  inkDark: boolean,
  scale = 4,
  margin = 4,
): {
  data: Uint8ClampedArray;
  width: number;
  height: number;
} {
  const cols = region.right - region.left + 1;
  const moduleRows = (region.bottom - region.top + 1) * 2;
  const width = (cols + 2 * margin) * scale;
  const height = (moduleRows + 2 * margin) * scale;
  const data = new Uint8ClampedArray(width * height * 4).fill(255);
  const paint = (moduleRow: number, moduleCol: number) => {
    const y0 = (moduleRow + margin) * scale;
    const x0 = (moduleCol + margin) * scale;
    for (let y = y0; y < y0 + scale; y++) {
      for (let x = x0; x < x0 + scale; x++) {
        const o = (y * width + x) * 4;
        data[o] = 0;
        data[o + 1] = 0;
        data[o + 2] = 0;
      }
    }
  };
  for (let r = region.top; r <= region.bottom; r++) {
    const l = grid[r] ?? [];
    for (let c = region.left; c <= region.right; c++) {
      const cell = l[c] ?? { ch: ' ', fg: 'default', bg: 'default' };
      const fgDark = colourIsDark(cell.fg, true, inkDark);
      const bgDark = colourIsDark(cell.bg, false, inkDark);
      let top: boolean;
      let bottom: boolean;
      switch (cell.ch) {
        case '\u2588':
          top = bottom = fgDark;
          break;
        case '\u2580':
          top = fgDark;
          bottom = bgDark;
          break;
        case '\u2584':
          top = bgDark;
          bottom = fgDark;
          break;
        default:
          top = bottom = bgDark; // space, or any other character: mostly background
      }
      const mr = (r - region.top) * 2;
      const mc = c - region.left;
      if (top) paint(mr, mc);
      if (bottom) paint(mr + 1, mc);
    }
  }
  return { data, width, height };
}

function usesDefaultColours(grid: Cell[][], region: Region): boolean {
  for (let r = region.top; r <= region.bottom; r++) {
    const l = grid[r] ?? [];
    for (let c = region.left; c <= region.right; c++) {
      const cell = l[c];
      if (!cell || cell.fg === 'default' || cell.bg === 'default') return true;
    }
  }
  return false;
}

/**
 * Finds a half-block QR code in terminal text and returns its decoded content, or null when there is none
 * (or it does not decode).
 */
export function decodeQrFromScreen(screen: string): string | null {
  const grid = replay(screen);
  const regions = findRegions(grid);
  for (const region of regions) {
    // Explicit colours decide alone; the default colours depend on the theme, so try both.
    const polarities = usesDefaultColours(grid, region) ? [true, false] : [true];
    for (const inkDark of polarities) {
      const { data, width, height } = rasterise(grid, region, inkDark);
      const result = jsQR(data, width, height, { inversionAttempts: 'dontInvert' });
      if (result) return result.data;
    }
  }
  return null;
}
