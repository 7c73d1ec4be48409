/**
 * `npm run stack:clean` against the real single-node Kafka and ClickHouse: what a killed run left two
 * hours ago is deleted; a name of a run still going, and a name made without a run tag, stay.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import { listDatabases, listTopics } from './cleanup.ts';
import { createClickHouse, createKafka, createTopics, stackInfo, uniqueName } from './stack.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const HOUR = 3_600_000;
/** A name as uniqueName() made it inside a run tagged `rzzz999`, `hoursAgo` hours ago. */
const madeBy = (prefix: string, hoursAgo: number) => `${prefix}_rzzz999_${(Date.now() - hoursAgo * HOUR).toString(36)}_1a2b3c4d5e`;

const stale = { topic: madeBy('cleantest_t', 3), db: madeBy('cleantest_d', 3) };
const recent = madeBy('cleantest_t', 0.5);
const untagged = `cleantest_untagged_${Date.now().toString(36)}`;

afterAll(async () => {
  const admin = createKafka(uniqueName('clean_admin')).admin();
  await admin.connect();
  const left = (await admin.listTopics()).filter((t) => [stale.topic, recent, untagged].includes(t));
  if (left.length > 0) await admin.deleteTopics({ topics: left, timeout: 15_000 });
  await admin.disconnect();
  const ch = createClickHouse();
  await ch.command({ query: `DROP DATABASE IF EXISTS ${stale.db}` });
  await ch.close();
});

describe('npm run stack:clean', () => {
  it('deletes what a killed run left hours ago, and nothing of a run still going or made without a run tag', async () => {
    await createTopics([stale.topic, recent, untagged]);
    const ch = createClickHouse();
    await ch.command({ query: `CREATE DATABASE ${stale.db}` });
    await ch.close();

    const dry = execFileSync('npm', ['run', '-s', 'stack:clean', '--', '--dry-run'], { cwd: ROOT, encoding: 'utf8' });
    expect(dry).toContain(stale.topic);
    expect(dry).toContain(stale.db);
    expect(await listTopics(stackInfo().kafkaBrokers)).toContain(stale.topic);

    execFileSync('npm', ['run', '-s', 'stack:clean'], { cwd: ROOT, encoding: 'utf8' });
    const topics = await listTopics(stackInfo().kafkaBrokers);
    expect(topics).not.toContain(stale.topic);
    expect(topics).toContain(recent);
    expect(topics).toContain(untagged);
    expect(await listDatabases(stackInfo().clickhouseUrl)).not.toContain(stale.db);
  });
});
