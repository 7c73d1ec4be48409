/**
 * Test plumbing shared by the aggregator's integration tests and bench: configs pointing at the local
 * stack, producing EventFacts onto a topic, waiting until a consumer group has committed everything,
 * and running an aggregator as a child process (for SIGKILL tests).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import type { Kafka } from 'kafkajs';
import { encodeEventFact, encodeEventFacts } from '../schemas/index.ts';
import type { EventFact } from '../schemas/contract.ts';
import { loadAggregatorConfig, type AggregatorConfig } from '../aggregator/config.ts';

export const REPO_ROOT = fileURLToPath(new URL('../', import.meta.url));

export interface StackAddresses {
  kafkaBrokers: string[];
  clickhouseUrl: string;
}

/** Environment for an aggregator on the local stack; `extra` overrides. */
export function aggregatorEnv(
  stack: StackAddresses,
  o: { topic: string; groupId: string; database: string },
  extra: Record<string, string> = {},
): Record<string, string> {
  return {
    PIPELINE_KAFKA_BROKERS: stack.kafkaBrokers.join(','),
    PIPELINE_TOPIC_EVENTS: o.topic,
    AGGREGATOR_GROUP_ID: o.groupId,
    AGGREGATOR_DATABASE: o.database,
    AGGREGATOR_CLICKHOUSE_URL: stack.clickhouseUrl,
    AGGREGATOR_PORT: '0',
    AGGREGATOR_FLUSH_INTERVAL_MS: '200',
    AGGREGATOR_SESSION_TIMEOUT_MS: '6000',
    AGGREGATOR_RETRY_INITIAL_MS: '100',
    AGGREGATOR_RETRY_MAX_MS: '1000',
    AGGREGATOR_LOG_LEVEL: 'warn',
    ...extra,
  };
}

export function aggregatorConfig(env: Record<string, string>): AggregatorConfig {
  return loadAggregatorConfig(env);
}

export interface FactRecordOptions {
  /** One single-fact record per fact, as before batch records (the aggregator must still count those). */
  legacy?: boolean;
  /** Most facts per record (an HTTP batch is bounded too). @default 50 */
  perRecord?: number;
}

/**
 * Records as ingest writes them: one EventFactBatch per (device, day), keyed by the daily token: the
 * facts of one daily token and day are grouped, in first-appearance order, at most `perRecord` per
 * record. `facts` is how many facts each record holds.
 */
export function factRecords(facts: readonly EventFact[], o: FactRecordOptions = {}): Array<{ key: Buffer; value: Buffer; facts: number }> {
  if (o.legacy) return facts.map((f) => ({ key: f.daily_token, value: encodeEventFact(f), facts: 1 }));
  const perRecord = o.perRecord ?? 50;
  const groups = new Map<string, EventFact[][]>();
  const order: EventFact[][] = [];
  for (const f of facts) {
    const id = `${f.daily_token.toString('hex')}/${f.day}`;
    let lists = groups.get(id);
    if (!lists) groups.set(id, (lists = []));
    let last = lists[lists.length - 1];
    if (!last || last.length >= perRecord) {
      lists.push((last = []));
      order.push(last);
    }
    last.push(f);
  }
  return order.map((list) => ({ key: list[0]!.daily_token, value: encodeEventFacts(list), facts: list.length }));
}

/**
 * Produces facts as batch records (`factRecords`: grouped per device-day, keyed by daily token, as
 * ingest does), acks=all, in sends of about `chunk` facts. Other suites' fault tests restart the
 * shared broker; a send that failed is sent again (for up to two minutes). Its records may then be on
 * the topic twice, which every exactness test absorbs by design (the same event keys). Returns how
 * many records were produced (once each).
 */
export async function produceFacts(kafka: Kafka, topic: string, facts: readonly EventFact[], chunk = 2000, o: FactRecordOptions = {}): Promise<number> {
  const records = factRecords(facts, o);
  let producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await retryFor(120_000, () => producer.connect());
  try {
    for (let i = 0; i < records.length;) {
      const messages: Array<{ key: Buffer; value: Buffer }> = [];
      for (let n = 0; i < records.length && n < chunk; i++) {
        messages.push({ key: records[i]!.key, value: records[i]!.value });
        n += records[i]!.facts;
      }
      await retryFor(120_000, async (attempt) => {
        if (attempt > 0 && attempt % 3 === 0) {
          // A producer that failed several times in a row is replaced (fresh connections, fresh id).
          await producer.disconnect().catch(() => undefined);
          producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
          await producer.connect();
        }
        await producer.send({ topic, acks: -1, messages });
      });
    }
  } finally {
    await producer.disconnect().catch(() => undefined);
  }
  return records.length;
}

/** Runs `fn` until it succeeds, waiting 1 s between attempts, for at most `ms`; then throws its error. */
export async function retryFor<T>(ms: number, fn: (attempt: number) => Promise<T>): Promise<T> {
  const t0 = Date.now();
  for (let attempt = 0; ; attempt++) {
    try {
      return await fn(attempt);
    } catch (err) {
      if (Date.now() - t0 > ms) throw err;
      await new Promise((r) => setTimeout(r, 1000));
    }
  }
}

/** Committed offset and end offset per partition of `topic` for `groupId`. */
export async function groupProgress(kafka: Kafka, groupId: string, topic: string): Promise<Array<{ partition: number; committed: bigint; end: bigint }>> {
  const admin = kafka.admin();
  await admin.connect();
  try {
    const ends = await admin.fetchTopicOffsets(topic);
    const [committed] = await admin.fetchOffsets({ groupId, topics: [topic] });
    return ends
      .map((e) => {
        const c = committed?.partitions.find((p) => p.partition === e.partition)?.offset ?? '-1';
        return { partition: e.partition, committed: BigInt(c === '-1' ? 0 : c), end: BigInt(e.high) };
      })
      .sort((a, b) => a.partition - b.partition);
  } finally {
    await admin.disconnect();
  }
}

/** Waits until the group has committed every record of the topic (so all of it is in ClickHouse). */
export async function waitAllCommitted(kafka: Kafka, groupId: string, topic: string, timeoutMs = 60_000): Promise<void> {
  const t0 = Date.now();
  for (;;) {
    // The broker may be restarting (another suite's fault test): an unanswered admin call is a retry.
    const p = await groupProgress(kafka, groupId, topic).catch(() => undefined);
    if (p?.every((x) => x.committed >= x.end)) return;
    if (Date.now() - t0 > timeoutMs)
      throw new Error(
        `group ${groupId} did not commit all of ${topic} in ${timeoutMs} ms: ${p?.map((x) => `${x.partition}:${x.committed}/${x.end}`).join(' ') ?? 'broker not answering'}`,
      );
    await new Promise((r) => setTimeout(r, 200));
  }
}

export interface ChildAggregator {
  proc: ChildProcess;
  lines: string[];
  /** Resolves with the first log line matching `pred` (or rejects when the process exits first). */
  waitFor(pred: (line: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>;
  kill(signal?: NodeJS.Signals): Promise<number | null>;
}

/** Runs `aggregator/main.ts` in a child process with exactly `env` (plus PATH/HOME). */
export function spawnAggregator(env: Record<string, string>): ChildAggregator {
  const proc = spawn(process.execPath, ['--import', 'tsx', 'aggregator/main.ts'], {
    cwd: REPO_ROOT,
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  const lines: string[] = [];
  const waiters = new Set<{ pred: (l: Record<string, unknown>) => boolean; resolve: (l: Record<string, unknown>) => void }>();
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  const onLine = (line: string) => {
    lines.push(line);
    let obj: Record<string, unknown>;
    try {
      obj = JSON.parse(line) as Record<string, unknown>;
    } catch {
      return;
    }
    for (const w of waiters)
      if (w.pred(obj)) {
        waiters.delete(w);
        w.resolve(obj);
      }
  };
  createInterface({ input: proc.stdout! }).on('line', onLine);
  createInterface({ input: proc.stderr! }).on('line', (l) => lines.push(`stderr: ${l}`));
  return {
    proc,
    lines,
    waitFor(pred, timeoutMs = 60_000) {
      return new Promise((resolve, reject) => {
        const w = { pred, resolve };
        waiters.add(w);
        const t = setTimeout(() => {
          waiters.delete(w);
          reject(new Error(`child aggregator: no matching log line in ${timeoutMs} ms; last lines:\n${lines.slice(-10).join('\n')}`));
        }, timeoutMs);
        void exited.then((code) => {
          if (!waiters.has(w)) return;
          waiters.delete(w);
          clearTimeout(t);
          reject(new Error(`child aggregator exited (${code}) before a matching log line; last lines:\n${lines.slice(-10).join('\n')}`));
        });
        const orig = w.resolve;
        w.resolve = (l) => {
          clearTimeout(t);
          orig(l);
        };
      });
    },
    async kill(signal = 'SIGKILL') {
      if (proc.exitCode === null && proc.signalCode === null) proc.kill(signal);
      return exited;
    },
  };
}
