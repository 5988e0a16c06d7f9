import { Command } from 'commander';
import { withContext, type Context } from '../context.js';
import { ExitCode } from '../errors.js';
import { escapeControl } from '../text.js';
import { checkKeys, generateKeyFile, loadNewKey, rotateKeys, type KeyFailure } from '../core/keys.js';
import { installKeyFile, previousKeyFile } from '../crypto/keys.js';
import type { Output } from '../ui/output.js';
import { progressBar } from '../ui/progress.js';
import { formatTable } from '../ui/table.js';
import { keysCheckInput, keysGenerateInput, keysRotateInput } from './inputs/keys.js';
import { parseInput } from './inputs/parse.js';
import { EXAMPLES, action, contextOptions, makeOutput } from './shared.js';

async function listFailures(out: Output, failures: KeyFailure[], truncated: boolean, failed: number): Promise<void> {
  for (const f of failures) await out.line(`  ${f.table}.${f.column} of ${escapeControl(f.account)}: ${f.reason}`);
  if (truncated) await out.line(`  … and ${failed - failures.length} more`);
}

/** Where the loaded key came from, to tell the operator what to change after a rotation. */
function keySourceAdvice(ctx: Context, newFile: string): string {
  const key = ctx.masterKey();
  if (key.source === 'env')
    return `Now replace MAIL2FA_KEY everywhere mail2fa runs: unset it and set MAIL2FA_KEY_FILE=${newFile} (or put the new key into MAIL2FA_KEY). Until then, processes holding only the old key cannot read rotated rows: a key file makes the switch seamless (docs/keys.md).`;
  if (key.source === 'file' && ctx.config.key.file) {
    return `Now point key.file in the config (or MAIL2FA_KEY_FILE) at ${newFile}; it is ${ctx.config.key.file} today.`;
  }
  // The embedded default reads <database>.key.
  const embedded = `${ctx.config.db.url.slice('sqlite:'.length)}.key`;
  return `Now replace the embedded key file: mv ${embedded} ${embedded}.old && mv ${newFile} ${embedded}  (or set MAIL2FA_KEY_FILE=${newFile}).`;
}

export function keysCommand(): Command {
  const keys = new Command('keys')
    .description('check or rotate the master key that encrypts stored secrets')
    .addHelpText(
      'after',
      EXAMPLES([
        'mail2fa keys check',
        'mail2fa keys generate /etc/mail2fa/key.new',
        'mail2fa keys rotate --new-key-file /etc/mail2fa/key.new',
      ]),
    );

  keys
    .command('check')
    .description(
      'decrypt every stored secret with the loaded key and count failures (no secret is printed); exit 78 if any fails',
    )
    .addHelpText(
      'after',
      EXAMPLES(['mail2fa keys check', 'MAIL2FA_KEY_FILE=/etc/mail2fa/key.new mail2fa keys check --json']) +
        '\nExit codes: 0 every stored secret decrypts; 69 database unavailable; 78 some do not, or the key/config is bad.\n',
    )
    .action(
      action(async (_flags: unknown, cmd: Command) => {
        const input = parseInput(cmd, keysCheckInput);
        const out = makeOutput(input);
        return withContext(contextOptions(input), async (ctx) => {
          const bar = progressBar('checking', out.stderr, !out.json);
          const report = await checkKeys(ctx, { onProgress: (p) => bar.update(p) });
          bar.done();
          for (const n of ctx.notices) out.note(n);
          const exitCode = report.ok ? ExitCode.OK : ExitCode.CONFIG;
          if (out.json) {
            await out.document({
              ...report,
              ...(report.ok
                ? {}
                : {
                    error: {
                      code: 'undecryptable',
                      message: `${report.failed} stored value(s) do not decrypt with key ${report.keyId}`,
                      hint: 'Load the key this database was encrypted with (MAIL2FA_KEY_FILE / key.file); during a rotation keep the previous key as <key file>.old and run `mail2fa keys rotate` to finish (docs/keys.md).',
                    },
                  }),
            });
            return exitCode;
          }
          const { text } = formatTable(
            ['column', 'ok', 'failed'],
            [
              ['STORED VALUES', 'OK', 'FAILED'],
              ...report.columns.map((c) => [`${c.table}.${c.column}`, c.ok, c.failed]),
            ],
          );
          await out.write(text);
          if (report.ok) await out.line(`all ${report.decrypted} stored secret(s) decrypt with key ${report.keyId}`);
          else {
            await out.line(`${report.failed} stored value(s) do NOT decrypt with key ${report.keyId}:`);
            await listFailures(out, report.failures, report.failuresTruncated, report.failed);
            out.note(
              'hint: load the key this database was encrypted with (MAIL2FA_KEY_FILE / key.file); if a rotation is under way, its previous key must be next to the key file as <key file>.old, and `mail2fa keys rotate` finishes it (docs/keys.md).',
            );
          }
          return exitCode;
        });
      }),
    );

  keys
    .command('rotate')
    .description(
      'move every stored secret and the code-hash key to a new key, on a live database: the new key replaces the key file (the old one kept as <key file>.old, still read), then rows are re-encrypted in short batches',
    )
    .option(
      '--new-key-file <file>',
      'key file holding the new key (create it with `mail2fa keys generate FILE`); without it, finish an interrupted rotation',
    )
    .addHelpText(
      'after',
      EXAMPLES([
        'mail2fa keys generate /etc/mail2fa/key.new',
        'mail2fa keys rotate --new-key-file /etc/mail2fa/key.new   # installs it as the key file, keeps the old as <key file>.old',
        'mail2fa keys rotate                                      # finish a rotation that was interrupted',
      ]) +
        '\nSign-ins keep working throughout: every mail2fa process reads both keys while rows move (docs/keys.md).\n' +
        'Exit codes: 0 rotated; 64 nothing to do (the new key is the current one, or no rotation to finish);\n  69 database unavailable; 75 busy or rows still being written under the old key (run it again);\n  78 a stored value does not decrypt (nothing changed), or a key file/config problem.\n',
    )
    .action(
      action(async (_flags: unknown, cmd: Command) => {
        const input = parseInput(cmd, keysRotateInput);
        const { newKeyFile } = input;
        const out = makeOutput(input);
        const newKey = newKeyFile ? loadNewKey(newKeyFile) : undefined;
        try {
          return await withContext(contextOptions(input), async (ctx) => {
            const bar = progressBar('re-encrypting', out.stderr, !out.json);
            let installed: string | undefined;
            let report;
            try {
              report = await rotateKeys(ctx, newKey, {
                onProgress: (p) => bar.update(p),
                install: (ring) => {
                  if (!ring.file || !newKeyFile) return;
                  installKeyFile(ring.file, newKeyFile);
                  installed = ring.file;
                },
              });
            } finally {
              bar.done();
            }
            for (const n of ctx.notices) out.note(n);
            const next = installed
              ? `The new key is now the key file ${installed}; the old key is kept as ${previousKeyFile(installed)} (still read while rows move; backups taken before now need it). Other hosts: copy both files there (docs/keys.md).`
              : newKeyFile
                ? keySourceAdvice(ctx, newKeyFile)
                : undefined;
            if (out.json) {
              await out.document({
                ...report,
                ...(newKeyFile ? { newKeyFile } : {}),
                ...(installed ? { keyFile: installed, previousKeyFile: previousKeyFile(installed) } : {}),
                ...(next ? { next } : {}),
              });
              return;
            }
            await out.line(
              `re-encrypted ${report.reencrypted} stored secret(s) in ${report.rows} row(s) under key ${report.toKeyId} (was ${report.fromKeyId}) in short batches, ${(report.elapsedMs / 1000).toFixed(1)} s` +
                (report.alreadyNew ? `; ${report.alreadyNew} were already under the new key` : ''),
            );
            if (next) await out.line(next);
          });
        } finally {
          newKey?.bytes.fill(0);
        }
      }),
    );

  keys
    .command('generate')
    .description('create a new key file (32 random bytes, base64, mode 0600); never overwrites a file')
    .argument('<file>', 'where to write the new key')
    .addHelpText(
      'after',
      EXAMPLES(['mail2fa keys generate /etc/mail2fa/key.new']) +
        '\nExit codes: 0 created; 78 the file exists already or cannot be created.\n',
    )
    .action(
      action(async (file: string, _flags: unknown, cmd: Command) => {
        const input = parseInput(cmd, keysGenerateInput, { file });
        const out = makeOutput(input);
        const result = generateKeyFile(input.file);
        if (out.json) await out.document({ ok: true, ...result });
        else {
          await out.line(`created key file ${result.file} (key ${result.keyId}, mode 0600)`);
          await out.line(`Back it up. To move stored secrets to it: mail2fa keys rotate --new-key-file ${result.file}`);
        }
      }),
    );
  return keys;
}
