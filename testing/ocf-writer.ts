/**
 * A small synchronous Avro Object Container File writer: what a device SDK sends. Used by the tests
 * (to craft good and deliberately broken files) and by the bench load generator; not by ingest itself. The reader is
 * checked against avsc's own `BlockEncoder` too, so the two are not merely agreeing with each other.
 */
import { randomBytes } from 'node:crypto';
import { deflateRawSync } from 'node:zlib';
import type avro from 'avsc';
import { OCF_MAGIC, SYNC_SIZE } from '../ingest/container.ts';
import { longBytes } from '../schemas/index.ts';

function avroBytes(b: Buffer): Buffer {
  return Buffer.concat([longBytes(b.length), b]);
}

export interface WriteOptions {
  /** Any string: `null` and `deflate` are what the reader accepts; others are for negative tests. */
  codec?: string;
  /** Datums per block (default: all in one block). */
  blockSize?: number;
  sync?: Buffer;
  /** Written instead of the type's own schema (e.g. a schema that resolves to nothing). */
  schemaJson?: string;
  extraMeta?: Record<string, Buffer>;
  /** Already-encoded datums written instead of `values` (hostile bodies for tests). */
  rawDatums?: Buffer[];
}

export function writeContainer(type: avro.Type, values: readonly unknown[], opts: WriteOptions = {}): Buffer {
  const codec = opts.codec ?? 'null';
  const sync = opts.sync ?? randomBytes(SYNC_SIZE);
  const meta: Array<[string, Buffer]> = [
    ['avro.schema', Buffer.from(opts.schemaJson ?? JSON.stringify(type.schema()), 'utf8')],
    ['avro.codec', Buffer.from(codec, 'utf8')],
    ...Object.entries(opts.extraMeta ?? {}),
  ];
  const parts: Buffer[] = [OCF_MAGIC, longBytes(meta.length)];
  for (const [k, v] of meta) parts.push(avroBytes(Buffer.from(k, 'utf8')), avroBytes(v));
  parts.push(longBytes(0), sync);
  const datums = opts.rawDatums ?? values.map((v) => type.toBuffer(v));
  const size = opts.blockSize ?? Math.max(1, datums.length);
  for (let i = 0; i < datums.length; i += size) {
    const chunk = datums.slice(i, i + size);
    const data = Buffer.concat(chunk);
    const payload = codec === 'deflate' ? deflateRawSync(data) : data;
    parts.push(longBytes(chunk.length), longBytes(payload.length), payload, sync);
  }
  return Buffer.concat(parts);
}
