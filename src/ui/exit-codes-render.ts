/** The exit-code rows of src/exit-codes.ts as `--help` text and as the docs/exit-codes.md page. */
import {
  COMMAND_EXIT_CODES,
  ExitCode,
  commandExitCodes,
  generalExitCodes,
  type ExitCodeName,
  type ExitCodeRow,
} from '../exit-codes.js';

const HELP_WIDTH = 100;
const HELP_INDENT = 7;

/** Words joined into lines of at most `width` characters (a longer word stands alone). */
function wrap(text: string, width: number): string[] {
  const lines: string[] = [];
  let line = '';
  for (const word of text.split(' ')) {
    if (line && line.length + 1 + word.length > width) {
      lines.push(line);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  lines.push(line);
  return lines;
}

/** The "Exit codes:" block of `--help` (no blank line around it): each code right-aligned, its meaning wrapped beside it. */
export function exitCodesHelp(rows: readonly ExitCodeRow[]): string {
  const lines = rows.map(
    ({ code, meaning }) =>
      `  ${String(code).padStart(3)}  ${wrap(meaning.replace(/`/g, ''), HELP_WIDTH - HELP_INDENT).join(`\n${' '.repeat(HELP_INDENT)}`)}`,
  );
  return `Exit codes:\n${lines.join('\n')}`;
}

const NAMES = Object.fromEntries(Object.entries(ExitCode).map(([name, code]) => [code, name])) as Record<
  number,
  ExitCodeName
>;

const cell = (text: string) => text.replace(/\|/g, '\\|');

/** docs/exit-codes.md, whole. */
export function exitCodesMarkdown(): string {
  const general = generalExitCodes()
    .map(({ code, meaning }) => `| ${code} | \`${NAMES[code]}\` | ${cell(meaning)} |`)
    .join('\n');
  const commands = Object.keys(COMMAND_EXIT_CODES)
    .map((command) => {
      const rows = commandExitCodes(command)
        .map(({ code, meaning }) => `| ${code} | ${cell(meaning)} |`)
        .join('\n');
      return `### \`mail2fa ${command}\`\n\n| code | when |\n|---|---|\n${rows}\n`;
    })
    .join('\n');
  return `# Exit codes

<!-- Generated from src/exit-codes.ts by \`npm run docs\`: edit that file, not this page. -->

mail2fa's exit codes follow sysexits(3), as Postfix and \`doveadm\` do. Each code means the same for every command;
below, per command, what it means there. \`mail2fa <command> --help\` ends with the same list.

With \`--json\`, stdout holds exactly one JSON document whatever the code, errors included
(\`{"ok":false,"error":{"code":"unknown_account","message":"…","hint":"…"}}\`), and stderr stays empty.

| code | name | meaning |
|---|---|---|
${general}

## By command

Every command can also end in 64 (a flag or argument refused) and 70 (a bug).

${commands}`;
}
