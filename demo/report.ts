/**
 * The report phase of a demo run, once the traffic is done: wait until the aggregator has committed
 * every record, read what each service counted (their /metrics) and what each topic holds, query the
 * two tables from ClickHouse with the query command's code, and check them against the devices' own
 * count (the ledger's oracle). print.ts turns the result into text.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { Admin } from 'kafkajs';
import { utcDay } from '../aggregator/facts.ts';
import { runReport, type QueryRequest, type ReportRow } from '../aggregator/query.ts';
import { openStore } from '../aggregator/store-open.ts';
import type { Store } from '../aggregator/store.ts';
import { crashRequest, dauRequest } from '../dashboard/server.ts';
import { readAggregator, readIngest, scrapeOnce, sumBy, sumOf } from '../dashboard/scrape.ts';
import { createKafka } from '../testing/stack.ts';
import { outsideBounds, type Ledger } from './ledger.ts';
import { AGG_MAX_LATENESS_DAYS, retrying, type DemoRun } from './run.ts';
import type { SimulatorResult } from './simulator.ts';

export interface TopicCount {
  topic: string;
  records: number;
}

export interface DemoReport {
  runId: string;
  database: string;
  simulated: { elapsedS: number; eventsPerSec: number };
  ledger: Ledger;
  ingest: Array<{ url: string; accepted: number; rejected: Record<string, number>; droppedConsent: Record<string, number>; requests: Record<string, number> }>;
  aggregator: { read: number; aggregated: number; late: number; redundantDropped: number; lag: number } | undefined;
  topics: TopicCount[];
  caughtUp: boolean;
  dau: { req: QueryRequest; rows: ReportRow[]; oracle: ReportRow[] };
  crash: { req: QueryRequest; rows: ReportRow[]; oracle: ReportRow[] };
  /**
   * exact: the tables must equal the devices' own count; bounds: some batches were never acknowledged,
   * so each count must lie between the acknowledged-only and the everything-sent oracle; none: no tables.
   */
  check: { kind: 'exact' | 'bounds' | 'none'; problems: string[] };
  matches: boolean;
  /** Set when ClickHouse could not be queried for the tables (they are then empty). */
  queryError?: string;
  urls: { dashboard: string; metrics: string[] };
}

/** The whole report phase. */
export async function collectReport(run: DemoRun, sim: SimulatorResult, dashboardUrl: string): Promise<DemoReport> {
  const { caughtUp, counts } = await waitForAggregator(run, sim);
  const ingest = await readIngestMetrics(run);
  const aggregator = await readAggregatorMetrics(run);
  const tables = await queryTables(run);
  const ledger = sim.ledger;
  const window = { today: tables.today, maxLatenessDays: AGG_MAX_LATENESS_DAYS };
  const dauOracle = ledger.oracle(tables.dauReq, run.k, window);
  const crashOracle = ledger.oracle(tables.crashReq, run.k, window);
  const check = checkTables(ledger, tables, dauOracle, crashOracle, window);
  const [pa, pb] = run.opts.ports.ingest;
  return {
    runId: run.runId,
    database: run.runId,
    simulated: { elapsedS: sim.elapsedMs / 1000, eventsPerSec: sim.eventsPerSec },
    ledger,
    ingest,
    aggregator,
    topics: counts,
    caughtUp,
    dau: { req: tables.dauReq, rows: tables.dauRows, oracle: dauOracle },
    crash: { req: tables.crashReq, rows: tables.crashRows, oracle: crashOracle },
    check,
    matches: check.kind !== 'none' && check.problems.length === 0,
    ...(tables.queryError !== undefined ? { queryError: tables.queryError } : {}),
    urls: { dashboard: dashboardUrl, metrics: [pa, pb, run.opts.ports.aggregator].map((p) => `http://127.0.0.1:${p}/metrics`) },
  };
}

/** Waits (60 s, 15 s after Ctrl-C) until the aggregator's group committed every record; counts each topic. */
async function waitForAggregator(run: DemoRun, sim: SimulatorResult): Promise<{ caughtUp: boolean; counts: TopicCount[] }> {
  const tWait = Date.now();
  run.log(`demo: traffic done (${(sim.elapsedMs / 1000).toFixed(1)} s); waiting for the aggregator to commit every record…`);
  const admin = createKafka('demo-report', { brokers: run.stack.info.kafkaBrokers }).admin();
  await admin.connect();
  let caughtUp = false;
  let counts: TopicCount[] = [];
  try {
    const deadline = Date.now() + (run.opts.signal?.aborted ? 15_000 : 60_000);
    while (Date.now() < deadline) {
      if (await groupCaughtUp(admin, run.groupId, run.env.PIPELINE_TOPIC_EVENTS).catch(() => false)) {
        caughtUp = true;
        break;
      }
      await sleep(300);
    }
    counts = await retrying(() => topicCounts(admin, run.topics), 20_000).catch(() => []);
  } finally {
    await admin.disconnect();
  }
  run.log(`demo: aggregator ${caughtUp ? 'caught up' : 'NOT caught up'} after ${((Date.now() - tWait) / 1000).toFixed(1)} s`);
  return { caughtUp, counts };
}

async function topicCounts(admin: Admin, topics: string[]): Promise<TopicCount[]> {
  const out: TopicCount[] = [];
  for (const topic of topics) {
    const offs = await admin.fetchTopicOffsets(topic);
    out.push({ topic, records: offs.reduce((s, p) => s + (Number(p.high) - Number(p.low)), 0) });
  }
  return out;
}

/** True once the group has committed every record of the events topic (the aggregates include them all). */
async function groupCaughtUp(admin: Admin, groupId: string, topic: string): Promise<boolean> {
  const ends = await admin.fetchTopicOffsets(topic);
  const committed = await admin.fetchOffsets({ groupId, topics: [topic] });
  const byPart = new Map<number, number>();
  for (const t of committed) for (const p of t.partitions) byPart.set(p.partition, Number(p.offset));
  return ends.every((p) => Number(p.high) === 0 || (byPart.get(p.partition) ?? -1) >= Number(p.high));
}

function readIngestMetrics(run: DemoRun): Promise<DemoReport['ingest']> {
  return Promise.all(
    run.opts.ports.ingest.map(async (port) => {
      const url = `http://127.0.0.1:${port}/metrics`;
      const s = (await scrapeOnce(url, 3000)).samples ?? [];
      return {
        url,
        accepted: readIngest(s).accepted,
        rejected: sumBy(s, 'ingest_events_rejected_total', 'reason'),
        droppedConsent: sumBy(s, 'ingest_events_dropped_consent_total', 'reason'),
        requests: sumBy(s, 'ingest_requests_total', 'code'),
      };
    }),
  );
}

async function readAggregatorMetrics(run: DemoRun): Promise<DemoReport['aggregator']> {
  const aggSamples = (await scrapeOnce(`http://127.0.0.1:${run.opts.ports.aggregator}/metrics`, 3000)).samples;
  return aggSamples
    ? {
        ...readAggregator(aggSamples),
        aggregated: sumOf(aggSamples, 'aggregator_events_aggregated_total'),
        late: sumOf(aggSamples, 'aggregator_late_events_total'),
        redundantDropped: sumOf(aggSamples, 'aggregator_redundant_rows_dropped_total'),
      }
    : undefined;
}

interface Tables {
  today: number;
  dauReq: QueryRequest;
  crashReq: QueryRequest;
  dauRows: ReportRow[];
  crashRows: ReportRow[];
  /** First line of the error when ClickHouse could not be queried (retried 30 s); the rows are then empty. */
  queryError: string | undefined;
}

/** The dashboard's two tables over the last 3 days, through the query command's code. */
async function queryTables(run: DemoRun): Promise<Tables> {
  const { k } = run;
  const today = utcDay(Date.now());
  const dauReq: QueryRequest = { ...dauRequest(today, 3), format: 'table' };
  const crashReq: QueryRequest = { ...crashRequest(today, 3), format: 'table' };
  const store: Store = await openStore({
    kind: 'server',
    url: run.stack.info.clickhouseUrl,
    user: 'default',
    password: '',
    chdbPath: '',
    insertTimeoutMs: 30_000,
    database: run.runId,
    minGroupDevices: k,
  });
  let dauRows: ReportRow[] = [];
  let crashRows: ReportRow[] = [];
  let queryError: string | undefined;
  try {
    dauRows = await retrying(() => runReport(store, dauReq), 30_000);
    crashRows = await retrying(() => runReport(store, crashReq), 30_000);
  } catch (e) {
    queryError = (e as Error).message.split('\n', 1)[0];
  } finally {
    await store.close();
  }
  return { today, dauReq, crashReq, dauRows, crashRows, queryError };
}

const sameRows = (a: readonly ReportRow[], b: readonly ReportRow[]) => JSON.stringify(a) === JSON.stringify(b);

/**
 * Exact equality with the devices' count, unless batches were never acknowledged (Kafka unavailable
 * until the device gave up): those may or may not have landed, so then only bounds can be checked, and
 * the report says so.
 */
function checkTables(
  ledger: Ledger,
  t: Tables,
  dauOracle: ReportRow[],
  crashOracle: ReportRow[],
  window: { today: number; maxLatenessDays: number },
): DemoReport['check'] {
  if (t.queryError !== undefined) return { kind: 'none', problems: [t.queryError] };
  if (ledger.tally.unacknowledged === 0) {
    const problems = [
      ...(sameRows(t.dauRows, dauOracle) ? [] : ['daily actives differ']),
      ...(sameRows(t.crashRows, crashOracle) ? [] : ['crash rates differ']),
    ];
    return { kind: 'exact', problems };
  }
  const d = ledger.oracleBounds(t.dauReq, window);
  const c = ledger.oracleBounds(t.crashReq, window);
  return {
    kind: 'bounds',
    problems: [...outsideBounds(t.dauRows, d.lower, d.upper, t.dauReq.by), ...outsideBounds(t.crashRows, c.lower, c.upper, t.crashReq.by)],
  };
}
