/**
 * One exit-code source: src/exit-codes.ts. docs/exit-codes.md and every command's "Exit codes:" help block are
 * generated from it; every command has rows, and every code the source code uses is declared.
 */
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import type { Command } from 'commander';
import { describe, expect, it } from 'vitest';
import {
  COMMAND_EXIT_CODES,
  ExitCode,
  GENERAL_MEANING,
  commandExitCodes,
  type ExitCodeName,
} from '../../src/exit-codes.js';
import { buildProgram } from '../../src/program.js';
import { exitCodesHelp, exitCodesMarkdown } from '../../src/ui/exit-codes-render.js';

const ROOT = join(import.meta.dirname, '..', '..');
const read = (path: string) => readFileSync(join(ROOT, path), 'utf8');

/** Every .ts file under src/, relative to the repository. */
function sourceFiles(dir = 'src'): string[] {
  return readdirSync(join(ROOT, dir), { withFileTypes: true }).flatMap((entry) =>
    entry.isDirectory()
      ? sourceFiles(`${dir}/${entry.name}`)
      : entry.name.endsWith('.ts')
        ? [`${dir}/${entry.name}`]
        : [],
  );
}

/** The error factories of src/errors.ts (`usageError`…) and the exit code each one's errors carry. */
function factoryCodes(): Map<string, number> {
  const factories = new Map<string, number>();
  for (const [, name, code] of read('src/errors.ts').matchAll(/export const (\w+) = [^;]*?ExitCode\.(\w+)/g))
    factories.set(name!, ExitCode[code as ExitCodeName]);
  return factories;
}

/** The exit codes a source file names: `ExitCode.X`, and the errors it builds with the factories. */
function codesUsedIn(text: string): Set<number> {
  const codes = new Set<number>();
  for (const [, name] of text.matchAll(/\bExitCode\.(\w+)/g)) {
    expect(ExitCode, `ExitCode.${name}`).toHaveProperty(name!);
    codes.add(ExitCode[name as ExitCodeName]);
  }
  for (const [name, code] of factoryCodes()) if (new RegExp(`\\b${name}\\(`).test(text)) codes.add(code);
  return codes;
}

/** Every command path the program has ("keys rotate"), with its Command, leaves and groups alike. */
function commandPaths(cmd: Command, parent = ''): Array<[string, Command]> {
  return cmd.commands.flatMap((sub) => {
    const path = parent ? `${parent} ${sub.name()}` : sub.name();
    return [[path, sub] as [string, Command], ...commandPaths(sub, path)];
  });
}

async function helpOf(cmd: Command): Promise<string> {
  let text = '';
  cmd.configureOutput({ writeOut: (s) => (text += s) });
  cmd.outputHelp();
  return text;
}

describe('docs/exit-codes.md', () => {
  it('is what `npm run docs` generates from src/exit-codes.ts (run it after changing that file)', () => {
    expect(read('docs/exit-codes.md')).toBe(exitCodesMarkdown());
  });

  it('has a section for every command, with every code the command declares', () => {
    const page = read('docs/exit-codes.md');
    for (const command of Object.keys(COMMAND_EXIT_CODES)) {
      const section = page.split(`### \`mail2fa ${command}\`\n`)[1]?.split('###')[0];
      expect(section, command).toBeDefined();
      for (const { code } of commandExitCodes(command)) expect(section, `${command} ${code}`).toContain(`| ${code} |`);
    }
  });
});

describe('src/exit-codes.ts', () => {
  it('declares rows for exactly the commands the program has', async () => {
    const program = await buildProgram(['node', 'mail2fa']);
    const leaves = commandPaths(program)
      .filter(([, cmd]) => cmd.commands.length === 0)
      .map(([path]) => path);
    expect(leaves.length).toBeGreaterThan(10);
    expect(Object.keys(COMMAND_EXIT_CODES).sort()).toEqual([...leaves].sort());
  });

  it('gives every code a general meaning, and every code some command row', () => {
    const declared = new Set(Object.keys(COMMAND_EXIT_CODES).flatMap((c) => commandExitCodes(c).map((r) => r.code)));
    for (const code of Object.values(ExitCode)) {
      expect(GENERAL_MEANING[code], String(code)).toMatch(/\w/);
      expect(declared.has(code), `no command returns ${code}`).toBe(true);
    }
  });

  it('declares every code used anywhere in src/, by name or as a number', () => {
    const declared = new Set(Object.keys(COMMAND_EXIT_CODES).flatMap((c) => commandExitCodes(c).map((r) => r.code)));
    const used = new Map<number, string>();
    for (const file of sourceFiles()) {
      const text = read(file);
      for (const code of codesUsedIn(text)) used.set(code, file);
      for (const [, literal] of text.matchAll(/\bexitCode\s*[:=]\s*(\d+)/g)) used.set(Number(literal), file);
    }
    expect(used.size).toBeGreaterThanOrEqual(Object.keys(ExitCode).length - 1);
    for (const [code, file] of used) {
      expect(GENERAL_MEANING, `${code} in ${file}`).toHaveProperty(String(code));
      expect(declared.has(code as never), `${code} in ${file}: no command declares it`).toBe(true);
    }
  });

  it('declares, for each command, every code its module returns or throws directly', async () => {
    const program = await buildProgram(['node', 'mail2fa']);
    for (const cmd of program.commands) {
      const file = `src/commands/${cmd.name()}.ts`;
      const rows = Object.keys(COMMAND_EXIT_CODES)
        .filter((path) => path === cmd.name() || path.startsWith(`${cmd.name()} `))
        .flatMap((path) => commandExitCodes(path).map((r) => r.code));
      for (const code of codesUsedIn(read(file))) expect(rows, `${file} uses ${code}`).toContain(code);
    }
  });

  it('declares no code twice for one command, and only known codes', () => {
    for (const [command, rows] of Object.entries(COMMAND_EXIT_CODES)) {
      const codes = rows.map(([code]) => code);
      expect(new Set(codes).size, command).toBe(codes.length);
      for (const code of codes) expect(Object.values(ExitCode), command).toContain(code);
    }
  });
});

describe('--help', () => {
  it("ends every command's help with its exit codes, generated, and no other exit-code list", async () => {
    const program = await buildProgram(['node', 'mail2fa']);
    for (const [path, cmd] of commandPaths(program)) {
      const help = await helpOf(cmd);
      expect(help.match(/Exit codes/gi), path).toHaveLength(1);
      if (cmd.commands.length === 0)
        expect(help.trimEnd().endsWith(exitCodesHelp(commandExitCodes(path)).trimEnd()), path).toBe(true);
      else expect(help, path).toMatch(/\n\nExit codes:\n {4}0 {2}ok\n/);
    }
  });

  it('wraps long meanings under the meaning column, within 100 columns', () => {
    const text = exitCodesHelp(commandExitCodes('status'));
    for (const line of text.split('\n')) expect(line.length).toBeLessThanOrEqual(100);
    expect(text).toMatch(/\n {3}65 {2}\S.*\n {7}\S/);
    expect(text).not.toContain('`');
  });

  it('lists every code with its general meaning on the program help', async () => {
    const help = await helpOf(await buildProgram(['node', 'mail2fa']));
    for (const code of Object.values(ExitCode)) expect(help).toMatch(new RegExp(`\\n +${code}  \\S`));
  });
});
