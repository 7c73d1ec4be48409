import avro from 'avsc';
import { describe, expect, it } from 'vitest';
import { AvroGuardError, compileSplit, guardedDecode, DEFAULT_LIMITS } from './index.ts';
import { batch } from '../testing/schema-fixtures.ts';

const t = (s: unknown) => avro.Type.forSchema(s as avro.Schema);
const zz = (n: number) => {
  // zigzag varint
  const out: number[] = [];
  let v = n >= 0 ? n * 2 : -n * 2 - 1;
  while (v >= 0x80) {
    out.push((v & 0x7f) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return out;
};
const code = (f: () => unknown) => {
  try {
    f();
  } catch (e) {
    return e instanceof AvroGuardError ? `${e.code}@${e.path}` : `other:${(e as Error).message}`;
  }
  return 'ok';
};

describe('hostile Avro is refused before avsc allocates', () => {
  const cases: [string, unknown, number[], string][] = [
    ['array bomb: 5 bytes claiming 50M longs', { type: 'array', items: 'long' }, [...zz(50_000_000), 0], 'AVRO_LIMIT_EXCEEDED@'],
    ['array bomb within the count limit but not the bytes', { type: 'array', items: 'long' }, [...zz(9_000), 0], 'AVRO_TRUNCATED@'],
    ['map bomb', { type: 'map', values: 'string' }, [...zz(50_000_000), 0], 'AVRO_LIMIT_EXCEEDED@'],
    ['string bomb: length 2^40', 'string', zz(2 ** 40), 'AVRO_LIMIT_EXCEEDED@'],
    ['string longer than the body', 'string', [...zz(100), 65, 66], 'AVRO_TRUNCATED@'],
    ['bytes bomb', 'bytes', zz(2 ** 31), 'AVRO_LIMIT_EXCEEDED@'],
    ['negative length', 'bytes', zz(-5), 'AVRO_NEGATIVE_LENGTH@'],
    ['array of nulls (zero-size items) beyond the limit', { type: 'array', items: 'null' }, [...zz(20_000), 0], 'AVRO_LIMIT_EXCEEDED@'],
    ['bad UTF-8 in a string', { type: 'record', name: 'R', fields: [{ name: 's', type: 'string' }] }, [...zz(2), 0xc3, 0x28], 'AVRO_BAD_UTF8@s'],
    ['overlong UTF-8', 'string', [...zz(2), 0xc0, 0xaf], 'AVRO_BAD_UTF8@'],
    ['union branch out of range', ['null', 'string'], zz(7), 'AVRO_BAD_UNION_BRANCH@'],
    ['trailing bytes', 'int', [2, 2], 'AVRO_TRAILING_BYTES@'],
  ];
  it.each(cases)('%s', (_n, schema, bytes, expected) => {
    expect(code(() => guardedDecode(t(schema), Buffer.from(bytes)))).toBe(expected);
  });

  it('negative control: without the guard avsc accepts bad UTF-8 silently (replacing it)', () => {
    expect(t('string').fromBuffer(Buffer.from([...zz(2), 0xc3, 0x28]))).toContain('\ufffd');
  });

  it('names the event index in the path of a real batch', () => {
    const p = compileSplit();
    const buf = p.batchType.toBuffer(batch(8));
    const sig = buf.indexOf(Buffer.from('9f86d081884c7d65'));
    buf[sig] = 0xff; // invalid UTF-8 lead byte inside events[6]
    expect(code(() => guardedDecode(p.batchType, buf, { ...DEFAULT_LIMITS, maxItems: { events: 1000 } }))).toBe(
      'AVRO_BAD_UTF8@events[6].payload.Crash.signature',
    );
  });

  it('per-path limit: events', () => {
    const p = compileSplit();
    const buf = p.batchType.toBuffer(batch(20));
    expect(code(() => guardedDecode(p.batchType, buf, { ...DEFAULT_LIMITS, maxItems: { events: 10 } }))).toBe('AVRO_LIMIT_EXCEEDED@events');
    expect(code(() => guardedDecode(p.batchType, buf, { ...DEFAULT_LIMITS, maxItems: { events: 20 } }))).toBe('ok');
  });

  it('valid data decodes identically to avsc', () => {
    const p = compileSplit();
    const b = batch(16);
    const buf = p.batchType.toBuffer(b);
    expect(guardedDecode(p.batchType, buf)).toEqual(p.batchType.fromBuffer(buf));
  });
});
