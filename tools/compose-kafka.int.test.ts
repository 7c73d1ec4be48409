// The compose deployment's Kafka configuration on a real broker (no Docker here): the committed
// deploy/compose/kafka/server.properties, the broker JAAS lines and SCRAM users that
// deploy/compose/secrets/init.sh generates, the storage formatted through its java argument file and the
// node's lines appended as deploy/compose/kafka/broker.sh does, run with the stack's Kafka jars as one
// node (the three compose voters become this one, host names and paths become local ones; nothing else
// changes). Then what the manifests promise: SCRAM over TLS only, deny by default, the ACLs of
// tools/security/acls.ts as the only grants; each refusal beside its control.
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import kafkajs, { type Kafka as KafkaClient } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { loadStackConfig } from '../stack/config.ts';
import { classpath, fetchKafkaJars } from '../stack/kafka.ts';
import { aclRules, applyAclRules, type AclTopic } from './security/acls.ts';

const { Kafka, logLevel } = kafkajs;
const COMPOSE = fileURLToPath(new URL('../deploy/compose/', import.meta.url));
const compose = YAML.parse(readFileSync(join(COMPOSE, 'compose.yaml'), 'utf8'), { merge: true }) as Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const config = loadStackConfig();

async function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const port = (s.address() as { port: number }).port;
      s.close(() => resolve(port));
    });
  });
}

let dir: string;
let secrets: string;
let broker: ChildProcess | undefined;
let port: number;
const EVENTS = 'compose-kafka-check.events';
const PERSONAL = 'compose-kafka-check.personal.cn.p7d';

const pw = (f: string) => readFileSync(join(secrets, f), 'utf8').split('\n')[0]!;
function client(user: string, passwordFile: string, opts: { tls?: boolean } = {}): KafkaClient {
  return new Kafka({
    clientId: `compose-kafka-${user}`,
    brokers: [`localhost:${port}`],
    ...(opts.tls === false ? {} : { ssl: { ca: [readFileSync(join(secrets, 'kafka/ca.pem'), 'utf8')], rejectUnauthorized: true } }),
    ...(opts.tls === false ? {} : { sasl: { mechanism: 'scram-sha-512' as const, username: user, password: pw(passwordFile) } }),
    logLevel: logLevel.NOTHING,
    connectionTimeout: 5000,
    requestTimeout: 10_000,
    retry: { retries: 1, initialRetryTime: 200 },
  });
}

beforeAll(async () => {
  await fetchKafkaJars(config);
  dir = mkdtempSync(join(tmpdir(), 'compose-kafka-'));
  secrets = join(dir, 'secrets');
  const init = spawnSync('sh', [join(COMPOSE, 'secrets/init.sh'), secrets], {
    encoding: 'utf8',
    env: { PATH: process.env.PATH, SECRETS_INIT_CHOWN: '0', KAFKA_CLUSTER_ID: compose.services.secrets.environment.KAFKA_CLUSTER_ID },
  });
  expect(init.status, init.stderr).toBe(0);
  port = await freePort();
  const controller = await freePort();
  const base = readFileSync(join(COMPOSE, 'kafka/server.properties'), 'utf8')
    .replace(/^controller\.quorum\.voters=.*$/m, `controller.quorum.voters=1@localhost:${controller}`)
    .replace(/^listeners=.*$/m, `listeners=INTERNAL://localhost:${port},CONTROLLER://localhost:${controller}`)
    .replaceAll('/run/telemetry/kafka', join(secrets, 'kafka'))
    .replace(/^(default\.replication\.factor|offsets\.topic\.replication\.factor|transaction\.state\.log\.replication\.factor)=3$/gm, '$1=1')
    .replace(/^(min\.insync\.replicas|transaction\.state\.log\.min\.isr)=2$/gm, '$1=1')
    .replace(/^log\.dirs=.*$/m, `log.dirs=${join(dir, 'data')}\noffsets.topic.num.partitions=1`);
  const props = join(dir, 'server.properties');
  // broker.sh: the committed file, this node's lines, the broker's JAAS lines.
  writeFileSync(
    props,
    `${base}\nnode.id=1\nadvertised.listeners=INTERNAL://localhost:${port}\n${readFileSync(join(secrets, 'kafka/secrets.properties'), 'utf8')}`,
    {
      mode: 0o600,
    },
  );
  const args = join(dir, 'format.args');
  writeFileSync(args, readFileSync(join(secrets, 'kafka/format.args'), 'utf8').replace('/opt/kafka/config/server.properties', props), { mode: 0o600 });
  const format = spawnSync(config.kafka.java, ['-XX:-UsePerfData', '-cp', classpath(config), `@${args}`], { encoding: 'utf8', timeout: 60_000 });
  expect(format.status, 'kafka storage format').toBe(0);
  broker = spawn(config.kafka.java, ['-Xmx384m', '-XX:-UsePerfData', '-cp', classpath(config), 'kafka.Kafka', props], { stdio: 'ignore' });
  // Up when the operator (a super user, over SCRAM/TLS) can list topics.
  const deadline = Date.now() + 90_000;
  for (;;) {
    const admin = client('operator', 'operator/kafka.password').admin();
    const ok = await admin
      .connect()
      .then(() => admin.listTopics())
      .then(
        () => true,
        () => false,
      )
      .finally(() => admin.disconnect());
    if (ok) break;
    if (Date.now() > deadline || broker.exitCode !== null) throw new Error(`the compose broker configuration did not start (exit ${broker.exitCode})`);
    await new Promise((r) => setTimeout(r, 1000));
  }
  const admin = client('operator', 'operator/kafka.password').admin();
  await admin.connect();
  try {
    await admin.createTopics({ topics: [EVENTS, PERSONAL].map((topic) => ({ topic, numPartitions: 1, replicationFactor: 1 })), waitForLeaders: true });
    const topics: AclTopic[] = [
      { topic: EVENTS, kind: 'events', zone: undefined },
      { topic: PERSONAL, kind: 'personal', zone: 'cn' },
    ];
    await applyAclRules(admin, aclRules({ topics }));
  } finally {
    await admin.disconnect();
  }
}, 180_000);

afterAll(async () => {
  if (broker && broker.exitCode === null) {
    broker.kill('SIGKILL');
    await new Promise((r) => broker!.once('exit', r));
  }
  if (dir) rmSync(dir, { recursive: true, force: true });
});

async function produce(user: string, file: string, topic: string): Promise<string> {
  const p = client(user, file).producer({ allowAutoTopicCreation: false, ...(user === 'ingest' ? { idempotent: true } : {}) });
  try {
    await p.connect();
    await p.send({ topic, acks: -1, messages: [{ value: 'x' }] });
    return 'ok';
  } catch (e) {
    return (e as Error).message;
  } finally {
    await p.disconnect();
  }
}

describe('the compose Kafka configuration on a real broker', () => {
  it('ingest writes the events topic with its SCRAM principal over TLS (the ACLs of tools/security/acls.ts)', async () => {
    expect(await produce('ingest', 'ingest/kafka.password', EVENTS)).toBe('ok');
  });

  it('denies what no ACL grants: the aggregator cannot write; granting it is what changes that (control)', async () => {
    expect(await produce('aggregator', 'aggregator/kafka.password', EVENTS)).toMatch(/authoriz/i);
    const admin = client('operator', 'operator/kafka.password').admin();
    await admin.connect();
    await applyAclRules(admin, [{ principal: 'User:aggregator', resourceType: 'topic', patternType: 'literal', resourceName: EVENTS, operation: 'write' }]);
    await admin.disconnect();
    // The authorizer's cache follows the metadata log within moments.
    let r = '';
    for (let i = 0; i < 20 && r !== 'ok'; i++) {
      r = await produce('aggregator', 'aggregator/kafka.password', EVENTS);
      if (r !== 'ok') await new Promise((res) => setTimeout(res, 250));
    }
    expect(r).toBe('ok');
  });

  it("a zone's personal topic is not readable by the aggregator; its zone principal reads it (control)", async () => {
    const read = async (user: string, file: string, group: string) => {
      const c = client(user, file).consumer({ groupId: group });
      try {
        await c.connect();
        await c.subscribe({ topics: [PERSONAL], fromBeginning: true });
        return 'ok';
      } catch (e) {
        return (e as Error).message;
      } finally {
        await c.disconnect();
      }
    };
    expect(await read('aggregator', 'aggregator/kafka.password', 'telemetry-aggregator')).toMatch(/authoriz/i);
    expect(await read('zone-cn', 'zones/kafka-zone-cn.password', 'telemetry-personal-cn')).toBe('ok');
  });

  it('refuses a wrong password and a plaintext client; the right password over TLS is accepted (control)', async () => {
    const wrong = client('ingest', 'aggregator/kafka.password').admin();
    await expect(wrong.connect()).rejects.toThrow(/SASL SCRAM SHA512 authentication failed/);
    const plain = client('ingest', 'ingest/kafka.password', { tls: false }).admin();
    await expect(plain.connect().then(() => plain.listTopics())).rejects.toThrow();
    await plain.disconnect();
    const right = client('ingest', 'ingest/kafka.password').admin();
    await expect(right.connect()).resolves.toBeUndefined();
    await right.disconnect();
  });

  it("the brokers' healthcheck client configuration (kafka/client.properties) logs in over TLS", () => {
    const cfg = join(dir, 'client.properties');
    writeFileSync(cfg, readFileSync(join(secrets, 'kafka/client.properties'), 'utf8').replaceAll('/run/telemetry/kafka', join(secrets, 'kafka')), {
      mode: 0o600,
    });
    const r = spawnSync(
      config.kafka.java,
      [
        '-XX:-UsePerfData',
        '-cp',
        classpath(config),
        'org.apache.kafka.tools.BrokerApiVersionsCommand',
        '--bootstrap-server',
        `localhost:${port}`,
        '--command-config',
        cfg,
      ],
      {
        encoding: 'utf8',
        timeout: 60_000,
      },
    );
    expect(r.stdout).toMatch(new RegExp(`localhost:${port} \\(id: 1`));
    expect(r.status).toBe(0);
  });
});
