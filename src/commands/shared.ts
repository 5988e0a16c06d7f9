/** Glue shared by every command: global options → output + context options; the action wrapper. */
import { Command } from 'commander';
import type { ContextOptions } from '../context.js';
import { Output } from '../ui/output.js';

export interface GlobalOptions {
  db?: string;
  config?: string;
  json?: boolean;
  actor?: string;
  color: boolean;
  yes?: boolean;
  verbose?: boolean;
}

export function makeOutput(g: GlobalOptions): Output {
  return new Output({ json: Boolean(g.json), color: g.color !== false, verbose: Boolean(g.verbose) });
}

export function contextOptions(g: GlobalOptions, extra: Partial<ContextOptions> = {}): ContextOptions {
  return { configPath: g.config, dbUrl: g.db, actor: g.actor, ...extra };
}

/**
 * The root command of one run. The action of the command that ran leaves its exit code here; main.ts reads it
 * after parsing (each run builds its own program, so nothing carries over between runs).
 */
export class Program extends Command {
  actionExitCode: number = 0;
  /** Receives each command's typed input (commands/inputs/) as soon as it is parsed; the argv contract test uses it. */
  observeInput?: InputObserver;
}

/** Sees a command's typed input before the command acts on it. */
export type InputObserver = (command: string, input: unknown) => void;

/**
 * Wraps a command body: it returns an exit code (0 by default) or throws a typed error that main.ts renders.
 * commander passes the command as the last argument; its root is the run's Program.
 */
export function action<A extends unknown[]>(
  body: (...args: A) => Promise<number | void>,
): (...args: A) => Promise<void> {
  return async (...args: A) => {
    const code = await body(...args);
    let root = args[args.length - 1] as Command;
    while (root.parent) root = root.parent;
    if (!(root instanceof Program)) throw new Error('a command ran outside the program built by buildProgram');
    root.actionExitCode = typeof code === 'number' ? code : 0;
  };
}

export const EXAMPLES = (lines: string[]) => `\nExamples:\n${lines.map((l) => `  ${l}`).join('\n')}\n`;
