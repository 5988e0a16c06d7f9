/**
 * Nothing secret at rest: after enrolments (app and SMS) and a sign-in code, a full dump of the database — every table,
 * every column, and for SQLite the database file's bytes — holds neither a TOTP secret (base32, hex or raw bytes),
 * nor a recovery code, nor the phone number, nor an SMS code.
 */
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { beforeAll, expect, it } from 'vitest';
import { confirmEnrolment, startEnrolment } from '../../src/core/enrolment.js';
import { sendSignInCode } from '../../src/core/send-code.js';
import { sqliteFile } from '../../src/db/connection.js';
import { totpCode } from '../../src/totp/totp.js';
import { describeEachDb, useTestDb } from '../helpers/db.js';
import { addMailbox, testClock } from '../helpers/context.js';
import { dumpDatabase, dumpForms, lastOutboxCode } from '../helpers/enrolment.js';

const PW = 'correct horse';
const BASE32 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZ234567';

function base32Bytes(secret: string): Buffer {
  let bits = '';
  for (const c of secret) bits += BASE32.indexOf(c).toString(2).padStart(5, '0');
  const out: number[] = [];
  for (let i = 0; i + 8 <= bits.length; i += 8) out.push(parseInt(bits.slice(i, i + 8), 2));
  return Buffer.from(out);
}

describeEachDb('no secret at rest', (kind) => {
  const clock = testClock();
  const scratch = useTestDb(kind, { context: { clock } });
  const secrets: Array<{ what: string; text?: string; bytes?: Buffer; digits?: string }> = [];
  let dump: { tables: string[]; values: unknown[] };

  beforeAll(async () => {
    const outbox = join(scratch.tdb.dir, 'home', 'sms-outbox.ndjson');
    await addMailbox(scratch.ctx, 'app@example.com', PW);
    await addMailbox(scratch.ctx, 'sms@example.com', PW);

    const app = await startEnrolment(scratch.ctx, { email: 'app@example.com', password: PW, method: 'totp' });
    const secret = app.totp!.secret;
    const raw = base32Bytes(secret);
    expect(raw).toHaveLength(20);
    secrets.push(
      { what: 'base32 secret', text: secret },
      { what: 'lower-case base32 secret', text: secret.toLowerCase() },
      { what: 'hex secret', text: raw.toString('hex') },
      { what: 'HEX secret', text: raw.toString('hex').toUpperCase() },
      { what: 'base64 secret', text: raw.toString('base64').replace(/=+$/, '') },
      { what: 'raw secret', bytes: raw },
    );
    const appDone = await confirmEnrolment(scratch.ctx, {
      email: 'app@example.com',
      code: totpCode(secret, clock.now),
    });

    const sms = await startEnrolment(scratch.ctx, {
      email: 'sms@example.com',
      password: PW,
      method: 'sms',
      phone: '011-45-20123456',
    });
    expect(sms.sms).toBeDefined();
    const enrolCode = lastOutboxCode(outbox);
    const smsDone = await confirmEnrolment(scratch.ctx, { email: 'sms@example.com', code: enrolCode });
    clock.advance(60_000);
    await sendSignInCode(scratch.ctx, { email: 'sms@example.com' });
    const signInCode = lastOutboxCode(outbox);
    // A pending (unconfirmed) enrolment too: its secret must be sealed as well.
    await addMailbox(scratch.ctx, 'pending@example.com', PW);
    const pending = await startEnrolment(scratch.ctx, { email: 'pending@example.com', password: PW, method: 'totp' });
    secrets.push(
      { what: 'pending secret', text: pending.totp!.secret },
      { what: 'pending raw secret', bytes: base32Bytes(pending.totp!.secret) },
    );

    for (const code of [...appDone.recoveryCodes, ...smsDone.recoveryCodes]) {
      secrets.push(
        { what: `recovery code ${code}`, text: code },
        { what: 'recovery code without dash', text: code.replace('-', '') },
        { what: 'upper-case recovery code', text: code.toUpperCase() },
      );
    }
    secrets.push(
      { what: 'phone e164', text: '+4520123456' },
      { what: 'phone digits', text: '4520123456' },
      { what: 'national number', text: '20123456' },
    );
    secrets.push({ what: 'enrolment SMS code', digits: enrolCode }, { what: 'sign-in SMS code', digits: signInCode });
    dump = await dumpDatabase(scratch.ctx);
  });

  it('dumps every table (the dump is not empty: it would find what it looks for)', () => {
    for (const table of [
      'factor',
      'recovery_code',
      'enrolment',
      'challenge',
      'sms_send',
      'account_state',
      'audit',
      'code_key',
    ]) {
      expect(dump.tables).toContain(`${scratch.ctx.tables.factor.replace(/factor$/, '')}${table}`);
    }
    expect(dump.tables).toContain('mailbox');
    const { text } = dumpForms(dump.values);
    // Controls: what is meant to be there is found by the same search.
    expect(text).toContain('+45 ****3456');
    expect(text).toContain('app@example.com');
    expect(new RegExp(`(?<![0-9])${Math.floor(clock.now / 1000)}`).test(text)).toBe(true);
  });

  it('contains no secret, recovery code, phone number or SMS code', () => {
    const { text, bytes } = dumpForms(dump.values);
    const found = secrets.filter((s) => {
      if (s.text !== undefined) return text.includes(s.text);
      if (s.bytes !== undefined) return bytes.includes(s.bytes);
      // A 6-digit code: as a number of its own, not inside a longer one (timestamps are full of digits).
      return new RegExp(`(?<![0-9])${s.digits}(?![0-9])`).test(text);
    });
    expect(found.map((s) => s.what)).toEqual([]);
  });

  it.skipIf(kind !== 'sqlite')('SQLite: the database file itself holds none of them either', async () => {
    await scratch.ctx.close();
    const file = sqliteFile(scratch.tdb.url);
    const parts = [file, `${file}-wal`, `${file}-journal`].filter(existsSync).map((f) => readFileSync(f));
    const bytes = Buffer.concat(parts);
    expect(bytes.includes(Buffer.from('app@example.com'))).toBe(true); // control
    const found = secrets.filter((s) => {
      if (s.text !== undefined) return bytes.includes(Buffer.from(s.text));
      if (s.bytes !== undefined) return bytes.includes(s.bytes);
      return new RegExp(`(?<![0-9])${s.digits}(?![0-9])`).test(bytes.toString('latin1'));
    });
    expect(found.map((s) => s.what)).toEqual([]);
  });
});
