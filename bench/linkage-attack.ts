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
 * - content: what the values hold on both sides. The device record (schemas/personal.ts) keeps the
 *   day it was uploaded, no event time, count, kind or order of events, no crash trace or app status; so
 *   the adversary matches what is left: the days its events can fall on, presence of an app status or
 *   crash trace where a record still lists them, the country (from the SIM's MCC), and how often the key
 *   recurs on each side (a device's records against a token's records of a day).
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
  /**
   * The UTC days whose events records it can belong to, ascending: the days of its events (`events_time`)
   * when the record lists them, else the day it was received and the one before (a batch received today
   * may carry yesterday's events: the day secrets' window).
   */
  days: number[];
  /**
   * Whether it lists an app status (`events_app_status`) or a crash trace (`events_crash`); null when
   * the record has no such field (the category map no longer stores either: schemas/categories.ts).
   */
  appStatus: boolean | null;
  crash: boolean | null;
}

export interface EventsSeen extends SeenRecord {
  facts: EventFact[];
}

/**
 * What the adversary scores with: `transport` (timestamps, partition places) and the content features
 * the records keep by design: `country` (facts' country against the SIM's MCC), `presence` (an app
 * status / crash trace in the personal record against those kinds among the facts), `recurrence` (how
 * many records the key has on each side: a device's batches against a token's records of a day),
 * `size` (a record's size rank on its side against the other's: when the personal record listed every
 * event, its size grew with the facts' count). `size` is left out of `all`: measured, it now only adds
 * noise (the bench reports the adversary with it, `link_accuracy_with_size`).
 */
export type Feature = 'transport' | 'siblings' | 'country' | 'presence' | 'recurrence' | 'size';
export const CONTENT_FEATURES: readonly Feature[] = ['country', 'presence', 'recurrence'];
/**
 * `siblings` joins a device's records together: a personal record's other records (the same key, so
 * the same device) that cover the candidate's day must each find a record of the candidate's token
 * near them too (the intersection attack on mixes: a device's records sit in several mixes, and only
 * its own token's records follow it into each of them).
 */
export const ALL_FEATURES: readonly Feature[] = ['transport', 'siblings', ...CONTENT_FEATURES];
/** Named sets the bench reports: transport alone, content alone, everything. */
export type FeatureSet = 'transport' | 'content' | 'all';
export const FEATURE_SETS: Record<FeatureSet, readonly Feature[]> = { transport: ['transport'], content: CONTENT_FEATURES, all: ALL_FEATURES };

interface Prepared {
  p: PersonalSeen & { q: number; keyCount: number; country: string; sizeRank: number };
  e: Array<EventsSeen & { q: number; keyCount: number; day: number; kinds: Set<string>; sizeRank: number }>;
}

/** Rank of each record's size among its side's, 0..1. */
function sizeRanks(records: SeenRecord[]): number[] {
  const order = records.map((r, i) => ({ s: r.size, i })).sort((a, b) => a.s - b.s);
  const out = new Array<number>(records.length);
  order.forEach((x, rank) => (out[x.i] = (rank + 0.5) / records.length));
  return out;
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
  const sP = sizeRanks(personal);
  const sE = sizeRanks(events);
  const ev = events.map((e, i) => ({
    ...e,
    sizeRank: sE[i]!,
    q: qE[i]!,
    keyCount: eKeys.get(e.key)!,
    day: e.facts[0]?.day ?? -1,
    kinds: new Set<string>(e.facts.map((f) => f.kind)),
  }));
  return personal.map((p, i) => ({
    p: { ...p, q: qP[i]!, sizeRank: sP[i]!, keyCount: pKeys.get(p.key)!, country: (p.simMcc && MCC_COUNTRY[p.simMcc]) ?? 'ZZ' },
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

function contentScore(features: readonly Feature[], p: P, e: E): number {
  let s = 0;
  if (features.includes('country')) s += e.facts.every((f) => f.country === p.country) ? 2 : -20;
  if (features.includes('presence') && p.appStatus !== null && p.crash !== null) {
    // A batch's app status / crash trace shows on the personal side only on the days it happened, so a
    // mismatch on a one-day record is strong, on a midnight record weaker.
    const w = p.days.length === 1 ? 3 : 1;
    s += e.kinds.has('app_status') === p.appStatus ? w : -w;
    s += e.kinds.has('crash') === p.crash ? w : -w;
  }
  if (features.includes('recurrence')) s -= Math.abs(p.keyCount - e.keyCount);
  if (features.includes('size')) s -= 4 * Math.abs(p.sizeRank - e.sizeRank);
  return s;
}

export function score(features: readonly Feature[], p: P, e: E): number {
  return (features.includes('transport') ? transportScore(p, e) : 0) + contentScore(features, p, e);
}

/**
 * The adversary's guesses for every personal record: `best`, the events record it scores highest of all
 * (the link it claims), and `byDay`, the best of each of its days with its score (to chain a device's
 * tokens of two days); indexes into `events`.
 */
export interface Guess {
  best: number;
  byDay: Map<number, { i: number; s: number }>;
}

export function guess(prepared: Prepared[], features: readonly Feature[], rand: () => number): Guess[] {
  // siblings: for each personal record, its device's other records; for each (token, day), its events records.
  const group = <T>(m: Map<string, T[]>, k: string, v: T) => {
    const l = m.get(k);
    if (l) l.push(v);
    else m.set(k, [v]);
  };
  const byKey = new Map<string, number[]>();
  prepared.forEach(({ p }, i) => group(byKey, p.key, i));
  const byToken = new Map<string, E[]>();
  for (const x of prepared[0]?.e ?? []) group(byToken, `${x.key}/${x.day}`, x);
  const siblingScore = (pi: number, e: E): number => {
    let s = 0;
    for (const si of byKey.get(prepared[pi]!.p.key)!) {
      const sib = prepared[si]!.p;
      if (si === pi || !sib.days.includes(e.day)) continue;
      let best = -Infinity;
      for (const x of byToken.get(`${e.key}/${e.day}`)!) best = Math.max(best, transportScore(sib, x));
      s += best;
    }
    return s;
  };
  return prepared.map(({ p, e }, pi) => {
    const best = new Map<number, { i: number; s: number }>();
    e.forEach((x, i) => {
      if (!p.days.includes(x.day)) return;
      const s = score(features, p, x) + (features.includes('siblings') ? siblingScore(pi, x) : 0) + rand() * 1e-6;
      const b = best.get(x.day);
      if (!b || s > b.s) best.set(x.day, { i, s });
    });
    const top = [...best.values()].reduce((a, b) => (b.s > a.s ? b : a), { i: -1, s: -Infinity });
    return { best: top.i, byDay: best };
  });
}

/**
 * Content crowd of each personal record: the events records of its days that look like its own ones to
 * what the personal record shows (the same country; the same app status / crash presence when the
 * personal record keeps those, which it no longer does), per record of its own device among them (its
 * device's records of those days: naming any of them links). The crowd an ideal transport protection
 * would leave: the country is a dimension of the facts and decides the residency zone, so no mixing can
 * take the adversary below it. (How often a key recurs is left out: personal records are written once
 * per day and content, ingest/mix.ts RecentRecords, so a device's count of them no longer tells its
 * token's count of events records.)
 */
export function contentCrowds(prepared: Prepared[], own: (p: number, e: number) => boolean): number[] {
  return prepared.map(({ p, e }, pi) => {
    const mine = e.find((x, ei) => p.days.includes(x.day) && own(pi, ei));
    if (!mine) return 1;
    const presence = p.appStatus !== null && p.crash !== null;
    const looks = (x: (typeof e)[number]) =>
      [x.facts.every((f) => f.country === p.country), presence && x.kinds.has('app_status'), presence && x.kinds.has('crash')].join();
    const target = looks(mine);
    let crowd = 0;
    let owned = 0;
    e.forEach((x, ei) => {
      if (!p.days.includes(x.day) || looks(x) !== target) return;
      crowd++;
      if (own(pi, ei)) owned++;
    });
    return crowd / Math.max(1, owned);
  });
}

/**
 * Transport anonymity set of each personal record: the events records of its days whose timestamp is at
 * least as close to the personal record's as the closest one of its own device.
 */
export function anonymitySets(prepared: Prepared[], own: (p: number, e: number) => boolean): number[] {
  return prepared.map(({ p, e }, pi) => {
    let ownDt = Infinity;
    e.forEach((x, ei) => {
      if (p.days.includes(x.day) && own(pi, ei)) ownDt = Math.min(ownDt, Math.abs(x.timestamp - p.timestamp));
    });
    return e.filter((x) => p.days.includes(x.day) && Math.abs(x.timestamp - p.timestamp) <= ownDt).length;
  });
}

/** The device record (retention class p30d) as the adversary decodes it. */
export interface PersonalValue {
  received_at: number;
  device: { sim_mcc: string | null };
  /** Absent since the device record keeps no event time (schemas/categories.ts `event_time`). */
  events_time?: number[];
  /** Absent since the category map stores neither (schemas/categories.ts `app_usage_facts`, `crash_logs`). */
  events_app_status?: unknown[];
  events_crash?: unknown[];
}

/** What the adversary keeps of a decoded device record. */
export function personalSeen(v: PersonalValue): Pick<PersonalSeen, 'receivedAt' | 'simMcc' | 'days' | 'appStatus' | 'crash'> {
  return {
    receivedAt: v.received_at,
    simMcc: v.device.sim_mcc,
    days: v.events_time
      ? [...new Set(v.events_time.map((t) => Math.floor(t / DAY_MS)))].sort((a, b) => a - b)
      : [Math.floor(v.received_at / DAY_MS) - 1, Math.floor(v.received_at / DAY_MS)],
    appStatus: v.events_app_status ? v.events_app_status.length > 0 : null,
    crash: v.events_crash ? v.events_crash.length > 0 : null,
  };
}

/** The codec of the device records (retention class p30d; the p7d records hold the IP and location only). */
export function deviceRecordCodec(): RecordCodec<PersonalValue> {
  return new RecordCodec<PersonalValue>(compileSplit().personalClasses.find((c) => c.name === DEVICE_CLASS)!.type);
}
