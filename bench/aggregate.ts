/**
 * `npm run bench:aggregate`: the aggregator end to end on the local stack (Kafka -> aggregator ->
 * ClickHouse server), in this process.
 *
 * 0. Reference: a bare kafkajs consumer (same consumer settings, eachBatch only resolves the last
 *    offset: no decode, no insert) reads the same N records in its own group. What the aggregator
 *    could reach at most on this machine with kafkajs (`kafka_consume_only_events_per_s`).
 * 1. Throughput: N EventFacts are put on a fresh topic first, then an aggregator starts; the clock runs
 *    until the group has committed everything (a commit follows the insert, and the materialized view
 *    is written by the insert itself, so committed = visible). events_per_s = N / that time. Both
 *    figures count from the consumer's start (group join included, ~the same for both); the
 *    `*_steady_*` figures count from the first record read instead.
 * 2. Delay: under a steady background load, probe events (each with its own app id) are produced one
 *    by one; for each, the time from the producer's ack (acks=all) to the moment a query sees its
 *    group in `daily_agg` is recorded. p50/p99 of those.
 * 3. Insert encoding: TabSeparated (what the stores send) against JSONEachRow, encode time per row.
 * The last line is JSON. Sizes: BENCH_AGG_EVENTS (default 200000), BENCH_AGG_PROBES (default 100).
 * BENCH_AGG_CLUSTER=1 runs the same against the local ClickHouse cluster (`stack:up -- --clickhouse-cluster`,
 * 2 shards x 2 replicas): the database made by the generated cluster DDL, the aggregator inserting into
 * the Distributed `facts_in` on node s1r1 with synchronous distributed inserts.
 */
import { performance } from 'node:perf_hooks';
import { deleteWhatThisFileMade, trackNamesOfThisProcess } from '../testing/cleanup.ts';
import { createClickHouse, createKafka, createTopics, stackInfo, uniqueName } from '../testing/stack.ts';
import { DAY_MS, encodeEventFacts, type EventFact } from '../schemas/index.ts';
import { startAggregator, type RunningAggregator } from '../aggregator/main.ts';
import { consumerOptions } from '../aggregator/aggregator.ts';
import type { Kafka } from 'kafkajs';
import type { ClickHouseClient } from '@clickhouse/client';
import type { AggregatorConfig } from '../aggregator/config.ts';
import { encodeFactsTsv } from '../aggregator/tsv.ts';
import type { FactRow } from '../aggregator/facts.ts';
import { FactReader } from '../aggregator/fact-reader.ts';
import { aggregatorConfig, aggregatorEnv, factRecords, produceFacts, waitAllCommitted } from '../testing/harness.ts';
import { generatePopulation } from '../testing/population.ts';
import { startClickHouseCluster } from '../testing/stack.ts';
import { statements } from '../aggregator/migrate.ts';
import { clusterDdl, DEFAULT_CLUSTER_OPTIONS } from '../tools/clickhouse-cluster.ts';

const N = Number(process.env.BENCH_AGG_EVENTS ?? 200_000);
const PROBES = Number(process.env.BENCH_AGG_PROBES ?? 100);
const CLUSTER = process.env.BENCH_AGG_CLUSTER === '1';

/**
 * Bare kafkajs consumption of `n` records of `topic` with the aggregator's consumer settings; CPU per
 * event divides by `events` (the facts those records hold).
 */
async function consumeOnly(
  kafka: Kafka,
  cfg: ReturnType<typeof aggregatorConfig>,
  topic: string,
  n: number,
  events: number,
): Promise<{ totalS: number; steadyS: number; cpuUsPerEvent: number }> {
  const consumer = kafka.consumer({ ...consumerOptions(cfg), groupId: uniqueName('bench_agg_raw') });
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  let first = 0;
  let seen = 0;
  let done!: () => void;
  const finished = new Promise<void>((r) => (done = r));
  await consumer.connect();
  await consumer.subscribe({ topics: [topic], fromBeginning: true });
  await consumer.run({
    autoCommit: false,
    eachBatchAutoResolve: false,
    eachBatch: async ({ batch, resolveOffset, heartbeat }) => {
      if (!first) first = performance.now();
      seen += batch.messages.length;
      const last = batch.messages.at(-1);
      if (last) resolveOffset(last.offset);
      await heartbeat();
      if (seen >= n) done();
    },
  });
  const timeout = setTimeout(() => done(), 600_000);
  await finished;
  clearTimeout(timeout);
  const t1 = performance.now();
  const cpu = process.cpuUsage(cpu0);
  await consumer.disconnect();
  if (seen < n) throw new Error(`consume-only read ${seen} of ${n} records in 600 s`);
  return { totalS: (t1 - t0) / 1000, steadyS: (t1 - first) / 1000, cpuUsPerEvent: Math.round(((cpu.user + cpu.system) / events) * 100) / 100 };
}

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] ?? NaN;
}

interface Throughput {
  eventsPerS: number;
  steadyPerS: number;
  insertedRows: number;
  cpuUsPerEvent: number;
}

/** Topic -> visible in ClickHouse for the whole backlog, with the aggregator in this process. */
async function measureThroughput(kafka: Kafka, cfg: AggregatorConfig, topic: string, agg: RunningAggregator, events: number): Promise<Throughput> {
  const t0 = performance.now();
  const cpu0 = process.cpuUsage();
  // First record read (polled; 10 ms resolution is plenty against seconds).
  let first = 0;
  const poll = setInterval(() => {
    void agg.metrics.eventsRead.get().then((m) => {
      if (!first && (m.values[0]?.value ?? 0) > 0) first = performance.now();
    });
  }, 10);
  await waitAllCommitted(kafka, cfg.AGGREGATOR_GROUP_ID, topic, 600_000);
  const t1 = performance.now();
  const cpu = process.cpuUsage(cpu0);
  clearInterval(poll);
  return {
    eventsPerS: Math.round(events / ((t1 - t0) / 1000)),
    steadyPerS: Math.round(events / ((t1 - (first || t0)) / 1000)),
    insertedRows: (await agg.metrics.eventsAggregated.get()).values[0]?.value ?? 0,
    cpuUsPerEvent: Math.round(((cpu.user + cpu.system) / events) * 100) / 100,
  };
}

/** Delay from a probe's ack to its row being visible, under a background load of ~2000 ev/s. */
async function measureVisibleDelay(kafka: Kafka, ch: ClickHouseClient, topic: string, database: string, facts: EventFact[]): Promise<number[]> {
  const delays: number[] = [];
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  let stop = false;
  const bg = (async () => {
    let i = 0;
    while (!stop) {
      const chunk = facts.slice(i % facts.length, (i % facts.length) + 200);
      i += 200;
      await producer.send({ topic, acks: -1, messages: factRecords(chunk).map(({ key, value }) => ({ key, value })) });
      await new Promise((r) => setTimeout(r, 100));
    }
  })();
  try {
    const base = facts[0]!;
    for (let p = 0; p < PROBES; p++) {
      const app = `bench.probe.${p}`;
      await producer.send({
        topic,
        acks: -1,
        messages: [
          { key: base.daily_token, value: encodeEventFacts([{ ...base, app_id: app, event_key: Buffer.from(uniqueName('k').padEnd(16).slice(0, 16)) }]) },
        ],
      });
      const acked = performance.now();
      for (let tries = 0; ; tries++) {
        const rs = await ch.query({ query: `SELECT count() AS c FROM ${database}.daily_agg WHERE app_id = '${app}'`, format: 'JSONEachRow' });
        const [row] = await rs.json<{ c: string }>();
        if (Number(row?.c) > 0) break;
        if (tries > 2000) throw new Error(`probe ${app} never became visible`);
        await new Promise((r) => setTimeout(r, 20));
      }
      delays.push(performance.now() - acked);
    }
  } finally {
    stop = true;
    await bg;
    await producer.disconnect();
  }
  return delays;
}

interface EncodeCost {
  rows: number;
  tsvMs: number;
  tsvBytes: number;
  jsonMs: number;
  jsonBytes: number;
}

/** Insert encoding cost: TabSeparated vs JSONEachRow for the same 50k rows, as the aggregator holds them. */
function measureEncoding(facts: EventFact[]): EncodeCost {
  const rows: FactRow[] = [];
  const reader = new FactReader();
  for (const r of factRecords(facts.slice(0, 50_000))) {
    reader.readRecord(r.value, { nowMs: Date.now(), maxLatenessDays: 3650, futureSkewMs: DAY_MS * 3650 }, (v) => {
      if (v.kind === 'ok') rows.push(v.row);
    });
  }
  const te = performance.now();
  const tsv = encodeFactsTsv(rows);
  const tsvMs = performance.now() - te;
  const tj = performance.now();
  const json = rows
    .map((r) =>
      JSON.stringify({ ...r, dims_tsv: undefined, day: r.day, daily_token: r.daily_token.toString('latin1'), event_key: r.event_key.toString('latin1') }),
    )
    .join('\n');
  const jsonMs = performance.now() - tj;
  return { rows: rows.length, tsvMs, tsvBytes: tsv.length, jsonMs, jsonBytes: Buffer.byteLength(json) };
}

async function main(): Promise<void> {
  trackNamesOfThisProcess();
  const s = stackInfo();
  const kafka = createKafka(uniqueName('bench_agg'));
  const topic = uniqueName('bench_agg_events');
  const database = uniqueName('bench_agg');
  await createTopics([topic], { partitions: 3 });
  let clickhouseUrl = s.clickhouseUrl;
  if (CLUSTER) {
    clickhouseUrl = (await startClickHouseCluster()).s1r1!;
    const ddl = clusterDdl({ ...DEFAULT_CLUSTER_OPTIONS, database, serverMajor: 18 });
    const admin = createClickHouse(undefined, { url: clickhouseUrl });
    for (const stmt of statements(ddl)) await admin.command({ query: stmt });
    await admin.close();
  }
  const env = aggregatorEnv(
    { kafkaBrokers: s.kafkaBrokers, clickhouseUrl },
    { topic, groupId: uniqueName('bench_agg_group'), database },
    {
      AGGREGATOR_FLUSH_INTERVAL_MS: process.env.AGGREGATOR_FLUSH_INTERVAL_MS ?? '500',
      AGGREGATOR_LOG_LEVEL: 'warn',
    },
  );
  const cfg = aggregatorConfig(env);
  const ch = createClickHouse(undefined, { url: clickhouseUrl });
  try {
    // Population large enough for N events (about 5 events per device-day).
    const pop = generatePopulation({ seed: 42, devicesPerDay: Math.ceil(N / 15), duplicateShare: 0.02 });
    const facts = pop.facts.slice(0, N);
    const tp0 = performance.now();
    // Records as ingest writes them: one per device-day (the population has ~5 events per device-day;
    // an ingest batch often holds more, so this is the harder case for the per-record cost).
    const records = await produceFacts(kafka, topic, facts, 5000);
    const produceS = (performance.now() - tp0) / 1000;
    console.log(
      `produced ${facts.length} events in ${records} records (${(facts.length / records).toFixed(1)} events/record) in ${produceS.toFixed(1)} s (${Math.round(facts.length / produceS)} ev/s from this process)`,
    );

    const raw = await consumeOnly(kafka, cfg, topic, records, facts.length);
    const rawPerS = Math.round(facts.length / raw.totalS);
    const rawSteadyPerS = Math.round(facts.length / raw.steadyS);
    console.log(
      `kafkajs consume only (no decode, no insert): ${records} records in ${raw.totalS.toFixed(1)} s: ${Math.round(records / raw.totalS)} records/s = ${rawPerS} ev/s (${rawSteadyPerS} ev/s from the first record); CPU ${raw.cpuUsPerEvent} µs/event`,
    );

    const agg = await startAggregator(cfg);
    let t: Throughput;
    let delays: number[];
    try {
      t = await measureThroughput(kafka, cfg, topic, agg, facts.length);
      console.log(
        `aggregated ${facts.length} events (topic -> visible in ClickHouse): ${t.eventsPerS} ev/s (${t.steadyPerS} ev/s from the first record); ${t.insertedRows} rows inserted; this process's CPU ${t.cpuUsPerEvent} µs/event`,
      );
      console.log(
        `aggregator / kafkajs consume-only: ${(t.eventsPerS / rawPerS).toFixed(2)} (from the first record: ${(t.steadyPerS / rawSteadyPerS).toFixed(2)})`,
      );
      delays = await measureVisibleDelay(kafka, ch, topic, database, facts);
    } finally {
      await agg.stop();
    }
    const p50 = Math.round(pct(delays, 50));
    const p99 = Math.round(pct(delays, 99));
    console.log(`ack -> visible over ${delays.length} probes: p50 ${p50} ms, p99 ${p99} ms (flush interval ${cfg.AGGREGATOR_FLUSH_INTERVAL_MS} ms)`);

    const enc = measureEncoding(facts);
    console.log(
      `encode ${enc.rows} rows: TabSeparated ${enc.tsvMs.toFixed(1)} ms, ${enc.tsvBytes} B; JSONEachRow ${enc.jsonMs.toFixed(1)} ms, ${enc.jsonBytes} B`,
    );
    console.log(
      JSON.stringify({
        events: facts.length,
        records,
        events_per_record: Number((facts.length / records).toFixed(2)),
        events_per_s: t.eventsPerS,
        kafka_consume_only_events_per_s: rawPerS,
        steady_events_per_s: t.steadyPerS,
        cpu_us_per_event: t.cpuUsPerEvent,
        kafka_consume_only_steady_events_per_s: rawSteadyPerS,
        kafka_consume_only_cpu_us_per_event: raw.cpuUsPerEvent,
        rows_inserted: t.insertedRows,
        p50_visible_delay_ms: p50,
        p99_visible_delay_ms: p99,
        probes: delays.length,
        flush_interval_ms: cfg.AGGREGATOR_FLUSH_INTERVAL_MS,
        sink: CLUSTER ? 'cluster 2 shards x 2 replicas' : 'server',
        clickhouse_version: s.clickhouseVersion ?? null,
        tsv_encode_ns_per_row: Math.round((enc.tsvMs * 1e6) / enc.rows),
        json_encode_ns_per_row: Math.round((enc.jsonMs * 1e6) / enc.rows),
        tsv_bytes_per_row: Math.round(enc.tsvBytes / enc.rows),
        json_bytes_per_row: Math.round(enc.jsonBytes / enc.rows),
      }),
    );
  } finally {
    if (CLUSTER)
      await ch.command({ query: `DROP DATABASE IF EXISTS ${database} ON CLUSTER '{cluster}'` }).catch((e: Error) => console.error(`cleanup: ${e.message}`));
    await ch.close();
    const left = await deleteWhatThisFileMade();
    for (const p of left.problems) console.error(`cleanup: ${p}`);
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
