/**
 * Realistic device batches for the ingest tests and bench: one device context (identifiers, SIM,
 * model, app), consent, and ~50 events of every kind, times within the last minutes. Devices are drawn
 * from a pool spread over the residency zones (policy 6) so every personal topic gets traffic.
 * Values are in avsc's in-memory shape for the schemas batch type (record unions wrapped by full name).
 */
import { randomUUID } from 'node:crypto';
import { compileSplit } from '../schemas/index.ts';
import { writeContainer } from './ocf-writer.ts';
import { eventPayload, NS } from './schema-fixtures.ts';

export { NS };

/** sim_mcc -> zone: 460 China, 250 Russia, 404 India, 310 USA (rest of world). */
export const ZONE_MCC = { cn: '460', ru: '250', in: '404', row: '310' } as const;

export const batchType = compileSplit().batchType;

/** A device context as device() writes it (the batch schema's device record). */
export interface TestDevice {
  device_id: string;
  imei: string;
  oaid: string;
  gaid: string;
  imsi: string;
  sim_mcc: string;
  sim_mnc: string;
  sim_operator: string;
  manufacturer: string;
  model: string;
  os_version: string;
  rom_version: string;
  app_id: string;
  app_version: string;
  sdk_version: string;
  locale: string;
  timezone: string;
  region: string | null;
  account_id: string | null;
  location: { lat: number; lon: number; accuracy_m: number };
}

/** One event as event() writes it: `payload` is the union branch, wrapped by its full name. */
export interface TestEvent {
  event_id: string;
  time: number;
  session_id: string;
  payload: Record<string, Record<string, unknown>>;
}

/** A batch as batch() writes it. */
export interface TestBatch {
  batch_id: string;
  sent_at: number;
  device: TestDevice;
  consent: { analytics: boolean; personalised_ads: boolean };
  events: TestEvent[];
}

export interface DeviceOptions {
  zone?: keyof typeof ZONE_MCC;
  deviceId?: string;
}

export function device(opts: DeviceOptions = {}): TestDevice {
  const zone = opts.zone ?? 'row';
  const id = opts.deviceId ?? `dev-${randomUUID()}`;
  return {
    device_id: id,
    imei: `86${String(Math.floor(Math.random() * 1e13)).padStart(13, '0')}`,
    oaid: `oaid-${randomUUID()}`,
    gaid: randomUUID(),
    imsi: `${ZONE_MCC[zone]}00${String(Math.floor(Math.random() * 1e10)).padStart(10, '0')}`,
    sim_mcc: ZONE_MCC[zone],
    sim_mnc: '01',
    sim_operator: 'Operator',
    manufacturer: 'Xiaomi',
    model: ['M2102J20SG', '2201117TG', '23049PCD8G'][id.length % 3]!,
    os_version: '13',
    rom_version: 'MIUI 14.0.3',
    app_id: 'com.miui.weather2',
    app_version: '13.0.6.1',
    sdk_version: '2.4.0',
    locale: 'en-US',
    timezone: 'UTC',
    region: null,
    account_id: null,
    location: { lat: 48.85, lon: 2.35, accuracy_m: 20 },
  };
}

export function event(i: number, time: number): TestEvent {
  return { event_id: randomUUID(), time, session_id: 'sess-1', payload: eventPayload(i) };
}

export interface BatchOptions extends DeviceOptions {
  events?: number;
  now?: number;
  analytics?: boolean;
}

export function batch(opts: BatchOptions = {}): TestBatch {
  const now = opts.now ?? Date.now();
  const n = opts.events ?? 50;
  return {
    batch_id: randomUUID(),
    sent_at: now - 1000,
    device: device(opts),
    consent: { analytics: opts.analytics ?? true, personalised_ads: false },
    events: Array.from({ length: n }, (_, i) => event(i, now - 60_000 + i)),
  };
}

/** The batch as an Avro Object Container File, deflate codec (what the device SDK sends). */
export function containerOf(b: unknown, codec: 'null' | 'deflate' = 'deflate'): Buffer {
  return writeContainer(batchType, [b], { codec });
}

/**
 * The bodies the load generator of bench/ingest.ts posts: `count` distinct devices, the residency zones in
 * turn, `events` events each, as Avro containers with deflate. The bench's references (bare decoding,
 * the pool task on one thread) are measured over the same kind of bytes.
 */
export function loadBodies(count: number, events: number): Buffer[] {
  const zones = ['cn', 'ru', 'in', 'row'] as const;
  return Array.from({ length: count }, (_, i) => containerOf(batch({ zone: zones[i % zones.length]!, events })));
}

/**
 * A container naming a writer schema other than the current batch schema (one more field, of type
 * null: the same bytes), so ingest resolves it and takes the generic path (guard, avsc, processBatch):
 * several times slower per event than the generated fast path, which the tests of the per-batch limits use.
 */
export function olderWriterContainer(b: unknown): Buffer {
  const current = batchType.schema() as { fields: unknown[] };
  const writer = { ...current, fields: [...current.fields, { name: 'legacy_flag', type: 'null', default: null }] };
  return writeContainer(batchType, [b], { schemaJson: JSON.stringify(writer) });
}
