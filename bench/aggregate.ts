/**
 * `npm run bench:aggregate`: the aggregator end to end on the local stack (Kafka -> aggregator ->
 * ClickHouse server), in this process.
 *
 * 1. Throughput: N EventFacts are put on a fresh topic first, then an aggregator starts; the clock runs
 *    until the group has committed everything (a commit follows the insert, and the materialized view
 *    is written by the insert itself, so committed = visible). events_per_s = N / that time.
 * 2. Delay: under a steady background load, probe events (each with its own app id) are produced one
 *    by one; for each, the time from the producer's ack (acks=all) to the moment a query sees its
 *    group in `daily_agg` is recorded. p50/p99 of those.
 * 3. Insert encoding: TabSeparated (what the sinks send) against JSONEachRow, encode time per row.
 * The last line is JSON. Sizes: BENCH_AGG_EVENTS (default 200000), BENCH_AGG_PROBES (default 100).
 */
import { performance } from 'node:perf_hooks';
import { createClickHouse, createKafka, createTopics, stackInfo, uniqueName } from '../deploy/local/testing.ts';
import { encodeEventFact } from '../schemas/index.ts';
import { startAggregator } from '../aggregator/main.ts';
import { encodeFactsTsv } from '../aggregator/tsv.ts';
import { judgeFact, type FactRow } from '../aggregator/facts.ts';
import { aggregatorConfig, aggregatorEnv, produceFacts, waitAllCommitted } from '../aggregator/testing/harness.ts';
import { generatePopulation } from '../aggregator/testing/population.ts';

const N = Number(process.env.BENCH_AGG_EVENTS ?? 200_000);
const PROBES = Number(process.env.BENCH_AGG_PROBES ?? 100);

function pct(xs: number[], p: number): number {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.ceil((p / 100) * s.length) - 1)] ?? NaN;
}

async function main(): Promise<void> {
  const s = stackInfo();
  const kafka = createKafka(uniqueName('bench_agg'));
  const topic = uniqueName('bench_agg_events');
  const database = uniqueName('bench_agg');
  await createTopics([topic], { partitions: 3 });
  const env = aggregatorEnv({ kafkaBrokers: s.kafkaBrokers, clickhouseUrl: s.clickhouseUrl }, { topic, groupId: uniqueName('bench_agg_group'), database }, {
    AGGREGATOR_FLUSH_INTERVAL_MS: process.env.AGGREGATOR_FLUSH_INTERVAL_MS ?? '500',
    AGGREGATOR_LOG_LEVEL: 'warn',
  });
  const cfg = aggregatorConfig(env);
  const ch = createClickHouse();
  try {
    // Population large enough for N events (about 5 events per device-day).
    const pop = generatePopulation({ seed: 42, devicesPerDay: Math.ceil(N / 15), duplicateShare: 0.02 });
    const facts = pop.facts.slice(0, N);
    const tp0 = performance.now();
    await produceFacts(kafka, topic, facts, 5000);
    const produceS = (performance.now() - tp0) / 1000;
    console.log(`produced ${facts.length} events in ${produceS.toFixed(1)} s (${Math.round(facts.length / produceS)} ev/s from this process)`);

    const t0 = performance.now();
    const agg = await startAggregator(cfg);
    let eventsPerS = 0;
    const delays: number[] = [];
    try {
      await waitAllCommitted(kafka, cfg.AGGREGATOR_GROUP_ID, topic, 600_000);
      const secs = (performance.now() - t0) / 1000;
      eventsPerS = Math.round(facts.length / secs);
      console.log(`aggregated ${facts.length} events (topic -> visible in ClickHouse) in ${secs.toFixed(1)} s: ${eventsPerS} ev/s`);

      // Delay under load: background producer at ~2000 ev/s, probes one at a time.
      const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
      await producer.connect();
      let stop = false;
      const bg = (async () => {
        let i = 0;
        while (!stop) {
          const chunk = facts.slice(i % facts.length, (i % facts.length) + 200);
          i += 200;
          await producer.send({ topic, acks: -1, messages: chunk.map((f) => ({ key: f.daily_token, value: encodeEventFact(f) })) });
          await new Promise((r) => setTimeout(r, 100));
        }
      })();
      const base = facts[0]!;
      for (let p = 0; p < PROBES; p++) {
        const app = `bench.probe.${p}`;
        await producer.send({ topic, acks: -1, messages: [{ key: base.daily_token, value: encodeEventFact({ ...base, app_id: app, event_key: Buffer.from(uniqueName('k').padEnd(16).slice(0, 16)) }) }] });
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
      stop = true;
      await bg;
      await producer.disconnect();
    } finally {
      await agg.stop();
    }
    const p50 = Math.round(pct(delays, 50));
    const p99 = Math.round(pct(delays, 99));
    console.log(`ack -> visible over ${delays.length} probes: p50 ${p50} ms, p99 ${p99} ms (flush interval ${cfg.AGGREGATOR_FLUSH_INTERVAL_MS} ms)`);

    // Insert encoding cost: TabSeparated vs JSONEachRow for the same 50k rows.
    const rows: FactRow[] = [];
    for (const f of facts.slice(0, 50_000)) {
      const v = judgeFact(f, { nowMs: Date.now(), maxLatenessDays: 3650, futureSkewMs: 86_400_000 * 3650 });
      if (v.kind === 'ok') rows.push(v.row);
    }
    const te = performance.now();
    const tsv = encodeFactsTsv(rows);
    const tsvMs = performance.now() - te;
    const tj = performance.now();
    const json = rows
      .map((r) => JSON.stringify({ ...r, day: r.day, daily_token: r.daily_token.toString('latin1'), event_key: r.event_key.toString('latin1') }))
      .join('\n');
    const jsonMs = performance.now() - tj;
    console.log(`encode ${rows.length} rows: TabSeparated ${tsvMs.toFixed(1)} ms, ${tsv.length} B; JSONEachRow ${jsonMs.toFixed(1)} ms, ${Buffer.byteLength(json)} B`);
    console.log(
      JSON.stringify({
        events: facts.length,
        events_per_s: eventsPerS,
        p50_visible_delay_ms: p50,
        p99_visible_delay_ms: p99,
        probes: delays.length,
        flush_interval_ms: cfg.AGGREGATOR_FLUSH_INTERVAL_MS,
        sink: 'server',
        clickhouse_version: s.clickhouseVersion ?? null,
        tsv_encode_ns_per_row: Math.round((tsvMs * 1e6) / rows.length),
        json_encode_ns_per_row: Math.round((jsonMs * 1e6) / rows.length),
        tsv_bytes_per_row: Math.round(tsv.length / rows.length),
        json_bytes_per_row: Math.round(Buffer.byteLength(json) / rows.length),
      }),
    );
  } finally {
    await ch.command({ query: `DROP DATABASE IF EXISTS ${database}` }).catch(() => undefined);
    await ch.close();
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
