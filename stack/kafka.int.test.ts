// kafkajs 2.2.4 against the stack's Apache Kafka 4.x broker: the operations the pipeline relies on.
// If one of these fails after a Kafka upgrade, the API that broke is named in the failing test.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadStackConfig } from './config.ts';
import { classpath, storageFormatArgs } from './kafka.ts';
import type { Admin, Producer } from 'kafkajs';
import kafkajs from 'kafkajs';
import { createKafka, createTopics, readAll, stackInfo, uniqueName } from '../testing/stack.ts';

const { ConfigResourceTypes } = kafkajs;

let admin: Admin;
let producer: Producer;

beforeAll(async () => {
  admin = createKafka(uniqueName('kafka_int_admin')).admin();
  await admin.connect();
  producer = createKafka(uniqueName('kafka_int_producer')).producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
});

afterAll(async () => {
  await producer?.disconnect();
  await admin?.disconnect();
});

describe('kafkajs against the local Kafka: version and topics', () => {
  it('talks to the Kafka version the stack says it runs', async () => {
    const info = stackInfo();
    const cluster = await admin.describeCluster();
    expect(cluster.brokers.map((b) => `${b.host}:${b.port}`).sort()).toEqual([...info.kafkaBrokers].sort());
    if (!info.external.kafka) expect(info.kafkaVersion).toMatch(/^4\./);
  });

  it('creates topics with explicit partitions, retention and cleanup policy, and reads the configs back', async () => {
    const events = uniqueName('kafka_int_events');
    const compacted = uniqueName('kafka_int_compacted');
    await createTopics([events], { partitions: 3, configs: { 'retention.ms': '3600000', 'cleanup.policy': 'delete' } });
    await createTopics([compacted], { partitions: 2, configs: { 'cleanup.policy': 'compact', 'min.compaction.lag.ms': '60000' } });

    const meta = await admin.fetchTopicMetadata({ topics: [events, compacted] });
    const partitions = Object.fromEntries(meta.topics.map((t) => [t.name, t.partitions.length]));
    expect(partitions).toEqual({ [events]: 3, [compacted]: 2 });

    const described = await admin.describeConfigs({
      includeSynonyms: false,
      resources: [
        { type: ConfigResourceTypes.TOPIC, name: events, configNames: ['retention.ms', 'cleanup.policy'] },
        { type: ConfigResourceTypes.TOPIC, name: compacted, configNames: ['cleanup.policy', 'min.compaction.lag.ms', 'retention.ms'] },
      ],
    });
    const configs = Object.fromEntries(
      described.resources.map((r) => [
        r.resourceName,
        Object.fromEntries(r.configEntries.map((e) => [e.configName, { value: e.configValue, isDefault: e.isDefault }])),
      ]),
    );
    expect(configs[events]).toEqual({
      'retention.ms': { value: '3600000', isDefault: false },
      'cleanup.policy': { value: 'delete', isDefault: false },
    });
    expect(configs[compacted]?.['cleanup.policy']).toEqual({ value: 'compact', isDefault: false });
    expect(configs[compacted]?.['min.compaction.lag.ms']).toEqual({ value: '60000', isDefault: false });
    // Not set explicitly: the broker default (7 days) shows as a default, proving the explicit one above is ours.
    expect(configs[compacted]?.['retention.ms']).toEqual({ value: '604800000', isDefault: true });
  });

  it('refuses to auto-create a topic nobody created (services must create theirs explicitly)', async () => {
    const missing = uniqueName('kafka_int_missing');
    const p = createKafka(uniqueName('kafka_int_autocreate')).producer({ allowAutoTopicCreation: true, retry: { retries: 1 } });
    await p.connect();
    try {
      await expect(p.send({ topic: missing, acks: -1, messages: [{ value: 'x' }] })).rejects.toThrow(
        /does not host this topic-partition|UNKNOWN_TOPIC|not exist/i,
      );
    } finally {
      await p.disconnect();
    }
    const topics = await admin.listTopics();
    expect(topics).not.toContain(missing);
  });
});

describe('kafkajs against the local Kafka: producers and consumer groups', () => {
  it('an idempotent producer with acks=all writes each record once, at contiguous offsets', async () => {
    const topic = uniqueName('kafka_int_idem');
    await createTopics([topic], { partitions: 3 });
    const messages = Array.from({ length: 60 }, (_, i) => ({ key: `device-${i % 7}`, value: `event-${i}` }));
    const results = await producer.send({ topic, acks: -1, messages });
    expect(results.every((r) => r.errorCode === 0)).toBe(true);

    const offsets = await admin.fetchTopicOffsets(topic);
    expect(offsets.reduce((sum, p) => sum + Number(p.high) - Number(p.low), 0)).toBe(60);

    const records = await readAll(topic, 60, 30_000);
    expect(records).toHaveLength(60);
    expect(new Set(records.map((r) => r.value?.toString())).size).toBe(60);
    for (let p = 0; p < 3; p++) {
      const inPartition = records.filter((r) => r.partition === p).map((r) => Number(r.offset));
      expect(inPartition).toEqual(inPartition.map((_, i) => i));
    }
  });

  it('kafkajs itself refuses an idempotent send without acks=all (the guard the ingest relies on)', async () => {
    const topic = uniqueName('kafka_int_idem_acks');
    await createTopics([topic]);
    await expect(producer.send({ topic, acks: 1, messages: [{ value: 'x' }] })).rejects.toThrow(/idempotent/i);
  });

  it('a consumer group receives every record exactly as sent: keys, binary values, headers, per-key order', async () => {
    const topic = uniqueName('kafka_int_exact');
    await createTopics([topic], { partitions: 3 });
    const sent = Array.from({ length: 45 }, (_, i) => ({
      key: `k${i % 5}`,
      // Every byte value, shifted per record: any text decoding or truncation on the way shows.
      value: Buffer.from(Array.from({ length: 256 }, (_, b) => (b + i) % 256)),
      headers: { seq: String(i), kind: i % 2 === 0 ? 'even' : 'odd' },
    }));
    await producer.send({ topic, acks: -1, messages: sent });

    const consumer = createKafka(uniqueName('kafka_int_group')).consumer({ groupId: uniqueName('kafka_int_group'), maxWaitTimeInMs: 500 });
    const got: Array<{ key: string; value: Buffer; headers: Record<string, string> }> = [];
    await consumer.connect();
    try {
      await consumer.subscribe({ topic, fromBeginning: true });
      await new Promise<void>((resolve, reject) => {
        const timer = setTimeout(() => reject(new Error(`received ${got.length} of ${sent.length}`)), 30_000);
        void consumer.run({
          eachMessage: async ({ message }) => {
            got.push({
              key: message.key?.toString() ?? '',
              value: message.value ?? Buffer.alloc(0),
              headers: Object.fromEntries(Object.entries(message.headers ?? {}).map(([k, v]) => [k, String(v)])),
            });
            if (got.length === sent.length) {
              clearTimeout(timer);
              resolve();
            }
          },
        });
      });
    } finally {
      await consumer.disconnect();
    }
    expect(got).toHaveLength(sent.length);
    const bySeq = new Map(got.map((g) => [g.headers.seq, g]));
    expect(bySeq.size).toBe(sent.length);
    for (const [i, s] of sent.entries()) {
      const g = bySeq.get(String(i));
      expect(g?.key).toBe(s.key);
      expect(g?.headers).toEqual(s.headers);
      expect(g?.value.equals(s.value)).toBe(true);
    }
    // One key always lands in one partition, so its records arrive in the order they were sent.
    for (let k = 0; k < 5; k++) {
      const seqs = got.filter((g) => g.key === `k${k}`).map((g) => Number(g.headers.seq));
      expect(seqs).toEqual([...seqs].sort((a, b) => a - b));
    }
  });

  it('a restarted consumer resumes from its committed offset; a group without commits starts over', async () => {
    const topic = uniqueName('kafka_int_resume');
    await createTopics([topic], { partitions: 2 });
    const groupId = uniqueName('kafka_int_resume_group');
    await producer.send({ topic, acks: -1, messages: Array.from({ length: 10 }, (_, i) => ({ key: `k${i}`, value: `first-${i}` })) });

    async function consume(group: string, expected: number): Promise<string[]> {
      const c = createKafka(uniqueName('kafka_int_resume_c')).consumer({ groupId: group, maxWaitTimeInMs: 500 });
      const values: string[] = [];
      await c.connect();
      try {
        await c.subscribe({ topic, fromBeginning: true });
        await new Promise<void>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error(`group ${group}: received ${values.length} of ${expected}`)), 30_000);
          void c.run({
            // Commit after every message: what was processed is exactly what is committed.
            autoCommit: false,
            eachMessage: async ({ topic: t, partition, message }) => {
              values.push(message.value?.toString() ?? '');
              await c.commitOffsets([{ topic: t, partition, offset: (BigInt(message.offset) + 1n).toString() }]);
              if (values.length === expected) {
                clearTimeout(timer);
                resolve();
              }
            },
          });
        });
        // Nothing beyond `expected` may arrive: give the fetch loop a moment to show extra records.
        await new Promise((r) => setTimeout(r, 1000));
      } finally {
        await c.disconnect();
      }
      return values;
    }

    const first = await consume(groupId, 10);
    expect(first.sort()).toEqual(Array.from({ length: 10 }, (_, i) => `first-${i}`).sort());

    await producer.send({ topic, acks: -1, messages: Array.from({ length: 5 }, (_, i) => ({ key: `k${i}`, value: `second-${i}` })) });
    const committed = await admin.fetchOffsets({ groupId, topics: [topic] });
    expect(committed[0]?.partitions.reduce((s, p) => s + Number(p.offset), 0)).toBe(10);

    const resumed = await consume(groupId, 5);
    expect(resumed.sort()).toEqual(Array.from({ length: 5 }, (_, i) => `second-${i}`).sort());

    // Negative control: the same consumer code in a group with no commits reads all 15 from the start.
    const fresh = await consume(uniqueName('kafka_int_resume_fresh'), 15);
    expect(fresh).toHaveLength(15);
  });
});

describe('storage formatting (every node of the stack goes through storageFormatArgs)', () => {
  it('formats with a cluster id that starts with "-" (one random id in 64); negative control: the id as a separate argument is refused', () => {
    const config = loadStackConfig();
    const dir = mkdtempSync(join(tmpdir(), 'kafka-format-'));
    const props = join(dir, 'server.properties');
    writeFileSync(
      props,
      [
        'process.roles=broker,controller',
        'node.id=1',
        'controller.quorum.voters=1@127.0.0.1:39093',
        'listeners=PLAINTEXT://127.0.0.1:39092,CONTROLLER://127.0.0.1:39093',
        'controller.listener.names=CONTROLLER',
        `log.dirs=${join(dir, 'data')}`,
      ].join('\n'),
    );
    const id = '-ev5OC0EL1IslgS-zOxMqw';
    const tool = (args: string[]) =>
      spawnSync(config.kafka.java, ['-cp', classpath(config), 'kafka.tools.StorageTool', ...args], { encoding: 'utf8', timeout: 60_000 });
    const old = tool(['format', '-t', id, '-c', props]);
    expect([old.status, old.stderr]).toEqual([1, expect.stringContaining('argument --cluster-id/-t: expected one argument')]);
    const r = tool(storageFormatArgs(id, props));
    expect(r.status, r.stderr).toBe(0);
    expect(readFileSync(join(dir, 'data', 'meta.properties'), 'utf8')).toContain(`cluster.id=${id}`);
    rmSync(dir, { recursive: true, force: true });
  }, 120_000);
});
