import { describe, expect, it } from 'vitest';
import {
  compileSplit,
  crc64Avro,
  decodeEventFact,
  decodeEventFacts,
  encodeEventFact,
  encodeEventFacts,
  eventFactBatchType,
  fingerprintOf,
  SchemaError,
  type EventFact,
} from './index.ts';
import { batch, NOW } from '../testing/schema-fixtures.ts';
import { tokenizer } from '../testing/tokenizer.ts';

const fact: EventFact = {
  event_key: Buffer.alloc(16, 1),
  daily_token: Buffer.alloc(16, 2),
  day: 20_786,
  kind: 'crash',
  app_id: 'com.example.app',
  app_version: '1.2.3',
  device_model: 'M2102J20SG',
  os_version: '13',
  country: 'DE',
  duration_ms: null,
  crash_signature: 'a1b2c3d4e5f60718',
  exception_type: 'java.lang.NullPointerException',
};

describe('CRC-64-AVRO', () => {
  // Vectors from Apache Avro share/test/data/schema-tests.txt (signed i64 there).
  it.each([
    ['"null"', 7195948357588979594n],
    ['{"name":"foo","type":"fixed","size":15}', 1756455273707447556n],
    ['{"name":"foo","type":"record","fields":[{"name":"f1","type":"boolean"}]}', 7843277075252814651n],
    ['"boolean"', -6970731678124411036n],
  ])('fingerprint of %s', (pcf, signed) => {
    expect(BigInt.asIntN(64, crc64Avro(Buffer.from(pcf)))).toBe(signed);
  });
});

describe('EventFact single-object encoding', () => {
  it('round-trips and starts with C3 01 + fingerprint', () => {
    const buf = encodeEventFact(fact);
    expect(buf.subarray(0, 2)).toEqual(Buffer.from([0xc3, 0x01]));
    expect(decodeEventFact(buf)).toEqual(fact);
  });

  it('refuses an unknown fingerprint with a typed error', () => {
    const buf = encodeEventFact(fact);
    buf[5] = buf[5]! ^ 0xff;
    expect(() => decodeEventFact(buf)).toThrowError(SchemaError);
    try {
      decodeEventFact(buf);
    } catch (e) {
      expect((e as SchemaError).code).toBe('SCHEMA_UNKNOWN_FINGERPRINT');
    }
  });

  it('refuses bytes without a known magic', () => {
    expect(() => decodeEventFact(Buffer.from('hello world'))).toThrowError(/not an Avro single-object/);
  });
});

describe('events-topic records: EventFactBatch, and legacy single facts', () => {
  const other: EventFact = { ...fact, event_key: Buffer.alloc(16, 3), kind: 'page_view', duration_ms: 1234, crash_signature: null, exception_type: null };

  it('round-trips the facts of one record, in order, under the batch schema fingerprint', () => {
    const buf = encodeEventFacts([fact, other]);
    expect(buf.subarray(0, 2)).toEqual(Buffer.from([0xc3, 0x01]));
    expect(buf.subarray(2, 10)).toEqual(fingerprintOf(eventFactBatchType));
    expect(decodeEventFacts(buf)).toEqual([fact, other]);
  });

  it('reads a legacy single-fact record as one fact (records already on the topic stay readable)', () => {
    expect(decodeEventFacts(encodeEventFact(other))).toEqual([other]);
  });

  it('refuses an unknown fingerprint with the typed error', () => {
    const buf = encodeEventFacts([fact]);
    buf[5] = buf[5]! ^ 0xff;
    expect(() => decodeEventFacts(buf)).toThrowError(SchemaError);
    expect(() => decodeEventFacts(Buffer.from('hello world'))).toThrowError(/not an Avro single-object/);
  });

  it('the compiled split writes exactly what encodeEventFacts writes', () => {
    const p = compileSplit();
    const r = p.processBatch(batch(12), { receivedAt: NOW, tokenizer: tokenizer() });
    expect(r.events).toHaveLength(1);
    const facts = decodeEventFacts(r.events[0]!.value);
    expect(facts).toHaveLength(12);
    expect(encodeEventFacts(facts).equals(r.events[0]!.value)).toBe(true);
  });
});
