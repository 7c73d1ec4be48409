/**
 * The generated binary fast path (fast.ts) against the generic path (guardBody + avsc decode +
 * processBatch): same SplitResult byte for byte, or the same thrown error, on random batches (valid
 * ones, ones with bad values including free text in the dimensions' named formats, several days,
 * consent off, non-ASCII text) and on hostile mutations of
 * their bytes. The fast path must also really answer the valid ones (not always hand back to the
 * generic path, which would make the comparison empty). Negative control: a fast path built without one
 * check (the crash signature format) makes the same differential property fail.
 */
import type avro from 'avsc';
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { classify, type RecordSchema } from './classify.ts';
import { buildDraftSchema, FAST_PATHS } from './compile.ts';
import { compilePersonal } from './personal.ts';
import { CATEGORIES, compileSplit, DAY_MS, guardBody, readSchema, type CategoryMap, type CompiledSplit, type SplitResult } from './index.ts';
import { device, NOW, NS } from '../testing/schema-fixtures.ts';
import { tokenizer } from '../testing/tokenizer.ts';

const p = compileSplit();
/**
 * The map before crash traces and app status records became never stored (P0D): it keeps per-event
 * fields of two union branches, so the generated copies of partly kept branches and the per-event sets
 * of branch values (personal.ts) are still exercised, for any map that keeps such fields again.
 */
const KEEPING_BRANCH_FIELDS: CategoryMap = {
  ...(CATEGORIES as CategoryMap),
  crash_logs: { ...CATEGORIES.crash_logs, retention: 'P30D' },
  app_usage_facts: { ...CATEGORIES.app_usage_facts, retention: 'P30D' },
};
const pk = compileSplit({ categories: KEEPING_BRANCH_FIELDS });
const LIMITS = { maxStringLength: 65_536, maxCollectionLength: 10_000, maxTotalItems: 100_000, maxItems: { events: 1000 } };

const text = (max: number) =>
  fc.string({ minLength: 1, maxLength: max, unit: fc.constantFrom('a', 'Z', '7', '-', 'é', '中', '😀') }).filter((s) => s.length <= max);
const ascii = (max: number) => fc.string({ minLength: 1, maxLength: max, unit: fc.constantFrom('a', 'b', '0', '9', '.', '_') });
const optional = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: null });
const uuid = fc.tuple(fc.uuid(), fc.boolean()).map(([u, up]) => (up ? u.toUpperCase() : u));

/** Mostly a valid value, sometimes free text or a near miss the dimension's named format refuses. */
const mostly = (ok: string[], bad: string[], okWeight = 6) =>
  fc.oneof({ weight: okWeight, arbitrary: fc.constantFrom(...ok) }, { weight: 1, arbitrary: fc.constantFrom(...bad) });
const appVersion = mostly(['1.0.0', '13.0.6.1', '8.0.40-beta1'], ['v1.0', '1.0.0 build by alice', '1.0.0-beta 2'], 2);

/** The device's dimensions: sometimes bad (`withBad`, a batch-level reject), else always valid. */
const dims = (withBad: boolean) => {
  const pick = (ok: string[], bad: string[]) => (withBad ? mostly(ok, bad) : fc.constantFrom(...ok));
  return {
    manufacturer: pick(['Xiaomi', 'samsung'], ['Xiaomi <alice@example.com>']),
    model: pick(['M2102J20SG', '2201116SG', 'Pixel 7'], ['Модель', 'M2102J20SG; imei=861234567890123']),
    os_version: pick(['12', '13', 'MIUI 14.0.3'], ['13 (Alice phone)', 'Android']),
    app_id: pick(['com.miui.weather2', 'com.example.mail'], ['weather', 'com.miui.weather2 alice']),
    app_version: pick(['13.0.6.1', '13.0.6.2', '8.0.40-beta1'], ['13.0.6.1 (alice)']),
  };
};

const payload = fc.oneof(
  fc.constant({ [`${NS}.SessionStart`]: {} }),
  fc.integer({ min: -5, max: 10_000_000 }).map((d) => ({ [`${NS}.SessionEnd`]: { duration_ms: d } })), // negative: rejected
  fc.tuple(text(140), fc.nat(1e6)).map(([page, d]) => ({ [`${NS}.PageView`]: { page, duration_ms: d } })), // > 128: rejected
  fc.constant({ [`${NS}.AppForeground`]: {} }),
  fc.constant({ [`${NS}.AppBackground`]: {} }),
  fc
    .tuple(fc.constantFrom('install', 'update', 'delete'), text(40), ascii(20))
    .map(([action, pkg, version]) => ({ [`${NS}.AppStatus`]: { action, package: pkg, version } })),
  fc
    .tuple(
      fc.constantFrom('9f86d081884c7d65', 'deadbeefcafe0001', 'NOT-HEX!'),
      fc.constantFrom('java.lang.IllegalStateException', 'Foo$Bar', '1bad'),
      optional(text(300)),
      appVersion,
    )
    .map(([signature, exception_type, st, app_version]) => ({ [`${NS}.Crash`]: { signature, exception_type, app_version, stack_trace: st } })),
  fc
    .tuple(fc.nat(1000), fc.integer({ min: -1, max: 1000 }), fc.nat(5000))
    .map(([a, b, c]) => ({ [`${NS}.NetworkStats`]: { request_count: a, error_count: b, latency_ms: c } })),
);

const batchArbWith = (withBadDims: boolean) =>
  fc.record({
    batch_id: fc.uuid(),
    sent_at: fc.constant(NOW - 1000),
    device: fc.record({
      device_id: fc.oneof(ascii(30), fc.constant('')),
      imei: optional(ascii(15)),
      oaid: optional(text(30)),
      gaid: optional(ascii(36)),
      imsi: optional(ascii(15)),
      sim_mcc: optional(fc.constantFrom('460', '250', '404', '262', '999', '46')),
      sim_mnc: optional(fc.constantFrom('01', '260')),
      sim_operator: optional(text(30)),
      ...dims(withBadDims),
      rom_version: fc.constant('MIUI 14.0.3'),
      sdk_version: fc.constant('2.4.0'),
      locale: fc.constantFrom('zh-CN', 'ru-RU'),
      timezone: fc.constant('Asia/Shanghai'),
      region: optional(fc.constantFrom('CN', 'RU', 'IN', 'DE', 'xx')),
      account_id: optional(text(30)),
      location: optional(
        fc.record({ lat: fc.double({ min: -90, max: 90, noNaN: true }), lon: fc.double({ min: -180, max: 180, noNaN: true }), accuracy_m: fc.constant(10) }),
      ),
    }),
    consent: fc.record({
      analytics: fc.oneof({ weight: 5, arbitrary: fc.constant(true) }, { weight: 1, arbitrary: fc.constant(false) }),
      personalised_ads: fc.boolean(),
      location: fc.boolean(),
    }),
    // Mostly today; sometimes yesterday (two days in one batch), sometimes too old or from the future.
    events: fc.array(
      fc.record({
        event_id: uuid,
        time: fc.oneof(
          { weight: 8, arbitrary: fc.integer({ min: NOW - 3_600_000, max: NOW }) },
          { weight: 2, arbitrary: fc.integer({ min: NOW - DAY_MS, max: NOW }) },
          { weight: 1, arbitrary: fc.constantFrom(NOW - 5 * DAY_MS, NOW + DAY_MS) },
        ),
        session_id: uuid,
        payload,
      }),
      { minLength: 0, maxLength: 25 },
    ),
  });
const batchArb = batchArbWith(true);
/** For the negative controls: the device is always valid, so the broken event-level check decides. */
const cleanDeviceArb = batchArbWith(false);

type Outcome = { ok: true; r: SplitResult } | { ok: false; name: string; code: unknown; message: string };

function run(fn: () => SplitResult): Outcome {
  try {
    return { ok: true, r: fn() };
  } catch (e) {
    const err = e as Error & { code?: unknown };
    return { ok: false, name: err.name, code: err.code, message: err.message };
  }
}
const ctx = () => ({ receivedAt: NOW, clientIp: '198.51.100.23', tokenizer: tokenizer() });
const generic = (pl: CompiledSplit, body: Buffer) =>
  run(() => {
    guardBody(pl.batchType, body, LIMITS);
    return pl.processBatch(pl.batchType.fromBuffer(body), ctx());
  });
const viaBody = (pl: CompiledSplit, body: Buffer) => run(() => pl.processBody(body, ctx(), LIMITS));

describe('binary fast path', () => {
  it('exists for the checked-in schemas', () => {
    expect(p.hasFastPath).toBe(true);
  });

  /** The differential property on random batches, for the split `s`. */
  const differential = (s: CompiledSplit, numRuns: number) => {
    const fast = FAST_PATHS.get(s)!;
    let answered = 0;
    let allAccepted = 0;
    fc.assert(
      fc.property(batchArb, (b) => {
        const body = s.batchType.toBuffer(b);
        const g = generic(s, body);
        expect(viaBody(s, body)).toEqual(g);
        const f = fast(body, ctx(), LIMITS);
        if (f) {
          answered++;
          expect({ ok: true, r: f }).toEqual(g); // when it answers, it answers right
        }
        // Everything accepted, nothing else: the fast path must not hand such a batch back.
        if (g.ok && g.r.rejects.length === 0 && g.r.accepted === b.events.length && b.events.length > 0) {
          allAccepted++;
          expect(f).toBeDefined();
        }
      }),
      { numRuns },
    );
    expect(allAccepted).toBeGreaterThan(numRuns / 20);
    expect(answered).toBeGreaterThanOrEqual(allAccepted);
  };

  it('gives exactly the generic result on random batches, and answers the acceptable ones itself', () => {
    differential(p, 200);
  });

  it('the same with a map that keeps per-event fields of union branches (crash traces, app statuses: copied partly kept branches)', () => {
    expect(pk.personalClasses[0]!.schema.fields.map((f) => f.name)).toContain('events_crash');
    differential(pk, 100);
  });

  it('gives the same result or the same error on hostile mutations of valid bodies', () => {
    fc.assert(
      fc.property(
        batchArb,
        fc.array(fc.tuple(fc.nat(), fc.integer({ min: 0, max: 255 }), fc.constantFrom('set', 'cut', 'insert')), { minLength: 1, maxLength: 3 }),
        (b, edits) => {
          let body = Buffer.from(p.batchType.toBuffer(b));
          for (const [at, byte, op] of edits) {
            const i = body.length ? at % body.length : 0;
            if (op === 'set' && body.length) body[i] = byte;
            else if (op === 'cut') body = body.subarray(0, i);
            else body = Buffer.concat([body.subarray(0, i), Buffer.from([byte]), body.subarray(i)]);
          }
          expect(viaBody(p, body)).toEqual(generic(p, body));
        },
      ),
      { numRuns: 300 },
    );
  });

  it('gives the same answer for overlong varints, non-ASCII strings over the byte limit and multi-block arrays', () => {
    const b = { ...fc.sample(batchArb, { seed: 7, numRuns: 1 })[0]! };
    b.consent = { analytics: true, personalised_ads: true, location: true };
    b.device = { ...b.device, manufacturer: 'Xiaomi', model: 'M2102J20SG', os_version: '13', app_id: 'com.miui.weather2', app_version: '13.0.6.1' };
    // Multi-block array encoding (negative count with a byte size) and a non-canonical zero at the end.
    const events = b.events.length
      ? b.events
      : [{ event_id: '00000000-0000-4000-8000-000000000000', time: NOW - 1000, session_id: 'x', payload: { [`${NS}.AppForeground`]: {} } }];
    const evType = ((p.batchType as avro.types.RecordType).field('events').type as avro.types.ArrayType).itemsType;
    const head = p.batchType.toBuffer({ ...b, events: [] }).subarray(0, -1);
    const items = Buffer.concat(events.map((e: unknown) => evType.toBuffer(e)));
    const zig = (n: number) => Buffer.from([n < 0 ? -2 * n - 1 : 2 * n]);
    const blocks = Buffer.concat([head, zig(-events.length), Buffer.from([items.length * 2]), items, Buffer.from([0x80, 0x00])]);
    const out = viaBody(p, blocks);
    expect(out).toEqual(generic(p, blocks));
    // 100 characters of 3 bytes each: 300 bytes, over the 128 limit in bytes but not in UTF-16 units
    // (the fast path hands it back; the generic path accepts it).
    const wide = { ...b, events: [{ ...events[0], payload: { [`${NS}.PageView`]: { page: '中'.repeat(100), duration_ms: 5 } } }] };
    const body = p.batchType.toBuffer(wide);
    expect(viaBody(p, body)).toEqual(generic(p, body));
    expect((viaBody(p, body) as { r: SplitResult }).r.accepted).toBe(1);
  });

  /**
   * The differential property against a fast path built from a copy of the schema without one field's
   * format. The check stops at the first counterexample; over 30 seeds it took 2-173 batches for the
   * signature (mean 65) and 3-166 for the app version, so a bound of 200 missed it about 1 time in 20:
   * 2,000 leaves a miss at about e^-30.
   */
  const failsWithoutFormat = (path: string, numRuns: number): boolean => {
    const lax = JSON.parse(JSON.stringify(readSchema('batch'))) as RecordSchema;
    delete classify(lax, CATEGORIES as CategoryMap).get(path)!.field.format;
    const broken = FAST_PATHS.get(compileSplit({ batchSchema: lax }))!;
    const res = fc.check(
      fc.property(cleanDeviceArb, (b) => {
        const body = p.batchType.toBuffer(b);
        const f = broken(body, ctx(), LIMITS);
        const g = generic(p, body);
        return !f || JSON.stringify({ ok: true, r: f }) === JSON.stringify(g);
      }),
      { numRuns },
    );
    return res.failed;
  };

  it('negative control: a fast path built without the crash app_version format (a named format) fails the same property', () => {
    expect(failsWithoutFormat('events[].payload.crash.app_version', 2000)).toBe(true);
  });

  it('negative control: a fast path built without the crash signature format check fails the same property', () => {
    expect(failsWithoutFormat('events[].payload.crash.signature', 2000)).toBe(true);
  });

  // ---- the personal records' per-event sets, read from the copied bytes (personal.ts `distinctEvents`) ----
  // With KEEPING_BRANCH_FIELDS: the checked-in map keeps no per-event field in the device record, so it has no set of branch values.

  /**
   * Batches made for the sets: few distinct values drawn many times (duplicates near and far apart), in
   * any order, with null and empty stack traces, texts whose lengths straddle a digit (9/10 units: the
   * canonical order compares the length prefix as text), non-ASCII and supplementary characters (UTF-16
   * order differs from byte order), items over 64 bytes, and times over a few hours.
   */
  const word = fc.constantFrom('a', 'b', 'ab', '123456789', '1234567890', 'é', 'ÿ', '\uffff', '😀', 'x'.repeat(70), 'x'.repeat(71), '');
  const setPayload = fc.oneof(
    fc.constant({ [`${NS}.SessionStart`]: {} }),
    fc.constant({ [`${NS}.AppForeground`]: {} }),
    fc
      .tuple(
        word,
        word.filter((w) => w.length <= 64),
      )
      .map(([pkg, version]) => ({ [`${NS}.AppStatus`]: { action: 'update', package: pkg || 'p', version } })),
    fc.option(word, { nil: null }).map((st) => ({
      [`${NS}.Crash`]: { signature: '9f86d081884c7d65', exception_type: 'Foo$Bar', app_version: '1.0.0', stack_trace: st },
    })),
    fc.constant({ [`${NS}.NetworkStats`]: { request_count: 1, error_count: 0, latency_ms: 5 } }),
  );
  const setBatchArb = fc
    .tuple(
      fc.array(fc.tuple(fc.integer({ min: 0, max: 3 }), fc.integer({ min: 0, max: 3_599_999 }), setPayload), { minLength: 1, maxLength: 40 }),
      fc.constantFrom('460', '250', '262'),
    )
    .map(([evs, mcc]) => {
      const hour = Math.floor(NOW / 3_600_000) * 3_600_000 - 3 * 3_600_000;
      return {
        batch_id: 'b',
        sent_at: NOW - 1000,
        device: device({ sim_mcc: mcc, location: mcc === '250' ? { lat: 55.7, lon: 37.6, accuracy_m: 10 } : null }),
        consent: { analytics: true, personalised_ads: true, location: true },
        events: evs.map(([h, ms, pl], i) => ({
          event_id: `00000000-0000-4000-8000-${String(i).padStart(12, '0')}`,
          time: Math.min(hour + h * 3_600_000 + ms, NOW),
          session_id: 's',
          payload: pl,
        })),
      };
    });

  it('writes the personal records byte for byte as the generic path on batches full of repeated set items, and answers them itself', () => {
    const fast = FAST_PATHS.get(pk)!;
    let answered = 0;
    fc.assert(
      fc.property(setBatchArb, (b) => {
        const body = pk.batchType.toBuffer(b);
        const g = generic(pk, body);
        const f = fast(body, ctx(), LIMITS);
        if (g.ok && g.r.accepted === b.events.length) {
          expect(f).toBeDefined();
          answered++;
        }
        if (f) expect({ ok: true, r: f }).toEqual(g);
      }),
      { numRuns: 300 },
    );
    expect(answered).toBe(300); // every batch here is fully accepted
  });

  /** The draft's events from a batch's events (the kept fields of each branch), as the fast path copies them. */
  const batchSchema = readSchema('batch') as RecordSchema;
  const personal = compilePersonal(buildDraftSchema(batchSchema, classify(batchSchema, KEEPING_BRANCH_FIELDS)), KEEPING_BRANCH_FIELDS);
  const draftItem = ((personal.draftEventsType as avro.types.ArrayType).itemsType as avro.types.RecordType).fields;
  const payloadType = draftItem.find((f) => f.name === 'payload')!.type as avro.types.WrappedUnionType;
  const toDraft = (e: { time: number; payload: Record<string, Record<string, unknown>> }) => {
    const [name, v] = Object.entries(e.payload)[0]!;
    const branch = payloadType.types.find((t) => t.name!.endsWith(`.${name.split('.').pop()}`)) as avro.types.RecordType;
    return { time: e.time, payload: { [branch.name!]: Object.fromEntries(branch.fields.map((f) => [f.name, v[f.name] ?? null])) } };
  };
  /** The class records of a batch's events read back whole (the reference) and through a reducer of their bytes. */
  const recordsBoth = (
    b: { sent_at: number; device: object; consent: object; events: Array<{ time: number; payload: Record<string, Record<string, unknown>> }> },
    reduce: (q: Buffer, n: number) => unknown[] | undefined,
  ) => {
    const framed = personal.draftEventsType.toBuffer(b.events.map(toDraft));
    const all = personal.draftEventsType.fromBuffer(framed) as unknown[];
    const q = framed.subarray(framed.length > 2 && all.length >= 64 ? 2 : 1, -1); // the count's varint, and the closing 0
    const head = { sent_at: b.sent_at, device: b.device, consent: b.consent };
    const pctx = { receivedAt: NOW, zone: 'row' as const, clientIp: null };
    const hex = (events: unknown[]) =>
      personal
        .records({ ...head, events }, Buffer.from('d'), pctx)
        .map((r) => r.value.toString('hex'))
        .join();
    return { reference: hex(all), reduced: hex(reduce(q, all.length) ?? []) };
  };

  it('reduces the copied event bytes to events that give the same sets as every event read back', () => {
    fc.assert(
      fc.property(setBatchArb, (b) => {
        const { reference, reduced } = recordsBoth(b, (q, n) => personal.distinctEvents(q, 0, q.length, n));
        expect(reduced).toBe(reference);
      }),
      { numRuns: 300 },
    );
    // Bytes that are not n events: no answer (the fast path hands back).
    const q = personal.draftEventsType.toBuffer([toDraft({ time: NOW, payload: { [`${NS}.SessionStart`]: {} } })]).subarray(1, -1);
    expect(personal.distinctEvents(q, 0, q.length, 2)).toBeUndefined();
    expect(personal.distinctEvents(q, 0, q.length - 1, 1)).toBeUndefined();
  });

  it('negative control: a reducer keeping one item per event kind (the first) fails the same property', () => {
    const firstPerKind = (q: Buffer, n: number) => {
      const all = personal.draftEventsType.fromBuffer(Buffer.concat([Buffer.from([2 * n]), q, Buffer.from([0])])) as Array<{ payload: object }>;
      const seen = new Set<string>();
      return all.filter((e) => {
        const k = Object.keys(e.payload)[0]!;
        return !seen.has(k) && seen.add(k);
      });
    };
    const res = fc.check(
      fc.property(setBatchArb, (b) => {
        const { reference, reduced } = recordsBoth(b, firstPerKind);
        return reduced === reference;
      }),
      { numRuns: 300 },
    );
    expect(res.failed).toBe(true);
  });
});
