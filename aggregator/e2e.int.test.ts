/**
 * End to end through real parts (ARCHITECTURE.md principles 5 and 7): a generated population of devices
 * posts its batches over HTTP to the real ingest service (in this process, its worker pool, the real
 * broker), ingest tokenises and splits them onto the events topic, the aggregator reads that topic into
 * ClickHouse, and the query command's output equals the oracle computed from the population, exactly. The
 * population carries retried batches (same event ids), re-sent events, events sent days late (counted in
 * their own day) and events ingest must refuse (too old, from the future). The same test body runs
 * against the ClickHouse server and against embedded chdb.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { Kafka } from 'kafkajs';
import { containerOf } from '../testing/batches.ts';
import type { IngestAnswer } from '../testing/load.ts';
import { createClickHouse, createKafka, stackInfo, uniqueName } from '../testing/stack.ts';
import { loadIngestConfig } from '../ingest/config.ts';
import { startIngest, type IngestService } from '../ingest/http.ts';
import { startAggregator, type RunningAggregator } from './main.ts';
import { DAY_MS } from '../schemas/index.ts';
import { utcDay } from './facts.ts';
import { reportsVsOracle } from '../testing/compare.ts';
import { generateDeviceBatches, type PostedBatch } from '../testing/device-batches.ts';
import { aggregatorConfig, aggregatorEnv, groupProgress, waitAllCommitted } from '../testing/harness.ts';
import { quietLogger } from '../testing/logger.ts';
import { sealingEnv } from '../testing/sealing.ts';
import { QUICK_MIX } from '../testing/mix.ts';

const K = 5;
let kafka: Kafka;
const databases: string[] = [];

beforeAll(() => {
  kafka = createKafka(uniqueName('agg_e2e'));
});
afterAll(async () => {
  const c = createClickHouse();
  for (const db of databases) await c.command({ query: `DROP DATABASE IF EXISTS ${db}` });
  await c.close();
});

/** Answers 503/429 seen (a device retries those; a 503 batch may still have reached Kafka). */
let unavailableAnswers = 0;

async function post(url: string, b: PostedBatch): Promise<{ status: number; json: IngestAnswer | undefined }> {
  // Like a device: retry 429 (overload) and 503 (Kafka away: other suites' fault tests restart the
  // shared broker) after Retry-After, for up to two minutes.
  const deadline = Date.now() + 120_000;
  for (;;) {
    const r = await fetch(`${url}/v1/batches`, { method: 'POST', headers: { 'content-type': 'avro/binary' }, body: containerOf(b.batch) });
    const text = await r.text();
    if ((r.status === 429 || r.status === 503) && Date.now() < deadline) {
      unavailableAnswers++;
      await new Promise((res) => setTimeout(res, 1000 * Number(r.headers.get('retry-after') ?? 1)));
      continue;
    }
    return { status: r.status, json: text ? (JSON.parse(text) as IngestAnswer) : undefined };
  }
}

/** Posts every batch, 8 at a time, and checks each answer against what the population expects. */
async function postAll(url: string, batches: readonly PostedBatch[]): Promise<void> {
  let next = 0;
  const worker = async () => {
    while (next < batches.length) {
      const b = batches[next++]!;
      const r = await post(url, b);
      const events = (b.batch.events as unknown[]).length;
      const refused = Object.values(b.refused).reduce((a, x) => a + x, 0);
      expect(r.status, JSON.stringify(r.json)).toBe(200);
      expect(r.json?.accepted).toBe(events - refused);
      const reasons: Record<string, number> = {};
      for (const x of r.json?.rejected as Array<{ reason: string }>) reasons[x.reason] = (reasons[x.reason] ?? 0) + 1;
      expect(reasons).toEqual(b.refused);
    }
  };
  await Promise.all(Array.from({ length: 8 }, worker));
}

describe.each(['server', 'embedded'] as const)('devices -> ingest (HTTP) -> Kafka -> aggregator -> %s', (storeKind) => {
  it('query output equals the oracle of the posted population', async () => {
    unavailableAnswers = 0;
    const pop = generateDeviceBatches({ seed: storeKind === 'server' ? 11 : 12, devicesPerDay: 80 });
    // What the population must exercise, or the test proves less than it says.
    expect(pop.batches.some((b) => b.retry)).toBe(true);
    expect(pop.batches.some((b) => b.refused.TOKEN_TOO_LATE) && pop.batches.some((b) => b.refused.TOKEN_FROM_FUTURE)).toBe(true);
    expect(new Set(pop.counted.map((f) => f.day)).size).toBe(3);
    expect(pop.acceptedDeliveries).toBeGreaterThan(pop.distinctEvents);

    const s = stackInfo();
    const topics = { events: uniqueName('agg_e2e_ev'), personal: `${uniqueName('agg_e2e_p')}_`, rejects: `${uniqueName('agg_e2e_r')}_` };
    const ingestCfg = loadIngestConfig({
      PIPELINE_KAFKA_BROKERS: s.kafkaBrokers.join(','),
      PIPELINE_TOPIC_EVENTS: topics.events,
      PIPELINE_TOPIC_PERSONAL_PREFIX: topics.personal,
      PIPELINE_TOPIC_REJECTS_PREFIX: topics.rejects,
      PIPELINE_TOPIC_RIGHTS_PREFIX: `${topics.personal}rights_`,
      ...sealingEnv().env,
      INGEST_PORT: '0',
      INGEST_POOL_THREADS: '1',
      INGEST_TOPIC_PARTITIONS: '3',
      // The local stack is one Kafka cluster: every zone's topics share it.
      INGEST_ZONES_SHARE_MAIN_CLUSTER: 'true',
      // Plain HTTP on loopback: a test setup (ingest/README.md, "TLS"; ingest/tls.int.test.ts covers HTTPS).
      INGEST_UNSAFE_PLAINTEXT_HTTP: 'true',
      ...QUICK_MIX, // testing/mix.ts: a lone batch need not wait for a crowd here
    });
    const keysDir = mkdtempSync(path.join(tmpdir(), 'agg-e2e-keys-'));
    const chdbDir = mkdtempSync(path.join(tmpdir(), 'agg-e2e-chdb-'));
    const database = uniqueName('agg_e2e');
    databases.push(database);
    const groupId = uniqueName('agg_e2e_group');
    const env = aggregatorEnv(
      { kafkaBrokers: s.kafkaBrokers, clickhouseUrl: s.clickhouseUrl },
      { topic: topics.events, groupId, database },
      {
        AGGREGATOR_MIN_GROUP_DEVICES: String(K),
        AGGREGATOR_CLICKHOUSE: storeKind,
        AGGREGATOR_CHDB_PATH: chdbDir,
      },
    );
    let svc: IngestService | undefined;
    let agg: RunningAggregator | undefined;
    try {
      // Ingest creates the topics at start; the aggregator joins while batches stream in.
      svc = await startIngest(ingestCfg, { log: quietLogger, tokenKeys: { kind: 'file', dir: keysDir } });
      agg = await startAggregator(aggregatorConfig(env));
      await postAll(svc.url, pop.batches);

      // Every accepted delivery, repeats included, is on the topic (one record per batch and day):
      // dedup is the aggregator's doing. (A batch answered 503 may have landed anyway before being
      // retried: then at least as many.)
      const progress = await groupProgress(kafka, groupId, topics.events);
      const onTopic = progress.reduce((a, p) => a + Number(p.end), 0);
      if (unavailableAnswers === 0) expect(onTopic).toBe(pop.acceptedRecords);
      else expect(onTopic).toBeGreaterThanOrEqual(pop.acceptedRecords);
      await waitAllCommitted(kafka, groupId, topics.events, 90_000);
      const read = (await agg.metrics.eventsRead.get()).values[0]?.value ?? 0;
      expect(read).toBeGreaterThanOrEqual(pop.acceptedDeliveries);

      // With chdb the aggregator's own session is the only one this process may open on its path.
      const results = await reportsVsOracle(agg.store, pop.counted, K);
      for (const r of results) {
        expect(r.want.length, `oracle has groups for ${r.req.report} by ${r.req.by.join(',')}`).toBeGreaterThan(0);
        expect(r.got, `${r.req.report} by ${r.req.by.join(',') || 'none'}`).toEqual(r.want);
      }
      // The late days are there, each in its own day.
      const perDay = results.find((r) => r.req.report === 'dau' && r.req.by.join() === 'day,app_id')!;
      const today = utcDay(Date.now());
      expect(new Set(perDay.got.map((x) => x.day)).size).toBe(3);
      expect(perDay.got.map((x) => x.day)).toContain(new Date((today - 2) * DAY_MS).toISOString().slice(0, 10));
    } finally {
      await agg?.stop();
      await svc?.close();
      rmSync(keysDir, { recursive: true, force: true });
      rmSync(chdbDir, { recursive: true, force: true });
    }
  });
});
