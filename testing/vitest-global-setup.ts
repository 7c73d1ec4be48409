// Vitest global setup of the integration project: makes sure a Kafka and a ClickHouse answer before any
// *.int.test.ts runs. KAFKA_BROKERS / CLICKHOUSE_URL point at existing services and skip starting the
// local one for that part. A local stack already running is reused. Nothing is stopped at the end: a
// developer keeps a warm stack between runs, and .ci/run calls `npm run stack:down` itself.
//
// It also tags the run (TESTING_RUN_TAG, which uniqueName() puts into every name it makes) and, when
// the run ends, fails it if any topic or database carrying that tag is still there: on the single node,
// on the three-broker cluster when it runs then, and in ClickHouse (testing/leftovers.ts has the rule;
// testing/vitest-file-cleanup.ts deletes each file's names after the file).
import { clickhouseAnswers } from '../stack/clickhouse.ts';
import { externalServices, loadStackConfig } from '../stack/config.ts';
import { StackError } from '../stack/errors.ts';
import { kafkaBrokerIds } from '../stack/kafka.ts';
import { up } from '../stack/stack.ts';
import { listStack, listTopics } from './cleanup.ts';
import { leftoverMessage, leftoversOfRun, newRunTag, RUN_TAG_ENV, type Listing } from './leftovers.ts';
import { stackInfo } from './stack.ts';

/** How long the end-of-run check waits for deletions of the last file to show in a fresh listing. */
const SETTLE_MS = 5000;

export default async function setup(): Promise<() => Promise<void>> {
  const ext = externalServices();
  if (ext.kafkaBrokers && (await kafkaBrokerIds(ext.kafkaBrokers)).length === 0) {
    throw new StackError('STACK_NOT_RUNNING', `KAFKA_BROKERS=${ext.kafkaBrokers.join(',')}: no Kafka answers there`);
  }
  if (ext.clickhouseUrl && !(await clickhouseAnswers(ext.clickhouseUrl, 3000))) {
    throw new StackError('STACK_NOT_RUNNING', `CLICKHOUSE_URL=${ext.clickhouseUrl}: no ClickHouse answers there (GET /ping)`);
  }
  if (!(ext.kafkaBrokers && ext.clickhouseUrl)) {
    const r = await up({ brokers: 1, kafka: !ext.kafkaBrokers, clickhouse: !ext.clickhouseUrl }, loadStackConfig());
    if (r.started.length > 0)
      console.log(`[stack] started ${r.started.join(', ')} in ${(r.ms / 1000).toFixed(1)} s (left running; npm run stack:down stops it)`);
  }
  // Test workers are started after this function returns and inherit the environment.
  const runTag = (process.env[RUN_TAG_ENV] ||= newRunTag());
  const atStart = await listStack();
  return () => checkNothingLeft(runTag, atStart);
}

/**
 * The end-of-run check. Vitest only logs an error thrown by a global teardown ("error during close")
 * and still exits 0, so this also sets the exit code: a run that leaves topics or databases behind fails.
 */
async function checkNothingLeft(runTag: string, atStart: Listing): Promise<void> {
  const deadline = Date.now() + SETTLE_MS;
  for (;;) {
    let now: Awaited<ReturnType<typeof listStack>>;
    try {
      now = await listStack();
    } catch (e) {
      // A stopped Kafka/ClickHouse at the end (a fault test that failed half-way) is reported, not hidden.
      process.exitCode = 1;
      throw new Error(`end-of-run check: cannot list the stack's topics and databases: ${(e as Error).message}`, { cause: e });
    }
    const report = leftoversOfRun(now, atStart, runTag);
    const message = leftoverMessage(report, now) ?? (await clusterLeftovers(runTag));
    if (!message) {
      const others = [...report.othersNew.topics, ...report.othersNew.databases];
      if (others.length > 0) console.log(`[cleanup] new during this run but not made by it (left alone): ${others.join(', ')}`);
      return;
    }
    if (Date.now() > deadline) {
      process.exitCode = 1;
      throw new Error(message);
    }
    await new Promise((r) => setTimeout(r, 500));
  }
}

/**
 * This run's names still on the three-broker cluster, when it answers at the end (tests start it and
 * leave it running, like the single node). Only tagged names count there: the cluster is not listed at
 * the start, so names of others are not told apart from its own.
 */
async function clusterLeftovers(runTag: string): Promise<string | undefined> {
  const brokers = stackInfo().clusterBrokers;
  if ((await kafkaBrokerIds(brokers)).length === 0) return undefined;
  const none: Listing = { topics: [], databases: [] };
  const report = leftoversOfRun({ topics: await listTopics(brokers), databases: [] }, none, runTag);
  return leftoverMessage(report, { kafka: brokers.join(','), clickhouse: '' });
}
