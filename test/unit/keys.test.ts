import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import {
  chmodSync,
  mkdirSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  writeFileSync,
} from 'node:fs';
import { createHash, randomBytes } from 'node:crypto';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { inspect } from 'node:util';
import { Mail2faError } from '../../src/errors.js';
import {
  keyIdOf,
  loadMasterKey,
  loadOrCreateKeyFile,
  masterKeyFromBytes,
  writeNewKeyFile,
} from '../../src/crypto/keys.js';

let dir: string;
let n = 0;
beforeAll(() => {
  dir = mkdtempSync(join(tmpdir(), 'mail2fa-keys-'));
});
afterAll(() => {
  rmSync(dir, { recursive: true, force: true });
});

/** Writes a key file with the given content and mode, returns its path. */
function keyFile(content: string | Buffer, mode = 0o600): string {
  const f = join(dir, `key-${++n}`);
  writeFileSync(f, content, { mode });
  chmodSync(f, mode); // writeFileSync's mode is subject to the umask
  return f;
}

/** Runs fn, expects a Mail2faError, checks exit 78 and that no secret text appears in message or hint. */
function refusal(fn: () => unknown, secrets: string[] = []): Mail2faError {
  let err: unknown;
  try {
    fn();
  } catch (e) {
    err = e;
  }
  expect(err).toBeInstanceOf(Mail2faError);
  const e = err as Mail2faError;
  expect(e.exitCode).toBe(78);
  expect(e.hint).toBeTruthy();
  for (const s of secrets) {
    const core = s.trim();
    if (!core) continue;
    expect(e.message).not.toContain(core);
    expect(e.hint ?? '').not.toContain(core);
    // nor a sizeable fragment of it
    if (core.length >= 12) {
      expect(e.message).not.toContain(core.slice(4, 12));
      expect(e.hint ?? '').not.toContain(core.slice(4, 12));
    }
  }
  return e;
}

const b64 = (len: number) => randomBytes(len).toString('base64');
const hex = (len: number) => randomBytes(len).toString('hex');

describe('loadMasterKey from a key file', () => {
  it('loads base64 (44 chars) with or without a trailing newline', () => {
    const bytes = randomBytes(32);
    for (const content of [
      bytes.toString('base64'),
      bytes.toString('base64') + '\n',
      bytes.toString('base64') + '\r\n',
    ]) {
      const key = loadMasterKey({ file: keyFile(content), env: {} });
      expect(key.bytes.equals(bytes)).toBe(true);
      expect(key.bytes.length).toBe(32);
      expect(key.source).toBe('file');
    }
  });

  it('loads 64 hex chars, lower or upper case', () => {
    const bytes = randomBytes(32);
    expect(loadMasterKey({ file: keyFile(bytes.toString('hex') + '\n'), env: {} }).bytes.equals(bytes)).toBe(true);
    expect(loadMasterKey({ file: keyFile(bytes.toString('hex').toUpperCase()), env: {} }).bytes.equals(bytes)).toBe(
      true,
    );
  });

  it('accepts mode 0600 and 0400', () => {
    const content = b64(32);
    expect(loadMasterKey({ file: keyFile(content, 0o600), env: {} }).bytes.length).toBe(32);
    expect(loadMasterKey({ file: keyFile(content, 0o400), env: {} }).bytes.length).toBe(32);
  });

  it('follows a symlink to a good key file', () => {
    const bytes = randomBytes(32);
    const target = keyFile(bytes.toString('base64'));
    const link = join(dir, `link-${++n}`);
    symlinkSync(target, link);
    expect(loadMasterKey({ file: link, env: {} }).bytes.equals(bytes)).toBe(true);
  });

  it('refuses a missing file (key_missing)', () => {
    const f = join(dir, 'does-not-exist');
    const e = refusal(() => loadMasterKey({ file: f, env: {} }));
    expect(e.code).toBe('key_missing');
    expect(e.message).toContain(f);
  });

  it('refuses when neither MAIL2FA_KEY nor a file is configured (key_missing, hint names both settings)', () => {
    const e = refusal(() => loadMasterKey({ env: {} }));
    expect(e.code).toBe('key_missing');
    expect(e.hint).toContain('MAIL2FA_KEY_FILE');
    expect(e.hint).toContain('key.file');
    expect(e.hint).toContain('MAIL2FA_KEY');
  });

  it('refuses an empty file (key_empty), also a file holding only a newline', () => {
    expect(refusal(() => loadMasterKey({ file: keyFile(''), env: {} })).code).toBe('key_empty');
    expect(refusal(() => loadMasterKey({ file: keyFile('\n'), env: {} })).code).toBe('key_empty');
    expect(refusal(() => loadMasterKey({ file: keyFile('  \n\n'), env: {} })).code).toBe('key_empty');
  });

  it.each([
    ['garbage', 'this is not a key at all!'],
    ['base64 without padding', b64(32).replace(/=+$/, '')],
    ['base64url', '-_' + b64(32).slice(2)],
    ['odd hex', hex(32).slice(1)],
    ['leading space', ' ' + b64(32)],
    ['trailing space', b64(32) + ' \n'],
    ['two lines', b64(32) + '\n' + b64(32) + '\n'],
    ['two trailing newlines', b64(32) + '\n\n'],
    ['comment line', '# my key\n' + b64(32) + '\n'],
    ['BOM', '\ufeff' + b64(32)],
    ['NUL', b64(32) + '\0'],
    ['non-canonical base64', b64(32).replace(/.=$/, 'B=')],
  ])('refuses a malformed file: %s (key_malformed, content never echoed)', (_name, content) => {
    // 'non-canonical base64': the last symbol before "=" carries 2 unused bits; "B" sets one of them
    const e = refusal(() => loadMasterKey({ file: keyFile(content), env: {} }), [content]);
    expect(e.code).toBe('key_malformed');
  });

  it('refuses a huge file without reading it all', () => {
    const e = refusal(() => loadMasterKey({ file: keyFile(Buffer.alloc(100_000, 0x41)), env: {} }));
    expect(e.code).toBe('key_malformed');
  });

  it.each([
    ['base64 31 bytes', () => b64(31), 31],
    ['base64 33 bytes', () => b64(33), 33],
    ['hex 31 bytes', () => hex(31), 31],
    ['hex 33 bytes', () => hex(33), 33],
    ['base64 16 bytes', () => b64(16), 16],
    ['base64 64 bytes', () => b64(64), 64],
  ])('refuses a key of the wrong length: %s (key_length, says how many bytes)', (_name, make, len) => {
    const content = make();
    const e = refusal(() => loadMasterKey({ file: keyFile(content + '\n'), env: {} }), [content]);
    expect(e.code).toBe('key_length');
    expect(e.message).toContain(`${len} bytes`);
    expect(e.message).toContain('32');
  });

  it.each([0o640, 0o604, 0o660, 0o644, 0o606, 0o666, 0o620, 0o602, 0o700 | 0o040, 0o610])(
    'refuses mode %s (key_permissions, hint says chmod 600 FILE)',
    (mode) => {
      const content = b64(32);
      const f = keyFile(content, mode);
      expect(statSync(f).mode & 0o777).toBe(mode);
      const e = refusal(() => loadMasterKey({ file: f, env: {} }), [content]);
      expect(e.code).toBe('key_permissions');
      expect(e.message).toContain(mode.toString(8));
      expect(e.hint).toBe(`Run: chmod 600 ${f}`);
    },
  );

  it('quotes a path with spaces in the chmod hint', () => {
    const sub = join(dir, 'with space');
    mkdirSync(sub, { recursive: true });
    const f = join(sub, 'key');
    writeFileSync(f, b64(32));
    chmodSync(f, 0o644);
    const e = refusal(() => loadMasterKey({ file: f, env: {} }));
    expect(e.code).toBe('key_permissions');
    expect(e.hint).toBe(`Run: chmod 600 '${f}'`);
  });

  it('refuses a directory (key_not_file)', () => {
    const d = join(dir, `dir-${++n}`);
    mkdirSync(d, { mode: 0o700 });
    const e = refusal(() => loadMasterKey({ file: d, env: {} }));
    expect(e.code).toBe('key_not_file');
    expect(e.message).toContain('directory');
  });

  it('refuses a character device (key_not_file)', () => {
    expect(refusal(() => loadMasterKey({ file: '/dev/null', env: {} })).code).toBe('key_not_file');
  });

  it.skipIf(process.getuid?.() === 0)('refuses an unreadable file (key_unreadable)', () => {
    const f = keyFile(b64(32), 0o600);
    chmodSync(f, 0o000);
    expect(refusal(() => loadMasterKey({ file: f, env: {} })).code).toBe('key_unreadable');
  });

  it('refuses a path below a regular file (key_unreadable, ENOTDIR)', () => {
    const f = keyFile(b64(32));
    const e = refusal(() => loadMasterKey({ file: join(f, 'key'), env: {} }));
    expect(e.code).toBe('key_unreadable');
  });
});

describe('loadMasterKey from MAIL2FA_KEY', () => {
  it('MAIL2FA_KEY wins over the key file', () => {
    const fileBytes = randomBytes(32);
    const envBytes = randomBytes(32);
    const f = keyFile(fileBytes.toString('base64'));
    const key = loadMasterKey({ file: f, env: { MAIL2FA_KEY: envBytes.toString('base64') } });
    expect(key.bytes.equals(envBytes)).toBe(true);
    expect(key.source).toBe('env');
    // even over a broken key file
    const broken = keyFile('nonsense', 0o644);
    expect(loadMasterKey({ file: broken, env: { MAIL2FA_KEY: envBytes.toString('hex') } }).bytes.equals(envBytes)).toBe(
      true,
    );
  });

  it('defaults to process.env', () => {
    const bytes = randomBytes(32);
    const saved = process.env.MAIL2FA_KEY;
    process.env.MAIL2FA_KEY = bytes.toString('base64');
    try {
      expect(loadMasterKey({}).bytes.equals(bytes)).toBe(true);
    } finally {
      if (saved === undefined) delete process.env.MAIL2FA_KEY;
      else process.env.MAIL2FA_KEY = saved;
    }
  });

  it('refuses a bad MAIL2FA_KEY with the same codes, naming MAIL2FA_KEY, never echoing it', () => {
    const e1 = refusal(() => loadMasterKey({ env: { MAIL2FA_KEY: '' } }));
    expect(e1.code).toBe('key_empty');
    expect(e1.message).toContain('MAIL2FA_KEY');
    const short = b64(31);
    const e2 = refusal(() => loadMasterKey({ env: { MAIL2FA_KEY: short } }), [short]);
    expect(e2.code).toBe('key_length');
    expect(e2.message).toContain('31 bytes');
    const bad = 'correct horse battery staple';
    const e3 = refusal(() => loadMasterKey({ env: { MAIL2FA_KEY: bad } }), [bad]);
    expect(e3.code).toBe('key_malformed');
  });

  it('an empty MAIL2FA_KEY is refused rather than silently falling back to the file', () => {
    const f = keyFile(b64(32));
    expect(refusal(() => loadMasterKey({ file: f, env: { MAIL2FA_KEY: '' } })).code).toBe('key_empty');
  });
});

describe('key id', () => {
  it('is the first 8 bytes of SHA-256("mail2fa-key-id\\0" || key), 16 hex chars, stable', () => {
    const bytes = Buffer.from('000102030405060708090a0b0c0d0e0f101112131415161718191a1b1c1d1e1f', 'hex');
    const expected = createHash('sha256')
      .update(Buffer.concat([Buffer.from('mail2fa-key-id\0'), bytes]))
      .digest('hex')
      .slice(0, 16);
    expect(keyIdOf(bytes)).toBe(expected);
    expect(masterKeyFromBytes(bytes).id).toBe(expected);
    // the same key loaded as base64, hex, env → same id
    const f1 = keyFile(bytes.toString('base64'));
    const f2 = keyFile(bytes.toString('hex'));
    expect(loadMasterKey({ file: f1, env: {} }).id).toBe(expected);
    expect(loadMasterKey({ file: f2, env: {} }).id).toBe(expected);
    expect(loadMasterKey({ env: { MAIL2FA_KEY: bytes.toString('hex') } }).id).toBe(expected);
    expect(expected).toMatch(/^[0-9a-f]{16}$/);
    expect(keyIdOf(randomBytes(32))).not.toBe(expected);
  });

  it('a MasterKey never prints its bytes (inspect, JSON, template)', () => {
    const bytes = randomBytes(32);
    const key = masterKeyFromBytes(bytes);
    const outputs = [
      inspect(key),
      inspect({ nested: { key } }, { depth: 10 }),
      JSON.stringify(key),
      JSON.stringify({ key }),
      `${String(inspect(key))}`,
    ];
    for (const out of outputs) {
      expect(out).toContain(key.id);
      expect(out).not.toContain(bytes.toString('hex'));
      expect(out).not.toContain(bytes.toString('base64'));
      expect(out).not.toMatch(/<Buffer/);
      expect(out).not.toContain(String(bytes[0]) + ',' + String(bytes[1]));
    }
  });

  it('masterKeyFromBytes copies the bytes and refuses the wrong length', () => {
    const bytes = randomBytes(32);
    const key = masterKeyFromBytes(bytes);
    bytes.fill(0);
    expect(key.bytes.equals(Buffer.alloc(32))).toBe(false);
    expect(() => masterKeyFromBytes(randomBytes(31))).toThrow(Mail2faError);
  });
});

describe('loadOrCreateKeyFile', () => {
  it('creates a missing key file: mode 0600, directory 0700, exactly one base64 line of 32 bytes', () => {
    const d = join(dir, `new-${++n}`, 'nested');
    const f = join(d, 'master.key');
    const { key, created } = loadOrCreateKeyFile(f);
    expect(created).toBe(true);
    expect(statSync(f).mode & 0o7777).toBe(0o600);
    expect(statSync(f).isFile()).toBe(true);
    expect(statSync(d).mode & 0o777).toBe(0o700);
    const content = readFileSync(f, 'latin1');
    expect(content).toMatch(/^[A-Za-z0-9+/]{43}=\n$/); // message-free: the key line and nothing else
    expect(Buffer.from(content.trim(), 'base64').equals(key.bytes)).toBe(true);
    expect(key.bytes.length).toBe(32);
    // no temporary files left behind
    expect(readdir(d)).toEqual(['master.key']);

    // second use loads the same key
    const again = loadOrCreateKeyFile(f);
    expect(again.created).toBe(false);
    expect(again.key.id).toBe(key.id);
    expect(again.key.bytes.equals(key.bytes)).toBe(true);
    // and through loadMasterKey
    expect(loadMasterKey({ file: f, env: {} }).id).toBe(key.id);
  });

  it('is 0600 / 0700 even with a permissive umask', () => {
    const old = process.umask(0);
    try {
      const d = join(dir, `umask-${++n}`);
      const f = join(d, 'k');
      expect(loadOrCreateKeyFile(f).created).toBe(true);
      expect(statSync(f).mode & 0o7777).toBe(0o600);
      expect(statSync(d).mode & 0o777).toBe(0o700);
    } finally {
      process.umask(old);
    }
  });

  it('creates different keys each time', () => {
    const a = loadOrCreateKeyFile(join(dir, `fresh-${++n}`)).key;
    const b = loadOrCreateKeyFile(join(dir, `fresh-${++n}`)).key;
    expect(a.id).not.toBe(b.id);
  });

  it('applies the same checks to an existing file', () => {
    const f = keyFile(b64(32), 0o644);
    expect(refusal(() => loadOrCreateKeyFile(f)).code).toBe('key_permissions');
    expect(refusal(() => loadOrCreateKeyFile(keyFile(''))).code).toBe('key_empty');
    expect(statSync(f).mode & 0o777).toBe(0o644); // never "fixed" behind the user's back
  });

  it('ignores MAIL2FA_KEY in the environment (it loads the file it was given)', () => {
    const bytes = randomBytes(32);
    const f = keyFile(bytes.toString('base64'));
    const saved = process.env.MAIL2FA_KEY;
    process.env.MAIL2FA_KEY = b64(32);
    try {
      expect(loadOrCreateKeyFile(f).key.bytes.equals(bytes)).toBe(true);
    } finally {
      if (saved === undefined) delete process.env.MAIL2FA_KEY;
      else process.env.MAIL2FA_KEY = saved;
    }
  });

  it('reports a location it cannot create (key_create_failed)', () => {
    const f = keyFile(b64(32));
    const e = refusal(() => loadOrCreateKeyFile(join(f, 'sub', 'key')));
    expect(e.code).toBe('key_create_failed');
  });
});

describe('writeNewKeyFile', () => {
  it('writes a 0600 key file that loads back', () => {
    const f = join(dir, `gen-${++n}.key`);
    const key = writeNewKeyFile(f);
    expect(statSync(f).mode & 0o7777).toBe(0o600);
    const loaded = loadMasterKey({ file: f, env: {} });
    expect(loaded.id).toBe(key.id);
    expect(loaded.bytes.equals(key.bytes)).toBe(true);
  });

  it('refuses to overwrite an existing file (key_exists), leaving it untouched', () => {
    const content = b64(32) + '\n';
    const f = keyFile(content);
    const e = refusal(() => writeNewKeyFile(f), [content]);
    expect(e.code).toBe('key_exists');
    expect(readFileSync(f, 'latin1')).toBe(content);
    // also a dangling symlink is never followed or replaced
    const link = join(dir, `dangling-${++n}`);
    symlinkSync(join(dir, 'nowhere'), link);
    expect(refusal(() => writeNewKeyFile(link)).code).toBe('key_exists');
  });
});

function readdir(d: string): string[] {
  return readdirSync(d).sort();
}
