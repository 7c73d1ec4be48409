/**
 * Reads a topic from its beginning to the end offsets it has when the read starts (a rights request
 * answers for what is stored now), with a consumer group of its own that commits nothing.
 */
import type { Kafka, KafkaMessage } from 'kafkajs';

export interface ReadMessage {
  topic: string;
  partition: number;
  offset: string;
  timestamp: string;
  key: Buffer | null;
  value: Buffer | null;
}

export async function readToEnd(kafka: Kafka, topic: string, opts: { groupPrefix: string; timeoutMs?: number }): Promise<ReadMessage[]> {
  const admin = kafka.admin();
  await admin.connect();
  const remaining = new Map<number, bigint>();
  try {
    for (const p of await admin.fetchTopicOffsets(topic)) if (BigInt(p.high) > BigInt(p.low)) remaining.set(p.partition, BigInt(p.high) - 1n);
  } finally {
    await admin.disconnect();
  }
  if (remaining.size === 0) return [];
  const out: ReadMessage[] = [];
  const consumer = kafka.consumer({ groupId: `${opts.groupPrefix}${process.pid}-${Math.random().toString(36).slice(2, 10)}`, maxWaitTimeInMs: 200 });
  await consumer.connect();
  try {
    let finished!: () => void;
    const done = new Promise<void>((r) => (finished = r));
    await consumer.subscribe({ topic, fromBeginning: true });
    await consumer.run({
      autoCommit: false,
      eachMessage: async ({ partition, message }: { partition: number; message: KafkaMessage }) => {
        const last = remaining.get(partition);
        if (last === undefined || BigInt(message.offset) > last) return;
        out.push({ topic, partition, offset: message.offset, timestamp: message.timestamp, key: message.key, value: message.value });
        if (BigInt(message.offset) >= last) {
          remaining.delete(partition);
          if (remaining.size === 0) finished();
        }
      },
    });
    const timeoutMs = opts.timeoutMs ?? 60_000;
    let timer: NodeJS.Timeout | undefined;
    const timedOut = new Promise<'timeout'>((r) => (timer = setTimeout(() => r('timeout'), timeoutMs)));
    const outcome = await Promise.race([done.then(() => 'ok' as const), timedOut]);
    clearTimeout(timer);
    if (outcome === 'timeout') throw new Error(`${topic}: not read to its end within ${timeoutMs} ms`);
  } finally {
    await consumer.disconnect();
  }
  return out;
}
