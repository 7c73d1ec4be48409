/**
 * Unlinkable publishing (policy section 1.1.4, "used separately"): an adversary who reads every topic
 * but holds no day secret must not be able to join an events record (keyed by the daily token) back to
 * the personal record of the same batch (keyed by the device) by *how* they were written.
 *
 * Written as they are computed, the two records of a batch share one Kafka timestamp (the producer's
 * Date.now()), sit in the same produce call at neighbouring positions, and the two events records of a
 * batch spanning UTC midnight are written together: a join by timestamp or by arrival order links
 * almost every daily token to its device (bench/linkage.ts measures it). Two measures here:
 *
 * 1. Coarse timestamps: every events record carries the start of the UTC day it is written on, every
 *    personal and rejects record the start of the current UTC hour. Equal timestamps say nothing.
 * 2. Mixing: the records of concurrent batches are collected for a short window (`Mixer`) and
 *    published in a random order, events records and personal/rejects records in separate produce
 *    calls, the events records of one batch never next to each other. What is left to order them by is
 *    the mix (offsets of consecutive mixes still follow each other): its size, reported by the gauge
 *    `ingest_mix_anonymity_set`, is how many batches an events record hides among by transport alone.
 *
 * What a record *holds* is the split's business (schemas/personal.ts: a device record keeps the day it
 * was uploaded, no event time, count, kind or order of events); what content still links, and why, is measured in
 * ingest/README.md, "Linkage of the topics".
 *
 * The acknowledgement rule holds per batch (ARCHITECTURE.md principle 4): a batch's promise resolves
 * only when every produce call carrying any record of its mix was acknowledged; a failed call fails
 * every batch of its mix (503, the device retries; duplicates are removed downstream by event_key).
 */
import { randomInt } from 'node:crypto';
import type { Message } from 'kafkajs';
import { DAY_MS } from '../schemas/index.ts';

const HOUR_MS = 3_600_000;

/** Kafka timestamp (ms, as kafkajs wants it: a string) of an events record written at `nowMs`. */
export function eventsTimestamp(nowMs: number): string {
  return String(Math.floor(nowMs / DAY_MS) * DAY_MS);
}

/** Kafka timestamp of a personal or rejects record written at `nowMs`: the start of its UTC hour. */
export function personalTimestamp(nowMs: number): string {
  return String(Math.floor(nowMs / HOUR_MS) * HOUR_MS);
}

/** Fisher-Yates with a cryptographic generator (an adversary must not predict the order). */
export function shuffle<T>(list: T[], rand: (n: number) => number = randomInt): T[] {
  for (let i = list.length - 1; i > 0; i--) {
    const j = rand(i + 1);
    const t = list[i]!;
    list[i] = list[j]!;
    list[j] = t;
  }
  return list;
}

/**
 * Moves records so that no two of the same owner (batch) are neighbours, when that is possible: each
 * record next to one of its own owner is swapped with another record that fits there. Deterministic
 * after the shuffle; O(n^2) at worst on a mix of a few hundred records.
 */
export function separateOwners<T extends { owner: number }>(list: T[]): T[] {
  const clashes = (i: number) => (i > 0 && list[i - 1]!.owner === list[i]!.owner) || (i < list.length - 1 && list[i + 1]!.owner === list[i]!.owner);
  const swap = (a: number, b: number) => {
    const t = list[a]!;
    list[a] = list[b]!;
    list[b] = t;
  };
  for (let i = 1; i < list.length; i++) {
    if (list[i]!.owner !== list[i - 1]!.owner) continue;
    for (let j = 0; j < list.length; j++) {
      if (j === i || list[j]!.owner === list[i]!.owner) continue;
      swap(i, j);
      if (!clashes(i) && !clashes(j)) break;
      swap(i, j);
    }
  }
  return list;
}

/** One record of a mix on its way: where it goes, and which batch of the mix it belongs to. */
export interface MixedRecord {
  owner: number;
  cluster: string;
  topic: string;
  message: Message;
  bytes: number;
}

/** One produce call's worth of a mix: one cluster, one kind, under the per-call caps. */
export interface MixCall {
  cluster: string;
  kind: 'events' | 'personal';
  byTopic: Map<string, Message[]>;
  count: number;
  bytes: number;
}

/**
 * A mix's records -> produce calls: per cluster and kind, shuffled, owners kept apart, cut into calls
 * of at most `maxRecords` records and `maxBytes` key + value bytes (the order inside a call is the
 * shuffled order, grouped by topic).
 */
export function planMixCalls(
  records: { events: MixedRecord[]; personal: MixedRecord[] },
  caps: { maxRecords: number; maxBytes: number },
  rand: (n: number) => number = randomInt,
): MixCall[] {
  const calls: MixCall[] = [];
  for (const kind of ['events', 'personal'] as const) {
    const byCluster = new Map<string, MixedRecord[]>();
    for (const r of records[kind]) {
      const list = byCluster.get(r.cluster);
      if (list) list.push(r);
      else byCluster.set(r.cluster, [r]);
    }
    for (const [cluster, list] of byCluster) {
      separateOwners(shuffle(list, rand));
      let call: MixCall | undefined;
      for (const r of list) {
        if (!call || call.count + 1 > caps.maxRecords || (call.count > 0 && call.bytes + r.bytes > caps.maxBytes)) {
          calls.push((call = { cluster, kind, byTopic: new Map(), count: 0, bytes: 0 }));
        }
        const msgs = call.byTopic.get(r.topic);
        if (msgs) msgs.push(r.message);
        else call.byTopic.set(r.topic, [r.message]);
        call.count++;
        call.bytes += r.bytes;
      }
    }
  }
  return calls;
}

/**
 * The personal records this process wrote in the current UTC day, by content digest
 * (steps/seal.ts `contentDigest`), so a byte-equal record is written once per day, not once per batch.
 * A personal record keeps only its upload day, no event time (schemas/categories.ts `activity_time`,
 * `event_time`), so a device's records of one day are byte-equal unless its settings, IP or location
 * change. Each record written is a moment where the device's personal record and one of its token's
 * events records share a mix; two such moments let an adversary intersect the two mixes' tokens
 * (bench/linkage-attack.ts `siblings`), and a count of records per batch would mirror the count of the
 * token's records (ingest/README.md, "Linkage of the topics").
 * A digest is remembered only once its mix was acknowledged, so a skipped record is always a copy of
 * one Kafka holds (a failed mix leaves nothing remembered: the retry writes it again). Bounded: past
 * `max` digests the oldest are forgotten (the record is then written again, which is only a copy), and
 * a new UTC day starts empty.
 */
export class RecentRecords {
  private seen = new Set<string>();
  private day = -1;

  constructor(
    private readonly max: number,
    private readonly now: () => number = Date.now,
  ) {}

  private roll(): void {
    const d = Math.floor(this.now() / DAY_MS);
    if (d !== this.day) {
      this.day = d;
      this.seen = new Set();
    }
  }

  has(digest: string): boolean {
    this.roll();
    return this.seen.has(digest);
  }

  remember(digests: Iterable<string>): void {
    this.roll();
    for (const d of digests) {
      this.seen.delete(d);
      this.seen.add(d);
      if (this.seen.size > this.max) this.seen.delete(this.seen.values().next().value!);
    }
  }

  get size(): number {
    return this.seen.size;
  }
}

export interface MixSettings {
  /** How long a mix stays open after its first batch (ms). */
  windowMs: number;
  /** A mix with fewer batches stays open past the window, up to `maxWaitMs`. */
  minBatches: number;
  /** Longest a batch waits in an open mix (ms), whatever the count. */
  maxWaitMs: number;
  /** A mix this full is published at once. */
  maxBatches: number;
}

interface Waiting<T> {
  item: T;
  resolve: () => void;
  reject: (e: unknown) => void;
}

/**
 * Collects batches into mixes and hands each closed mix to `publish`; every batch's promise settles
 * with its mix's outcome. A mix closes when it holds `maxBatches`, or as soon as the window has passed
 * and it holds `minBatches`, or after `maxWaitMs` in any case.
 */
export class Mixer<T> {
  private open: Waiting<T>[] = [];
  private openedAt = 0;
  private timer: NodeJS.Timeout | undefined;
  private readonly publishing = new Set<Promise<void>>();

  constructor(
    private readonly s: MixSettings,
    private readonly publish: (items: T[]) => Promise<void>,
    private readonly onMix: (batches: number) => void = () => {},
  ) {}

  add(item: T): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      this.open.push({ item, resolve, reject });
      if (this.open.length === 1) {
        this.openedAt = performance.now();
        this.timer = setTimeout(() => this.check(), this.s.windowMs);
      }
      // Full, or past the window with the crowd it waited for: at once, not at the next look (which
      // came a window later, and held every client of a closed loop in one mix).
      if (this.open.length >= this.s.maxBatches) this.close();
      else if (this.open.length >= this.s.minBatches && performance.now() - this.openedAt >= this.s.windowMs) this.close();
    });
  }

  private check(): void {
    this.timer = undefined;
    const waited = performance.now() - this.openedAt;
    if (this.open.length >= this.s.minBatches || waited >= this.s.maxWaitMs) return this.close();
    this.timer = setTimeout(() => this.check(), Math.max(1, Math.min(this.s.windowMs, this.s.maxWaitMs - waited)));
  }

  /** Publishes the open mix now (also used by `drain`). */
  close(): void {
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    const mix = this.open;
    this.open = [];
    if (mix.length === 0) return;
    this.onMix(mix.length);
    const p = this.publish(mix.map((w) => w.item)).then(
      () => {
        for (const w of mix) w.resolve();
      },
      (e: unknown) => {
        for (const w of mix) w.reject(e);
      },
    );
    this.publishing.add(p);
    void p.finally(() => this.publishing.delete(p));
  }

  /** Closes the open mix and waits until every mix handed to `publish` has settled (shutdown). */
  async drain(): Promise<void> {
    this.close();
    await Promise.all([...this.publishing]);
  }
}
