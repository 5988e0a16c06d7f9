/** `keys check`, `keys rotate` and `keys generate` for humans, and their `--json` documents. */
import { describe, expect, it } from 'vitest';
import type { KeyCheckReport, RotateReport } from '../../src/core/keys.js';
import {
  generatedKeyText,
  keyCheckDocument,
  keyCheckText,
  rotationAdvice,
  rotationDocument,
  rotationText,
  type KeySource,
} from '../../src/ui/keys-render.js';

const columns = [
  { table: 'mail2fa_factor', column: 'secret_ct', ok: 3, failed: 1 },
  { table: 'mail2fa_code_key', column: 'key_ct', ok: 1, failed: 0 },
];
const good: KeyCheckReport = {
  ok: true,
  keyId: 'k1',
  decrypted: 4,
  failed: 0,
  columns: columns.map((count) => ({ ...count, failed: 0 })),
  failures: [],
  failuresTruncated: false,
};
const bad: KeyCheckReport = {
  ok: false,
  keyId: 'k1',
  decrypted: 4,
  failed: 3,
  columns,
  failures: [
    {
      table: 'mail2fa_factor',
      column: 'secret_ct',
      account: 'jane@example.com\u001b[2K',
      reason: 'sealed with another key (k0)',
    },
  ],
  failuresTruncated: true,
};
const TABLE =
  'STORED VALUES             OK  FAILED\nmail2fa_factor.secret_ct  3   1\nmail2fa_code_key.key_ct   1   0\n';

describe('keys check', () => {
  it('all decrypt: the counts, then the verdict; no notes', () => {
    expect(keyCheckText(good)).toEqual({
      text: 'STORED VALUES             OK  FAILED\nmail2fa_factor.secret_ct  3   0\nmail2fa_code_key.key_ct   1   0\nall 4 stored secret(s) decrypt with key k1\n',
      notes: [],
    });
  });

  it('failures: listed with the account escaped, the rest counted, and a hint for stderr', () => {
    expect(keyCheckText(bad)).toEqual({
      text:
        TABLE +
        '3 stored value(s) do NOT decrypt with key k1:\n' +
        '  mail2fa_factor.secret_ct of jane@example.com\\x1b[2K: sealed with another key (k0)\n' +
        '  … and 2 more\n',
      notes: [
        'hint: load the key this database was encrypted with (MAIL2FA_KEY_FILE / key.file); if a rotation is under way, its previous key must be next to the key file as <key file>.old, and `mail2fa keys rotate` finishes it (docs/keys.md).',
      ],
    });
  });

  it('the JSON document: the report, plus an error only when something does not decrypt', () => {
    expect(keyCheckDocument(good)).toEqual(good);
    expect(keyCheckDocument(bad)).toEqual({
      ...bad,
      error: {
        code: 'undecryptable',
        message: '3 stored value(s) do not decrypt with key k1',
        hint: 'Load the key this database was encrypted with (MAIL2FA_KEY_FILE / key.file); during a rotation keep the previous key as <key file>.old and run `mail2fa keys rotate` to finish (docs/keys.md).',
      },
    });
  });
});

describe('keys rotate', () => {
  const report: RotateReport = {
    ok: true,
    fromKeyId: 'k0',
    toKeyId: 'k1',
    reencrypted: 5,
    alreadyNew: 2,
    rows: 4,
    columns: [],
    elapsedMs: 1234,
  };
  const notInstalled = { newKeyFile: '/etc/mail2fa/key.new', installed: undefined, previousKeyFile: undefined };
  const source = (o: Partial<KeySource>): KeySource => ({
    source: 'file',
    configuredFile: undefined,
    databaseUrl: 'sqlite:/var/lib/mail2fa/mail2fa.sqlite',
    ...o,
  });

  it('advice per key source: installed in place, MAIL2FA_KEY, key.file, the embedded default; none when finishing', () => {
    expect(
      rotationAdvice(
        { newKeyFile: '/etc/k.new', installed: '/etc/k', previousKeyFile: '/etc/k.old' },
        source({ source: 'env' }),
      ),
    ).toBe(
      'The new key is now the key file /etc/k; the old key is kept as /etc/k.old (still read while rows move; backups taken before now need it). Other hosts: copy both files there (docs/keys.md).',
    );
    expect(rotationAdvice(notInstalled, source({ source: 'env' }))).toMatch(
      /^Now replace MAIL2FA_KEY everywhere mail2fa runs: unset it and set MAIL2FA_KEY_FILE=\/etc\/mail2fa\/key.new /,
    );
    expect(rotationAdvice(notInstalled, source({ configuredFile: '/etc/mail2fa/key' }))).toBe(
      'Now point key.file in the config (or MAIL2FA_KEY_FILE) at /etc/mail2fa/key.new; it is /etc/mail2fa/key today.',
    );
    expect(rotationAdvice(notInstalled, source({ source: 'created' }))).toBe(
      'Now replace the embedded key file: mv /var/lib/mail2fa/mail2fa.sqlite.key /var/lib/mail2fa/mail2fa.sqlite.key.old && mv /etc/mail2fa/key.new /var/lib/mail2fa/mail2fa.sqlite.key  (or set MAIL2FA_KEY_FILE=/etc/mail2fa/key.new).',
    );
    expect(
      rotationAdvice({ newKeyFile: undefined, installed: undefined, previousKeyFile: undefined }, source({})),
    ).toBe(undefined);
  });

  it('text: what moved and how long, then the advice with control characters escaped', () => {
    expect(rotationText(report, 'Now point key.file at /etc/k\u001b[1m')).toBe(
      're-encrypted 5 stored secret(s) in 4 row(s) under key k1 (was k0) in short batches, 1.2 s; 2 were already under the new key\n' +
        'Now point key.file at /etc/k\\x1b[1m\n',
    );
    expect(rotationText({ ...report, alreadyNew: 0 }, undefined)).toBe(
      're-encrypted 5 stored secret(s) in 4 row(s) under key k1 (was k0) in short batches, 1.2 s\n',
    );
  });

  it('the JSON document: the report, the files involved and the advice as `next`, each only when there is one', () => {
    const installed = { newKeyFile: '/etc/k.new', installed: '/etc/k', previousKeyFile: '/etc/k.old' };
    expect(rotationDocument(report, installed, 'advice')).toEqual({
      ...report,
      newKeyFile: '/etc/k.new',
      keyFile: '/etc/k',
      previousKeyFile: '/etc/k.old',
      next: 'advice',
    });
    expect(
      rotationDocument(report, { newKeyFile: undefined, installed: undefined, previousKeyFile: undefined }, undefined),
    ).toEqual(report);
  });
});

describe('keys generate', () => {
  it('names the file and the next step; the file name is escaped', () => {
    expect(generatedKeyText({ file: '/etc/mail2fa/key.new', keyId: 'k2' })).toBe(
      'created key file /etc/mail2fa/key.new (key k2, mode 0600)\nBack it up. To move stored secrets to it: mail2fa keys rotate --new-key-file /etc/mail2fa/key.new\n',
    );
    expect(generatedKeyText({ file: '/tmp/a\nb', keyId: 'k2' })).toBe(
      'created key file /tmp/a\\nb (key k2, mode 0600)\nBack it up. To move stored secrets to it: mail2fa keys rotate --new-key-file /tmp/a\\nb\n',
    );
  });
});
