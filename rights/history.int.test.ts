/**
 * Access (policy 5.2) finds the records an older personal schema wrote, with their old fields, against
 * the real local Kafka and key store. The records are what an ingest wrote with the map from before
 * crash traces and app statuses became never stored (kept 30 days in the p30d record): its split, sealed
 * under the device's key and produced to the zone's p30d topic, beside a record of the current split.
 * `npm run rights -- access` must print both, the old one as written (schemas/doc.ts keeps that
 * schema in avro/generated/history/); without the history it fails on the old record's fingerprint.
 */
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadIngestConfig } from '../ingest/config.ts';
import { CATEGORIES, compileSplit, RecordCodec, type CategoryMap, type CompiledSplit, type SplitResult } from '../schemas/index.ts';
import { historicalWriters } from '../schemas/doc.ts';
import { fingerprintOf } from '../schemas/wire.ts';
import { batch, device, event, NOW } from '../testing/schema-fixtures.ts';
import { sealingEnv, sealingSpecOf } from '../testing/sealing.ts';
import { runScript } from '../testing/services.ts';
import { createKafka, createTopics, readAll, stackInfo, uniqueName } from '../testing/stack.ts';
import { tokenizer } from '../testing/tokenizer.ts';
import { parseRightsArgs, Rights } from '../tools/rights.ts';
import { openRecords } from './open.ts';
import { openSealer } from './sealer.ts';

const sealing = sealingEnv();
const prefix = uniqueName('rights_hist');
const zone = 'cn';
const env: Record<string, string> = {
  ...sealing.env,
  PIPELINE_KAFKA_BROKERS: stackInfo().kafkaBrokers.join(','),
  PIPELINE_TOPIC_EVENTS: `${prefix}_ev`,
  PIPELINE_TOPIC_PERSONAL_PREFIX: `${prefix}_p.`,
  PIPELINE_TOPIC_REJECTS_PREFIX: `${prefix}_r.`,
  PIPELINE_TOPIC_RIGHTS_PREFIX: `${prefix}_rt.`,
  INGEST_ZONES_SHARE_MAIN_CLUSTER: 'true',
  INGEST_TOKEN_KEY_DIR: mkdtempSync(join(tmpdir(), 'rights-hist-token-keys-')),
};
const topic = (cls: string) => `${prefix}_p.${zone}.${cls}`;

/**
 * The map before crash traces and app statuses became never stored (P0D): crash traces and app statuses
 * kept 30 days in the device record, and the events' days with them (before event times left it).
 */
const mapBefore = (): CategoryMap => ({
  ...(CATEGORIES as CategoryMap),
  crash_logs: { ...CATEGORIES.crash_logs, retention: 'P30D' },
  app_usage_facts: { ...CATEGORIES.app_usage_facts, retention: 'P30D' },
  event_time: { ...CATEGORIES.event_time, deviceRecord: undefined, personalPrecision: 'day' },
});
const before = compileSplit({ categories: mapBefore() });
const now = compileSplit();
/** The writer fingerprint of the current p30d schema (the header of the records it writes). */
const currentP30d = fingerprintOf(now.personalClasses.find((c) => c.name === 'p30d')!.type).toString('hex');

const deviceId = `dev-hist-${Date.now().toString(36)}`;
const sealed = openSealer({ ...sealingSpecOf(sealing), cacheTtlMs: 0 });
const kafka = createKafka();

/** One batch of the device through a split, sealed as ingest seals it, onto the zone's personal topics. */
async function ingestWith(split: CompiledSplit, hoursAgo: number): Promise<SplitResult> {
  const at = NOW - hoursAgo * 3_600_000;
  const b = batch(8, { device: device({ device_id: deviceId }), sent_at: at - 1000, events: Array.from({ length: 8 }, (_, i) => event(i, at - 60_000 + i)) });
  const r = split.processBatch(b, { receivedAt: at, clientIp: '203.0.113.7', tokenizer: tokenizer() });
  expect(r.rejected).toEqual([]);
  await sealed.sealer.sealResult(r);
  const producer = kafka.producer({ idempotent: true, maxInFlightRequests: 1 });
  await producer.connect();
  try {
    for (const p of r.personal) await producer.send({ topic: topic(p.retentionClass), acks: -1, messages: [{ key: p.key, value: p.value }] });
  } finally {
    await producer.disconnect();
  }
  return r;
}

beforeAll(async () => {
  await createTopics([topic('p30d'), topic('p7d'), `${prefix}_r.${zone}`]);
  await ingestWith(before, 5); // before the deploy
  await ingestWith(now, 1); // after it
}, 120_000);
afterAll(async () => {
  await sealed.stores.close();
  await sealing.drop();
});

type Line = { kind: string; topic: string; schema: string; record: Record<string, unknown> };

describe('access reads the records of every personal schema version (policy 5.2, schemas/doc.ts history)', () => {
  it('npm run rights -- access prints the old p30d record with its crash traces and app statuses, and the current one', async () => {
    const out = join(mkdtempSync(join(tmpdir(), 'rights-hist-')), 'access.jsonl');
    const r = await runScript('tools/rights.ts', ['access', '--device-id', deviceId, '--zone', zone, '--out', out], env, 120_000);
    expect(r.code, r.stderrLines.join('\n')).toBe(0);
    const lines = readFileSync(out, 'utf8')
      .trim()
      .split('\n')
      .map((l) => JSON.parse(l) as Line);
    const p30d = lines.filter((l) => l.kind === 'p30d');
    expect(p30d.map((l) => l.schema).sort()).toEqual(['51101d3ffbd085d2', currentP30d].sort());
    const old = p30d.find((l) => l.schema === '51101d3ffbd085d2')!.record;
    expect(old.events_app_status).toEqual([{ package: 'com.tencent.mm', version: '8.0.40' }]);
    expect(old.events_crash).toEqual([{ stack_trace: 'at com.miui.weather2.Main.onCreate(Main.java:42)' }]);
    expect((old.device as { device_id: string }).device_id).toBe(deviceId);
    const current = p30d.find((l) => l.schema === currentP30d)!.record;
    expect(Object.keys(current)).not.toContain('events_crash');
    expect((current.device as { device_id: string }).device_id).toBe(deviceId);
    expect(lines.filter((l) => l.kind === 'p7d')).toHaveLength(2); // the client IP of each batch
    const summary = JSON.parse(r.stderrLines.join('\n')) as Record<string, unknown>;
    expect(summary[zone]).toMatchObject({ records: 4, unreadable: 0, older_schema: 1 });
  });

  it('negative control: the same access without the history fails on the old record (SCHEMA_UNKNOWN_FINGERPRINT)', async () => {
    const rights = new Rights(loadIngestConfig(env), () => {});
    try {
      const args = parseRightsArgs(['access', '--device-id', deviceId, '--zone', zone]);
      await expect(
        rights.access(
          args,
          () => {},
          () => [],
        ),
      ).rejects.toMatchObject({ code: 'SCHEMA_UNKNOWN_FINGERPRINT' });
      // With the history (the default) the same call answers.
      const written: string[] = [];
      await expect(rights.access(args, (l) => written.push(l))).resolves.toMatchObject({ [zone]: { records: 4, older_schema: 1 } });
      expect(written).toHaveLength(4);
    } finally {
      await rights.close();
    }
  });

  it('resolving the old record into the current schema (RecordCodec.addWriter) reads it but drops its old fields: why access reads each record as written', async () => {
    const opened = (await openRecords(sealed.stores, zone, await readAll(topic('p30d'), 2, 20_000))).map((x) => x.opened!);
    const p30d = now.personalClasses.find((c) => c.name === 'p30d')!;
    const codec = new RecordCodec<Record<string, unknown>>(p30d.type);
    expect(() => opened.map((v) => codec.decode(v))).toThrow(/unknown writer schema fingerprint 51101d3ffbd085d2/);
    for (const w of historicalWriters('p30d', p30d.type)) codec.addWriter(w);
    const decoded = opened.map((v) => codec.decode(v));
    expect(decoded).toHaveLength(2);
    for (const d of decoded) expect(Object.keys(d)).not.toContain('events_crash');
    expect(JSON.stringify(decoded)).not.toContain('Main.java');
  });
});
