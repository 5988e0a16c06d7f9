/** `demo` for humans: the mailboxes and passwords, the authenticator secrets of the app accounts, what to try. */
import { describe, expect, it } from 'vitest';
import type { DemoResult } from '../../src/core/demo.js';
import { demoText } from '../../src/ui/demo-render.js';

const result = (o: Partial<DemoResult> = {}): DemoResult => ({
  database: 'sqlite:/tmp/demo.sqlite',
  created: true,
  accounts: [
    { email: 'alice@example.com', password: 'alice-demo-pw', scheme: 'SHA512-CRYPT', active: true, state: '2FA off' },
    {
      email: 'bob@example.com',
      password: 'bob-demo-pw',
      scheme: 'BLF-CRYPT',
      active: true,
      state: '2FA on (authenticator app)',
      totpSecret: 'JBSWY3DPEHPK3PXP',
    },
  ],
  ...o,
});

const TRY =
  'Try:\n  mail2fa status --all\n  mail2fa enable alice@example.com --method app\n  mail2fa recover bob@example.com --ticket T-1001\n';

describe('demoText', () => {
  it('created: the table, the secrets of the app accounts, then what to try', () => {
    expect(demoText(result())).toBe(
      'Demo mailboxes created in sqlite:/tmp/demo.sqlite (these passwords are for trying mail2fa only):\n\n' +
        'EMAIL              PASSWORD       HASH SCHEME   STATE\n' +
        'alice@example.com  alice-demo-pw  SHA512-CRYPT  2FA off\n' +
        'bob@example.com    bob-demo-pw    BLF-CRYPT     2FA on (authenticator app)\n' +
        '\nAuthenticator secrets of the app accounts (add them to any authenticator app to get codes):\n' +
        '  bob@example.com      JBSWY3DPEHPK3PXP\n' +
        `\n${TRY}`,
    );
  });

  it('already there: says nothing changed; no secrets section without app accounts', () => {
    const text = demoText(result({ created: false, accounts: result().accounts.slice(0, 1) }));
    expect(text).toBe(
      'The demo mailboxes already exist in sqlite:/tmp/demo.sqlite; nothing changed (`mail2fa demo --reset` recreates them):\n\n' +
        'EMAIL              PASSWORD       HASH SCHEME   STATE\n' +
        'alice@example.com  alice-demo-pw  SHA512-CRYPT  2FA off\n' +
        `\n${TRY}`,
    );
  });

  it('escapes control characters in the database name', () => {
    const text = demoText(result({ database: 'sqlite:/tmp/x\u001b]0;owned\u0007.sqlite', accounts: [] }));
    expect(text.split('\n')[0]).toBe(
      'Demo mailboxes created in sqlite:/tmp/x\\x1b]0;owned\\x07.sqlite (these passwords are for trying mail2fa only):',
    );
    for (const control of ['\u001b', '\u0007']) expect(text).not.toContain(control);
  });
});
