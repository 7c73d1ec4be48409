// Helpers every integration suite imports. Each suite makes its own topic names and its own ClickHouse
// database with uniqueName()/createTestDatabase(), so suites sharing one broker and one server never see
// each other's data. Addresses come from KAFKA_BROKERS / CLICKHOUSE_URL when set (an external stack),
// otherwise from .local/stack.json, which the global setup (or `npm run stack:up`) writes.
import { randomBytes } from 'node:crypto';
import { createClient, ClickHouseLogLevel, type ClickHouseClient } from '@clickhouse/client';
import kafkajs, { type IHeaders, type Kafka as KafkaClient, type logLevel as LogLevel } from 'kafkajs';
import { externalServices, loadStackConfig, type StackConfig } from '../stack/config.ts';
import { StackError } from '../stack/errors.ts';
import { RUN_TAG_ENV } from './leftovers.ts';
import { scratchNode, type ClusterNodeId } from '../stack/kafka.ts';
import { registerTarget, type MonitoredJob } from '../stack/monitoring.ts';
import { portIsFree } from '../stack/proc.ts';
import { postgresConnection as connectionOf, postgresInstance, type PostgresConnection } from '../stack/postgres.ts';
import type { Zone } from '../schemas/contract.ts';
import {
  killClusterBroker,
  readState,
  restartClusterBroker,
  startClickHouse as startClickHouseService,
  startCluster,
  startKafka as startKafkaService,
  startMonitoring as startMonitoringService,
  up as upStack,
  killClusterClickHouse,
  restartClusterClickHouse,
  startClusterZooKeeper,
  stopClusterZooKeeper,
  startScratchKafka,
  stopScratchKafka,
  startScratchPostgres,
  stopScratchPostgres,
  stopClickHouse as stopClickHouseService,
  stopCluster,
  stopKafka as stopKafkaService,
  type ChdbInfo,
  type PostgresState,
} from '../stack/stack.ts';

export { toClickHouseError, ClickHouseServerError } from '../stack/clickhouse-errors.ts';

const { Kafka, logLevel } = kafkajs;

export interface StackInfo {
  /** Bootstrap servers of the single-node Kafka (or KAFKA_BROKERS). */
  kafkaBrokers: string[];
  /** ClickHouse HTTP URL (or CLICKHOUSE_URL). */
  clickhouseUrl: string;
  /** ClickHouse native TCP port of the local server (undefined for an external one). */
  clickhouseNativePort: number | undefined;
  /** Bootstrap servers of the separate three-broker cluster (started on demand by startThreeBrokers). */
  clusterBrokers: string[];
  /** Which parts come from the environment rather than the local stack (those cannot be stopped). */
  external: { kafka: boolean; clickhouse: boolean };
  kafkaVersion: string | undefined;
  clickhouseVersion: string | undefined;
  chdb: ChdbInfo | undefined;
  /** The key store's PostgreSQL (stack.json `postgres`); connect with postgresConnection(zone). */
  postgres: PostgresState | undefined;
  /** Process ids of the local brokers (none for external Kafka): benches read their CPU from /proc. */
  brokerPids: { kafka: number[]; cluster: number[] };
}

let cachedConfig: StackConfig | undefined;
function config(): StackConfig {
  cachedConfig ??= loadStackConfig();
  return cachedConfig;
}

/** Where the stack's parts are. Throws one clear line when there is no stack to use. */
export function stackInfo(): StackInfo {
  const ext = externalServices();
  const cfg = config();
  const state = readState(cfg);
  if (!state && !(ext.kafkaBrokers && ext.clickhouseUrl)) {
    throw new StackError(
      'STACK_NOT_RUNNING',
      `no ${cfg.home}/stack.json: run npm run stack:up, or set KAFKA_BROKERS and CLICKHOUSE_URL to use an existing Kafka and ClickHouse`,
    );
  }
  return {
    kafkaBrokers: ext.kafkaBrokers ?? state?.kafka.bootstrapServers ?? [],
    clickhouseUrl: ext.clickhouseUrl ?? state?.clickhouse.url ?? '',
    clickhouseNativePort: ext.clickhouseUrl ? undefined : state?.clickhouse.nativePort,
    clusterBrokers: state?.kafkaCluster.bootstrapServers ?? cfg.kafka.clusterPorts.map((p) => `${cfg.host}:${p}`),
    external: { kafka: ext.kafkaBrokers !== undefined, clickhouse: ext.clickhouseUrl !== undefined },
    kafkaVersion: ext.kafkaBrokers ? undefined : state?.kafka.version,
    clickhouseVersion: ext.clickhouseUrl ? undefined : state?.clickhouse.version,
    chdb: state?.chdb,
    postgres: state?.postgres,
    brokerPids: ext.kafkaBrokers ? { kafka: [], cluster: [] } : { kafka: state?.kafka.pids ?? [], cluster: state?.kafkaCluster.pids ?? [] },
  };
}

let nameCounter = 0;

/**
 * Every name uniqueName() handed out in this process while a test run is on (TESTING_RUN_TAG set):
 * one test file, since vitest evaluates this module afresh per file. After the file,
 * testing/vitest-file-cleanup.ts deletes every topic and database that is or starts with one of them.
 */
const ownedNames = new Set<string>();
/** Kafka clusters other than the stack's single node that this file talked to (e.g. the three-broker cluster). */
const otherKafkas = new Map<string, string[]>();

/** What this test file made names for, and where else than the single node it may have made topics. */
export function ownedByThisFile(): { names: ReadonlySet<string>; otherKafkas: string[][] } {
  return { names: ownedNames, otherKafkas: [...otherKafkas.values()] };
}

/**
 * Notes a Kafka other than the single node that this process makes topics on without createKafka (e.g.
 * through an ingest child process), so deleteWhatThisFileMade looks there too.
 */
export function noteOtherKafka(brokers: string[]): void {
  if (process.env[RUN_TAG_ENV]) otherKafkas.set(brokers.join(','), brokers);
}

/**
 * A name unique to this call, valid both as a Kafka topic and as a ClickHouse identifier without quoting:
 * lower-case letters, digits and underscores, starting with a letter (Kafka would also take '.' and '-',
 * ClickHouse would not). Suites pass their own prefix, so a leftover topic says whose it was. Inside an
 * integration run the name also carries the run's tag (`<prefix>_<tag>_...`), which is how the end-of-run
 * check (testing/vitest-global-setup.ts) tells this run's leftovers from anyone else's.
 */
export function uniqueName(prefix: string): string {
  let p = prefix
    .toLowerCase()
    .replace(/[^a-z0-9_]+/g, '_')
    .replace(/^_+|_+$/g, '');
  if (!/^[a-z]/.test(p)) p = `t_${p}`;
  p = p.slice(0, 40);
  nameCounter += 1;
  const runTag = process.env[RUN_TAG_ENV];
  const name = `${p}${runTag ? `_${runTag}` : ''}_${Date.now().toString(36)}_${process.pid.toString(36)}${nameCounter.toString(36)}${randomBytes(3).toString('hex')}`;
  if (runTag) ownedNames.add(name);
  return name;
}

export interface CreateKafkaOptions {
  /** Bootstrap servers. @default stackInfo().kafkaBrokers */
  brokers?: string[];
  /** @default logLevel.NOTHING: kafkajs logs expected retries (coordinator loading, leader moves) as ERROR. */
  logLevel?: LogLevel;
}

/** A kafkajs client for the stack's Kafka, quiet unless asked. */
export function createKafka(clientId: string = uniqueName('client'), opts: CreateKafkaOptions = {}): KafkaClient {
  if (opts.brokers) noteOtherKafka(opts.brokers);
  return new Kafka({
    clientId,
    brokers: opts.brokers ?? stackInfo().kafkaBrokers,
    logLevel: opts.logLevel ?? logLevel.NOTHING,
    connectionTimeout: 3000,
    requestTimeout: 30_000,
    retry: { retries: 10, initialRetryTime: 100, maxRetryTime: 2000 },
  });
}

/**
 * An @clickhouse/client for the stack's ClickHouse. Settings that work on 18.16: no `{name:Type}` query
 * parameters (18.16 rejects them as "Unknown setting param_x"), no compression negotiation, and the
 * client's own logging off (it logs every refused query as ERROR; tests assert those errors instead).
 * Catch errors through toClickHouseError(): 18.16's error text is not parsed by the client.
 */
export function createClickHouse(database?: string, opts: { url?: string } = {}): ClickHouseClient {
  return createClient({
    url: opts.url ?? stackInfo().clickhouseUrl,
    ...(database ? { database } : {}),
    request_timeout: 60_000,
    compression: { request: false, response: false },
    log: { level: ClickHouseLogLevel.OFF },
  });
}

export interface TestDatabase {
  name: string;
  /** A client whose default database is this one. Closed by drop(). */
  client: ClickHouseClient;
  drop: () => Promise<void>;
}

/** Creates a database of its own for a suite; call drop() in afterAll. */
export async function createTestDatabase(prefix: string): Promise<TestDatabase> {
  const name = uniqueName(prefix);
  const admin = createClickHouse();
  try {
    await admin.command({ query: `CREATE DATABASE ${name}` });
  } finally {
    await admin.close();
  }
  const client = createClickHouse(name);
  return {
    name,
    client,
    drop: async () => {
      await client.close();
      const c = createClickHouse();
      try {
        await c.command({ query: `DROP DATABASE IF EXISTS ${name}` });
      } finally {
        await c.close();
      }
    },
  };
}

export interface CreateTopicsOptions {
  /** @default 1 */
  partitions?: number;
  /** @default 1 on the single node; pass 3 for the cluster */
  replicationFactor?: number;
  /** Topic configs, e.g. { 'retention.ms': '3600000', 'cleanup.policy': 'delete' }. */
  configs?: Record<string, string>;
  brokers?: string[];
}

/** Creates the topics (auto-creation is off on our brokers) and waits until each partition has a leader. */
export async function createTopics(names: string[], opts: CreateTopicsOptions = {}): Promise<string[]> {
  const admin = createKafka(uniqueName('admin'), opts.brokers ? { brokers: opts.brokers } : {}).admin();
  await admin.connect();
  try {
    await admin.createTopics({
      // Not kafkajs's waitForLeaders: it retries only LEADER_NOT_AVAILABLE, but a KRaft broker that has
      // not yet applied the new metadata answers UNKNOWN_TOPIC_OR_PARTITION ("This server does not host
      // this topic-partition"), seen on a freshly started three-broker cluster. waitForLeaders() below
      // tolerates both.
      waitForLeaders: false,
      topics: names.map((topic) => ({
        topic,
        numPartitions: opts.partitions ?? 1,
        replicationFactor: opts.replicationFactor ?? 1,
        configEntries: Object.entries(opts.configs ?? {}).map(([name, value]) => ({ name, value })),
      })),
    });
  } finally {
    await admin.disconnect();
  }
  await waitForLeaders(names, opts.brokers ? { brokers: opts.brokers } : {});
  return names;
}

/** Waits until every partition of `topics` has a leader, as seen by a fresh metadata request. */
export async function waitForLeaders(topics: string[], opts: { brokers?: string[]; timeoutMs?: number } = {}): Promise<void> {
  const admin = createKafka(uniqueName('leaders'), opts.brokers ? { brokers: opts.brokers } : {}).admin();
  const deadline = Date.now() + (opts.timeoutMs ?? 30_000);
  await admin.connect();
  try {
    for (;;) {
      try {
        const meta = await admin.fetchTopicMetadata({ topics });
        if (meta.topics.length === topics.length && meta.topics.every((t) => t.partitions.length > 0 && t.partitions.every((p) => p.leader >= 0))) return;
      } catch (e) {
        if (Date.now() > deadline) throw e;
      }
      if (Date.now() > deadline) throw new Error(`topics ${topics.join(', ')} have no leader for every partition after ${opts.timeoutMs ?? 30_000} ms`);
      await new Promise((r) => setTimeout(r, 200));
    }
  } finally {
    await admin.disconnect();
  }
}

export interface ReadRecord {
  topic: string;
  partition: number;
  offset: string;
  key: Buffer | null;
  value: Buffer | null;
  headers: IHeaders;
  timestamp: string;
}

/**
 * Reads a topic from its beginning with a fresh consumer group until `n` records arrived or `timeoutMs`
 * passed, and returns what arrived (tests assert on the count, so a shortfall shows as a clear diff).
 */
export async function readAll(topic: string, n: number, timeoutMs = 30_000, opts: { brokers?: string[] } = {}): Promise<ReadRecord[]> {
  const consumer = createKafka(uniqueName('readall'), opts.brokers ? { brokers: opts.brokers } : {}).consumer({
    groupId: uniqueName('readall'),
    sessionTimeout: 10_000,
    heartbeatInterval: 1000,
    // kafkajs's disconnect() waits for the fetch in flight; the default 5 s long poll would be paid on
    // every readAll.
    maxWaitTimeInMs: 500,
  });
  const out: ReadRecord[] = [];
  await consumer.connect();
  try {
    await consumer.subscribe({ topic, fromBeginning: true });
    await new Promise<void>((resolve, reject) => {
      const timer = setTimeout(resolve, timeoutMs);
      if (n <= 0) {
        clearTimeout(timer);
        resolve();
        return;
      }
      consumer
        .run({
          autoCommit: false,
          eachMessage: async ({ topic: t, partition, message }) => {
            if (out.length >= n) return;
            out.push({
              topic: t,
              partition,
              offset: message.offset,
              key: message.key,
              value: message.value,
              headers: message.headers ?? {},
              timestamp: message.timestamp,
            });
            if (out.length >= n) {
              clearTimeout(timer);
              resolve();
            }
          },
        })
        .catch((e: unknown) => {
          clearTimeout(timer);
          reject(e as Error);
        });
    });
  } finally {
    await consumer.disconnect();
  }
  return out;
}

// ---- service control for fault tests --------------------------------------------------------------

function ensureLocal(part: 'kafka' | 'clickhouse'): void {
  const info = externalServices();
  if (part === 'kafka' ? info.kafkaBrokers : info.clickhouseUrl) {
    throw new StackError(
      'STACK_EXTERNAL',
      `${part} comes from ${part === 'kafka' ? 'KAFKA_BROKERS' : 'CLICKHOUSE_URL'}: fault tests can only stop and start the local stack's ${part}`,
    );
  }
}

/** Stops the single-node Kafka (SIGTERM, clean shutdown) and waits until its ports are free. */
export async function stopKafka(): Promise<void> {
  ensureLocal('kafka');
  await stopKafkaService(config());
}

/** Starts the single-node Kafka again and waits until it answers; returns its bootstrap servers. */
export async function startKafka(): Promise<string[]> {
  ensureLocal('kafka');
  return startKafkaService(config());
}

export async function stopClickHouse(): Promise<void> {
  ensureLocal('clickhouse');
  await stopClickHouseService(config());
}

export async function startClickHouse(): Promise<string> {
  ensureLocal('clickhouse');
  return startClickHouseService(config());
}

/** Starts (or reuses) the separate three-broker cluster (RF 3, min.insync.replicas=2); returns its brokers. */
export function startThreeBrokers(): Promise<string[]> {
  return startCluster(config());
}

export async function stopThreeBrokers(): Promise<void> {
  await stopCluster(config());
}

/** Crashes cluster broker `id` (node id 1, 2 or 3) with SIGKILL. */
export async function killBroker(id: ClusterNodeId): Promise<void> {
  await killClusterBroker(id, config());
}

/** Starts cluster broker `id` again and waits until it is registered; returns its address. */
export function restartBroker(id: ClusterNodeId): Promise<string> {
  return restartClusterBroker(id, config());
}

// ---- a Kafka of one's own, and Prometheus --------------------------------------------------------

export interface OwnKafka {
  brokers: string[];
  /** Stops it (SIGTERM; SIGKILL with kill) and waits until its ports are free. */
  stop(opts?: { kill?: boolean }): Promise<void>;
  /** Starts it again on the same ports and data; resolves when it answers. */
  start(): Promise<void>;
  /** Stops it and deletes its folder (its topics go with it). */
  remove(): Promise<void>;
}

async function freePort(): Promise<number> {
  const net = await import('node:net');
  for (;;) {
    const port = await new Promise<number>((resolve, reject) => {
      const srv = net.createServer();
      srv.once('error', reject);
      srv.listen(0, '127.0.0.1', () => {
        const a = srv.address();
        srv.close(() => resolve(typeof a === 'object' && a ? a.port : 0));
      });
    });
    // The controller listens on port + 1: both must be free.
    if (port > 1024 && port < 65535 && (await portIsFree(port + 1))) return port;
  }
}

/**
 * A single-node Kafka for one test file alone (own ports, own data under .local/kafka/scratch/), for
 * tests that stop Kafka: stopping the shared single node would break every other suite running then.
 */
export async function startOwnKafka(name: string): Promise<OwnKafka> {
  const port = await freePort();
  const node = scratchNode(config(), name, port, port + 1);
  const brokers = [await startScratchKafka(node, config())];
  return {
    brokers,
    stop: async (opts = {}) => {
      await stopScratchKafka(node, opts, config());
    },
    start: async () => {
      await startScratchKafka(node, config());
    },
    remove: async () => {
      await stopScratchKafka(node, { remove: true }, config());
    },
  };
}

// ---- PostgreSQL, the key store's engine (stack/postgres.ts) -----------------------------------------

export type { PostgresConnection };

/**
 * Settings for `zone`'s key database on the stack's PostgreSQL ({ host, port, user, password, database },
 * what pg.Client and pg.Pool take). The password is read from stack.json's passwordFile.
 */
export function postgresConnection(zone: Zone): PostgresConnection {
  const pgState = readState(config())?.postgres;
  if (!pgState?.running) throw new StackError('STACK_NOT_RUNNING', `PostgreSQL of the stack is not running: run npm run stack:up`);
  return connectionOf(config(), zone);
}

export interface OwnPostgres {
  port: number;
  connection(zone: Zone): PostgresConnection;
  /** Fast shutdown; waits until its port is free. */
  stop(): Promise<void>;
  /** Starts it again on the same port and data; resolves when it answers. */
  start(): Promise<void>;
  /** Stops it and deletes its folder. */
  remove(): Promise<void>;
}

/**
 * A PostgreSQL of one's own (own port, data under .local/postgres-scratch/<name>, provisioned like the
 * stack's), for tests that stop it: the shared one stays up for every other suite. `name` must be short
 * (the unix socket path is limited to 107 bytes).
 */
export async function startOwnPostgres(name: string): Promise<OwnPostgres> {
  const inst = postgresInstance(config(), { name, port: await freePort() });
  await startScratchPostgres(inst, config());
  return {
    port: inst.port,
    connection: (zone) => connectionOf(config(), zone, inst),
    stop: async () => {
      await stopScratchPostgres(inst, {}, config());
    },
    start: async () => {
      await startScratchPostgres(inst, config());
    },
    remove: async () => {
      await stopScratchPostgres(inst, { remove: true }, config());
    },
  };
}

/** Starts Prometheus with the alert rules (or reloads the running one); returns its URL. */
export function startMonitoring(): Promise<string> {
  return startMonitoringService(config());
}

/** Makes Prometheus scrape `address` (host:port) as a target of `job`; returns the function that removes it. */
export function monitorTarget(job: MonitoredJob, address: string, name: string): () => void {
  return registerTarget(config(), job, address, name);
}

// ---- the ClickHouse cluster (stack/clickhouse-cluster.ts) ------------------------------------------

/** Starts (or reuses) ZooKeeper and the 2 x 2 ClickHouse cluster; returns node name -> HTTP URL. */
export async function startClickHouseCluster(): Promise<Record<string, string>> {
  const r = await upStack({ kafka: false, clickhouse: false, clickhouseCluster: true }, config());
  return r.state.clickhouseCluster.urls;
}

/** SIGKILL one cluster node (s1r1, s1r2, s2r1, s2r2). */
export async function killClusterNode(name: string): Promise<void> {
  await killClusterClickHouse(name, config());
}

/** Starts a killed cluster node again on its data; resolves when it answers. */
export function restartClusterNode(name: string): Promise<string> {
  return restartClusterClickHouse(name, config());
}

export async function stopZooKeeper(): Promise<void> {
  await stopClusterZooKeeper(config());
}

export async function startZooKeeper(): Promise<void> {
  await startClusterZooKeeper(config());
}
