/**
 * The aggregator in-process against the real Kafka broker and ClickHouse 18.16 server of the local
 * stack, and against embedded chdb: a generated population (with duplicates, late and future events)
 * produced as EventFacts onto a test topic must come out of the query command exactly as the oracle
 * computes it from the input. Also: rebalance 1 -> 3 -> 1 members, and ClickHouse stopped mid-stream.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Kafka } from 'kafkajs';
import { createClickHouse, createKafka, createTopics, stackInfo, startClickHouse, stopClickHouse, uniqueName } from '../testing/stack.ts';
import { startAggregator, type RunningAggregator } from './main.ts';
import { utcDay } from './facts.ts';
import { openStore, storeOptionsFrom } from './store-open.ts';
import type { Store } from './store.ts';
import { aggregatorConfig, aggregatorEnv, groupProgress, produceFacts, waitAllCommitted } from '../testing/harness.ts';
import { generatePopulation, oracleReport } from '../testing/population.ts';
import { reportsVsOracle } from '../testing/compare.ts';
import { runReport, type QueryRequest, type ReportRow } from './query.ts';

const K = 5;
let kafka: Kafka;
const stack = () => {
  const s = stackInfo();
  return { kafkaBrokers: s.kafkaBrokers, clickhouseUrl: s.clickhouseUrl };
};
const databases: string[] = [];

beforeAll(() => {
  kafka = createKafka(uniqueName('agg_test'));
});

afterAll(async () => {
  const c = createClickHouse();
  for (const db of databases) await c.command({ query: `DROP DATABASE IF EXISTS ${db}` });
  await c.close();
});

async function setup(partitions: number, extra: Record<string, string> = {}) {
  const topic = uniqueName('agg_events');
  const database = uniqueName('agg');
  databases.push(database);
  await createTopics([topic], { partitions });
  const env = aggregatorEnv(stack(), { topic, groupId: uniqueName('agg_group'), database }, { AGGREGATOR_MIN_GROUP_DEVICES: String(K), ...extra });
  return { topic, database, env, cfg: aggregatorConfig(env) };
}

async function expectOracle(store: Store, counted: Parameters<typeof reportsVsOracle>[1]) {
  const results = await reportsVsOracle(store, counted, K);
  for (const r of results) {
    expect(r.want.length, `oracle has groups for ${r.req.report} by ${r.req.by.join(',')}`).toBeGreaterThan(0);
    expect(r.got, `${r.req.report} by ${r.req.by.join(',') || 'none'}`).toEqual(r.want);
  }
  return results;
}

/**
 * ClickHouse stopped while the second half of a population streams in, then started again. Returns
 * what was observed while it was down and the reports once the group has committed everything.
 * `unsafe` switches on the negative control (commit after a failed insert).
 */
async function clickhouseDownScenario(seed: number, unsafe: boolean) {
  const { topic, env, cfg } = await setup(1, { AGGREGATOR_MAX_BUFFERED_ROWS: '500', AGGREGATOR_FLUSH_MAX_ROWS: '200' });
  const pop = generatePopulation({ seed, devicesPerDay: 250 });
  const half = Math.floor(pop.facts.length / 2);
  const group = env.AGGREGATOR_GROUP_ID!;
  const agg = await startAggregator(cfg, { unsafeCommitOnInsertError: unsafe });
  const m = agg.metrics;
  let down = false;
  try {
    await produceFacts(kafka, topic, pop.facts.slice(0, half));
    await waitAllCommitted(kafka, group, topic);
    const before = await groupProgress(kafka, group, topic);
    await stopClickHouse();
    down = true;
    await produceFacts(kafka, topic, pop.facts.slice(half));
    // Wait until inserts fail and then either the consumer pauses at the buffer bound (the real
    // path) or everything is committed regardless (the negative control).
    const t0 = Date.now();
    const errors = async () => (await m.clickhouseErrors.get()).values.reduce((a, v) => a + v.value, 0);
    const paused = async () => (await m.paused.get()).values[0]?.value === 1;
    const allCommitted = async () => (await groupProgress(kafka, group, topic)).every((p) => p.committed >= p.end);
    while ((await errors()) === 0 || !((await paused()) || (await allCommitted()))) {
      if (Date.now() - t0 > 30_000) throw new Error('inserts never failed, or the consumer neither paused nor went on, while ClickHouse was down');
      await new Promise((r) => setTimeout(r, 200));
    }
    const pausedWhileDown = await paused();
    const readyzWhileDown = (await fetch(`http://127.0.0.1:${agg.port}/readyz`)).status;
    const bufferedWhileDown = (await m.bufferedRows.get()).values[0]!.value;
    await new Promise((r) => setTimeout(r, 1500));
    const committedWhileDown = (await groupProgress(kafka, group, topic)).map((p) => p.committed);
    await startClickHouse();
    down = false;
    await waitAllCommitted(kafka, group, topic, 90_000);
    const pausedAfter = (await m.paused.get()).values[0]?.value;
    const store = await openStore(storeOptionsFrom(cfg));
    try {
      const results = await reportsVsOracle(store, pop.counted, K);
      return { committedBefore: before.map((p) => p.committed), committedWhileDown, pausedWhileDown, readyzWhileDown, bufferedWhileDown, pausedAfter, results };
    } finally {
      await store.close();
    }
  } finally {
    if (down) await startClickHouse();
    await agg.stop();
  }
}

/**
 * The dashboard's roll-up views (daily_active_devices_by_app, crash_rates_by_app_version) must equal
 * the query command's roll-up at their grain, and that roll-up the oracle's: all three are sums of the
 * released cells (one day x all dimensions, k-suppressed).
 */
async function expectRollupViews(store: Store, counted: Parameters<typeof reportsVsOracle>[1]) {
  const db = store.database;
  const today = utcDay(Date.now());
  const req = (report: QueryRequest['report'], by: QueryRequest['by']): QueryRequest => ({ report, from: today - 7, to: today + 7, by, format: 'json' });
  const num = (v: unknown) => Number(v);
  const r3 = (x: number) => Math.round(x * 1000) / 1000;

  const dauReq = req('dau', ['day', 'app_id']);
  const dau = await runReport(store, dauReq);
  expect(dau).toEqual(oracleReport(counted, dauReq, K));
  expect(dau.length).toBeGreaterThan(0);
  const dauView = await store.query<Record<string, unknown>>(
    `SELECT toString(day) AS day, app_id, active_devices FROM ${db}.daily_active_devices_by_app ORDER BY day, app_id`,
  );
  expect(dauView.map((r): ReportRow => ({ day: String(r.day), app_id: String(r.app_id), active_devices: num(r.active_devices) }))).toEqual(dau);

  const crashReq = req('crash-rate', ['day', 'app_id', 'app_version']);
  const crash = await runReport(store, crashReq);
  expect(crash).toEqual(oracleReport(counted, crashReq, K));
  expect(crash.some((r) => num(r.crashes) > 0)).toBe(true);
  const crashView = await store.query<Record<string, unknown>>(
    `SELECT toString(day) AS day, app_id, app_version, active_devices, sessions, crashes, crashed_devices, crash_free_devices_pct, ` +
      `if(sessions = 0, -1, crashes_per_1000_sessions) AS crashes_per_1000_sessions FROM ${db}.crash_rates_by_app_version ORDER BY day, app_id, app_version`,
  );
  expect(
    crashView.map((r): ReportRow => ({
      day: String(r.day),
      app_id: String(r.app_id),
      app_version: String(r.app_version),
      active_devices: num(r.active_devices),
      sessions: num(r.sessions),
      crashes: num(r.crashes),
      crashed_devices: num(r.crashed_devices),
      crash_free_devices_pct: r3(num(r.crash_free_devices_pct)),
      crashes_per_1000_sessions: num(r.sessions) > 0 ? r3(num(r.crashes_per_1000_sessions)) : null,
    })),
  ).toEqual(crash);

  // Consistency is the protection against roll-up differencing: the roll-up is exactly the sum of the
  // finest-grain rows an analyst sees, so "roll-up minus visible rows" is always 0 (the attack itself,
  // with its negative control, is in aggregator/privacy.int.test.ts).
  const summed = await store.query<{ day: string; app_id: string; n: string | number }>(
    `SELECT toString(day) AS day, app_id, sum(active_devices) AS n FROM ${db}.daily_active_devices GROUP BY day, app_id ORDER BY day, app_id`,
  );
  expect(summed.map((r) => ({ day: r.day, app_id: r.app_id, active_devices: num(r.n) }))).toEqual(dau);
}

describe('aggregator on the ClickHouse server: exact counts', () => {
  it('counts a population with duplicates, late and future events exactly as the oracle', async () => {
    const { topic, env, cfg } = await setup(3);
    const pop = generatePopulation({ seed: 1 });
    await produceFacts(kafka, topic, pop.facts);
    const agg = await startAggregator(cfg);
    try {
      await waitAllCommitted(kafka, env.AGGREGATOR_GROUP_ID!, topic);
      const metrics = await agg.metrics.registry.getSingleMetricAsString('aggregator_late_events_total');
      expect(metrics).toContain(`aggregator_late_events_total ${pop.late}`);
      const future = await agg.metrics.registry.getSingleMetricAsString('aggregator_future_events_total');
      expect(future).toContain(`aggregator_future_events_total ${pop.future}`);
      const res = await fetch(`http://127.0.0.1:${agg.port}/metrics`).then((r) => r.text());
      expect(res).toMatch(/aggregator_consumer_lag\{topic="[^"]+",partition="0"\} 0/);
      expect((await fetch(`http://127.0.0.1:${agg.port}/readyz`)).status).toBe(200);
      const store = await openStore(storeOptionsFrom(cfg));
      try {
        const results = await expectOracle(store, pop.counted);
        // k-anonymity bit: at the finest grain some groups of the oracle's input were suppressed.
        const finest = results.find((r) => r.req.by.length === 6 && r.req.report === 'dau')!;
        expect(finest.got.length).toBeLessThan(
          new Set(pop.counted.map((f) => [f.day, f.app_id, f.app_version, f.device_model, f.os_version, f.country].join('|'))).size,
        );
        // The analyst views carry the same finest-grain numbers.
        const view = await store.query<{ n: string }>(`SELECT sum(active_devices) AS n FROM ${cfg.AGGREGATOR_DATABASE}.daily_active_devices`);
        expect(Number(view[0]!.n)).toBe(finest.got.reduce((a, r) => a + Number(r.active_devices), 0));
        // The dashboard's roll-up views equal the query command's roll-up at their grain.
        await expectRollupViews(store, pop.counted);
      } finally {
        await store.close();
      }
      // Replay from offset 0 (a new group on the same topic and database): the totals do not move.
      const replayGroup = uniqueName('agg_replay');
      const replay = await startAggregator(aggregatorConfig({ ...env, AGGREGATOR_GROUP_ID: replayGroup }));
      try {
        await waitAllCommitted(kafka, replayGroup, topic);
      } finally {
        await replay.stop();
      }
      const store2 = await openStore(storeOptionsFrom(cfg));
      try {
        await expectOracle(store2, pop.counted);
      } finally {
        await store2.close();
      }
    } finally {
      await agg.stop();
    }
  });

  it('keeps exact totals across a rebalance from 1 to 3 members and back', async () => {
    const { topic, env, cfg } = await setup(3);
    const pop = generatePopulation({ seed: 2, devicesPerDay: 300 });
    const third = Math.ceil(pop.facts.length / 3);
    const a = await startAggregator(cfg);
    const others: RunningAggregator[] = [];
    try {
      await produceFacts(kafka, topic, pop.facts.slice(0, third));
      others.push(await startAggregator(cfg), await startAggregator(cfg));
      await produceFacts(kafka, topic, pop.facts.slice(third, 2 * third));
      // Wait until the group has settled on three members, one partition each.
      const t0 = Date.now();
      while (![a, ...others].every((x) => x.aggregator.assignment().length === 1)) {
        if (Date.now() - t0 > 30_000) throw new Error('the group never spread over three members');
        await new Promise((r) => setTimeout(r, 200));
      }
      for (const o of others.splice(0)) await o.stop();
      await produceFacts(kafka, topic, pop.facts.slice(2 * third));
      await waitAllCommitted(kafka, env.AGGREGATOR_GROUP_ID!, topic, 90_000);
    } finally {
      for (const o of others) await o.stop();
      await a.stop();
    }
    const store = await openStore(storeOptionsFrom(cfg));
    try {
      await expectOracle(store, pop.counted);
    } finally {
      await store.close();
    }
  });
});

describe('aggregator on the ClickHouse server: ClickHouse down', () => {
  it('stops committing while ClickHouse is down, stays bounded, and ends exact once it is back', async () => {
    const o = await clickhouseDownScenario(3, false);
    expect(o.pausedWhileDown).toBe(true);
    expect(o.readyzWhileDown).toBe(503);
    // Bounded: at most the limit plus one fetch (<= 1 MiB of ~100-byte records) is held.
    expect(o.bufferedWhileDown).toBeLessThan(500 + 12_000);
    expect(o.committedWhileDown).toEqual(o.committedBefore);
    expect(o.pausedAfter).toBe(0);
    for (const r of o.results) {
      expect(r.want.length, `oracle has groups for ${r.req.report} by ${r.req.by.join(',')}`).toBeGreaterThan(0);
      expect(r.got, `${r.req.report} by ${r.req.by.join(',') || 'none'}`).toEqual(r.want);
    }
  });

  it('negative control: committing offsets after a failed insert (unsafeCommitOnInsertError) loses events', async () => {
    const o = await clickhouseDownScenario(6, true);
    // The protection is what was switched off: offsets moved while nothing could be inserted ...
    expect(o.committedWhileDown.some((c, i) => c > o.committedBefore[i]!)).toBe(true);
    // ... and once ClickHouse is back the totals stay below the oracle: those events are gone.
    const total = o.results.find((r) => r.req.report === 'crash-rate' && r.req.by.length === 0)!;
    expect(total.got).toHaveLength(1);
    expect(Number(total.got[0]!.sessions)).toBeLessThan(Number(total.want[0]!.sessions));
    expect(Number(total.got[0]!.device_days)).toBeLessThan(Number(total.want[0]!.device_days));
  });

  it('drops whole day partitions older than the retention', async () => {
    const { cfg } = await setup(1, { AGGREGATOR_RETENTION_DAYS: '30' });
    const store = await openStore(storeOptionsFrom(cfg));
    try {
      await store.migrate();
      const today = utcDay(Date.now());
      const row = (day: number) => ({
        day,
        app_id: 'a',
        app_version: '1',
        device_model: 'm',
        os_version: '1',
        country: 'DE',
        kind: 'session_start' as const,
        daily_token: Buffer.alloc(16, day % 251),
        event_key: Buffer.alloc(16, 7),
      });
      await store.insertFacts([row(today - 40), row(today - 31), row(today - 30), row(today)]);
      const dropped = await store.dropPartitionsOlderThan(today - 30);
      expect(dropped).toHaveLength(2);
      const left = await store.query<{ day: string }>(`SELECT DISTINCT toString(day) AS day FROM ${cfg.AGGREGATOR_DATABASE}.daily_agg ORDER BY day`);
      expect(left).toHaveLength(2);
      // The per-device session states (migration 003) go with them.
      const leftDevice = await store.query<{ day: string }>(`SELECT DISTINCT toString(day) AS day FROM ${cfg.AGGREGATOR_DATABASE}.device_daily ORDER BY day`);
      expect(leftDevice).toEqual(left);
    } finally {
      await store.close();
    }
  });
});

describe('aggregator on embedded chdb', () => {
  it('gives the same answers as the oracle (and so as the server), from legacy single-fact records and batch records on one topic', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'agg-chdb-'));
    const { topic, env } = await setup(3);
    const cfg = aggregatorConfig({ ...env, AGGREGATOR_CLICKHOUSE: 'embedded', AGGREGATOR_CHDB_PATH: dir });
    const pop = generatePopulation({ seed: 1 });
    // A topic written before and after the switch to batch records: the first half one fact per
    // record (as ingest wrote before), the rest grouped per device-day.
    const half = Math.floor(pop.facts.length / 2);
    await produceFacts(kafka, topic, pop.facts.slice(0, half), 2000, { legacy: true });
    await produceFacts(kafka, topic, pop.facts.slice(half));
    const agg = await startAggregator(cfg);
    try {
      await waitAllCommitted(kafka, env.AGGREGATOR_GROUP_ID!, topic);
      const progress = await groupProgress(kafka, env.AGGREGATOR_GROUP_ID!, topic);
      expect(progress.reduce((a, p) => a + Number(p.end), 0)).toBeLessThan(pop.facts.length); // some records hold several facts
      expect((await agg.metrics.eventsRead.get()).values[0]?.value).toBe(pop.facts.length); // every fact read, legacy ones included
      // chdb allows one session per data path per process: read through the aggregator's own store.
      await expectOracle(agg.store, pop.counted);
      await expectRollupViews(agg.store, pop.counted);
    } finally {
      await agg.stop();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
