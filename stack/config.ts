// Typed configuration of the local stack, read from the environment once. Every STACK_* variable must be
// one this file knows: a typo (STACK_KAFKA_PROT=...) would otherwise silently start Kafka on the default
// port, and a user's own service could be the one that answers. Defaults avoid the well-known ports
// (9092, 8123, 9000, ...) so a Kafka or ClickHouse the user already runs is never touched.
import { readFileSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { StackError } from './errors.ts';

/** Repository root: stack/ is two levels below it. */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..');

export interface StackConfig {
  /** Root of everything machine-local. @default `<repo>/.local` (STACK_HOME) */
  home: string;
  kafka: {
    /** Kafka version fetched from Maven Central. @default the pom's kafka.version (STACK_KAFKA_VERSION) */
    version: string;
    /** Folder holding the broker jars. @default `<home>/kafka/libs` */
    libs: string;
    /** Java executable. @default `$JAVA_HOME/bin/java`, else `java` on PATH (STACK_JAVA) */
    java: string;
    /** Maven executable used to fetch the jars. @default `mvn` (STACK_MVN) */
    mvn: string;
    /** Single node: client port. @default 19092 (STACK_KAFKA_PORT) */
    port: number;
    /** Single node: KRaft controller port. @default 19093 (STACK_KAFKA_CONTROLLER_PORT) */
    controllerPort: number;
    /** JVM heap of the single node (-Xmx and -Xms). @default 512m (STACK_KAFKA_HEAP) */
    heap: string;
    /** Three-broker cluster: client ports; each controller listens on its broker port + 1.
     *  @default 29092,29094,29096 (STACK_CLUSTER_PORTS) */
    clusterPorts: [number, number, number];
    /** JVM heap of each cluster broker. @default 384m (STACK_CLUSTER_HEAP) */
    clusterHeap: string;
  };
  clickhouse: {
    /** clickhouse-server executable. @default `clickhouse-server` on PATH, else /usr/sbin/clickhouse-server
     *  (STACK_CLICKHOUSE_SERVER) */
    server: string;
    /** HTTP port (what @clickhouse/client talks to). @default 18123 (STACK_CLICKHOUSE_HTTP_PORT) */
    httpPort: number;
    /** Native TCP port (clickhouse-client). @default 19000 (STACK_CLICKHOUSE_TCP_PORT) */
    tcpPort: number;
    /** Interserver HTTP port (replication; unused on one server but always bound). @default 19009
     *  (STACK_CLICKHOUSE_INTERSERVER_PORT) */
    interserverPort: number;
  };
  /** The secured stack (`stack:up -- --secure`, stack/secure.ts): its own Kafka and ClickHouse
   *  on their own ports, so the plain stack every other suite uses is untouched. */
  secure: {
    /** SASL_SSL client listener. @default 19292 (STACK_SECURE_KAFKA_PORT) */
    kafkaPort: number;
    /** KRaft controller listener (SASL PLAIN, broker-internal). @default 19293 (STACK_SECURE_KAFKA_CONTROLLER_PORT) */
    kafkaControllerPort: number;
    /** @default 18124 (STACK_SECURE_CLICKHOUSE_HTTP_PORT) */
    httpPort: number;
    /** Native port; also where the analyst views' Distributed tables connect. @default 19001 (STACK_SECURE_CLICKHOUSE_TCP_PORT) */
    tcpPort: number;
    /** @default 19010 (STACK_SECURE_CLICKHOUSE_INTERSERVER_PORT) */
    interserverPort: number;
  };
  /** Prometheus (`stack:up -- --monitoring`, stack/monitoring.ts): Debian's package run as a plain process. */
  prometheus: {
    /** prometheus executable. @default `prometheus` (STACK_PROMETHEUS) */
    server: string;
    /** Web/API port. @default 19090 (STACK_PROMETHEUS_PORT) */
    port: number;
  };
  /** The ClickHouse cluster (`stack:up -- --clickhouse-cluster`, stack/clickhouse-cluster.ts): ZooKeeper and
   *  four 18.16 servers, 2 shards x 2 replicas. Node i (0..3) uses HTTP basePort+i, native basePort+10+i,
   *  interserver basePort+20+i. */
  clickhouseCluster: {
    /** @default 18140 (STACK_CH_CLUSTER_BASE_PORT) */
    basePort: number;
    /** ZooKeeper client port. @default 12181 (STACK_ZOOKEEPER_PORT) */
    zookeeperPort: number;
  };
  /** PostgreSQL 15 (stack/postgres.ts): Debian's `postgresql-15` run as a plain process under <home>/postgres,
   *  the per-zone key store's engine. Started by a plain `stack:up`. */
  postgres: {
    /** Folder of Debian's postgres, initdb. @default /usr/lib/postgresql/15/bin (STACK_POSTGRES_BINDIR) */
    bindir: string;
    /** TCP port on 127.0.0.1 (scram-sha-256). @default 15432 (STACK_POSTGRES_PORT) */
    port: number;
  };
  /** How long one service may take to answer after start. @default 60000 (STACK_START_TIMEOUT_MS) */
  startTimeoutMs: number;
  /** Host every service binds and is reached on. Loopback only: nothing here is meant to be reachable
   *  from another machine. */
  host: '127.0.0.1';
}

/** The STACK_* variables this file reads; any other STACK_* variable is a configuration error. */
export const STACK_ENV_KEYS = [
  'STACK_HOME',
  'STACK_KAFKA_VERSION',
  'STACK_JAVA',
  'STACK_MVN',
  'STACK_KAFKA_PORT',
  'STACK_KAFKA_CONTROLLER_PORT',
  'STACK_KAFKA_HEAP',
  'STACK_CLUSTER_PORTS',
  'STACK_CLUSTER_HEAP',
  'STACK_CLICKHOUSE_SERVER',
  'STACK_CLICKHOUSE_HTTP_PORT',
  'STACK_CLICKHOUSE_TCP_PORT',
  'STACK_CLICKHOUSE_INTERSERVER_PORT',
  'STACK_START_TIMEOUT_MS',
  'STACK_SECURE_KAFKA_PORT',
  'STACK_SECURE_KAFKA_CONTROLLER_PORT',
  'STACK_SECURE_CLICKHOUSE_HTTP_PORT',
  'STACK_SECURE_CLICKHOUSE_TCP_PORT',
  'STACK_SECURE_CLICKHOUSE_INTERSERVER_PORT',
  'STACK_PROMETHEUS',
  'STACK_PROMETHEUS_PORT',
  'STACK_CH_CLUSTER_BASE_PORT',
  'STACK_ZOOKEEPER_PORT',
  'STACK_POSTGRES_BINDIR',
  'STACK_POSTGRES_PORT',
] as const;

type Env = Readonly<Record<string, string | undefined>>;

function parsePort(env: Env, key: string, fallback: number): number {
  const raw = env[key];
  if (raw === undefined || raw === '') return fallback;
  return portValue(key, raw);
}

function portValue(key: string, raw: string): number {
  const n = Number(raw.trim());
  if (!/^\d+$/.test(raw.trim()) || n < 1024 || n > 65535) {
    throw new StackError('STACK_CONFIG_INVALID', `${key}=${raw}: expected a port number 1024-65535`);
  }
  return n;
}

function parseHeap(env: Env, key: string, fallback: string): string {
  const raw = env[key];
  if (raw === undefined || raw === '') return fallback;
  if (!/^\d+[mMgG]$/.test(raw)) {
    throw new StackError('STACK_CONFIG_INVALID', `${key}=${raw}: expected a JVM size such as 512m or 1g`);
  }
  return raw;
}

/** Reads `<kafka.version>` from stack/pom.xml so the pom stays the one place the version is pinned. */
export function pomKafkaVersion(pomPath = path.join(REPO_ROOT, 'stack', 'pom.xml')): string {
  const m = /<kafka\.version>([^<]+)<\/kafka\.version>/.exec(readFileSync(pomPath, 'utf8'));
  if (!m?.[1]) throw new StackError('STACK_CONFIG_INVALID', `${pomPath}: no <kafka.version> property`);
  return m[1].trim();
}

export function loadStackConfig(env: Env = process.env, repoRoot = REPO_ROOT): StackConfig {
  const known = new Set<string>(STACK_ENV_KEYS);
  const unknown = Object.keys(env).filter((k) => k.startsWith('STACK_') && !known.has(k));
  if (unknown.length > 0) {
    throw new StackError(
      'STACK_CONFIG_UNKNOWN_KEY',
      `unknown setting ${unknown.join(', ')}: the stack reads only ${STACK_ENV_KEYS.join(', ')} (see stack/README.md)`,
    );
  }

  const home = path.resolve(repoRoot, env.STACK_HOME || '.local');
  const version = env.STACK_KAFKA_VERSION || pomKafkaVersion(path.join(repoRoot, 'stack', 'pom.xml'));
  if (!/^4\.\d+\.\d+$/.test(version)) {
    throw new StackError('STACK_CONFIG_INVALID', `STACK_KAFKA_VERSION=${version}: expected a Kafka 4.x.y version`);
  }
  const javaHome = env.JAVA_HOME;
  const java = env.STACK_JAVA || (javaHome ? path.join(javaHome, 'bin', 'java') : 'java');

  let clusterPorts: [number, number, number] = [29092, 29094, 29096];
  if (env.STACK_CLUSTER_PORTS) {
    const parts = env.STACK_CLUSTER_PORTS.split(',').map((p) => p.trim());
    if (parts.length !== 3) {
      throw new StackError('STACK_CONFIG_INVALID', `STACK_CLUSTER_PORTS=${env.STACK_CLUSTER_PORTS}: expected three comma-separated ports`);
    }
    clusterPorts = parts.map((p) => portValue('STACK_CLUSTER_PORTS', p)) as [number, number, number];
  }

  const timeoutRaw = env.STACK_START_TIMEOUT_MS;
  let startTimeoutMs = 60_000;
  if (timeoutRaw) {
    startTimeoutMs = Number(timeoutRaw);
    if (!Number.isInteger(startTimeoutMs) || startTimeoutMs < 1000) {
      throw new StackError('STACK_CONFIG_INVALID', `STACK_START_TIMEOUT_MS=${timeoutRaw}: expected milliseconds >= 1000`);
    }
  }

  const config: StackConfig = {
    home,
    kafka: {
      version,
      libs: path.join(home, 'kafka', 'libs'),
      java,
      mvn: env.STACK_MVN || 'mvn',
      port: parsePort(env, 'STACK_KAFKA_PORT', 19092),
      controllerPort: parsePort(env, 'STACK_KAFKA_CONTROLLER_PORT', 19093),
      heap: parseHeap(env, 'STACK_KAFKA_HEAP', '512m'),
      clusterPorts,
      clusterHeap: parseHeap(env, 'STACK_CLUSTER_HEAP', '384m'),
    },
    clickhouse: {
      server: env.STACK_CLICKHOUSE_SERVER || 'clickhouse-server',
      httpPort: parsePort(env, 'STACK_CLICKHOUSE_HTTP_PORT', 18123),
      tcpPort: parsePort(env, 'STACK_CLICKHOUSE_TCP_PORT', 19000),
      interserverPort: parsePort(env, 'STACK_CLICKHOUSE_INTERSERVER_PORT', 19009),
    },
    secure: {
      kafkaPort: parsePort(env, 'STACK_SECURE_KAFKA_PORT', 19292),
      kafkaControllerPort: parsePort(env, 'STACK_SECURE_KAFKA_CONTROLLER_PORT', 19293),
      httpPort: parsePort(env, 'STACK_SECURE_CLICKHOUSE_HTTP_PORT', 18124),
      tcpPort: parsePort(env, 'STACK_SECURE_CLICKHOUSE_TCP_PORT', 19001),
      interserverPort: parsePort(env, 'STACK_SECURE_CLICKHOUSE_INTERSERVER_PORT', 19010),
    },
    prometheus: {
      server: env.STACK_PROMETHEUS || 'prometheus',
      port: parsePort(env, 'STACK_PROMETHEUS_PORT', 19090),
    },
    clickhouseCluster: {
      basePort: parsePort(env, 'STACK_CH_CLUSTER_BASE_PORT', 18140),
      zookeeperPort: parsePort(env, 'STACK_ZOOKEEPER_PORT', 12181),
    },
    postgres: {
      bindir: env.STACK_POSTGRES_BINDIR || '/usr/lib/postgresql/15/bin',
      port: parsePort(env, 'STACK_POSTGRES_PORT', 15432),
    },
    startTimeoutMs,
    host: '127.0.0.1',
  };

  // Two services configured onto one port would make the second one fail at bind time with a message
  // about "address in use" that points at the wrong culprit; say it here instead.
  const ports = allPorts(config);
  const seen = new Map<number, string>();
  for (const [name, port] of ports) {
    const other = seen.get(port);
    if (other) {
      throw new StackError('STACK_CONFIG_INVALID', `port ${port} is configured for both ${other} and ${name}: give each its own port`);
    }
    seen.set(port, name);
  }
  return config;
}

/** Every port the stack may bind, named for error messages. */
export function allPorts(config: StackConfig): Array<[string, number]> {
  const c = config.kafka.clusterPorts;
  return [
    ['kafka', config.kafka.port],
    ['kafka controller', config.kafka.controllerPort],
    ['clickhouse http', config.clickhouse.httpPort],
    ['clickhouse tcp', config.clickhouse.tcpPort],
    ['clickhouse interserver', config.clickhouse.interserverPort],
    ...c.flatMap((p, i): Array<[string, number]> => [
      [`cluster broker ${i + 1}`, p],
      [`cluster controller ${i + 1}`, p + 1],
    ]),
    ['secure kafka', config.secure.kafkaPort],
    ['secure kafka controller', config.secure.kafkaControllerPort],
    ['secure clickhouse http', config.secure.httpPort],
    ['secure clickhouse tcp', config.secure.tcpPort],
    ['secure clickhouse interserver', config.secure.interserverPort],
    ['prometheus', config.prometheus.port],
    ['zookeeper', config.clickhouseCluster.zookeeperPort],
    ['postgres', config.postgres.port],
    ...[0, 1, 2, 3].flatMap((i): Array<[string, number]> => [
      [`clickhouse cluster node ${i + 1} http`, config.clickhouseCluster.basePort + i],
      [`clickhouse cluster node ${i + 1} tcp`, config.clickhouseCluster.basePort + 10 + i],
      [`clickhouse cluster node ${i + 1} interserver`, config.clickhouseCluster.basePort + 20 + i],
    ]),
  ];
}

/** External services given by the environment take the place of the local ones (see testing/stack.ts). */
export interface ExternalServices {
  kafkaBrokers?: string[];
  clickhouseUrl?: string;
}

export function externalServices(env: Env = process.env): ExternalServices {
  const out: ExternalServices = {};
  const brokers = env.KAFKA_BROKERS?.trim();
  if (brokers) {
    const list = brokers
      .split(',')
      .map((b) => b.trim())
      .filter(Boolean);
    for (const b of list) {
      if (!/^[^\s:]+:\d+$/.test(b)) {
        throw new StackError('STACK_CONFIG_INVALID', `KAFKA_BROKERS=${brokers}: expected host:port[,host:port...]`);
      }
    }
    out.kafkaBrokers = list;
  }
  const url = env.CLICKHOUSE_URL?.trim();
  if (url) {
    try {
      const u = new URL(url);
      if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('protocol');
    } catch {
      throw new StackError('STACK_CONFIG_INVALID', `CLICKHOUSE_URL=${url}: expected an http(s):// URL of ClickHouse's HTTP interface`);
    }
    out.clickhouseUrl = url;
  }
  return out;
}
