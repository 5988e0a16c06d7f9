/** Glue shared by every command: global options → output + context options; the action wrapper. */
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

/** What the last action decided the exit code should be (read by main.ts, the only place that exits). */
export const outcome = { exitCode: 0 };

/**
 * Wraps a command body: it returns an exit code (0 by default) or throws a typed error that main.ts renders.
 */
export function action<A extends unknown[]>(
  body: (...args: A) => Promise<number | void>,
): (...args: A) => Promise<void> {
  return async (...args: A) => {
    const code = await body(...args);
    outcome.exitCode = typeof code === 'number' ? code : 0;
  };
}

export const EXAMPLES = (lines: string[]) => `\nExamples:\n${lines.map((l) => `  ${l}`).join('\n')}\n`;
