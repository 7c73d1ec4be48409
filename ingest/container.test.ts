import { describe, expect, it } from 'vitest';
import { Readable } from 'node:stream';
import { buffer } from 'node:stream/consumers';
import avro from 'avsc';
import { readContainer, DEFAULT_CONTAINER_LIMITS } from './container.ts';
import { writeContainer } from '../testing/ocf-writer.ts';

const type = avro.Type.forSchema({
  type: 'record',
  name: 'T',
  fields: [
    { name: 'id', type: 'long' },
    { name: 'name', type: 'string' },
  ],
});
const values = Array.from({ length: 20 }, (_, i) => ({ id: i, name: `n${i}` }));

function decodeAll(buf: Buffer): unknown[] {
  const r = readContainer(buf);
  if (!r.ok) throw new Error(`${r.code}: ${r.message}`);
  const out: unknown[] = [];
  for (const b of r.value.blocks) {
    let pos = 0;
    for (let i = 0; i < b.count; i++) {
      const { value, offset } = type.decode(b.data, pos);
      out.push(value);
      pos = offset;
    }
  }
  return out;
}

describe('readContainer', () => {
  it('reads null and deflate containers, one or many blocks', () => {
    for (const codec of ['null', 'deflate']) {
      for (const blockSize of [1, 7, 20]) {
        const buf = writeContainer(type, values, { codec, blockSize });
        expect(decodeAll(buf)).toEqual(values);
        const r = readContainer(buf);
        expect(r.ok && r.value.codec).toBe(codec);
        expect(r.ok && JSON.parse(r.value.schema.toString('utf8'))).toEqual(type.schema());
      }
    }
  });

  it('reads what avsc itself writes (an independent writer), deflate codec', async () => {
    const enc = new avro.streams.BlockEncoder(type, { codec: 'deflate', blockSize: 64 } as never);
    const done = buffer(enc as unknown as Readable);
    for (const v of values) enc.write(v);
    enc.end();
    expect(decodeAll(await done)).toEqual(values);
  });

  it('refuses a truncated file at every cut point with a typed code, never a throw', () => {
    const buf = writeContainer(type, values, { codec: 'deflate', blockSize: 5 });
    const codes = new Set<string>();
    for (let cut = 0; cut < buf.length; cut++) {
      const r = readContainer(buf.subarray(0, cut));
      if (r.ok) {
        // Cutting exactly at a block boundary leaves a shorter but valid file.
        expect(r.value.objectCount % 5).toBe(0);
        continue;
      }
      codes.add(r.code);
    }
    expect([...codes].sort()).toEqual(expect.arrayContaining(['INGEST_CONTAINER_TRUNCATED']));
    for (const c of codes)
      expect([
        'INGEST_CONTAINER_TRUNCATED',
        'INGEST_CONTAINER_BAD_MAGIC',
        'INGEST_CONTAINER_BAD_BLOCK',
        'INGEST_CONTAINER_BAD_SYNC',
        'INGEST_CONTAINER_BAD_HEADER',
      ]).toContain(c);
  });

  it('checks the sync marker after every block, not only the first', () => {
    const buf = Buffer.from(writeContainer(type, values, { blockSize: 5 }));
    // flip one byte of the LAST block's sync marker
    buf[buf.length - 3]! ^= 0xff;
    const r = readContainer(buf);
    expect(r.ok).toBe(false);
    expect(!r.ok && r.code).toBe('INGEST_CONTAINER_BAD_SYNC');
    expect(!r.ok && r.message).toContain('block 3');
  });

  it('refuses an unknown codec, naming it', () => {
    const r = readContainer(writeContainer(type, values, { codec: 'zstandard' }));
    expect(!r.ok && r.code).toBe('INGEST_CONTAINER_UNKNOWN_CODEC');
    expect(!r.ok && r.message).toContain('zstandard');
  });

  it('refuses bad magic and a missing schema', () => {
    const r = readContainer(Buffer.from('{"events":[]}'));
    expect(!r.ok && r.code).toBe('INGEST_CONTAINER_BAD_MAGIC');
  });

  it('caps inflation of a deflate block (bomb inside the container)', () => {
    const zeros = avro.Type.forSchema('bytes');
    // one datum of 8 MiB zero bytes compresses to ~8 KiB
    const buf = writeContainer(zeros, [Buffer.alloc(8 * 1024 * 1024)], { codec: 'deflate' });
    expect(buf.length).toBeLessThan(64 * 1024);
    const r = readContainer(buf, { ...DEFAULT_CONTAINER_LIMITS, maxDecompressedBytes: 1024 * 1024 });
    expect(!r.ok && r.code).toBe('INGEST_CONTAINER_BAD_BLOCK');
    expect(!r.ok && r.message).toContain('decompressed limit');
  });

  it('refuses a block count or size that points past the end without allocating it', () => {
    // Craft: header of a valid file + block claiming 2^40 bytes.
    const good = writeContainer(type, [], {});
    const big = Buffer.concat([good, Buffer.from([0x02]), Buffer.from([0x80, 0x80, 0x80, 0x80, 0x80, 0x40])]);
    const r = readContainer(big);
    expect(!r.ok && r.code).toBe('INGEST_CONTAINER_TRUNCATED');
  });

  it('limits the number of objects', () => {
    const r = readContainer(writeContainer(type, values), { ...DEFAULT_CONTAINER_LIMITS, maxObjects: 10 });
    expect(!r.ok && r.code).toBe('INGEST_CONTAINER_BAD_BLOCK');
  });
});
