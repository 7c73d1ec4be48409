/**
 * `npm run demo`: the whole pipeline on this machine in one command.
 *
 *   1. the local stack (stack/): started if it is not running, reused if it is;
 *   2. the demo's own Kafka topics and ClickHouse database (names carry the run id), so tests and other
 *      users of the same stack never see demo data and the demo never sees theirs;
 *   3. two ingest workers (different ports, same topics, one shared day-secret directory so both give
 *      a device the same daily token: schemas/README.md, FileKeySource) and one aggregator, as child
 *      processes; the dashboard in this process;
 *   4. the device simulator, round-robin over both workers;
 *   5. the report: what the devices were told, what each topic holds, the daily actives and crash-rate
 *      tables from ClickHouse (the query command's code), checked against the simulator's own count;
 *   6. cleanup (at once, or on Ctrl-C with --keep): children stopped by pid, ports free, demo topics,
 *      database and day secrets removed, and the stack stopped only if this run started it.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { Admin } from 'kafkajs';
import { utcDay, dayToIso } from '../aggregator/facts.ts';
import { formatReport, reportColumns, runReport, type QueryRequest, type ReportRow } from '../aggregator/query.ts';
import { openStore } from '../aggregator/store-open.ts';
import type { Store } from '../aggregator/store.ts';
import { ZONES } from '../schemas/contract.ts';
import { REPO_ROOT, externalServices, loadStackConfig } from '../stack/config.ts';
import { portIsFree } from '../stack/proc.ts';
import { stopClickHouse, stopKafka, up } from '../stack/stack.ts';
import { createClickHouse, createKafka, stackInfo } from '../testing/stack.ts';
import { loadDashboardConfig } from '../dashboard/config.ts';
import { crashRequest, dauRequest, startDashboard, type RunningDashboard } from '../dashboard/server.ts';
import { readAggregator, readIngest, scrapeOnce, sumBy, sumOf } from '../dashboard/scrape.ts';
import { DemoProcesses, childEnv, reapStaleRuns, waitFor, type RunningChild } from './children.ts';
import { DemoError } from './errors.ts';
import { Ledger, outsideBounds } from './ledger.ts';
import { Population } from './population.ts';
import { runSimulator } from './simulator.ts';

export interface DemoOptions {
  durationS: number;
  rate: number;
  devices: number;
  seed: number;
  ports: { ingest: [number, number]; aggregator: number; dashboard: number };
  /** k-anonymity threshold for the aggregator views, the query and the dashboard. @default 5 */
  minGroupDevices?: number;
  /** Partitions of each demo topic. @default 3 */
  partitions?: number;
  /** Run id (topic prefix, database name). @default demo_<time> */
  runId?: string;
  /** Where runs keep logs and bookkeeping. @default <repo>/.local/demo */
  baseDir?: string;
  /** Aborts the simulator early (Ctrl-C); the report still follows. */
  signal?: AbortSignal;
  log?: (line: string) => void;
}

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
  aggregator: { read: number; aggregated: number; late: number; duplicatesDropped: number; lag: number } | undefined;
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

export interface CleanupResult {
  stopped: string[];
  removed: string[];
  problems: string[];
  leftRunning: string[];
  /** Milliseconds per cleanup step. */
  timings: Record<string, number>;
}

export interface DemoHandle {
  report: DemoReport;
  dashboard: RunningDashboard;
  /** Stops everything this run started; safe to call twice. */
  stop(opts?: { fast?: boolean }): Promise<CleanupResult>;
}

interface Resources {
  topics: string[];
  database: string;
  brokers: string[];
  clickhouseUrl: string;
  keyDir: string;
}

const AGG_MAX_LATENESS_DAYS = 3;

/**
 * Runs `fn` until it succeeds or `timeoutMs` passes (then throws its last error). On a shared machine a
 * broker or ClickHouse may be restarting for a moment; a demo should ride that out, not crash.
 */
async function retrying<T>(fn: () => Promise<T>, timeoutMs: number, intervalMs = 1000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await fn();
    } catch (e) {
      if (Date.now() + intervalMs > deadline) throw e;
      await sleep(intervalMs);
    }
  }
}

/** Deletes a run's topics, database and day secrets; each step on its own so one failure does not stop the rest. */
export async function removeResources(r: Resources, log: (l: string) => void = () => {}): Promise<{ removed: string[]; problems: string[] }> {
  const removed: string[] = [];
  const problems: string[] = [];
  if (r.topics.length > 0) {
    // A few attempts: on a shared machine the broker may be restarting (fault tests stop it).
    let last: unknown;
    for (let attempt = 0; attempt < 4; attempt++) {
      const admin = createKafka('demo-cleanup', { brokers: r.brokers }).admin();
      try {
        await admin.connect();
        const existing = new Set(await admin.listTopics());
        const mine = r.topics.filter((t) => existing.has(t));
        if (mine.length) await admin.deleteTopics({ topics: mine, timeout: 15_000 });
        removed.push(`${mine.length} topics`);
        last = undefined;
        break;
      } catch (e) {
        last = e;
        await sleep(3000);
      } finally {
        await admin.disconnect().catch(() => {});
      }
    }
    if (last) problems.push(`deleting topics ${r.topics[0]} etc.: ${(last as Error).message}`);
  }
  if (r.database) {
    const ch = createClickHouse(undefined, { url: r.clickhouseUrl });
    try {
      await retrying(() => ch.command({ query: `DROP DATABASE IF EXISTS ${r.database}` }), 12_000);
      removed.push(`database ${r.database}`);
    } catch (e) {
      problems.push(`dropping database ${r.database}: ${(e as Error).message} (the next demo run does not retry this: DROP DATABASE ${r.database} by hand)`);
    } finally {
      await ch.close().catch(() => {});
    }
  }
  if (r.keyDir) {
    // Day secrets: the demo's tokens become unlinkable once these are gone (DESIGN principle 3).
    rmSync(r.keyDir, { recursive: true, force: true });
    removed.push('day secrets');
  }
  for (const p of problems) log(`demo: cleanup: ${p}`);
  return { removed, problems };
}

async function readyz(port: number): Promise<boolean> {
  const res = await fetch(`http://127.0.0.1:${port}/readyz`, { signal: AbortSignal.timeout(2000) });
  return res.status === 200;
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

const sameRows = (a: readonly ReportRow[], b: readonly ReportRow[]) => JSON.stringify(a) === JSON.stringify(b);

export async function startDemo(o: DemoOptions): Promise<DemoHandle> {
  const log = o.log ?? ((l: string) => console.log(l));
  const k = o.minGroupDevices ?? 5;
  const runId = o.runId ?? `demo_${new Date().toISOString().replace(/[-:T]/g, '').slice(0, 14)}_${process.pid.toString(36)}`;
  const baseDir = o.baseDir ?? path.join(REPO_ROOT, '.local', 'demo');
  const runDir = path.join(baseDir, runId);
  const t0 = Date.now();

  // Leftovers of a demo that was killed before it could clean up.
  for (const stale of await reapStaleRuns(baseDir)) {
    if (stale.resources) await removeResources(stale.resources as Resources, log);
    rmSync(stale.runDir, { recursive: true, force: true });
    log(`demo: cleaned up an earlier run that did not finish (${stale.runId}${stale.stopped.length ? `: stopped ${stale.stopped.join(', ')}` : ''})`);
  }

  const ports: Array<[string, number]> = [
    ['ingest a', o.ports.ingest[0]],
    ['ingest b', o.ports.ingest[1]],
    ['aggregator', o.ports.aggregator],
    ['dashboard', o.ports.dashboard],
  ];
  for (const [what, port] of ports) {
    if (!(await portIsFree(port))) {
      throw new DemoError('DEMO_PORT_IN_USE', `port ${port} (${what}) is in use: stop what holds it, or pick other ports with --port-base`);
    }
  }

  // ---- 1. the stack -------------------------------------------------------------------------------
  const ext = externalServices();
  const stackConfig = loadStackConfig();
  log(`demo: bringing up the local stack (Kafka + ClickHouse; reused if running)…`);
  let startedStack: string[];
  try {
    const r = await up({ kafka: !ext.kafkaBrokers, clickhouse: !ext.clickhouseUrl, log: (l) => log(`  ${l}`) }, stackConfig);
    startedStack = r.started;
    log(`demo: stack ${r.started.length ? `started (${r.started.join(', ')})` : 'already running, reused'} in ${(r.ms / 1000).toFixed(1)} s`);
  } catch (e) {
    throw new DemoError('DEMO_STACK_FAILED', `the local stack did not come up: ${(e as Error).message}`, { cause: e });
  }
  const info = stackInfo();

  const topicsPrefix = `${runId}.`;
  const env = {
    PIPELINE_KAFKA_BROKERS: info.kafkaBrokers.join(','),
    PIPELINE_TOPIC_EVENTS: `${topicsPrefix}events`,
    PIPELINE_TOPIC_PERSONAL_PREFIX: `${topicsPrefix}personal.`,
    PIPELINE_TOPIC_REJECTS_PREFIX: `${topicsPrefix}rejects.`,
  };
  const topics = [env.PIPELINE_TOPIC_EVENTS, ...ZONES.map((z) => `${env.PIPELINE_TOPIC_PERSONAL_PREFIX}${z}`), ...ZONES.map((z) => `${env.PIPELINE_TOPIC_REJECTS_PREFIX}${z}`)];
  const resources: Resources = { topics, database: runId, brokers: info.kafkaBrokers, clickhouseUrl: info.clickhouseUrl, keyDir: path.join(runDir, 'token-keys') };
  mkdirSync(runDir, { recursive: true });
  // Written before anything is created, so a run killed half-way can be cleaned up by the next one.
  writeFileSync(path.join(runDir, 'resources.json'), JSON.stringify(resources, null, 2));
  const procs = new DemoProcesses(runDir, runId, REPO_ROOT);

  let dashboard: RunningDashboard | undefined;
  let stopped: Promise<CleanupResult> | undefined;
  const stop = (opts: { fast?: boolean } = {}): Promise<CleanupResult> => {
    stopped ??= (async () => {
      const res: CleanupResult = { stopped: [], removed: [], problems: [], leftRunning: [], timings: {} };
      if (dashboard) {
        await dashboard.close().catch((e: unknown) => res.problems.push(`dashboard: ${(e as Error).message}`));
        res.stopped.push('dashboard');
      }
      // Ingest first (it drains in-flight batches into Kafka), then the aggregator (it flushes and commits).
      const grace = opts.fast ? 3000 : 25_000;
      const step = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
        const t = Date.now();
        const r = await fn();
        res.timings[what] = Date.now() - t;
        return r;
      };
      const s1 = await step('ingest', () => procs.stop(['ingest-a', 'ingest-b'], grace));
      const s2 = await step('aggregator', () => procs.stop(['aggregator'], grace));
      res.stopped.push(...s1.stopped, ...s2.stopped);
      res.problems.push(...s1.problems, ...s2.problems);
      const rr = await step('topics+database', () => removeResources(resources, log));
      res.removed.push(...rr.removed);
      res.problems.push(...rr.problems);
      procs.finish({ removeLogs: res.problems.length === 0 });
      // The stack: only the parts this run started, and only single-node Kafka / ClickHouse.
      if (startedStack.includes('kafka')) {
        await stopKafka(stackConfig).then(
          () => res.stopped.push('kafka'),
          (e: unknown) => res.problems.push(`kafka: ${(e as Error).message}`),
        );
      }
      if (startedStack.includes('clickhouse')) {
        await stopClickHouse(stackConfig).then(
          () => res.stopped.push('clickhouse'),
          (e: unknown) => res.problems.push(`clickhouse: ${(e as Error).message}`),
        );
      }
      if (!startedStack.includes('kafka') && !ext.kafkaBrokers) res.leftRunning.push('kafka (was running before the demo)');
      if (!startedStack.includes('clickhouse') && !ext.clickhouseUrl) res.leftRunning.push('clickhouse (was running before the demo)');
      return res;
    })();
    return stopped;
  };

  try {
    // ---- 2. topics (created here, so both workers can start in parallel and only verify them) -----
    const admin = createKafka('demo-admin', { brokers: info.kafkaBrokers }).admin();
    await admin.connect();
    try {
      await admin.createTopics({
        waitForLeaders: false,
        topics: topics.map((topic) => ({ topic, numPartitions: o.partitions ?? 3, replicationFactor: 1, configEntries: [{ name: 'retention.ms', value: String(24 * 3600 * 1000) }] })),
      });
      // Our own wait for leaders: kafkajs' waitForLeaders gives up on UNKNOWN_TOPIC_OR_PARTITION, which a
      // broker answers for a moment after creating a topic.
      await waitFor(
        'demo topics',
        async () => {
          const md = await admin.fetchTopicMetadata({ topics });
          return md.topics.length === topics.length && md.topics.every((t) => t.partitions.length > 0 && t.partitions.every((p) => p.leader >= 0));
        },
        { timeoutMs: 30_000, intervalMs: 300, abortIf: () => (o.signal?.aborted ? 'interrupted' : undefined) },
      );
    } finally {
      await admin.disconnect();
    }

    // ---- 3. children ---------------------------------------------------------------------------------
    const ingestEnv = (port: number, name: string) =>
      childEnv(process.env, {
        ...env,
        INGEST_PORT: String(port),
        INGEST_HOST: '127.0.0.1',
        INGEST_TOPICS: 'verify',
        // One decode thread each: two workers, an aggregator, Kafka and ClickHouse share two cores here.
        INGEST_POOL_THREADS: '1',
        INGEST_TOKEN_KEY_DIR: resources.keyDir,
        INGEST_KAFKA_CLIENT_ID: `${runId}-${name}`,
        INGEST_SHUTDOWN_DRAIN_MS: '10000',
      });
    const [pa, pb] = o.ports.ingest;
    const children: RunningChild[] = [
      procs.start({ service: 'ingest-a', script: 'ingest/main.ts', env: ingestEnv(pa, 'ingest-a'), ports: [pa] }),
      procs.start({ service: 'ingest-b', script: 'ingest/main.ts', env: ingestEnv(pb, 'ingest-b'), ports: [pb] }),
      procs.start({
        service: 'aggregator',
        script: 'aggregator/main.ts',
        env: childEnv(process.env, {
          ...env,
          AGGREGATOR_PORT: String(o.ports.aggregator),
          AGGREGATOR_GROUP_ID: `${runId}-aggregator`,
          AGGREGATOR_CLICKHOUSE: 'server',
          AGGREGATOR_CLICKHOUSE_URL: info.clickhouseUrl,
          AGGREGATOR_DATABASE: runId,
          AGGREGATOR_MIN_GROUP_DEVICES: String(k),
          AGGREGATOR_MAX_LATENESS_DAYS: String(AGG_MAX_LATENESS_DAYS),
        }),
        ports: [o.ports.aggregator],
      }),
    ];
    log(`demo: started ingest-a (pid ${children[0]!.pid}, :${pa}), ingest-b (pid ${children[1]!.pid}, :${pb}), aggregator (pid ${children[2]!.pid}, :${o.ports.aggregator}); logs in ${path.relative(REPO_ROOT, runDir)}/`);
    const deadOrAborted = () => {
      if (o.signal?.aborted) return 'interrupted';
      const dead = children.find((c) => !procs.alive(c));
      return dead ? `${dead.service} exited: ${procs.tail(dead) || `see ${dead.logFile}`}` : undefined;
    };
    await Promise.all(
      [
        ['ingest-a', pa],
        ['ingest-b', pb],
        ['aggregator', o.ports.aggregator],
      ].map(([name, port]) => waitFor(`${name} /readyz`, () => readyz(port as number), { timeoutMs: 90_000, abortIf: deadOrAborted })),
    ).catch((e: unknown) => {
      throw new DemoError(o.signal?.aborted ? 'DEMO_INTERRUPTED' : 'DEMO_CHILD_FAILED', (e as Error).message, { cause: e });
    });
    log(`demo: all services ready after ${((Date.now() - t0) / 1000).toFixed(1)} s`);

    // ---- dashboard (in this process) ---------------------------------------------------------------
    const dcfg = loadDashboardConfig({
      DASHBOARD_PORT: String(o.ports.dashboard),
      DASHBOARD_CLICKHOUSE_URL: info.clickhouseUrl,
      DASHBOARD_DATABASE: runId,
      DASHBOARD_MIN_GROUP_DEVICES: String(k),
      DASHBOARD_DAYS: '7',
      DASHBOARD_INGEST_METRICS_URLS: `http://127.0.0.1:${pa}/metrics,http://127.0.0.1:${pb}/metrics`,
      DASHBOARD_AGGREGATOR_METRICS_URLS: `http://127.0.0.1:${o.ports.aggregator}/metrics`,
      DASHBOARD_SCRAPE_INTERVAL_MS: '1000',
      DASHBOARD_RATE_WINDOW_MS: '5000',
    });
    dashboard = await startDashboard(dcfg);
    log(`demo: dashboard ${dashboard.url} (open it now to watch the traffic)`);

    // ---- 4. the simulator ------------------------------------------------------------------------------
    const population = new Population({ devices: o.devices, seed: o.seed });
    log(`demo: ${o.devices.toLocaleString('en-US')} devices posting ~${o.rate.toLocaleString('en-US')} events/s to both ingest workers for ${o.durationS} s (Ctrl-C stops early)…`);
    const sim = await runSimulator({
      urls: [`http://127.0.0.1:${pa}`, `http://127.0.0.1:${pb}`],
      population,
      ratePerSec: o.rate,
      durationMs: o.durationS * 1000,
      concurrency: 24,
      ...(o.signal ? { signal: o.signal } : {}),
    });
    const ledger = sim.ledger;

    // ---- 5. wait for the aggregator, then report ---------------------------------------------------------
    const tWait = Date.now();
    log(`demo: traffic done (${(sim.elapsedMs / 1000).toFixed(1)} s); waiting for the aggregator to commit every record…`);
    const admin2 = createKafka('demo-report', { brokers: info.kafkaBrokers }).admin();
    await admin2.connect();
    let caughtUp = false;
    let counts: TopicCount[] = [];
    try {
      const deadline = Date.now() + (o.signal?.aborted ? 15_000 : 60_000);
      while (Date.now() < deadline) {
        if (await groupCaughtUp(admin2, `${runId}-aggregator`, env.PIPELINE_TOPIC_EVENTS).catch(() => false)) {
          caughtUp = true;
          break;
        }
        await sleep(300);
      }
      counts = await retrying(() => topicCounts(admin2, topics), 20_000).catch(() => []);
    } finally {
      await admin2.disconnect();
    }

    log(`demo: aggregator ${caughtUp ? 'caught up' : 'NOT caught up'} after ${((Date.now() - tWait) / 1000).toFixed(1)} s`);
    const ingest = await Promise.all(
      [pa, pb].map(async (port) => {
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
    const aggSamples = (await scrapeOnce(`http://127.0.0.1:${o.ports.aggregator}/metrics`, 3000)).samples;
    const aggregator = aggSamples
      ? {
          ...readAggregator(aggSamples),
          aggregated: sumOf(aggSamples, 'aggregator_events_aggregated_total'),
          late: sumOf(aggSamples, 'aggregator_late_events_total'),
          duplicatesDropped: sumOf(aggSamples, 'aggregator_duplicate_events_dropped_total'),
        }
      : undefined;

    const today = utcDay(Date.now());
    const dauReq: QueryRequest = { ...dauRequest(today, 3), format: 'table' };
    const crashReq: QueryRequest = { ...crashRequest(today, 3), format: 'table' };
    const store: Store = await openStore({ kind: 'server', url: info.clickhouseUrl, user: 'default', password: '', chdbPath: '', insertTimeoutMs: 30_000, database: runId, minGroupDevices: k });
    let dauRows: ReportRow[] = [];
    let crashRows: ReportRow[] = [];
    let queryError: string | undefined;
    try {
      dauRows = await retrying(() => runReport(store, dauReq, k), 30_000);
      crashRows = await retrying(() => runReport(store, crashReq, k), 30_000);
    } catch (e) {
      queryError = (e as Error).message.split('\n', 1)[0];
    } finally {
      await store.close();
    }
    const window = { today, maxLatenessDays: AGG_MAX_LATENESS_DAYS };
    const dauOracle = ledger.oracle(dauReq, k, window);
    const crashOracle = ledger.oracle(crashReq, k, window);
    // Batches never acknowledged (Kafka unavailable until the device gave up) may or may not have
    // landed: then only bounds can be checked, and the report says so.
    let check: DemoReport['check'];
    if (queryError !== undefined) check = { kind: 'none', problems: [queryError] };
    else if (ledger.tally.unacknowledged === 0) {
      const problems = [...(sameRows(dauRows, dauOracle) ? [] : ['daily actives differ']), ...(sameRows(crashRows, crashOracle) ? [] : ['crash rates differ'])];
      check = { kind: 'exact', problems };
    } else {
      const d = ledger.oracleBounds(dauReq, window);
      const c = ledger.oracleBounds(crashReq, window);
      check = { kind: 'bounds', problems: [...outsideBounds(dauRows, d.lower, d.upper, dauReq.by), ...outsideBounds(crashRows, c.lower, c.upper, crashReq.by)] };
    }
    const report: DemoReport = {
      runId,
      database: runId,
      simulated: { elapsedS: sim.elapsedMs / 1000, eventsPerSec: sim.eventsPerSec },
      ledger,
      ingest,
      aggregator,
      topics: counts,
      caughtUp,
      dau: { req: dauReq, rows: dauRows, oracle: dauOracle },
      crash: { req: crashReq, rows: crashRows, oracle: crashOracle },
      check,
      matches: check.kind !== 'none' && check.problems.length === 0,
      ...(queryError !== undefined ? { queryError } : {}),
      urls: { dashboard: dashboard.url, metrics: [pa, pb, o.ports.aggregator].map((p) => `http://127.0.0.1:${p}/metrics`) },
    };
    return { report, dashboard, stop };
  } catch (e) {
    await stop({ fast: true }).catch(() => {});
    throw e;
  }
}

// ---- printing -----------------------------------------------------------------------------------------

const n = (x: number) => Math.round(x).toLocaleString('en-US');

function list(r: Record<string, number>): string {
  const e = Object.entries(r).filter(([, v]) => v > 0).sort((a, b) => b[1] - a[1]);
  return e.length ? e.map(([k, v]) => `${k} ${n(v)}`).join(', ') : 'none';
}

/** The report as a new user reads it at the end of `npm run demo`. */
export function formatDemoReport(r: DemoReport): string {
  const t = r.ledger.tally;
  const out: string[] = [];
  const batches = Object.values(t.batches).reduce((a, b) => a + b, 0);
  const rejected = Object.values(t.eventsRejected).reduce((a, b) => a + b, 0);
  const dropped = r.ledger.eventsDroppedNoConsent();
  const stripped = Object.entries(t.droppedConsent).filter(([k]) => k.startsWith('stripped_'));
  out.push('', '== What went where ==');
  out.push(`devices    ${n(batches)} batches posted (${list(t.batches as unknown as Record<string, number>)}), ${n(t.resends)} sent twice (lost answer), ${n(t.retries)} retried after 429/503`);
  const p50 = r.ledger.latency(50);
  const p99 = r.ledger.latency(99);
  out.push(`           ${n(t.eventsSent)} events in ${r.simulated.elapsedS.toFixed(1)} s (${n(r.simulated.eventsPerSec)} events/s); HTTP answers: ${list(t.posts)}; latency p50 ${p50?.toFixed(0) ?? '-'} ms, p99 ${p99?.toFixed(0) ?? '-'} ms`);
  out.push(`ingest     accepted ${n(t.eventsAccepted)} events · dropped ${n(dropped)} events of devices without analytics consent (policy 1.2/5.3)`);
  if (stripped.length) out.push(`           advertising ids stripped (no personalised-ads consent): ${stripped.map(([k, v]) => `${k.replace('stripped_no_personalised_ads:', '')} in ${n(v)} batches`).join(', ')}`);
  out.push(`           rejected ${n(rejected)}: ${list(t.eventsRejected)}`);
  out.push(`           (per-event reasons are SCHEMA_*/TOKEN_*; INGEST_* = the whole batch was refused, its events counted)`);
  for (const w of r.ingest) {
    out.push(`           ${w.url.replace('/metrics', '')} /metrics: ${n(w.accepted)} accepted, ${n(Object.values(w.rejected).reduce((a, b) => a + b, 0))} rejected (per event), ${n(w.droppedConsent.no_analytics_consent ?? 0)} dropped for consent`);
  }
  if (t.surprises.length) out.push(`           UNEXPECTED answers (${t.surprises.length}): ${t.surprises.slice(0, 5).join('; ')}`);
  out.push('kafka      records per topic (end offset - start offset):');
  const w = Math.max(...r.topics.map((x) => x.topic.length));
  for (const c of r.topics) {
    const kind = c.topic.endsWith('.events') ? 'non-personal event facts, one record per accepted batch and UTC day holding its events\' facts (twice for a batch sent twice)' : c.topic.includes('.personal.') ? 'personal data, one record per accepted batch, in its residency zone' : 'rejected events (unclassified, kept in their zone)';
    out.push(`           ${c.topic.padEnd(w)}  ${n(c.records).padStart(8)}  ${kind}`);
  }
  if (r.aggregator) {
    out.push(`aggregator read ${n(r.aggregator.read)} event facts, inserted ${n(r.aggregator.aggregated)} fact rows, ${n(r.aggregator.duplicatesDropped)} repeats dropped in memory, ${n(r.aggregator.late)} too late; lag ${n(r.aggregator.lag)}${r.caughtUp ? '' : ' (NOT caught up: tables below may be short)'}`);
  }
  const dauCmd = `npm run query -- dau --from ${dayToIso(r.dau.req.from)} --to ${dayToIso(r.dau.req.to)} --by day,app_id`;
  const crashCmd = `npm run query -- crash-rate --from ${dayToIso(r.crash.req.from)} --to ${dayToIso(r.crash.req.to)} --by app_id,app_version`;
  out.push('', `== Daily active devices (ClickHouse, database ${r.database}; with --keep, run it yourself: AGGREGATOR_DATABASE=${r.database} ${dauCmd}) ==`);
  out.push(formatReport(r.dau.rows, 'table', reportColumns(r.dau.req)));
  out.push('', `== Crash rates by app version, last 3 days as device-days (${crashCmd}) ==`);
  out.push(formatReport(r.crash.rows, 'table', reportColumns(r.crash.req)));
  out.push('');
  if (r.queryError) out.push(`ClickHouse could not be queried for the tables (retried 30 s): ${r.queryError}`);
  if (t.unacknowledged > 0) {
    out.push(`note: ${n(t.unacknowledged)} batches were never acknowledged (${list(t.unacknowledgedByCode)}) when the devices gave up retrying;`);
    out.push('      some of their events may have reached Kafka before the answer failed, so the check below is a bound.');
  }
  if (r.check.kind === 'exact') {
    out.push(
      r.matches
        ? 'check: both tables equal what the simulated devices were told was accepted, counted with plain sets (exact, duplicates counted once).'
        : `check: MISMATCH between ClickHouse and the devices' own count (${r.check.problems.join('; ')}): expected ${JSON.stringify({ dau: r.dau.oracle, crash: r.crash.oracle })}`,
    );
  } else if (r.check.kind === 'bounds') {
    out.push(
      r.matches
        ? 'check: every count lies between what the devices were told was accepted and everything they sent (exact check impossible, see note).'
        : `check: OUT OF BOUNDS: ${r.check.problems.slice(0, 5).join('; ')}`,
    );
  } else out.push('check: not possible without the tables.');
  out.push('', `dashboard  ${r.urls.dashboard}`);
  out.push(`metrics    ${r.urls.metrics.join('  ')}`);
  return out.join('\n');
}

export function formatCleanup(c: CleanupResult): string {
  const slow = Object.entries(c.timings).filter(([, ms]) => ms >= 2000);
  const lines = [`demo: stopped ${c.stopped.join(', ') || 'nothing'}; removed ${c.removed.join(', ') || 'nothing'}${slow.length ? ` (slow: ${slow.map(([k, ms]) => `${k} ${(ms / 1000).toFixed(1)} s`).join(', ')})` : ''}`];
  if (c.leftRunning.length) lines.push(`demo: left running: ${c.leftRunning.join(', ')} (npm run stack:down stops it)`);
  for (const p of c.problems) lines.push(`demo: PROBLEM during cleanup: ${p}`);
  return lines.join('\n');
}
