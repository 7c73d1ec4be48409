// The three-broker cluster that fault tests use (testing/stack.ts: startThreeBrokers/killBroker/restartBroker).
// Checks that it is configured as promised: replication factor 3 with min.insync.replicas=2 keeps
// acks=all writes going with one broker down, and a partition left with one in-sync replica refuses
// acks=all writes (the negative control: with min.insync.replicas=1 that write would be acknowledged
// and this test would fail).
//
// The cluster runs KRaft in combined mode (each node is broker and controller), so two nodes down also
// means no controller quorum: metadata (leaders, ISR) freezes. Fault tests should crash one broker at a
// time, as this one does.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Admin, Producer } from 'kafkajs';
import { createKafka, createTopics, killBroker, readAll, restartBroker, startThreeBrokers, stackInfo, uniqueName, waitForLeaders } from '../testing/stack.ts';

let brokers: string[];
let producer: Producer | undefined;
let admin: Admin | undefined;

beforeAll(async () => {
  brokers = await startThreeBrokers();
});

afterAll(async () => {
  await producer?.disconnect().catch(() => {});
  await admin?.disconnect().catch(() => {});
  // Leave the cluster as the next fault test expects it: all three brokers up (no-op for running ones).
  for (const id of [1, 2, 3] as const) await restartBroker(id);
});

async function isrOf(topic: string): Promise<number[]> {
  const meta = await admin!.fetchTopicMetadata({ topics: [topic] });
  return [...(meta.topics[0]?.partitions[0]?.isr ?? [])].sort();
}

async function waitIsr(topic: string, expected: number[]): Promise<void> {
  const deadline = Date.now() + 30_000;
  for (;;) {
    const isr = await isrOf(topic);
    if (isr.join() === expected.join()) return;
    if (Date.now() > deadline) throw new Error(`ISR of ${topic} is [${isr}] after 30 s, expected [${expected}]`);
    await new Promise((r) => setTimeout(r, 250));
  }
}

describe('three-broker cluster for fault tests', () => {
  it('keeps acks=all writes going with a broker down, and refuses them below min.insync.replicas', async () => {
    expect(brokers).toEqual(stackInfo().clusterBrokers);
    admin = createKafka(uniqueName('cluster_int_admin'), { brokers }).admin();
    await admin.connect();
    const rf3 = uniqueName('cluster_int_rf3');
    const rf2 = uniqueName('cluster_int_rf2');
    // Neither topic overrides min.insync.replicas: the cluster default (2) is what is tested.
    await createTopics([rf3], { partitions: 1, replicationFactor: 3, brokers });
    // waitForLeaders: false for the same reason as in testing/stack.ts createTopics (kafkajs gives up on a fresh KRaft
    // broker's UNKNOWN_TOPIC_OR_PARTITION); our waitForLeaders below retries it.
    await admin.createTopics({ waitForLeaders: false, topics: [{ topic: rf2, replicaAssignment: [{ partition: 0, replicas: [1, 2] }] }] });
    await waitForLeaders([rf2], { brokers });

    producer = createKafka(uniqueName('cluster_int_p'), { brokers }).producer({ idempotent: true, maxInFlightRequests: 1 });
    await producer.connect();
    await producer.send({ topic: rf3, acks: -1, messages: [{ key: 'a', value: 'all-up' }] });
    await producer.send({ topic: rf2, acks: -1, messages: [{ key: 'a', value: 'all-up' }] });

    await killBroker(2);
    await producer.send({ topic: rf3, acks: -1, messages: [{ key: 'a', value: 'one-down' }] });

    // rf2 now has one in-sync replica (broker 1) < min.insync.replicas=2: the leader must refuse.
    await waitIsr(rf2, [1]);
    const strict = createKafka(uniqueName('cluster_int_strict'), { brokers }).producer({ retry: { retries: 0 } });
    await strict.connect();
    try {
      await expect(strict.send({ topic: rf2, acks: -1, messages: [{ key: 'a', value: 'under-min-isr' }] })).rejects.toThrow(
        /fewer in-sync replicas than required/i,
      );
    } finally {
      await strict.disconnect();
    }

    await restartBroker(2);
    await waitIsr(rf2, [1, 2]);
    await producer.send({ topic: rf2, acks: -1, messages: [{ key: 'a', value: 'back' }] });

    expect((await readAll(rf3, 3, 5000, { brokers })).map((r) => r.value?.toString())).toEqual(['all-up', 'one-down']);
    expect((await readAll(rf2, 3, 5000, { brokers })).map((r) => r.value?.toString())).toEqual(['all-up', 'back']);
  });
});
