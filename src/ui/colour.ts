/**
 * The one colour policy: colour only on a terminal, never with NO_COLOR set (any non-empty value) or --no-color,
 * never in JSON. chalk paints, at a level this policy sets, so chalk's own detection (FORCE_COLOR and the like)
 * decides nothing. chalk is loaded only when a run actually paints something.
 *
 * The QR code (src/totp/qr.ts) is the one exception: it draws black on white with its own escape sequences, so
 * that it scans on any terminal theme; whether it is drawn in colour at all still follows `colourAllowed`.
 */
import type { ChalkInstance } from 'chalk';

export interface ColourRequest {
  /** False for --no-color. */
  flag: boolean;
  /** A --json run: its stdout is one JSON document, never coloured. */
  json?: boolean;
}

/** Whether text written to `stream` may carry colour. */
export function colourAllowed(
  stream: { isTTY?: boolean },
  request: ColourRequest,
  env: NodeJS.ProcessEnv = process.env,
): boolean {
  const noColor = env.NO_COLOR !== undefined && env.NO_COLOR !== '';
  return request.flag && !request.json && !noColor && Boolean(stream.isTTY);
}

export type Paint = (text: string) => string;

/** The colours mail2fa uses. */
export interface Palette {
  red: Paint;
}

const PLAIN: Palette = { red: (text) => text };

/** The palette for a stream: chalk's 16 basic colours when `enabled`, plain text otherwise (chalk not loaded). */
export async function palette(enabled: boolean): Promise<Palette> {
  if (!enabled) return PLAIN;
  const { Chalk } = await import('chalk');
  const chalk: ChalkInstance = new Chalk({ level: 1 });
  return { red: (text) => chalk.red(text) };
}
