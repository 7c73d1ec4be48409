import { describe, expect, it } from 'vitest';
import { BatchDecoder, type Writer } from './decoder.ts';
import { batchType } from '../testing/batches.ts';

const decoder = () => new BatchDecoder({ maxStringLength: 4096, maxCollectionLength: 1000, maxTotalItems: 20_000 }, 1000, 4096);
const current = JSON.stringify(batchType.schema());
const older = JSON.stringify({
  ...(batchType.schema() as object),
  fields: [...(batchType.schema() as { fields: unknown[] }).fields, { name: 'legacy_flag', type: 'null', default: null }],
});
/** The schema's bytes inside a larger buffer, as they sit in a request body. */
const inBody = (json: string): Buffer => {
  const body = Buffer.concat([Buffer.from('Obj\x01 header '), Buffer.from(json), Buffer.from(' blocks')]);
  return body.subarray(12, 12 + Buffer.byteLength(json));
};
const writerOf = (w: ReturnType<BatchDecoder['writer']>): Writer => {
  if ('ok' in w) throw new Error(`${w.code}: ${w.message}`);
  return w;
};

describe('BatchDecoder.writer', () => {
  it('reads the current schema without a resolver and an older one with a resolver, each resolved once', () => {
    const d = decoder();
    const a = writerOf(d.writer(inBody(current)));
    expect(a.resolver).toBeUndefined();
    const b = writerOf(d.writer(inBody(older)));
    expect(b.resolver).toBeDefined();
    // Equal bytes in other buffers: the cached writers themselves.
    expect(d.writer(inBody(current))).toBe(a);
    expect(d.writer(inBody(older))).toBe(b);
  });

  it('keeps a copy of the schema bytes, not a view on the body they came in', () => {
    const d = decoder();
    const view = inBody(current);
    const a = writerOf(d.writer(view));
    // The body's memory is reused for another request: the cache must still know the schema. Had it
    // kept the view, the cached bytes would now be the overwritten ones and this lookup would miss.
    view.fill(0x20);
    expect(d.writer(inBody(current))).toBe(a);
  });

  it('refuses a schema that is not Avro, and remembers the refusal', () => {
    const d = decoder();
    const bad = d.writer(Buffer.from('{"type": "no such type"}'));
    expect('ok' in bad && bad.code).toBe('INGEST_WRITER_SCHEMA_UNRESOLVABLE');
    expect(d.writer(Buffer.from('{"type": "no such type"}'))).toBe(bad);
  });

  it('holds at most 64 writers, dropping the oldest', () => {
    const d = decoder();
    const first = writerOf(d.writer(Buffer.from(current)));
    // 64 more distinct schemas (the current one under other docs): the first is dropped, resolved anew.
    for (let i = 0; i < 64; i++) d.writer(Buffer.from(JSON.stringify({ ...(batchType.schema() as object), doc: `v${i}` })));
    const again = writerOf(d.writer(Buffer.from(current)));
    expect(again).not.toBe(first);
    expect(again.resolver).toBeUndefined();
  });
});
