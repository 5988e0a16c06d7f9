import { open, stat } from 'node:fs/promises';
import { createInterface } from 'node:readline';
import type { Readable } from 'node:stream';
import { Command, Option } from 'commander';
import { keyFiles, withContext } from '../context.js';
import { ExitCode, dataError, unknownAccount, usageError } from '../errors.js';
import { canonicalAddress, preview } from '../core/address.js';
import { addToSummary, matchesFilter, newSummary, statusBatches, type StatusSelection } from '../core/status.js';
import { statusRenderer } from '../ui/status-render.js';
import { parseInput } from './inputs/parse.js';
import { STATUS_FORMATS, statusInput } from './inputs/status.js';
import { EXAMPLES, action, contextOptions, makeOutput } from './shared.js';

/**
 * Opens a list file (or stdin) before any work starts, so that a wrong path is a usage error (64) with nothing
 * printed yet. Lines: one address each, LF or CRLF; a UTF-8 byte-order mark is dropped; lines that are empty or
 * only whitespace, and lines starting with #, are skipped. Every other line is looked up exactly as written.
 */
async function openAddressList(file: string): Promise<AsyncIterable<string>> {
  let input: Readable;
  if (file === '-') {
    if (process.stdin.isTTY)
      throw usageError(
        '--file - reads addresses from stdin, but stdin is a terminal',
        'Pipe the list in: cat list.txt | mail2fa status --file -',
      );
    input = process.stdin;
  } else {
    try {
      const handle = await open(file, 'r');
      if ((await handle.stat()).isDirectory()) {
        await handle.close();
        throw Object.assign(new Error('EISDIR'), { code: 'EISDIR' });
      }
      input = handle.createReadStream({ encoding: 'utf8' });
    } catch (err) {
      throw usageError(
        `--file: cannot read ${preview(file)}: ${(err as NodeJS.ErrnoException).code ?? String(err)}`,
        "Give a readable file with one address per line, or '-' for stdin.",
      );
    }
  }
  return addressLines(input);
}

/** NUL, or bytes that are not UTF-8 (decoded as U+FFFD): a binary file, not a list someone wrote. */
const BINARY = /[\u0000\uFFFD]/u;

async function* addressLines(input: Readable): AsyncGenerator<string> {
  input.setEncoding('utf8');
  let first = true;
  let lineNumber = 0;
  for await (let line of createInterface({ input, crlfDelay: Infinity })) {
    lineNumber++;
    if (first && line.startsWith('\uFEFF')) line = line.slice(1);
    first = false;
    if (BINARY.test(line)) {
      throw dataError(
        'not_an_address_list',
        `--file: not a list of addresses: line ${lineNumber} holds binary data`,
        'Give a text file with one address per line.',
      );
    }
    if (line.startsWith('#') || /^\s*$/u.test(line)) continue;
    yield line;
  }
}

/** The master key file is never read as a list (its one line would be an "invalid" row): refused, 65. */
async function refuseKeyFile(file: string, keys: string[]): Promise<void> {
  const list = await stat(file).catch(() => undefined);
  if (!list) return;
  for (const key of keys) {
    const keyStat = await stat(key).catch(() => undefined);
    if (keyStat && keyStat.dev === list.dev && keyStat.ino === list.ino) {
      throw dataError(
        'not_an_address_list',
        `--file: ${preview(file)} is the master key file, not a list of addresses`,
        'Give a text file with one address per line.',
      );
    }
  }
}

/** How many accounts without 2FA the --require-enabled line names. */
const GAPS_NAMED = 5;

export function statusCommand(): Command {
  return new Command('status')
    .description(
      'show 2FA status: one row per account (email, enabled, method, masked phone, enrolled, last used, recovery codes left, locked until)',
    )
    .argument('[email...]', 'addresses to look up')
    .option('--all', 'every mailbox (streamed)')
    .option('--domain <domain>', 'every mailbox of one domain')
    .option('--file <file>', "read addresses from a file, one per line ('-' for stdin)")
    .option('--enabled', 'only accounts with 2FA on')
    .option('--disabled', 'only accounts with 2FA off')
    .addOption(new Option('--format <format>', 'output format').choices(STATUS_FORMATS))
    .option(
      '--require-enabled',
      `exit ${ExitCode.NEGATIVE} when any listed account lacks 2FA (unknown counts as lacking)`,
    )
    .addHelpText(
      'after',
      EXAMPLES([
        'mail2fa status jane@example.com',
        'mail2fa status --all --format ndjson > status.ndjson',
        'mail2fa status --domain example.com --disabled --format csv',
        `mail2fa status --file staff.txt --require-enabled   # exit ${ExitCode.NEGATIVE} if anyone lacks 2FA`,
        'cut -d, -f1 users.csv | mail2fa status --file - --json',
      ]),
    )
    .action(
      action(async (emails: string[], _flags: unknown, cmd: Command) => {
        const input = parseInput(cmd, statusInput, { emails });
        const { source, filter, format } = input;
        const out = makeOutput(input);
        const selection: StatusSelection =
          source.kind === 'file' ? { kind: 'emails', emails: await openAddressList(source.file) } : source;
        const single = source.kind === 'emails' && source.emails.length === 1 ? source.emails[0] : undefined;

        return withContext(contextOptions(input), async (ctx) => {
          if (source.kind === 'file' && source.file !== '-') await refuseKeyFile(source.file, keyFiles(ctx.config));
          const db = await ctx.db();
          const deps = { db, tables: ctx.tables, mapping: ctx.mapping, now: ctx.now, stores: await ctx.stores() };
          const summary = newSummary();
          if (filter) Object.assign(summary, { filter, shown: 0 });
          let gaps = 0;
          const firstGaps: string[] = [];
          const renderer = statusRenderer(format, out);
          let begun = false;
          try {
            for await (const batch of statusBatches(deps, selection)) {
              if (single !== undefined) {
                // One address alone: unknown is an error (67), like `doveadm user`; malformed is 65.
                const row = batch[0]!;
                if (row.state === 'unknown') {
                  await (await ctx.accounts()).findExact(row.email); // throws 67, with "did you mean" when the case differs
                  throw unknownAccount(row.email); // appeared meanwhile: still unknown to this run
                }
                if (row.state === 'invalid') canonicalAddress(single); // throws 65 with the address itself quoted
                if (row.state === 'ambiguous')
                  throw dataError(
                    'ambiguous_account',
                    `${row.problem ?? 'several mailbox rows have this address'}: ${row.email}; refusing to guess`,
                    `Fix the duplicate rows in ${ctx.mapping.table}.`,
                  );
              }
              if (!begun) {
                await renderer.begin();
                begun = true;
              }
              const shown = [];
              for (const row of batch) {
                addToSummary(summary, row);
                if (row.state !== 'ok' || !row.enabled) {
                  gaps++;
                  if (firstGaps.length < GAPS_NAMED) firstGaps.push(row.email);
                }
                if (matchesFilter(row, filter)) shown.push(row);
              }
              if (filter) summary.shown! += shown.length;
              if (shown.length) await renderer.rows(shown);
            }
          } catch (err) {
            // A half-written JSON document must not be mistaken for a whole one.
            if (begun && format === 'json') await out.write('\n');
            throw err;
          }
          if (!begun) await renderer.begin();
          await renderer.end(summary);
          if (!input.requireEnabled || gaps === 0) return ExitCode.OK;
          // Which accounts make it 1, on stderr whatever the format: the count and the first few.
          const listed = summary.accounts + summary.unknown + summary.invalid;
          out.note(
            `${gaps} of ${listed} listed account${listed === 1 ? '' : 's'} lack 2FA: ${firstGaps.join(', ')}${gaps > firstGaps.length ? ` and ${gaps - firstGaps.length} more` : ''}`,
          );
          return ExitCode.NEGATIVE;
        });
      }),
    );
}
