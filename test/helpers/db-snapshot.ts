/**
 * A fingerprint of every table mail2fa touches (its own tables plus the mailbox table), to prove that a failed
 * or refused command left the database byte-identical: a hash of the sorted rows of each table, and on MariaDB
 * also the server's own CHECKSUM TABLE.
 */
import { createHash } from 'node:crypto';
import type { Context } from '../../src/context.js';

export async function dbSnapshot(ctx: Context): Promise<Record<string, string>> {
  const db = await ctx.db();
  const t = ctx.tables;
  const names = [
    t.factor,
    t.recoveryCode,
    t.enrolment,
    t.challenge,
    t.smsSend,
    t.accountState,
    t.audit,
    t.codeKey,
    t.migrations,
    ctx.mapping.table,
  ];
  const out: Record<string, string> = {};
  for (const name of names) {
    const rows = (await db.knex(name).select('*')) as Record<string, unknown>[];
    const lines = rows
      .map((r) =>
        JSON.stringify(r, (_k, v) => (Buffer.isBuffer(v) ? v.toString('hex') : typeof v === 'bigint' ? String(v) : v)),
      )
      .sort();
    out[name] = `${rows.length}:${createHash('sha256').update(lines.join('\n')).digest('hex')}`;
  }
  if (db.dialect === 'mysql') {
    const [rows] = (await db.knex.raw(`CHECKSUM TABLE ${names.map((n) => `\`${n}\``).join(', ')}`)) as [
      { Table: string; Checksum: number | string | null }[],
    ];
    for (const r of rows) out[`CHECKSUM ${r.Table.split('.').pop()}`] = String(r.Checksum);
  }
  return out;
}
