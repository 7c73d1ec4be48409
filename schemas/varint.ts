/**
 * Avro's variable-length zig-zag integers (Avro spec, "Binary Encoding": `int` and `long`, and the
 * lengths and block counts in front of strings, bytes, arrays and maps), read and written without
 * allocating. The one implementation behind the hostile-Avro guard, the EventFact writers, the fast
 * path's generated parser (schemas/), the container reader (ingest/) and the record walker of the
 * aggregator: they are hot paths, so every function here is small, monomorphic and allocation-free.
 *
 * Reading: `readLong` returns the value, or NaN when the bytes end first or the varint is longer than
 * `maxBytes` (5 for an Avro int, 10 for a long; less where a caller wants less); `readInt` is the
 * 32-bit reader of an Avro int. Where it stopped is
 * left in `varintEnd.pos` (module state, so a read returns a plain number and no [value, position]
 * pair is allocated per varint): after the varint on success, at the failing byte otherwise;
 * `varintTruncated` tells the two failures apart. Values are exact up to 2^53 (JS numbers).
 */

/** Where the last `readLong` / `skipLong` stopped: just after the varint, or at the byte where it failed. */
export const varintEnd = { pos: 0 };

/** Most bytes of an Avro int (32 bits) and of an Avro long (64 bits). */
export const INT_MAX_BYTES = 5;
export const LONG_MAX_BYTES = 10;

/** The zig-zag varint at `pos` (bytes before `end`), or NaN; `varintEnd.pos` is where it stopped. */
export function readLong(buf: Buffer, pos: number, end: number, maxBytes: number): number {
  // Up to 4 bytes (28 bits, nearly every varint): small-integer arithmetic.
  let n = 0;
  for (let i = 0, shift = 0; i < 4 && i < maxBytes; i++, shift += 7) {
    if (pos >= end) {
      varintEnd.pos = pos;
      return NaN;
    }
    const b = buf[pos++]!;
    n |= (b & 0x7f) << shift;
    if (b < 0x80) {
      varintEnd.pos = pos;
      return (n >>> 1) ^ -(n & 1);
    }
  }
  // 5 bytes and more: doubles, exact up to 2^53.
  let mul = 0x10000000; // 2^28
  for (let i = 4; i < maxBytes; i++) {
    if (pos >= end) {
      varintEnd.pos = pos;
      return NaN;
    }
    const b = buf[pos++]!;
    n += (b & 0x7f) * mul;
    if (b < 0x80) {
      varintEnd.pos = pos;
      return n % 2 === 0 ? n / 2 : -(n + 1) / 2;
    }
    mul *= 128;
  }
  varintEnd.pos = pos;
  return NaN;
}

/**
 * An Avro int (at most 5 bytes) at `pos`, in 32-bit arithmetic: the aggregator's record walker reads
 * several per fact. NaN when cut or longer; bits beyond 32 of a malformed 5-byte varint are dropped
 * (a 32-bit reader; `readLong(..., INT_MAX_BYTES)` keeps them). `varintEnd.pos` is where it stopped.
 */
export function readInt(buf: Buffer, pos: number, end: number): number {
  let n = 0;
  for (let i = 0, shift = 0; i < INT_MAX_BYTES; i++, shift += 7) {
    if (pos >= end) {
      varintEnd.pos = pos;
      return NaN;
    }
    const b = buf[pos++]!;
    n |= (b & 0x7f) << shift;
    if (b < 0x80) {
      varintEnd.pos = pos;
      return (n >>> 1) ^ -(n & 1);
    }
  }
  varintEnd.pos = pos;
  return NaN;
}

/** The position after the varint at `pos`, or -1 (then `varintEnd.pos` is where it stopped). */
export function skipLong(buf: Buffer, pos: number, end: number, maxBytes: number): number {
  for (let i = 0; i < maxBytes; i++) {
    if (pos >= end) {
      varintEnd.pos = pos;
      return -1;
    }
    if ((buf[pos++]! & 0x80) === 0) return pos;
  }
  varintEnd.pos = pos;
  return -1;
}

/**
 * After `readLong` / `skipLong` failed on the varint at `start`: true when the bytes ran out, false
 * when the varint was longer than `maxBytes` (it failed at `start + maxBytes`).
 */
export function varintTruncated(start: number, maxBytes: number): boolean {
  return varintEnd.pos - start < maxBytes;
}

/** Writes `n` as a zig-zag varint at `pos` (room for 10 bytes needed); returns the position after it. */
export function writeLong(buf: Buffer, pos: number, n: number): number {
  let v = n >= 0 ? n * 2 : -n * 2 - 1;
  while (v >= 0x80) {
    buf[pos++] = (v & 0x7f) | 0x80;
    v = Math.floor(v / 128);
  }
  buf[pos++] = v;
  return pos;
}

/** `n` as a zig-zag varint in a buffer of its own (tests, tools, container headers: not for hot paths). */
export function longBytes(n: number): Buffer {
  const b = Buffer.allocUnsafe(LONG_MAX_BYTES);
  return b.subarray(0, writeLong(b, 0, n));
}
