import { Command } from 'commander';
import { withContext } from '../context.js';
import { ExitCode, Mail2faError } from '../errors.js';
import { migrateFromStore, migrationRefusal, sourceStore } from '../core/migrate-store.js';
import { migrateFromPostfixadmin, postfixadminRefusal } from '../core/postfixadmin.js';
import {
  clearPlaintextQuestion,
  clearSourceQuestion,
  migrationDocument,
  postfixadminMigrationText,
  storeMigrationText,
  type MigrationText,
} from '../ui/migrate-from-render.js';
import type { Output } from '../ui/output.js';
import { promptConfirm, requireTerminal } from '../ui/prompts.js';
import { MIGRATION_SOURCES, migrateFromInput, type MigrateFromInput } from './inputs/migrate-from.js';
import { parseInput } from './inputs/parse.js';
import { EXAMPLES, action, contextOptions, makeOutput } from './shared.js';

/** The table and total on stdout, then the advice on stderr. */
async function printMigration(out: Output, rendered: MigrationText): Promise<void> {
  await out.write(rendered.text);
  for (const note of rendered.notes) out.note(note);
}

export function migrateFromCommand(): Command {
  return new Command('migrate-from')
    .description(
      "move a foreign store's TOTP secrets (PostfixAdmin's totp_secret column, Roundcube's twofactor_gauthenticator plugin) into mail2fa's encrypted storage, all or nothing",
    )
    .argument('<source>', `where from: ${MIGRATION_SOURCES.join(' | ')}`)
    .option('--dry-run', 'report what would be done (per account, no secrets) and change nothing')
    .option(
      '--clear-source',
      "also remove the source's own copy of each migrated secret (turns the source's own 2FA off for it; asks, or --yes)",
    )
    .option('--clear-plaintext', 'the same as --clear-source (the name from PostfixAdmin, whose copy is plaintext)')
    .option('--store <name>', 'which configured store to read, when several of that kind are configured')
    .option(
      '--skip-invalid',
      'migrate the valid secrets and leave invalid rows as they are, instead of refusing everything',
    )
    .addHelpText(
      'after',
      EXAMPLES([
        'mail2fa --config /etc/mail2fa.yaml migrate-from postfixadmin --dry-run',
        'mail2fa --config /etc/mail2fa.yaml migrate-from postfixadmin --clear-plaintext --yes --json',
        'mail2fa --config /etc/mail2fa.yaml migrate-from roundcube --dry-run',
        'mail2fa --config /etc/mail2fa.yaml migrate-from roundcube --clear-source --yes',
      ]) +
        '\npostfixadmin needs accounts.preset: postfixadmin (or accounts.columns.totpSecret); roundcube needs a store of kind\n' +
        'roundcube in the config (docs/roundcube-store.md). Accounts already enrolled in mail2fa are skipped.\n' +
        'No recovery codes are created: users create them with `mail2fa codes regenerate <email>`.\n',
    )
    .action(
      action(async (source: string, _flags: unknown, cmd: Command) => {
        const input = parseInput(cmd, migrateFromInput, { source });
        const { dryRun, clear, skipInvalid } = input;
        const out = makeOutput(input);
        if (input.source === 'roundcube') return migrateFromForeignStore(input, out);
        const options = { dryRun, clearPlaintext: clear, skipInvalid };
        return withContext(contextOptions(input), async (ctx) => {
          if (options.clearPlaintext && !options.dryRun && !input.yes) {
            // Destructive: without a terminal to ask on, --yes is required whatever there is to clear.
            requireTerminal(out, '--clear-plaintext asking for confirmation', '--yes');
            const preview = await migrateFromPostfixadmin(ctx, { ...options, dryRun: true });
            const question = clearPlaintextQuestion(preview);
            if (question !== undefined && !(await promptConfirm(out, question, '--yes')))
              throw new Mail2faError('cancelled', 'not confirmed; nothing was changed', ExitCode.CANCELLED);
          }
          const report = await migrateFromPostfixadmin(ctx, options);
          for (const n of ctx.notices) out.note(n);
          const refusal = report.refused ? postfixadminRefusal(report) : undefined;
          if (out.json) {
            await out.document(migrationDocument(report, refusal));
            return refusal ? refusal.exitCode : ExitCode.OK;
          }
          await printMigration(out, postfixadminMigrationText(report));
          if (refusal) throw refusal;
        });
      }),
    );
}

/** `migrate-from <kind>` over a configured store module (src/core/migrate-store.ts). */
async function migrateFromForeignStore(input: MigrateFromInput, out: Output): Promise<number | void> {
  const options = { dryRun: input.dryRun, clear: input.clear, skipInvalid: input.skipInvalid };
  return withContext(contextOptions(input), async (ctx) => {
    const store = await sourceStore(ctx, input.source, input.store);
    if (options.clear && !options.dryRun && !input.yes) {
      const preview = await migrateFromStore(ctx, store, { ...options, dryRun: true });
      const question = clearSourceQuestion(preview);
      if (question !== undefined && !(await promptConfirm(out, question, '--yes')))
        throw new Mail2faError('cancelled', 'not confirmed; nothing was changed', ExitCode.CANCELLED);
    }
    const report = await migrateFromStore(ctx, store, options);
    for (const n of ctx.notices) out.note(n);
    const refusal = report.refused ? migrationRefusal(report) : undefined;
    if (out.json) {
      await out.document(migrationDocument(report, refusal));
      return refusal ? refusal.exitCode : ExitCode.OK;
    }
    await printMigration(out, storeMigrationText(report));
    if (refusal) throw refusal;
  });
}
