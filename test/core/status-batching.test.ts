/**
 * Bulk reads: one query per batch, never one per account; --all/--domain stream in batches (mysql2's row
 * stream; a PostgreSQL cursor; better-sqlite3's iterate(), outside knex); address lists are looked up 500 at a time.
 */
import { beforeAll, expect, it } from 'vitest';
import { statusBatches, type StatusSelection } from '../../src/core/status.js';
import { describeEachDb, useTestDb } from '../helpers/db.js';
import { testClock } from '../helpers/context.js';
import { seedFactors } from '../helpers/status-seed.js';
import type { ForeignStore } from '../../src/stores/types.js';

const COUNT = 2600;
const email = (i: number) => `user${String(i).padStart(5, '0')}@${i % 2 ? 'odd' : 'even'}.example`;

describeEachDb('status batching', (kind) => {
  const clock = testClock();
  const scratch = useTestDb(kind, { context: { clock } });
  const queries: string[] = [];
  beforeAll(async () => {
    const db = await scratch.ctx.db();
    const m = scratch.ctx.mapping;
    const rows = Array.from({ length: COUNT }, (_, i) => ({
      [m.email]: email(i),
      [m.password]: '{PLAIN}x',
      [m.active]: true,
      [m.domain]: i % 2 ? 'odd.example' : 'even.example',
    }));
    for (let i = 0; i < rows.length; i += 200) await db.knex(m.table).insert(rows.slice(i, i + 200));
    await seedFactors(scratch.ctx, clock.now, [
      { account: email(7), method: 'totp' },
      { account: email(8), method: 'sms' },
    ]);
    db.knex.on('query', (q: { sql: string }) => queries.push(q.sql));
  });

  async function batches(selection: StatusSelection): Promise<number[]> {
    const db = await scratch.ctx.db();
    const sizes: number[] = [];
    queries.length = 0;
    for await (const b of statusBatches(
      { db, tables: scratch.ctx.tables, mapping: scratch.ctx.mapping, now: scratch.ctx.now },
      selection,
    ))
      sizes.push(b.length);
    return sizes;
  }
  const statusQueries = () => queries.filter((q) => q.includes('codes_left')).length;

  it('--all: every row, in batches of at most 500, from a single query', async () => {
    const sizes = await batches({ kind: 'all' });
    expect(sizes).toEqual([...Array<number>(Math.floor(COUNT / 500)).fill(500), COUNT % 500].filter((n) => n > 0));
    // mysql2 streams one query, PostgreSQL fetches from one cursor and SQLite iterates one prepared statement, each
    // reported to knex's query event.
    expect(statusQueries()).toBe(1);
  });

  it('--all with stores: each store asked once per batch, or per statusBatchSize addresses when it asks for more', async () => {
    const db = await scratch.ctx.db();
    const fake = (name: string, statusBatchSize?: number) => {
      const calls: number[] = [];
      const store = {
        name,
        kind: 'mailcow',
        ...(statusBatchSize ? { statusBatchSize } : {}),
        statusBatch: async (emails: readonly string[]) => {
          calls.push(emails.length);
          return new Map(
            emails
              .filter((e) => e === email(9) || e === email(2100))
              .map((e) => [e, { store: name, kind: 'mailcow', activated: true, enforced: true, factors: [] }]),
          );
        },
      } as unknown as ForeignStore;
      return { store, calls };
    };
    const run = async (stores: ForeignStore[]) => {
      const sizes: number[] = [];
      const enabled: string[] = [];
      for await (const b of statusBatches(
        { db, tables: scratch.ctx.tables, mapping: scratch.ctx.mapping, now: scratch.ctx.now, stores },
        { kind: 'all' },
      )) {
        sizes.push(b.length);
        enabled.push(...b.filter((r) => r.sources.some((s) => s !== 'mail2fa')).map((r) => r.email));
      }
      return { sizes, enabled: enabled.sort() };
    };
    const plain = fake('plain');
    const every = await run([plain.store]);
    expect(plain.calls).toEqual(every.sizes);
    expect(every.sizes.every((n) => n <= 500)).toBe(true);
    expect(every.enabled).toEqual([email(2100), email(9)].sort());

    const scanning = fake('scanning', 2000);
    const other = fake('other');
    const gathered = await run([scanning.store, other.store]);
    // 2,600 rows: one call of 2,000 (four batches gathered), then the remaining 600; both stores get the same.
    expect(scanning.calls).toEqual([2000, COUNT - 2000]);
    expect(other.calls).toEqual(scanning.calls);
    expect(gathered.sizes).toEqual(scanning.calls);
    expect(gathered.enabled).toEqual(every.enabled);
  });

  it('--domain: only that domain', async () => {
    const sizes = await batches({ kind: 'domain', domain: 'odd.example' });
    expect(sizes.reduce((a, b) => a + b, 0)).toBe(COUNT / 2);
  });

  it('a list of 1201 addresses: three lookups (500 per query), order kept', async () => {
    const list = Array.from({ length: 1201 }, (_, i) => email(COUNT - 1 - i));
    const db = await scratch.ctx.db();
    const seen: string[] = [];
    queries.length = 0;
    for await (const b of statusBatches(
      { db, tables: scratch.ctx.tables, mapping: scratch.ctx.mapping, now: scratch.ctx.now },
      { kind: 'emails', emails: list },
    ))
      seen.push(...b.map((r) => r.email));
    expect(seen).toEqual(list);
    expect(statusQueries()).toBe(3);
  });

  it.runIf(kind === 'sqlite')(
    'SQLite: the connection keeps its own page cache size after a status read (which runs with 2 MB)',
    async () => {
      const db = await scratch.ctx.db();
      const cacheSize = async () =>
        ((await db.knex.raw('PRAGMA cache_size')) as { cache_size: number }[])[0]!.cache_size;
      const before = await cacheSize();
      expect(before).not.toBe(-2000);
      // The statements status runs on the connection (SQLite's pool holds one), to see the cache size it sets.
      type Conn = { prepare(sql: string): unknown };
      const client = db.knex.client as {
        acquireConnection(): Promise<Conn>;
        releaseConnection(conn: Conn): Promise<void>;
      };
      const conn = await client.acquireConnection();
      const prepare = conn.prepare.bind(conn);
      const statements: string[] = [];
      conn.prepare = (sql: string) => {
        statements.push(sql);
        return prepare(sql);
      };
      await client.releaseConnection(conn);
      const seen: number[] = [];
      const deps = { db, tables: scratch.ctx.tables, mapping: scratch.ctx.mapping, now: scratch.ctx.now };
      for await (const b of statusBatches(deps, { kind: 'all' })) seen.push(b.length);
      expect(await cacheSize()).toBe(before);
      for await (const b of statusBatches(deps, { kind: 'emails', emails: [email(1), email(2)] })) seen.push(b.length);
      expect(await cacheSize()).toBe(before);
      // Abandoned half-way: put back as well.
      const it = statusBatches(deps, { kind: 'all' });
      await it.next();
      await it.return(undefined);
      expect(await cacheSize()).toBe(before);
      conn.prepare = prepare;
      expect(statements.filter((sql) => sql === 'PRAGMA cache_size = -2000')).toHaveLength(3);
      expect(seen.reduce((a, b) => a + b, 0)).toBe(COUNT + 2);
    },
  );

  it('a long list read lazily: addresses are pulled as batches are consumed (one looked up ahead), not all first', async () => {
    let pulled = 0;
    async function* lazy() {
      for (let i = 0; i < COUNT; i++) {
        pulled++;
        yield email(i);
      }
    }
    const db = await scratch.ctx.db();
    const it = statusBatches(
      { db, tables: scratch.ctx.tables, mapping: scratch.ctx.mapping, now: scratch.ctx.now },
      { kind: 'emails', emails: lazy() },
    );
    const first = await it.next();
    expect(first.done).toBe(false);
    // The first batch, and the second whose lookup runs while the first is consumed.
    expect(pulled).toBeLessThanOrEqual(1001);
    await it.return(undefined);
  });
});
