/** Human rendering of `demo`: the mailboxes with their passwords, the authenticator secrets, what to try next. */
import type { DemoResult } from '../core/demo.js';
import { escapeControl } from '../text.js';
import { formatTable } from './table.js';

const TRY_NEXT =
  '\nTry:\n  mail2fa status --all\n  mail2fa enable alice@example.com --method app\n  mail2fa recover bob@example.com --ticket T-1001\n';

export function demoText(result: DemoResult): string {
  const database = escapeControl(result.database);
  const head = result.created
    ? `Demo mailboxes created in ${database} (these passwords are for trying mail2fa only):\n`
    : `The demo mailboxes already exist in ${database}; nothing changed (\`mail2fa demo --reset\` recreates them):\n`;
  const { text: table } = formatTable(
    ['email', 'password', 'hash scheme', 'state'],
    [
      ['EMAIL', 'PASSWORD', 'HASH SCHEME', 'STATE'],
      ...result.accounts.map((account) => [account.email, account.password, account.scheme, account.state]),
    ],
  );
  const appAccounts = result.accounts.filter((account) => account.totpSecret);
  const secrets = appAccounts.length
    ? [
        '\nAuthenticator secrets of the app accounts (add them to any authenticator app to get codes):',
        ...appAccounts.map((account) => `  ${account.email.padEnd(20)} ${account.totpSecret}`),
      ]
        .map((line) => `${line}\n`)
        .join('')
    : '';
  return `${head}\n${table}${secrets}${TRY_NEXT}`;
}
