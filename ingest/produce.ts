/**
 * Kafka side of ingest: topics, idempotent producers (one per cluster), and the acknowledgement rule.
 *
 * Topics (policy 1.1.4 "used separately", section 6 residency):
 * - events topic (`PIPELINE_TOPIC_EVENTS`): non-personal EventFacts keyed by daily token, on the main cluster;
 * - personal topic of each zone (`PIPELINE_TOPIC_PERSONAL_PREFIX` + zone), on that zone's cluster;
 * - rejects topic of each zone (`PIPELINE_TOPIC_REJECTS_PREFIX` + zone): rejected events are
 *   unclassified and may hold personal values, so they belong to the personal zone and its cluster.
 *
 * Acknowledgement: a batch's `send` resolves only when every cluster it touched acknowledged every
 * record with acks=all. Not configurable: acks=-1 and `idempotent: true` are fixed here, because a
 * setting that guards safety should take a code change to turn off.
 *
 * Coalescing: kafkajs serialises the produce requests of an idempotent producer per broker (a mutex
 * around sequence numbers, eosManager.acquireBrokerLock), so many concurrent 50-record sends would
 * queue behind each other as 50-record requests. Instead each cluster keeps one produce call in flight
 * and the batches that arrive meanwhile go out together in the next call. Every batch still gets its
 * own outcome: a failed call fails (503) every batch it carried, never only some of them.
 * Because kafkajs holds that broker lock until the response arrives, one producer leaves the thread idle
 * for a whole round trip; `INGEST_KAFKA_PRODUCERS` lanes (separate idempotent producers, each with its
 * own producer id and sequences) keep several calls in flight. Ordering across lanes is not kept, and
 * nothing needs it: the aggregator counts and deduplicates by event_key.
 *
 * Mixing (mix.ts, policy 1.1.4): `send` does not write a batch on its own. Its records wait in the open
 * mix with those of concurrent batches (INGEST_MIX_*), then go out shuffled with coarse timestamps,
 * events records and personal/rejects records in separate calls, so the topics cannot be joined back to
 * devices by timestamp or order. The batch's `send` still resolves only when every call carrying a
 * record of its mix was acknowledged. INGEST_UNSAFE_LINKABLE (tests' negative control) writes each
 * batch's records together with producer timestamps, as ingest did before.
 */
import kafkajs, { CompressionTypes, Kafka, logLevel, type Admin, type Message, type Producer, type TopicMessages } from 'kafkajs';
import type { Logger } from '../runtime/index.ts';
import { isRetriable, kafkaClientOptions, personalTopic, rejectsTopic } from '../runtime/index.ts';
import { personalRetentionClasses, ZONES, type OutRecord, type Zone } from '../schemas/index.ts';
import { zoneBrokers, type IngestConfig } from './config.ts';
import type { RecordSink } from './context.ts';
import { IngestError } from './errors.ts';
import type { IngestMetrics } from './metrics.ts';
import { eventsTimestamp, Mixer, personalTimestamp, planMixCalls, RecentRecords, type MixedRecord } from './mix.ts';
import type { BatchRecords } from './records.ts';
import { ingestPlanOptions, topicPlan, type PlannedTopic } from './topics.ts';

/**
 * Most key + value bytes in one coalesced call (whole batches only, as for the record cap). Since the
 * events topic carries one record per (batch, day), the record cap alone no longer bounds a call's size
 * (2,000 records can be 1,000 batches, ~9 MB with their personal records), and the broker refuses a
 * partition's record batch over its message.max.bytes (1 MiB by default). 1 MiB per call keeps every
 * partition's share under it and is still ~100 realistic batches per round trip.
 */
export const MAX_BYTES_PER_CALL = 1 << 20;

/** What a produce call carries: a mix's events records, or its personal and rejects records, or (unsafe, linkable) whole batches. */
type CallKind = 'events' | 'personal' | 'batches';

interface Pending {
  kind: CallKind;
  byTopic: Map<string, Message[]>;
  count: number;
  bytes: number;
  resolve: () => void;
  reject: (e: unknown) => void;
}

/** One Kafka cluster: its producer and the coalescing queue in front of it. */
class ClusterProducer {
  private producer: Producer;
  private queue: Pending[] = [];
  private inFlight = false;
  private connected = false;
  private lastError: string | undefined;
  /** Set after a failed call: the next call first replaces the producer (fresh producer id). */
  private needsReset = false;

  constructor(
    readonly name: string,
    private readonly kafka: Kafka,
    private readonly cfg: IngestConfig,
    private readonly metrics: IngestMetrics,
    private readonly log: Logger,
  ) {
    this.producer = this.newProducer();
  }

  private newProducer(): Producer {
    return this.kafka.producer({
      idempotent: true,
      // kafkajs would otherwise retry an idempotent send forever (retries = MAX_SAFE_INTEGER) and the
      // device would wait with it. We bound retries and answer 503 instead; a batch that was in fact
      // written before the failure is written again on the device's retry and deduplicated downstream
      // by event_key, so bounded retries cost duplicates on Kafka, never lost or double-counted events.
      retry: { retries: this.cfg.INGEST_KAFKA_RETRIES, initialRetryTime: 100, maxRetryTime: 2000 },
      allowAutoTopicCreation: false,
      maxInFlightRequests: 1,
    });
  }

  /** Load of this lane: a call in flight counts as busy, plus what is queued behind it. */
  get load(): number {
    return (this.inFlight ? 1_000_000 : 0) + this.queue.length;
  }

  get ready(): boolean {
    return this.connected && this.lastError === undefined;
  }

  get error(): string | undefined {
    return this.connected ? this.lastError : 'not connected';
  }

  async connect(): Promise<void> {
    await this.producer.connect();
    this.connected = true;
  }

  enqueue(kind: CallKind, byTopic: Map<string, Message[]>, count: number, bytes: number): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.queue.push({ kind, byTopic, count, bytes, resolve, reject });
      if (!this.inFlight) this.schedule();
    });
  }

  private schedule(): void {
    this.inFlight = true;
    const linger = this.cfg.INGEST_KAFKA_LINGER_MS;
    if (linger > 0) setTimeout(() => void this.flush(), linger);
    else setImmediate(() => void this.flush());
  }

  private async flush(): Promise<void> {
    // Take queued batches up to the per-call record cap (whole batches only: a batch is never split
    // across calls, so its outcome is one call's outcome). kafkajs groups messages per partition with
    // an array spread per message (quadratic in a call's size), so one huge call is slower than a few.
    // Events records and personal records never share a call (mix.ts: "used separately").
    let take = 0;
    let records = 0;
    let bytes = 0;
    while (
      take < this.queue.length &&
      (take === 0 ||
        (this.queue[take]!.kind === this.queue[0]!.kind &&
          records + this.queue[take]!.count <= this.cfg.INGEST_KAFKA_MAX_RECORDS_PER_CALL &&
          bytes + this.queue[take]!.bytes <= MAX_BYTES_PER_CALL))
    ) {
      records += this.queue[take]!.count;
      bytes += this.queue[take]!.bytes;
      take++;
    }
    const batch = this.queue.splice(0, take);
    if (batch.length === 0) {
      this.inFlight = false;
      return;
    }
    const merged = new Map<string, Message[]>();
    for (const p of batch) {
      for (const [topic, msgs] of p.byTopic) {
        const list = merged.get(topic);
        if (list) for (const m of msgs) list.push(m);
        else merged.set(topic, msgs.slice());
      }
    }
    const topicMessages: TopicMessages[] = [...merged].map(([topic, messages]) => ({ topic, messages }));
    const t0 = performance.now();
    try {
      if (this.needsReset) await this.reset();
      await withDeadline(
        this.producer.sendBatch({
          topicMessages,
          acks: -1,
          timeout: this.cfg.INGEST_PRODUCE_TIMEOUT_MS,
          compression: this.cfg.INGEST_KAFKA_COMPRESSION === 'gzip' ? CompressionTypes.GZIP : CompressionTypes.None,
        }),
        this.cfg.INGEST_PRODUCE_TIMEOUT_MS,
      );
      this.metrics.produceSeconds.observe({ cluster: this.name }, (performance.now() - t0) / 1000);
      if (this.lastError !== undefined) this.log.info('kafka produce recovered', { cluster: this.name });
      this.lastError = undefined;
      for (const p of batch) p.resolve();
    } catch (e) {
      this.lastError = (e as Error).message ?? String(e);
      this.needsReset = true;
      this.log.warn('kafka produce failed', { cluster: this.name, batches: batch.length, error: this.lastError });
      const err = new IngestError('INGEST_KAFKA_UNAVAILABLE', `Kafka did not acknowledge the batch: ${this.lastError}`, { cause: e, retriable: true });
      for (const p of batch) p.reject(err);
    }
    if (this.queue.length > 0) this.schedule();
    else this.inFlight = false;
  }

  /**
   * After a failure we start a fresh idempotent producer: kafkajs can otherwise keep stale sequence
   * state for a partition whose request failed in an unknown state, and every later send would fail
   * with OUT_OF_ORDER_SEQUENCE_NUMBER. A new producer id makes the broker start a new sequence.
   */
  private async reset(): Promise<void> {
    const old = this.producer;
    this.producer = this.newProducer();
    void old.disconnect().catch(() => {});
    await this.producer.connect();
    this.needsReset = false;
  }

  async probe(admin: Admin): Promise<void> {
    // A cheap metadata round trip tells whether the cluster answers, without producing anything.
    await withDeadline(admin.fetchTopicMetadata({ topics: [] }), 3000);
  }

  async stop(): Promise<void> {
    // Wait for the call in flight and anything queued behind it.
    for (let i = 0; i < 1000 && (this.inFlight || this.queue.length > 0); i++) await new Promise((r) => setTimeout(r, 10));
    await this.producer.disconnect().catch(() => {});
    this.connected = false;
  }
}

function leastLoaded(lanes: ClusterProducer[]): ClusterProducer {
  let best = lanes[0]!;
  for (const l of lanes) if (l.load < best.load) best = l;
  return best;
}

const { KafkaJSConnectionError, KafkaJSError, KafkaJSProtocolError } = kafkajs;

/** Protocol errors of a broker that just started or is moving leaders: they pass by themselves. */
const PASSING_PROTOCOL_ERRORS: ReadonlySet<string> = new Set(['NOT_LEADER_FOR_PARTITION', 'LEADER_NOT_AVAILABLE', 'UNKNOWN_TOPIC_OR_PARTITION']);

/**
 * Whether a failure to prepare a cluster at start may pass if we wait (Kafka starting, leaders being
 * elected), decided from the error's class, protocol error type and `retriable` flag, never from its
 * wording. kafkajs reports giving up on a retriable error by wrapping it (KafkaJSNumberOfRetriesExceeded,
 * KafkaJSNonRetriableError, nested when its retriers nest), so the cause chain is what is judged. A
 * missing topic in verify mode (a plain Error) or refused credentials are not retriable.
 */
export function retriableAtStart(e: unknown): boolean {
  for (let err: unknown = e, depth = 0; err !== undefined && depth < 8; depth++) {
    if (isRetriable(err) || err instanceof KafkaJSConnectionError) return true;
    if (err instanceof KafkaJSProtocolError && PASSING_PROTOCOL_ERRORS.has(err.type)) return true;
    if (!(err instanceof KafkaJSError) || err.cause === err) return false;
    err = err.cause;
  }
  return false;
}

function withDeadline<T>(p: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer from Kafka within ${ms} ms`)), ms);
  });
  return Promise.race([p, deadline]).finally(() => clearTimeout(timer));
}

function clusterKey(brokers: string[]): string {
  return brokers.join(',');
}

export class KafkaSink implements RecordSink {
  private readonly clusters = new Map<string, { kafka: Kafka; admin: Admin; lanes: ClusterProducer[] }>();
  private readonly eventsCluster: string;
  private readonly zoneCluster: Record<Zone, string>;
  /** Zone -> retention class -> topic. */
  private readonly personalTopics: Record<Zone, Record<string, string>>;
  private readonly rejectsTopics: Record<Zone, string>;
  /** Undefined only with INGEST_UNSAFE_LINKABLE (tests' negative control). */
  private readonly mixer: Mixer<BatchRecords> | undefined;
  /** Personal records written this UTC day, by content digest (mix.ts `RecentRecords`); with the mixer only. */
  private readonly recent: RecentRecords;

  constructor(
    private readonly cfg: IngestConfig,
    private readonly metrics: IngestMetrics,
    private readonly log: Logger,
  ) {
    const brokers = zoneBrokers(cfg);
    this.eventsCluster = clusterKey(cfg.PIPELINE_KAFKA_BROKERS);
    this.zoneCluster = Object.fromEntries(ZONES.map((z) => [z, clusterKey(brokers[z])])) as Record<Zone, string>;
    this.personalTopics = Object.fromEntries(
      ZONES.map((z) => [z, Object.fromEntries(personalRetentionClasses().map((c) => [c.name, personalTopic(cfg.PIPELINE_TOPIC_PERSONAL_PREFIX, z, c.name)]))]),
    ) as Record<Zone, Record<string, string>>;
    this.rejectsTopics = Object.fromEntries(ZONES.map((z) => [z, rejectsTopic(cfg.PIPELINE_TOPIC_REJECTS_PREFIX, z)])) as Record<Zone, string>;
    this.recent = new RecentRecords(cfg.INGEST_PERSONAL_RECENT_MAX);
    this.mixer = cfg.INGEST_UNSAFE_LINKABLE
      ? undefined
      : new Mixer<BatchRecords>(
          {
            windowMs: cfg.INGEST_MIX_WINDOW_MS,
            minBatches: cfg.INGEST_MIX_MIN_BATCHES,
            maxWaitMs: cfg.INGEST_MIX_MAX_WAIT_MS,
            maxBatches: cfg.INGEST_MIX_MAX_BATCHES,
          },
          (mix) => this.publishMix(mix),
          (n) => {
            metrics.mixAnonymitySet.set(n);
            metrics.mixBatches.observe(n);
          },
        );
    const keys = new Set([this.eventsCluster, ...Object.values(this.zoneCluster)]);
    let n = 0;
    for (const key of keys) {
      const kafka = new Kafka({
        clientId: cfg.INGEST_KAFKA_CLIENT_ID,
        brokers: key.split(','),
        ...kafkaClientOptions(cfg), // TLS + SASL principal `ingest` in secured mode (runtime/kafka.ts)
        logLevel: logLevel.NOTHING,
        connectionTimeout: 3000,
        requestTimeout: cfg.INGEST_PRODUCE_TIMEOUT_MS,
        retry: { retries: cfg.INGEST_KAFKA_RETRIES, initialRetryTime: 100, maxRetryTime: 2000 },
      });
      const name = n++ === 0 ? 'main' : `cluster${n - 1}`;
      const lanes = Array.from({ length: cfg.INGEST_KAFKA_PRODUCERS }, () => new ClusterProducer(name, kafka, cfg, metrics, log));
      this.clusters.set(key, { kafka, admin: kafka.admin(), lanes });
    }
  }

  /**
   * Connects, creates or verifies topics (INGEST_TOPICS), connects producers. Throws an Error whose
   * message is one line saying what is missing, for main.ts to print before exiting.
   */
  async start(): Promise<void> {
    // The same plan as the operator command (topics.ts), with ingest's own settings.
    const plan = topicPlan(this.cfg, ingestPlanOptions(this.cfg));
    for (const [key, c] of this.clusters) {
      // A broker that just started (or restarted) answers "not the leader" / "does not host this
      // topic-partition" for a while. Those errors are retriable: wait for them to pass instead of
      // dying, up to INGEST_KAFKA_START_TIMEOUT_MS. A missing topic in verify mode is not retriable.
      const deadline = Date.now() + this.cfg.INGEST_KAFKA_START_TIMEOUT_MS;
      for (let attempt = 1; ; attempt++) {
        try {
          await this.prepareCluster(key, c, plan);
          break;
        } catch (e) {
          if (!retriableAtStart(e) || Date.now() > deadline) throw e;
          this.log.warn('kafka not ready at start, retrying', { cluster: c.lanes[0]!.name, attempt, error: (e as Error).message });
          await new Promise((r) => setTimeout(r, Math.min(2000, 200 * attempt)));
        }
      }
    }
    this.metrics.kafkaReady.set(1);
  }

  private async prepareCluster(key: string, c: { admin: Admin; lanes: ClusterProducer[] }, plan: PlannedTopic[]): Promise<void> {
    await c.admin.connect();
    const wanted = plan.filter((t) => clusterKey(t.brokers) === key);
    const existing = new Set(await c.admin.listTopics());
    const missing = wanted.filter((t) => !existing.has(t.topic));
    if (missing.length > 0) {
      if (this.cfg.INGEST_TOPICS === 'verify') {
        throw new Error(`missing Kafka topics on ${key}: ${missing.map((t) => t.topic).join(', ')} (create them, or start with INGEST_TOPICS=create)`);
      }
      await c.admin.createTopics({
        waitForLeaders: true,
        topics: missing.map((t) => ({
          topic: t.topic,
          numPartitions: t.partitions,
          replicationFactor: t.replicationFactor,
          configEntries: Object.entries(t.configs).map(([name, value]) => ({ name, value })),
        })),
      });
      this.log.info('created kafka topics', { cluster: c.lanes[0]!.name, topics: missing.map((t) => t.topic).join(',') });
    }
    // Leaders known for every partition of our topics before the first device is answered.
    await c.admin.fetchTopicMetadata({ topics: wanted.map((t) => t.topic) });
    for (const lane of c.lanes) await lane.connect();
  }

  /** Resolves when Kafka acknowledged (acks=all) every record; otherwise rejects with INGEST_KAFKA_UNAVAILABLE. */
  async send(r: BatchRecords): Promise<void> {
    if (r.events.length + r.personal.length + r.rejected.length === 0) return;
    try {
      // Mixed (mix.ts) unless the test-only switch asks for the linkable way: one call per batch, producer timestamps.
      await (this.mixer ? this.mixer.add(r) : this.sendLinkable(r));
    } catch (e) {
      this.metrics.kafkaReady.set(0);
      throw e;
    }
    this.metrics.kafkaReady.set(1);
    this.metrics.produceRecords.inc({ topic_kind: 'events' }, r.events.length);
    // Mixed, a byte-equal personal record of the day is left out: publishMix counts what it wrote.
    if (!this.mixer) this.metrics.produceRecords.inc({ topic_kind: 'personal' }, r.personal.length);
    this.metrics.produceRecords.inc({ topic_kind: 'rejects' }, r.rejected.length);
  }

  private message(rec: OutRecord, timestamp?: string): Message {
    const m: Message = { key: rec.key, value: rec.value };
    if (rec.headers) m.headers = rec.headers;
    if (timestamp !== undefined) m.timestamp = timestamp;
    return m;
  }

  /** INGEST_UNSAFE_LINKABLE: a batch's records together, stamped by the producer (the negative control of bench/linkage.ts). */
  private async sendLinkable(r: BatchRecords): Promise<void> {
    const perCluster = new Map<string, { byTopic: Map<string, Message[]>; count: number; bytes: number }>();
    const add = (cluster: string, topic: string, rec: OutRecord) => {
      let c = perCluster.get(cluster);
      if (!c) perCluster.set(cluster, (c = { byTopic: new Map(), count: 0, bytes: 0 }));
      let list = c.byTopic.get(topic);
      if (!list) c.byTopic.set(topic, (list = []));
      list.push(this.message(rec));
      c.count++;
      c.bytes += rec.key.length + rec.value.length;
    };
    for (const e of r.events) add(this.eventsCluster, this.cfg.PIPELINE_TOPIC_EVENTS, e);
    for (const p of r.personal) add(this.zoneCluster[p.zone], this.personalTopicOf(p), p);
    for (const x of r.rejected) add(this.zoneCluster[x.zone], this.rejectsTopics[x.zone], x);
    await Promise.all([...perCluster].map(([key, c]) => leastLoaded(this.clusters.get(key)!.lanes).enqueue('batches', c.byTopic, c.count, c.bytes)));
  }

  /** The topic of a personal record's zone and retention class; a class the map does not have is a bug, never a silent default. */
  private personalTopicOf(p: { zone: Zone; retentionClass: string }): string {
    const t = this.personalTopics[p.zone][p.retentionClass];
    if (!t) throw new Error(`personal record of unknown retention class ${p.retentionClass} (schemas/categories.ts personalRetentionClasses)`);
    return t;
  }

  /**
   * One closed mix (mix.ts): coarse timestamps, shuffled, events and personal records in separate
   * calls; a personal record byte-equal to one written this UTC day (or earlier in this mix) is left out.
   */
  private async publishMix(mix: BatchRecords[]): Promise<void> {
    const now = Date.now();
    const eventsTs = eventsTimestamp(now);
    const personalTs = personalTimestamp(now);
    const records: { events: MixedRecord[]; personal: MixedRecord[] } = { events: [], personal: [] };
    const put = (list: MixedRecord[], owner: number, cluster: string, topic: string, rec: OutRecord, ts: string) =>
      list.push({ owner, cluster, topic, message: this.message(rec, ts), bytes: rec.key.length + rec.value.length });
    const written = new Set<string>();
    let repeats = 0;
    mix.forEach((r, owner) => {
      for (const e of r.events) put(records.events, owner, this.eventsCluster, this.cfg.PIPELINE_TOPIC_EVENTS, e, eventsTs);
      for (const p of r.personal) {
        if (p.digest !== undefined) {
          if (written.has(p.digest) || this.recent.has(p.digest)) {
            repeats++;
            continue;
          }
          written.add(p.digest);
        }
        put(records.personal, owner, this.zoneCluster[p.zone], this.personalTopicOf(p), p, personalTs);
      }
      for (const x of r.rejected) put(records.personal, owner, this.zoneCluster[x.zone], this.rejectsTopics[x.zone], x, personalTs);
    });
    const calls = planMixCalls(records, { maxRecords: this.cfg.INGEST_KAFKA_MAX_RECORDS_PER_CALL, maxBytes: MAX_BYTES_PER_CALL });
    await Promise.all(calls.map((c) => leastLoaded(this.clusters.get(c.cluster)!.lanes).enqueue(c.kind, c.byTopic, c.count, c.bytes)));
    // Acknowledged: from now on a byte-equal record of this day is a copy of one Kafka holds.
    this.recent.remember(written);
    this.metrics.produceRecords.inc({ topic_kind: 'personal' }, records.personal.length - mix.reduce((n, r) => n + r.rejected.length, 0));
    this.metrics.personalRepeats.inc(repeats);
  }

  /**
   * Readiness: every producer's last call succeeded. A producer that failed is probed with a
   * metadata request so /readyz turns true again once Kafka answers, even with no traffic.
   */
  async ready(): Promise<{ ok: boolean; checks: Record<string, string> }> {
    const checks: Record<string, string> = {};
    let ok = true;
    for (const c of this.clusters.values()) {
      const name = `kafka_${c.lanes[0]!.name}`;
      if (c.lanes.every((l) => l.ready)) {
        checks[name] = 'ok';
        continue;
      }
      try {
        await c.lanes[0]!.probe(c.admin);
        // Reachable again: report ready so traffic returns; the next produce call starts a fresh producer.
        checks[name] = 'ok (reachable; last produce failed)';
      } catch (e) {
        ok = false;
        checks[name] = `unreachable: ${(e as Error).message}`;
      }
    }
    return { ok, checks };
  }

  async stop(): Promise<void> {
    await this.mixer?.drain();
    for (const c of this.clusters.values()) {
      await Promise.all(c.lanes.map((l) => l.stop()));
      await c.admin.disconnect().catch(() => {});
    }
  }
}
