import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { DAY_MS, decodeEventFacts, encodeEventFact, encodeEventFacts, eventFactType, SchemaError } from '../schemas/index.ts';
import type { EventFact, EventKind } from '../schemas/index.ts';
import { FAST_LAYOUT, FAST_PATH_ON, FactReader, layoutOf, type ReadVerdict } from './fact-reader.ts';
import { judgeFact, type FactRow } from './facts.ts';
import { FlushBuffer, sameEffect } from './flush-buffer.ts';
import { encodeFactsTsv } from './tsv.ts';

const now = Date.parse('2026-03-10T12:00:00Z');
const today = Math.floor(now / DAY_MS);
const w = { nowMs: now, maxLatenessDays: 3, futureSkewMs: 600_000 };
const KINDS: EventKind[] = ['session_start', 'session_end', 'page_view', 'app_foreground', 'app_background', 'app_status', 'crash', 'network_stats'];

// Strings with the bytes TabSeparated escapes, multi-byte UTF-8 and lone surrogates (avsc writes
// those as U+FFFD's bytes, so both decoders must agree on the replacement).
const str = fc.string({ unit: fc.constantFrom('a', 'Z', '\t', '\\', '\n', '\u0000', 'é', '日', '\u{1F600}', '\ud800', '.'), maxLength: 12 });
const hash = fc.uint8Array({ minLength: 16, maxLength: 16 }).map((a) => Buffer.from(a));
const factArb: fc.Arbitrary<EventFact> = fc.record({
  event_key: hash,
  daily_token: hash,
  day: fc.integer({ min: today - 6, max: today + 2 }),
  kind: fc.constantFrom(...KINDS),
  app_id: str,
  app_version: str,
  device_model: str,
  os_version: str,
  country: str,
  duration_ms: fc.option(fc.integer({ min: -1e12, max: 1e12 }), { nil: null }),
  crash_signature: fc.option(str, { nil: null }),
  exception_type: fc.option(str, { nil: null }),
});

/** Avro long (zigzag varint) of a small non-negative number. */
const zigzag = (n: number): Buffer => {
  const out: number[] = [];
  let v = 2 * n;
  while (v >= 0x80) {
    out.push((v & 0x7f) | 0x80);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return Buffer.from(out);
};

/** One counted crash of today, the record the legacy-record and refusal tests start from. */
const crashFact: EventFact = {
  event_key: Buffer.alloc(16, 1),
  daily_token: Buffer.alloc(16, 2),
  day: today,
  kind: 'crash',
  app_id: 'a',
  app_version: '1',
  device_model: 'm',
  os_version: '1',
  country: 'DE',
  duration_ms: null,
  crash_signature: 's',
  exception_type: null,
};

const withoutTsv = (r: FactRow): FactRow => {
  const { dims_tsv: _, ...rest } = r;
  return rest;
};

describe('FactReader: the shortcut decode of the known EventFact layout', () => {
  it('is on for the schema schemas/ exports (a schema change must update FAST_LAYOUT deliberately)', () => {
    expect(layoutOf(eventFactType)).toEqual([...FAST_LAYOUT]);
    expect(FAST_PATH_ON).toBe(true);
  });

  it('gives the same verdict, row and TabSeparated bytes as decodeEventFacts + judgeFact', () => {
    fc.assert(
      fc.property(factArb, (f) => {
        const buf = encodeEventFacts([f]);
        const fast = new FactReader().read(buf, w);
        const slow = judgeFact(decodeEventFacts(buf)[0]!, w);
        expect(fast.kind).toBe(slow.kind);
        if (fast.kind === 'ok' && slow.kind === 'ok') {
          expect(fast.row.dims_tsv).toBeDefined();
          expect(withoutTsv(fast.row)).toEqual(slow.row);
          expect(encodeFactsTsv([fast.row])).toEqual(encodeFactsTsv([slow.row]));
        }
      }),
      { numRuns: 400 },
    );
  });

  it('gives one verdict per fact of a batch record, in order, the same as for the facts one by one', () => {
    fc.assert(
      fc.property(fc.array(factArb, { minLength: 1, maxLength: 40 }), fc.boolean(), (facts, blocks) => {
        let buf = encodeEventFacts(facts);
        if (blocks && facts.length > 1) {
          // The same array in two blocks, the first with a negative count and its byte size (Avro spec).
          const one = encodeEventFacts(facts.slice(0, 1));
          const rest = encodeEventFacts(facts.slice(1));
          const item = one.subarray(11, one.length - 1);
          buf = Buffer.concat([one.subarray(0, 10), Buffer.from([1]), zigzag(item.length), item, rest.subarray(10)]);
          expect(decodeEventFacts(buf)).toEqual(decodeEventFacts(encodeEventFacts(facts)));
        }
        const got: ReadVerdict[] = [];
        expect(new FactReader().readRecord(buf, w, (v) => got.push(v))).toBe(facts.length);
        const one = new FactReader();
        const want = facts.map((f) => one.read(encodeEventFacts([f]), w));
        expect(got.map((v) => v.kind)).toEqual(want.map((v) => v.kind));
        got.forEach((v, i) => {
          const x = want[i]!;
          if (v.kind === 'ok' && x.kind === 'ok') expect(withoutTsv(v.row)).toEqual(withoutTsv(x.row));
        });
      }),
      { numRuns: 200 },
    );
  });

  it('counts a legacy single-fact record (written before batch records) like a batch of one', () => {
    const f = crashFact;
    const legacy = new FactReader().read(encodeEventFact(f), w);
    const batch = new FactReader().read(encodeEventFacts([f]), w);
    expect(legacy.kind).toBe('ok');
    if (legacy.kind === 'ok' && batch.kind === 'ok') expect(withoutTsv(legacy.row)).toEqual(withoutTsv(batch.row));
  });
});

describe('FactReader: records it must not count as they are', () => {
  it('hands every malformed or foreign record to schemas/ and returns its typed code', () => {
    const f = crashFact;
    const good = encodeEventFacts([f, { ...f, kind: 'page_view', crash_signature: null }]);
    const r = new FactReader();
    const codeOf = (b: Buffer) => {
      try {
        decodeEventFacts(b);
        return 'decoded';
      } catch (e) {
        return e instanceof SchemaError ? e.code : 'DECODE_FAILED';
      }
    };
    const foreign = Buffer.from(good);
    foreign[5] = foreign[5]! ^ 0xff; // another fingerprint
    const bad = [good.subarray(0, good.length - 1), Buffer.concat([good, Buffer.from([0])]), foreign, Buffer.from([1, 2, 3])];
    const badUnion = Buffer.from(good);
    badUnion[badUnion.length - 2] = 4; // union branch 2 does not exist (in the last fact: nothing is counted)
    bad.push(badUnion);
    const moreFacts = Buffer.from(good);
    moreFacts[10] = 6; // the array claims 3 facts, holds 2
    bad.push(moreFacts);
    for (const b of bad) {
      const got: ReadVerdict[] = [];
      expect(r.readRecord(b, w, (v) => got.push(v))).toBe(0);
      expect(
        got.map((v) => v.kind),
        b.toString('hex'),
      ).toEqual(['undecodable']);
      if (got[0]!.kind === 'undecodable') expect(got[0]!.code).toBe(codeOf(b));
    }
    const got: ReadVerdict[] = [];
    expect(r.readRecord(good, w, (v) => got.push(v))).toBe(2);
    expect(got.map((v) => v.kind)).toEqual(['ok', 'ok']);
  });

  it('keeps out late and future days like judgeFact', () => {
    const f = (day: number): EventFact => ({
      event_key: Buffer.alloc(16, 1),
      daily_token: Buffer.alloc(16, 2),
      day,
      kind: 'page_view',
      app_id: 'a',
      app_version: '1',
      device_model: 'm',
      os_version: '1',
      country: 'DE',
      duration_ms: 5,
      crash_signature: null,
      exception_type: null,
    });
    const r = new FactReader();
    expect(r.read(encodeEventFacts([f(today - 4)]), w).kind).toBe('late');
    expect(r.read(encodeEventFacts([f(today + 1)]), w).kind).toBe('future');
    expect(r.read(encodeEventFacts([f(today - 3)]), w).kind).toBe('ok');
  });
});

/** What rows do to daily_agg (DESIGN.md): per group, the four sets the uniqExact states hold. */
function effect(rows: readonly FactRow[]): string[] {
  const out = new Set<string>();
  for (const r of rows) {
    const g = JSON.stringify([r.day, r.app_id, r.app_version, r.device_model, r.os_version, r.country]);
    const tok = r.daily_token.toString('hex');
    out.add(`${g} devices ${tok}`);
    if (r.kind === 'session_start') out.add(`${g} sessions ${r.event_key.toString('hex')}`);
    if (r.kind === 'crash') {
      out.add(`${g} crashes ${r.event_key.toString('hex')}`);
      out.add(`${g} crashed ${tok}`);
    }
  }
  return [...out].sort();
}

// Few devices, few values: rows collide on purpose (repeats, same device in several groups).
const small = fc.record({
  event: fc.integer({ min: 0, max: 6 }),
  device: fc.integer({ min: 0, max: 3 }),
  kind: fc.constantFrom<EventKind>('session_start', 'crash', 'page_view', 'app_foreground'),
  app_version: fc.constantFrom('1', '2'),
  day: fc.constantFrom(today, today - 1),
});
type Small = { event: number; device: number; kind: EventKind; app_version: string; day: number };
const toFact = (x: Small): EventFact => ({
  event_key: Buffer.alloc(16, 10 + x.event),
  daily_token: Buffer.alloc(16, 100 + x.device),
  day: x.day,
  kind: x.kind,
  app_id: 'a',
  app_version: x.app_version,
  device_model: 'm',
  os_version: '13',
  country: 'DE',
  duration_ms: null,
  crash_signature: null,
  exception_type: null,
});

describe('in-flush dedup keeps the effect of every record', () => {
  it('each flush keeps exactly the effect of the records read since the last one (fast and decoded paths mixed)', () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(small, fc.boolean(), fc.integer({ min: 0, max: 9 })), { maxLength: 60 }), (xs) => {
        const reader = new FactReader();
        const buffer = new FlushBuffer();
        let all: FactRow[] = [];
        for (const [x, viaSlowPath, flushDice] of xs) {
          if (flushDice === 0) {
            // A flush: what it holds must have the effect of every record read since the last one.
            expect(effect(buffer.take().rows)).toEqual(effect(all));
            all = [];
          }
          const buf = encodeEventFacts([toFact(x)]);
          // Records of other writer versions take decodeEventFacts (rows without dims_tsv): mixed in.
          const v = viaSlowPath ? judgeFact(decodeEventFacts(buf)[0]!, w) : reader.read(buf, w);
          if (v.kind !== 'ok') throw new Error(v.kind);
          all.push(v.row);
          buffer.addRow(v.row);
        }
        const kept = buffer.take().rows;
        expect(effect(kept)).toEqual(effect(all));
      }),
      { numRuns: 300 },
    );
  });

  it('sameEffect holds exactly when two rows change the same states (both directions)', () => {
    const reader = new FactReader();
    const rowOf = (x: Small, slow: boolean) => {
      const buf = encodeEventFacts([toFact(x)]);
      const v = slow ? judgeFact(decodeEventFacts(buf)[0]!, w) : reader.read(buf, w);
      if (v.kind !== 'ok') throw new Error(v.kind);
      return v.row;
    };
    fc.assert(
      fc.property(small, small, fc.boolean(), fc.boolean(), (x, y, sx, sy) => {
        const a = rowOf(x, sx);
        const b = rowOf(y, sy);
        expect(sameEffect(a, b)).toBe(JSON.stringify(effect([a])) === JSON.stringify(effect([b])));
      }),
      { numRuns: 1000 },
    );
  });
});
