/**
 * Raw command-line values (commander's operands and options, the program's global options included) → one typed
 * input object per command, checked by a zod schema before the command does anything else. A flag problem ends
 * the run as the same typed error (usage, 64, unless the rule says otherwise) with the same message as before.
 *
 * zod/mini, not the full zod the config file uses: these schemas are parsed on every run, and the tree-shakable
 * build, with its own copy of zod's core in the bundle (scripts/bundle.mjs), adds a few milliseconds to the start
 * where the full one adds tens (docs/benchmarks.md).
 */
import type { Command } from 'commander';
import * as z from 'zod/mini';
import { Mail2faError, usageError } from '../../errors.js';
import { Program } from '../shared.js';

/** A boolean flag: false when not given. */
export const flag = () => z._default(z.boolean(), false);
export const text = () => z.optional(z.string());

/** The global options that shape the output (ui/output.ts). */
export const OUTPUT_GLOBALS = { json: flag(), color: z._default(z.boolean(), true), verbose: flag() };
/** The global options that open the context: config, database, audit actor (context.ts). */
export const CONTEXT_GLOBALS = { db: text(), config: text(), actor: text() };
/** What almost every command uses: its output and a context. */
export const GLOBALS = { ...OUTPUT_GLOBALS, ...CONTEXT_GLOBALS };

/** Records a typed error as the parse's issue: parseInput throws that very error (same message, hint and code). */
function fail(payload: z.core.ParsePayload, error: Mail2faError): void {
  payload.issues.push({ code: 'custom', message: error.message, input: payload.value, params: { error } });
}

/**
 * A rule over the whole set of flags: `problem` returns (or throws) the typed error to stop with, usageError(…)
 * for a flag combination, or returns nothing when the flags are fine. Rules are checked in the order given; the
 * first that fails ends the parse.
 */
export function rule<T>(problem: (flags: T) => Mail2faError | undefined | void): z.core.$ZodCheck<T> {
  return z.check<T>((payload) => {
    if (payload.issues.length) return;
    try {
      const error = problem(payload.value);
      if (error) fail(payload, error);
    } catch (err) {
      if (!(err instanceof Mail2faError)) throw err;
      fail(payload, err);
    }
  });
}

/**
 * The last step of a schema: checked flags → the input the command works with. `resolve` may call the domain's
 * own parsers (durations, addresses to listen on), whose typed errors end the parse like a rule's.
 */
export function resolve<I, O>(fn: (flags: I) => O) {
  return z.transform<I, O>((flags, payload) => {
    try {
      return fn(flags);
    } catch (err) {
      if (!(err instanceof Mail2faError)) throw err;
      fail(payload, err);
      return z.NEVER;
    }
  });
}

/** `--dry-run` for `dryRun`: how an issue's path names the option. */
function optionName(key: PropertyKey | undefined): string {
  return typeof key === 'string' ? `--${key.replace(/[A-Z]/g, (c) => `-${c.toLowerCase()}`)}` : 'arguments';
}

/** The command's path below the program, as typed: `status`, `keys rotate`. */
function commandPath(cmd: Command): { path: string; root: Command } {
  const names: string[] = [];
  let root = cmd;
  for (; root.parent; root = root.parent) names.unshift(root.name());
  return { path: names.join(' '), root };
}

/**
 * The command's typed input: its operands (named by the caller) and every option commander parsed for it, its
 * own and the program's, checked by `schema`; keys the schema does not name are dropped.
 */
export function parseInput<S extends z.ZodMiniType>(
  cmd: Command,
  schema: S,
  operands: Record<string, unknown> = {},
): z.output<S> {
  // jitless: zod would otherwise compile a fast path per object schema on its first parse, and each runs once.
  const result = z.safeParse(schema, { ...cmd.optsWithGlobals(), ...operands }, { jitless: true });
  if (!result.success) {
    const issue = result.error.issues[0]!;
    const error = (issue as { params?: { error?: unknown } }).params?.error;
    throw error instanceof Mail2faError ? error : usageError(`${optionName(issue.path[0])}: ${issue.message}`);
  }
  const { path, root } = commandPath(cmd);
  if (root instanceof Program) root.observeInput?.(path, result.data);
  return result.data;
}
