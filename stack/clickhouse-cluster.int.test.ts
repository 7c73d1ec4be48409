/**
 * The aggregator on a real ClickHouse cluster (`stack:up -- --clickhouse-cluster`: ZooKeeper and four
 * 18.16 servers, 2 shards x 2 replicas). The generated cluster DDL (tools/clickhouse-cluster.ts, for
 * 18.x) is applied ON CLUSTER; the aggregator writes to the Distributed `facts_in` with synchronous
 * distributed inserts (insert_distributed_sync=1 in the nodes' profile), and the query command's reports
 * from every node equal the oracle exactly. Faults, each with a negative control:
 * - SIGKILL one replica of each shard mid-stream: still exact from the live replicas (nothing lost,
 *   nothing counted twice), and the killed replicas catch up after restart. Control: with asynchronous
 *   distributed inserts (ASYNC_INSERT_USER) and both replicas of a shard down, the aggregator commits
 *   offsets for rows no shard holds; with synchronous inserts it does not.
 * - ZooKeeper stopped: inserts fail (replicated tables turn read-only), the aggregator pauses without
 *   committing and resumes by itself when ZooKeeper is back, exact. Control: committing after a failed
 *   insert (the aggregator's test-only unsafe switch) loses those events for good.
 * Lean on purpose: one small population per scenario (the machine has 2 cores).
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Kafka } from 'kafkajs';
import { existsSync, readdirSync } from 'node:fs';
import path from 'node:path';
import { statements } from '../aggregator/migrate.ts';
import { startAggregator } from '../aggregator/main.ts';
import { openStore, storeOptionsFrom } from '../aggregator/store-open.ts';
import { aggregatorSettings } from '../aggregator/config.ts';
import { reportsVsOracle } from '../testing/compare.ts';
import { aggregatorConfig, aggregatorEnv, groupProgress, produceFacts, waitAllCommitted } from '../testing/harness.ts';
import { generatePopulation } from '../testing/population.ts';
import {
  createKafka,
  createTopics,
  killClusterNode,
  restartClusterNode,
  stackInfo,
  startClickHouseCluster,
  startZooKeeper,
  stopZooKeeper,
  uniqueName,
} from '../testing/stack.ts';
import { clusterDdl } from '../tools/clickhouse-cluster.ts';
import { ASYNC_INSERT_USER, clusterServer } from './clickhouse-cluster.ts';
import { loadStackConfig } from './config.ts';

const K = 5;
let nodes: Record<string, string>;
let kafka: Kafka;
const databases: string[] = [];

async function sql(url: string, query: string, user = 'default'): Promise<string> {
  const res = await fetch(`${url}/?user=${user}`, { method: 'POST', body: query, signal: AbortSignal.timeout(60_000) });
  const text = await res.text();
  if (!res.ok) throw new Error(`${url}: ${text.split('\n')[0]}`);
  return text;
}

/** A database of its own, made by the generated cluster DDL run ON CLUSTER from one node. */
async function clusterDatabase(): Promise<string> {
  const database = uniqueName('clu');
  databases.push(database);
  const ddl = clusterDdl({ database, minGroupDevices: K, retentionDays: aggregatorSettings.AGGREGATOR_RETENTION_DAYS.default, serverMajor: 18 });
  for (const s of statements(ddl)) await sql(nodes.s1r1!, s);
  return database;
}

async function setup(partitions: number, extra: Record<string, string> = {}) {
  // Every node up (a failed test may have left one down): ON CLUSTER DDL waits for all four.
  for (const n of Object.keys(nodes)) await restartClusterNode(n);
  const topic = uniqueName('clu_events');
  await createTopics([topic], { partitions });
  const database = await clusterDatabase();
  const env = aggregatorEnv(
    { kafkaBrokers: stackInfo().kafkaBrokers, clickhouseUrl: nodes.s1r1! },
    { topic, groupId: uniqueName('clu_group'), database },
    { AGGREGATOR_MIN_GROUP_DEVICES: String(K), AGGREGATOR_RETENTION_INTERVAL_MS: String(24 * 3600_000), ...extra },
  );
  return { topic, database, env, group: env.AGGREGATOR_GROUP_ID!, cfg: aggregatorConfig(env) };
}

/** Every report (dau and crash-rate at every checked roll-up) read through node `url` vs the oracle. */
async function mismatches(env: Record<string, string>, url: string, counted: Parameters<typeof reportsVsOracle>[1]): Promise<string[]> {
  const store = await openStore(storeOptionsFrom(aggregatorConfig({ ...env, AGGREGATOR_CLICKHOUSE_URL: url })));
  try {
    const out: string[] = [];
    for (const r of await reportsVsOracle(store, counted, K)) {
      if (r.want.length === 0) out.push(`oracle empty for ${r.req.report} by ${r.req.by.join(',')}`);
      if (JSON.stringify(r.got) !== JSON.stringify(r.want)) out.push(`${r.req.report} by ${r.req.by.join(',') || 'none'} differs via ${url}`);
    }
    return out;
  } finally {
    await store.close();
  }
}

/** Waits until node `name` and its peer hold the same parts (both replication queues empty). */
async function caughtUp(database: string, name: string, timeoutMs = 60_000): Promise<void> {
  const shard = name.slice(0, 2);
  const peers = Object.keys(nodes).filter((n) => n.startsWith(shard));
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const parts = await Promise.all(
      peers.map((n) => sql(nodes[n]!, `SELECT count(), sum(rows) FROM system.parts WHERE database = '${database}' AND table = 'daily_agg_local' AND active`)),
    );
    const queued = await Promise.all(peers.map((n) => sql(nodes[n]!, `SELECT count() FROM system.replication_queue WHERE database = '${database}'`)));
    if (queued.every((q) => q.trim() === '0') && new Set(parts).size === 1) return;
    if (Date.now() > deadline) throw new Error(`${name} did not catch up: parts ${parts.join(' / ')}, queued ${queued.join(' / ')}`);
    await new Promise((r) => setTimeout(r, 500));
  }
}

function spoolFiles(dir: string): number {
  if (!existsSync(dir)) return 0;
  return readdirSync(dir, { recursive: true, encoding: 'utf8' }).filter((f) => f.endsWith('.bin')).length;
}

beforeAll(async () => {
  nodes = await startClickHouseCluster();
  kafka = createKafka(uniqueName('clu'));
}, 180_000);

afterAll(async () => {
  // Restores anything a failed test left down, then drops this file's databases on every node.
  await startZooKeeper();
  for (const n of Object.keys(nodes)) await restartClusterNode(n);
  // A node whose ZooKeeper session expired while ZooKeeper was down answers "Session expired" once,
  // then reconnects: retried for up to 30 s.
  for (const db of databases) {
    for (let attempt = 1; ; attempt++) {
      try {
        await sql(nodes.s1r1!, `DROP DATABASE IF EXISTS ${db} ON CLUSTER '{cluster}'`);
        break;
      } catch (e) {
        if (attempt >= 30) throw e;
        await new Promise((r) => setTimeout(r, 1000));
      }
    }
  }
}, 180_000);

describe('the aggregator on a 2-shard x 2-replica ClickHouse 18.16 cluster', () => {
  it('is exact through the Distributed tables, read from any node; each shard holds part of the rows', async () => {
    const { topic, env, group, cfg, database } = await setup(2);
    const pop = generatePopulation({ seed: 151, devicesPerDay: 150 });
    const agg = await startAggregator(cfg);
    try {
      await produceFacts(kafka, topic, pop.facts);
      await waitAllCommitted(kafka, group, topic);
    } finally {
      await agg.stop();
    }
    for (const url of Object.values(nodes)) expect(await mismatches(env, url, pop.counted)).toEqual([]);
    // Sharded for real: both shards hold rows of daily_agg_local, and replicas of a shard hold the same.
    const rows = Object.fromEntries(
      await Promise.all(Object.entries(nodes).map(async ([n, u]) => [n, Number(await sql(u, `SELECT count() FROM ${database}.daily_agg_local`))])),
    );
    expect(rows.s1r1).toBeGreaterThan(0);
    expect(rows.s2r1).toBeGreaterThan(0);
    await caughtUp(database, 's1r2');
    await caughtUp(database, 's2r2');
  });

  it('SIGKILL of one replica of each shard mid-stream: the stream goes on, nothing lost or counted twice, the killed replicas catch up', async () => {
    const { topic, env, group, cfg, database } = await setup(2, { AGGREGATOR_FLUSH_MAX_ROWS: '500' });
    const pop = generatePopulation({ seed: 152, devicesPerDay: 150 });
    const half = Math.floor(pop.facts.length / 2);
    const agg = await startAggregator(cfg);
    try {
      await produceFacts(kafka, topic, pop.facts.slice(0, half));
      await killClusterNode('s1r2');
      await killClusterNode('s2r2');
      // The stream goes on with one replica per shard: every offset is committed while they are down.
      await produceFacts(kafka, topic, pop.facts.slice(half));
      await waitAllCommitted(kafka, group, topic, 120_000);
    } finally {
      await agg.stop();
      await restartClusterNode('s1r2');
      await restartClusterNode('s2r2');
    }
    // A part acknowledged by a replica that was killed before its peer fetched it is on the killed
    // replica's disk only: exact again once it is back, and every replica then holds the same parts.
    for (const n of ['s1r1', 's1r2', 's2r1', 's2r2']) await caughtUp(database, n);
    for (const url of Object.values(nodes)) expect(await mismatches(env, url, pop.counted)).toEqual([]);
  });

  /** A whole shard (both replicas) down while facts stream in; returns whether the group committed everything meanwhile. */
  async function shardDown(user: string): Promise<{ committedAll: boolean; spooled: number; after: string[] }> {
    const { topic, env, group, cfg, database } = await setup(1, { AGGREGATOR_CLICKHOUSE_USER: user, AGGREGATOR_INSERT_TIMEOUT_MS: '5000' });
    const pop = generatePopulation({ seed: 153, devicesPerDay: 120 });
    const agg = await startAggregator(cfg);
    let committedAll = false;
    let spooled = 0;
    try {
      await killClusterNode('s2r1');
      await killClusterNode('s2r2');
      await produceFacts(kafka, topic, pop.facts);
      const deadline = Date.now() + 20_000;
      while (Date.now() < deadline && !committedAll) {
        committedAll = (await groupProgress(kafka, group, topic)).every((p) => p.committed === p.end);
        await new Promise((r) => setTimeout(r, 500));
      }
      // Rows waiting on s1r1's disk for shard 2 (an asynchronous Distributed insert's spool): acknowledged to
      // the aggregator, held by no replica of their shard.
      spooled = spoolFiles(path.join(clusterServer(loadStackConfig(), 's1r1').paths.dataDir, 'data', database, 'facts_in'));
      await restartClusterNode('s2r1');
      await restartClusterNode('s2r2');
      await waitAllCommitted(kafka, group, topic, 120_000);
    } finally {
      await agg.stop();
      await restartClusterNode('s2r1');
      await restartClusterNode('s2r2');
    }
    return { committedAll, spooled, after: await mismatches(env, nodes.s1r1!, pop.counted) };
  }

  it('a whole shard down: with synchronous inserts no offset is committed until the shard is back, then exact', async () => {
    const r = await shardDown('default');
    expect(r.committedAll).toBe(false);
    expect(r.spooled).toBe(0);
    expect(r.after).toEqual([]);
  });

  it('negative control: with asynchronous distributed inserts the aggregator commits offsets for rows no shard holds', async () => {
    const r = await shardDown(ASYNC_INSERT_USER);
    expect(r.committedAll).toBe(true);
    expect(r.spooled).toBeGreaterThan(0);
  });

  /** ZooKeeper stopped while the second half streams in; `unsafe` = commit after a failed insert (negative control). */
  async function zooKeeperDown(unsafe: boolean) {
    const { topic, env, group, cfg } = await setup(1, {
      AGGREGATOR_MAX_BUFFERED_ROWS: '500',
      AGGREGATOR_FLUSH_MAX_ROWS: '200',
      AGGREGATOR_INSERT_TIMEOUT_MS: '5000',
    });
    const pop = generatePopulation({ seed: unsafe ? 155 : 154, devicesPerDay: 120 });
    const half = Math.floor(pop.facts.length / 2);
    const agg = await startAggregator(cfg, { unsafeCommitOnInsertError: unsafe });
    let stalled = false;
    let errors = 0;
    try {
      await produceFacts(kafka, topic, pop.facts.slice(0, half));
      await waitAllCommitted(kafka, group, topic);
      await stopZooKeeper();
      await produceFacts(kafka, topic, pop.facts.slice(half));
      const deadline = Date.now() + 30_000;
      while (Date.now() < deadline) {
        errors = (await agg.metrics.clickhouseErrors.get()).values.reduce((a, v) => a + v.value, 0);
        const lag = (await groupProgress(kafka, group, topic)).some((p) => p.committed < p.end);
        if (errors >= 2) {
          stalled = lag;
          break;
        }
        await new Promise((r) => setTimeout(r, 500));
      }
      await startZooKeeper();
      await waitAllCommitted(kafka, group, topic, 120_000);
      // Replicated tables leave read-only mode once their ZooKeeper session is back; the retried insert then lands.
      const t0 = Date.now();
      while (Date.now() - t0 < 60_000 && (await agg.metrics.bufferedRows.get()).values[0]?.value) await new Promise((r) => setTimeout(r, 500));
    } finally {
      await agg.stop();
      await startZooKeeper();
    }
    return { stalled, errors, after: await mismatches(env, nodes.s2r2!, pop.counted) };
  }

  it('ZooKeeper stopped: inserts fail, the aggregator pauses without committing and resumes by itself, exact', async () => {
    const r = await zooKeeperDown(false);
    expect(r.errors).toBeGreaterThanOrEqual(2);
    expect(r.stalled).toBe(true);
    expect(r.after).toEqual([]);
  });

  it('negative control: committing after a failed insert while ZooKeeper is down loses those events', async () => {
    const r = await zooKeeperDown(true);
    expect(r.errors).toBeGreaterThanOrEqual(1);
    expect(r.after.length).toBeGreaterThan(0);
  });
});
