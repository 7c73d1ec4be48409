/**
 * The aggregator: one member of a Kafka consumer group on the events topic.
 *
 * Data path: record (one EventFactBatch: a batch's facts of one day) -> FactReader, per fact the
 * lateness window (judgeFact) -> FlushBuffer -> flush:
 * store.insertFacts (retried with capped back-off until it succeeds) -> commitOffsets.
 *
 * The invariant that makes it lossless: an offset is committed only after every record before it is
 * in ClickHouse (autoCommit is off and not configurable; commits happen only in `flushOnce`, after the
 * insert). The invariant that makes it exact: what is inserted are fact rows whose every count is a
 * distinct count over a key a replay reproduces (uniqExact states, set union), so inserting a row
 * twice changes nothing. Every failure window is listed in DESIGN.md.
 */
import { Kafka, logLevel, type Consumer, type ConsumerConfig, type EachBatchPayload, type LogEntry } from 'kafkajs';
import { kafkaClientOptions } from '../runtime/kafka.ts';
import type { Logger } from '../runtime/log.ts';
import type { ReadinessCheck } from '../runtime/ops.ts';
import type { AggregatorConfig } from './config.ts';
import { FactReader, type ReadVerdict } from './fact-reader.ts';
import { utcDay } from './facts.ts';
import { FlushBuffer, splitTpKey, tpKey, type FlushBatch } from './flush-buffer.ts';
import type { AggregatorMetrics } from './metrics.ts';
import type { Store } from './store.ts';

export interface AggregatorDeps {
  config: AggregatorConfig;
  store: Store;
  logger: Logger;
  metrics: AggregatorMetrics;
  /** Clock for the lateness window (tests pin it). @default Date.now */
  now?: () => number;
  /** Kafka client id. @default `aggregator-<pid>` */
  clientId?: string;
  /**
   * TEST ONLY, never in production: the negative control of the ClickHouse-down test. A failed
   * insert is not retried: its rows are dropped and the offsets committed anyway, which is exactly
   * the loss the real path (retry until inserted, commit only after) prevents. Deliberately not an
   * environment setting, so no deployment can switch it on.
   */
  unsafeCommitOnInsertError?: boolean;
}

/**
 * kafkajs consumer settings, shared with the bench's raw-consumption reference (bench/aggregate.ts)
 * so the two figures compare the same fetches. Measured choices are in the README ("Bench").
 */
export function consumerOptions(cfg: AggregatorConfig): ConsumerConfig {
  return {
    groupId: cfg.AGGREGATOR_GROUP_ID,
    sessionTimeout: cfg.AGGREGATOR_SESSION_TIMEOUT_MS,
    rebalanceTimeout: Math.max(cfg.AGGREGATOR_SESSION_TIMEOUT_MS, 10_000),
    heartbeatInterval: Math.max(500, Math.floor(cfg.AGGREGATOR_SESSION_TIMEOUT_MS / 6)),
    maxBytesPerPartition: 1 << 20,
    maxBytes: 8 << 20,
    maxWaitTimeInMs: Math.min(250, cfg.AGGREGATOR_FLUSH_INTERVAL_MS),
  };
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

export class Aggregator {
  private readonly cfg: AggregatorConfig;
  private readonly store: Store;
  private readonly log: Logger;
  private readonly m: AggregatorMetrics;
  private readonly now: () => number;
  private readonly consumer: Consumer;
  private readonly topic: string;
  private readonly unsafeCommitOnInsertError: boolean;

  private buffer = new FlushBuffer();
  private readonly reader = new FactReader();
  private inFlightRows = 0;
  private paused = false;
  private stopping = false;
  private joined = false;
  private storeOk = true;
  private flushing: Promise<void> | null = null;
  private flushTimer: NodeJS.Timeout | null = null;
  private retentionTimer: NodeJS.Timeout | null = null;
  private flushCount = 0;
  private batchInProgress: Promise<void> = Promise.resolve();
  private assigned: number[] = [];

  constructor(d: AggregatorDeps) {
    this.cfg = d.config;
    this.store = d.store;
    this.log = d.logger;
    this.m = d.metrics;
    this.now = d.now ?? Date.now;
    this.topic = d.config.PIPELINE_TOPIC_EVENTS;
    this.unsafeCommitOnInsertError = d.unsafeCommitOnInsertError ?? false;
    if (this.unsafeCommitOnInsertError)
      this.log.warn('unsafeCommitOnInsertError is on: a failed insert LOSES its rows and commits their offsets (test-only negative control)');
    const kafka = new Kafka({
      clientId: d.clientId ?? `aggregator-${process.pid}`,
      brokers: [...d.config.PIPELINE_KAFKA_BROKERS],
      ...kafkaClientOptions(d.config), // TLS + SASL principal `aggregator` in secured mode (runtime/kafka.ts)
      logLevel: logLevel.WARN,
      logCreator: kafkaLogCreator(d.logger),
      retry: { retries: 10, initialRetryTime: 200, maxRetryTime: 5000 },
    });
    this.consumer = kafka.consumer(consumerOptions(d.config));
    if (d.config.AGGREGATOR_UNSAFE_COUNT_ROWS) {
      this.log.warn('AGGREGATOR_UNSAFE_COUNT_ROWS is on: sessions and crashes count delivered rows and replays DOUBLE COUNT (test-only negative control)');
    }
  }

  async start(): Promise<void> {
    await this.store.migrate();
    this.consumer.on(this.consumer.events.GROUP_JOIN, (e) => {
      this.joined = true;
      const assigned = new Set<string>();
      for (const [topic, parts] of Object.entries(e.payload.memberAssignment)) for (const p of parts) assigned.add(tpKey(topic, p));
      // kafkajs restarts every assigned partition from its committed offset after a rebalance, so
      // positions buffered for partitions now owned by another member must not be committed by us.
      this.buffer.keepOnly(assigned);
      this.assigned = [...assigned].map((k) => splitTpKey(k).partition).sort((a, b) => a - b);
      this.log.info('joined consumer group', { partitions: [...assigned].map((k) => splitTpKey(k).partition).join(',') });
    });
    this.consumer.on(this.consumer.events.CRASH, (e) => {
      this.joined = false;
      this.log.error('kafka consumer crashed', { restart: e.payload.restart }, e.payload.error);
    });
    await this.consumer.connect();
    await this.consumer.subscribe({ topics: [this.topic], fromBeginning: this.cfg.AGGREGATOR_FROM_BEGINNING });
    await this.consumer.run({
      autoCommit: false, // fixed: offsets are committed only after the insert (DESIGN.md)
      eachBatchAutoResolve: false,
      partitionsConsumedConcurrently: 1,
      eachBatch: (p) => {
        const done = this.onBatch(p);
        this.batchInProgress = done.catch(() => undefined);
        return done;
      },
    });
    this.scheduleFlush();
    void this.retentionSweep();
    this.retentionTimer = setInterval(() => void this.retentionSweep(), this.cfg.AGGREGATOR_RETENTION_INTERVAL_MS);
    this.retentionTimer.unref();
  }

  private async onBatch({ batch, resolveOffset, heartbeat, isRunning, isStale }: EachBatchPayload): Promise<void> {
    const w = {
      nowMs: this.now(),
      maxLatenessDays: this.cfg.AGGREGATOR_MAX_LATENESS_DAYS,
      futureSkewMs: this.cfg.AGGREGATOR_FUTURE_SKEW_MS,
      unsafeCountRows: this.cfg.AGGREGATOR_UNSAFE_COUNT_ROWS,
    };
    // Counters are added once per batch: prom-client's inc() per record cost measurably (bench).
    let records = 0;
    let read = 0;
    let late = 0;
    let future = 0;
    let last: string | undefined;
    let offset = '';
    const dedup = !this.cfg.AGGREGATOR_UNSAFE_COUNT_ROWS;
    // One visitor per Kafka batch, called once per fact of each record.
    const visit = (v: ReadVerdict): void => {
      if (v.kind === 'ok') this.buffer.addRow(v.row, dedup);
      else if (v.kind === 'late') late++;
      else if (v.kind === 'future') future++;
      else {
        // A record no reader version knows cannot be counted; it is skipped, counted and logged
        // (without its bytes) rather than blocking its partition for ever.
        this.m.undecodableEvents.inc({ code: v.code });
        this.log.warn('skipping undecodable record', { partition: batch.partition, offset, code: v.code });
      }
    };
    for (const msg of batch.messages) {
      // isStale() walks kafkajs's seek table (6% of the time when asked per record, bench profile);
      // a record (tens of facts) takes tens of microseconds, so asking every 16 is as prompt.
      if ((records & 15) === 0 && (!isRunning() || isStale())) break;
      records++;
      if (msg.value) {
        offset = msg.offset;
        read += this.reader.readRecord(msg.value, w, visit);
      }
      last = msg.offset;
    }
    this.m.eventsRead.inc(read);
    if (late) this.m.lateEvents.inc(late);
    if (future) this.m.futureEvents.inc(future);
    if (last !== undefined) {
      this.buffer.advance(batch.topic, batch.partition, last);
      // Advances kafkajs's fetch position only; with autoCommit off nothing is committed here. Once
      // per batch: kafkajs parses the offset into a Long on every call.
      resolveOffset(last);
      const lag = BigInt(batch.highWatermark) - BigInt(last) - 1n;
      this.m.consumerLag.set({ topic: batch.topic, partition: String(batch.partition) }, Number(lag < 0n ? 0n : lag));
    }
    this.updateBuffered();
    if (this.buffer.size >= this.cfg.AGGREGATOR_FLUSH_MAX_ROWS) this.kickFlush();
    if (!this.paused && this.buffered() >= this.cfg.AGGREGATOR_MAX_BUFFERED_ROWS) {
      // Memory bound while ClickHouse is slow or down: stop fetching instead of buffering more.
      this.paused = true;
      this.m.paused.set(1);
      this.consumer.pause([{ topic: this.topic }]);
      this.log.warn('paused consumption: too many rows wait for ClickHouse', { buffered: this.buffered() });
    }
    await heartbeat();
  }

  private buffered(): number {
    return this.buffer.size + this.inFlightRows;
  }

  private updateBuffered(): void {
    this.m.bufferedRows.set(this.buffered());
  }

  private scheduleFlush(): void {
    if (this.stopping) return;
    this.flushTimer = setTimeout(() => {
      this.kickFlush();
      void this.flushing?.finally(() => this.scheduleFlush());
    }, this.cfg.AGGREGATOR_FLUSH_INTERVAL_MS);
  }

  /** Starts a flush unless one runs: flushes are strictly sequential (DESIGN.md, "ordering"). */
  private kickFlush(): Promise<void> {
    if (!this.flushing) {
      this.flushing = this.flushOnce().finally(() => {
        this.flushing = null;
      });
    }
    return this.flushing;
  }

  private async flushOnce(): Promise<void> {
    if (this.buffer.empty) return;
    const batch = this.buffer.take();
    this.inFlightRows = batch.rows.length;
    const t0 = performance.now();
    if (batch.rows.length > 0) {
      this.flushCount++;
      await this.testStall('before_insert');
      await this.insertWithRetry(batch);
      await this.testStall('after_insert');
    }
    this.m.duplicatesDropped.inc(batch.duplicates);
    await this.commit(batch);
    this.inFlightRows = 0;
    this.updateBuffered();
    this.m.flushSeconds.observe((performance.now() - t0) / 1000);
    if (batch.rows.length > 0) this.m.flushRows.observe(batch.rows.length);
    if (this.paused && this.buffered() < this.cfg.AGGREGATOR_MAX_BUFFERED_ROWS / 2 && !this.stopping) {
      this.paused = false;
      this.m.paused.set(0);
      this.consumer.resume([{ topic: this.topic }]);
      this.log.info('resumed consumption', { buffered: this.buffered() });
    }
  }

  /**
   * Retries until the insert succeeds: the rows are never dropped and nothing is committed meanwhile.
   * Retrying an insert whose response was lost is harmless (idempotent states). While retrying, new
   * records keep arriving until AGGREGATOR_MAX_BUFFERED_ROWS pauses the consumer.
   */
  private async insertWithRetry(batch: FlushBatch): Promise<void> {
    for (let attempt = 0; ; attempt++) {
      try {
        const midway = this.stallPoint('during_insert') ? { midway: () => this.testStall('during_insert') } : {};
        await this.store.insertFacts(batch.rows, midway);
        this.m.eventsAggregated.inc(batch.rows.length);
        if (!this.storeOk) this.log.info('ClickHouse insert succeeded again', { attempts: attempt + 1 });
        this.storeOk = true;
        return;
      } catch (err) {
        this.storeOk = false;
        this.m.clickhouseErrors.inc({ op: 'insert' });
        if (this.unsafeCommitOnInsertError) {
          this.log.warn('UNSAFE: insert failed; dropping its rows and committing their offsets', { rows: batch.rows.length, ...describe(err) });
          return;
        }
        const wait = Math.min(this.cfg.AGGREGATOR_RETRY_MAX_MS, this.cfg.AGGREGATOR_RETRY_INITIAL_MS * 2 ** Math.min(attempt, 20));
        this.log.warn('ClickHouse insert failed; retrying', { rows: batch.rows.length, attempt: attempt + 1, retry_in_ms: wait, ...describe(err) });
        await sleep(wait);
      }
    }
  }

  private async commit(batch: FlushBatch): Promise<void> {
    if (batch.offsets.size === 0) return;
    const offsets = [...batch.offsets].map(([k, offset]) => ({ ...splitTpKey(k), offset }));
    try {
      await this.consumer.commitOffsets(offsets);
      this.m.commits.inc({ result: 'ok' });
    } catch (err) {
      // Typically a rebalance in progress. The rows are in ClickHouse; the positions go back into the
      // buffer so the next flush commits them (a replay of this range meanwhile is harmless).
      this.m.commits.inc({ result: 'failed' });
      this.buffer.restoreOffsets(batch.offsets);
      this.log.warn('offset commit failed; will retry with the next flush', describe(err));
    }
  }

  private stallPoint(at: AggregatorConfig['AGGREGATOR_TEST_STALL_AT']): boolean {
    return this.cfg.AGGREGATOR_TEST_STALL_AT === at && this.flushCount === this.cfg.AGGREGATOR_TEST_STALL_ON_FLUSH;
  }

  /** TEST ONLY (AGGREGATOR_TEST_STALL_AT): never returns, so a crash test can SIGKILL us right here. */
  private async testStall(at: AggregatorConfig['AGGREGATOR_TEST_STALL_AT']): Promise<void> {
    if (!this.stallPoint(at)) return;
    this.log.warn('test stall', { at, flush: this.flushCount });
    await new Promise<never>(() => undefined);
  }

  async retentionSweep(): Promise<string[]> {
    const cutoff = utcDay(this.now()) - this.cfg.AGGREGATOR_RETENTION_DAYS;
    try {
      const dropped = await this.store.dropPartitionsOlderThan(cutoff);
      this.m.partitionsDropped.inc(dropped.length);
      if (dropped.length) this.log.info('retention dropped day partitions', { partitions: dropped.join(',') });
      return dropped;
    } catch (err) {
      this.m.clickhouseErrors.inc({ op: 'retention' });
      this.log.warn('retention sweep failed; will try again', describe(err));
      return [];
    }
  }

  /** Partitions of the events topic this member was given at the last rebalance. */
  assignment(): readonly number[] {
    return this.assigned;
  }

  ready(): ReadinessCheck {
    const checks = { kafka: this.joined ? 'ok' : 'not in group', clickhouse: this.storeOk ? 'ok' : 'insert failing' };
    return { ok: this.joined && this.storeOk && !this.stopping, checks };
  }

  /** Flushes what was read (insert, then commit) and leaves the group. */
  async stop(): Promise<void> {
    if (this.stopping) return;
    this.stopping = true;
    if (this.flushTimer) clearTimeout(this.flushTimer);
    if (this.retentionTimer) clearInterval(this.retentionTimer);
    try {
      this.consumer.pause([{ topic: this.topic }]);
    } catch {
      // not running yet
    }
    await this.batchInProgress;
    while (this.flushing) await this.flushing;
    await this.kickFlush();
    await this.consumer.disconnect();
  }
}

/**
 * kafkajs logs through our JSON logger. It reports the expected steps of a rebalance (heartbeat
 * answered "rebalancing", commit refused during a rebalance) as ERROR; those are demoted to debug so an
 * operator's error log holds only real trouble.
 */
function kafkaLogCreator(logger: Logger) {
  const expected = /rebalanc|not the correct coordinator|coordinator is loading/i;
  return () =>
    ({ level, log }: LogEntry) => {
      const fields = { kafka: log.message, ...(typeof log.error === 'string' ? { error: log.error } : {}) };
      const text = `${log.message} ${String(log.error ?? '')}`;
      if (level <= logLevel.ERROR && !expected.test(text)) logger.error('kafka client', fields);
      else if (level <= logLevel.WARN && !expected.test(text)) logger.warn('kafka client', fields);
      else logger.debug('kafka client', fields);
    };
}

function describe(err: unknown): Record<string, string> {
  if (err instanceof Error) {
    const code = (err as { code?: unknown }).code;
    return { error: `${err.name}${code ? `[${String(code)}]` : ''}: ${err.message}` };
  }
  return { error: String(err) };
}
