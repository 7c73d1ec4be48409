/**
 * Crash tests: aggregator child processes are SIGKILLed inside each failure window of a flush (before
 * the insert, in the middle of it, after it but before the offset commit), repeatedly while events
 * are still being produced; a last clean process finishes the stream. The totals must equal the
 * oracle. Negative control: the same scenario with AGGREGATOR_UNSAFE_COUNT_ROWS=true (every delivered
 * row counts, like a count()-based store) must show double counts.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Kafka } from 'kafkajs';
import { createClickHouse, createKafka, createTopics, stackInfo, uniqueName } from '../testing/stack.ts';
import { openStore, storeOptionsFrom } from './store-open.ts';
import { aggregatorConfig, aggregatorEnv, produceFacts, spawnAggregator, waitAllCommitted } from '../testing/harness.ts';
import { generatePopulation, type Population } from '../testing/population.ts';
import { reportsVsOracle } from '../testing/compare.ts';

type Window = 'before_insert' | 'during_insert' | 'after_insert';
const K = 5;
let kafka: Kafka;
const databases: string[] = [];

beforeAll(() => {
  kafka = createKafka(uniqueName('agg_crash'));
});
afterAll(async () => {
  const c = createClickHouse();
  for (const db of databases) await c.command({ query: `DROP DATABASE IF EXISTS ${db}` });
  await c.close();
});

async function crashScenario(pop: Population, windows: Window[], extra: Record<string, string> = {}) {
  const s = stackInfo();
  const topic = uniqueName('agg_crash_events');
  const database = uniqueName('agg_crash');
  databases.push(database);
  await createTopics([topic], { partitions: 3 });
  const env = aggregatorEnv(
    { kafkaBrokers: s.kafkaBrokers, clickhouseUrl: s.clickhouseUrl },
    { topic, groupId: uniqueName('agg_crash_group'), database },
    { AGGREGATOR_MIN_GROUP_DEVICES: String(K), AGGREGATOR_FLUSH_MAX_ROWS: '300', ...extra },
  );
  // The stream: the population in chunks, every 2 s, while processes are being killed.
  const chunks = 12;
  const size = Math.ceil(pop.facts.length / chunks);
  let streaming = true;
  const stream = (async () => {
    for (let i = 0; i < chunks; i++) {
      await produceFacts(kafka, topic, pop.facts.slice(i * size, (i + 1) * size));
      await new Promise((r) => setTimeout(r, 2000));
    }
    streaming = false;
  })();
  let kills = 0;
  for (const at of windows) {
    // While the stream runs, let one flush commit before stalling in the second (progress between
    // kills). Once it has ended, stall in the first: the rows the previous process was killed with
    // are uncommitted, so the first flush is never empty.
    // A child that exits on its own before stalling (it could not reach a broker that another
    // suite's fault test is restarting) is started again, a few times; a timeout is a failure.
    for (let attempt = 0; ; attempt++) {
      const child = spawnAggregator({ ...env, AGGREGATOR_TEST_STALL_AT: at, AGGREGATOR_TEST_STALL_ON_FLUSH: streaming ? '2' : '1' });
      try {
        const line = await child.waitFor((l) => l.msg === 'test stall', 60_000);
        expect(line.at).toBe(at);
        break;
      } catch (err) {
        if (child.proc.exitCode === null || attempt >= 3) throw err;
      } finally {
        await child.kill('SIGKILL');
      }
    }
    kills++;
  }
  await stream;
  // The last, clean process finishes the stream; restarted (a few times) if it exits on its own.
  let last = spawnAggregator(env);
  const done = waitAllCommitted(kafka, env.AGGREGATOR_GROUP_ID!, topic, 120_000);
  try {
    for (let restarts = 0; ; restarts++) {
      const proc = last.proc;
      const exited = new Promise<'exited'>((r) => (proc.exitCode !== null || proc.signalCode !== null ? r('exited') : proc.once('exit', () => r('exited'))));
      if ((await Promise.race([done.then(() => 'done' as const), exited])) === 'done') break;
      if (restarts >= 3) throw new Error(`the last aggregator kept exiting:\n${last.lines.slice(-10).join('\n')}`);
      last = spawnAggregator(env);
    }
  } finally {
    await last.kill('SIGTERM');
    await done.catch(() => undefined);
  }
  const store = await openStore(storeOptionsFrom(aggregatorConfig(env)));
  try {
    return { kills, results: await reportsVsOracle(store, pop.counted, K) };
  } finally {
    await store.close();
  }
}

describe('aggregator killed with SIGKILL in every failure window', () => {
  it('ends with aggregates equal to the oracle', async () => {
    const pop = generatePopulation({ seed: 4, devicesPerDay: 300 });
    const { kills, results } = await crashScenario(pop, ['before_insert', 'during_insert', 'after_insert', 'during_insert', 'after_insert']);
    expect(kills).toBe(5);
    for (const r of results) expect(r.got, `${r.req.report} by ${r.req.by.join(',') || 'none'}`).toEqual(r.want);
  });

  it('negative control: counting delivered rows (AGGREGATOR_UNSAFE_COUNT_ROWS) double counts after the same kills', async () => {
    // No duplicates in the input: any excess comes from rows re-inserted after a kill.
    const pop = generatePopulation({ seed: 5, devicesPerDay: 300, duplicateShare: 0 });
    const { results } = await crashScenario(pop, ['after_insert', 'after_insert'], { AGGREGATOR_UNSAFE_COUNT_ROWS: 'true' });
    const total = results.find((r) => r.req.report === 'crash-rate' && r.req.by.length === 0)!;
    expect(total.got).toHaveLength(1);
    expect(total.want).toHaveLength(1);
    expect(Number(total.got[0]!.sessions)).toBeGreaterThan(Number(total.want[0]!.sessions));
    // Devices stay exact even here (distinct daily tokens), which is the point of the design.
    expect(total.got[0]!.device_days).toBe(total.want[0]!.device_days);
  });
});
