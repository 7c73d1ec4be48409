import type avro from 'avsc';
import { describe, expect, it } from 'vitest';
import {
  compileSplit,
  DAY_MS,
  DEFAULT_LIMITS,
  decodeEventFacts,
  readSchema,
  retentionDays,
  SchemaBuildError,
  typeOf,
  CATEGORIES,
  type CategoryMap,
  type CompiledSplit,
} from './index.ts';
import { classify, type ArraySchema, type RecordSchema } from './classify.ts';
import { FAST_PATHS } from './compile.ts';
import { batch, device, event, eventPayload, NOW, NS } from '../testing/schema-fixtures.ts';
import { tokenizer } from '../testing/tokenizer.ts';

const split = compileSplit();
const ctx = (over = {}) => ({ receivedAt: NOW, clientIp: '203.0.113.9', tokenizer: tokenizer(), ...over });
const clone = <T>(x: T): T => JSON.parse(JSON.stringify(x)) as T;
/** A copy of a checked-in schema, to break in one place. */
const schemaCopy = (name: string) => clone(readSchema(name) as RecordSchema);
/** The field at `path` (classify's paths: `device.imei`, `events[].payload.crash.signature`) of a categorised schema. */
const fieldOf = (s: RecordSchema, path: string) => classify(s, CATEGORIES as CategoryMap).get(path)!.field;
/** The decoded personal record of a retention class (`p30d`: the device record; `p7d`: IP and precise location). */
const personalOf = (r: { personal: { value: Buffer; retentionClass: string }[] }, cls = 'p30d', s: CompiledSplit = split) => {
  const c = s.personalClasses.find((x) => x.name === cls)!;
  const rec = r.personal.find((p) => p.retentionClass === cls);
  return rec ? (c.type.fromBuffer(rec.value.subarray(c.header.length)) as Record<string, unknown> & { device: Record<string, unknown> }) : undefined;
};
/** Every fact of a split, in record order. */
const factsOf = (r: { events: { value: Buffer }[] }) => r.events.flatMap((e) => decodeEventFacts(e.value));
/**
 * The map as it was before crash traces and app status records became never stored (P0D, policy 1.1 and
 * 1.1.4): it keeps them 30 days per device. The control of the tests below, and the map that still
 * exercises the per-event sets of union branches (personal.ts) the checked-in map no longer has.
 */
const keepingTraces = (): CategoryMap => ({
  ...(CATEGORIES as CategoryMap),
  crash_logs: { ...CATEGORIES.crash_logs, retention: 'P30D' },
  app_usage_facts: { ...CATEGORIES.app_usage_facts, retention: 'P30D' },
});
const withTraces = compileSplit({ categories: keepingTraces() });

describe('build-time refusal', () => {
  it('refuses a field with no category, naming its path', () => {
    const s = schemaCopy('batch');
    delete fieldOf(s, 'device.imei').category;
    expect(() => compileSplit({ batchSchema: s })).toThrowError(/Batch\.device\.imei has no "category"/);
  });
  it('refuses an unknown category, naming its path', () => {
    const s = schemaCopy('batch');
    fieldOf(s, 'events[].payload.crash.signature').category = 'crash_stuff';
    try {
      compileSplit({ batchSchema: s });
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(SchemaBuildError);
      expect((e as SchemaBuildError).code).toBe('SCHEMA_FIELD_UNKNOWN_CATEGORY');
      expect((e as SchemaBuildError).path).toBe('Batch.events[].payload.Crash.signature');
    }
  });
  it('refuses an EventFact field that copies a personal field', () => {
    const f = schemaCopy('event-fact');
    f.fields.find((x) => x.name === 'device_model')!.from = 'device.imei';
    expect(() => compileSplit({ eventFactSchema: f })).toThrowError(/device_identifiers/);
  });
  it('refuses an events-topic wrapper with a field besides facts (every byte must be an EventFact field)', () => {
    const w = schemaCopy('event-fact-batch');
    w.fields.push({ name: 'device_id', type: 'string' });
    expect(() => compileSplit({ eventFactBatchSchema: w })).toThrowError(SchemaBuildError);
    const other = schemaCopy('event-fact-batch');
    (other.fields[0]!.type as ArraySchema).items = 'string';
    expect(() => compileSplit({ eventFactBatchSchema: other })).toThrowError(/exactly one field, facts: array of telemetry\.v1\.EventFact/);
  });
  it('refuses a reject record field with no category, naming it (control: the checked-in reject schema builds)', () => {
    const r = schemaCopy('reject');
    delete r.fields.find((f) => f.name === 'raw_event')!.category;
    try {
      compileSplit({ rejectSchema: r });
      expect.unreachable();
    } catch (e) {
      expect(e).toBeInstanceOf(SchemaBuildError);
      expect((e as SchemaBuildError).code).toBe('SCHEMA_FIELD_NO_CATEGORY');
      expect((e as SchemaBuildError).path).toBe('EventRejectRecord.raw_event');
    }
    expect(compileSplit({ rejectSchema: schemaCopy('reject') }).rejectType.schema()).toEqual(split.rejectType.schema());
  });
  it('the generated personal schemas name a category for every field, what ingest adds included; one removed fails the check the build runs', () => {
    expect(split.personalClasses.map((c) => [c.name, c.retention])).toEqual([
      ['p30d', 'P30D'],
      ['p7d', 'P7D'],
    ]);
    for (const c of split.personalClasses) {
      const personal = clone(c.schema);
      expect(schemaCopy(`generated/personal.${c.name}`)).toEqual(personal); // the checked-in file is that schema
      expect(typeOf(personal).fingerprint().equals(c.type.fingerprint())).toBe(true);
      const fields = classify(personal, CATEGORIES as CategoryMap);
      // Every field of the class is kept at most as long as its category allows (context fields included).
      for (const f of fields.values()) expect(retentionDays(f.entry.retention) >= retentionDays(c.retention) || f.category === 'structure').toBe(true);
    }
    const p7d = clone(split.personalClasses[1]!.schema);
    const fields = classify(p7d, CATEGORIES as CategoryMap);
    expect(['received_at', 'zone', 'client_ip', 'device.location'].map((n) => fields.get(n)?.category)).toEqual([
      'activity_time',
      'network_location',
      'ip_address',
      'precise_location',
    ]);
    delete p7d.fields.find((f) => f.name === 'client_ip')!.category;
    expect(() => classify(p7d, CATEGORIES as CategoryMap)).toThrowError(SchemaBuildError);
    expect(() => classify(p7d, CATEGORIES as CategoryMap)).toThrowError(/PersonalRecord\.client_ip has no "category"/);
  });
  it('a category whose retention changes moves its fields to that class (control: the checked-in map puts ip_address in p7d)', () => {
    const map = clone(CATEGORIES) as unknown as CategoryMap;
    map.ip_address!.retention = 'P30D';
    map.precise_location!.retention = 'P1D';
    const other = compileSplit({ categories: map });
    expect(other.personalClasses.map((c) => c.name)).toEqual(['p30d', 'p1d']);
    expect(JSON.stringify(other.personalClasses[0]!.schema)).toContain('"client_ip"');
    expect(JSON.stringify(other.personalClasses[1]!.schema)).toContain('"location"');
    expect(JSON.stringify(split.personalClasses[0]!.schema)).not.toContain('"client_ip"');
  });
  it('control: the checked-in schemas build', () => {
    expect(split.fields.get('device.imei')?.category).toBe('device_identifiers');
  });
});

describe('split', () => {
  it('accepts a clean batch: one fact per event in one record for the day, one personal record in the SIM zone', () => {
    const r = split.processBatch(batch(16), ctx());
    expect(r).toMatchObject({ accepted: 16, rejects: [], droppedConsent: {} });
    expect(r.events).toHaveLength(1);
    expect(factsOf(r)).toHaveLength(16);
    expect(r.events[0]!.key.equals(factsOf(r)[0]!.daily_token)).toBe(true);
    expect(r.personal.map((p) => [p.zone, p.retentionClass])).toEqual([
      ['cn', 'p30d'],
      ['cn', 'p7d'],
    ]);
    const f = factsOf(r)[6]!;
    expect(f).toMatchObject({ kind: 'crash', country: 'CN', day: Math.floor(NOW / DAY_MS), crash_signature: '9f86d081884c7d65' });
  });

  it('the direct EventFact writer produces the bytes avsc produces', () => {
    const r = split.processBatch(batch(8), ctx());
    for (const e of r.events) {
      const facts = decodeEventFacts(e.value);
      expect(e.value.subarray(10).equals(split.eventFactBatchType.toBuffer({ facts }))).toBe(true);
    }
  });

  it("one record per day of the batch, keyed by that day's token, facts in event order", () => {
    const b = batch(6);
    b.events[1]!.time = NOW - DAY_MS;
    b.events[4]!.time = NOW - DAY_MS;
    const r = split.processBatch(b, ctx());
    expect(r.accepted).toBe(6);
    expect(r.events).toHaveLength(2);
    const [today, yesterday] = r.events.map((e) => decodeEventFacts(e.value));
    expect(today!.map((f) => f.day)).toEqual(Array(4).fill(Math.floor(NOW / DAY_MS)));
    expect(yesterday!.map((f) => f.day)).toEqual(Array(2).fill(Math.floor(NOW / DAY_MS) - 1));
    expect(r.events[0]!.key.equals(today![0]!.daily_token)).toBe(true);
    expect(r.events[1]!.key.equals(yesterday![0]!.daily_token)).toBe(true);
    const kinds = factsOf(split.processBatch(batch(6), ctx())).map((f) => f.kind); // fixture kinds follow the index
    expect(today!.map((f) => f.kind)).toEqual([0, 2, 3, 5].map((i) => kinds[i]));
    expect(yesterday!.map((f) => f.kind)).toEqual([1, 4].map((i) => kinds[i]));
  });

  it('residency follows the map: MCC first, region as fallback', () => {
    const zone = (over: Record<string, unknown>) => split.processBatch({ ...batch(1), device: device(over) }, ctx()).personal[0]!.zone;
    expect(zone({ sim_mcc: '250' })).toBe('ru');
    expect(zone({ sim_mcc: '405' })).toBe('in');
    expect(zone({ sim_mcc: '454', region: 'CN' })).toBe('row'); // Hong Kong SIM: not Mainland China
    expect(zone({ sim_mcc: null, region: 'CN' })).toBe('cn');
    expect(zone({ sim_mcc: null, region: null })).toBe('row');
  });

  it('analytics consent off: every event dropped and counted, nothing written', () => {
    const r = split.processBatch(batch(5, { consent: { analytics: false, personalised_ads: true } }), ctx());
    expect(r).toMatchObject({ accepted: 0, droppedConsent: { no_analytics_consent: 5 }, events: [], personal: [], rejected: [] });
  });

  it('personalised ads consent off: advertising ids stripped from the personal record and counted', () => {
    const r = split.processBatch(batch(2, { consent: { analytics: true, personalised_ads: false } }), ctx());
    expect(r.droppedConsent).toEqual({ 'stripped_no_personalised_ads:device.oaid': 1, 'stripped_no_personalised_ads:device.gaid': 1 });
    const rec = personalOf(r)!;
    expect(rec.device.gaid).toBeNull();
    expect(rec.device.oaid).toBeNull();
    expect(rec.device.imei).toBe('861234567890123');
  });

  it('location consent: with it the precise location reaches the personal record; without it, it is stripped and counted', () => {
    const location = { lat: 48.8566, lon: 2.3522, accuracy_m: 12 };
    const personal = (r: Parameters<typeof personalOf>[0]) => personalOf(r, 'p7d')!;
    const granted = split.processBatch(batch(2, { device: device({ location }), consent: { analytics: true, personalised_ads: true, location: true } }), ctx());
    expect(granted.droppedConsent).toEqual({});
    expect(personal(granted).device.location).toEqual(location);
    const withheld = split.processBatch(
      batch(2, { device: device({ location }), consent: { analytics: true, personalised_ads: true, location: false } }),
      ctx(),
    );
    expect(withheld.accepted).toBe(2);
    expect(withheld.droppedConsent).toEqual({ 'stripped_no_location:device.location': 1 });
    expect(personal(withheld).device.location).toBeNull();
    const lat = Buffer.alloc(8);
    lat.writeDoubleLE(location.lat);
    expect(withheld.personal.some((p) => p.value.includes(lat))).toBe(false);
    expect(granted.personal.some((p) => p.value.includes(lat))).toBe(true); // control: the same bytes are found when granted
    expect(personalOf(granted, 'p30d')!.device.location).toBeUndefined(); // kept 7 days, so only in the p7d record
  });

  it('an older writer without consent.location is still read: resolution gives false, the location is dropped and counted', () => {
    const old = schemaCopy('batch');
    const consent = old.fields.find((f) => f.name === 'consent')!.type as RecordSchema;
    consent.fields = consent.fields.filter((f) => f.name !== 'location');
    const oldType = typeOf(old);
    const location = { lat: 55.75, lon: 37.62, accuracy_m: 30 };
    const body = oldType.toBuffer(batch(3, { device: device({ location }), consent: { analytics: true, personalised_ads: true } }));
    const decoded = split.batchType.fromBuffer(body, split.batchType.createResolver(oldType)) as { consent: Record<string, unknown> };
    expect(decoded.consent.location).toBe(false);
    const r = split.processBatch(decoded, ctx());
    expect(r.accepted).toBe(3);
    expect(r.droppedConsent).toEqual({ 'stripped_no_location:device.location': 1 });
    expect(personalOf(r, 'p7d')!.device.location).toBeNull();
  });

  it('a retried batch gives identical event keys; another day gives unlinkable tokens', () => {
    const b = batch(4);
    const a = split.processBatch(b, ctx());
    const again = split.processBatch(clone(b), ctx({ tokenizer: tokenizer() }));
    expect(factsOf(again).map((f) => f.event_key.toString('hex'))).toEqual(factsOf(a).map((f) => f.event_key.toString('hex')));
    const y = batch(1);
    y.events[0]!.time = NOW - DAY_MS;
    const yf = factsOf(split.processBatch(y, ctx()))[0]!;
    expect(yf.daily_token.equals(factsOf(a)[0]!.daily_token)).toBe(false);
  });

  it('the personal record does not mirror the facts: upload times cut to the day, no event time, count, kind or order', () => {
    const day = Math.floor(NOW / DAY_MS) * DAY_MS;
    const H = 3_600_000;
    const at = (i: number, t: number) => event(i, t);
    // Same device, same UTC day, hours apart; different events: kinds, counts and order all differ.
    const a = batch(0, {
      sent_at: day + 2 * H + 1_234,
      events: [at(0, day + 2 * H + 5), at(1, day + 2 * H + 60_000), at(5, day + 2 * H + 61_000), at(7, day + 2 * H + 62_000)],
    });
    const b = batch(0, {
      sent_at: day + 9 * H + 59_000,
      events: [at(5, day + 9 * H + 3_000_000), at(2, day + 5 * H + 100), at(3, day + 5 * H + 200), at(5, day + 5 * H + 300), at(4, day + 5 * H + 400)],
    });
    const ra = split.processBatch(a, ctx({ receivedAt: day + 2 * H + 70_000 }));
    const rb = split.processBatch(b, ctx({ receivedAt: day + 10 * H }));
    // The facts tell the two batches apart (control: the channel the personal records must not repeat)...
    expect(factsOf(ra).map((f) => f.kind)).not.toEqual(factsOf(rb).map((f) => f.kind));
    // ...the personal records do not: byte for byte the same, though sent, received and active in other hours.
    expect(ra.personal.map((p) => p.value.toString('hex'))).toEqual(rb.personal.map((p) => p.value.toString('hex')));
    const p = personalOf(ra)!;
    expect(p).toMatchObject({ received_at: day, sent_at: day });
    // No per-event field at all: event times stay in the facts as days (event_time is not a device-record
    // category), crash traces and app status records are never stored (P0D).
    expect(Object.keys(p).filter((k) => k.startsWith('events'))).toEqual([]);
    expect(JSON.stringify(split.personalClasses.map((c) => c.schema))).not.toMatch(
      /"payload"|"kind"|events_time|session_start|page_view|app_status|crash|stack_trace/i,
    );
    // A batch active on two days, and a late batch of yesterday's events only, received today, give the
    // same one record as a batch of today: the record names the day it was received, not the days of the
    // events records beside it (a past day's events records are few in a mix).
    const p30 = (r: ReturnType<typeof split.processBatch>) => r.personal.filter((x) => x.retentionClass === 'p30d').map((x) => x.value.toString('hex'));
    const twoDays = split.processBatch(
      batch(0, { sent_at: day + 59_000, events: [at(0, day - DAY_MS + 5), at(1, day + 7), at(2, day - DAY_MS + 9 * H)] }),
      ctx({ receivedAt: day + 60_000 }),
    );
    const late = split.processBatch(batch(0, { sent_at: day + 5 * H, events: [at(3, day - DAY_MS + 20 * H)] }), ctx({ receivedAt: day + 5 * H + 9 }));
    const today = split.processBatch(batch(0, { sent_at: day + 5 * H, events: [at(3, day + 5 * H)] }), ctx({ receivedAt: day + 6 * H }));
    expect(factsOf(twoDays).map((f) => f.day)).toContain(day / DAY_MS - 1);
    expect(factsOf(late).map((f) => f.day)).toEqual([day / DAY_MS - 1]);
    expect(p30(twoDays)).toHaveLength(1);
    expect(p30(late)).toEqual(p30(twoDays));
    expect(p30(today)).toEqual(p30(twoDays));
    // ...and the class of the IP stays one record per batch.
    expect(twoDays.personal.filter((x) => x.retentionClass === 'p7d')).toHaveLength(1);
    // Control: a map that keeps event times in the device record (cut to the day, as before) writes
    // the days of the events, one record per day, so a late batch's record names yesterday.
    const withEventDays = compileSplit({
      categories: { ...(CATEGORIES as CategoryMap), event_time: { ...CATEGORIES.event_time, deviceRecord: undefined, personalPrecision: 'day' } },
    });
    const p30With = (r: ReturnType<typeof split.processBatch>) => r.personal.filter((x) => x.retentionClass === 'p30d');
    const cls = withEventDays.personalClasses.find((x) => x.name === 'p30d')!;
    const daysOf = (r: ReturnType<typeof split.processBatch>) =>
      p30With(r).map((x) => (cls.type.fromBuffer(x.value.subarray(cls.header.length)) as { events_time: number[] }).events_time);
    expect(
      daysOf(
        withEventDays.processBatch(batch(0, { sent_at: day + 59_000, events: [at(0, day - DAY_MS + 5), at(1, day + 7)] }), ctx({ receivedAt: day + 60_000 })),
      ),
    ).toEqual([[day - DAY_MS], [day]]);
    expect(
      daysOf(withEventDays.processBatch(batch(0, { sent_at: day + 5 * H, events: [at(3, day - DAY_MS + 20 * H)] }), ctx({ receivedAt: day + 5 * H }))),
    ).toEqual([[day - DAY_MS]]);
  });

  it('per-event sets hold each distinct item once, in an order that depends only on the set (fast path and generic path alike; a map that keeps traces and app statuses)', () => {
    const app = (pkg: string, version: string, t: number) => event(5, t, { payload: { [`${NS}.AppStatus`]: { action: 'update', package: pkg, version } } });
    const crash = (trace: string, t: number) => event(6, t, { payload: { [`${NS}.Crash`]: { ...eventPayload(6)[`${NS}.Crash`], stack_trace: trace } } });
    // Items whose texts would run together without length prefixes: ('a', 'b:c') and ('a:b', 'c').
    const items = [app('com.a', 'b:c', NOW - 50), app('com.a:b', 'c', NOW - 40), app('com.a', 'b:c', NOW - 30), app('com.z', '1', NOW - 20)];
    const traces = [crash('at x(A.java:1)', NOW - 10), crash('at y(B.java:2)', NOW - 9), crash('at x(A.java:1)', NOW - 8)];
    const one = batch(0, { events: [...items, ...traces] });
    const other = batch(0, { events: [...traces].reverse().concat([...items].reverse()) });
    const bodies = [one, other].map((b) => withTraces.batchType.toBuffer(b));
    const limits = { ...DEFAULT_LIMITS, maxItems: { events: 1000 } };
    const results = [
      withTraces.processBatch(one, ctx()),
      withTraces.processBatch(other, ctx()),
      ...bodies.map((b) => withTraces.processBody(b, ctx(), limits)),
    ];
    const hex = results.map((r) => r.personal.map((x) => x.value.toString('hex')).join());
    expect(new Set(hex).size).toBe(1);
    const p = personalOf(results[0]!, 'p30d', withTraces)!;
    expect((p.events_app_status as unknown[]).length).toBe(3);
    expect(p.events_app_status).toEqual(
      expect.arrayContaining([
        { package: 'com.a', version: 'b:c' },
        { package: 'com.a:b', version: 'c' },
        { package: 'com.z', version: '1' },
      ]),
    );
    expect((p.events_crash as Array<{ stack_trace: string }>).map((c) => c.stack_trace).sort()).toEqual(['at x(A.java:1)', 'at y(B.java:2)']);
  });

  it('names the device for the key store: its identity and every identifier kept (consent applied), not the stripped ones', () => {
    const granted = split.processBatch(batch(2), ctx()).device!;
    expect(granted.identity).toMatch(/^device_id:/);
    expect(granted.identifiers.map((i) => i.split(':')[0])).toEqual(['device_id', 'imei', 'oaid', 'gaid', 'imsi']);
    const noAds = split.processBatch(batch(2, { consent: { analytics: true, personalised_ads: false } }), ctx()).device!;
    expect(noAds.identifiers.map((i) => i.split(':')[0])).toEqual(['device_id', 'imei', 'imsi']);
    // Rejects only: still named (their records are about the device too).
    const bad = batch(1);
    (bad.events[0] as { event_id: string }).event_id = 'not-a-uuid';
    const r = split.processBatch(bad, ctx());
    expect([r.accepted, r.rejected.length, r.device?.identity]).toEqual([0, 1, granted.identity]);
    expect(split.processBatch(batch(2, { consent: { analytics: false, personalised_ads: true } }), ctx()).device).toBeUndefined();
  });

  it('the personal record carries no token, event key or event id', () => {
    const b = batch(8);
    const r = split.processBatch(b, ctx());
    const pv = Buffer.concat(r.personal.map((p) => p.value));
    for (const f of factsOf(r)) {
      expect(pv.includes(f.daily_token)).toBe(false);
      expect(pv.includes(f.event_key)).toBe(false);
    }
    for (const ev of b.events) expect(pv.includes(Buffer.from(ev.event_id))).toBe(false);
    const names = JSON.stringify(split.personalClasses.map((c) => c.type.schema()));
    expect(names).not.toMatch(/event_id|event_key|daily_token|session_id|batch_id/);
  });

  it('too late and from the future: rejected with a counted reason, the rest goes through', () => {
    const b = batch(3);
    b.events[0]!.time = NOW - 5 * DAY_MS;
    b.events[1]!.time = NOW + 3_600_000;
    const r = split.processBatch(b, ctx());
    expect(r.accepted).toBe(1);
    expect(r.rejects.map((x) => [x.index, x.path, x.reason])).toEqual([
      [0, 'time', 'TOKEN_TOO_LATE'],
      [1, 'time', 'TOKEN_FROM_FUTURE'],
    ]);
    expect(r.rejected.map((x) => x.zone)).toEqual(['cn', 'cn']);
  });

  it('a reject record keeps no never-stored field (event_id, session_id: retention P0D in the map)', () => {
    const rejectOf = (p: typeof split) => {
      const b = batch(3);
      b.events[1]!.time = NOW - 5 * DAY_MS; // a valid event refused a token: all its fields are there
      (b.events[2]!.payload as Record<string, unknown>) = { 'telemetry.v1.Nope': {} }; // an invalid one
      const r = p.processBatch(b, ctx());
      expect(r.rejected).toHaveLength(2);
      return {
        b,
        records: r.rejected.map((x) => x.value),
        decoded: r.rejected.map((x) => p.rejectType.fromBuffer(x.value.subarray(10)) as Record<string, unknown>),
      };
    };
    const idBytes = (ev: { event_id: string; session_id: string }) => [ev.event_id, ev.session_id, ev.event_id.replace(/-/g, '')].map((x) => Buffer.from(x));
    const { b, records, decoded } = rejectOf(split);
    for (const [k, ev] of [b.events[1]!, b.events[2]!].entries()) {
      for (const bytes of idBytes(ev)) expect(records[k]!.includes(bytes)).toBe(false);
      expect(Buffer.from(ev.event_id.replace(/-/g, ''), 'hex').length).toBe(16);
      expect(records[k]!.includes(Buffer.from(ev.event_id.replace(/-/g, ''), 'hex'))).toBe(false);
    }
    // A valid event keeps the required ones empty (it still decodes, for a replay); an invalid one loses them.
    expect(decoded.map((d) => [d.index, d.reason, JSON.parse(d.raw_event as string) as object])).toEqual([
      [1, 'TOKEN_TOO_LATE', { event_id: '', time: b.events[1]!.time, session_id: '', payload: expect.any(Object) }],
      [2, 'SCHEMA_TYPE_MISMATCH', { time: b.events[2]!.time, payload: { 'telemetry.v1.Nope': {} } }],
    ]);
    expect(Object.keys(decoded[0]!).sort()).toEqual(['batch_context', 'index', 'message', 'path', 'raw_event', 'reason', 'received_at', 'zone']);
    // The batch context (for a replay) has no batch_id either (what consent strips is nulled in it: batchContext).
    const context = JSON.parse(decoded[0]!.batch_context as string) as { device: Record<string, unknown>; consent: object };
    expect(Object.keys(context).sort()).toEqual(['consent', 'device', 'sent_at']);
    expect(records[0]!.includes(Buffer.from(b.batch_id))).toBe(false);
    expect([context.device.device_id, context.device.imei]).toEqual([b.device.device_id, b.device.imei]);
    // Negative control: with the map keeping app usage identifiers (retention P1D), the same rejects carry them.
    const keeping = { ...(CATEGORIES as CategoryMap), app_usage_identifiers: { ...CATEGORIES.app_usage_identifiers, retention: 'P1D' } };
    const control = rejectOf(compileSplit({ categories: keeping }));
    for (const [k, ev] of [control.b.events[1]!, control.b.events[2]!].entries()) {
      expect(control.records[k]!.includes(Buffer.from(ev.event_id))).toBe(true);
      expect(control.records[k]!.includes(Buffer.from(ev.session_id))).toBe(true);
    }
  });

  it('Confluent wire format when a registry id is configured', () => {
    const p = compileSplit({ registryIds: { eventFactBatch: 42 } });
    const v = p.processBatch(batch(1), ctx()).events[0]!.value;
    expect([...v.subarray(0, 5)]).toEqual([0, 0, 0, 0, 42]);
  });
});

describe('crash traces and app status records are not kept per device (crash_logs, app_usage_facts: P0D; policy 1.1, 1.1.4)', () => {
  const TRACE = 'at com.example.zq7.Checkout.pay(Checkout.java:4242) user=alice';
  const PKG = 'com.example.zq7.wallet';
  const VER = '7.7.7-zq7rel';
  const TEXTS = { trace: TRACE, package: PKG, version: VER };
  const SIGNATURE = eventPayload(6)[`${NS}.Crash`]!.signature;
  const limits = { ...DEFAULT_LIMITS, maxItems: { events: 1000 } };
  const crashOf = (over: Record<string, unknown> = {}) => ({ ...eventPayload(6)[`${NS}.Crash`], stack_trace: TRACE, ...over });
  const crashEv = (over: Record<string, unknown> = {}, t = NOW - 60_000) => event(6, t, { payload: { [`${NS}.Crash`]: crashOf(over) } });
  const appEv = (over: Record<string, unknown> = {}, t = NOW - 60_000) =>
    event(5, t, { payload: { [`${NS}.AppStatus`]: { action: 'install', package: PKG, version: VER, ...over } } });
  /** Two accepted events, then the same texts in events a binary body can carry but the split refuses. */
  const binaryEvents = () => [
    crashEv(),
    appEv(),
    crashEv({}, NOW - 5 * DAY_MS), // valid, refused a token: the whole event would be kept
    appEv({}, NOW - 5 * DAY_MS),
    crashEv({ signature: 'NOT-HEX' }),
    appEv({ version: `${VER}${'v'.repeat(64)}` }),
  ];
  /**
   * What only a JSON body brings (ingest/decoder.ts hands an Avro-JSON batch that does not decode to
   * processBatch as parsed): a branch wrapped by its short name or not wrapped, Avro-JSON's wrapped
   * nullable string, an unknown enum symbol; and a trace over its maxLength.
   */
  const jsonEvents = () => [
    event(6, NOW - 60_000, { payload: { Crash: crashOf() } }),
    event(6, NOW - 60_000, { payload: crashOf() }),
    crashEv({ stack_trace: { string: TRACE } }),
    appEv({ action: 'reinstall' }),
    crashEv({ stack_trace: `${TRACE}${'x'.repeat(65_536)}` }),
  ];
  /** Which of the texts a record's bytes hold. */
  const textsIn = (r: { value: Buffer }) => Object.entries(TEXTS).flatMap(([k, t]) => (r.value.includes(Buffer.from(t)) ? [k] : []));
  const anyTexts = (rs: { value: Buffer }[]) => [...new Set(rs.flatMap(textsIn))].sort();
  /** The generic path (every kind of event), processBody (the binary ones), and the fast path itself on the accepted ones. */
  const run = (s: CompiledSplit) => {
    const generic = s.processBatch(batch(0, { events: [...binaryEvents(), ...jsonEvents()] }), ctx());
    const body = s.processBody(s.batchType.toBuffer(batch(0, { events: binaryEvents() })), ctx(), limits);
    const fast = FAST_PATHS.get(s)!(s.batchType.toBuffer(batch(0, { events: [crashEv(), appEv()] })), ctx(), limits);
    return { generic, body, fast };
  };

  it('no personal or reject record holds a trace or an app status, on the generic and the fast path; the facts keep the crash event', () => {
    const { generic, body, fast } = run(split);
    expect(fast).toBeDefined(); // the fast path answered the accepted events itself
    for (const r of [generic, body, fast!]) {
      expect(r.accepted).toBe(2);
      expect(r.personal.map((p) => p.retentionClass)).toEqual(['p30d', 'p7d']);
      expect(anyTexts(r.personal)).toEqual([]);
      expect(anyTexts(r.events)).toEqual([]);
      expect(factsOf(r).map((f) => [f.kind, f.crash_signature])).toEqual([
        ['crash', SIGNATURE],
        ['app_status', null],
      ]);
    }
    expect(generic.rejects.map((x) => [x.index, x.reason])).toEqual([
      [2, 'TOKEN_TOO_LATE'],
      [3, 'TOKEN_TOO_LATE'],
      [4, 'SCHEMA_BAD_FORMAT'],
      [5, 'SCHEMA_STRING_TOO_LONG'],
      [6, 'SCHEMA_TYPE_MISMATCH'],
      [7, 'SCHEMA_TYPE_MISMATCH'],
      [8, 'SCHEMA_TYPE_MISMATCH'],
      [9, 'SCHEMA_UNKNOWN_ENUM_SYMBOL'],
      [10, 'SCHEMA_STRING_TOO_LONG'],
    ]);
    expect(generic.rejected).toHaveLength(9);
    expect(body.rejected).toHaveLength(4);
    for (const r of [...generic.rejected, ...body.rejected]) expect(textsIn(r)).toEqual([]);
    // The rest of a refused event is still there and decodes as an event (for `npm run rejects -- replay`):
    // the crash event without its trace, the app status with its package and version empty.
    const rawOf = (r: { value: Buffer }) => (split.rejectType.fromBuffer(r.value.subarray(10)) as { raw_event: string }).raw_event;
    const eventType = ((split.batchType as avro.types.RecordType).field('events').type as avro.types.ArrayType).itemsType;
    const [crash, app] = generic.rejected.slice(0, 2).map((r) => eventType.fromString(rawOf(r)) as { payload: Record<string, unknown> });
    expect(crash!.payload[`${NS}.Crash`]).toEqual({
      signature: SIGNATURE,
      exception_type: 'java.lang.NullPointerException',
      app_version: '13.0.6.1',
      stack_trace: null,
    });
    expect(app!.payload[`${NS}.AppStatus`]).toEqual({ action: 'install', package: '', version: '' });
  });

  it('negative control: with crash_logs and app_usage_facts kept 30 days (the map before), the same check finds the texts in every personal and reject record', () => {
    const { generic, body, fast } = run(withTraces);
    expect(fast).toBeDefined();
    for (const r of [generic, body, fast!]) {
      expect(anyTexts(r.personal)).toEqual(['package', 'trace', 'version']);
      expect(factsOf(r).map((f) => f.kind)).toEqual(['crash', 'app_status']);
    }
    expect(generic.rejected).toHaveLength(9);
    expect(body.rejected).toHaveLength(4);
    for (const r of [...generic.rejected, ...body.rejected]) expect(textsIn(r).length).toBeGreaterThan(0);
  });
});

/** A batch the cases below break on purpose: wrong types, required fields deleted (what a batch's real type forbids). */
// eslint-disable-next-line @typescript-eslint/no-explicit-any -- a deliberately ill-typed batch, see above
type BrokenBatch = any;
type Case = [string, (b: BrokenBatch) => void, number, string, string];
const crash = (b: BrokenBatch) => b.events[6].payload[`${NS}.Crash`];
describe('validation errors name the event, the field path and the reason', () => {
  const cases: Case[] = [
    ['wrong type', (b) => (crash(b).signature = 17), 6, 'payload.crash.signature', 'SCHEMA_TYPE_MISMATCH'],
    ['missing required field', (b) => delete b.events[2].session_id, 2, 'session_id', 'SCHEMA_MISSING_FIELD'],
    ['unknown enum symbol', (b) => (b.events[5].payload[`${NS}.AppStatus`].action = 'reinstall'), 5, 'payload.app_status.action', 'SCHEMA_UNKNOWN_ENUM_SYMBOL'],
    ['string too long', (b) => (b.events[1].payload[`${NS}.PageView`].page = 'p'.repeat(129)), 1, 'payload.page_view.page', 'SCHEMA_STRING_TOO_LONG'],
    ['bad UTF-8 (lone surrogate)', (b) => (b.events[5].payload[`${NS}.AppStatus`].package = 'com.\ud800x'), 5, 'payload.app_status.package', 'SCHEMA_BAD_UTF8'],
    ['bad format', (b) => (b.events[3].event_id = 'IMEI-861234567890123'), 3, 'event_id', 'SCHEMA_BAD_FORMAT'],
    ['unknown payload kind', (b) => (b.events[4].payload = { 'telemetry.v1.Nope': {} }), 4, 'payload', 'SCHEMA_TYPE_MISMATCH'],
    ['array too long (batch level)', (b) => (b.events = Array.from({ length: 1001 }, (_, i) => event(i))), -1, 'events', 'SCHEMA_ARRAY_TOO_LONG'],
    ['bad device context (batch level)', (b) => (b.device.model = 7), -1, 'device.model', 'SCHEMA_TYPE_MISMATCH'],
    [
      'free text in a crash app_version',
      (b) => (crash(b).app_version = '13.0.6.1 user alice@example.com'),
      6,
      'payload.crash.app_version',
      'SCHEMA_BAD_FORMAT',
    ],
    ['free text in device.model (batch level)', (b) => (b.device.model = 'M2102J20SG; imei=861234567890123'), -1, 'device.model', 'SCHEMA_BAD_FORMAT'],
    [
      'free text in device.manufacturer (batch level)',
      (b) => (b.device.manufacturer = 'Xiaomi <alice@example.com>'),
      -1,
      'device.manufacturer',
      'SCHEMA_BAD_FORMAT',
    ],
    ['free text in device.os_version (batch level)', (b) => (b.device.os_version = '13 (Alice phone)'), -1, 'device.os_version', 'SCHEMA_BAD_FORMAT'],
    ['not reverse-DNS device.app_id (batch level)', (b) => (b.device.app_id = 'weather'), -1, 'device.app_id', 'SCHEMA_BAD_FORMAT'],
    ['free text in device.app_version (batch level)', (b) => (b.device.app_version = 'v13 nightly'), -1, 'device.app_version', 'SCHEMA_BAD_FORMAT'],
  ];
  it.each(cases)('%s', (_name, mutate, index, path, reason) => {
    const b: BrokenBatch = batch(8);
    mutate(b);
    const r = split.processBatch(b, ctx());
    expect(r.rejects).toHaveLength(1);
    expect(r.rejects[0]).toMatchObject({ index, path, reason });
    if (index >= 0) {
      expect(r.rejects[0]!.message).toMatch(new RegExp(`^event ${index}: field ${path.replace(/[.[\]]/g, '\\$&')}: `));
      expect(r.accepted).toBe(7); // the good events still go through
      expect(r.rejected).toHaveLength(1);
    } else expect(r.accepted).toBe(0);
  });
  it('message format: event index, field path, what was wrong', () => {
    const b: BrokenBatch = batch(8);
    crash(b).signature = 17;
    expect(split.processBatch(b, ctx()).rejects[0]!.message).toBe('event 6: field payload.crash.signature: expected string, got int');
  });
  it('uses the batch type from avsc for binary round trips', () => {
    const b = batch(3);
    expect(split.processBatch(split.batchType.fromBuffer(split.batchType.toBuffer(b)), ctx()).accepted).toBe(3);
    expect(typeOf(readSchema('batch')).schema()).toEqual(split.batchType.schema());
    expect(Object.keys(CATEGORIES as CategoryMap).length).toBeGreaterThan(15);
  });
});
