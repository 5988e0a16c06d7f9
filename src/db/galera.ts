/** What a Galera node says about itself (for `doctor`): read with SHOW, which a node outside the cluster answers. */
import type { Database } from './connection.js';

export interface GaleraState {
  node: string;
  ready: string;
  clusterStatus: string;
  clusterSize: number;
  localState: string;
  /** This session's wsrep_sync_wait (mail2fa sets bit 1: reads wait for the cluster). */
  syncWait: number;
}

/** null when the server is not a Galera node (wsrep off, or not MariaDB). */
export async function readGaleraState(db: Database): Promise<GaleraState | null> {
  if (db.dialect !== 'mysql') return null;
  let vars: { wsrep_on: unknown; node: unknown; sync_wait: unknown } | undefined;
  try {
    const [rows] = (await db.knex.raw(
      'SELECT @@wsrep_on AS wsrep_on, @@wsrep_node_name AS node, @@session.wsrep_sync_wait AS sync_wait',
    )) as [Array<typeof vars>];
    vars = rows[0];
  } catch {
    return null; // no wsrep variables: not MariaDB/Galera
  }
  if (!vars || Number(vars.wsrep_on) !== 1) return null;
  const [status] = (await db.knex.raw(
    "SHOW GLOBAL STATUS WHERE Variable_name IN ('wsrep_ready', 'wsrep_cluster_status', 'wsrep_cluster_size', 'wsrep_local_state_comment')",
  )) as [Array<{ Variable_name: string; Value: string }>];
  const variables = Object.fromEntries(status.map((r) => [r.Variable_name.toLowerCase(), r.Value]));
  return {
    node: String(vars.node ?? ''),
    ready: variables.wsrep_ready ?? 'unknown',
    clusterStatus: variables.wsrep_cluster_status ?? 'unknown',
    clusterSize: Number(variables.wsrep_cluster_size ?? 0),
    localState: variables.wsrep_local_state_comment ?? 'unknown',
    syncWait: Number(vars.sync_wait ?? 0),
  };
}
