/**
 * The adversary of bench/linkage.ts: it holds every record ingest wrote (values decoded with schemas'
 * public decoders, keys, headers, Kafka timestamps, partitions, offsets) but no day secret, and tries
 * to join each personal record (keyed by the device) to the events record(s) of the same batch (keyed
 * by the daily token). Every (personal record, events record of one of its days) pair gets a score
 * from the features the adversary sees; the best-scoring events record is its guess (ties broken at
 * random, so a channel that says nothing scores chance).
 *
 * Two families of features, scored apart and together, because the protection of ingest/mix.ts covers
 * only the first:
 * - transport: Kafka timestamps (equality, proximity) and arrival order (a record's place in its
 *   partition against the personal record's place by received time);
 * - content: what the values hold on both sides: the count and the kind sequence of a day's events,
 *   the country (from the SIM's MCC on the personal side), how often the key recurs.
 */
import { MCC_COUNTRY, type EventFact } from '../schemas/index.ts';

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
  /** Per UTC day of its events: the kinds in order (one string). */
  kindsByDay: Map<number, string[]>;
}

export interface EventsSeen extends SeenRecord {
  facts: EventFact[];
}

export type FeatureSet = 'transport' | 'content' | 'all';

interface Prepared {
  p: PersonalSeen & { q: number; keyCount: number; country: string };
  e: Array<EventsSeen & { q: number; keyCount: number; day: number; kinds: string }>;
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
  // Personal records are ordered by their received time (in the value); events records by partition place.
  const byTime = personal.map((p, i) => ({ t: p.receivedAt, i })).sort((a, b) => a.t - b.t);
  const qP = new Array<number>(personal.length);
  byTime.forEach((x, rank) => (qP[x.i] = (rank + 0.5) / personal.length));
  const qE = partitionQuantiles(events);
  const pKeys = counts(personal.map((p) => p.key));
  const eKeys = counts(events.map((e) => e.key));
  const ev = events.map((e, i) => ({ ...e, q: qE[i]!, keyCount: eKeys.get(e.key)!, day: e.facts[0]?.day ?? -1, kinds: e.facts.map((f) => f.kind).join(',') }));
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
  const kinds = p.kindsByDay.get(e.day) ?? [];
  let s = kinds.length === e.facts.length ? 8 : -8 - Math.abs(kinds.length - e.facts.length);
  if (kinds.join(',') === e.kinds) s += 12;
  s += e.facts.every((f) => f.country === p.country) ? 2 : -20;
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
      if (!p.kindsByDay.has(x.day)) return;
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
