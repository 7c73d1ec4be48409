/**
 * The last phase of a demo run: stop what it started, in order, and remove what it created. Also used
 * at the start of the next run for the leftovers of one that was killed (`removeResources`).
 */
import { rmSync } from 'node:fs';
import { setTimeout as sleep } from 'node:timers/promises';
import { stopClickHouse, stopKafka } from '../stack/stack.ts';
import { createClickHouse, createKafka } from '../testing/stack.ts';
import { retrying, type CleanupResult, type DemoRun, type Resources } from './run.ts';

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
    // Day secrets: the demo's tokens become unlinkable once these are gone (ARCHITECTURE.md principle 3).
    rmSync(r.keyDir, { recursive: true, force: true });
    removed.push('day secrets');
  }
  for (const p of problems) log(`demo: cleanup: ${p}`);
  return { removed, problems };
}

/** Stops everything the run started and removes what it created; safe to call twice (one cleanup). */
export function stopRun(run: DemoRun, opts: { fast?: boolean } = {}): Promise<CleanupResult> {
  run.stopping ??= cleanup(run, opts.fast ?? false);
  return run.stopping;
}

async function cleanup(run: DemoRun, fast: boolean): Promise<CleanupResult> {
  const res: CleanupResult = { stopped: [], removed: [], problems: [], leftRunning: [], timings: {} };
  if (run.dashboard) {
    await run.dashboard.close().catch((e: unknown) => res.problems.push(`dashboard: ${(e as Error).message}`));
    res.stopped.push('dashboard');
  }
  // Ingest first (it drains in-flight batches into Kafka), then the aggregator (it flushes and commits).
  const grace = fast ? 3000 : 25_000;
  const step = async <T>(what: string, fn: () => Promise<T>): Promise<T> => {
    const t = Date.now();
    const r = await fn();
    res.timings[what] = Date.now() - t;
    return r;
  };
  const s1 = await step('ingest', () => run.procs.stop(['ingest-a', 'ingest-b'], grace));
  const s2 = await step('aggregator', () => run.procs.stop(['aggregator'], grace));
  res.stopped.push(...s1.stopped, ...s2.stopped);
  res.problems.push(...s1.problems, ...s2.problems);
  const rr = await step('topics+database', () => removeResources(run.resources, run.log));
  res.removed.push(...rr.removed);
  res.problems.push(...rr.problems);
  run.procs.finish({ removeLogs: res.problems.length === 0 });
  await stopStack(run, res);
  return res;
}

/** The stack: only the parts this run started, and only single-node Kafka / ClickHouse. */
async function stopStack(run: DemoRun, res: CleanupResult): Promise<void> {
  const { started, config, external } = run.stack;
  if (started.includes('kafka')) {
    await stopKafka(config).then(
      () => res.stopped.push('kafka'),
      (e: unknown) => res.problems.push(`kafka: ${(e as Error).message}`),
    );
  }
  if (started.includes('clickhouse')) {
    await stopClickHouse(config).then(
      () => res.stopped.push('clickhouse'),
      (e: unknown) => res.problems.push(`clickhouse: ${(e as Error).message}`),
    );
  }
  if (!started.includes('kafka') && !external.kafkaBrokers) res.leftRunning.push('kafka (was running before the demo)');
  if (!started.includes('clickhouse') && !external.clickhouseUrl) res.leftRunning.push('clickhouse (was running before the demo)');
}
