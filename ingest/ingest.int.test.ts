/**
 * Ingest against the real broker (stack/): batches posted over HTTP land as the right records on
 * the right topics, read back with a separate consumer and with kcat; no personal value reaches the
 * events topic; every event of a 200 is on Kafka; bad input gets its status and leaves the service
 * healthy. Each suite uses its own topic names (uniqueName), so suites never see each other's data.
 */
import { openRecords } from '../rights/open.ts';
import { ZoneStores } from '../rights/sealer.ts';
import { sealingEnv, sealingSpecOf } from '../testing/sealing.ts';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { execFileSync } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { gzipSync } from 'node:zlib';
import { decodeEventFacts } from '../schemas/index.ts';
import { readAll, stackInfo, uniqueName } from '../testing/stack.ts';
import { batch, batchType, containerOf, type BatchOptions, type TestBatch } from '../testing/batches.ts';
import type { IngestAnswer } from '../testing/load.ts';
import { quietLogger } from '../testing/logger.ts';
import { loadIngestConfig } from './config.ts';
import { startIngest, type IngestService } from './http.ts';
import { longBytes } from '../schemas/index.ts';
import { writeContainer } from '../testing/ocf-writer.ts';
import { QUICK_MIX } from '../testing/mix.ts';

interface Topics {
  events: string;
  personalPrefix: string;
  rejectsPrefix: string;
}

function newTopics(): Topics {
  return { events: uniqueName('ingest_ev'), personalPrefix: `${uniqueName('ingest_p')}_`, rejectsPrefix: `${uniqueName('ingest_r')}_` };
}

/** The stack's key stores and this file's own zone keys: personal records are sealed as in production. */
const sealing = sealingEnv();

function envFor(t: Topics, extra: Record<string, string> = {}): Record<string, string> {
  return {
    ...sealing.env,
    PIPELINE_KAFKA_BROKERS: stackInfo().kafkaBrokers.join(','),
    PIPELINE_TOPIC_EVENTS: t.events,
    PIPELINE_TOPIC_PERSONAL_PREFIX: t.personalPrefix,
    PIPELINE_TOPIC_REJECTS_PREFIX: t.rejectsPrefix,
    PIPELINE_TOPIC_RIGHTS_PREFIX: `${t.personalPrefix}rights_`,
    INGEST_PORT: '0',
    INGEST_POOL_THREADS: '1',
    INGEST_TOPIC_PARTITIONS: '2',
    // The local stack is one Kafka cluster: every zone's topics share it (policy section 6 in production: ingest/config.ts).
    INGEST_ZONES_SHARE_MAIN_CLUSTER: 'true',
    // Plain HTTP on loopback: a test setup (ingest/README.md, "TLS"; ingest/tls.int.test.ts covers HTTPS).
    INGEST_UNSAFE_PLAINTEXT_HTTP: 'true',
    ...QUICK_MIX, // testing/mix.ts: a lone batch need not wait for a crowd here
    ...extra,
  };
}

async function post(
  svc: IngestService,
  body: Buffer | string,
  headers: Record<string, string> = { 'content-type': 'avro/binary' },
): Promise<{ status: number; json: IngestAnswer | undefined; headers: Headers }> {
  const r = await fetch(`${svc.url}/v1/batches`, { method: 'POST', headers, body });
  const text = await r.text();
  return { status: r.status, json: text ? (JSON.parse(text) as IngestAnswer) : undefined, headers: r.headers };
}

/**
 * A topic's records as kcat (a Kafka client no one here wrote) reads them; -e: stop at the end. The
 * default format prints partition, offset, key length and value length: keys are binary tokens and may
 * contain newline bytes, so they are never printed raw.
 */
function kcat(topic: string, format = '%p:%o %K %S\n'): string[] {
  const out = execFileSync('kcat', ['-b', stackInfo().kafkaBrokers[0]!, '-C', '-t', topic, '-e', '-q', '-f', format], { encoding: 'latin1', timeout: 30_000 });
  return out.split('\n').filter((l) => l.length > 0);
}

/** Invariant helper: which of `needles` occur in any of `records` (key or value). */
export function personalValuesIn(records: Array<{ key: Buffer | null; value: Buffer | null }>, needles: string[]): string[] {
  const found = new Set<string>();
  for (const r of records) {
    for (const n of needles) {
      const b = Buffer.from(n, 'utf8');
      if (r.key?.includes(b) || r.value?.includes(b)) found.add(n);
    }
  }
  return [...found];
}

function personalStrings(b: TestBatch): string[] {
  const d = b.device;
  const out = [d.device_id, d.imei, d.oaid, d.gaid, d.imsi, b.batch_id];
  for (const e of b.events) out.push(e.event_id);
  return out.filter((x): x is string => typeof x === 'string');
}

/** Bad uploads with the status and code each must get, and the good container some of them are made from. */
function badInputs(): { good: Buffer; gzipBomb: Buffer; cases: Array<[string, Buffer | string, Record<string, string>, number, string]> } {
  const good = containerOf(batch({ events: 5 }), 'null');
  const flipLast = Buffer.from(good);
  flipLast[flipLast.length - 1]! ^= 0xff;
  const plain = batchType.toBuffer({ ...batch({ events: 0 }) });
  // Batch with `events` claiming 50 million items in a few bytes (the array count is the last varint).
  const arrayBomb = Buffer.concat([plain.subarray(0, plain.length - 1), longBytes(50_000_000), Buffer.alloc(8)]);
  // Batch whose first field (batch_id) claims a 1 GB string.
  const idLen = (plain[0]! >> 1) as number; // short uuid: one-byte varint
  const stringBomb = Buffer.concat([longBytes(1_000_000_000), plain.subarray(1 + idLen)]);
  const otherSchema = { type: 'record', name: 'Other', namespace: 'x', fields: [{ name: 'a', type: 'int' }] };
  const member = gzipSync(Buffer.alloc(1024 * 1024), { level: 9 });
  const gzipBomb = Buffer.concat(Array.from({ length: 1024 }, () => member)); // ~1 MiB -> 1 GiB

  const cases: Array<[string, Buffer | string, Record<string, string>, number, string]> = [
    ['truncated container', good.subarray(0, good.length - 7), {}, 400, 'INGEST_CONTAINER_TRUNCATED'],
    ['wrong sync marker', flipLast, {}, 400, 'INGEST_CONTAINER_BAD_SYNC'],
    ['unknown codec', writeContainer(batchType, [batch({ events: 2 })], { codec: 'zstandard' }), {}, 400, 'INGEST_CONTAINER_UNKNOWN_CODEC'],
    [
      'writer schema that resolves to nothing',
      writeContainer(batchType, [], { schemaJson: JSON.stringify(otherSchema), rawDatums: [Buffer.from([0x02])] }),
      {},
      400,
      'INGEST_WRITER_SCHEMA_UNRESOLVABLE',
    ],
    ['gzip bomb 1 MiB -> 1 GiB', gzipBomb, { 'content-encoding': 'gzip' }, 413, 'INGEST_DECOMPRESSED_TOO_LARGE'],
    ['body over the limit', Buffer.alloc(3 * 1024 * 1024), {}, 413, 'INGEST_BODY_TOO_LARGE'],
    ['Avro array bomb', writeContainer(batchType, [], { rawDatums: [arrayBomb] }), {}, 400, 'INGEST_AVRO_INVALID'],
    ['Avro string bomb', writeContainer(batchType, [], { rawDatums: [stringBomb] }), {}, 400, 'INGEST_AVRO_INVALID'],
    ['invalid JSON', '{"batch_id": ', { 'content-type': 'application/json' }, 400, 'INGEST_BAD_JSON'],
    ['empty batch', containerOf(batch({ events: 0 })), {}, 400, 'INGEST_BATCH_EMPTY'],
    ['empty body', Buffer.alloc(0), {}, 400, 'INGEST_BODY_EMPTY'],
    ['unknown content type', 'x', { 'content-type': 'text/csv' }, 415, 'INGEST_UNSUPPORTED_CONTENT_TYPE'],
  ];
  return { good, gzipBomb, cases };
}

describe('ingest -> Kafka (real broker)', () => {
  const t = newTopics();
  let svc: IngestService;
  beforeAll(async () => {
    const cfg = loadIngestConfig(envFor(t));
    svc = await startIngest(cfg, { log: quietLogger, tokenKeys: { kind: 'file', dir: mkdtempSync(join(tmpdir(), 'ingest-keys-')) } });
  });
  afterAll(async () => {
    await svc?.close();
  });

  it('puts each batch on the right topics: facts on events, personal per zone, rejects per zone', async () => {
    const zones = ['cn', 'ru', 'in', 'row'] as const;
    const posted: TestBatch[] = [];
    let accepted = 0;
    for (const zone of zones) {
      for (let k = 0; k < 2; k++) {
        const b = batch({ zone, events: 10 } as BatchOptions);
        if (zone === 'ru' && k === 0) {
          b.events[2]!.event_id = 'not-a-uuid';
          b.events[5]!.session_id = 'x'.repeat(500);
        }
        const r = await post(svc, containerOf(b));
        expect(r.status).toBe(200);
        posted.push(b);
        accepted += r.json?.accepted ?? NaN;
        if (zone === 'ru' && k === 0) {
          expect(r.json?.accepted).toBe(8);
          expect(r.json?.rejected?.map((x) => [x.index, x.path, x.reason])).toEqual([
            [2, 'event_id', 'SCHEMA_BAD_FORMAT'],
            [5, 'session_id', 'SCHEMA_STRING_TOO_LONG'],
          ]);
        } else {
          expect(r.json).toMatchObject({ accepted: 10, rejected: [] });
        }
      }
    }
    expect(accepted).toBe(78);

    // Separate consumer (kafkajs): every accepted event is one EventFact on the events topic, inside
    // one record per (batch, UTC day) keyed by that day's token (a batch straddling midnight: two).
    const onTopic = kcat(t.events).length;
    expect(onTopic).toBeGreaterThanOrEqual(posted.length);
    expect(onTopic).toBeLessThanOrEqual(2 * posted.length);
    const events = await readAll(t.events, onTopic, 30_000);
    expect(events).toHaveLength(onTopic);
    const facts = events.flatMap((e) => {
      const fs = decodeEventFacts(e.value!);
      for (const f of fs) expect(e.key!.equals(f.daily_token)).toBe(true);
      expect(new Set(fs.map((f) => f.day)).size).toBe(1);
      return fs;
    });
    expect(facts).toHaveLength(accepted);
    expect(new Set(facts.map((f) => f.event_key.toString('hex'))).size).toBe(accepted);
    expect(new Set(facts.map((f) => f.kind))).toEqual(
      new Set(['session_start', 'page_view', 'app_foreground', 'network_stats', 'app_background', 'app_status', 'crash', 'session_end']),
    );

    // kcat: the same records (partition:offset, 16-byte key, value length) as the kafkajs consumer read,
    // and the same counts per zone for the personal and rejects topics.
    expect(kcat(t.events).sort()).toEqual(events.map((e) => `${e.partition}:${e.offset} 16 ${e.value!.length}`).sort());
    for (const zone of zones) {
      // One record per batch in each retention class: the device record (30 days), the client IP (7 days).
      expect(kcat(`${t.personalPrefix}${zone}.p30d`), `personal ${zone} p30d`).toHaveLength(2);
      expect(kcat(`${t.personalPrefix}${zone}.p7d`), `personal ${zone} p7d`).toHaveLength(2);
      expect(kcat(`${t.rejectsPrefix}${zone}`), `rejects ${zone}`).toHaveLength(zone === 'ru' ? 2 : 0);
    }

    // No personal value on the events topic, nor in clear on the personal topics (sealed per device,
    // keyed by a keyed hash: rights/README.md); opened with the zone's key store, the checker finds them.
    const needles = posted.flatMap(personalStrings);
    expect(personalValuesIn(events, needles)).toEqual([]);
    const personalCn = await readAll(`${t.personalPrefix}cn.p30d`, 2, 20_000);
    const deviceIds = posted.slice(0, 2).map((b) => b.device.device_id as string);
    expect(personalValuesIn(personalCn, needles)).toEqual([]);
    const stores = new ZoneStores({ ...sealingSpecOf(sealing) });
    try {
      const opened = (await openRecords(stores, 'cn', personalCn)).map((r) => ({ key: null, value: r.opened }));
      expect(personalValuesIn(opened, deviceIds).sort()).toEqual([...deviceIds].sort());
    } finally {
      await stores.close();
    }
  });

  it('accepts Avro-JSON and gzip, and reports consent drops', async () => {
    const j = await post(svc, JSON.stringify(batch({ events: 3 })), { 'content-type': 'application/json' });
    expect(j.status).toBe(200);
    expect(j.json?.accepted).toBe(3);
    const g = await post(svc, gzipSync(containerOf(batch({ events: 4 }))), { 'content-type': 'avro/binary', 'content-encoding': 'gzip' });
    expect(g.status).toBe(200);
    expect(g.json?.accepted).toBe(4);
    const noConsent = await post(svc, containerOf(batch({ events: 5, analytics: false })));
    expect(noConsent.status).toBe(200);
    expect(noConsent.json).toMatchObject({ accepted: 0, dropped_consent: { no_analytics_consent: 5 } });
  });

  it('answers bad input with its status and stays healthy', async () => {
    const { good, gzipBomb, cases } = badInputs();
    expect(gzipBomb.length).toBeLessThan(1.1 * 1024 * 1024);
    for (const [name, body, headers, status, code] of cases) {
      const r = await post(svc, body, { 'content-type': 'avro/binary', ...headers });
      expect({ name, status: r.status, code: r.json?.error?.code }).toEqual({ name, status, code });
      expect(r.json?.error?.message.length, name).toBeGreaterThan(10);
    }
    const ready = await fetch(`${svc.url}/readyz`);
    expect(ready.status).toBe(200);
    expect((await post(svc, good)).status).toBe(200);
    const metrics = await (await fetch(`${svc.url}/metrics`)).text();
    expect(metrics).toMatch(/ingest_requests_total\{status="413",code="INGEST_DECOMPRESSED_TOO_LARGE"\} 1/);
    expect(metrics).toMatch(/ingest_events_rejected_total\{reason="SCHEMA_BAD_FORMAT"\}/);
  });
});

describe('ingest -> Kafka: retried batches and start-up checks (real broker)', () => {
  it('gives a retried batch the same event keys (the aggregator deduplicates by event_key)', async () => {
    const t2 = newTopics();
    const svc2 = await startIngest(loadIngestConfig(envFor(t2)), {
      log: quietLogger,
      tokenKeys: { kind: 'file', dir: mkdtempSync(join(tmpdir(), 'ingest-keys-')) },
    });
    try {
      const body = containerOf(batch({ events: 20 }));
      expect((await post(svc2, body)).status).toBe(200);
      expect((await post(svc2, body)).status).toBe(200);
      const onTopic = kcat(t2.events).length;
      const recs = await readAll(t2.events, onTopic, 30_000);
      const facts = recs.flatMap((r) => decodeEventFacts(r.value!));
      expect(facts).toHaveLength(40);
      expect(new Set(facts.map((f) => f.event_key.toString('hex'))).size).toBe(20);
    } finally {
      await svc2.close();
    }
  });

  it('INGEST_TOPICS=verify refuses to start when topics are missing, with one clear line', async () => {
    const t3 = newTopics();
    await expect(
      startIngest(loadIngestConfig(envFor(t3, { INGEST_TOPICS: 'verify' })), {
        log: quietLogger,
        tokenKeys: { kind: 'file', dir: mkdtempSync(join(tmpdir(), 'k-')) },
      }),
    ).rejects.toThrow(new RegExp(`^missing Kafka topics on .*${t3.events}.*INGEST_TOPICS=create\\)$`));
  });
});
