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
import { EXAMPLES, action, contextOptions, globalOptions, makeOutput } from './shared.js';

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
        const g = globalOptions(cmd);
        const out = makeOutput(g);
        return withContext(contextOptions(g), async (ctx) => {
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
      action(async (flags: { newKeyFile?: string }, cmd: Command) => {
        const g = globalOptions(cmd);
        const out = makeOutput(g);
        const newKey = flags.newKeyFile ? loadNewKey(flags.newKeyFile) : undefined;
        try {
          return await withContext(contextOptions(g), async (ctx) => {
            const bar = progressBar('re-encrypting', out.stderr, !out.json);
            let installed: string | undefined;
            let report;
            try {
              report = await rotateKeys(ctx, newKey, {
                onProgress: (p) => bar.update(p),
                install: (ring) => {
                  if (!ring.file || !flags.newKeyFile) return;
                  installKeyFile(ring.file, flags.newKeyFile);
                  installed = ring.file;
                },
              });
            } finally {
              bar.done();
            }
            for (const n of ctx.notices) out.note(n);
            const rotation = {
              newKeyFile: flags.newKeyFile,
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
        const out = makeOutput(globalOptions(cmd));
        const result = generateKeyFile(file);
        await (out.json ? out.document({ ok: true, ...result }) : out.write(generatedKeyText(result)));
      }),
    );
  return keys;
}
