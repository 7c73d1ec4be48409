/**
 * `npm run cluster:ddl`: writes `clickhouse-cluster.sql`, the aggregator's schema for a ClickHouse
 * cluster, generated from `aggregator/migrations/` so the two cannot drift (a test fails when the
 * checked-in file differs from what this produces).
 *
 * The single-server migrations become, per table `T`:
 *   T_local  ON CLUSTER, Replicated*MergeTree (or Null), the rows of one shard;
 *   T        ON CLUSTER, Distributed over T_local.
 * The names the aggregator uses (`facts_in`, `daily_agg`) are thus the Distributed tables: its inserts
 * spread over the shards and its views/queries read every shard, without a code change. Materialized
 * views run per shard (`facts_in_local` -> `daily_agg_local`); the analyst views read the Distributed
 * `daily_agg`, and since uniqExact states merge by set union, merging states of several shards gives the
 * exact count. `facts_in` is sharded by cityHash64(daily_token), so one device-day lands on one shard.
 *
 * When the aggregator starts against a cluster node its own migrations find every object already there
 * (`IF NOT EXISTS`, same view text) and change nothing. Apply this file first, with the same
 * AGGREGATOR_DATABASE and AGGREGATOR_MIN_GROUP_DEVICES the aggregator runs with (defaults below).
 */
import { writeFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { aggregatorSettings } from '../aggregator/config.ts';
import { listMigrations, renderMigration, statements, type Migration } from '../aggregator/migrate.ts';

export interface ClusterDdlOptions {
  database: string;
  minGroupDevices: number;
  /** Day partitions older than this are dropped by a TTL (the aggregator's sweep sees no parts on a Distributed table). */
  retentionDays: number;
  /**
   * Major version of the cluster's servers. @default 26 (the checked-in file). The local cluster runs
   * 18.16 (stack/clickhouse-cluster.ts), which has no TTL (19.6+) and no CREATE OR REPLACE VIEW (20+):
   * for it views are dropped and created, and retention is left to dropping day partitions by hand.
   */
  serverMajor?: number;
}

export const DEFAULT_CLUSTER_OPTIONS: ClusterDdlOptions = {
  database: aggregatorSettings.AGGREGATOR_DATABASE.default,
  minGroupDevices: aggregatorSettings.AGGREGATOR_MIN_GROUP_DEVICES.default,
  retentionDays: aggregatorSettings.AGGREGATOR_RETENTION_DAYS.default,
};

const CLUSTER = "ON CLUSTER '{cluster}'";
/** A production cluster runs a current release; any major >= 20 has TTL and CREATE OR REPLACE VIEW. */
const SERVER_MAJOR = 26;

const CREATE_TABLE = /^CREATE TABLE IF NOT EXISTS (\w+)\.(\w+)\s*(\([\s\S]*\))\s*ENGINE\s*=\s*(\w+)(?:\(([^)]*)\))?([\s\S]*)$/;
const CREATE_MV = /^CREATE MATERIALIZED VIEW IF NOT EXISTS (\w+)\.(\w+) TO (\w+)\.(\w+) AS([\s\S]*)$/;
const CREATE_VIEW = /^CREATE (?:OR REPLACE )?VIEW (\w+)\.(\w+) AS([\s\S]*)$/;

/** One statement of the cluster schema, rewritten from one single-server statement. */
function clusterStatements(stmt: string, split: Set<string>, o: ClusterDdlOptions, origin: string): string[] {
  let m = CREATE_TABLE.exec(stmt);
  if (m) {
    const [, db, name, columns, engine, args = '', rest] = m as unknown as [string, string, string, string, string, string | undefined, string];
    if (args.trim() !== '') throw new Error(`${origin}: table ${name}: engine arguments (${args}) are not handled by the cluster generator`);
    let localEngine: string;
    let tail = rest.trim();
    if (engine === 'Null') {
      localEngine = 'Null()';
    } else if (/^(|Aggregating|Replacing|Summing|Collapsing|VersionedCollapsing)MergeTree$/.test(engine)) {
      localEngine = `Replicated${engine}('/clickhouse/tables/{shard}/${db}/${name}_local', '{replica}')`;
      // The aggregator's retention sweep lists parts of `daily_agg`, which on a cluster is the
      // Distributed table and has none: retention moves into a TTL that drops whole day partitions.
      if (/PARTITION BY day\b/.test(tail) && (o.serverMajor ?? SERVER_MAJOR) >= 20)
        tail += `\nTTL day + INTERVAL ${o.retentionDays} DAY\nSETTINGS ttl_only_drop_parts = 1`;
    } else {
      throw new Error(`${origin}: table ${name}: engine ${engine} has no cluster mapping in tools/clickhouse-cluster.ts (add one)`);
    }
    split.add(name);
    const shardKey = /\bdaily_token\b/.test(columns) ? 'cityHash64(daily_token)' : 'rand()';
    return [
      `CREATE TABLE IF NOT EXISTS ${db}.${name}_local ${CLUSTER}\n${columns}\nENGINE = ${localEngine}${tail ? `\n${tail}` : ''}`,
      `CREATE TABLE IF NOT EXISTS ${db}.${name} ${CLUSTER}\nAS ${db}.${name}_local\nENGINE = Distributed('{cluster}', ${db}, ${name}_local, ${shardKey})`,
    ];
  }
  m = CREATE_MV.exec(stmt);
  if (m) {
    const [, db, name, toDb, to, select] = m as unknown as [string, string, string, string, string, string];
    if (!split.has(to)) throw new Error(`${origin}: materialized view ${name} writes to ${to}, which no earlier statement created`);
    // Each shard aggregates its own facts into its own replicated table.
    const local = select.replace(new RegExp(`\\b${db}\\.(${[...split].join('|')})\\b`, 'g'), `${db}.$1_local`);
    return [`CREATE MATERIALIZED VIEW IF NOT EXISTS ${db}.${name} ${CLUSTER} TO ${toDb}.${to}_local AS${local}`];
  }
  m = CREATE_VIEW.exec(stmt);
  if (m) {
    const [, db, name, select] = m as unknown as [string, string, string, string];
    if ((o.serverMajor ?? SERVER_MAJOR) >= 20) return [`CREATE OR REPLACE VIEW ${db}.${name} ${CLUSTER} AS${select}`];
    // 18.x: no OR REPLACE. A reader in between sees no view for a moment, as with the single server (aggregator/migrate.ts).
    return [`DROP TABLE IF EXISTS ${db}.${name} ${CLUSTER}`, `CREATE VIEW ${db}.${name} ${CLUSTER} AS${select}`];
  }
  throw new Error(`${origin}: statement not handled by the cluster generator: ${stmt.slice(0, 80)}`);
}

export function clusterDdl(o: ClusterDdlOptions = DEFAULT_CLUSTER_OPTIONS, migrations: Migration[] = listMigrations()): string {
  const split = new Set<string>();
  const out: string[] = [
    '-- GENERATED by `npm run cluster:ddl` from aggregator/migrations/ (tools/clickhouse-cluster.ts).',
    '-- Do not edit: a test fails when this file differs from what the generator produces.',
    `-- Database ${o.database}, k-anonymity threshold ${o.minGroupDevices}, retention ${o.retentionDays} days (the aggregator defaults).`,
    '--',
    '-- Needs: a cluster named by the {cluster} macro in remote_servers, the {shard} and {replica} macros on',
    '-- every node, and ClickHouse Keeper (or ZooKeeper). Apply once with clickhouse-client --multiquery.',
    '-- The aggregator user must insert synchronously into the Distributed table, so an insert returns (and',
    '-- the aggregator commits its Kafka offsets) only once every shard holds its rows:',
    '--   insert_distributed_sync = 1 (called distributed_foreground_insert from 23.x) in its settings profile.',
    '',
    `CREATE DATABASE IF NOT EXISTS ${o.database} ${CLUSTER};`,
  ];
  for (const m of migrations) {
    const sql = renderMigration(m.text, { database: o.database, minGroupDevices: o.minGroupDevices }, o.serverMajor ?? SERVER_MAJOR);
    out.push('', `-- from aggregator/migrations/${m.name}.sql`);
    for (const stmt of statements(sql)) {
      for (const s of clusterStatements(stmt, split, o, m.name)) out.push(`${s};`, '');
    }
  }
  return `${out.join('\n').trimEnd()}\n`;
}

export const CLUSTER_DDL_FILE = new URL('../deploy/cluster/clickhouse-cluster.sql', import.meta.url);

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  writeFileSync(CLUSTER_DDL_FILE, clusterDdl());
  process.stdout.write(`wrote ${CLUSTER_DDL_FILE.pathname}\n`);
}
