/**
 * Reading topics from their beginning up to the end offsets they have when the read starts, with a
 * consumer group of its own that commits nothing: what a rights request answers for (`readToEnd`), and
 * what every ingest copy reads of the suppression list before it serves (suppression.ts, which keeps
 * the consumer running afterwards).
 */
import type { Admin, Consumer, Kafka, KafkaMessage } from 'kafkajs';

export interface ReadMessage {
  topic: string;
  partition: number;
  offset: string;
  timestamp: string;
  key: Buffer | null;
  value: Buffer | null;
}

/** A topic's offsets; a topic created a moment ago may not have a leader yet (retriable): try again for ~10 s. */
async function offsetsOf(admin: Admin, topic: string): Promise<Array<{ partition: number; high: string; low: string }>> {
  for (let attempt = 0; ; attempt++) {
    try {
      return await admin.fetchTopicOffsets(topic);
    } catch (e) {
      if (attempt >= 40 || (e as { retriable?: boolean }).retriable !== true) throw e;
      await new Promise((r) => setTimeout(r, 250));
    }
  }
}

export interface Follow {
  consumer: Consumer;
  /** Resolves once every partition was read up to its end offset at the start; rejects after `timeoutMs` (the consumer is then disconnected). */
  caughtUp: Promise<void>;
  /** `topic/partition` -> the last offset it held at the start (partitions that were empty are absent). */
  ends: ReadonlyMap<string, bigint>;
}

/**
 * Subscribes a fresh consumer (group `groupPrefix` + a random suffix) to `topics` from their beginning
 * and hands every message to `onMessage`, until stopped. `caughtUp` says when it has read what the
 * topics held when it started.
 */
export async function follow(
  kafka: Kafka,
  topics: readonly string[],
  opts: { groupPrefix: string; timeoutMs: number; onMessage: (m: ReadMessage) => void },
): Promise<Follow> {
  const pending = new Map<string, bigint>(); // topic/partition -> last offset to read
  const admin = kafka.admin();
  await admin.connect();
  try {
    for (const topic of topics) {
      for (const p of await offsetsOf(admin, topic)) if (BigInt(p.high) > BigInt(p.low)) pending.set(`${topic}/${p.partition}`, BigInt(p.high) - 1n);
    }
  } finally {
    await admin.disconnect();
  }
  const ends = new Map(pending);
  let done!: () => void;
  const reached = new Promise<void>((r) => (done = r));
  if (pending.size === 0) done();
  const consumer = kafka.consumer({
    groupId: `${opts.groupPrefix}${process.pid}-${Math.random().toString(36).slice(2, 10)}`,
    sessionTimeout: 10_000,
    heartbeatInterval: 1000,
    maxWaitTimeInMs: 500,
  });
  await consumer.connect();
  for (const topic of topics) await consumer.subscribe({ topic, fromBeginning: true });
  await consumer.run({
    autoCommit: false,
    eachMessage: async ({ topic, partition, message }: { topic: string; partition: number; message: KafkaMessage }) => {
      opts.onMessage({ topic, partition, offset: message.offset, timestamp: message.timestamp, key: message.key, value: message.value });
      const k = `${topic}/${partition}`;
      const last = pending.get(k);
      if (last !== undefined && BigInt(message.offset) >= last) {
        pending.delete(k);
        if (pending.size === 0) done();
      }
    },
  });
  let timer: NodeJS.Timeout | undefined;
  const timedOut = new Promise<never>((_, reject) => {
    timer = setTimeout(() => {
      void consumer.disconnect().catch(() => {});
      reject(new Error(`${topics.join(', ')}: not read to the end within ${opts.timeoutMs} ms (${[...pending.keys()].join(', ')})`));
    }, opts.timeoutMs);
  });
  const caughtUp = Promise.race([reached, timedOut]).finally(() => clearTimeout(timer));
  return { consumer, caughtUp, ends };
}

/** Every message a topic holds now (later ones are left out). */
export async function readToEnd(kafka: Kafka, topic: string, opts: { groupPrefix: string; timeoutMs?: number }): Promise<ReadMessage[]> {
  const out: ReadMessage[] = [];
  const f = await follow(kafka, [topic], { groupPrefix: opts.groupPrefix, timeoutMs: opts.timeoutMs ?? 60_000, onMessage: (m) => out.push(m) });
  try {
    await f.caughtUp;
  } finally {
    await f.consumer.disconnect().catch(() => {});
  }
  // Messages written after the read started (past the end offsets it took) are not part of the answer.
  return out.filter((m) => BigInt(m.offset) <= (f.ends.get(`${m.topic}/${m.partition}`) ?? -1n));
}
