// Password rotation without restarts (stack/README.md, "Rotation"; tools/secrets.ts). On a secured stack of
// this test's own (own home and ports: the shared one keeps its passwords), a running aggregator (in
// this process, the services' own code: startAggregator, kafkaClientOptions, the ServerStore) and a
// producer logged in as ingest keep working while the aggregator's and ingest's Kafka passwords and the
// aggregator's ClickHouse password are rotated; clients built before the rotation open new connections
// with the new password. No new password is on a command line while the rotation runs.
// Negative controls: with the re-read switched off (a Kafka client that keeps the password it read, a
// store given the password instead of the file), a new connection after the rotation is refused.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import kafkajs, { type Producer } from 'kafkajs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadAggregatorConfig } from '../aggregator/config.ts';
import { utcDay } from '../aggregator/facts.ts';
import { startAggregator, type RunningAggregator } from '../aggregator/main.ts';
import { ServerStore } from '../aggregator/store-server.ts';
import { storeOptionsFrom } from '../aggregator/store-open.ts';
import { loadConfig } from '../runtime/config.ts';
import { kafkaClientOptions } from '../runtime/kafka.ts';
import { pipelineSettings } from '../runtime/pipeline-settings.ts';
import type { EventFact } from '../schemas/contract.ts';
import { factRecords, waitAllCommitted } from '../testing/harness.ts';
import { runScript } from '../testing/services.ts';
import { parseTarget, rotateSecret } from '../tools/secrets.ts';
import { toClickHouseError } from './clickhouse-errors.ts';
import { loadStackConfig } from './config.ts';
import {
  clickhousePasswordFile,
  downSecure,
  kafkaPasswordFile,
  readSecrets,
  scratchSecureConfig,
  secureClickHouse,
  secureKafka,
  secureServiceEnv,
  upSecure,
} from './secure.ts';
import { secretHits, startSampler } from './secrets-sampler.ts';

const { Kafka, logLevel } = kafkajs;

const base = loadStackConfig();
const home = mkdtempSync(path.join(tmpdir(), 'secrets-rotation-'));
const config = scratchSecureConfig(base, home, 19720);
const topic = pipelineSettings.PIPELINE_TOPIC_EVENTS.default;
const group = 'telemetry-aggregator';
const app = `rot${randomBytes(3).toString('hex')}`;

let agg: RunningAggregator | undefined;
let producer: Producer | undefined;

beforeAll(async () => {
  await upSecure(config);
}, 240_000);

afterAll(async () => {
  await producer?.disconnect().catch(() => {});
  await agg?.stop().catch(() => {});
  await downSecure(config).catch(() => {});
  rmSync(home, { recursive: true, force: true });
}, 120_000);

/** Kafka client options the way ingest and the aggregator build them, from their settings. */
function serviceKafka(role: 'ingest' | 'aggregator', opts: { rereadPasswordFile?: boolean } = {}) {
  const cfg = loadConfig(pipelineSettings, { prefixes: ['PIPELINE_'], env: secureServiceEnv(config, role) });
  return new Kafka({
    clientId: `rotation-${role}`,
    brokers: cfg.PIPELINE_KAFKA_BROKERS,
    ...kafkaClientOptions(cfg, opts),
    logLevel: logLevel.NOTHING,
    connectionTimeout: 5000,
    retry: { retries: 1, initialRetryTime: 100, maxRetryTime: 500 },
  });
}

function facts(devices: number, day: number, tag: string): EventFact[] {
  return Array.from({ length: devices }, (_, i) => ({
    event_key: Buffer.from(`${tag}-${i}-key`.padEnd(16, '.').slice(0, 16)),
    daily_token: Buffer.from(`${tag}-${i}-tok`.padEnd(16, '.').slice(0, 16)),
    day,
    kind: 'session_start' as const,
    app_id: app,
    app_version: '1',
    device_model: 'm',
    os_version: '1',
    country: 'DE',
    duration_ms: null,
    crash_signature: null,
    exception_type: null,
  }));
}

async function send(p: Producer, list: EventFact[]): Promise<void> {
  await p.send({ topic, acks: -1, messages: factRecords(list).map((r) => ({ key: r.key, value: r.value })) });
}

async function devicesSeen(): Promise<number> {
  const admin = secureClickHouse(config, 'default');
  try {
    const rows = await (
      await admin.query({ query: `SELECT toString(uniqExactMerge(devices)) AS n FROM analytics.daily_agg WHERE app_id = '${app}'`, format: 'JSONEachRow' })
    ).json<{ n: string }>();
    return Number(rows[0]?.n ?? 0);
  } finally {
    await admin.close();
  }
}

async function settled(devices: number): Promise<void> {
  await waitAllCommitted(secureKafka(config, 'operator'), group, topic, 60_000);
  const deadline = Date.now() + 30_000;
  while ((await devicesSeen()) !== devices) {
    if (Date.now() > deadline) throw new Error(`ClickHouse shows ${await devicesSeen()} devices of ${app}, expected ${devices}`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

async function connects(kafka: InstanceType<typeof Kafka>): Promise<{ ok: true } | { ok: false; error: string }> {
  const admin = kafka.admin();
  try {
    await admin.connect();
    await admin.listTopics();
    return { ok: true };
  } catch (e) {
    return { ok: false, error: `${(e as Error).name}: ${(e as Error).message}` };
  } finally {
    await admin.disconnect().catch(() => {});
  }
}

describe('rotation of Kafka and ClickHouse passwords while the services run', () => {
  it('the aggregator and a producer keep working; clients made before the rotation log in with the new password; none of it on a command line', async () => {
    const today = utcDay(Date.now());
    const aggCfg = loadAggregatorConfig({
      ...secureServiceEnv(config, 'aggregator'),
      AGGREGATOR_PORT: '0',
      AGGREGATOR_FLUSH_INTERVAL_MS: '200',
      AGGREGATOR_RETRY_INITIAL_MS: '100',
      AGGREGATOR_RETRY_MAX_MS: '1000',
      AGGREGATOR_LOG_LEVEL: 'error',
    });
    expect(aggCfg.AGGREGATOR_CLICKHOUSE_URL).toMatch(/^https:/);
    agg = await startAggregator(aggCfg);
    const ingestKafka = serviceKafka('ingest');
    producer = ingestKafka.producer();
    await producer.connect();
    await send(producer, facts(3, today, 'before'));
    await settled(3);

    // Built before the rotation: the negative controls' clients.
    const frozenKafka = serviceKafka('ingest', { rereadPasswordFile: false });
    const frozenStore = new ServerStore({ ...storeOptionsFrom(aggCfg), passwordFile: '' });
    const laterKafka = serviceKafka('ingest');
    const old = readSecrets(config)!;

    const sampler = startSampler({ intervalMs: 20 });
    const rotated = [];
    try {
      for (const t of ['kafka:ingest', 'kafka:aggregator', 'clickhouse:aggregator']) rotated.push(await rotateSecret(config, parseTarget(t)));
    } finally {
      const report = await sampler.stop();
      const now = readSecrets(config)!;
      expect([now.kafka.ingest, now.kafka.aggregator, now.clickhouse.aggregator]).not.toContain(old.kafka.ingest);
      expect(now.kafka.ingest).not.toBe(old.kafka.ingest);
      expect(now.kafka.aggregator).not.toBe(old.kafka.aggregator);
      expect(now.clickhouse.aggregator).not.toBe(old.clickhouse.aggregator);
      // The rotation's own Kafka tool ran while sampling, with files, not passwords, on its command line.
      expect(report.cmdlines.some((c) => c.includes('org.apache.kafka.tools.ConfigCommand') && c.includes('--add-config-file'))).toBe(true);
      expect(
        secretHits(report, {
          'new ingest password': now.kafka.ingest,
          'new aggregator password': now.kafka.aggregator,
          'new clickhouse password': now.clickhouse.aggregator,
          'operator password': now.kafka.operator,
        }),
      ).toEqual([]);
    }
    expect(rotated.map((r) => r.target)).toEqual(['kafka:ingest', 'kafka:aggregator', 'clickhouse:aggregator']);
    expect(readFileSync(kafkaPasswordFile(config, 'ingest'), 'utf8').trim()).toBe(readSecrets(config)!.kafka.ingest);
    expect(readFileSync(clickhousePasswordFile(config, 'aggregator'), 'utf8').trim()).toBe(readSecrets(config)!.clickhouse.aggregator);

    // The open connection keeps producing; the aggregator keeps consuming and inserting (its store reads
    // the new ClickHouse password from the file).
    await send(producer, facts(2, today, 'after'));
    await settled(5);
    expect(agg.aggregator.ready()).toMatchObject({ ok: true });

    // New connections of clients made before the rotation: the new password, read at authentication.
    expect(await connects(laterKafka)).toEqual({ ok: true });
    await producer.disconnect();
    producer = ingestKafka.producer();
    await producer.connect();
    await send(producer, facts(1, today, 'reconnected'));
    await settled(6);
    const store = new ServerStore(storeOptionsFrom(aggCfg)); // options (and password) read before the rotation
    try {
      expect(await store.query<{ n: number }>('SELECT 1 AS n')).toEqual([{ n: 1 }]);
    } finally {
      await store.close();
    }

    // Negative controls: the re-read switched off.
    const frozen = await connects(frozenKafka);
    expect(frozen.ok).toBe(false);
    expect(frozen.ok ? '' : frozen.error).toMatch(/SASL SCRAM SHA512 authentication failed|invalid credentials/i);
    try {
      const e = await frozenStore.query('SELECT 1').catch((err: unknown) => err);
      expect(toClickHouseError((e as { cause?: unknown }).cause ?? e)?.type).toBe('WRONG_PASSWORD');
    } finally {
      await frozenStore.close();
    }
  }, 180_000);

  it('the command line: `npm run secrets -- rotate clickhouse:analyst` prints no password; a bad target is exit 2', async () => {
    const env = {
      STACK_HOME: home,
      STACK_SECURE_KAFKA_PORT: String(config.secure.kafkaPort),
      STACK_SECURE_KAFKA_CONTROLLER_PORT: String(config.secure.kafkaControllerPort),
      STACK_SECURE_CLICKHOUSE_HTTP_PORT: String(config.secure.httpPort),
      STACK_SECURE_CLICKHOUSE_TCP_PORT: String(config.secure.tcpPort),
      STACK_SECURE_CLICKHOUSE_INTERSERVER_PORT: String(config.secure.interserverPort),
    };
    const before = readSecrets(config)!.clickhouse.analyst;
    const r = await runScript('tools/secrets.ts', ['rotate', 'clickhouse:analyst'], env);
    expect(r.code, r.output).toBe(0);
    expect(r.output).toMatch(/rotated clickhouse:analyst/);
    const after = readSecrets(config)!.clickhouse.analyst;
    expect(after).not.toBe(before);
    expect(r.output.includes(after) || r.output.includes(before)).toBe(false);
    const an = secureClickHouse(config, 'analyst');
    try {
      expect(await (await an.query({ query: 'SELECT 1 AS n', format: 'JSONEachRow' })).json()).toEqual([{ n: 1 }]);
    } finally {
      await an.close();
    }
    const bad = await runScript('tools/secrets.ts', ['rotate', 'kafka:broker'], env);
    expect(bad.code).toBe(2);
    expect(bad.output).toMatch(/not a principal of a service/);
  }, 60_000);
});
