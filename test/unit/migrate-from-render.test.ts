/** `migrate-from postfixadmin` and `migrate-from <store>` for humans: the table, the total, the advice notes. */
import { describe, expect, it } from 'vitest';
import type { StoreMigrationReport } from '../../src/core/migrate-store.js';
import { migrationRefusal } from '../../src/core/migrate-store.js';
import { postfixadminRefusal, type MigrationReport } from '../../src/core/postfixadmin.js';
import {
  clearPlaintextQuestion,
  clearSourceQuestion,
  migrationDocument,
  postfixadminMigrationText,
  POSTFIXADMIN_CLEAR_EFFECT,
  storeMigrationText,
} from '../../src/ui/migrate-from-render.js';

const pfa = (o: Partial<MigrationReport> = {}): MigrationReport => ({
  ok: true,
  dryRun: false,
  clearPlaintext: false,
  source: 'mailbox.totp_secret',
  found: 3,
  migrated: 1,
  skipped: 1,
  alreadyMigrated: 0,
  invalid: 1,
  cleared: 0,
  refused: false,
  accounts: [
    { email: 'jane@example.com', active: true, outcome: 'migrate' },
    { email: 'joe@example.com', active: false, outcome: 'enrolled' },
    { email: 'eve@example.com\u001b[8m', active: true, outcome: 'invalid', problem: 'not base32' },
  ],
  ...o,
});

const store = (o: Partial<StoreMigrationReport> = {}): StoreMigrationReport => ({
  ok: true,
  dryRun: true,
  clear: true,
  store: 'rc',
  kind: 'roundcube',
  found: 3,
  migrated: 1,
  skipped: 0,
  noMailbox: 1,
  invalid: 1,
  weak: 1,
  cleared: 0,
  refused: false,
  accounts: [
    { email: 'jane@example.com', outcome: 'migrate', weak: true, refs: ['users.user_id=1'] },
    { email: 'ghost@example.com', outcome: 'no-mailbox', weak: false, refs: ['users.user_id=2'] },
    { email: 'eve@example.com', outcome: 'invalid', weak: false, problem: 'bad\rvalue', refs: ['users.user_id=3'] },
  ],
  ...o,
});

describe('migrate-from postfixadmin', () => {
  it('migrated, plaintext kept: the table (emails escaped), the total, and where the plaintext still is', () => {
    expect(postfixadminMigrationText(pfa())).toEqual({
      text:
        '3 mailbox(es) with a PostfixAdmin TOTP secret in mailbox.totp_secret\n' +
        'ACCOUNT                 ACTIVE  RESULT      NOTE\n' +
        'jane@example.com        yes     migrated    -\n' +
        'joe@example.com         no      skipped     already enrolled in mail2fa: left untouched\n' +
        'eve@example.com\\x1b[8m  yes     left as is  not base32\n' +
        "migrated 1 account(s) into mail2fa's encrypted storage (one transaction); 1 skipped; 1 invalid\n",
      notes: [
        'Recovery codes: none were created for the migrated accounts. Each user can create ten with `mail2fa codes regenerate <email>` (password + a current code).',
        'The plaintext secrets are still in mailbox.totp_secret, and PostfixAdmin still enforces its own TOTP with them.',
        `To remove them, run again with --clear-plaintext once your webmail checks codes with mail2fa. ${POSTFIXADMIN_CLEAR_EFFECT}`,
      ],
    });
  });

  it('dry run with --clear-plaintext: what would be cleared, and what clearing turns off', () => {
    const rendered = postfixadminMigrationText(pfa({ dryRun: true, clearPlaintext: true, alreadyMigrated: 2 }));
    expect(rendered.text.split('\n')[0]).toBe(
      '3 mailbox(es) with a PostfixAdmin TOTP secret in mailbox.totp_secret (dry run: nothing is changed)',
    );
    expect(rendered.text.split('\n').at(-2)).toBe(
      "would migrate 1 account(s) into mail2fa's encrypted storage; 1 skipped; 1 invalid; would clear 3 plaintext secret(s)",
    );
    expect(rendered.notes.at(-1)).toBe(
      `With --clear-plaintext, ${POSTFIXADMIN_CLEAR_EFFECT} Codes are now checked by mail2fa (\`mail2fa verify\`) only.`,
    );
  });

  it('refused: every row blocked or INVALID, one refusal line, no notes; the JSON carries the refusal', () => {
    const report = pfa({ refused: true, ok: false, migrated: 0 });
    const rendered = postfixadminMigrationText(report);
    expect(rendered.notes).toEqual([]);
    expect(rendered.text).toContain('jane@example.com        yes     blocked  -\n');
    expect(rendered.text).toContain('INVALID  not base32\n');
    expect(rendered.text.endsWith('refused: 1 invalid secret(s); nothing was changed\n')).toBe(true);
    const refusal = postfixadminRefusal(report);
    expect(refusal.exitCode).toBe(65);
    expect(migrationDocument(report, refusal)).toEqual({
      ...report,
      error: { code: 'invalid_secrets', message: refusal.message, hint: refusal.hint },
    });
    expect(migrationDocument(pfa(), undefined)).toEqual(pfa());
  });

  it('asks before clearing only when there is something to clear', () => {
    expect(clearPlaintextQuestion(pfa({ migrated: 2, alreadyMigrated: 1 }))).toBe(
      `Migrate 2 account(s) and clear 3 plaintext secret(s) in mailbox.totp_secret? ${POSTFIXADMIN_CLEAR_EFFECT}`,
    );
    expect(clearPlaintextQuestion(pfa({ migrated: 0, alreadyMigrated: 1 }))).toBe(
      `Clear 1 plaintext secret(s) of accounts migrated before in mailbox.totp_secret? ${POSTFIXADMIN_CLEAR_EFFECT}`,
    );
    expect(clearPlaintextQuestion(pfa({ migrated: 0 }))).toBeUndefined();
    expect(clearPlaintextQuestion(pfa({ refused: true }))).toBeUndefined();
  });
});

describe('migrate-from <store>', () => {
  const EFFECT =
    "Roundcube's twofactor_gauthenticator plugin stops asking these users for a code once its settings are removed; its remembered devices end.";

  it('dry run with --clear-source: table with store rows, weak secrets noted, the total and the notes', () => {
    expect(storeMigrationText(store())).toEqual({
      text:
        '3 account(s) with 2FA in store rc (roundcube) (dry run: nothing is changed)\n' +
        'ACCOUNT            RESULT         ROWS             NOTE\n' +
        'jane@example.com   would migrate  users.user_id=1  weak secret (under 128 bits): consider re-enrolling\n' +
        'ghost@example.com  skipped        users.user_id=2  no mailbox with this address: left untouched\n' +
        'eve@example.com    left as is     users.user_id=3  bad\\rvalue\n' +
        "would migrate 1 account(s) into mail2fa's encrypted storage; 0 already enrolled; 1 without a mailbox; 1 invalid; would remove roundcube's copy of each\n",
      notes: [
        '1 migrated secret(s) are shorter than 128 bits (the plugin generates 80-bit secrets); they keep working, re-enrolling makes them stronger.',
        'Recovery codes: none were carried over. Each user can create ten with `mail2fa codes regenerate <email>` (password + a current code).',
        `With --clear-source, ${EFFECT} Codes are then checked by mail2fa (\`mail2fa verify\`) only.`,
      ],
    });
  });

  it('migrated without clearing: the secrets are still in the store', () => {
    const rendered = storeMigrationText(store({ dryRun: false, clear: false, weak: 0 }));
    expect(rendered.text.split('\n').at(-2)).toBe(
      "migrated 1 account(s) into mail2fa's encrypted storage (one transaction); 0 already enrolled; 1 without a mailbox; 1 invalid",
    );
    expect(rendered.notes.slice(1)).toEqual([
      'The secrets are still in store rc, and roundcube still asks for its own code.',
      `To remove them, run again with --clear-source once your webmail checks codes with mail2fa. ${EFFECT}`,
    ]);
  });

  it('refused: the refusal line only; the JSON carries the refusal', () => {
    const report = store({ refused: true, ok: false, migrated: 0, weak: 0 });
    const rendered = storeMigrationText(report);
    expect(rendered).toEqual({
      text:
        '3 account(s) with 2FA in store rc (roundcube) (dry run: nothing is changed)\n' +
        'ACCOUNT            RESULT   ROWS             NOTE\n' +
        'jane@example.com   blocked  users.user_id=1  weak secret (under 128 bits): consider re-enrolling\n' +
        'ghost@example.com  skipped  users.user_id=2  no mailbox with this address: left untouched\n' +
        'eve@example.com    INVALID  users.user_id=3  bad\\rvalue\n' +
        'refused: 1 value(s) cannot be migrated; nothing was changed\n',
      notes: [],
    });
    const refusal = migrationRefusal(report);
    expect(migrationDocument(report, refusal)).toMatchObject({ error: { code: 'invalid_secrets' } });
  });

  it('asks before removing the store copy only when something is migrated', () => {
    expect(clearSourceQuestion(store())).toBe(
      `Migrate 1 account(s) and remove their 2FA settings from store rc? ${EFFECT}`,
    );
    expect(clearSourceQuestion(store({ migrated: 0 }))).toBeUndefined();
    expect(clearSourceQuestion(store({ kind: 'mailcow' }))).toBe(
      "Migrate 1 account(s) and remove their 2FA settings from store rc? mailcow's own 2FA stops asking these users for a code once its copy is removed.",
    );
  });
});
