import { Command } from 'commander';
import { withContext } from '../context.js';
import { ExitCode, Mail2faError } from '../errors.js';
import { migrateFromStore, migrationRefusal, sourceStore } from '../core/migrate-store.js';
import { migrateFromPostfixadmin, type MigrationReport } from '../core/postfixadmin.js';
import { clearEffect, renderStoreMigration } from '../ui/store-migration-render.js';
import type { Output } from '../ui/output.js';
import { promptConfirm, requireTerminal } from '../ui/prompts.js';
import { formatTable } from '../ui/table.js';
import { MIGRATION_SOURCES, migrateFromInput, type MigrateFromInput } from './inputs/migrate-from.js';
import { parseInput } from './inputs/parse.js';
import { EXAMPLES, action, contextOptions, makeOutput } from './shared.js';

const OFF_EFFECT =
  "PostfixAdmin's own TOTP is off for a mailbox once its plaintext column is empty: PostfixAdmin's login stops asking for its code, " +
  'and its documented Dovecot query stops refusing IMAP/SMTP password logins that come without an app password.';

function refusal(r: MigrationReport): Mail2faError {
  return new Mail2faError(
    'invalid_secrets',
    `${r.invalid} PostfixAdmin TOTP secret(s) cannot be migrated (listed above); nothing was changed`,
    ExitCode.DATAERR,
    'Fix or clear those rows in PostfixAdmin, or run again with --skip-invalid to migrate the others and leave them as they are.',
  );
}

async function render(out: Output, r: MigrationReport): Promise<void> {
  const verb = r.dryRun ? 'would migrate' : 'migrated';
  const label: Record<string, string> = {
    migrate: r.refused ? 'blocked' : verb,
    enrolled: 'skipped',
    clear: r.refused ? 'blocked' : r.dryRun ? 'would clear' : 'cleared',
    invalid: r.refused ? 'INVALID' : 'left as is',
  };
  const note = (a: MigrationReport['accounts'][number]) =>
    a.outcome === 'enrolled'
      ? 'already enrolled in mail2fa: left untouched'
      : a.outcome === 'clear'
        ? 'migrated before (same secret): plaintext only'
        : (a.problem ?? '');
  await out.line(
    `${r.found} mailbox(es) with a PostfixAdmin TOTP secret in ${r.source}${r.dryRun ? ' (dry run: nothing is changed)' : ''}`,
  );
  if (r.accounts.length) {
    const rows = r.accounts.map((a) => [a.email, a.active ? 'yes' : 'no', label[a.outcome], note(a)]);
    const { text } = formatTable(
      ['account', 'active', 'result', 'note'],
      [['ACCOUNT', 'ACTIVE', 'RESULT', 'NOTE'], ...rows],
    );
    await out.write(text);
  }
  if (r.refused) {
    await out.line(`refused: ${r.invalid} invalid secret(s); nothing was changed`);
    return;
  }
  const cleared = r.clearPlaintext
    ? r.dryRun
      ? `; would clear ${r.migrated + r.alreadyMigrated} plaintext secret(s)`
      : `; cleared ${r.cleared} plaintext secret(s)`
    : '';
  await out.line(
    `${verb} ${r.migrated} account(s) into mail2fa's encrypted storage${r.dryRun ? '' : ' (one transaction)'}; ${r.skipped} skipped; ${r.invalid} invalid${cleared}`,
  );
  if (r.migrated === 0 && r.alreadyMigrated === 0) return;
  if (r.migrated > 0)
    out.note(
      'Recovery codes: none were created for the migrated accounts. Each user can create ten with `mail2fa codes regenerate <email>` (password + a current code).',
    );
  if (r.clearPlaintext)
    out.note(
      `${r.dryRun ? 'With --clear-plaintext, ' : ''}${OFF_EFFECT} Codes are now checked by mail2fa (\`mail2fa verify\`) only.`,
    );
  else {
    out.note(`The plaintext secrets are still in ${r.source}, and PostfixAdmin still enforces its own TOTP with them.`);
    out.note(
      `To remove them, run again with --clear-plaintext once your webmail checks codes with mail2fa. ${OFF_EFFECT}`,
    );
  }
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
        'No recovery codes are created: users create them with `mail2fa codes regenerate <email>`.\n' +
        'Exit codes: 0 done (or dry run fine); 64 usage, or --clear-source without a terminal or --yes; 65 invalid secrets\n' +
        '  (nothing changed); 69 database unavailable; 75 a row changed meanwhile (retry); 78 config/key/mapping/no such store;\n' +
        '  130 declined.\n',
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
            const clearing = preview.migrated + preview.alreadyMigrated;
            if (!preview.refused && clearing > 0) {
              const what =
                preview.migrated > 0
                  ? `Migrate ${preview.migrated} account(s) and clear ${clearing} plaintext secret(s)`
                  : `Clear ${clearing} plaintext secret(s) of accounts migrated before`;
              const yes = await promptConfirm(out, `${what} in ${preview.source}? ${OFF_EFFECT}`, '--yes');
              if (!yes) throw new Mail2faError('cancelled', 'not confirmed; nothing was changed', ExitCode.CANCELLED);
            }
          }
          const report = await migrateFromPostfixadmin(ctx, options);
          for (const n of ctx.notices) out.note(n);
          if (out.json) {
            const err = report.refused ? refusal(report) : undefined;
            await out.document({
              ...report,
              ...(err ? { error: { code: err.code, message: err.message, hint: err.hint } } : {}),
            });
            return err ? err.exitCode : ExitCode.OK;
          }
          await render(out, report);
          if (report.refused) throw refusal(report);
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
      if (!preview.refused && preview.migrated > 0) {
        const yes = await promptConfirm(
          out,
          `Migrate ${preview.migrated} account(s) and remove their 2FA settings from store ${store.name}? ${clearEffect(store.kind)}`,
          '--yes',
        );
        if (!yes) throw new Mail2faError('cancelled', 'not confirmed; nothing was changed', ExitCode.CANCELLED);
      }
    }
    const report = await migrateFromStore(ctx, store, options);
    for (const n of ctx.notices) out.note(n);
    const err = report.refused ? migrationRefusal(report) : undefined;
    if (out.json) {
      await out.document({
        ...report,
        ...(err ? { error: { code: err.code, message: err.message, hint: err.hint } } : {}),
      });
      return err ? err.exitCode : ExitCode.OK;
    }
    await renderStoreMigration(out, report);
    if (err) throw err;
  });
}
