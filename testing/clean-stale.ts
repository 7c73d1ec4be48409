/**
 * `npm run stack:clean [-- --dry-run] [--older-than-hours N]`: deletes what killed test and bench runs
 * left on the local stack: topics (the single node and the three-broker cluster, each when it runs) and
 * ClickHouse databases whose names a tracked run made (testing/leftovers.ts `staleMadeNames`) more
 * than N hours ago (default 2; no run lasts that long). Every other name stays.
 *
 * Why: a run that is killed skips its cleanup, and a broker pays for every partition it holds on each
 * fetch; 354 such topics on the three-broker cluster had tripled its CPU per event under bench:ingest
 * (ingest/README.md, "The aims, and what holds them back").
 */
import { parseArgs } from 'node:util';
import { kafkaBrokerIds } from '../stack/kafka.ts';
import { deleteTopics, dropDatabases, listDatabases, listTopics } from './cleanup.ts';
import { staleMadeNames } from './leftovers.ts';
import { stackInfo } from './stack.ts';

const args = parseArgs({ options: { 'dry-run': { type: 'boolean' }, 'older-than-hours': { type: 'string' } } }).values;
const hours = Number(args['older-than-hours'] ?? 2);
if (!(hours > 0)) throw new Error(`--older-than-hours ${args['older-than-hours']}: expected a positive number`);
const dry = args['dry-run'] === true;
const now = Date.now();
const info = stackInfo();
/** The names for the log line: every one on a dry run, the first ten otherwise. */
const names = (xs: string[]) => {
  const shown = dry ? xs : xs.slice(0, 10);
  return xs.length === 0 ? '' : `: ${shown.join(', ')}${xs.length > shown.length ? `, and ${xs.length - shown.length} more` : ''}`;
};

// Either may be stopped (`stack:up -- --brokers 3` starts the cluster alone): each is cleaned if it answers.
const kafkas: string[][] = [];
for (const brokers of [info.kafkaBrokers, info.clusterBrokers]) {
  if ((await kafkaBrokerIds(brokers)).length > 0) kafkas.push(brokers);
  else console.log(`skipping ${brokers.join(',')}: no broker answers`);
}
for (const brokers of kafkas) {
  const stale = staleMadeNames(await listTopics(brokers), now, hours * 3_600_000);
  console.log(`${dry ? 'would delete' : 'deleting'} ${stale.length} topic(s) on ${brokers.join(',')}${names(stale)}`);
  // Hundreds of topics may go at once: a minute per slice of 100 rather than the per-file cleanup's 15 s.
  if (!dry) await deleteTopics(brokers, stale, 60_000);
}

const dbs = staleMadeNames(await listDatabases(info.clickhouseUrl), now, hours * 3_600_000);
console.log(`${dry ? 'would drop' : 'dropping'} ${dbs.length} database(s) on ${info.clickhouseUrl}${names(dbs)}`);
if (!dry) await dropDatabases(info.clickhouseUrl, dbs);
