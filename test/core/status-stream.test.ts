/**
 * The bulk row stream behind `status --all/--domain` (src/db/status-query.ts): batches of at most `batchSize`,
 * a consumer that stops half-way leaves the database usable, and a failing query is a typed error, never an
 * unhandled stream error.
 */
import { beforeAll, expect, it } from 'vitest';
import { Mail2faError } from '../../src/errors.js';
import { lookupStatusRows, streamStatusRows } from '../../src/db/status-query.js';
import { describeEachDb, postgresAdminConnection, useTestDb } from '../helpers/db.js';

const COUNT = 55;
const email = (i: number) => `stream${String(i).padStart(3, '0')}@example.com`;

describeEachDb('status row stream', (kind) => {
  const scratch = useTestDb(kind);
  beforeAll(async () => {
    const db = await scratch.ctx.db();
    const m = scratch.ctx.mapping;
    await db.knex(m.table).insert(
      Array.from({ length: COUNT }, (_, i) => ({
        [m.email]: email(i),
        [m.password]: '{PLAIN}x',
        [m.active]: true,
        [m.domain]: 'example.com',
      })),
    );
  });

  const all = async (batchSize: number) => {
    const db = await scratch.ctx.db();
    const sizes: number[] = [];
    const emails: string[] = [];
    for await (const batch of streamStatusRows(
      db,
      scratch.ctx.tables,
      scratch.ctx.mapping,
      { kind: 'all' },
      batchSize,
    )) {
      sizes.push(batch.length);
      emails.push(...batch.map((r) => r.email));
    }
    return { sizes, emails };
  };

  it('hands out every row once, in batches of at most batchSize', async () => {
    const { sizes, emails } = await all(10);
    expect(sizes).toEqual([10, 10, 10, 10, 10, 5]);
    expect([...emails].sort()).toEqual(Array.from({ length: COUNT }, (_, i) => email(i)));
  });

  it('a consumer that stops after the first batch leaves the database usable', async () => {
    const db = await scratch.ctx.db();
    for (let round = 0; round < 6; round++) {
      for await (const batch of streamStatusRows(db, scratch.ctx.tables, scratch.ctx.mapping, { kind: 'all' }, 10)) {
        expect(batch).toHaveLength(10);
        break;
      }
    }
    expect((await all(20)).emails).toHaveLength(COUNT);
    expect(
      (await lookupStatusRows(db, scratch.ctx.tables, scratch.ctx.mapping, [email(3)])).map((r) => r.email),
    ).toEqual([email(3)]);
  });

  it.runIf(kind === 'postgres')(
    'PostgreSQL: rows come from a server-side cursor, one FETCH per batch, not one buffered result',
    async () => {
      const db = await scratch.ctx.db();
      const observer = await postgresAdminConnection(decodeURIComponent(new URL(scratch.tdb.url).pathname.slice(1)));
      try {
        const seen: { query: string; state: string }[][] = [];
        for await (const batch of streamStatusRows(db, scratch.ctx.tables, scratch.ctx.mapping, { kind: 'all' }, 10)) {
          expect(batch.length).toBeLessThanOrEqual(10);
          // While the consumer holds a batch, the server holds the rest: our session sits in its transaction, its
          // last statement a FETCH of one batch (the next one, fetched ahead — or, for the last batch, this one).
          const { rows } = await observer.query<{ query: string; state: string }>(
            "SELECT query, state FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND query LIKE 'FETCH%'",
          );
          seen.push(rows);
        }
        expect(seen).toHaveLength(6);
        for (const rows of seen) {
          expect(rows).toHaveLength(1);
          expect(rows[0]!.query).toBe('FETCH FORWARD 10 FROM mail2fa_status');
          expect(['idle in transaction', 'active']).toContain(rows[0]!.state);
        }
        // Finished: the transaction (and its cursor) is closed.
        const { rows } = await observer.query(
          "SELECT state FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid() AND state = 'idle in transaction'",
        );
        expect(rows).toEqual([]);
      } finally {
        await observer.end();
      }
    },
  );

  it('a failing query is a typed error (schema mismatch, 78)', async () => {
    const db = await scratch.ctx.db();
    const run = async () => {
      for await (const _ of streamStatusRows(
        db,
        scratch.ctx.tables,
        { ...scratch.ctx.mapping, table: 'no_such_mailbox' },
        { kind: 'all' },
        10,
      ))
        void _;
    };
    const err = await run().then(
      () => null,
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(Mail2faError);
    expect((err as Mail2faError).exitCode).toBe(78);
    expect((await all(100)).emails).toHaveLength(COUNT);
  });
});
