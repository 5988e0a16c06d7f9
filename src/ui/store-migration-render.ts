/** Human rendering of `migrate-from <store>` (src/core/migrate-store.ts); `--json` prints the report itself. */
import type { StoreMigrationReport } from '../core/migrate-store.js';
import type { Output } from './output.js';
import { formatTable } from './table.js';

const RESULT: Record<StoreMigrationReport['accounts'][number]['outcome'], string> = {
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

export async function renderStoreMigration(out: Output, r: StoreMigrationReport): Promise<void> {
  const verb = r.dryRun ? 'would migrate' : 'migrated';
  await out.line(
    `${r.found} account(s) with 2FA in store ${r.store} (${r.kind})${r.dryRun ? ' (dry run: nothing is changed)' : ''}`,
  );
  if (r.accounts.length) {
    const rows = r.accounts.map((a) => {
      const result =
        a.outcome === 'migrate'
          ? r.refused
            ? 'blocked'
            : verb
          : a.outcome === 'invalid' && !r.refused
            ? 'left as is'
            : RESULT[a.outcome];
      const note =
        a.outcome === 'enrolled'
          ? 'already enrolled in mail2fa: left untouched'
          : a.outcome === 'no-mailbox'
            ? 'no mailbox with this address: left untouched'
            : (a.problem ?? (a.weak ? 'weak secret (under 128 bits): consider re-enrolling' : ''));
      return [a.email, result, a.refs.join(' '), note];
    });
    const { text } = formatTable(
      ['account', 'result', 'rows', 'note'],
      [['ACCOUNT', 'RESULT', 'ROWS', 'NOTE'], ...rows],
    );
    await out.write(text);
  }
  if (r.refused) {
    await out.line(`refused: ${r.invalid} value(s) cannot be migrated; nothing was changed`);
    return;
  }
  const cleared = r.clear
    ? r.dryRun
      ? `; would remove ${r.kind}'s copy of each`
      : `; removed ${r.kind}'s copy from ${r.cleared} row(s)`
    : '';
  await out.line(
    `${verb} ${r.migrated} account(s) into mail2fa's encrypted storage${r.dryRun ? '' : ' (one transaction)'}; ${r.skipped} already enrolled; ${r.noMailbox} without a mailbox; ${r.invalid} invalid${cleared}`,
  );
  if (r.migrated === 0) return;
  if (r.weak > 0)
    out.note(
      `${r.weak} migrated secret(s) are shorter than 128 bits (the plugin generates 80-bit secrets); they keep working, re-enrolling makes them stronger.`,
    );
  out.note(
    'Recovery codes: none were carried over. Each user can create ten with `mail2fa codes regenerate <email>` (password + a current code).',
  );
  if (r.clear)
    out.note(
      `${r.dryRun ? 'With --clear-source, ' : ''}${clearEffect(r.kind)} Codes are then checked by mail2fa (\`mail2fa verify\`) only.`,
    );
  else {
    out.note(`The secrets are still in store ${r.store}, and ${r.kind} still asks for its own code.`);
    out.note(
      `To remove them, run again with --clear-source once your webmail checks codes with mail2fa. ${clearEffect(r.kind)}`,
    );
  }
}
