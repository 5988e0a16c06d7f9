/** The `stores:` list of the configuration: validated with each store's own options schema, every problem at once. */
import { describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import type { Mail2faError } from '../../src/errors.js';

const env = { MAIL2FA_HOME: '/nonexistent/mail2fa-home' };
const load = (configObject: unknown) => loadConfig({ configObject, env });

describe('stores: configuration', () => {
  it("default: mail2fa's own store alone", async () => {
    expect((await load({})).stores).toEqual([]);
  });

  it('a PostfixAdmin store in another database, options defaulted by its schema', async () => {
    const config = await load({
      stores: [
        {
          name: 'pfa',
          kind: 'postfixadmin',
          db: { url: 'mysql://ro:pw@db2.example:3306/postfixadmin' },
          tablePrefix: 'pfa_',
          options: { totpEnabled: false },
        },
      ],
    });
    expect(config.stores).toEqual([
      {
        name: 'pfa',
        kind: 'postfixadmin',
        db: { url: 'mysql://ro:pw@db2.example:3306/postfixadmin', connectTimeoutMs: 5000 },
        tablePrefix: 'pfa_',
        allowPlaintextWrites: false,
        options: {
          table: 'mailbox',
          usernameColumn: 'username',
          secretColumn: 'totp_secret',
          activeColumn: 'active',
          totpEnabled: false,
        },
      },
    ]);
  });

  it('accounts.preset: postfixadmin keeps working: its totp_secret column becomes a store named "postfixadmin"', async () => {
    const config = await load({ accounts: { preset: 'postfixadmin', tablePrefix: 'px_' } });
    expect(config.stores).toEqual([
      {
        name: 'postfixadmin',
        kind: 'postfixadmin',
        tablePrefix: '',
        allowPlaintextWrites: false,
        options: {
          table: 'px_mailbox',
          usernameColumn: 'username',
          secretColumn: 'totp_secret',
          activeColumn: 'active',
          totpEnabled: true,
        },
      },
    ]);
    // …unless the column is switched off, or a postfixadmin store is configured explicitly.
    expect((await load({ accounts: { preset: 'postfixadmin', columns: { totpSecret: null } } })).stores).toEqual([]);
    const explicit = await load({
      accounts: { preset: 'postfixadmin' },
      stores: [{ name: 'web', kind: 'postfixadmin', db: { url: 'sqlite:/tmp/pfa.sqlite' } }],
    });
    expect(explicit.stores.map((s) => s.name)).toEqual(['web']);
  });

  it('every problem at once (78): unknown kind, mail2fa listed, duplicate or reserved names, bad options and URLs', async () => {
    const err = (await load({
      stores: [
        { name: 'pfa', kind: 'postfixadmin', options: { table: 'mail box', colour: 'red' } },
        { name: 'pfa', kind: 'vpopmail' },
        { name: 'mail2fa', kind: 'mail2fa' },
        { name: 'Bad Name', kind: 'postfixadmin' },
        { name: 'other', kind: 'postfixadmin', db: { url: 'ftp://db.example/pfa' } },
      ],
    }).catch((e: unknown) => e)) as Mail2faError;
    expect(err.exitCode).toBe(78);
    const lines = err.message
      .split('\n')
      .slice(1)
      .map((l) => l.trim());
    expect(err.message).toMatch(/^invalid configuration \(8 problems\)/);
    expect(lines).toContain(
      'config: stores.3.name: must be lower-case letters, digits, - or _ (at most 32), starting with a letter',
    );
    expect(lines).toContainEqual(
      expect.stringMatching(/^config: stores\.0\.options\.table: must be a plain SQL identifier/),
    );
    expect(lines).toContainEqual(expect.stringMatching(/^config: stores\.0\.options: Unrecognized key: "colour"/));
    expect(lines).toContain('config: stores.1.name: "pfa" is used twice');
    expect(lines).toContainEqual(
      expect.stringMatching(/^config: stores\.4\.db\.url: expected sqlite:PATH, mysql:\/\//),
    );
    expect(lines).toContainEqual(
      expect.stringMatching(/^config: stores\.1\.kind: unknown store kind "vpopmail" \(known: .*postfixadmin/),
    );
    expect(lines).toContain('config: stores.2.name: "mail2fa" is the name of mail2fa\'s own store');
    expect(lines).toContain(
      "config: stores.2.kind: mail2fa's own store is always on (and first); list only foreign stores here",
    );
  });
});
