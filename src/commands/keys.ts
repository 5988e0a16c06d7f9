import { Command } from 'commander';
import { withContext } from '../context.js';
import { ExitCode } from '../errors.js';
import { checkKeys, generateKeyFile, loadNewKey, rotateKeys } from '../core/keys.js';
import { installKeyFile, previousKeyFile } from '../crypto/keys.js';
import {
  generatedKeyText,
  keyCheckDocument,
  keyCheckText,
  rotationAdvice,
  rotationDocument,
  rotationText,
} from '../ui/keys-render.js';
import { progressBar } from '../ui/progress.js';
import { keysCheckInput, keysGenerateInput, keysRotateInput } from './inputs/keys.js';
import { parseInput } from './inputs/parse.js';
import { EXAMPLES, action, contextOptions, makeOutput } from './shared.js';

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
      `decrypt every stored secret with the loaded key and count failures (no secret is printed); exit ${ExitCode.CONFIG} if any fails`,
    )
    .addHelpText(
      'after',
      EXAMPLES(['mail2fa keys check', 'MAIL2FA_KEY_FILE=/etc/mail2fa/key.new mail2fa keys check --json']),
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
            await out.document(keyCheckDocument(report));
            return exitCode;
          }
          const { text, notes } = keyCheckText(report);
          await out.write(text);
          for (const note of notes) out.note(note);
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
        '\nSign-ins keep working throughout: every mail2fa process reads both keys while rows move (docs/keys.md).\n',
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
            const rotation = {
              newKeyFile,
              installed,
              previousKeyFile: installed ? previousKeyFile(installed) : undefined,
            };
            const advice = rotationAdvice(rotation, {
              source: ctx.masterKey().source,
              configuredFile: ctx.config.key.file,
              databaseUrl: ctx.config.db.url,
            });
            if (out.json) {
              await out.document(rotationDocument(report, rotation, advice));
              return;
            }
            await out.write(rotationText(report, advice));
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
    .addHelpText('after', EXAMPLES(['mail2fa keys generate /etc/mail2fa/key.new']))
    .action(
      action(async (file: string, _flags: unknown, cmd: Command) => {
        const input = parseInput(cmd, keysGenerateInput, { file });
        const out = makeOutput(input);
        const result = generateKeyFile(input.file);
        await (out.json ? out.document({ ok: true, ...result }) : out.write(generatedKeyText(result)));
      }),
    );
  return keys;
}
