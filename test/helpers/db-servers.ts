/**
 * The machine's database servers as the tests reach them (admin URLs, admin connections, a reachability probe),
 * free of vitest so that the global setup can use it too.
 */
export const MARIADB_ADMIN_URL = process.env.MAIL2FA_TEST_MYSQL_URL ?? 'mysql://root@127.0.0.1:3306/test';
export const POSTGRES_ADMIN_URL = process.env.MAIL2FA_TEST_PG_URL ?? 'postgres://postgres@127.0.0.1:5432/test';

/** A mysql2 connection as the MariaDB admin, several statements per query allowed. Call `.end()`. */
export async function mariadbAdminConnection() {
  const mysql = await import('mysql2/promise');
  const url = new URL(MARIADB_ADMIN_URL);
  return mysql.createConnection({
    host: url.hostname,
    port: Number(url.port || 3306),
    user: decodeURIComponent(url.username || 'root'),
    password: decodeURIComponent(url.password),
    connectTimeout: 3000,
    multipleStatements: true,
  });
}

/** A connected pg client as the admin, on `database` (default: the admin URL's own). Call `.end()`. */
export async function postgresAdminConnection(database?: string) {
  const { default: pg } = await import('pg');
  const url = new URL(POSTGRES_ADMIN_URL);
  const client = new pg.Client({
    host: url.hostname || '127.0.0.1',
    port: Number(url.port || 5432),
    user: decodeURIComponent(url.username || 'postgres'),
    password: decodeURIComponent(url.password),
    database: database ?? decodeURIComponent(url.pathname.slice(1) || 'postgres'),
    connectionTimeoutMillis: 3000,
  });
  client.on('error', () => {}); // a server-side disconnect surfaces on the next query instead
  await client.connect();
  return client;
}

/** Null when the server answers `select 1`, else why not. */
export async function probe(
  connect: () => Promise<{ query(sql: string): Promise<unknown>; end(): Promise<void> }>,
): Promise<string | null> {
  try {
    const connection = await connect();
    await connection.query('select 1');
    await connection.end();
    return null;
  } catch (err) {
    return (err as Error).message || String((err as { code?: string }).code ?? err);
  }
}

/** The URL of database `name` on the server of `adminUrl`. */
export function databaseUrl(adminUrl: string, name: string): string {
  const url = new URL(adminUrl);
  url.pathname = `/${name}`;
  return url.toString();
}
