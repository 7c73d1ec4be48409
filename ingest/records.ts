/**
 * How a batch's output records cross from a pool worker to the HTTP thread: a small Uint32 index and
 * every key and value after it, packed into one ArrayBuffer that is *moved* (transferred), never
 * cloned. Structured clone would copy every Buffer; this way a batch crosses the thread boundary
 * without a copy of its payload, and the Buffers the HTTP thread hands to kafkajs are views on the
 * moved ArrayBuffer.
 *
 * Both sides import this file (the worker packs, the HTTP thread unpacks); it needs nothing of
 * `schemas/` at run time, so the HTTP thread does not load the worker's code to read a result.
 */
import type { OutRecord, SplitResult, Zone } from '../schemas/index.ts';

/**
 * A personal record on its way out, with the digest of its content before sealing (steps/seal.ts
 * `contentDigest`): equal digests are byte-equal records, which the HTTP thread writes once per day
 * (mix.ts `RecentRecords`). The digest never leaves the process.
 */
export type PersonalOut = SplitResult['personal'][number] & { digest?: string };

/** A batch's records by destination: events topic, personal topic of a zone and retention class, rejects topic of a zone. */
export interface BatchRecords {
  events: SplitResult['events'];
  personal: PersonalOut[];
  rejected: SplitResult['rejected'];
}

/** Kinds of packed records (index column 0). */
export const REC_EVENT = 0;
export const REC_PERSONAL = 1;
export const REC_REJECTED = 2;
/** Zones by their code in index column 1 (the order of schemas' ZONES). */
export const ZONE_CODES: readonly Zone[] = ['cn', 'ru', 'in', 'row'];
/**
 * u32 columns per record in the index: kind, place, keyOffset, keyLength, valueOffset, valueLength;
 * place = zone code | (index of the personal record's retention class in `classes`) << 8. Offsets are
 * from the start of the packed buffer.
 */
export const INDEX_WIDTH = 6;

export interface PackedRecords {
  /**
   * The index (INDEX_WIDTH u32 per record) and then every record's key and value, back to back: one
   * allocation and one transfer per batch (each ArrayBuffer costs the worker a few µs).
   */
  data: ArrayBuffer;
  /** Records in `data`. */
  count: number;
  /** Headers of record i, or null; null entirely when no record has any (the usual case). */
  headers: Array<Record<string, string> | null> | null;
  /** The retention classes the personal records name (`p30d`, `p7d`), in the order the index refers to them. */
  classes: string[];
  /** The content digest of each personal record, in their order, or null when none has one (unit tests). */
  digests: string[] | null;
}

/** Packs every output record into one ArrayBuffer + index, so they can be moved, not cloned. */
export function packRecords(r: BatchRecords): PackedRecords {
  const n = r.events.length + r.personal.length + r.rejected.length;
  let bytes = n * INDEX_WIDTH * 4;
  for (const list of [r.events, r.personal, r.rejected] as OutRecord[][]) for (const x of list) bytes += x.key.length + x.value.length;
  const buffer = new ArrayBuffer(bytes);
  const data = new Uint8Array(buffer);
  const index = new Uint32Array(buffer, 0, n * INDEX_WIDTH);
  let headers: Array<Record<string, string> | null> | null = null;
  const classes: string[] = [];
  const digests: string[] = [];
  let at = n * INDEX_WIDTH * 4;
  let i = 0;
  const put = (kind: number, zone: Zone | undefined, x: OutRecord, cls?: string) => {
    const o = i * INDEX_WIDTH;
    index[o] = kind;
    let c = 0;
    if (cls !== undefined) {
      c = classes.indexOf(cls);
      if (c < 0) c = classes.push(cls) - 1;
    }
    index[o + 1] = (zone ? ZONE_CODES.indexOf(zone) : 0) | (c << 8);
    index[o + 2] = at;
    index[o + 3] = x.key.length;
    data.set(x.key, at);
    at += x.key.length;
    index[o + 4] = at;
    index[o + 5] = x.value.length;
    data.set(x.value, at);
    at += x.value.length;
    if (x.headers) {
      headers ??= new Array<Record<string, string> | null>(n).fill(null);
      headers[i] = x.headers;
    }
    i++;
  };
  for (const x of r.events) put(REC_EVENT, undefined, x);
  for (const x of r.personal) {
    put(REC_PERSONAL, x.zone, x, x.retentionClass);
    if (x.digest !== undefined) digests.push(x.digest);
  }
  for (const x of r.rejected) put(REC_REJECTED, x.zone, x);
  return { data: buffer, count: n, headers, classes, digests: digests.length === r.personal.length && digests.length > 0 ? digests : null };
}

/** Inverse of `packRecords`, on the HTTP thread: Buffers are views on the moved ArrayBuffer (no copy). */
export function unpackRecords(w: PackedRecords): BatchRecords {
  const index = new Uint32Array(w.data, 0, w.count * INDEX_WIDTH);
  const out: BatchRecords = { events: [], personal: [], rejected: [] };
  let p = 0;
  // Each record is one object literal, its optional fields set after: spreading a record into another
  // (`{ ...rec, zone }`) took ~2 µs on V8's slow path, against ~50 ns.
  for (let i = 0, o = 0; o < index.length; i++, o += INDEX_WIDTH) {
    const key = Buffer.from(w.data, index[o + 2]!, index[o + 3]!);
    const value = Buffer.from(w.data, index[o + 4]!, index[o + 5]!);
    const h = w.headers?.[i];
    const kind = index[o]!;
    const place = index[o + 1]!;
    if (kind === REC_EVENT) {
      const rec: OutRecord = { key, value };
      if (h) rec.headers = h;
      out.events.push(rec);
    } else if (kind === REC_PERSONAL) {
      const x: PersonalOut = { key, value, zone: ZONE_CODES[place & 0xff]!, retentionClass: w.classes[place >>> 8]! };
      if (h) x.headers = h;
      const d = w.digests?.[p++];
      if (d !== undefined) x.digest = d;
      out.personal.push(x);
    } else {
      const x: BatchRecords['rejected'][number] = { key, value, zone: ZONE_CODES[place & 0xff]! };
      if (h) x.headers = h;
      out.rejected.push(x);
    }
  }
  return out;
}
