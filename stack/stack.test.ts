// Unit tests of the stack scripts: configuration parsing and the one-line failures for bad setups.
// No service is started; the CLI failure tests run the real `cli.ts up` against a throw-away STACK_HOME
// and check that it fails before starting anything.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import fc from 'fast-check';
import { parseCliArgs } from './args.ts';
import { prometheusConfig, prometheusPaths, RULE_FILE } from './monitoring.ts';
import { toClickHouseError } from './clickhouse-errors.ts';
import { resolveClickHouseServer } from './clickhouse.ts';
import { externalServices, loadStackConfig, REPO_ROOT, STACK_ENV_KEYS } from './config.ts';
import { StackError } from './errors.ts';
import { checkJava, clusterNodes, fetchKafkaJars, kafkaProperties, singleNode } from './kafka.ts';
import { portIsFree } from './proc.ts';
import { uniqueName } from '../testing/stack.ts';

const tmpDirs: string[] = [];
function tmpHome(): string {
  const d = mkdtempSync(path.join(os.tmpdir(), 'stack-test-'));
  tmpDirs.push(d);
  return d;
}
afterAll(() => {
  for (const d of tmpDirs) rmSync(d, { recursive: true, force: true });
});

function codeOf(fn: () => unknown): string | undefined {
  try {
    fn();
  } catch (e) {
    return e instanceof StackError ? e.code : `not a StackError: ${String(e)}`;
  }
  return undefined;
}

describe('loadStackConfig', () => {
  it('defaults avoid the well-known Kafka and ClickHouse ports', () => {
    const c = loadStackConfig({});
    expect([c.kafka.port, c.kafka.controllerPort]).toEqual([19092, 19093]);
    expect([c.clickhouse.httpPort, c.clickhouse.tcpPort, c.clickhouse.interserverPort]).toEqual([18123, 19000, 19009]);
    expect(c.kafka.clusterPorts).toEqual([29092, 29094, 29096]);
    expect(c.home).toBe(path.join(REPO_ROOT, '.local'));
    expect(c.kafka.version).toMatch(/^4\.\d+\.\d+$/);
  });

  it('reads every documented variable', () => {
    const c = loadStackConfig({
      STACK_HOME: '/tmp/x',
      STACK_KAFKA_PORT: '20092',
      STACK_KAFKA_CONTROLLER_PORT: '20093',
      STACK_CLUSTER_PORTS: '31000,31002,31004',
      STACK_CLICKHOUSE_HTTP_PORT: '20123',
      STACK_CLICKHOUSE_TCP_PORT: '20000',
      STACK_CLICKHOUSE_INTERSERVER_PORT: '20009',
      STACK_KAFKA_HEAP: '1g',
      STACK_KAFKA_VERSION: '4.1.1',
      STACK_JAVA: '/opt/java/bin/java',
    });
    expect(c.home).toBe('/tmp/x');
    expect(c.kafka).toMatchObject({
      port: 20092,
      controllerPort: 20093,
      clusterPorts: [31000, 31002, 31004],
      heap: '1g',
      version: '4.1.1',
      java: '/opt/java/bin/java',
    });
    expect(c.clickhouse).toMatchObject({ httpPort: 20123, tcpPort: 20000, interserverPort: 20009 });
  });

  it('rejects an unknown STACK_ variable (a typo must not silently fall back to a default)', () => {
    expect(codeOf(() => loadStackConfig({ STACK_KAFKA_PROT: '1234' }))).toBe('STACK_CONFIG_UNKNOWN_KEY');
    expect(() => loadStackConfig({ STACK_KAFKA_PROT: '1234' })).toThrow(/STACK_KAFKA_PROT/);
    // Every documented key is accepted.
    expect(codeOf(() => loadStackConfig(Object.fromEntries(STACK_ENV_KEYS.map((k) => [k, '']))))).toBeUndefined();
  });

  it('rejects bad values with the variable name in the message', () => {
    expect(() => loadStackConfig({ STACK_KAFKA_PORT: 'abc' })).toThrow(/STACK_KAFKA_PORT=abc/);
    expect(codeOf(() => loadStackConfig({ STACK_KAFKA_PORT: '80' }))).toBe('STACK_CONFIG_INVALID');
    expect(codeOf(() => loadStackConfig({ STACK_CLUSTER_PORTS: '1,2' }))).toBe('STACK_CONFIG_INVALID');
    expect(codeOf(() => loadStackConfig({ STACK_KAFKA_HEAP: 'lots' }))).toBe('STACK_CONFIG_INVALID');
    expect(codeOf(() => loadStackConfig({ STACK_KAFKA_VERSION: '3.9.0' }))).toBe('STACK_CONFIG_INVALID');
  });

  it('rejects two services configured onto one port', () => {
    expect(() => loadStackConfig({ STACK_CLICKHOUSE_HTTP_PORT: '19092' })).toThrow(/port 19092 is configured for both kafka and clickhouse http/);
    // The cluster's controller ports are broker port + 1.
    expect(() => loadStackConfig({ STACK_CLUSTER_PORTS: '29092,29093,29096' })).toThrow(/port 29093/);
  });

  it('external services: KAFKA_BROKERS and CLICKHOUSE_URL are parsed and validated', () => {
    expect(externalServices({})).toEqual({});
    expect(externalServices({ KAFKA_BROKERS: 'a:9092, b:9093', CLICKHOUSE_URL: 'http://ch:8123' })).toEqual({
      kafkaBrokers: ['a:9092', 'b:9093'],
      clickhouseUrl: 'http://ch:8123',
    });
    expect(codeOf(() => externalServices({ KAFKA_BROKERS: 'a' }))).toBe('STACK_CONFIG_INVALID');
    expect(codeOf(() => externalServices({ CLICKHOUSE_URL: 'ch:8123' }))).toBe('STACK_CONFIG_INVALID');
  });
});

describe('parseCliArgs', () => {
  it('accepts the commands and --brokers 1|3 in both spellings', () => {
    expect(parseCliArgs(['up'])).toEqual({ command: 'up' });
    expect(parseCliArgs(['up', '--brokers', '3'])).toEqual({ command: 'up', brokers: 3 });
    expect(parseCliArgs(['down', '--brokers=3'])).toEqual({ command: 'down', brokers: 3 });
  });
  it('rejects anything else with a clear line', () => {
    expect(() => parseCliArgs(['start'])).toThrow(/unknown command start/);
    expect(() => parseCliArgs(['up', '--brokers', '2'])).toThrow(/expected 1 \(single node\) or 3/);
    expect(() => parseCliArgs(['up', '--verbose'])).toThrow(/unknown option --verbose/);
  });
  it('--secure: the separate secured stack, never combined with --brokers', () => {
    expect(parseCliArgs(['up', '--secure'])).toEqual({ command: 'up', secure: true });
    expect(parseCliArgs(['down', '--secure'])).toEqual({ command: 'down', secure: true });
    expect(() => parseCliArgs(['up', '--secure', '--brokers', '3'])).toThrow(/does not combine with --brokers/);
  });
  it('--monitoring: Prometheus next to the plain stack, on a port of its own', () => {
    expect(parseCliArgs(['up', '--monitoring'])).toEqual({ command: 'up', monitoring: true });
    expect(parseCliArgs(['down', '--monitoring'])).toEqual({ command: 'down', monitoring: true });
    expect(parseCliArgs(['up', '--clickhouse-cluster'])).toEqual({ command: 'up', clickhouseCluster: true });
    expect(() => parseCliArgs(['up', '--secure', '--monitoring'])).toThrow(/go with up \(next to the plain stack\) or down \(only that part/);
    expect(() => parseCliArgs(['status', '--clickhouse-cluster'])).toThrow(/go with up/);
    expect(loadStackConfig({}).prometheus).toEqual({ server: 'prometheus', port: 19090 });
    expect(() => loadStackConfig({ STACK_PROMETHEUS_PORT: '18123' })).toThrow(/port 18123 is configured for both clickhouse http and prometheus/);
  });
  it("the generated prometheus.yml loads the rules in place and scrapes registered targets under the rules' job names", () => {
    const p = prometheusPaths(loadStackConfig({ STACK_HOME: '/tmp/h' }));
    const doc = JSON.parse(prometheusConfig(p).replace(/^#.*\n/, '')) as {
      rule_files: string[];
      scrape_configs: { job_name: string; file_sd_configs: { files: string[] }[] }[];
    };
    expect(doc.rule_files).toEqual([RULE_FILE]);
    expect(doc.scrape_configs.map((s) => [s.job_name, s.file_sd_configs[0]!.files[0]])).toEqual([
      ['ingest', '/tmp/h/prometheus/targets/ingest/*.json'],
      ['aggregator', '/tmp/h/prometheus/targets/aggregator/*.json'],
    ]);
  });
  it('the secured stack has ports of its own, checked against every other port', () => {
    const c = loadStackConfig({});
    expect(c.secure).toEqual({ kafkaPort: 19292, kafkaControllerPort: 19293, httpPort: 18124, tcpPort: 19001, interserverPort: 19010 });
    expect(() => loadStackConfig({ STACK_SECURE_KAFKA_PORT: '19092' })).toThrow(/port 19092 is configured for both kafka and secure kafka/);
  });
});

describe('kafkaProperties', () => {
  const props = (text: string) =>
    Object.fromEntries(
      text
        .split('\n')
        .filter((l) => l && !l.startsWith('#'))
        .map((l) => l.split('=', 2) as [string, string]),
    );
  it('single node: internal topics at replication factor 1, auto-creation off', () => {
    const c = loadStackConfig({});
    const node = singleNode(c);
    const p = props(kafkaProperties(c.host, node, [node]));
    expect(p).toMatchObject({
      'process.roles': 'broker,controller',
      'controller.quorum.voters': '1@127.0.0.1:19093',
      listeners: 'PLAINTEXT://127.0.0.1:19092,CONTROLLER://127.0.0.1:19093',
      'offsets.topic.replication.factor': '1',
      'transaction.state.log.replication.factor': '1',
      'min.insync.replicas': '1',
      'auto.create.topics.enable': 'false',
    });
  });
  it('cluster: three voters, replication factor 3, min.insync.replicas 2', () => {
    const c = loadStackConfig({});
    const nodes = clusterNodes(c);
    const p = props(kafkaProperties(c.host, nodes[1]!, nodes));
    expect(p).toMatchObject({
      'node.id': '2',
      'controller.quorum.voters': '1@127.0.0.1:29093,2@127.0.0.1:29095,3@127.0.0.1:29097',
      'default.replication.factor': '3',
      'min.insync.replicas': '2',
      'offsets.topic.replication.factor': '3',
      'transaction.state.log.min.isr': '2',
    });
  });
});

describe('preflight failures', () => {
  it('java missing', async () => {
    const c = loadStackConfig({ STACK_JAVA: '/nonexistent/bin/java' });
    await expect(checkJava(c)).rejects.toMatchObject({ code: 'STACK_JAVA_MISSING', message: expect.stringMatching(/install Java 17\+/) });
  });

  it('maven missing when the jars are not cached (and not needed when they are)', async () => {
    const home = tmpHome();
    const c = loadStackConfig({ STACK_HOME: home, STACK_MVN: '/nonexistent/mvn' });
    await expect(fetchKafkaJars(c)).rejects.toMatchObject({ code: 'STACK_MAVEN_MISSING', message: expect.stringMatching(/install Maven/) });
  });

  it('clickhouse-server missing', () => {
    const c = loadStackConfig({ STACK_CLICKHOUSE_SERVER: 'no-such-clickhouse-server' });
    expect(codeOf(() => resolveClickHouseServer(c, '/nonexistent'))).toBe('STACK_CLICKHOUSE_MISSING');
  });

  it('portIsFree sees a listener', async () => {
    const srv = net.createServer();
    await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
    const port = (srv.address() as net.AddressInfo).port;
    try {
      expect(await portIsFree(port)).toBe(false);
    } finally {
      await new Promise((r) => srv.close(r));
    }
    expect(await portIsFree(port)).toBe(true);
  });
});

/** Runs the real CLI; returns exit status and output. */
function cli(args: string[], env: Record<string, string>) {
  const res = spawnSync(process.execPath, ['--import', 'tsx', path.join(REPO_ROOT, 'stack', 'cli.ts'), ...args], {
    cwd: REPO_ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
    encoding: 'utf8',
    timeout: 60_000,
  });
  return { status: res.status, stdout: res.stdout, stderrLines: res.stderr.trim().split('\n').filter(Boolean) };
}

async function freePort(): Promise<number> {
  const srv = net.createServer();
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r));
  const port = (srv.address() as net.AddressInfo).port;
  await new Promise((r) => srv.close(r));
  return port;
}

describe('stack:up with a bad setup: one clear line, non-zero exit, nothing started', () => {
  it('a port already in use', async () => {
    const home = tmpHome();
    const blocker = net.createServer();
    await new Promise<void>((r) => blocker.listen(0, '127.0.0.1', r));
    const taken = (blocker.address() as net.AddressInfo).port;
    try {
      const ports = await Promise.all([freePort(), freePort(), freePort(), freePort()]);
      const r = cli(['up'], {
        STACK_HOME: home,
        STACK_KAFKA_PORT: String(taken),
        STACK_KAFKA_CONTROLLER_PORT: String(ports[0]),
        STACK_CLICKHOUSE_HTTP_PORT: String(ports[1]),
        STACK_CLICKHOUSE_TCP_PORT: String(ports[2]),
        STACK_CLICKHOUSE_INTERSERVER_PORT: String(ports[3]),
        STACK_CLUSTER_PORTS: '39092,39094,39096',
      });
      expect(r.status).toBe(1);
      expect(r.stderrLines).toEqual([
        `stack: port ${taken} (kafka) is already in use by another program: free it or choose another port with STACK_KAFKA_PORT`,
      ]);
      // Nothing was started: no pid files, and the other ports are still free.
      expect(existsSync(path.join(home, 'run')) ? readdirSync(path.join(home, 'run')).filter((f) => f.endsWith('.pid')) : []).toEqual([]);
      for (const p of ports) expect(await portIsFree(p)).toBe(true);
    } finally {
      await new Promise((r) => blocker.close(r));
    }
  });

  it('java missing', () => {
    const home = tmpHome();
    const r = cli(['up'], {
      STACK_HOME: home,
      STACK_JAVA: '/nonexistent/java',
      STACK_KAFKA_PORT: '39192',
      STACK_KAFKA_CONTROLLER_PORT: '39193',
      STACK_CLUSTER_PORTS: '39292,39294,39296',
    });
    expect(r.status).toBe(1);
    expect(r.stderrLines).toHaveLength(1);
    expect(r.stderrLines[0]).toMatch(/^stack: java not found \(\/nonexistent\/java\): install Java 17\+/);
  });

  it('clickhouse-server missing', () => {
    const home = tmpHome();
    const r = cli(['up'], {
      STACK_HOME: home,
      STACK_CLICKHOUSE_SERVER: '/nonexistent/clickhouse-server',
      STACK_KAFKA_PORT: '39392',
      STACK_KAFKA_CONTROLLER_PORT: '39393',
      STACK_CLUSTER_PORTS: '39492,39494,39496',
    });
    expect(r.status).toBe(1);
    expect(r.stderrLines).toEqual([
      'stack: clickhouse-server not found (/nonexistent/clickhouse-server): install it (Debian: apt-get install -y clickhouse-server) or set STACK_CLICKHOUSE_SERVER',
    ]);
  });

  it('PostgreSQL 15 missing', async () => {
    const home = tmpHome();
    const ports = await Promise.all([freePort(), freePort(), freePort(), freePort(), freePort(), freePort()]);
    const r = cli(['up'], {
      STACK_HOME: home,
      STACK_POSTGRES_BINDIR: '/nonexistent/pg15/bin',
      STACK_KAFKA_PORT: String(ports[0]),
      STACK_KAFKA_CONTROLLER_PORT: String(ports[1]),
      STACK_CLICKHOUSE_HTTP_PORT: String(ports[2]),
      STACK_CLICKHOUSE_TCP_PORT: String(ports[3]),
      STACK_CLICKHOUSE_INTERSERVER_PORT: String(ports[4]),
      STACK_CLUSTER_PORTS: '39892,39894,39896',
      STACK_POSTGRES_PORT: String(ports[5]),
    });
    expect(r.status).toBe(1);
    expect(r.stderrLines).toEqual([
      'stack: PostgreSQL 15 not found (/nonexistent/pg15/bin/postgres): install it (Debian: apt-get install -y postgresql-15; tools/setup.sh does) or set STACK_POSTGRES_BINDIR',
    ]);
    expect(existsSync(path.join(home, 'run')) ? readdirSync(path.join(home, 'run')).filter((f) => f.endsWith('.pid')) : []).toEqual([]);
  });

  it('maven missing with no cached jars', () => {
    const home = tmpHome();
    const r = cli(['up'], {
      STACK_HOME: home,
      STACK_MVN: '/nonexistent/mvn',
      STACK_KAFKA_PORT: '39592',
      STACK_KAFKA_CONTROLLER_PORT: '39593',
      STACK_CLICKHOUSE_HTTP_PORT: '39523',
      STACK_CLICKHOUSE_TCP_PORT: '39500',
      STACK_CLICKHOUSE_INTERSERVER_PORT: '39509',
      STACK_CLUSTER_PORTS: '39692,39694,39696',
      STACK_POSTGRES_PORT: '39532',
    });
    expect(r.status).toBe(1);
    expect(r.stderrLines).toHaveLength(1);
    expect(r.stderrLines[0]).toMatch(/^stack: mvn not found \(\/nonexistent\/mvn\), needed once to fetch the Kafka .* jars: install Maven/);
    expect(existsSync(path.join(home, 'run')) ? readdirSync(path.join(home, 'run')).filter((f) => f.endsWith('.pid')) : []).toEqual([]);
  });

  it('an unknown setting', () => {
    const r = cli(['status'], { STACK_KAFKA_PROT: '1' });
    expect(r.status).toBe(1);
    expect(r.stderrLines).toEqual([expect.stringMatching(/^stack: unknown setting STACK_KAFKA_PROT: the stack reads only /)]);
  });
});

describe('toClickHouseError', () => {
  it('parses the 18.16 error text and names the code', () => {
    const e = toClickHouseError(new Error("Code: 60, e.displayText() = DB::Exception: Table db.nope doesn't exist., e.what() = DB::Exception\n"));
    expect(e).toMatchObject({ code: 60, type: 'UNKNOWN_TABLE', message: "Table db.nope doesn't exist." });
  });
  it('parses the modern text, taking the last type marker even when the message has parentheses', () => {
    const e = toClickHouseError(new Error('Code: 57. DB::Exception: Table default.x (ABC_DEF) already exists. (TABLE_ALREADY_EXISTS) (version 24.3.1.1)'));
    expect(e).toMatchObject({ code: 57, type: 'TABLE_ALREADY_EXISTS', message: 'Table default.x (ABC_DEF) already exists' });
  });
  it('is undefined for errors that are not from ClickHouse', () => {
    expect(toClickHouseError(new Error('connect ECONNREFUSED 127.0.0.1:18123'))).toBeUndefined();
    expect(toClickHouseError('Code: 62')).toBeUndefined();
  });
});

describe('uniqueName', () => {
  it('is a valid Kafka topic and unquoted ClickHouse identifier, and never repeats', () => {
    fc.assert(
      fc.property(fc.string({ maxLength: 60 }), (prefix) => {
        const a = uniqueName(prefix);
        const b = uniqueName(prefix);
        expect(a).not.toBe(b);
        expect(a).toMatch(/^[a-z][a-z0-9_]*$/);
        expect(a.length).toBeLessThanOrEqual(100);
      }),
      { numRuns: 200 },
    );
  });
});
