/**
 * Real Prometheus (`stack:up -- --monitoring`, stack/monitoring.ts) evaluating the project's own alert
 * rules (deploy/prometheus/alerts.yml) against a real ingest worker: with Kafka stopped, the
 * Kafka-unavailable alert (IngestKafkaNotReady) fires within its `for` plus one scrape and one
 * evaluation interval, not before its `for`, and resolves once Kafka is back. Silent case first: with
 * Kafka up and the worker scraped, the alert is not even pending.
 *
 * The Kafka stopped here is one of this file's own (testing/stack.ts startOwnKafka): the single node
 * the other suites share keeps running.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { loadIngestConfig } from '../ingest/config.ts';
import { startIngest, type IngestService } from '../ingest/http.ts';
import { batch, containerOf } from '../testing/batches.ts';
import { quietLogger } from '../testing/logger.ts';
import { monitorTarget, startMonitoring, startOwnKafka, uniqueName, type OwnKafka } from '../testing/stack.ts';
import { RULE_FILE, SCRAPE_INTERVAL_S } from './monitoring.ts';
import { QUICK_MIX } from '../testing/mix.ts';

const ALERT = 'IngestKafkaNotReady';

/** The rule's `for`, read from the rule file Prometheus loads (not a copy). */
function ruleForSeconds(): number {
  const doc = YAML.parse(readFileSync(RULE_FILE, 'utf8')) as { groups: { rules: { alert?: string; for?: string }[] }[] };
  const rule = doc.groups.flatMap((g) => g.rules).find((r) => r.alert === ALERT);
  const m = /^(\d+)([smh])$/.exec(rule?.for ?? '');
  if (!m) throw new Error(`${ALERT} has no for: in ${RULE_FILE}`);
  return Number(m[1]) * { s: 1, m: 60, h: 3600 }[m[2] as 's' | 'm' | 'h'];
}

interface PromAlert {
  labels: Record<string, string>;
  state: 'pending' | 'firing';
  activeAt: string;
}

let promUrl: string;
let kafka: OwnKafka | undefined;
let svc: IngestService | undefined;
let unregister: (() => void) | undefined;
let instance: string;

async function alertsFor(inst: string): Promise<PromAlert[]> {
  const res = await fetch(`${promUrl}/api/v1/alerts`);
  const body = (await res.json()) as { data: { alerts: PromAlert[] } };
  return body.data.alerts.filter((a) => a.labels.alertname === ALERT && a.labels.instance === inst);
}

async function query(q: string): Promise<number | undefined> {
  const res = await fetch(`${promUrl}/api/v1/query?query=${encodeURIComponent(q)}`);
  const body = (await res.json()) as { data: { result: { value: [number, string] }[] } };
  const v = body.data.result[0]?.value[1];
  return v === undefined ? undefined : Number(v);
}

async function waitFor<T>(what: string, timeoutMs: number, probe: () => Promise<T | undefined>): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const v = await probe();
    if (v !== undefined) return v;
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`);
    await sleep(500);
  }
}

async function postBatch(): Promise<number> {
  const res = await fetch(`${svc!.url}/v1/batches`, { method: 'POST', headers: { 'content-type': 'avro/binary' }, body: containerOf(batch({ events: 5 })) });
  await res.arrayBuffer();
  return res.status;
}

beforeAll(async () => {
  promUrl = await startMonitoring();
  kafka = await startOwnKafka(uniqueName('alerts_kafka'));
  svc = await startIngest(
    loadIngestConfig({
      PIPELINE_KAFKA_BROKERS: kafka.brokers.join(','),
      PIPELINE_TOPIC_EVENTS: uniqueName('alerts_ev'),
      PIPELINE_TOPIC_PERSONAL_PREFIX: `${uniqueName('alerts_p')}_`,
      PIPELINE_TOPIC_REJECTS_PREFIX: `${uniqueName('alerts_r')}_`,
      PIPELINE_TOPIC_RIGHTS_PREFIX: `${uniqueName('alerts_rt')}_`,
      INGEST_PORT: '0',
      INGEST_POOL_THREADS: '1',
      INGEST_TOPIC_PARTITIONS: '1',
      INGEST_ZONES_SHARE_MAIN_CLUSTER: 'true',
      INGEST_UNSAFE_UNSEALED: 'true', // alerts only: no key store needed
      INGEST_UNSAFE_PLAINTEXT_HTTP: 'true', // Prometheus scrapes it over plain HTTP on loopback
      ...QUICK_MIX, // testing/mix.ts: a lone batch need not wait for a crowd here
      // A batch Kafka does not take is answered 503 after 3 s (default 10 s): the gauge drops sooner.
      INGEST_PRODUCE_TIMEOUT_MS: '3000',
    }),
    { log: quietLogger, tokenKeys: { kind: 'file', dir: mkdtempSync(join(tmpdir(), 'alerts-keys-')) } },
  );
  instance = new URL(svc.url).host;
  unregister = monitorTarget('ingest', instance, uniqueName('alerts_ingest'));
});

afterAll(async () => {
  unregister?.();
  await svc?.close();
  await kafka?.remove();
});

describe('real Prometheus with the project alert rules', () => {
  it(`${ALERT} is silent while Kafka answers, fires within its for + one scrape and evaluation after Kafka stops, resolves after it is back`, async () => {
    const forS = ruleForSeconds();
    expect(await postBatch()).toBe(200);
    // Scraped, with the gauge at 1, for several evaluations: the silent case.
    await waitFor('Prometheus to scrape the worker with ingest_kafka_ready 1', 60_000, async () =>
      (await query(`ingest_kafka_ready{instance="${instance}",job="ingest"}`)) === 1 ? true : undefined,
    );
    await sleep(3 * SCRAPE_INTERVAL_S * 1000);
    expect(await query(`up{instance="${instance}",job="ingest"}`)).toBe(1);
    expect(await alertsFor(instance)).toEqual([]);

    await kafka!.stop();
    // The worker learns of the outage at its next produce: a device's batch answered 503.
    expect(await postBatch()).toBe(503);
    const down = Date.now();

    const pending = await waitFor('the alert to be pending', 3 * SCRAPE_INTERVAL_S * 1000, async () =>
      (await alertsFor(instance)).find((a) => a.state === 'pending'),
    );
    const firing = await waitFor('the alert to fire', (forS + 3 * SCRAPE_INTERVAL_S) * 1000, async () =>
      (await alertsFor(instance)).find((a) => a.state === 'firing'),
    );
    const firedAfterS = (Date.now() - down) / 1000;
    console.log(
      `${ALERT}: pending ${((Date.parse(pending.activeAt) - down) / 1000).toFixed(1)} s after the first 503, firing after ${firedAfterS.toFixed(1)} s (for: ${forS} s, scrape and evaluation every ${SCRAPE_INTERVAL_S} s)`,
    );
    expect(firing.labels.severity).toBe('critical');
    expect(firedAfterS).toBeGreaterThanOrEqual(forS - 1);
    // for + one scrape (the 0 is seen) + one evaluation (the rule sees it) + this poll's 0.5 s.
    expect(firedAfterS).toBeLessThanOrEqual(forS + 2 * SCRAPE_INTERVAL_S + 1);

    await kafka!.start();
    const back = await waitFor('a batch answered 200 again', 90_000, async () => ((await postBatch()) === 200 ? Date.now() : undefined));
    await waitFor('the alert to resolve', 3 * SCRAPE_INTERVAL_S * 1000, async () => ((await alertsFor(instance)).length === 0 ? true : undefined));
    console.log(`${ALERT}: resolved ${((Date.now() - back) / 1000).toFixed(1)} s after the first 200`);
    expect(await query(`ingest_kafka_ready{instance="${instance}",job="ingest"}`)).toBe(1);
  }, 300_000);
});
