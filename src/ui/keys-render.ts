/** Human rendering of `keys check`, `keys rotate` and `keys generate`, and the `--json` documents they print. */
import type { KeyCheckReport, KeyFailure, RotateReport } from '../core/keys.js';
import type { MasterKey } from '../crypto/keys.js';
import { escapeControl } from '../text.js';
import { formatTable } from './table.js';

const CHECK_HINT =
  'load the key this database was encrypted with (MAIL2FA_KEY_FILE / key.file); if a rotation is under way, its previous key must be next to the key file as <key file>.old, and `mail2fa keys rotate` finishes it (docs/keys.md).';

/** The `keys check --json` document: the report, and an error when some stored value does not decrypt. */
export function keyCheckDocument(report: KeyCheckReport): Record<string, unknown> {
  if (report.ok) return { ...report };
  return {
    ...report,
    error: {
      code: 'undecryptable',
      message: `${report.failed} stored value(s) do not decrypt with key ${report.keyId}`,
      hint: 'Load the key this database was encrypted with (MAIL2FA_KEY_FILE / key.file); during a rotation keep the previous key as <key file>.old and run `mail2fa keys rotate` to finish (docs/keys.md).',
    },
  };
}

/** The listed failures (never a secret), and how many more there were when the list was cut. */
function failureLines(failures: KeyFailure[], truncated: boolean, failed: number): string[] {
  const lines = failures.map(
    (failure) => `  ${failure.table}.${failure.column} of ${escapeControl(failure.account)}: ${failure.reason}`,
  );
  if (truncated) lines.push(`  … and ${failed - failures.length} more`);
  return lines;
}

/** `keys check` for humans: per-column counts, then the verdict (stdout) and, on failure, a hint (stderr). */
export function keyCheckText(report: KeyCheckReport): { text: string; notes: string[] } {
  const { text: table } = formatTable(
    ['column', 'ok', 'failed'],
    [
      ['STORED VALUES', 'OK', 'FAILED'],
      ...report.columns.map((count) => [`${count.table}.${count.column}`, count.ok, count.failed]),
    ],
  );
  if (report.ok)
    return {
      text: `${table}all ${report.decrypted} stored secret(s) decrypt with key ${report.keyId}\n`,
      notes: [],
    };
  const lines = [
    `${report.failed} stored value(s) do NOT decrypt with key ${report.keyId}:`,
    ...failureLines(report.failures, report.failuresTruncated, report.failed),
  ];
  return { text: `${table}${lines.join('\n')}\n`, notes: [`hint: ${CHECK_HINT}`] };
}

/** Where the key in use came from, as much as a rotation's advice needs. */
export interface KeySource {
  source: MasterKey['source'];
  /** key.file of the configuration, if set. */
  configuredFile: string | undefined;
  /** The database URL (an embedded database reads `<database>.key`). */
  databaseUrl: string;
}

/** What the operator changes after a rotation to a key file that was not installed in place of the current one. */
function keySourceAdvice(key: KeySource, newFile: string): string {
  if (key.source === 'env')
    return `Now replace MAIL2FA_KEY everywhere mail2fa runs: unset it and set MAIL2FA_KEY_FILE=${newFile} (or put the new key into MAIL2FA_KEY). Until then, processes holding only the old key cannot read rotated rows: a key file makes the switch seamless (docs/keys.md).`;
  if (key.source === 'file' && key.configuredFile)
    return `Now point key.file in the config (or MAIL2FA_KEY_FILE) at ${newFile}; it is ${key.configuredFile} today.`;
  // The embedded default reads <database>.key.
  const embedded = `${key.databaseUrl.slice('sqlite:'.length)}.key`;
  return `Now replace the embedded key file: mv ${embedded} ${embedded}.old && mv ${newFile} ${embedded}  (or set MAIL2FA_KEY_FILE=${newFile}).`;
}

/** What to do after a rotation: none when it only finished an interrupted one. */
export function rotationAdvice(
  rotation: { newKeyFile: string | undefined; installed: string | undefined; previousKeyFile: string | undefined },
  key: KeySource,
): string | undefined {
  if (rotation.installed)
    return `The new key is now the key file ${rotation.installed}; the old key is kept as ${rotation.previousKeyFile} (still read while rows move; backups taken before now need it). Other hosts: copy both files there (docs/keys.md).`;
  return rotation.newKeyFile ? keySourceAdvice(key, rotation.newKeyFile) : undefined;
}

/** The `keys rotate --json` document: the report, the files involved and the advice. */
export function rotationDocument(
  report: RotateReport,
  rotation: { newKeyFile: string | undefined; installed: string | undefined; previousKeyFile: string | undefined },
  advice: string | undefined,
): Record<string, unknown> {
  return {
    ...report,
    ...(rotation.newKeyFile ? { newKeyFile: rotation.newKeyFile } : {}),
    ...(rotation.installed ? { keyFile: rotation.installed, previousKeyFile: rotation.previousKeyFile } : {}),
    ...(advice ? { next: advice } : {}),
  };
}

/** `keys rotate` for humans: what moved, and the advice. File names in the advice are escaped. */
export function rotationText(report: RotateReport, advice: string | undefined): string {
  const done =
    `re-encrypted ${report.reencrypted} stored secret(s) in ${report.rows} row(s) under key ${report.toKeyId} (was ${report.fromKeyId}) in short batches, ${(report.elapsedMs / 1000).toFixed(1)} s` +
    (report.alreadyNew ? `; ${report.alreadyNew} were already under the new key` : '');
  return `${done}\n${advice ? `${escapeControl(advice)}\n` : ''}`;
}

/** `keys generate` for humans. */
export function generatedKeyText(result: { file: string; keyId: string }): string {
  const file = escapeControl(result.file);
  return `created key file ${file} (key ${result.keyId}, mode 0600)\nBack it up. To move stored secrets to it: mail2fa keys rotate --new-key-file ${file}\n`;
}
