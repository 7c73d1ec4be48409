/**
 * The aggregator's hot path: one record of the events topic -> the row each of its facts adds to
 * ClickHouse (or the reason it adds nothing), without building an EventFact.
 *
 * A record is an EventFactBatch (schemas/event-facts.ts): every fact of one HTTP batch for one UTC
 * day, so tens of facts per Kafka record (kafkajs' per-record cost was the ceiling). Records written
 * before that change hold a single EventFact; they take the schemas/ decoder (below) and count the same.
 *
 * Why not `decodeEventFacts` per record: profiled in `bench/aggregate.ts` (README, "Bench"), the
 * avsc decode, a fresh string per dimension per fact, the TSV re-encoding of those strings and
 * the in-flush dedup made the aggregator the bottleneck. This reader:
 * - checks the single-object header against the fingerprint of the EventFactBatch schema this code
 *   was built with, and walks the Avro body itself: the array's blocks, and per fact fixed 16,
 *   fixed 16, int, enum, 5 strings, 3 unions. The whole record is walked before any verdict is given,
 *   so a record is counted entirely or not at all. Anything else (another writer version, a legacy
 *   single-fact record, a truncated or malformed body, trailing bytes) goes to `decodeEventFacts`
 *   from schemas/, which resolves other versions or throws its typed error: this file only adds a
 *   shortcut for the one layout it knows, never a second opinion on what is valid.
 * - decodes the six dimensions once per distinct combination (`DimsCache`, keyed by their raw
 *   bytes) and keeps them with their TabSeparated bytes, so a row costs no string at all.
 * - returns the very same row object for a run of non-counted events of one device (FlushBuffer
 *   drops the repeats: `sameEffect`).
 * The tokens and event keys are views into the Kafka record (no copy); they live until the flush.
 */
import { randomBytes } from 'node:crypto';
import {
  countsEventKey,
  decodeEventFacts,
  eventFactBatchType,
  eventFactType,
  fingerprintOf,
  LONG_MAX_BYTES,
  readInt,
  readLong,
  SchemaError,
  skipLong,
  varintEnd,
  type EventFact,
  type EventKind,
} from '../schemas/index.ts';
import { judgeFact, utcDay, type FactRow, type WindowOptions } from './facts.ts';
import { dimsTsv } from './tsv.ts';

/** What one record adds: a row, nothing (late/future), or an undecodable record. */
export type ReadVerdict = { kind: 'ok'; row: FactRow } | { kind: 'late' } | { kind: 'future' } | { kind: 'undecodable'; code: string };

const KINDS = (eventFactType as unknown as { fields: Array<{ name: string; type: { symbols?: string[] } }> }).fields.find((f) => f.name === 'kind')!.type
  .symbols as EventKind[];

/**
 * The field layout this reader walks. If schemas/ changes the EventFact schema, its fingerprint
 * changes, every record takes the `decodeEventFact` path (correct, only slower) and the unit test
 * `fact-reader.test.ts` fails on this list, so the shortcut is updated deliberately.
 */
export const FAST_LAYOUT = [
  'event_key:fixed16',
  'daily_token:fixed16',
  'day:int',
  'kind:enum',
  'app_id:string',
  'app_version:string',
  'device_model:string',
  'os_version:string',
  'country:string',
  'duration_ms:union',
  'crash_signature:union',
  'exception_type:union',
] as const;

/** The layout of the EventFact schema schemas/ exports, in FAST_LAYOUT's notation. */
export function layoutOf(type: unknown): string[] {
  const fields = (type as { fields: Array<{ name: string; type: { typeName: string; size?: number; types?: unknown[] } }> }).fields;
  return fields.map((f) => {
    const t = f.type.typeName.replace(/^logical:/, '');
    const name = t === 'fixed' ? `fixed${f.type.size}` : t.startsWith('union') ? 'union' : t;
    return `${f.name}:${name}`;
  });
}

/**
 * The shortcut is on only while the schema is exactly the layout walked below (the three unions
 * being ["null", long|string], the record being `{ facts: array<EventFact> }`); otherwise every
 * record goes through decodeEventFacts.
 */
function shortcutApplies(): boolean {
  const wrapper = (eventFactBatchType as unknown as { fields: Array<{ name: string; type: { typeName: string; itemsType?: unknown } }> }).fields;
  if (wrapper.length !== 1 || wrapper[0]!.name !== 'facts' || wrapper[0]!.type.typeName !== 'array') return false;
  if (fingerprintOf(wrapper[0]!.type.itemsType as typeof eventFactType).toString('hex') !== fingerprintOf(eventFactType).toString('hex')) return false;
  const l = layoutOf(eventFactType);
  if (l.join() !== FAST_LAYOUT.join()) return false;
  const unions = (eventFactType as unknown as { fields: Array<{ type: { types?: Array<{ typeName: string }> } }> }).fields.slice(9);
  const want = [
    ['null', 'long'],
    ['null', 'string'],
    ['null', 'string'],
  ];
  return unions.every((f, i) => JSON.stringify(f.type.types?.map((t) => t.typeName)) === JSON.stringify(want[i]));
}
export const FAST_PATH_ON = shortcutApplies();

// With the shortcut off, a header no record can carry (magic C3 02 is not single-object encoding).
const HEADER = Buffer.concat([Buffer.from([0xc3, FAST_PATH_ON ? 0x01 : 0x02]), fingerprintOf(eventFactBatchType)]);
const H = HEADER.length;

/** Int32 slots per fact in FactReader.pos: keyAt, tokenAt, dayAt, kindAt, dimsAt, dimsEnd, day, kind. */
const F = 8;

/** Per kind index: whether its event key is counted (schemas' `countsEventKey`); other kinds only add their device. */
const KIND_COUNTS = KINDS.map(countsEventKey);

interface Dims {
  /** Raw Avro bytes of the day and of the five strings, back to back: what identifies the group. */
  raw: Buffer;
  dayLen: number;
  day: number;
  app_id: string;
  app_version: string;
  device_model: string;
  os_version: string;
  country: string;
  tsv: Buffer;
}

/** Skips a string (length varint + bytes); returns the position after it, or -1. */
function skipString(b: Buffer, pos: number, end: number): number {
  const len = readInt(b, pos, end);
  if (!(len >= 0)) return -1;
  const next = varintEnd.pos + len;
  return next <= end ? next : -1;
}

/** Equal byte ranges (JS loop: cheaper than a Buffer.compare call for the ~50 bytes compared here). */
function sameBytes(a: Buffer, aStart: number, aEnd: number, b: Buffer, bStart: number, bEnd: number): boolean {
  if (aEnd - aStart !== bEnd - bStart) return false;
  for (let i = 0; i < aEnd - aStart; i++) if (a[aStart + i] !== b[bStart + i]) return false;
  return true;
}

/** Where the parts of one record are (positions in `buf`). */
interface Layout {
  buf: Buffer;
  tokenAt: number;
  dayAt: number;
  kindAt: number;
  dimsAt: number;
  dimsEnd: number;
}

const sameDims = (x: Layout, b: Buffer, dayAt: number, kindAt: number, dimsAt: number, dimsEnd: number) =>
  sameBytes(x.buf, x.dayAt, x.kindAt, b, dayAt, kindAt) && sameBytes(x.buf, x.dimsAt, x.dimsEnd, b, dimsAt, dimsEnd);

function rawMatches(d: Dims, b: Buffer, dayAt: number, kindAt: number, dimsAt: number, dimsEnd: number): boolean {
  return sameBytes(d.raw, 0, d.dayLen, b, dayAt, kindAt) && sameBytes(d.raw, d.dayLen, d.raw.length, b, dimsAt, dimsEnd);
}

export class FactReader {
  /** Hash of the raw dimension bytes -> decoded dimensions (a list on a hash collision). */
  private readonly dims = new Map<number, Dims | Dims[]>();
  private dimsCount = 0;
  /**
   * The previous record's dimensions, and the previous non-counted row. Ingest writes a device's
   * batch (tens of events, one device, one group) to one partition in a row, so most records repeat
   * the previous one's group, and most non-counted ones its device too: those return the same
   * dimensions and the same row object (FlushBuffer sees at once that it adds nothing).
   */
  // Mutable, so a record allocates no bookkeeping object (GC was a third of the time in the bench).
  private readonly lastDims: Layout & { dims: Dims | undefined } = {
    buf: Buffer.alloc(0),
    tokenAt: 0,
    dayAt: 0,
    kindAt: 0,
    dimsAt: 0,
    dimsEnd: 0,
    dims: undefined,
  };
  private readonly lastD: Layout & { row: FactRow | undefined } = {
    buf: Buffer.alloc(0),
    tokenAt: 0,
    dayAt: 0,
    kindAt: 0,
    dimsAt: 0,
    dimsEnd: 0,
    row: undefined,
  };

  constructor(private readonly maxCachedDims = 100_000) {}

  /** Positions of the facts of the record being read: F fields per fact (see `walk`). */
  private pos = new Int32Array(8 * 64);

  /**
   * Walks one record value and gives `visit` the verdict of each of its facts, in order; returns how
   * many facts the record holds (0 when it is undecodable: then `visit` gets one 'undecodable').
   * `w.unsafeCountRows` (negative control) gives every row a random event key, as judgeFact does.
   */
  readRecord(b: Buffer, w: WindowOptions, visit: (v: ReadVerdict) => void): number {
    const n = this.walk(b);
    if (n < 0) return this.slow(b, w, visit);
    const pos = this.pos;
    for (let i = 0, o = 0; i < n; i++, o += F)
      visit(this.verdict(b, w, pos[o]!, pos[o + 1]!, pos[o + 2]!, pos[o + 3]!, pos[o + 4]!, pos[o + 5]!, pos[o + 6]!, pos[o + 7]!));
    return n;
  }

  /** The verdict of a record holding exactly one fact (tests and the bench); throws otherwise. */
  read(b: Buffer, w: WindowOptions): ReadVerdict {
    const out: ReadVerdict[] = [];
    this.readRecord(b, w, (v) => out.push(v));
    if (out.length !== 1) throw new Error(`read(): the record holds ${out.length} facts, use readRecord`);
    return out[0]!;
  }

  /**
   * The whole record, or -1 for the schemas/ path: header, then the facts array's blocks (a negative
   * count is followed by the block's byte size), each fact's field positions stored in `pos`, then
   * the terminating 0 block and nothing after it.
   */
  private walk(b: Buffer): number {
    const end = b.length;
    if (end < H + 1) return -1;
    for (let i = 0; i < H; i++) if (b[i] !== HEADER[i]) return -1;
    let p = H;
    let n = 0;
    for (;;) {
      // A block count: an Avro long, read up to 8 bytes (any real count is far shorter).
      let count = readLong(b, p, end, 8);
      if (Number.isNaN(count)) return -1;
      p = varintEnd.pos;
      if (count === 0) break;
      if (count < 0) {
        count = -count;
        p = skipLong(b, p, end, LONG_MAX_BYTES);
        if (p < 0) return -1;
      }
      for (let k = 0; k < count; k++) {
        p = this.fact(b, p, end, n);
        if (p < 0) return -1;
        n++;
      }
    }
    return p === end ? n : -1;
  }

  /** Fact number `i` at `p`: stores its positions, returns the position after it, or -1. */
  private fact(b: Buffer, p: number, end: number, i: number): number {
    if (p + 32 >= end) return -1;
    const keyAt = p;
    const tokenAt = p + 16;
    const dayAt = p + 32;
    const day = readInt(b, dayAt, end);
    if (Number.isNaN(day)) return -1;
    const kindAt = varintEnd.pos;
    const kindIdx = readInt(b, kindAt, end);
    if (!(kindIdx >= 0 && kindIdx < KINDS.length)) return -1;
    const dimsAt = varintEnd.pos;
    let q = dimsAt;
    for (let k = 0; k < 5 && q >= 0; k++) q = skipString(b, q, end);
    const dimsEnd = q;
    // Three ["null", X] unions: branch 0 = null, 1 = long / string / string.
    for (let k = 0; k < 3 && q >= 0; k++) {
      if (q >= end) q = -1;
      else if (b[q] === 0) q++;
      else if (b[q] === 2) q = k === 0 ? skipLong(b, q + 1, end, LONG_MAX_BYTES) : skipString(b, q + 1, end);
      else q = -1;
    }
    if (q < 0) return -1;
    let pos = this.pos;
    if ((i + 1) * F > pos.length) {
      pos = new Int32Array(pos.length * 2);
      pos.set(this.pos);
      this.pos = pos;
    }
    const o = i * F;
    pos[o] = keyAt;
    pos[o + 1] = tokenAt;
    pos[o + 2] = dayAt;
    pos[o + 3] = kindAt;
    pos[o + 4] = dimsAt;
    pos[o + 5] = dimsEnd;
    pos[o + 6] = day;
    pos[o + 7] = kindIdx;
    return q;
  }

  private verdict(
    b: Buffer,
    w: WindowOptions,
    keyAt: number,
    tokenAt: number,
    dayAt: number,
    kindAt: number,
    dimsAt: number,
    dimsEnd: number,
    day: number,
    kindIdx: number,
  ): ReadVerdict {
    // Lateness window (the same rule as judgeFact in facts.ts), on the day number alone.
    const today = utcDay(w.nowMs);
    if (day < today - w.maxLatenessDays) return { kind: 'late' };
    if (day > utcDay(w.nowMs + w.futureSkewMs)) return { kind: 'future' };

    const counted = KIND_COUNTS[kindIdx]!;
    if (w.unsafeCountRows) {
      return { kind: 'ok', row: this.row(this.dimsOf(b, day, dayAt, kindAt, dimsAt, dimsEnd), KINDS[kindIdx]!, b, tokenAt, randomBytes(16)) };
    }
    const ld = this.lastD;
    if (!counted && ld.row && sameBytes(ld.buf, ld.tokenAt, ld.tokenAt + 16, b, tokenAt, tokenAt + 16) && sameDims(ld, b, dayAt, kindAt, dimsAt, dimsEnd)) {
      // Same device, same group as the previous non-counted fact: the same effect, the same row.
      return { kind: 'ok', row: ld.row };
    }
    const row = this.row(this.dimsOf(b, day, dayAt, kindAt, dimsAt, dimsEnd), KINDS[kindIdx]!, b, tokenAt, b.subarray(keyAt, keyAt + 16));
    if (!counted) {
      ld.buf = b;
      ld.tokenAt = tokenAt;
      ld.dayAt = dayAt;
      ld.kindAt = kindAt;
      ld.dimsAt = dimsAt;
      ld.dimsEnd = dimsEnd;
      ld.row = row;
    }
    return { kind: 'ok', row };
  }

  private row(d: Dims, kind: EventKind, b: Buffer, tokenAt: number, eventKey: Buffer): FactRow {
    return {
      day: d.day,
      app_id: d.app_id,
      app_version: d.app_version,
      device_model: d.device_model,
      os_version: d.os_version,
      country: d.country,
      kind,
      daily_token: b.subarray(tokenAt, tokenAt + 16),
      event_key: eventKey,
      dims_tsv: d.tsv,
    };
  }

  /** The decoded dimensions of a record, found by a hash of their raw bytes (no string is built). */
  private dimsOf(b: Buffer, day: number, dayAt: number, kindAt: number, dimsAt: number, dimsEnd: number): Dims {
    const last = this.lastDims;
    if (last.dims && sameDims(last, b, dayAt, kindAt, dimsAt, dimsEnd)) return last.dims;
    // FNV-1a over the day and dimension bytes.
    let h = 0x811c9dc5;
    for (let i = dayAt; i < kindAt; i++) h = Math.imul(h ^ b[i]!, 0x01000193);
    for (let i = dimsAt; i < dimsEnd; i++) h = Math.imul(h ^ b[i]!, 0x01000193);
    h &= 0x3fffffff;
    const hit = this.dims.get(h);
    let dims: Dims | undefined;
    if (hit !== undefined && !Array.isArray(hit)) dims = rawMatches(hit, b, dayAt, kindAt, dimsAt, dimsEnd) ? hit : undefined;
    else if (hit !== undefined) for (const d of hit) if (rawMatches(d, b, dayAt, kindAt, dimsAt, dimsEnd)) dims = d;
    if (!dims) {
      dims = this.decodeDims(b, day, dayAt, kindAt, dimsAt, dimsEnd);
      if (this.dimsCount >= this.maxCachedDims) {
        this.dims.clear();
        this.dimsCount = 0;
      }
      const again = this.dims.get(h);
      this.dims.set(h, again === undefined ? dims : Array.isArray(again) ? [...again, dims] : [again, dims]);
      this.dimsCount++;
    }
    last.buf = b;
    last.dayAt = dayAt;
    last.kindAt = kindAt;
    last.dimsAt = dimsAt;
    last.dimsEnd = dimsEnd;
    last.dims = dims;
    return dims;
  }

  private decodeDims(b: Buffer, day: number, dayAt: number, kindAt: number, dimsAt: number, dimsEnd: number): Dims {
    const s: string[] = [];
    let p = dimsAt;
    for (let i = 0; i < 5; i++) {
      const len = readInt(b, p, b.length);
      p = varintEnd.pos;
      s.push(b.toString('utf8', p, p + len));
      p += len;
    }
    const d = { day, app_id: s[0]!, app_version: s[1]!, device_model: s[2]!, os_version: s[3]!, country: s[4]! };
    const raw = Buffer.concat([b.subarray(dayAt, kindAt), b.subarray(dimsAt, dimsEnd)]);
    return { ...d, raw, dayLen: kindAt - dayAt, tsv: dimsTsv(d) };
  }

  /** Every record the shortcut does not cover: schemas/ decides (other versions, legacy single facts, typed errors). */
  private slow(b: Buffer, w: WindowOptions, visit: (v: ReadVerdict) => void): number {
    let facts: EventFact[];
    try {
      facts = decodeEventFacts(b);
    } catch (err) {
      visit({ kind: 'undecodable', code: err instanceof SchemaError ? err.code : 'DECODE_FAILED' });
      return 0;
    }
    for (const f of facts) {
      const v = judgeFact(f, w);
      visit(v.kind === 'ok' ? { kind: 'ok', row: v.row } : { kind: v.kind });
    }
    return facts.length;
  }
}
