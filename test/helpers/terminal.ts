/**
 * The BUILT binary in a real pseudo-terminal (node-pty): everything it draws is kept; tests wait for text on the
 * screen and type answers, as a person at a terminal would.
 */
import pty from 'node-pty';
import { BIN } from './cli.js';

const ANSI = /\u001b\[[0-9;?]*[ -/]*[@-~]|\u001b[()][0-9A-Za-z]|\u001b[=>]/g;

export interface TerminalOptions {
  cols?: number;
  rows?: number;
  cwd?: string;
  /** How long waitFor and exitCode wait; default 25 s. */
  timeoutMs?: number;
  /** The program to run instead of `node bin/mail2fa.js` (then `args` are its arguments). */
  command?: string;
}

export class Terminal {
  /** Everything written to the terminal so far, escape sequences included. */
  output = '';
  readonly exited: Promise<number>;
  private readonly proc: pty.IPty;
  private readonly timeoutMs: number;
  private readonly listeners: Array<() => void> = [];

  /** `env` is laid over this process's environment (an undefined value removes a variable); TERM is xterm-256color. */
  constructor(args: string[], env: Record<string, string | undefined>, o: TerminalOptions = {}) {
    const full: Record<string, string> = {};
    for (const [name, value] of Object.entries({ ...process.env, ...env, TERM: 'xterm-256color' }))
      if (value !== undefined) full[name] = value;
    this.timeoutMs = o.timeoutMs ?? 25_000;
    this.proc = pty.spawn(o.command ?? process.execPath, o.command ? args : [BIN, ...args], {
      name: 'xterm-256color',
      cols: o.cols ?? 120,
      rows: o.rows ?? 40,
      cwd: o.cwd,
      env: full,
    });
    this.proc.onData((d) => {
      this.output += d;
      for (const listener of this.listeners) listener();
    });
    this.exited = new Promise((resolve) => this.proc.onExit(({ exitCode }) => resolve(exitCode)));
  }

  /** Calls `listener` after each piece of output has been added. */
  onData(listener: () => void): void {
    this.listeners.push(listener);
  }

  /** The output without escape sequences and carriage returns. */
  get screen(): string {
    return this.output.replace(ANSI, '').replace(/\r/g, '');
  }

  private async until<T>(found: () => T | null, what: string): Promise<T> {
    const deadline = Date.now() + this.timeoutMs;
    for (;;) {
      const result = found();
      if (result !== null) return result;
      if (Date.now() > deadline) {
        this.proc.kill();
        throw new Error(
          `timed out waiting for ${what}; the screen ends with: ${JSON.stringify(this.output.slice(-600))}`,
        );
      }
      await new Promise((r) => setTimeout(r, 25));
    }
  }

  /** Waits until `text` appears after position `from` of the raw output; returns the output up to then. */
  waitFor(text: string | RegExp, from = 0): Promise<string> {
    return this.until(() => {
      const rest = this.output.slice(from);
      return (typeof text === 'string' ? rest.includes(text) : text.test(rest)) ? this.output : null;
    }, String(text));
  }

  /** Waits until `pattern` matches the screen (escape sequences removed); returns the match. */
  waitForScreen(pattern: RegExp): Promise<RegExpMatchArray> {
    return this.until(() => this.screen.match(pattern), String(pattern));
  }

  /** Types `text` at once, or a key at a time `perKeyMs` apart. */
  async type(text: string, perKeyMs = 0): Promise<void> {
    if (!perKeyMs) return void this.proc.write(text);
    for (const key of text) {
      this.proc.write(key);
      await new Promise((r) => setTimeout(r, perKeyMs));
    }
  }

  /** The exit code, once it has exited (killed and an error after the timeout). */
  async exitCode(): Promise<number> {
    let timer: NodeJS.Timeout | undefined;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        this.proc.kill();
        reject(new Error(`did not exit; the screen ends with: ${JSON.stringify(this.output.slice(-600))}`));
      }, this.timeoutMs);
    });
    try {
      return await Promise.race([this.exited, timeout]);
    } finally {
      clearTimeout(timer);
    }
  }
}

/** Runs the CLI in a terminal, typing each answer once its pattern is on the screen (in order; a function is called at that moment). */
export async function runInTerminal(
  args: string[],
  env: Record<string, string | undefined>,
  answers: Array<[RegExp, string | (() => string)]>,
  timeoutMs = 30_000,
  cols = 160,
): Promise<{ code: number; screen: string }> {
  const term = new Terminal(args, env, { cols, timeoutMs });
  let next = 0;
  term.onData(() => {
    const answer = answers[next];
    if (answer && answer[0].test(term.output)) {
      next++;
      void term.type(typeof answer[1] === 'function' ? answer[1]() : answer[1]);
    }
  });
  return { code: await term.exitCode(), screen: term.output };
}
