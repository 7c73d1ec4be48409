// The local stack as a whole: preflight checks, start/stop of Kafka (single node or three-node cluster)
// and ClickHouse, the .local/stack.json that tells tests and tools what runs where, and status.
// Every public function here takes the stack lock, so concurrent callers (two test runs, a terminal and a
// test run) never start the same service twice.
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync, renameSync } from 'node:fs';
import path from 'node:path';
import { createRequire } from 'node:module';
import { allPorts, loadStackConfig, type StackConfig } from './config.ts';
import { StackError } from './errors.ts';
import {
  clickhouseAnswers,
  clickhousePaths,
  clickhouseUrl,
  clickhouseVersion,
  resolveClickHouseServer,
  startClickHouse as startClickHouseServer,
  stopClickHouse as stopClickHouseServer,
} from './clickhouse.ts';
import {
  checkJava,
  clusterNodes,
  fetchKafkaJars,
  kafkaBrokerIds,
  singleNode,
  startKafkaNodes,
  stopKafkaNodes,
  type ClusterNodeId,
  type KafkaNode,
} from './kafka.ts';
import { liveRecord, portAnswers, portIsFree, stopRecorded, withLock } from './proc.ts';
import { downSecure, statusSecure, upSecure, type SecureUpResult } from './secure.ts';
import {
  clusterPorts,
  clusterServer,
  clusterServers,
  startClickHouseCluster,
  startClusterServer,
  startZooKeeper,
  stopClickHouseCluster,
  stopClusterServer,
  stopZooKeeper,
  zookeeperAnswers,
  zookeeperPaths,
} from './clickhouse-cluster.ts';
import { prometheusAnswers, prometheusPaths, prometheusUrl, registeredTargets, resolvePrometheus, startPrometheus, stopPrometheus } from './monitoring.ts';
import {
  KEYSTORE_USER,
  keyDatabases,
  postgresInstance,
  postgresVersion,
  resolvePostgres,
  serverOsUser,
  startPostgres,
  stopPostgres,
  type PostgresInstance,
} from './postgres.ts';
import type { Zone } from '../schemas/contract.ts';

/** What .local/stack.json holds: addresses of every part, and whether it runs. */
export interface StackState {
  kafka: { running: boolean; bootstrapServers: string[]; version: string; pids: number[] };
  kafkaCluster: { running: boolean; bootstrapServers: string[]; version: string; pids: number[]; replicationFactor: 3; minInsyncReplicas: 2 };
  clickhouse: { running: boolean; url: string; httpPort: number; nativePort: number; version?: string; pids: number[] };
  chdb: ChdbInfo;
  /** `stack:up -- --monitoring` (stack/monitoring.ts). */
  prometheus: { running: boolean; url: string; pids: number[] };
  /** `stack:up -- --clickhouse-cluster` (stack/clickhouse-cluster.ts): node name -> HTTP URL. */
  clickhouseCluster: { running: boolean; urls: Record<string, string>; zookeeper: string; pids: number[] };
  /** PostgreSQL 15, the key store's engine (stack/postgres.ts): TCP with scram-sha-256, one database per zone. */
  postgres: PostgresState;
  updatedAt: string;
}

export interface PostgresState {
  running: boolean;
  host: string;
  port: number;
  /** The role owning every key database (the only one that logs in over TCP). */
  user: string;
  /** Its password (mode 0600); read it, never copy it into a command line. */
  passwordFile: string;
  /** Zone -> database. */
  databases: Record<Zone, string>;
  version?: string;
  pids: number[];
}

export interface ChdbInfo {
  available: boolean;
  /** Engine version (ClickHouse release inside chdb). */
  engineVersion?: string;
  /** npm package version. */
  packageVersion?: string;
  error?: string;
}

export function stackJsonPath(config: StackConfig): string {
  return path.join(config.home, 'stack.json');
}

function lockFile(config: StackConfig): string {
  return path.join(config.home, 'run', 'stack.lock');
}

let chdbCache: ChdbInfo | undefined;

/** Loads chdb once (its native library is large) and asks it for its engine version. */
export async function chdbInfo(): Promise<ChdbInfo> {
  if (chdbCache) return chdbCache;
  try {
    const chdb = await import('chdb');
    const v = chdb.version();
    const engine = chdb.query('SELECT version()', 'TabSeparated').trim();
    const require = createRequire(import.meta.url);
    const pkg = require('chdb/package.json') as { version: string };
    chdbCache = { available: true, engineVersion: engine || v.libchdb, packageVersion: pkg.version };
  } catch (e) {
    chdbCache = { available: false, error: (e as Error).message.split('\n')[0] ?? String(e) };
  }
  return chdbCache;
}

function postgresState(config: StackConfig, version?: string): PostgresState {
  const inst = postgresInstance(config);
  const rec = liveRecord(inst.pidFile);
  return {
    running: rec !== undefined,
    host: config.host,
    port: inst.port,
    user: KEYSTORE_USER,
    passwordFile: inst.passwordFile,
    databases: keyDatabases(),
    ...(version ? { version } : {}),
    pids: rec ? [rec.pid] : [],
  };
}

function currentState(config: StackConfig, chdb: ChdbInfo, clickhouseVer?: string, postgresVer?: string): StackState {
  const single = singleNode(config);
  const cluster = clusterNodes(config);
  const singleRec = liveRecord(single.pidFile);
  const clusterRecs = cluster.map((n) => liveRecord(n.pidFile));
  const chRec = liveRecord(clickhousePaths(config).pidFile);
  const promRec = liveRecord(prometheusPaths(config).pidFile);
  return {
    kafka: {
      running: singleRec !== undefined,
      bootstrapServers: [`${config.host}:${single.port}`],
      version: config.kafka.version,
      pids: singleRec ? [singleRec.pid] : [],
    },
    kafkaCluster: {
      running: clusterRecs.some((r) => r !== undefined),
      bootstrapServers: cluster.map((n) => `${config.host}:${n.port}`),
      version: config.kafka.version,
      pids: clusterRecs.flatMap((r) => (r ? [r.pid] : [])),
      replicationFactor: 3,
      minInsyncReplicas: 2,
    },
    clickhouse: {
      running: chRec !== undefined,
      url: clickhouseUrl(config),
      httpPort: config.clickhouse.httpPort,
      nativePort: config.clickhouse.tcpPort,
      ...(clickhouseVer ? { version: clickhouseVer } : {}),
      pids: chRec ? [chRec.pid] : [],
    },
    chdb,
    prometheus: { running: promRec !== undefined, url: prometheusUrl(config), pids: promRec ? [promRec.pid] : [] },
    clickhouseCluster: (() => {
      const recs = [liveRecord(zookeeperPaths(config).pidFile), ...clusterServers(config).map((s) => liveRecord(s.paths.pidFile))];
      return {
        running: recs.every(Boolean),
        urls: Object.fromEntries(clusterServers(config).map((s) => [s.name, s.url])),
        zookeeper: `${config.host}:${config.clickhouseCluster.zookeeperPort}`,
        pids: recs.flatMap((r) => (r ? [r.pid] : [])),
      };
    })(),
    postgres: postgresState(config, postgresVer),
    updatedAt: new Date().toISOString(),
  };
}

function writeState(config: StackConfig, state: StackState): void {
  mkdirSync(config.home, { recursive: true });
  const file = stackJsonPath(config);
  // Written whole then renamed: a test worker reading it mid-write must never see half a file.
  writeFileSync(`${file}.tmp`, JSON.stringify(state, null, 2) + '\n');
  renameSync(`${file}.tmp`, file);
}

export function readState(config: StackConfig): StackState | undefined {
  const file = stackJsonPath(config);
  if (!existsSync(file)) return undefined;
  try {
    return JSON.parse(readFileSync(file, 'utf8')) as StackState;
  } catch {
    return undefined;
  }
}

async function refreshState(config: StackConfig): Promise<StackState> {
  const prev = readState(config);
  const chdb = prev?.chdb?.available !== undefined && !chdbCache ? prev.chdb : await chdbInfo();
  const running = liveRecord(clickhousePaths(config).pidFile) !== undefined;
  const ver = running ? ((await clickhouseVersion(clickhouseUrl(config))) ?? prev?.clickhouse.version) : prev?.clickhouse.version;
  const pgInst = postgresInstance(config);
  const pgVer = liveRecord(pgInst.pidFile) ? ((await postgresVersion(pgInst)) ?? prev?.postgres?.version) : prev?.postgres?.version;
  const state = currentState(config, chdb, ver, pgVer);
  writeState(config, state);
  return state;
}

/**
 * A port the stack needs is held by something that is not our recorded process. Says what answers there
 * when it is recognisably Kafka or ClickHouse, because then the user most likely wants to use it instead.
 */
async function portTakenError(config: StackConfig, port: number, what: string): Promise<StackError> {
  const envName = allPortEnv(config).get(port) ?? 'the STACK_* port settings';
  let hint = '';
  if ((await kafkaBrokerIds([`${config.host}:${port}`])).length > 0)
    hint = ` (a Kafka broker not started by this stack answers there: use it with KAFKA_BROKERS=${config.host}:${port}, or stop it)`;
  else if (await clickhouseAnswers(`http://${config.host}:${port}`))
    hint = ` (a ClickHouse not started by this stack answers there: use it with CLICKHOUSE_URL=http://${config.host}:${port}, or stop it)`;
  return new StackError(
    'STACK_PORT_IN_USE',
    `port ${port} (${what}) is already in use by another program${hint}: free it or choose another port with ${envName}`,
  );
}

function allPortEnv(config: StackConfig): Map<number, string> {
  const m = new Map<number, string>([
    [config.kafka.port, 'STACK_KAFKA_PORT'],
    [config.kafka.controllerPort, 'STACK_KAFKA_CONTROLLER_PORT'],
    [config.clickhouse.httpPort, 'STACK_CLICKHOUSE_HTTP_PORT'],
    [config.clickhouse.tcpPort, 'STACK_CLICKHOUSE_TCP_PORT'],
    [config.clickhouse.interserverPort, 'STACK_CLICKHOUSE_INTERSERVER_PORT'],
    [config.postgres.port, 'STACK_POSTGRES_PORT'],
  ]);
  for (const p of config.kafka.clusterPorts) {
    m.set(p, 'STACK_CLUSTER_PORTS');
    m.set(p + 1, 'STACK_CLUSTER_PORTS (controller = broker port + 1)');
  }
  return m;
}

/** Fails with STACK_PORT_IN_USE if any of `ports` is held by something other than our running service. */
export async function checkPortsFree(config: StackConfig, ports: Array<[string, number]>): Promise<void> {
  for (const [what, port] of ports) {
    if (!(await portIsFree(port, config.host))) throw await portTakenError(config, port, what);
  }
}

function nodePorts(nodes: KafkaNode[]): Array<[string, number]> {
  return nodes.flatMap((n): Array<[string, number]> => [
    [n.service, n.port],
    [`${n.service} controller`, n.controllerPort],
  ]);
}

export interface UpOptions {
  /** 1: the single-node Kafka every suite uses; 3: the separate three-broker cluster for fault tests. */
  brokers?: 1 | 3;
  /** Start Kafka (false when KAFKA_BROKERS points at an external one). @default true */
  kafka?: boolean;
  /** Start ClickHouse (false when CLICKHOUSE_URL points at an external one). @default true */
  clickhouse?: boolean;
  /** Start PostgreSQL 15, the key store's engine (stack/postgres.ts). @default true */
  postgres?: boolean;
  /** Also start Prometheus with the project's alert rules (stack/monitoring.ts). @default false */
  monitoring?: boolean;
  /** Also start ZooKeeper and the four-server ClickHouse cluster (stack/clickhouse-cluster.ts). @default false */
  clickhouseCluster?: boolean;
  /** Progress lines (the CLI prints them; tests stay quiet). */
  log?: (line: string) => void;
}

export interface UpResult {
  state: StackState;
  /** Services this call started (the rest were already running and were reused). */
  started: string[];
  ms: number;
}

/**
 * Brings the stack up: checks everything first (so a missing tool or a taken port fails before anything
 * starts), fetches the Kafka jars if needed, then starts Kafka and ClickHouse in parallel and waits until
 * each answers. Running parts are reused. If any part fails, the parts this call started are stopped
 * again: a failed `stack:up` leaves nothing behind.
 */
export function up(opts: UpOptions = {}, config: StackConfig = loadStackConfig()): Promise<UpResult> {
  return withLock(lockFile(config), () => upLocked(opts, config));
}

async function upLocked(opts: UpOptions, config: StackConfig): Promise<UpResult> {
  const t0 = Date.now();
  const log = opts.log ?? (() => {});
  const brokers = opts.brokers ?? 1;
  const wantKafka = opts.kafka ?? true;
  const wantClickHouse = opts.clickhouse ?? true;
  const nodes = brokers === 3 ? clusterNodes(config) : [singleNode(config)];
  const kafkaToStart = wantKafka ? nodes.filter((n) => !liveRecord(n.pidFile)) : [];
  const chPaths = clickhousePaths(config);
  const chToStart = wantClickHouse && !liveRecord(chPaths.pidFile);
  const promToStart = opts.monitoring === true && !liveRecord(prometheusPaths(config).pidFile);
  const wantPostgres = opts.postgres ?? true;
  const pgToStart = wantPostgres && !liveRecord(postgresInstance(config).pidFile);

  // Preflight: every check before the first process starts.
  if (kafkaToStart.length > 0) {
    await checkJava(config);
    await checkPortsFree(config, nodePorts(kafkaToStart));
  }
  if (chToStart) {
    resolveClickHouseServer(config);
    await checkPortsFree(config, [
      ['clickhouse http', config.clickhouse.httpPort],
      ['clickhouse native tcp', config.clickhouse.tcpPort],
      ['clickhouse interserver', config.clickhouse.interserverPort],
    ]);
  }
  if (opts.clickhouseCluster) {
    resolveClickHouseServer(config);
    await checkJava(config);
    const running = new Set(
      [liveRecord(zookeeperPaths(config).pidFile), ...clusterServers(config).map((s) => liveRecord(s.paths.pidFile))].flatMap((r) => (r ? r.ports : [])),
    );
    await checkPortsFree(
      config,
      clusterPorts(config).filter(([, port]) => !running.has(port)),
    );
  }
  if (promToStart) {
    resolvePrometheus(config);
    await checkPortsFree(config, [['prometheus', config.prometheus.port]]);
  }
  if (pgToStart) {
    resolvePostgres(config);
    serverOsUser();
    await checkPortsFree(config, [['postgres', config.postgres.port]]);
  }
  if (kafkaToStart.length > 0) {
    const fetched = await fetchKafkaJars(config);
    if (fetched === 'fetched') log(`fetched Kafka ${config.kafka.version} jars into ${config.kafka.libs}`);
  }

  const started: string[] = [];
  const kafkaP = wantKafka
    ? startKafkaNodes(config, nodes).then((r) => {
        started.push(...r.started.map((n) => n.service));
        return r;
      })
    : Promise.resolve(undefined);
  const chP = wantClickHouse
    ? startClickHouseServer(config).then((r) => {
        if (r.started) started.push('clickhouse');
        return r;
      })
    : Promise.resolve(undefined);
  const promP = opts.monitoring
    ? startPrometheus(config).then((r) => {
        if (r.started) started.push('prometheus');
        return r;
      })
    : Promise.resolve(undefined);
  const clusterP = opts.clickhouseCluster
    ? startClickHouseCluster(config).then((r) => {
        started.push(...r);
        return r;
      })
    : Promise.resolve(undefined);
  const pgP = wantPostgres
    ? startPostgres(config).then((r) => {
        if (r.started) started.push('postgres');
        if (r.initialised) log(`postgres: initdb made ${postgresInstance(config).dataDir}`);
        return r;
      })
    : Promise.resolve(undefined);
  const results = await Promise.allSettled([kafkaP, chP, chdbInfo(), promP, clusterP, pgP]);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    // Each starter already stopped its own half-started process; stop what did come up in this call.
    if (started.includes('clickhouse')) await stopClickHouseServer(config).catch(() => {});
    if (started.includes('prometheus')) await stopPrometheus(config).catch(() => {});
    if (started.includes('postgres')) await stopPostgres(config).catch(() => {});
    if (started.includes('zookeeper')) await stopClickHouseCluster(config).catch(() => {});
    await stopKafkaNodes(nodes.filter((n) => started.includes(n.service))).catch(() => {});
    await refreshState(config).catch(() => {});
    throw failed.reason;
  }
  const state = await refreshState(config);
  return { state, started, ms: Date.now() - t0 };
}

export interface DownOptions {
  /** Only the three-broker cluster (3), or everything (undefined). */
  brokers?: 1 | 3;
  log?: (line: string) => void;
}

/** Stops exactly what the stack started (recorded pids), and waits until their ports are free. */
export function down(opts: DownOptions = {}, config: StackConfig = loadStackConfig()): Promise<{ stopped: string[]; state: StackState }> {
  return withLock(lockFile(config), async () => {
    const stopped: string[] = [];
    const log = opts.log ?? (() => {});
    const groups: KafkaNode[][] =
      opts.brokers === 3 ? [clusterNodes(config)] : opts.brokers === 1 ? [[singleNode(config)]] : [clusterNodes(config), [singleNode(config)]];
    for (const nodes of groups) {
      for (const node of [...nodes].reverse()) {
        if (await stopRecorded(node.pidFile, { graceMs: 20_000 })) {
          stopped.push(node.service);
          log(`stopped ${node.service}`);
        }
      }
    }
    if (opts.brokers === undefined && (await stopClickHouseServer(config))) {
      stopped.push('clickhouse');
      log('stopped clickhouse');
    }
    if (opts.brokers === undefined && (await stopPrometheus(config))) {
      stopped.push('prometheus');
      log('stopped prometheus');
    }
    if (opts.brokers === undefined && (await stopPostgres(config))) {
      stopped.push('postgres');
      log('stopped postgres');
    }
    if (opts.brokers === undefined) {
      for (const s of await stopClickHouseCluster(config)) {
        stopped.push(s);
        log(`stopped ${s}`);
      }
    }
    // A bare `down` (what .ci/run calls at the end) stops the secured stack too.
    if (opts.brokers === undefined) {
      for (const s of await downSecure(config)) {
        stopped.push(s);
        log(`stopped ${s}`);
      }
    }
    return { stopped, state: await refreshState(config) };
  });
}

/** Stops only Prometheus and/or the ClickHouse cluster (`stack:down -- --monitoring --clickhouse-cluster`); the rest keeps running. */
export function downParts(parts: { monitoring: boolean; clickhouseCluster: boolean }, config: StackConfig = loadStackConfig()): Promise<string[]> {
  return withLock(lockFile(config), async () => {
    const stopped: string[] = [];
    if (parts.monitoring && (await stopPrometheus(config))) stopped.push('prometheus');
    if (parts.clickhouseCluster) stopped.push(...(await stopClickHouseCluster(config)));
    await refreshState(config);
    return stopped;
  });
}

export interface StatusLine {
  part: string;
  address: string;
  running: boolean;
  answers: boolean;
  detail: string;
}

/** What runs, where, and whether it answers right now. */
export async function status(config: StackConfig = loadStackConfig()): Promise<StatusLine[]> {
  const lines: StatusLine[] = [];
  const single = singleNode(config);
  const rec = liveRecord(single.pidFile);
  const ids = await kafkaBrokerIds([`${config.host}:${single.port}`]);
  lines.push({
    part: 'kafka',
    address: `${config.host}:${single.port}`,
    running: rec !== undefined,
    answers: ids.length > 0,
    detail: `Kafka ${config.kafka.version}, KRaft single node${rec ? `, pid ${rec.pid}` : ''}`,
  });
  const cluster = clusterNodes(config);
  const recs = cluster.map((n) => liveRecord(n.pidFile));
  const clusterIds = recs.some(Boolean) ? await kafkaBrokerIds(cluster.map((n) => `${config.host}:${n.port}`)) : [];
  lines.push({
    part: 'kafka cluster',
    address: cluster.map((n) => `${config.host}:${n.port}`).join(','),
    running: recs.some(Boolean),
    answers: clusterIds.length > 0,
    detail: `3 brokers, RF 3, min.insync.replicas 2; ${recs.filter(Boolean).length}/3 running${clusterIds.length ? `, brokers ${clusterIds.sort().join(',')} registered` : ''}`,
  });
  const chRec = liveRecord(clickhousePaths(config).pidFile);
  const url = clickhouseUrl(config);
  const chVer = await clickhouseVersion(url);
  lines.push({
    part: 'clickhouse',
    address: `${url} (native ${config.clickhouse.tcpPort})`,
    running: chRec !== undefined,
    answers: chVer !== undefined,
    detail: `${chVer ? `ClickHouse ${chVer}` : 'clickhouse-server'}${chRec ? `, pid ${chRec.pid}` : ''}`,
  });
  const chdb = await chdbInfo();
  lines.push({
    part: 'chdb',
    address: 'in-process',
    running: chdb.available,
    answers: chdb.available,
    detail: chdb.available ? `engine ${chdb.engineVersion}, npm chdb ${chdb.packageVersion}` : `unavailable: ${chdb.error}`,
  });
  const promRec = liveRecord(prometheusPaths(config).pidFile);
  const targets = registeredTargets(config);
  lines.push({
    part: 'prometheus',
    address: prometheusUrl(config),
    running: promRec !== undefined,
    answers: await prometheusAnswers(config),
    detail: `rules deploy/prometheus/alerts.yml; targets ingest ${targets.ingest.length}, aggregator ${targets.aggregator.length} (stack:up -- --monitoring)${promRec ? `, pid ${promRec.pid}` : ''}`,
  });
  const pgInst = postgresInstance(config);
  const pgRec = liveRecord(pgInst.pidFile);
  const pgVer = await postgresVersion(pgInst);
  lines.push({
    part: 'postgres',
    address: `${config.host}:${pgInst.port}`,
    running: pgRec !== undefined,
    answers: pgVer !== undefined,
    detail: `${pgVer ? `PostgreSQL ${pgVer.split(' ')[0]}` : 'PostgreSQL 15'}, key store: ${Object.values(keyDatabases()).join(', ')} (user ${KEYSTORE_USER})${pgRec ? `, pid ${pgRec.pid}` : ''}`,
  });
  const zkRec = liveRecord(zookeeperPaths(config).pidFile);
  lines.push({
    part: 'zookeeper',
    address: `${config.host}:${config.clickhouseCluster.zookeeperPort}`,
    running: zkRec !== undefined,
    answers: await zookeeperAnswers(config.clickhouseCluster.zookeeperPort, config.host),
    detail: `ZooKeeper 3.9 for the ClickHouse cluster (stack:up -- --clickhouse-cluster)${zkRec ? `, pid ${zkRec.pid}` : ''}`,
  });
  for (const s of clusterServers(config)) {
    const rec = liveRecord(s.paths.pidFile);
    lines.push({
      part: `ch cluster ${s.name}`,
      address: `${s.url} (native ${s.tcpPort})`,
      running: rec !== undefined,
      answers: await clickhouseAnswers(s.url),
      detail: `shard ${s.shard} replica ${s.replica}${rec ? `, pid ${rec.pid}` : ''}`,
    });
  }
  const sec = await statusSecure(config);
  lines.push(
    {
      part: 'secure kafka',
      address: sec.kafka.address,
      running: sec.kafka.running,
      answers: sec.kafka.answers,
      detail: 'SASL_SSL, SCRAM-SHA-512, ACLs (stack:up -- --secure)',
    },
    {
      part: 'secure clickhouse',
      address: sec.clickhouse.address,
      running: sec.clickhouse.running,
      answers: sec.clickhouse.answers,
      detail: 'users.xml users with hashed passwords',
    },
  );
  if (existsSync(config.home)) writeState(config, currentState(config, chdb, chVer, pgVer));
  return lines;
}

// ---- service control for fault tests (testing/stack.ts) --------------------------------------------

export function startKafka(config: StackConfig = loadStackConfig()): Promise<string[]> {
  return withLock(lockFile(config), async () => {
    const nodes = [singleNode(config)];
    if (!liveRecord(nodes[0]!.pidFile)) {
      await checkJava(config);
      await checkPortsFree(config, nodePorts(nodes));
      await fetchKafkaJars(config);
    }
    const r = await startKafkaNodes(config, nodes);
    await refreshState(config);
    return r.brokers;
  });
}

export function stopKafka(config: StackConfig = loadStackConfig()): Promise<boolean> {
  return withLock(lockFile(config), async () => {
    const stopped = (await stopKafkaNodes([singleNode(config)])) > 0;
    await refreshState(config);
    return stopped;
  });
}

export function startClickHouse(config: StackConfig = loadStackConfig()): Promise<string> {
  return withLock(lockFile(config), async () => {
    if (!liveRecord(clickhousePaths(config).pidFile)) {
      await checkPortsFree(config, [
        ['clickhouse http', config.clickhouse.httpPort],
        ['clickhouse native tcp', config.clickhouse.tcpPort],
        ['clickhouse interserver', config.clickhouse.interserverPort],
      ]);
    }
    const r = await startClickHouseServer(config);
    await refreshState(config);
    return r.url;
  });
}

export function stopClickHouse(config: StackConfig = loadStackConfig()): Promise<boolean> {
  return withLock(lockFile(config), async () => {
    const stopped = await stopClickHouseServer(config);
    await refreshState(config);
    return stopped;
  });
}

export function startCluster(config: StackConfig = loadStackConfig()): Promise<string[]> {
  return up({ brokers: 3, clickhouse: false }, config).then((r) => r.state.kafkaCluster.bootstrapServers);
}

export function stopCluster(config: StackConfig = loadStackConfig()): Promise<string[]> {
  return down({ brokers: 3 }, config).then((r) => r.stopped);
}

function clusterNode(config: StackConfig, id: ClusterNodeId): KafkaNode {
  const node = clusterNodes(config).find((n) => n.nodeId === id);
  if (!node) throw new StackError('STACK_CONFIG_INVALID', `broker ${id}: the cluster has brokers 1, 2 and 3`);
  return node;
}

/** SIGKILL one cluster broker: a crash, no controlled shutdown. */
export function killClusterBroker(id: ClusterNodeId, config: StackConfig = loadStackConfig()): Promise<boolean> {
  return withLock(lockFile(config), async () => {
    const node = clusterNode(config, id);
    const killed = await stopRecorded(node.pidFile, { kill: true, graceMs: 10_000 });
    await refreshState(config);
    return killed;
  });
}

/** Starts one cluster broker again (after killClusterBroker) and waits until it is registered. */
export function restartClusterBroker(id: ClusterNodeId, config: StackConfig = loadStackConfig()): Promise<string> {
  return withLock(lockFile(config), async () => {
    const node = clusterNode(config, id);
    if (!liveRecord(node.pidFile)) await checkPortsFree(config, nodePorts([node]));
    await startKafkaNodes(config, [node], clusterNodes(config));
    await refreshState(config);
    return `${config.host}:${node.port}`;
  });
}

/** Starts (or reuses) a scratch Kafka node (kafka.ts scratchNode) and waits until it answers. */
export function startScratchKafka(node: KafkaNode, config: StackConfig = loadStackConfig()): Promise<string> {
  return withLock(lockFile(config), async () => {
    if (!liveRecord(node.pidFile)) {
      await checkJava(config);
      await checkPortsFree(config, nodePorts([node]));
      await fetchKafkaJars(config);
    }
    await startKafkaNodes(config, [node]);
    return `${config.host}:${node.port}`;
  });
}

/** Stops a scratch Kafka node (SIGTERM, or SIGKILL with `kill`); `remove` also deletes its folder. */
export function stopScratchKafka(node: KafkaNode, opts: { kill?: boolean; remove?: boolean } = {}, config: StackConfig = loadStackConfig()): Promise<boolean> {
  return withLock(lockFile(config), async () => {
    const stopped = (await stopKafkaNodes([node], opts.kill ? { kill: true } : {})) > 0;
    if (opts.remove) rmSync(node.dir, { recursive: true, force: true });
    return stopped;
  });
}

/** Starts (or reuses) a PostgreSQL of one's own (postgresInstance(config, { name, port })) and provisions it like the stack's. */
export function startScratchPostgres(inst: PostgresInstance, config: StackConfig = loadStackConfig()): Promise<void> {
  return withLock(lockFile(config), async () => {
    if (!liveRecord(inst.pidFile)) await checkPortsFree(config, [[inst.service, inst.port]]);
    await startPostgres(config, inst);
  });
}

/** Stops a scratch PostgreSQL (fast shutdown); `remove` also deletes its folder. */
export function stopScratchPostgres(inst: PostgresInstance, opts: { remove?: boolean } = {}, config: StackConfig = loadStackConfig()): Promise<boolean> {
  return withLock(lockFile(config), async () => {
    const stopped = await stopPostgres(config, inst);
    if (opts.remove) rmSync(inst.dir, { recursive: true, force: true });
    return stopped;
  });
}

/** Prometheus (stack/monitoring.ts) alone, for tests that need it: starts it or reloads the running one. */
export function startMonitoring(config: StackConfig = loadStackConfig()): Promise<string> {
  return up({ kafka: false, clickhouse: false, monitoring: true }, config).then((r) => r.state.prometheus.url);
}

/** SIGKILL one node of the ClickHouse cluster (s1r1, s1r2, s2r1, s2r2): a crash. */
export function killClusterClickHouse(name: string, config: StackConfig = loadStackConfig()): Promise<boolean> {
  return withLock(lockFile(config), () => stopClusterServer(config, clusterServer(config, name), { kill: true }));
}

/** Starts one ClickHouse cluster node again (same data) and waits until it answers. */
export function restartClusterClickHouse(name: string, config: StackConfig = loadStackConfig()): Promise<string> {
  return withLock(lockFile(config), async () => {
    const s = clusterServer(config, name);
    await startClusterServer(config, s);
    return s.url;
  });
}

/** Stops (SIGTERM) or starts the cluster's ZooKeeper. */
export function stopClusterZooKeeper(config: StackConfig = loadStackConfig()): Promise<boolean> {
  return withLock(lockFile(config), () => stopZooKeeper(config));
}

export function startClusterZooKeeper(config: StackConfig = loadStackConfig()): Promise<boolean> {
  return withLock(lockFile(config), () => startZooKeeper(config));
}

/** The secured stack (stack/secure.ts), under the same lock as everything else. */
export function upSecureStack(config: StackConfig = loadStackConfig(), log?: (line: string) => void): Promise<SecureUpResult & { ms: number }> {
  return withLock(lockFile(config), async () => {
    const t0 = Date.now();
    const r = await upSecure(config, log);
    return { ...r, ms: Date.now() - t0 };
  });
}

export function downSecureStack(config: StackConfig = loadStackConfig()): Promise<string[]> {
  return withLock(lockFile(config), () => downSecure(config));
}

/** True when something answers on each port the single-node stack uses (for quick checks). */
export async function singleStackAnswers(config: StackConfig = loadStackConfig()): Promise<boolean> {
  const [k, c] = await Promise.all([portAnswers(config.kafka.port, config.host), clickhouseAnswers(clickhouseUrl(config))]);
  return k && c;
}

export { allPorts };
