/**
 * Where output goes: data on stdout, diagnostics on stderr; with --json exactly one JSON document on stdout.
 * Whether each may be coloured is decided by the colour policy (ui/colour.ts).
 */
import { once } from 'node:events';
import type { Writable } from 'node:stream';
import { escapeControl } from '../text.js';
import { colourAllowed } from './colour.js';

export interface OutputOptions {
  json: boolean;
  color: boolean;
  verbose: boolean;
  stdout?: Writable & { isTTY?: boolean };
  stderr?: Writable & { isTTY?: boolean };
  stdinIsTTY?: boolean;
}

export class Output {
  readonly json: boolean;
  readonly verbose: boolean;
  readonly stdout: Writable & { isTTY?: boolean };
  readonly stderr: Writable & { isTTY?: boolean };
  readonly stdinIsTTY: boolean;
  /** Colour for stdout / stderr respectively. */
  readonly color: boolean;
  readonly errColor: boolean;

  constructor(options: OutputOptions) {
    this.json = options.json;
    this.verbose = options.verbose;
    this.stdout = options.stdout ?? process.stdout;
    this.stderr = options.stderr ?? process.stderr;
    this.stdinIsTTY = options.stdinIsTTY ?? Boolean(process.stdin.isTTY);
    this.color = colourAllowed(this.stdout, { flag: options.color, json: options.json });
    this.errColor = colourAllowed(this.stderr, { flag: options.color });
  }

  /** The terminal's width when stdout is a terminal (text is wrapped to it); undefined for pipes and files. */
  get width(): number | undefined {
    return this.stdout.isTTY ? (this.stdout as { columns?: number }).columns || undefined : undefined;
  }

  /** True when prompts may run: both ends are a terminal and --json is off. */
  get interactive(): boolean {
    return this.stdinIsTTY && Boolean(this.stdout.isTTY) && !this.json;
  }

  /**
   * Writes to stdout, waiting when the pipe is full (constant memory for millions of rows). Once the reader has
   * gone away (EPIPE destroys the stream) the data is dropped: the command still finishes with its own exit code.
   */
  async write(chunk: string): Promise<void> {
    if (this.stdout.destroyed) return;
    if (this.stdout.write(chunk)) return;
    const settled = new AbortController();
    const until = (event: string) => once(this.stdout, event, { signal: settled.signal }).catch(() => {});
    await Promise.race([until('drain'), until('close')]);
    settled.abort();
  }

  /** A line of data (stdout). */
  async line(text = ''): Promise<void> {
    await this.write(`${text}\n`);
  }

  /** A diagnostic line (stderr). Control characters in it are escaped. */
  note(text: string): void {
    // Each line escaped on its own: the text's own line breaks stay, an escaped "\n" from input stays inert.
    this.stderr.write(`${text.split('\n').map(escapeControl).join('\n')}\n`);
  }

  debug(text: string): void {
    if (this.verbose) this.note(`[verbose] ${text}`);
  }

  /** The one JSON document of a --json run. */
  async document(value: unknown): Promise<void> {
    await this.write(`${JSON.stringify(value)}\n`);
  }
}
