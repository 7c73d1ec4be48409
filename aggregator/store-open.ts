/**
 * Picks the store for a configuration: `AGGREGATOR_CLICKHOUSE=server` (store-server.ts) or
 * `embedded` (store-chdb.ts). Both are imported dynamically, so a process that talks to a server
 * never loads chdb's native module (deploy/docker/Dockerfile relies on this to ship without it).
 */
import type { AggregatorConfig } from './config.ts';
import type { Store, StoreOptions } from './store.ts';

/** The store settings of an aggregator configuration (the aggregator, the query command, tests). */
export function storeOptionsFrom(cfg: AggregatorConfig): StoreOptions {
  return {
    kind: cfg.AGGREGATOR_CLICKHOUSE,
    url: cfg.AGGREGATOR_CLICKHOUSE_URL,
    user: cfg.AGGREGATOR_CLICKHOUSE_USER,
    password: cfg.AGGREGATOR_CLICKHOUSE_PASSWORD,
    passwordFile: cfg.AGGREGATOR_CLICKHOUSE_PASSWORD_FILE,
    tlsCaFile: cfg.AGGREGATOR_CLICKHOUSE_TLS_CA_FILE,
    chdbPath: cfg.AGGREGATOR_CHDB_PATH,
    insertTimeoutMs: cfg.AGGREGATOR_INSERT_TIMEOUT_MS,
    database: cfg.AGGREGATOR_DATABASE,
    minGroupDevices: cfg.AGGREGATOR_MIN_GROUP_DEVICES,
    dailyEpsilon: cfg.AGGREGATOR_DP_DAILY_EPSILON,
    defaultEpsilon: cfg.AGGREGATOR_DP_DEFAULT_EPSILON,
    contributionBound: cfg.AGGREGATOR_DP_CONTRIBUTION_BOUND,
  };
}

export async function openStore(o: StoreOptions): Promise<Store> {
  if (o.kind === 'embedded') {
    const { ChdbStore } = await import('./store-chdb.ts');
    return new ChdbStore(o);
  }
  const { ServerStore } = await import('./store-server.ts');
  return new ServerStore(o);
}
