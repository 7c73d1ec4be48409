/**
 * `npm run demo`: the whole pipeline on this machine in one command. `startDemo` runs these phases in
 * order, each a function below (or in the file named), all sharing one `DemoRun` (run.ts):
 *
 *   1. `prepareRun`: leftovers of a killed run removed, ports checked, the local stack (stack/)
 *      started if it is not running, reused if it is;
 *   2. `createDemoTopics`: the demo's own Kafka topics (the ClickHouse database is created by the
 *      aggregator's migrations); names carry the run id, so tests and other users of the same stack
 *      never see demo data and the demo never sees theirs;
 *   3. `startChildren`: two ingest workers (different ports, same topics, one shared day-secret
 *      directory so both give a device the same daily token: schemas/README.md, FileKeySource) and
 *      one aggregator, as child processes; `startDemoDashboard`: the dashboard in this process;
 *   4. `runTraffic`: the device simulator, round-robin over both workers;
 *   5. `collectReport` (report.ts): what the devices were told, what each topic holds, the daily
 *      actives and crash-rate tables from ClickHouse (the query command's code), checked against the
 *      simulator's own count; print.ts prints it;
 *   6. `stopRun` (cleanup.ts, at once, or on Ctrl-C with --keep): children stopped by pid, ports free,
 *      demo topics, database and day secrets removed, and the stack stopped only if this run started it.
 */
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { ZONES } from '../schemas/contract.ts';
import { DAY_MS, personalRetentionClasses } from '../schemas/index.ts';
import { personalTopic, rightsTopic } from '../runtime/index.ts';
import { REPO_ROOT, externalServices, loadStackConfig } from '../stack/config.ts';
import { portIsFree } from '../stack/proc.ts';
import { up } from '../stack/stack.ts';
import { createKafka, stackInfo } from '../testing/stack.ts';
import { loadDashboardConfig } from '../dashboard/config.ts';
import { startDashboard, type RunningDashboard } from '../dashboard/server.ts';
import { DemoProcesses, childEnv, reapStaleRuns, waitFor } from './children.ts';
import { removeResources, stopRun } from './cleanup.ts';
import { DemoError } from './errors.ts';
import { Population } from './population.ts';
import { collectReport, type DemoReport } from './report.ts';
import { AGG_MAX_LATENESS_DAYS, type CleanupResult, type DemoOptions, type DemoRun, type PipelineEnv, type Resources, type RunStack } from './run.ts';
import { runSimulator, type SimulatorResult } from './simulator.ts';
import { sealingEnv } from '../testing/sealing.ts';

export type { DemoOptions } from './run.ts';

export interface DemoHandle {
  report: DemoReport;
  dashboard: RunningDashboard;
  /** Stops everything this run started; safe to call twice. */
  stop(opts?: { fast?: boolean }): Promise<CleanupResult>;
}

export async function startDemo(o: DemoOptions): Promise<DemoHandle> {
  const run = await prepareRun(o);
  try {
    await createDemoTopics(run);
    await startChildren(run);
    const dashboard = await startDemoDashboard(run);
    const sim = await runTraffic(run);
    const report = await collectReport(run, sim, dashboard.url);
    return { report, dashboard, stop: (opts) => stopRun(run, opts) };
  } catch (e) {
    await stopRun(run, { fast: true }).catch(() => {});
    throw e;
  }
}

// ---- 1. prepare: leftovers, ports, the stack, the run's names ------------------------------------------

/** Everything before the first resource is created; a failure here leaves nothing to clean up. */
async function prepareRun(o: DemoOptions): Promise<DemoRun> {
  const log = o.log ?? ((l: string) => console.log(l));
  const runId = o.runId ?? `demo_${new Date().toISOString().replace(/[-:T]/g, '').slice(0, 14)}_${process.pid.toString(36)}`;
  const baseDir = o.baseDir ?? path.join(REPO_ROOT, '.local', 'demo');
  const runDir = path.join(baseDir, runId);
  const startedAt = Date.now();
  await reapLeftovers(baseDir, log);
  await checkPortsFree(o.ports);
  const stack = await bringUpStack(log);

  const topicsPrefix = `${runId}.`;
  const env: PipelineEnv = {
    PIPELINE_KAFKA_BROKERS: stack.info.kafkaBrokers.join(','),
    PIPELINE_TOPIC_EVENTS: `${topicsPrefix}events`,
    PIPELINE_TOPIC_PERSONAL_PREFIX: `${topicsPrefix}personal.`,
    PIPELINE_TOPIC_REJECTS_PREFIX: `${topicsPrefix}rejects.`,
    PIPELINE_TOPIC_RIGHTS_PREFIX: `${topicsPrefix}rights.`,
  };
  const topics = [
    env.PIPELINE_TOPIC_EVENTS,
    ...ZONES.flatMap((z) => personalRetentionClasses().map((c) => personalTopic(env.PIPELINE_TOPIC_PERSONAL_PREFIX, z, c.name))),
    ...ZONES.map((z) => `${env.PIPELINE_TOPIC_REJECTS_PREFIX}${z}`),
    ...ZONES.map((z) => rightsTopic(env.PIPELINE_TOPIC_RIGHTS_PREFIX, z)),
  ];
  const resources: Resources = {
    topics,
    database: runId,
    brokers: stack.info.kafkaBrokers,
    clickhouseUrl: stack.info.clickhouseUrl,
    keyDir: path.join(runDir, 'token-keys'),
  };
  mkdirSync(runDir, { recursive: true });
  // Written before anything is created, so a run killed half-way can be cleaned up by the next one.
  writeFileSync(path.join(runDir, 'resources.json'), JSON.stringify(resources, null, 2));
  const procs = new DemoProcesses(runDir, runId, REPO_ROOT);
  return {
    opts: o,
    log,
    k: o.minGroupDevices ?? 5,
    runId,
    runDir,
    startedAt,
    stack,
    env,
    topics,
    resources,
    procs,
    groupId: `${runId}-aggregator`,
    children: [],
  };
}

/** Leftovers of a demo that was killed before it could clean up. */
async function reapLeftovers(baseDir: string, log: (line: string) => void): Promise<void> {
  for (const stale of await reapStaleRuns(baseDir)) {
    if (stale.resources) await removeResources(stale.resources as Resources, log);
    rmSync(stale.runDir, { recursive: true, force: true });
    log(`demo: cleaned up an earlier run that did not finish (${stale.runId}${stale.stopped.length ? `: stopped ${stale.stopped.join(', ')}` : ''})`);
  }
}

async function checkPortsFree(ports: DemoOptions['ports']): Promise<void> {
  const named: Array<[string, number]> = [
    ['ingest a', ports.ingest[0]],
    ['ingest b', ports.ingest[1]],
    ['aggregator', ports.aggregator],
    ['dashboard', ports.dashboard],
  ];
  for (const [what, port] of named) {
    if (!(await portIsFree(port))) {
      throw new DemoError('DEMO_PORT_IN_USE', `port ${port} (${what}) is in use: stop what holds it, or pick other ports with --port-base`);
    }
  }
}

async function bringUpStack(log: (line: string) => void): Promise<RunStack> {
  const external = externalServices();
  const config = loadStackConfig();
  log(`demo: bringing up the local stack (Kafka + ClickHouse; reused if running)…`);
  let started: string[];
  try {
    const r = await up({ kafka: !external.kafkaBrokers, clickhouse: !external.clickhouseUrl, log: (l) => log(`  ${l}`) }, config);
    started = r.started;
    log(`demo: stack ${r.started.length ? `started (${r.started.join(', ')})` : 'already running, reused'} in ${(r.ms / 1000).toFixed(1)} s`);
  } catch (e) {
    throw new DemoError('DEMO_STACK_FAILED', `the local stack did not come up: ${(e as Error).message}`, { cause: e });
  }
  return { config, external, started, info: stackInfo() };
}

// ---- 2. topics (created here, so both workers can start in parallel and only verify them) --------------

async function createDemoTopics(run: DemoRun): Promise<void> {
  const { topics, opts } = run;
  const admin = createKafka('demo-admin', { brokers: run.stack.info.kafkaBrokers }).admin();
  await admin.connect();
  try {
    await admin.createTopics({
      waitForLeaders: false,
      topics: topics.map((topic) => ({
        topic,
        numPartitions: opts.partitions ?? 3,
        replicationFactor: 1,
        configEntries: [{ name: 'retention.ms', value: String(DAY_MS) }],
      })),
    });
    // Our own wait for leaders: kafkajs' waitForLeaders gives up on UNKNOWN_TOPIC_OR_PARTITION, which a
    // broker answers for a moment after creating a topic.
    await waitFor(
      'demo topics',
      async () => {
        const md = await admin.fetchTopicMetadata({ topics });
        return md.topics.length === topics.length && md.topics.every((t) => t.partitions.length > 0 && t.partitions.every((p) => p.leader >= 0));
      },
      { timeoutMs: 30_000, intervalMs: 300, abortIf: () => (opts.signal?.aborted ? 'interrupted' : undefined) },
    );
  } finally {
    await admin.disconnect();
  }
}

// ---- 3. children and the dashboard ---------------------------------------------------------------------

/** Starts ingest-a, ingest-b and the aggregator and waits for their /readyz (90 s; a dead child or Ctrl-C ends the wait). */
async function startChildren(run: DemoRun): Promise<void> {
  const { opts: o, env, runId, procs } = run;
  const ingestEnv = (port: number, name: string) =>
    childEnv(process.env, {
      ...env,
      INGEST_PORT: String(port),
      INGEST_HOST: '127.0.0.1',
      INGEST_TOPICS: 'verify',
      // One decode thread each: two workers, an aggregator, Kafka and ClickHouse share two cores here.
      INGEST_POOL_THREADS: '1',
      INGEST_TOKEN_KEY_DIR: run.resources.keyDir,
      // Personal records sealed per device (rights/README.md): the stack's key stores, the run's own zone keys.
      ...sealingEnv(path.join(run.runDir, 'rights-keys')).env,
      INGEST_KAFKA_CLIENT_ID: `${runId}-${name}`,
      INGEST_SHUTDOWN_DRAIN_MS: '10000',
      // The local stack is one Kafka cluster: every zone's topics share it (development only; policy section 6).
      INGEST_ZONES_SHARE_MAIN_CLUSTER: 'true',
      // The simulated phones post over plain HTTP on loopback (development only; ingest/README.md, "TLS").
      INGEST_UNSAFE_PLAINTEXT_HTTP: 'true',
    });
  const [pa, pb] = o.ports.ingest;
  run.children = [
    procs.start({ service: 'ingest-a', script: 'ingest/main.ts', env: ingestEnv(pa, 'ingest-a'), ports: [pa] }),
    procs.start({ service: 'ingest-b', script: 'ingest/main.ts', env: ingestEnv(pb, 'ingest-b'), ports: [pb] }),
    procs.start({
      service: 'aggregator',
      script: 'aggregator/main.ts',
      env: childEnv(process.env, {
        ...env,
        AGGREGATOR_PORT: String(o.ports.aggregator),
        AGGREGATOR_GROUP_ID: run.groupId,
        AGGREGATOR_CLICKHOUSE: 'server',
        AGGREGATOR_CLICKHOUSE_URL: run.stack.info.clickhouseUrl,
        AGGREGATOR_DATABASE: runId,
        AGGREGATOR_MIN_GROUP_DEVICES: String(run.k),
        AGGREGATOR_MAX_LATENESS_DAYS: String(AGG_MAX_LATENESS_DAYS),
      }),
      ports: [o.ports.aggregator],
    }),
  ];
  const children = run.children;
  run.log(
    `demo: started ingest-a (pid ${children[0]!.pid}, :${pa}), ingest-b (pid ${children[1]!.pid}, :${pb}), aggregator (pid ${children[2]!.pid}, :${o.ports.aggregator}); logs in ${path.relative(REPO_ROOT, run.runDir)}/`,
  );
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
  run.log(`demo: all services ready after ${((Date.now() - run.startedAt) / 1000).toFixed(1)} s`);
}

async function readyz(port: number): Promise<boolean> {
  const res = await fetch(`http://127.0.0.1:${port}/readyz`, { signal: AbortSignal.timeout(2000) });
  return res.status === 200;
}

/** The dashboard in this process, on the run's database and the children's /metrics. */
async function startDemoDashboard(run: DemoRun): Promise<RunningDashboard> {
  const { ports } = run.opts;
  const [pa, pb] = ports.ingest;
  const dcfg = loadDashboardConfig({
    DASHBOARD_PORT: String(ports.dashboard),
    // The plain local stack has one ClickHouse user, its admin `default` (stack/README.md); the secured
    // stack and the deployments give the dashboard the analyst role.
    ANALYST_CLICKHOUSE_URL: run.stack.info.clickhouseUrl,
    ANALYST_CLICKHOUSE_USER: 'default',
    ANALYST_DATABASE: run.runId,
    // The demo checks every bar against the phones' own count: exact answers (each use is logged in the
    // privacy ledger); analysts get the private ones by default (dashboard/README.md).
    DASHBOARD_ANSWERS: 'exact',
    DASHBOARD_DAYS: '7',
    DASHBOARD_INGEST_METRICS_URLS: `http://127.0.0.1:${pa}/metrics,http://127.0.0.1:${pb}/metrics`,
    DASHBOARD_AGGREGATOR_METRICS_URLS: `http://127.0.0.1:${ports.aggregator}/metrics`,
    DASHBOARD_SCRAPE_INTERVAL_MS: '1000',
    DASHBOARD_RATE_WINDOW_MS: '5000',
  });
  run.dashboard = await startDashboard(dcfg);
  run.log(`demo: dashboard ${run.dashboard.url} (open it now to watch the traffic)`);
  return run.dashboard;
}

// ---- 4. the simulator ----------------------------------------------------------------------------------

function runTraffic(run: DemoRun): Promise<SimulatorResult> {
  const o = run.opts;
  const [pa, pb] = o.ports.ingest;
  const population = new Population({ devices: o.devices, seed: o.seed });
  run.log(
    `demo: ${o.devices.toLocaleString('en-US')} devices posting ~${o.rate.toLocaleString('en-US')} events/s to both ingest workers for ${o.durationS} s (Ctrl-C stops early)…`,
  );
  return runSimulator({
    urls: [`http://127.0.0.1:${pa}`, `http://127.0.0.1:${pb}`],
    population,
    ratePerSec: o.rate,
    durationMs: o.durationS * 1000,
    // Phones each post on their own connection: many at once, so ingest's mixes fill (ingest/README.md,
    // "Linkage of the topics"; a few clients would each wait the mix's longest wait on every batch).
    concurrency: 256,
    ...(o.signal ? { signal: o.signal } : {}),
  });
}
