/**
 * Human rendering of `migrate-from postfixadmin` (src/core/postfixadmin.ts) and `migrate-from <store>`
 * (src/core/migrate-store.ts): a table per account and a total on stdout, advice as notes for stderr. `--json`
 * prints the report itself, with the refusal as its error.
 */
import type { MigrationReport } from '../core/postfixadmin.js';
import type { StoreMigrationReport } from '../core/migrate-store.js';
import type { Mail2faError } from '../errors.js';
import { formatTable } from './table.js';

/** Text for stdout and notes for stderr, in order. */
export interface MigrationText {
  text: string;
  notes: string[];
}

/** The `--json` document of either migration: the report, and the refusal's error when there was one. */
export function migrationDocument(
  report: MigrationReport | StoreMigrationReport,
  refusal: Mail2faError | undefined,
): Record<string, unknown> {
  return {
    ...report,
    ...(refusal ? { error: { code: refusal.code, message: refusal.message, hint: refusal.hint } } : {}),
  };
}

/** What clearing PostfixAdmin's plaintext copy turns off. */
export const POSTFIXADMIN_CLEAR_EFFECT =
  "PostfixAdmin's own TOTP is off for a mailbox once its plaintext column is empty: PostfixAdmin's login stops asking for its code, " +
  'and its documented Dovecot query stops refusing IMAP/SMTP password logins that come without an app password.';

/** The question before `--clear-plaintext` changes anything, from a dry run's report; none when nothing is cleared. */
export function clearPlaintextQuestion(preview: MigrationReport): string | undefined {
  const clearing = preview.migrated + preview.alreadyMigrated;
  if (preview.refused || clearing === 0) return undefined;
  const what =
    preview.migrated > 0
      ? `Migrate ${preview.migrated} account(s) and clear ${clearing} plaintext secret(s)`
      : `Clear ${clearing} plaintext secret(s) of accounts migrated before`;
  return `${what} in ${preview.source}? ${POSTFIXADMIN_CLEAR_EFFECT}`;
}

export function postfixadminMigrationText(report: MigrationReport): MigrationText {
  const verb = report.dryRun ? 'would migrate' : 'migrated';
  const label: Record<MigrationReport['accounts'][number]['outcome'], string> = {
    migrate: report.refused ? 'blocked' : verb,
    enrolled: 'skipped',
    clear: report.refused ? 'blocked' : report.dryRun ? 'would clear' : 'cleared',
    invalid: report.refused ? 'INVALID' : 'left as is',
  };
  const note = (account: MigrationReport['accounts'][number]) =>
    account.outcome === 'enrolled'
      ? 'already enrolled in mail2fa: left untouched'
      : account.outcome === 'clear'
        ? 'migrated before (same secret): plaintext only'
        : (account.problem ?? '');
  let text = `${report.found} mailbox(es) with a PostfixAdmin TOTP secret in ${report.source}${report.dryRun ? ' (dry run: nothing is changed)' : ''}\n`;
  if (report.accounts.length) {
    const rows = report.accounts.map((account) => [
      account.email,
      account.active ? 'yes' : 'no',
      label[account.outcome],
      note(account),
    ]);
    text += formatTable(
      ['account', 'active', 'result', 'note'],
      [['ACCOUNT', 'ACTIVE', 'RESULT', 'NOTE'], ...rows],
    ).text;
  }
  if (report.refused)
    return { text: `${text}refused: ${report.invalid} invalid secret(s); nothing was changed\n`, notes: [] };
  const cleared = report.clearPlaintext
    ? report.dryRun
      ? `; would clear ${report.migrated + report.alreadyMigrated} plaintext secret(s)`
      : `; cleared ${report.cleared} plaintext secret(s)`
    : '';
  text += `${verb} ${report.migrated} account(s) into mail2fa's encrypted storage${report.dryRun ? '' : ' (one transaction)'}; ${report.skipped} skipped; ${report.invalid} invalid${cleared}\n`;
  const notes: string[] = [];
  if (report.migrated === 0 && report.alreadyMigrated === 0) return { text, notes };
  if (report.migrated > 0)
    notes.push(
      'Recovery codes: none were created for the migrated accounts. Each user can create ten with `mail2fa codes regenerate <email>` (password + a current code).',
    );
  if (report.clearPlaintext)
    notes.push(
      `${report.dryRun ? 'With --clear-plaintext, ' : ''}${POSTFIXADMIN_CLEAR_EFFECT} Codes are now checked by mail2fa (\`mail2fa verify\`) only.`,
    );
  else
    notes.push(
      `The plaintext secrets are still in ${report.source}, and PostfixAdmin still enforces its own TOTP with them.`,
      `To remove them, run again with --clear-plaintext once your webmail checks codes with mail2fa. ${POSTFIXADMIN_CLEAR_EFFECT}`,
    );
  return { text, notes };
}

const STORE_RESULT: Record<StoreMigrationReport['accounts'][number]['outcome'], string> = {
  migrate: 'migrated',
  enrolled: 'skipped',
  'no-mailbox': 'skipped',
  invalid: 'INVALID',
};

/** What turning the store's own copy off means, per store kind. */
export function clearEffect(kind: string): string {
  return kind === 'roundcube'
    ? "Roundcube's twofactor_gauthenticator plugin stops asking these users for a code once its settings are removed; its remembered devices end."
    : `${kind}'s own 2FA stops asking these users for a code once its copy is removed.`;
}

/** The question before `--clear-source` changes anything, from a dry run's report; none when nothing is migrated. */
export function clearSourceQuestion(preview: StoreMigrationReport): string | undefined {
  if (preview.refused || preview.migrated === 0) return undefined;
  return `Migrate ${preview.migrated} account(s) and remove their 2FA settings from store ${preview.store}? ${clearEffect(preview.kind)}`;
}

export function storeMigrationText(report: StoreMigrationReport): MigrationText {
  const verb = report.dryRun ? 'would migrate' : 'migrated';
  let text = `${report.found} account(s) with 2FA in store ${report.store} (${report.kind})${report.dryRun ? ' (dry run: nothing is changed)' : ''}\n`;
  if (report.accounts.length) {
    const rows = report.accounts.map((account) => {
      const result =
        account.outcome === 'migrate'
          ? report.refused
            ? 'blocked'
            : verb
          : account.outcome === 'invalid' && !report.refused
            ? 'left as is'
            : STORE_RESULT[account.outcome];
      const note =
        account.outcome === 'enrolled'
          ? 'already enrolled in mail2fa: left untouched'
          : account.outcome === 'no-mailbox'
            ? 'no mailbox with this address: left untouched'
            : (account.problem ?? (account.weak ? 'weak secret (under 128 bits): consider re-enrolling' : ''));
      return [account.email, result, account.refs.join(' '), note];
    });
    text += formatTable(['account', 'result', 'rows', 'note'], [['ACCOUNT', 'RESULT', 'ROWS', 'NOTE'], ...rows]).text;
  }
  if (report.refused)
    return { text: `${text}refused: ${report.invalid} value(s) cannot be migrated; nothing was changed\n`, notes: [] };
  const cleared = report.clear
    ? report.dryRun
      ? `; would remove ${report.kind}'s copy of each`
      : `; removed ${report.kind}'s copy from ${report.cleared} row(s)`
    : '';
  text += `${verb} ${report.migrated} account(s) into mail2fa's encrypted storage${report.dryRun ? '' : ' (one transaction)'}; ${report.skipped} already enrolled; ${report.noMailbox} without a mailbox; ${report.invalid} invalid${cleared}\n`;
  const notes: string[] = [];
  if (report.migrated === 0) return { text, notes };
  if (report.weak > 0)
    notes.push(
      `${report.weak} migrated secret(s) are shorter than 128 bits (the plugin generates 80-bit secrets); they keep working, re-enrolling makes them stronger.`,
    );
  notes.push(
    'Recovery codes: none were carried over. Each user can create ten with `mail2fa codes regenerate <email>` (password + a current code).',
  );
  if (report.clear)
    notes.push(
      `${report.dryRun ? 'With --clear-source, ' : ''}${clearEffect(report.kind)} Codes are then checked by mail2fa (\`mail2fa verify\`) only.`,
    );
  else
    notes.push(
      `The secrets are still in store ${report.store}, and ${report.kind} still asks for its own code.`,
      `To remove them, run again with --clear-source once your webmail checks codes with mail2fa. ${clearEffect(report.kind)}`,
    );
  return { text, notes };
}
