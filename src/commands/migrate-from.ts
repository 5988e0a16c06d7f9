import { Command } from 'commander';
import { withContext } from '../context.js';
import { ExitCode, Mail2faError, usageError } from '../errors.js';
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
import { EXAMPLES, action, contextOptions, globalOptions, makeOutput } from './shared.js';

interface MigrateFromFlags {
  dryRun?: boolean;
  clearPlaintext?: boolean;
  clearSource?: boolean;
  skipInvalid?: boolean;
  store?: string;
}

const SOURCES = ['postfixadmin', 'roundcube'] as const;

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
    .argument('<source>', `where from: ${SOURCES.join(' | ')}`)
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
      action(async (source: string, flags: MigrateFromFlags, cmd: Command) => {
        const g = globalOptions(cmd);
        const out = makeOutput(g);
        if (!(SOURCES as readonly string[]).includes(source))
          throw usageError(
            `unknown source "${source}": ${SOURCES.join(' or ')}`,
            'Example: mail2fa migrate-from roundcube --dry-run',
          );
        const clear = Boolean(flags.clearPlaintext || flags.clearSource);
        if (source === 'roundcube')
          return migrateFromForeignStore(
            g,
            out,
            source,
            { dryRun: Boolean(flags.dryRun), clear, skipInvalid: Boolean(flags.skipInvalid) },
            flags.store,
          );
        if (flags.store !== undefined) throw usageError('--store applies to migrate-from roundcube only');
        const options = {
          dryRun: Boolean(flags.dryRun),
          clearPlaintext: clear,
          skipInvalid: Boolean(flags.skipInvalid),
        };
        return withContext(contextOptions(g), async (ctx) => {
          if (options.clearPlaintext && !options.dryRun && !g.yes) {
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
async function migrateFromForeignStore(
  g: ReturnType<typeof globalOptions>,
  out: Output,
  kind: string,
  options: { dryRun: boolean; clear: boolean; skipInvalid: boolean },
  storeName: string | undefined,
): Promise<number | void> {
  return withContext(contextOptions(g), async (ctx) => {
    const store = await sourceStore(ctx, kind, storeName);
    if (options.clear && !options.dryRun && !g.yes) {
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
