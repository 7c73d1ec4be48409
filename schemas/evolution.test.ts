import { describe, expect, it } from 'vitest';
import { checkCompatibility, resolveWriter } from './evolution.ts';
import { readSchema, typeOf, SchemaError } from './index.ts';
import { RecordCodec } from './codec.ts';

const v1 = readSchema('event-fact');
const v2 = { ...v1, fields: [...(v1.fields as object[]), { name: 'region', type: ['null', 'string'], default: null }] };

describe('schema evolution', () => {
  it('a v1 reader reads v2 data and a v2 reader reads v1 data', () => {
    const r1 = new RecordCodec<Record<string, unknown>>(typeOf(v1));
    const r2 = new RecordCodec<Record<string, unknown>>(typeOf(v2));
    r1.addWriter(typeOf(v2));
    r2.addWriter(typeOf(v1));
    const base = {
      event_key: Buffer.alloc(16),
      daily_token: Buffer.alloc(16, 1),
      day: 1,
      kind: 'crash',
      app_id: 'a',
      app_version: '1',
      device_model: 'm',
      os_version: '13',
      country: 'DE',
      duration_ms: null,
      crash_signature: null,
      exception_type: null,
    };
    expect(r1.decode(r2.encode({ ...base, region: 'EU' }))).toEqual(base);
    expect(r2.decode(r1.encode(base))).toEqual({ ...base, region: null });
  });
  it('adding an optional field is compatible', () => {
    expect(checkCompatibility(v1, v2)).toEqual([]);
  });
  it('refuses a removed required field and a changed type, with clear messages', () => {
    const removed = { ...v1, fields: (v1.fields as { name: string }[]).filter((f) => f.name !== 'country') };
    expect(checkCompatibility(v1, removed).join('\n')).toMatch(/field telemetry\.v1\.EventFact\.country|EventFact\.country was removed but has no default/);
    const changed = { ...v1, fields: (v1.fields as { name: string }[]).map((f) => (f.name === 'day' ? { ...f, type: 'string' } : f)) };
    expect(checkCompatibility(v1, changed).join('\n')).toMatch(/field EventFact\.day changed type/);
  });
  it('resolveWriter refuses an unresolvable writer with a typed error', () => {
    const bad = { type: 'record', name: 'EventFact', namespace: 'telemetry.v1', fields: [{ name: 'day', type: 'string' }] };
    expect(() => resolveWriter(typeOf(v1), JSON.stringify(bad))).toThrowError(SchemaError);
    expect(resolveWriter(typeOf(v1), JSON.stringify(v2)).writer).toBeTruthy();
  });
  it('adding consent.location (boolean, default false) to the batch is compatible; an old body reads as not granted', () => {
    const current = readSchema('batch');
    const old = JSON.parse(JSON.stringify(current)) as { fields: { name: string; type: { fields: { name: string }[] } }[] };
    const consent = old.fields.find((f) => f.name === 'consent')!.type;
    consent.fields = consent.fields.filter((f) => f.name !== 'location');
    expect(checkCompatibility(old as unknown as typeof current, current)).toEqual([]);
    const reader = typeOf(current);
    const { writer, resolver } = resolveWriter(reader, JSON.stringify(old));
    const body = writer.toBuffer({
      batch_id: 'b',
      sent_at: 0,
      device: {
        device_id: 'd',
        manufacturer: 'Xiaomi',
        model: 'M2102J20SG',
        os_version: '13',
        rom_version: 'r',
        app_id: 'com.a.b',
        app_version: '1',
        sdk_version: '1',
        locale: 'en',
        timezone: 'UTC',
      },
      consent: { analytics: true, personalised_ads: false },
      events: [],
    });
    expect((reader.fromBuffer(body, resolver) as { consent: unknown }).consent).toEqual({ analytics: true, personalised_ads: false, location: false });
  });
  it('the checked-in schemas are compatible with the previous committed version (v1 baseline)', () => {
    // The baseline is the v1 schema itself until a v2 is committed; the check runs the same way then.
    for (const name of ['event-fact', 'batch', 'reject']) expect(checkCompatibility(readSchema(name), readSchema(name))).toEqual([]);
  });
});
