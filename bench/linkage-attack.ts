/**
 * The adversary of bench/linkage.ts: it holds every record ingest wrote (values decoded with schemas'
 * public decoders, keys, headers, Kafka timestamps, partitions, offsets) but no day secret, and tries
 * to join each personal record (keyed by the device) to the events record(s) of the same batch (keyed
 * by the daily token). Every (personal record, events record of one of its days) pair gets a score
 * from the features the adversary sees; the best-scoring events record is its guess (ties broken at
 * random, so a channel that says nothing scores chance).
 *
 * Two families of features, scored apart and together:
 * - transport: Kafka timestamps (equality, proximity) and arrival order (a record's place in its
 *   partition against the other side's place in its own);
 * - content: what the values hold on both sides. The personal record (schemas/personal.ts) keeps the
 *   hours the batch was active in and the distinct apps and crash traces it reported, no count, kind or
 *   order of events; so the adversary matches what is left: the days of activity, whether the batch
 *   reported an app status or a crash trace against the kinds of the facts, the country (from the SIM's
 *   MCC), and how often the key recurs on each side (a device's batches against a token's records).
 */
import { compileSplit, DAY_MS, MCC_COUNTRY, RecordCodec, type EventFact } from '../schemas/index.ts';

/** The retention class of the device record, the one the adversary joins (p7d holds only the IP and location). */
export const DEVICE_CLASS = 'p30d';

/** A record as read back from Kafka. */
export interface SeenRecord {
  topic: string;
  partition: number;
  offset: number;
  timestamp: number;
  key: string;
  size: number;
}

export interface PersonalSeen extends SeenRecord {
  receivedAt: number;
  simMcc: string | null;
  /** UTC days of its activity hours (`events_time`), ascending. */
  days: number[];
  /** Whether it lists an app status (`events_app_status`) or a crash trace (`events_crash`). */
  appStatus: boolean;
  crash: boolean;
}

export interface EventsSeen extends SeenRecord {
  facts: EventFact[];
}

export type FeatureSet = 'transport' | 'content' | 'all';

interface Prepared {
  p: PersonalSeen & { q: number; keyCount: number; country: string };
  e: Array<EventsSeen & { q: number; keyCount: number; day: number; kinds: Set<string> }>;
}

/** Place of each record in its partition, 0..1: the adversary's estimate of its arrival order. */
function partitionQuantiles(records: SeenRecord[]): number[] {
  const byPart = new Map<string, SeenRecord[]>();
  for (const r of records) {
    const k = `${r.topic}/${r.partition}`;
    const l = byPart.get(k);
    if (l) l.push(r);
    else byPart.set(k, [r]);
  }
  const rank = new Map<SeenRecord, number>();
  for (const l of byPart.values()) {
    l.sort((a, b) => a.offset - b.offset);
    l.forEach((r, i) => rank.set(r, (i + 0.5) / l.length));
  }
  return records.map((r) => rank.get(r)!);
}

function counts(keys: string[]): Map<string, number> {
  const m = new Map<string, number>();
  for (const k of keys) m.set(k, (m.get(k) ?? 0) + 1);
  return m;
}

export function prepare(personal: PersonalSeen[], events: EventsSeen[]): Prepared[] {
  // Arrival order on both sides: the place in the partition (the received time is only an hour now).
  const qP = partitionQuantiles(personal);
  const qE = partitionQuantiles(events);
  const pKeys = counts(personal.map((p) => p.key));
  const eKeys = counts(events.map((e) => e.key));
  const ev = events.map((e, i) => ({
    ...e,
    q: qE[i]!,
    keyCount: eKeys.get(e.key)!,
    day: e.facts[0]?.day ?? -1,
    kinds: new Set<string>(e.facts.map((f) => f.kind)),
  }));
  return personal.map((p, i) => ({
    p: { ...p, q: qP[i]!, keyCount: pKeys.get(p.key)!, country: (p.simMcc && MCC_COUNTRY[p.simMcc]) ?? 'ZZ' },
    e: ev,
  }));
}

type P = Prepared['p'];
type E = Prepared['e'][number];

function transportScore(p: P, e: E): number {
  const dt = Math.min(Math.abs(e.timestamp - p.timestamp), 3_600_000);
  const dq = (e.q - p.q) / 0.05;
  // A millisecond of timestamp weighs more than a partition place: producer timestamps are exact, places noisy.
  return -dt * 10 - (dq * dq) / 2;
}

function contentScore(p: P, e: E): number {
  let s = e.facts.every((f) => f.country === p.country) ? 2 : -20;
  // A batch's app status / crash trace shows on the personal side only on the days it happened, so a
  // mismatch on a one-day record is strong, on a midnight record weaker.
  const w = p.days.length === 1 ? 3 : 1;
  s += e.kinds.has('app_status') === p.appStatus ? w : -w;
  s += e.kinds.has('crash') === p.crash ? w : -w;
  s -= Math.abs(p.keyCount - e.keyCount);
  return s;
}

export function score(set: FeatureSet, p: P, e: E): number {
  return (set === 'content' ? 0 : transportScore(p, e)) + (set === 'transport' ? 0 : contentScore(p, e));
}

/** The adversary's guess for every personal record and each of its days: an index into `events`. */
export function guess(prepared: Prepared[], set: FeatureSet, rand: () => number): Array<Map<number, number>> {
  return prepared.map(({ p, e }) => {
    const best = new Map<number, { i: number; s: number }>();
    e.forEach((x, i) => {
      if (!p.days.includes(x.day)) return;
      const s = score(set, p, x) + rand() * 1e-6;
      const b = best.get(x.day);
      if (!b || s > b.s) best.set(x.day, { i, s });
    });
    return new Map([...best].map(([d, b]) => [d, b.i]));
  });
}

/**
 * Transport anonymity set of each personal record on one of its days: the events records of that day
 * whose timestamp is at least as close to the personal record's as the closest one of its own device.
 */
export function anonymitySets(prepared: Prepared[], own: (p: number, e: number) => boolean, dayOf: (p: number) => number): number[] {
  return prepared.map(({ p, e }, pi) => {
    const day = dayOf(pi);
    let ownDt = Infinity;
    e.forEach((x, ei) => {
      if (x.day === day && own(pi, ei)) ownDt = Math.min(ownDt, Math.abs(x.timestamp - p.timestamp));
    });
    return e.filter((x) => x.day === day && Math.abs(x.timestamp - p.timestamp) <= ownDt).length;
  });
}

/** The device record (retention class p30d) as the adversary decodes it. */
export interface PersonalValue {
  received_at: number;
  device: { sim_mcc: string | null };
  events_time: number[];
  events_app_status: unknown[];
  events_crash: unknown[];
}

/** What the adversary keeps of a decoded device record. */
export function personalSeen(v: PersonalValue): Pick<PersonalSeen, 'receivedAt' | 'simMcc' | 'days' | 'appStatus' | 'crash'> {
  return {
    receivedAt: v.received_at,
    simMcc: v.device.sim_mcc,
    days: [...new Set(v.events_time.map((t) => Math.floor(t / DAY_MS)))].sort((a, b) => a - b),
    appStatus: v.events_app_status.length > 0,
    crash: v.events_crash.length > 0,
  };
}

/** The codec of the device records (retention class p30d; the p7d records hold the IP and location only). */
export function deviceRecordCodec(): RecordCodec<PersonalValue> {
  return new RecordCodec<PersonalValue>(compileSplit().personalClasses.find((c) => c.name === DEVICE_CLASS)!.type);
}
