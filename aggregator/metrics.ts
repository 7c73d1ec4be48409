/** Prometheus metrics of the aggregator (its own named `aggregator_*`; the default process metrics keep their standard names), on their own registry. */
import { Counter, Gauge, Histogram, Registry, collectDefaultMetrics } from 'prom-client';

export function createAggregatorMetrics(opts: { defaultMetrics?: boolean } = {}) {
  const registry = new Registry();
  // Standard names with a `service` label, like ingest's (ingest/metrics.ts).
  if (opts.defaultMetrics) collectDefaultMetrics({ register: registry, labels: { service: 'aggregator' } });
  const m = {
    registry,
    consumerLag: new Gauge({
      name: 'aggregator_consumer_lag',
      help: 'Records in the partition after the last one this process has read (high watermark - position).',
      labelNames: ['topic', 'partition'] as const,
      registers: [registry],
    }),
    eventsRead: new Counter({
      name: 'aggregator_events_read_total',
      help: 'Event facts read from the events topic (including replays; one record holds the facts of one batch and day).',
      registers: [registry],
    }),
    eventsAggregated: new Counter({
      name: 'aggregator_events_aggregated_total',
      help: 'Event rows inserted into ClickHouse (a replayed record counts again here; the aggregates do not).',
      registers: [registry],
    }),
    lateEvents: new Counter({
      name: 'aggregator_late_events_total',
      help: 'Events older than AGGREGATOR_MAX_LATENESS_DAYS, kept out of the aggregates.',
      registers: [registry],
    }),
    futureEvents: new Counter({
      name: 'aggregator_future_events_total',
      help: 'Events dated after now + AGGREGATOR_FUTURE_SKEW_MS, kept out of the aggregates.',
      registers: [registry],
    }),
    undecodableEvents: new Counter({
      name: 'aggregator_undecodable_events_total',
      help: 'Records that are not a known EventFact schema version, skipped.',
      labelNames: ['code'] as const,
      registers: [registry],
    }),
    duplicatesDropped: new Counter({
      name: 'aggregator_redundant_rows_dropped_total',
      help: 'Records that added no row because a row with the same effect was already in the same flush (a repeated event, or another non-counted event of a device its group already has).',
      registers: [registry],
    }),
    flushSeconds: new Histogram({
      name: 'aggregator_flush_duration_seconds',
      help: 'Time of one flush: insert (with retries) and offset commit.',
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers: [registry],
    }),
    flushRows: new Histogram({
      name: 'aggregator_flush_rows',
      help: 'Rows inserted per flush.',
      buckets: [1, 10, 100, 1000, 5000, 10_000, 50_000, 100_000, 500_000],
      registers: [registry],
    }),
    clickhouseErrors: new Counter({
      name: 'aggregator_clickhouse_errors_total',
      help: 'Failed ClickHouse inserts and queries (each retry counts).',
      labelNames: ['op'] as const,
      registers: [registry],
    }),
    commits: new Counter({
      name: 'aggregator_offset_commits_total',
      help: 'Offset commits after a successful insert.',
      labelNames: ['result'] as const,
      registers: [registry],
    }),
    bufferedRows: new Gauge({
      name: 'aggregator_buffered_rows',
      help: 'Rows held in memory waiting for ClickHouse (pending + in flight).',
      registers: [registry],
    }),
    paused: new Gauge({
      name: 'aggregator_consumer_paused',
      help: '1 while consumption is paused because too many rows wait for ClickHouse.',
      registers: [registry],
    }),
    partitionsDropped: new Counter({
      name: 'aggregator_retention_partitions_dropped_total',
      help: 'Day partitions dropped by retention.',
      registers: [registry],
    }),
  };
  return m;
}

export type AggregatorMetrics = ReturnType<typeof createAggregatorMetrics>;
