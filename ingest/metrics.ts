/**
 * Prometheus metrics of one ingest worker. A registry per service instance (not prom-client's global
 * one) so tests can run several servers in one process without their counters mixing.
 */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export interface IngestMetrics {
  registry: Registry;
  requests: Counter<'status' | 'code'>;
  eventsAccepted: Counter;
  eventsRejected: Counter<'reason'>;
  eventsDroppedConsent: Counter<'reason'>;
  batchEvents: Histogram;
  requestSeconds: Histogram<'status'>;
  produceSeconds: Histogram<'cluster'>;
  produceRecords: Counter<'topic_kind'>;
  taskSeconds: Histogram;
  workSeconds: Histogram;
  bodySeconds: Histogram;
  poolQueueDepth: Gauge;
  poolUtilisation: Gauge;
  poolThreads: Gauge;
  poolGroupBatches: Histogram;
  inflightBytes: Gauge;
  inflightBatches: Gauge;
  kafkaReady: Gauge;
  mixAnonymitySet: Gauge;
  mixBatches: Histogram;
  personalRepeats: Counter;
  tokenKeyNewestDay: Gauge<'mode'>;
  tokenKeyOldestDay: Gauge<'mode'>;
  tokenKeysExpired: Gauge<'mode'>;
}

/** Reads the day-secret directory when scraped (TokenKeyWatch.gauges). */
export type TokenKeyGauges = () => { mode: string; newestDaySeconds: number; oldestDaySeconds: number; expired: number };

export function createMetrics(opts: { defaultMetrics?: boolean; tokenKeys?: TokenKeyGauges } = {}): IngestMetrics {
  const registry = new Registry();
  // The day-secret gauges read the key directory when scraped (a listing and a few 32-byte files each),
  // so they show what the rotation did since the last scrape without a timer of their own.
  const readKeys = () => opts.tokenKeys?.();
  // Default process and Node.js metrics under their standard names (process_resident_memory_bytes,
  // nodejs_heap_size_used_bytes, ...) with a `service` label, so the usual Node.js dashboards find them
  // and one query covers every service: sum by (service) (process_resident_memory_bytes).
  if (opts.defaultMetrics ?? true) collectDefaultMetrics({ register: registry, labels: { service: 'ingest' } });
  const r = [registry];
  return {
    registry,
    requests: new Counter({ name: 'ingest_requests_total', help: 'HTTP requests by status and error code', labelNames: ['status', 'code'], registers: r }),
    eventsAccepted: new Counter({ name: 'ingest_events_accepted_total', help: 'Events acknowledged by Kafka and answered 200', registers: r }),
    eventsRejected: new Counter({ name: 'ingest_events_rejected_total', help: 'Events rejected, by reason code', labelNames: ['reason'], registers: r }),
    eventsDroppedConsent: new Counter({
      name: 'ingest_events_dropped_consent_total',
      help: 'Events dropped for lack of consent, by reason',
      labelNames: ['reason'],
      registers: r,
    }),
    batchEvents: new Histogram({ name: 'ingest_batch_events', help: 'Events per batch', buckets: [1, 5, 10, 25, 50, 100, 250, 500, 1000, 5000], registers: r }),
    requestSeconds: new Histogram({
      name: 'ingest_request_duration_seconds',
      help: 'Time from request to response, by status',
      labelNames: ['status'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: r,
    }),
    produceSeconds: new Histogram({
      name: 'ingest_kafka_produce_duration_seconds',
      help: 'Time of one produce call (acks=all) per cluster',
      labelNames: ['cluster'],
      buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10],
      registers: r,
    }),
    taskSeconds: new Histogram({
      name: 'ingest_pool_task_duration_seconds',
      help: "Time of one batch in the pool: queue wait, its group's earlier batches, decode, validate, split, encode",
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: r,
    }),
    workSeconds: new Histogram({
      name: 'ingest_pool_work_duration_seconds',
      help: 'Time one batch spent being processed inside a worker (no queue wait)',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: r,
    }),
    bodySeconds: new Histogram({
      name: 'ingest_body_read_duration_seconds',
      help: 'Time to receive a request body',
      buckets: [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5],
      registers: r,
    }),
    produceRecords: new Counter({
      name: 'ingest_kafka_records_total',
      help: 'Records acknowledged by Kafka, by topic kind',
      labelNames: ['topic_kind'],
      registers: r,
    }),
    poolQueueDepth: new Gauge({ name: 'ingest_pool_queue_depth', help: 'Batches waiting for a pool worker', registers: r }),
    poolUtilisation: new Gauge({
      name: 'ingest_pool_utilisation',
      help: 'Share of the pool thread-time spent processing batches since the previous scrape (0..1)',
      registers: r,
    }),
    poolThreads: new Gauge({ name: 'ingest_pool_threads', help: 'Worker threads alive', registers: r }),
    poolGroupBatches: new Histogram({
      name: 'ingest_pool_group_batches',
      help: 'Batches handed to a pool worker in one task (pool.ts TaskGroups)',
      buckets: [1, 2, 4, 8, 16, 32, 64],
      registers: r,
    }),
    inflightBytes: new Gauge({ name: 'ingest_inflight_bytes', help: 'Body bytes admitted and not yet answered', registers: r }),
    inflightBatches: new Gauge({ name: 'ingest_inflight_batches', help: 'Batches admitted and not yet answered', registers: r }),
    kafkaReady: new Gauge({ name: 'ingest_kafka_ready', help: '1 when the last produce/metadata call succeeded', registers: r }),
    mixAnonymitySet: new Gauge({
      name: 'ingest_mix_anonymity_set',
      help: 'Batches in the last published mix (ingest/mix.ts): how many batches its events records hide among by timestamp and order',
      registers: r,
    }),
    mixBatches: new Histogram({
      name: 'ingest_mix_batches',
      help: 'Batches per published mix (ingest/mix.ts); _sum / _count is the mean anonymity set by transport',
      buckets: [1, 2, 4, 8, 16, 32, 64, 128, 256],
      registers: r,
    }),
    personalRepeats: new Counter({
      name: 'ingest_personal_repeats_total',
      help: 'Personal records not written because a byte-equal one was written this UTC day (ingest/mix.ts RecentRecords)',
      registers: r,
    }),
    tokenKeyNewestDay: new Gauge({
      name: 'ingest_token_newest_key_day_seconds',
      help: 'UTC midnight (unix seconds) of the newest day whose daily-token secret is readable and inside its grace; 0 when none. mode: manage (ingest creates keys) or read-only (an outside rotation does)',
      labelNames: ['mode'],
      registers: r,
      collect() {
        this.reset();
        const k = readKeys();
        if (k) this.set({ mode: k.mode }, k.newestDaySeconds);
      },
    }),
    tokenKeyOldestDay: new Gauge({
      name: 'ingest_token_oldest_key_day_seconds',
      help: 'UTC midnight (unix seconds) of the oldest day whose daily-token secret is readable and inside its grace; 0 when none',
      labelNames: ['mode'],
      registers: r,
      collect() {
        this.reset();
        const k = readKeys();
        if (k) this.set({ mode: k.mode }, k.oldestDaySeconds);
      },
    }),
    tokenKeysExpired: new Gauge({
      name: 'ingest_token_expired_keys',
      help: 'Daily-token secrets still in the key directory although past their grace (never used; their destruction is overdue)',
      labelNames: ['mode'],
      registers: r,
      collect() {
        this.reset();
        const k = readKeys();
        if (k) this.set({ mode: k.mode }, k.expired);
      },
    }),
  };
}
