/** Configuration: defaults < file (YAML or JSON) < environment < flags; every problem at once (78). */
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../../src/config.js';
import { Mail2faError } from '../../src/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'mail2fa-config-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));
const home = join(dir, 'home');
const baseEnv = { MAIL2FA_HOME: home };

function file(name: string, text: string): string {
  const path = join(dir, name);
  mkdirSync(join(path, '..'), { recursive: true });
  writeFileSync(path, text);
  return path;
}

async function configError(promise: Promise<unknown>): Promise<Mail2faError> {
  try {
    await promise;
  } catch (err) {
    expect(err).toBeInstanceOf(Mail2faError);
    expect((err as Mail2faError).exitCode).toBe(78);
    return err as Mail2faError;
  }
  throw new Error('expected a configuration error');
}

describe('precedence: flags > env > file > defaults', () => {
  const yaml = file(
    'layers.yaml',
    'db:\n  url: sqlite:/srv/from-file.sqlite\nissuer: File Mail\nkey:\n  file: /etc/from-file.key\n',
  );

  it('defaults: the embedded SQLite file under MAIL2FA_HOME', async () => {
    const c = await loadConfig({ env: baseEnv });
    expect(c.db.url).toBe(`sqlite:${join(home, 'mail2fa.sqlite')}`);
    expect(c.db.embedded).toBe(true);
    expect(c.db.connectTimeoutMs).toBe(5000);
    expect(c.issuer).toBe('Webmail');
    expect(c.tablePrefix).toBe('mail2fa_');
    expect(c.accounts.preset).toBe('mail2fa');
    expect(c.sms.transport).toBe('outbox');
    expect(c.configPath).toBeUndefined();
  });

  it('the file overrides the defaults', async () => {
    const c = await loadConfig({ configPath: yaml, env: baseEnv });
    expect(c.db.url).toBe('sqlite:/srv/from-file.sqlite');
    expect(c.db.embedded).toBe(false);
    expect(c.issuer).toBe('File Mail');
    expect(c.key.file).toBe('/etc/from-file.key');
  });

  it('MAIL2FA_CONFIG names the file when --config is absent', async () => {
    const c = await loadConfig({ env: { ...baseEnv, MAIL2FA_CONFIG: yaml } });
    expect(c.issuer).toBe('File Mail');
    expect(c.configPath).toBe(yaml);
  });

  it('--config beats MAIL2FA_CONFIG', async () => {
    const other = file('other.json', JSON.stringify({ issuer: 'Json Mail' }));
    const c = await loadConfig({ configPath: other, env: { ...baseEnv, MAIL2FA_CONFIG: yaml } });
    expect(c.issuer).toBe('Json Mail');
  });

  it('the environment overrides the file', async () => {
    const c = await loadConfig({
      configPath: yaml,
      env: { ...baseEnv, MAIL2FA_DB_URL: 'mysql://u:p@db.example:3306/mail', MAIL2FA_KEY_FILE: '/run/env.key' },
    });
    expect(c.db.url).toBe('mysql://u:p@db.example:3306/mail');
    expect(c.key.file).toBe('/run/env.key');
  });

  it('--db overrides the environment', async () => {
    const c = await loadConfig({
      configPath: yaml,
      dbUrl: 'sqlite:/tmp/flag.sqlite',
      env: { ...baseEnv, MAIL2FA_DB_URL: 'mysql://u:p@db.example:3306/mail' },
    });
    expect(c.db.url).toBe('sqlite:/tmp/flag.sqlite');
  });

  it('PostgreSQL URLs (postgres:// and postgresql://) are accepted as they are', async () => {
    for (const url of [
      'postgres://mail2fa:s%40cret@db.example:5432/mail',
      'postgresql://mail2fa@localhost/mail?host=/run/postgresql',
    ]) {
      expect((await loadConfig({ dbUrl: url, env: baseEnv })).db.url).toBe(url);
    }
  });

  it('an empty MAIL2FA_DB_URL counts as unset', async () => {
    const c = await loadConfig({ configPath: yaml, env: { ...baseEnv, MAIL2FA_DB_URL: '' } });
    expect(c.db.url).toBe('sqlite:/srv/from-file.sqlite');
  });

  it('JSON and YAML files are read alike', async () => {
    const j = file(
      'same.json',
      JSON.stringify({ accounts: { preset: 'postfixadmin', tablePrefix: 'pfa_' }, db: { connectTimeoutMs: 1500 } }),
    );
    const y = file(
      'same.yml',
      'accounts:\n  preset: postfixadmin\n  tablePrefix: pfa_\ndb:\n  connectTimeoutMs: 1500\n',
    );
    const a = await loadConfig({ configPath: j, env: baseEnv });
    const b = await loadConfig({ configPath: y, env: baseEnv });
    expect({ ...a, configPath: undefined }).toEqual({ ...b, configPath: undefined });
    expect(a.accounts).toMatchObject({ preset: 'postfixadmin', tablePrefix: 'pfa_' });
    expect(a.db.connectTimeoutMs).toBe(1500);
  });

  it('an empty YAML file means all defaults', async () => {
    const c = await loadConfig({ configPath: file('empty.yaml', ''), env: baseEnv });
    expect(c.issuer).toBe('Webmail');
  });
});

describe('relative paths in a config file are relative to the file, not to the working directory', () => {
  it('key.file, sms.outbox.path, sms.webhook.authHeaderFile, sms.twilio.authTokenFile and a sqlite db.url', async () => {
    const conf = file(
      'etc/mail2fa/relative.yaml',
      [
        'db:\n  url: sqlite:data/mail.sqlite',
        'key:\n  file: keys/master.key',
        'sms:\n  outbox:\n    path: spool/outbox.ndjson\n  webhook:\n    authHeaderFile: secrets/webhook-header\n  twilio:\n    authTokenFile: ../twilio.token',
      ].join('\n'),
    );
    const base = join(dir, 'etc/mail2fa');
    const c = await loadConfig({ configPath: conf, env: baseEnv });
    expect(c.db.url).toBe(`sqlite:${join(base, 'data/mail.sqlite')}`);
    expect(c.key.file).toBe(join(base, 'keys/master.key'));
    expect(c.sms.outbox.path).toBe(join(base, 'spool/outbox.ndjson'));
    expect(c.sms.webhook.authHeaderFile).toBe(join(base, 'secrets/webhook-header'));
    expect(c.sms.twilio.authTokenFile).toBe(join(dir, 'etc/twilio.token'));
    expect(c.sms.twilio.baseUrl).toBe('https://api.twilio.com');
  });

  it('absolute paths are kept; unset ones stay unset', async () => {
    const c = await loadConfig({
      configPath: file(
        'abs.yaml',
        'key:\n  file: /etc/mail2fa/master.key\nsms:\n  outbox:\n    path: /var/spool/sms.ndjson\n',
      ),
      env: baseEnv,
    });
    expect(c.key.file).toBe('/etc/mail2fa/master.key');
    expect(c.sms.outbox.path).toBe('/var/spool/sms.ndjson');
    expect(c.sms.webhook.authHeaderFile).toBeUndefined();
    expect(c.sms.twilio.authTokenFile).toBeUndefined();
  });
});

describe('validation: every problem at once, exit 78', () => {
  it('a YAML file with several mistakes lists them all', async () => {
    const bad = file(
      'bad.yaml',
      [
        'db:',
        '  url: mssql://nope/x',
        '  connectTimeoutMs: 5',
        'issuer: ""',
        'tablePrefix: "drop table;"',
        'accounts:',
        '  preset: roundcube',
        '  columns:',
        '    email: "user name"',
        'ticketPattern: "(["',
        'colour: always',
        'signOut:',
        '  action: sql',
      ].join('\n'),
    );
    const err = await configError(loadConfig({ configPath: bad, env: baseEnv }));
    for (const part of [
      'db.connectTimeoutMs',
      'issuer',
      'tablePrefix',
      'accounts.preset',
      'accounts.columns.email',
      'colour',
    ])
      expect(err.message).toContain(part);
    expect(err.message).toMatch(/invalid configuration \((\d+) problems\)/);
    expect(Number(/\((\d+) problems\)/.exec(err.message)![1])).toBeGreaterThanOrEqual(6);
    expect(err.hint).toMatch(/README/);
  });

  it('checks that need a valid file (db.url, ticketPattern, required settings) are reported together', async () => {
    const bad = file(
      'bad2.yaml',
      'db:\n  url: mssql://nope/x\nticketPattern: "(["\nsignOut:\n  action: sql\nsms:\n  transport: twilio\n',
    );
    const err = await configError(loadConfig({ configPath: bad, env: baseEnv }));
    expect(err.message).toContain('(5 problems)');
    for (const part of ['db.url', 'ticketPattern', 'signOut.sql', 'sms.twilio.accountSid', 'sms.twilio.from'])
      expect(err.message).toContain(part);
  });

  it('a bad --db and a bad file are reported in one go', async () => {
    const err = await configError(
      loadConfig({ configPath: file('bad3.yaml', 'issuer: 42\n'), dbUrl: 'ftp://x/y', env: baseEnv }),
    );
    expect(err.message).toContain('(2 problems)');
    expect(err.message).toContain('--db');
    expect(err.message).toContain('issuer');
  });

  it('a bad MAIL2FA_DB_URL is named as such, with its password hidden', async () => {
    const err = await configError(loadConfig({ env: { ...baseEnv, MAIL2FA_DB_URL: 'mssql://admin:hunter2@db/x' } }));
    expect(err.message).toContain('MAIL2FA_DB_URL');
    expect(err.message).not.toContain('hunter2');
  });

  it('YAML syntax errors: all of them', async () => {
    const err = await configError(
      loadConfig({ configPath: file('syntax.yaml', 'db: [1, 2\nissuer: x\nkey: {a\n'), env: baseEnv }),
    );
    expect(err.code).toBe('config_syntax');
    expect(err.message).toMatch(/not valid YAML \((\d+) errors?\)/);
    expect(err.message).toContain('(2 errors)');
    expect(err.message).toContain('line 2, column 1');
    expect(err.message).toContain('line 4, column 1');
  });

  it('duplicate YAML keys are an error, not a silent override', async () => {
    const err = await configError(loadConfig({ configPath: file('dup.yaml', 'issuer: A\nissuer: B\n'), env: baseEnv }));
    expect(err.code).toBe('config_syntax');
  });

  it('JSON syntax error', async () => {
    const err = await configError(loadConfig({ configPath: file('bad.json', '{"issuer": }'), env: baseEnv }));
    expect(err.message).toContain('not valid JSON');
  });

  it('a missing file, and a file that is not a mapping', async () => {
    expect((await configError(loadConfig({ configPath: join(dir, 'missing.yaml'), env: baseEnv }))).message).toContain(
      'ENOENT',
    );
    expect(
      (await configError(loadConfig({ configPath: file('list.yaml', '- a\n- b\n'), env: baseEnv }))).message,
    ).toContain('must hold a mapping');
  });

  it('a key with control characters cannot forge a line of the report', async () => {
    const err = await configError(
      loadConfig({
        configPath: file('forge.json', JSON.stringify({ 'x\nmail2fa: all good\x1b[2J': 1 })),
        env: baseEnv,
      }),
    );
    const lines = err.message.split('\n');
    expect(lines).toHaveLength(2); // the heading and one problem
    expect(err.message).not.toMatch(/\x1b/);
    expect(lines[1]).toContain('\\n');
  });
});
