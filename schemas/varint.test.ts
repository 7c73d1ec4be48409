/**
 * The one varint implementation (varint.ts) against avsc: the same bytes written, the same values
 * read, for ints, longs up to 2^53 and the edges; where a read stops and why it fails.
 */
import avro from 'avsc';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { INT_MAX_BYTES, LONG_MAX_BYTES, longBytes, readInt, readLong, skipLong, varintEnd, varintTruncated, writeLong } from './index.ts';

const LONG = avro.Type.forSchema('long');
const INT = avro.Type.forSchema('int');
const safe = fc.integer({ min: Number.MIN_SAFE_INTEGER, max: Number.MAX_SAFE_INTEGER }).filter((n) => Math.abs(n) < 2 ** 52);
const int32 = fc.integer({ min: -(2 ** 31), max: 2 ** 31 - 1 });
const edges = [0, -1, 1, 63, -64, 64, -65, 2 ** 31 - 1, -(2 ** 31), 2 ** 35, -(2 ** 35) - 1, 2 ** 52 - 1, -(2 ** 52)];

describe('varint', () => {
  it('writes what avsc writes and reads it back', () => {
    const check = (n: number) => {
      const b = Buffer.alloc(12, 0xee);
      const end = writeLong(b, 1, n);
      const ref = LONG.toBuffer(n);
      expect(b.subarray(1, end)).toEqual(ref);
      expect(longBytes(n)).toEqual(ref);
      expect(readLong(b, 1, end, LONG_MAX_BYTES)).toBe(n);
      expect(varintEnd.pos).toBe(end);
      expect(skipLong(b, 1, end, LONG_MAX_BYTES)).toBe(end);
    };
    edges.forEach(check);
    fc.assert(
      fc.property(safe, (n) => check(n)),
      { numRuns: 500 },
    );
  });

  it('reads Avro ints as avsc does, in both readers', () => {
    fc.assert(
      fc.property(int32, (n) => {
        const b = INT.toBuffer(n);
        expect(readInt(b, 0, b.length)).toBe(n);
        expect(varintEnd.pos).toBe(b.length);
        expect(readLong(b, 0, b.length, INT_MAX_BYTES)).toBe(n);
      }),
      { numRuns: 500 },
    );
  });

  it('tells a cut varint from one longer than allowed, and stops where the old readers did', () => {
    const cont = Buffer.from([0x80, 0x80, 0x80]);
    expect(readLong(cont, 0, 3, LONG_MAX_BYTES)).toBeNaN();
    expect(varintEnd.pos).toBe(3);
    expect(varintTruncated(0, LONG_MAX_BYTES)).toBe(true);
    expect(skipLong(cont, 0, 3, LONG_MAX_BYTES)).toBe(-1);
    expect(varintTruncated(0, LONG_MAX_BYTES)).toBe(true);

    const long = Buffer.alloc(12, 0x80);
    expect(readLong(long, 1, 12, LONG_MAX_BYTES)).toBeNaN();
    expect(varintEnd.pos).toBe(11);
    expect(varintTruncated(1, LONG_MAX_BYTES)).toBe(false);
    expect(readInt(long, 0, 12)).toBeNaN();
    expect(varintEnd.pos).toBe(INT_MAX_BYTES);
    // Exactly maxBytes continuation bytes and then the end: too long, not cut (as the guard always said).
    expect(readLong(long, 0, INT_MAX_BYTES, INT_MAX_BYTES)).toBeNaN();
    expect(varintTruncated(0, INT_MAX_BYTES)).toBe(false);
  });
});
