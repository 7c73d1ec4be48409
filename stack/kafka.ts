// Apache Kafka for the local stack: a single KRaft node (broker + controller in one JVM) for every suite,
// and a separate three-node cluster, own ports and own data, for fault tests. The jars come from Maven
// Central through stack/pom.xml; nothing is downloaded at run time except by that one mvn call.
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { promisify } from 'node:util';
import kafkajs from 'kafkajs';
import { REPO_ROOT, type StackConfig } from './config.ts';
import { StackError } from './errors.ts';
import { isOurProcess, liveRecord, portAnswers, spawnService, stopRecorded, tailOf, type PidRecord } from './proc.ts';

const { Kafka, logLevel } = kafkajs;
const run = promisify(execFile);

export const CLUSTER_NODE_IDS = [1, 2, 3] as const;
export type ClusterNodeId = (typeof CLUSTER_NODE_IDS)[number];

/** One Kafka node: where it lives and how it is reached. */
export interface KafkaNode {
  service: string;
  nodeId: number;
  port: number;
  controllerPort: number;
  dir: string;
  propsFile: string;
  dataDir: string;
  logDir: string;
  pidFile: string;
  heap: string;
  /** Set for the secured node (stack/secure.ts): TLS/SASL listeners, SCRAM users, authorizer. */
  secure?: SecureKafkaNode;
}

export interface SecureKafkaNode {
  /** server.properties entries that replace or add to the plain ones (listeners, SASL, SSL, authorizer). */
  properties: Record<string, string>;
  /** SCRAM-SHA-512 credentials written into the metadata log when the storage is formatted. */
  scram: Array<{ name: string; password: string }>;
  /** kafkajs TLS/SASL options of a super user, for the readiness probe. */
  probe: KafkaProbeSecurity;
}

export interface KafkaProbeSecurity {
  ssl: import('node:tls').ConnectionOptions;
  sasl: import('kafkajs').SASLOptions;
}

export function singleNode(config: StackConfig): KafkaNode {
  const dir = path.join(config.home, 'kafka', 'single');
  return {
    service: 'kafka',
    nodeId: 1,
    port: config.kafka.port,
    controllerPort: config.kafka.controllerPort,
    dir,
    propsFile: path.join(dir, 'server.properties'),
    dataDir: path.join(dir, 'data'),
    logDir: path.join(dir, 'logs'),
    pidFile: path.join(config.home, 'run', 'kafka.pid'),
    heap: config.kafka.heap,
  };
}

export function clusterNodes(config: StackConfig): KafkaNode[] {
  return CLUSTER_NODE_IDS.map((id, i) => {
    const port = config.kafka.clusterPorts[i] as number;
    const dir = path.join(config.home, 'kafka', 'cluster', `broker-${id}`);
    return {
      service: `kafka cluster broker ${id}`,
      nodeId: id,
      port,
      controllerPort: port + 1,
      dir,
      propsFile: path.join(dir, 'server.properties'),
      dataDir: path.join(dir, 'data'),
      logDir: path.join(dir, 'logs'),
      pidFile: path.join(config.home, 'run', `kafka-cluster-${id}.pid`),
      heap: config.kafka.clusterHeap,
    };
  });
}

/**
 * A single KRaft node of its own, with its own ports and data under .local/kafka/scratch/<name>, for a
 * test that must stop Kafka without stopping the single node every other suite shares.
 */
export function scratchNode(config: StackConfig, name: string, port: number, controllerPort: number): KafkaNode {
  const dir = path.join(config.home, 'kafka', 'scratch', name);
  return {
    service: `kafka ${name}`,
    nodeId: 1,
    port,
    controllerPort,
    dir,
    propsFile: path.join(dir, 'server.properties'),
    dataDir: path.join(dir, 'data'),
    logDir: path.join(dir, 'logs'),
    pidFile: path.join(config.home, 'run', `kafka-scratch-${name}.pid`),
    heap: '256m',
  };
}

/**
 * server.properties for one KRaft node in combined mode. With one node every internal topic must use
 * replication factor 1 (the defaults of 3 would leave __consumer_offsets uncreatable and every consumer
 * group stuck); the three-node cluster uses RF 3 with min.insync.replicas=2 so one broker can die
 * without losing acknowledged writes (acks=all) or availability.
 */
export function kafkaProperties(host: string, node: KafkaNode, voters: KafkaNode[]): string {
  const rf = voters.length >= 3 ? 3 : 1;
  const minIsr = voters.length >= 3 ? 2 : 1;
  const lines: Record<string, string | number | boolean> = {
    'process.roles': 'broker,controller',
    'node.id': node.nodeId,
    'controller.quorum.voters': voters.map((v) => `${v.nodeId}@${host}:${v.controllerPort}`).join(','),
    listeners: `PLAINTEXT://${host}:${node.port},CONTROLLER://${host}:${node.controllerPort}`,
    'advertised.listeners': `PLAINTEXT://${host}:${node.port}`,
    'controller.listener.names': 'CONTROLLER',
    'inter.broker.listener.name': 'PLAINTEXT',
    'listener.security.protocol.map': 'PLAINTEXT:PLAINTEXT,CONTROLLER:PLAINTEXT',
    'log.dirs': node.dataDir,
    // Services create their topics explicitly with the partitions and configs they need; a typo in a
    // topic name must fail, not silently create a one-partition topic.
    'auto.create.topics.enable': false,
    'num.partitions': 1,
    'default.replication.factor': rf,
    'min.insync.replicas': minIsr,
    'offsets.topic.replication.factor': rf,
    // 10 instead of 50: the offsets topic is created on the first group join, and 50 partitions make that
    // first join in every fresh stack several seconds slower on a 2-core machine.
    'offsets.topic.num.partitions': 10,
    'transaction.state.log.replication.factor': rf,
    'transaction.state.log.min.isr': minIsr,
    'transaction.state.log.num.partitions': 10,
    'share.coordinator.state.topic.replication.factor': rf,
    'share.coordinator.state.topic.min.isr': minIsr,
    'unclean.leader.election.enable': false,
    // Tests start and stop consumers constantly; the default 3 s delay would be paid on every join.
    'group.initial.rebalance.delay.ms': 0,
    // A follower that stops fetching leaves the ISR after this long (default 30 s). Fault tests kill
    // brokers and need the ISR, and so min.insync.replicas, to take effect within seconds.
    'replica.lag.time.max.ms': voters.length >= 3 ? 5000 : 30_000,
    // How soon the controller fences a broker that stopped heartbeating and moves its leaderships
    // (defaults 9 s / 2 s). Shorter on the cluster so a killed leader fails over before clients give up.
    ...(voters.length >= 3 ? { 'broker.session.timeout.ms': 4000, 'broker.heartbeat.interval.ms': 1000 } : {}),
    'num.network.threads': 2,
    'num.io.threads': 4,
    ...node.secure?.properties,
  };
  return (
    `# Generated by stack/kafka.ts; edits are overwritten on the next start.\n` +
    Object.entries(lines)
      .map(([k, v]) => `${k}=${v}`)
      .join('\n') +
    '\n'
  );
}

/** Jars the broker needs, by the name Maven gives them. */
function requiredJars(config: StackConfig): string[] {
  const v = config.kafka.version;
  return [`kafka_2.13-${v}.jar`, `kafka-tools-${v}.jar`, `kafka-clients-${v}.jar`];
}

export function kafkaJarsPresent(config: StackConfig): boolean {
  return requiredJars(config).every((j) => existsSync(path.join(config.kafka.libs, j)));
}

async function commandWorks(cmd: string, args: string[]): Promise<{ ok: true; output: string } | { ok: false; missing: boolean; output: string }> {
  try {
    const { stdout, stderr } = await run(cmd, args, { timeout: 60_000 });
    return { ok: true, output: `${stdout}${stderr}` };
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stdout?: string; stderr?: string };
    return { ok: false, missing: err.code === 'ENOENT' || err.code === 'EACCES', output: `${err.stdout ?? ''}${err.stderr ?? ''}${err.message}` };
  }
}

/** Checks the Java the broker will run on: present, and 17 or newer (Kafka 4 brokers need 17). */
export async function checkJava(config: StackConfig): Promise<string> {
  const res = await commandWorks(config.kafka.java, ['-version']);
  if (!res.ok && res.missing) {
    throw new StackError(
      'STACK_JAVA_MISSING',
      `java not found (${config.kafka.java}): install Java 17+ (Debian: apt-get install -y openjdk-17-jre-headless) or set JAVA_HOME / STACK_JAVA`,
    );
  }
  if (!res.ok) throw new StackError('STACK_JAVA_MISSING', `${config.kafka.java} -version failed: ${res.output.split('\n')[0]}`);
  const m = /version "(\d+)(?:\.(\d+))?/.exec(res.output);
  const major = m ? (m[1] === '1' ? Number(m[2]) : Number(m[1])) : NaN;
  if (!(major >= 17)) {
    throw new StackError(
      'STACK_JAVA_TOO_OLD',
      `Kafka 4 needs Java 17+, but ${config.kafka.java} is ${m ? major : 'of unknown version'}: install Java 17+ or set JAVA_HOME / STACK_JAVA`,
    );
  }
  return String(major);
}

/** Fetches the broker and tool jars with Maven if this version's jars are not already there. */
export async function fetchKafkaJars(config: StackConfig, opts: { force?: boolean } = {}): Promise<'cached' | 'fetched'> {
  if (!opts.force && kafkaJarsPresent(config)) return 'cached';
  const mvn = await commandWorks(config.kafka.mvn, ['-v']);
  if (!mvn.ok && mvn.missing) {
    throw new StackError(
      'STACK_MAVEN_MISSING',
      `mvn not found (${config.kafka.mvn}), needed once to fetch the Kafka ${config.kafka.version} jars: install Maven (Debian: apt-get install -y maven) or set STACK_MVN`,
    );
  }
  // Jars of another Kafka version on the same classpath would mix classes from two releases.
  if (existsSync(config.kafka.libs)) rmSync(config.kafka.libs, { recursive: true, force: true });
  mkdirSync(config.kafka.libs, { recursive: true });
  const pom = path.join(REPO_ROOT, 'stack', 'pom.xml');
  try {
    await run(
      config.kafka.mvn,
      ['-q', '-B', '-f', pom, 'dependency:copy-dependencies', `-Dkafka.version=${config.kafka.version}`, `-Dkafka.libs=${config.kafka.libs}`],
      { timeout: 600_000, maxBuffer: 16 * 1024 * 1024 },
    );
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string; message: string };
    const detail = `${err.stdout ?? ''}${err.stderr ?? ''}`.split('\n').find((l) => l.includes('ERROR')) ?? err.message.split('\n')[0];
    throw new StackError('STACK_KAFKA_FETCH_FAILED', `mvn could not fetch Kafka ${config.kafka.version}: ${detail}`, { cause: e });
  }
  if (!kafkaJarsPresent(config)) {
    throw new StackError('STACK_KAFKA_FETCH_FAILED', `mvn ran but ${requiredJars(config).join(', ')} are not in ${config.kafka.libs}`);
  }
  return 'fetched';
}

export function classpath(config: StackConfig): string {
  // Java expands a trailing "/*" itself: one argument, every jar in the folder.
  return path.join(config.kafka.libs, '*');
}

/** Kafka's cluster id: a UUID in URL-safe base64 without padding (what `kafka-storage random-uuid` prints). */
/**
 * The storage tool's format arguments. The cluster id goes as `--cluster-id=<id>`: a random base64url id
 * starts with `-` one time in 64, and as a separate argument the tool's parser then takes it for an option
 * ("argument --cluster-id/-t: expected one argument": a fresh-clone test run failed on it).
 */
export function storageFormatArgs(clusterId: string, propsFile: string): string[] {
  return ['format', `--cluster-id=${clusterId}`, '--config', propsFile];
}

function newClusterId(): string {
  return randomBytes(16).toString('base64url');
}

/**
 * One argument of a JDK launcher argument file (`java @file`): quoted, with backslash and quote escaped,
 * so any character but a newline survives as one argument.
 */
export function javaArgFileLine(arg: string): string {
  if (/[\r\n]/.test(arg)) throw new StackError('STACK_CONFIG_INVALID', 'a java argument file cannot carry an argument with a line break');
  return `"${arg.replace(/\\/g, '\\\\').replace(/"/g, '\\"')}"`;
}

/**
 * Runs `fn` with the path of a fresh argument file holding `args` (one per line), in a folder of its own
 * (mode 0700, file 0600) that is removed afterwards, whatever `fn` does. The way secrets reach a JVM tool
 * without being on its command line.
 */
export async function withJavaArgFile<T>(args: readonly string[], fn: (file: string) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(path.join(tmpdir(), 'stack-java-args-'));
  const file = path.join(dir, 'args');
  try {
    writeFileSync(file, args.map(javaArgFileLine).join('\n') + '\n', { mode: 0o600 });
    return await fn(file);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

function isFormatted(node: KafkaNode): boolean {
  return existsSync(path.join(node.dataDir, 'meta.properties'));
}

/**
 * Formats the nodes' storage once. A node whose data folder already holds meta.properties keeps it: its
 * topics survive restarts. All nodes of one cluster must share a cluster id, so a partly formatted
 * cluster (one folder lost) is reformatted as a whole rather than left unable to form a quorum.
 */
async function formatStorage(config: StackConfig, nodes: KafkaNode[]): Promise<void> {
  for (const node of nodes) rmSync(node.dataDir, { recursive: true, force: true });
  const clusterId = newClusterId();
  await Promise.all(
    nodes.map(async (node) => {
      mkdirSync(node.dataDir, { recursive: true });
      try {
        // SCRAM users of the secured node go into the bootstrap metadata here: KRaft brokers cannot create
        // them before they run, and the inter-broker principal must exist before the broker starts. The
        // storage tool takes them only as `--add-scram name=..,password=..` arguments, so the main class and
        // its arguments go through a JDK launcher argument file (0600, deleted right after): the command
        // line any process can read (/proc/<pid>/cmdline, ps) shows `@<file>`, never a password. No
        // hsperfdata either (-XX:-UsePerfData): it would copy the arguments into /tmp. Its output is never
        // printed (it echoes salts and keys).
        const scram = (node.secure?.scram ?? []).flatMap((c) => ['--add-scram', `SCRAM-SHA-512=[name=${c.name},password=${c.password}]`]);
        await withJavaArgFile(['kafka.tools.StorageTool', ...storageFormatArgs(clusterId, node.propsFile), ...scram], (argFile) =>
          run(config.kafka.java, ['-XX:-UsePerfData', '-cp', classpath(config), `@${argFile}`], { timeout: 60_000 }),
        );
      } catch (e) {
        const err = e as { stdout?: string; stderr?: string; message: string };
        const detail = `${err.stdout ?? ''}${err.stderr ?? ''}`
          .trim()
          .split('\n')
          .filter((l) => !l.startsWith('SLF4J'))
          .pop();
        // The tool may echo its arguments (the SCRAM passwords) in what it prints: redacted, and the error not kept as cause.
        const safe = node.secure ? 'see the storage tool output' : err.message;
        throw new StackError(
          'STACK_START_FAILED',
          `${node.service}: formatting ${node.dataDir} failed: ${node.secure ? (detail ?? safe).replace(/password=[^\],]*/g, 'password=***') : (detail ?? safe)}`,
          node.secure ? undefined : { cause: e },
        );
      }
    }),
  );
}

function writeNodeFiles(config: StackConfig, node: KafkaNode, voters: KafkaNode[]): void {
  mkdirSync(node.logDir, { recursive: true });
  // The secured node's properties hold its listener passwords (JAAS): owner-only.
  writeFileSync(node.propsFile, kafkaProperties(config.host, node, voters), { mode: 0o600 });
  chmodSync(node.propsFile, 0o600);
}

function spawnNode(config: StackConfig, node: KafkaNode): PidRecord {
  const log4j = path.join(REPO_ROOT, 'stack', 'log4j2.properties');
  return spawnService({
    service: node.service,
    command: config.kafka.java,
    args: [
      `-Xmx${node.heap}`,
      `-Xms${node.heap}`,
      '-XX:+UseG1GC',
      '-XX:MaxGCPauseMillis=20',
      '-XX:+ExitOnOutOfMemoryError',
      '-Djava.awt.headless=true',
      `-Dlog4j2.configurationFile=${log4j}`,
      `-Dkafka.logs.dir=${node.logDir}`,
      '-cp',
      classpath(config),
      'kafka.Kafka',
      node.propsFile,
    ],
    cwd: node.dir,
    logFile: path.join(node.logDir, 'stdout.log'),
    pidFile: node.pidFile,
    marker: node.propsFile,
    ports: [node.port, node.controllerPort],
  });
}

/** A kafkajs admin that stays silent: connection refusals are the expected state while a broker starts. */
function probeKafka(brokers: string[], security?: KafkaProbeSecurity) {
  return new Kafka({
    clientId: 'stack-probe',
    brokers,
    ...security,
    logLevel: logLevel.NOTHING,
    connectionTimeout: 1000,
    requestTimeout: 3000,
    retry: { retries: 0 },
  });
}

/** Node ids of the brokers the cluster reports, or [] when nothing answers as Kafka at `brokers`. */
export async function kafkaBrokerIds(brokers: string[], security?: KafkaProbeSecurity): Promise<number[]> {
  const admin = probeKafka(brokers, security).admin();
  try {
    await admin.connect();
    const info = await admin.describeCluster();
    return info.brokers.map((b) => b.nodeId);
  } catch {
    return [];
  } finally {
    await admin.disconnect().catch(() => {});
  }
}

/** Waits until every node in `nodes` answers and is registered as a broker, or one of them dies. */
async function waitKafkaReady(config: StackConfig, nodes: KafkaNode[], records: PidRecord[]): Promise<void> {
  const deadline = Date.now() + config.startTimeoutMs;
  for (;;) {
    for (const rec of records) {
      if (!isOurProcess(rec.pid, rec.marker)) {
        const node = nodes.find((n) => n.propsFile === rec.marker);
        const why = node ? tailOf(path.join(node.logDir, 'stdout.log')) || tailOf(path.join(node.logDir, 'server.log')) : '';
        throw new StackError('STACK_START_FAILED', `${rec.service} exited during start${why ? `: ${why}` : ''}`);
      }
    }
    const reachable = await Promise.all(nodes.map((n) => portAnswers(n.port, config.host, 500)));
    if (reachable.every(Boolean)) {
      // Ask each node itself: a node answers describeCluster only once it has joined the quorum and
      // caught up on metadata, and it must see itself (and the others we wait for) as brokers.
      const views = await Promise.all(nodes.map((n) => kafkaBrokerIds([`${config.host}:${n.port}`], n.secure?.probe)));
      if (views.every((ids) => nodes.every((n) => ids.includes(n.nodeId)))) return;
    }
    if (Date.now() > deadline) {
      throw new StackError(
        'STACK_START_TIMEOUT',
        `${nodes.map((n) => n.service).join(', ')} did not answer within ${config.startTimeoutMs} ms (log: ${nodes[0] ? path.join(nodes[0].logDir, 'server.log') : ''})`,
      );
    }
    await sleep(250);
  }
}

export interface KafkaStartResult {
  brokers: string[];
  /** Nodes this call started (the others were already running). */
  started: KafkaNode[];
}

/**
 * Starts those of `nodes` that are not running and waits until each of them answers as a registered
 * broker. `voters` is the whole quorum the nodes belong to (the cluster, when one broker is restarted).
 * Running nodes are reused. On failure, stops exactly what this call started.
 */
export async function startKafkaNodes(config: StackConfig, nodes: KafkaNode[], voters: KafkaNode[] = nodes): Promise<KafkaStartResult> {
  const toStart = nodes.filter((n) => !liveRecord(n.pidFile));
  const records: PidRecord[] = [];
  try {
    if (toStart.length > 0) {
      for (const node of voters) writeNodeFiles(config, node, voters);
      if (!voters.every(isFormatted)) {
        const running = voters.filter((v) => liveRecord(v.pidFile));
        if (running.length > 0) {
          throw new StackError(
            'STACK_START_FAILED',
            `${toStart.map((n) => n.dataDir).join(', ')} not formatted while ${running[0]?.service} runs: stop the cluster (npm run stack:down) and start it again`,
          );
        }
        await formatStorage(config, voters);
      }
      for (const node of toStart) records.push(spawnNode(config, node));
    }
    await waitKafkaReady(config, nodes, records);
  } catch (e) {
    for (const node of toStart) await stopRecorded(node.pidFile, { graceMs: 5000 }).catch(() => {});
    throw e;
  }
  return { brokers: nodes.map((n) => `${config.host}:${n.port}`), started: toStart };
}

export async function stopKafkaNodes(nodes: KafkaNode[], opts: { kill?: boolean } = {}): Promise<number> {
  let stopped = 0;
  // Stopped one by one: a KRaft node that loses quorum while shutting down waits for it; stopping
  // them in sequence lets each finish its controlled shutdown while the others still form a quorum.
  for (const node of [...nodes].reverse()) {
    if (await stopRecorded(node.pidFile, { graceMs: 20_000, ...opts })) stopped++;
  }
  return stopped;
}

/** Names of Kafka versions whose jars sit in libs (for status output). */
export function kafkaJarVersion(config: StackConfig): string | undefined {
  if (!existsSync(config.kafka.libs)) return undefined;
  const jar = readdirSync(config.kafka.libs).find((f) => /^kafka_2\.13-.*\.jar$/.test(f));
  return jar?.replace(/^kafka_2\.13-/, '').replace(/\.jar$/, '');
}
