/**
 * The leak property (ARCHITECTURE.md principle 2): over random batches, no value of a personal category (per the
 * checked-in map and schema) appears in any byte of the non-personal output, including inside strings.
 * The dimensions the EventFact copies (app id and version, OS version, model, manufacturer) are random
 * too: valid values of their named formats, or free text carrying a personal value (the device's locale),
 * which the formats must refuse (the batch is rejected, nothing is written); a crash's app_version is
 * sometimes free text too (that event alone is rejected).
 * Negative controls: the same property, run against a split built with one field miscategorised, or
 * with the dimensions' formats removed, must fail.
 */
import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { CATEGORIES, compileSplit, DAY_MS, readSchema, type CategoryMap, type CompiledSplit } from './index.ts';
import { classify, type FieldInfo, type RecordSchema } from './classify.ts';
import { NAMED_FORMATS } from './validate.ts';
import { NOW, NS } from '../testing/schema-fixtures.ts';
import { tokenizer } from '../testing/tokenizer.ts';

const reference = compileSplit(); // the truth: which input paths are personal

// Hex of random bytes plus up to 4 graphemes (a grapheme can take several UTF-16 units), kept within
// `cap` UTF-16 units so the value stays inside the field's maxLength: the batch must be accepted.
const rnd = (min: number, max: number, cap = Infinity) =>
  fc
    .tuple(fc.uint8Array({ minLength: min, maxLength: max }), fc.string({ maxLength: 4, unit: 'grapheme' }))
    .map(([b, s]) => `${Buffer.from(b).toString('hex')}${s}`)
    .filter((s) => s.length <= cap);
const optional = <T>(a: fc.Arbitrary<T>) => fc.option(a, { nil: null });

/** A random value of a named format, within the field's maxLength. */
const formatted = (name: string, max: number) => fc.stringMatching(NAMED_FORMATS[name]!).filter((v) => v.length <= max);
const appVersion = formatted('app_version', 64);
/** A crash's app_version: mostly valid, sometimes free text (that event alone is rejected). */
const crashAppVersion = fc.oneof({ weight: 5, arbitrary: appVersion }, { weight: 1, arbitrary: fc.constantFrom('1.0 by alice', 'id@example.com') });
/** The device fields the EventFact copies, with the named format of each. */
const DIMENSIONS = { manufacturer: 'device_name', model: 'device_name', os_version: 'os_version', app_id: 'app_id', app_version: 'app_version' } as const;
type Dimension = keyof typeof DIMENSIONS;

const payload = fc.oneof(
  fc.constant({ [`${NS}.SessionStart`]: {} }),
  fc.nat(10_000_000).map((d) => ({ [`${NS}.SessionEnd`]: { duration_ms: d } })),
  fc.tuple(fc.constantFrom('home', 'forecast/daily', 'settings'), fc.nat(1e6)).map(([page, d]) => ({ [`${NS}.PageView`]: { page, duration_ms: d } })),
  fc.constant({ [`${NS}.AppForeground`]: {} }),
  fc.constant({ [`${NS}.AppBackground`]: {} }),
  fc
    .tuple(fc.constantFrom('install', 'update', 'delete'), rnd(8, 20), rnd(8, 12, 64))
    .map(([action, pkg, version]) => ({ [`${NS}.AppStatus`]: { action, package: pkg, version } })),
  fc.tuple(fc.constantFrom('9f86d081884c7d65', 'deadbeefcafe0001'), optional(rnd(16, 200)), crashAppVersion).map(([signature, st, app_version]) => ({
    [`${NS}.Crash`]: { signature, exception_type: 'java.lang.IllegalStateException', app_version, stack_trace: st },
  })),
  fc.tuple(fc.nat(1000), fc.nat(1000), fc.nat(5000)).map(([a, b, c]) => ({ [`${NS}.NetworkStats`]: { request_count: a, error_count: b, latency_ms: c } })),
);

const validBatchArb = fc.record({
  batch_id: fc.uuid(),
  sent_at: fc.constant(NOW - 1000),
  device: fc.record({
    device_id: rnd(8, 30),
    imei: optional(rnd(8, 10, 32)),
    oaid: optional(rnd(8, 30)),
    gaid: optional(rnd(8, 30, 64)),
    imsi: optional(rnd(8, 10, 32)),
    sim_mcc: optional(fc.constantFrom('460', '250', '404', '262', '310', '999')),
    sim_mnc: optional(fc.constantFrom('01', '02', '260')),
    sim_operator: optional(rnd(8, 30)),
    manufacturer: formatted('device_name', 64),
    model: formatted('device_name', 64),
    os_version: formatted('os_version', 64),
    rom_version: fc.constant('MIUI 14.0.3'),
    app_id: formatted('app_id', 255),
    app_version: appVersion,
    sdk_version: fc.constant('2.4.0'),
    locale: rnd(8, 10, 35),
    timezone: rnd(8, 20, 64),
    region: optional(fc.constantFrom('CN', 'RU', 'IN', 'DE')),
    account_id: optional(rnd(8, 30)),
    location: optional(
      fc.record({ lat: fc.double({ min: -90, max: 90, noNaN: true }), lon: fc.double({ min: -180, max: 180, noNaN: true }), accuracy_m: fc.constant(10) }),
    ),
  }),
  consent: fc.record({ analytics: fc.constant(true), personalised_ads: fc.boolean(), location: fc.boolean() }),
  events: fc.array(fc.record({ event_id: fc.uuid(), time: fc.integer({ min: NOW - DAY_MS, max: NOW }), session_id: fc.uuid(), payload }), {
    minLength: 1,
    maxLength: 20,
  }),
});

/**
 * Sometimes one dimension carries free text instead: a personal value (the locale, at most 35 units)
 * behind `id@` (a character no dimension format allows), within the field's maxLength, so only its format
 * can refuse it.
 */
const batchArb = fc
  .tuple(validBatchArb, fc.option(fc.constantFrom(...(Object.keys(DIMENSIONS) as Dimension[])), { nil: null, freq: 3 }))
  .map(([b, dim]) => (dim ? { ...b, device: { ...b.device, [dim]: `id@${b.device.locale}` } } : b));

/** A batch whose dimensions all match their formats (else the whole batch is rejected, policy: no free text in dimensions). */
const dimensionsValid = (b: { device: Record<string, unknown> }) =>
  (Object.keys(DIMENSIONS) as Dimension[]).every((d) => NAMED_FORMATS[DIMENSIONS[d]]!.test(b.device[d] as string));

/** Every value of a personal leaf field of the reference schema, found by walking the field chain. */
function personalValues(b: unknown): { path: string; bytes: Buffer[] }[] {
  const out: { path: string; bytes: Buffer[] }[] = [];
  const fields = reference.fields;
  const leaves = [...fields.values()].filter(
    (f) => f.entry.personal && ![...fields.keys()].some((k) => k.startsWith(`${f.path}.`) || k.startsWith(`${f.path}[]`)),
  );
  for (const f of leaves) for (const v of valuesAt(b, f, fields)) out.push({ path: f.path, bytes: encodings(v) });
  return out;
}

function valuesAt(root: unknown, f: FieldInfo, fields: ReadonlyMap<string, FieldInfo>): unknown[] {
  const chain: FieldInfo[] = [];
  for (let p: string = f.path; p;) {
    const info = fields.get(p)!;
    chain.unshift(info);
    p = info.parent.endsWith('[]') ? info.parent.slice(0, -2) : info.parent;
    if (info.parent.endsWith('[]')) chain.unshift({ ...info, step: { kind: 'field', key: '[]' } } as FieldInfo);
  }
  let current: unknown[] = [root];
  for (const c of chain) {
    const next: unknown[] = [];
    for (const v of current) {
      if (v === null || v === undefined) continue;
      if (c.step.key === '[]') next.push(...(v as unknown[]));
      else next.push((v as Record<string, unknown>)[c.step.key]);
    }
    current = next;
  }
  return current.filter((v) => v !== null && v !== undefined);
}

function encodings(v: unknown): Buffer[] {
  if (typeof v === 'string') {
    const out = [Buffer.from(v, 'utf8')];
    if (/^[0-9a-f]{8}-[0-9a-f]{4}-/i.test(v)) out.push(Buffer.from(v.replace(/-/g, ''), 'hex'));
    return out.filter((x) => x.length >= 8); // shorter values (MCC '460') could match by chance
  }
  if (typeof v === 'number' && !Number.isInteger(v)) {
    const d = Buffer.alloc(8);
    d.writeDoubleLE(v);
    return [d];
  }
  return [];
}

function leaks(p: CompiledSplit, b: unknown): string[] {
  const r = p.processBatch(b, { receivedAt: NOW, clientIp: '198.51.100.23', tokenizer: tokenizer() });
  const out = Buffer.concat(r.events.flatMap((e) => [e.key, e.value]));
  const found: string[] = [];
  for (const { path, bytes } of personalValues(b)) for (const x of bytes) if (out.includes(x)) found.push(path);
  if (out.includes(Buffer.from('198.51.100.23'))) found.push('client_ip');
  return found;
}

describe('no personal value reaches the non-personal output', () => {
  it('holds for random batches', () => {
    fc.assert(
      fc.property(batchArb, (b) => {
        const r = reference.processBatch(b, { receivedAt: NOW, tokenizer: tokenizer() });
        if (dimensionsValid(b)) {
          const bad = b.events.flatMap((e, i) => {
            const v = (e.payload as Record<string, { app_version?: string }>)[`${NS}.Crash`]?.app_version;
            return v !== undefined && !NAMED_FORMATS.app_version!.test(v) ? [[i, 'payload.crash.app_version', 'SCHEMA_BAD_FORMAT']] : [];
          });
          expect(r.rejects.map((x) => [x.index, x.path, x.reason])).toEqual(bad);
          expect(r.accepted).toBe(b.events.length - bad.length);
        } else expect([r.accepted, r.rejects.map((x) => [x.index, x.reason])]).toEqual([0, [[-1, 'SCHEMA_BAD_FORMAT']]]);
        expect(leaks(reference, b)).toEqual([]);
      }),
      { numRuns: 150 },
    );
  });

  it('negative control: with device.imei miscategorised as device_info (and wired to output), the property fails', () => {
    const batchSchema = JSON.parse(JSON.stringify(readSchema('batch'))) as RecordSchema;
    classify(batchSchema, CATEGORIES as CategoryMap).get('device.imei')!.field.category = 'device_info';
    const fact = JSON.parse(JSON.stringify(readSchema('event-fact'))) as RecordSchema;
    const f = fact.fields.find((x) => x.name === 'device_model')!;
    f.from = ['device.imei', 'device.model'];
    const broken = compileSplit({ batchSchema, eventFactSchema: fact });
    const res = fc.check(
      fc.property(batchArb, (b) => leaks(broken, b).length === 0),
      { numRuns: 150 },
    );
    expect(res.failed).toBe(true);
    expect(leaks(broken, res.counterexample![0])).toContain('device.imei');
  });

  it("negative control: with the dimensions' formats removed, free text in a dimension leaks the personal value it carries", () => {
    const batchSchema = JSON.parse(JSON.stringify(readSchema('batch'))) as RecordSchema;
    const fields = classify(batchSchema, CATEGORIES as CategoryMap);
    for (const d of Object.keys(DIMENSIONS)) delete fields.get(`device.${d}`)!.field.format;
    const lax = compileSplit({ batchSchema });
    const res = fc.check(
      fc.property(batchArb, (b) => leaks(lax, b).length === 0),
      { numRuns: 150 },
    );
    expect(res.failed).toBe(true);
    expect(leaks(lax, res.counterexample![0])).toContain('device.locale');
  });
});
