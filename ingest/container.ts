/**
 * Avro Object Container File reader (Avro spec, "Object Container Files"), written for hostile input.
 *
 * Layout: magic `Obj\x01`, file metadata (an Avro `map<bytes>` holding `avro.schema` and
 * `avro.codec`), a 16-byte sync marker, then blocks of (object count: long, byte size: long, data,
 * sync marker). We check the marker after *every* block: it is the only thing that tells a truncated
 * or spliced upload from a good one, and avsc's stream decoder is not written to fail fast on it.
 *
 * Every length read from the bytes is checked against what is left and against a limit before
 * anything is allocated, and deflate blocks are inflated with an output cap shared by the whole file,
 * so the container cannot expand past `maxDecompressedBytes` however its blocks are arranged.
 * The datums inside each block are decoded by the caller with the schemas guard (`guardedDecode`).
 */
import { inflateRawSync } from 'node:zlib';
import { LONG_MAX_BYTES, readLong, varintEnd, varintTruncated } from '../schemas/index.ts';
import { fail, type IngestFailure } from './errors.ts';

export const OCF_MAGIC = Buffer.from([0x4f, 0x62, 0x6a, 0x01]); // "Obj" 1
export const SYNC_SIZE = 16;
export const SUPPORTED_CODECS = ['null', 'deflate'] as const;
export type Codec = (typeof SUPPORTED_CODECS)[number];

export interface ContainerLimits {
  /** Total bytes of block data after decompression (all blocks together). */
  maxDecompressedBytes: number;
  /** Total objects over all blocks. */
  maxObjects: number;
  /** Blocks in one file (many tiny blocks cost per-block work without carrying data). */
  maxBlocks: number;
  /** Entries in the metadata map and the size of one metadata value (the schema JSON). */
  maxMetaEntries: number;
  maxMetaValueBytes: number;
}

export const DEFAULT_CONTAINER_LIMITS: ContainerLimits = {
  maxDecompressedBytes: 16 * 1024 * 1024,
  maxObjects: 10_000,
  maxBlocks: 1_000,
  maxMetaEntries: 64,
  maxMetaValueBytes: 256 * 1024,
};

export interface ContainerBlock {
  /** Number of datums the block says it holds. */
  count: number;
  /** The block's datums, decompressed, back to back. */
  data: Buffer;
}

export interface Container {
  /** The `avro.schema` metadata value: the writer schema's JSON text, as UTF-8 bytes (a view on the input). */
  schema: Buffer;
  codec: Codec;
  metadata: Map<string, Buffer>;
  blocks: ContainerBlock[];
  /** Sum of `count` over blocks. */
  objectCount: number;
}

export type ContainerResult = { ok: true; value: Container } | IngestFailure;

/** Cheap test used for content sniffing and in tests. */
export function looksLikeContainer(buf: Buffer): boolean {
  return buf.length >= 4 && buf.subarray(0, 4).equals(OCF_MAGIC);
}

class Truncated extends Error {}
class Bad extends Error {
  constructor(
    readonly code: IngestFailure['code'],
    message: string,
  ) {
    super(message);
  }
}

/** A bounds-checked cursor: every read either succeeds inside the buffer or throws `Truncated`. */
class Cursor {
  pos = 0;
  constructor(readonly buf: Buffer) {}
  get left(): number {
    return this.buf.length - this.pos;
  }
  /** Avro long: zig-zag varint, at most 10 bytes; refuses values beyond 2^53 (no byte count is that big). */
  long(what: string): number {
    const start = this.pos;
    const v = readLong(this.buf, start, this.buf.length, LONG_MAX_BYTES);
    this.pos = varintEnd.pos;
    if (v !== v) {
      if (varintTruncated(start, LONG_MAX_BYTES)) throw new Truncated(`truncated while reading ${what}`);
      throw new Bad('INGEST_CONTAINER_BAD_HEADER', `${what} is a varint longer than 10 bytes`);
    }
    // The varint's unsigned value (2v, or -2v - 1 for a negative v) must fit in 53 bits: -2^52 <= v < 2^52.
    if (v >= 2 ** 52 || v < -(2 ** 52)) throw new Bad('INGEST_CONTAINER_BAD_HEADER', `${what} does not fit in 53 bits`);
    return v;
  }
  bytes(n: number, what: string): Buffer {
    if (n > this.left) throw new Truncated(`truncated: ${what} needs ${n} bytes, ${this.left} left`);
    const out = this.buf.subarray(this.pos, this.pos + n);
    this.pos += n;
    return out;
  }
}

export function readContainer(buf: Buffer, limits: ContainerLimits = DEFAULT_CONTAINER_LIMITS): ContainerResult {
  try {
    return { ok: true, value: parse(new Cursor(buf), limits) };
  } catch (e) {
    if (e instanceof Truncated) return fail('INGEST_CONTAINER_TRUNCATED', `Avro container ${e.message}`);
    if (e instanceof Bad) return fail(e.code, `Avro container: ${e.message}`);
    throw e;
  }
}

function parse(c: Cursor, limits: ContainerLimits): Container {
  if (c.left < 4) throw new Truncated('truncated before the 4-byte magic');
  if (!c.bytes(4, 'magic').equals(OCF_MAGIC)) {
    throw new Bad('INGEST_CONTAINER_BAD_MAGIC', 'does not start with "Obj\\x01" (send Content-Type application/json for Avro-JSON)');
  }
  const metadata = readMetadata(c, limits);
  const schemaBytes = metadata.get('avro.schema');
  if (!schemaBytes) throw new Bad('INGEST_CONTAINER_BAD_HEADER', 'metadata has no avro.schema');
  const codecName = metadata.get('avro.codec')?.toString('utf8') ?? 'null';
  if (!(SUPPORTED_CODECS as readonly string[]).includes(codecName)) {
    throw new Bad('INGEST_CONTAINER_UNKNOWN_CODEC', `codec "${codecName.slice(0, 40)}" is not supported: use ${SUPPORTED_CODECS.join(' or ')}`);
  }
  const codec = codecName as Codec;
  const sync = Buffer.from(c.bytes(SYNC_SIZE, 'sync marker'));

  const blocks: ContainerBlock[] = [];
  let objectCount = 0;
  let budget = limits.maxDecompressedBytes;
  while (c.left > 0) {
    const n = blocks.length;
    if (n >= limits.maxBlocks) throw new Bad('INGEST_CONTAINER_BAD_BLOCK', `more than ${limits.maxBlocks} blocks`);
    const count = c.long(`block ${n} object count`);
    const size = c.long(`block ${n} size`);
    if (count < 0 || size < 0) throw new Bad('INGEST_CONTAINER_BAD_BLOCK', `block ${n} has a negative count or size`);
    if (count === 0) throw new Bad('INGEST_CONTAINER_BAD_BLOCK', `block ${n} holds no objects`);
    objectCount += count;
    if (objectCount > limits.maxObjects) throw new Bad('INGEST_CONTAINER_BAD_BLOCK', `more than ${limits.maxObjects} objects`);
    const raw = c.bytes(size, `block ${n} data`);
    const marker = c.bytes(SYNC_SIZE, `block ${n} sync marker`);
    if (!marker.equals(sync)) throw new Bad('INGEST_CONTAINER_BAD_SYNC', `block ${n} ends with a wrong sync marker (corrupt or spliced file)`);
    const data = decodeBlock(codec, raw, budget, n);
    budget -= data.length;
    blocks.push({ count, data });
  }
  return { schema: schemaBytes, codec, metadata, blocks, objectCount };
}

function readMetadata(c: Cursor, limits: ContainerLimits): Map<string, Buffer> {
  const meta = new Map<string, Buffer>();
  for (;;) {
    let count = c.long('metadata block count');
    if (count === 0) return meta;
    if (count < 0) {
      // Negative count: the block's byte size follows (lets readers skip); we read items anyway.
      count = -count;
      c.long('metadata block size');
    }
    if (meta.size + count > limits.maxMetaEntries) throw new Bad('INGEST_CONTAINER_BAD_HEADER', `more than ${limits.maxMetaEntries} metadata entries`);
    for (let i = 0; i < count; i++) {
      const klen = c.long('metadata key length');
      if (klen < 0 || klen > 1024) throw new Bad('INGEST_CONTAINER_BAD_HEADER', `metadata key length ${klen} out of range`);
      const key = c.bytes(klen, 'metadata key').toString('utf8');
      const vlen = c.long(`metadata value length of ${key.slice(0, 40)}`);
      if (vlen < 0 || vlen > limits.maxMetaValueBytes) {
        throw new Bad('INGEST_CONTAINER_BAD_HEADER', `metadata value of ${key.slice(0, 40)} is ${vlen} bytes, limit ${limits.maxMetaValueBytes}`);
      }
      meta.set(key, c.bytes(vlen, `metadata value of ${key.slice(0, 40)}`));
    }
  }
}

function decodeBlock(codec: Codec, raw: Buffer, budget: number, n: number): Buffer {
  if (codec === 'null') {
    if (raw.length > budget) throw new Bad('INGEST_CONTAINER_BAD_BLOCK', `blocks exceed the decompressed limit at block ${n}`);
    return raw;
  }
  // deflate: RFC 1951 raw deflate, no zlib header (Avro spec). The cap is what is left of the file's
  // budget, so many small blocks cannot add up past the limit either.
  try {
    return inflateRawSync(raw, { maxOutputLength: Math.max(1, budget) });
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code === 'ERR_BUFFER_TOO_LARGE' || e instanceof RangeError) {
      throw new Bad('INGEST_CONTAINER_BAD_BLOCK', `block ${n} inflates beyond the decompressed limit`);
    }
    throw new Bad('INGEST_CONTAINER_BAD_BLOCK', `block ${n} is not valid deflate data (${code ?? 'zlib error'})`);
  }
}
