/**
 * What the simulated devices saw: every answer ingest gave, tallied, and every event ingest accepted,
 * kept so the demo (and the dashboard's browser test) can compute what ClickHouse must show with plain
 * sets: an oracle for the whole pipeline, independent of Kafka, the aggregator and ClickHouse.
 *
 * The oracle rests only on what a device knows: its own id, its event ids, and the answer (accepted
 * count, rejected indexes). Keyed hashes stand in for the daily token and event key (any injective
 * function of (device, day) and (event id, device, day) gives the same distinct counts).
 */
import { createHash } from 'node:crypto';
import type { EventFact } from '../schemas/contract.ts';
import { DAY_MS } from '../schemas/index.ts';
import { oracleReport } from '../testing/population.ts';
import type { QueryRequest, ReportRow } from '../aggregator/query.ts';
import type { BatchKind, PlannedBatch } from './population.ts';

const h16 = (s: string) => createHash('sha256').update(s).digest().subarray(0, 16);

/** The JSON body ingest answers a 200 with (ingest/http.ts). */
export interface IngestAnswer {
  accepted: number;
  dropped_consent: Record<string, number>;
  rejected: Array<{ index: number; path: string; reason: string; message: string }>;
}

export interface Tally {
  /** Batches planned, by kind (first sends only). */
  batches: Record<BatchKind, number>;
  /** HTTP posts by status ("200", "400", ..., "error" for no answer), resends and retries included. */
  posts: Record<string, number>;
  resends: number;
  /** 429/503/connection-error retries (a device backing off and trying again). */
  retries: number;
  /** Batches whose last answer was still 429/503/no answer when the device gave up. */
  unacknowledged: number;
  unacknowledgedByCode: Record<string, number>;
  /** Events in the batches posted (first sends). */
  eventsSent: number;
  /** Events ingest accepted (first sends; a resend is accepted again but counts once downstream). */
  eventsAccepted: number;
  /** Event-level rejects by reason, and whole batches refused by error code (their events counted). */
  eventsRejected: Record<string, number>;
  droppedConsent: Record<string, number>;
  /** Latency of every answered POST in ms (bounded: the first 200,000). */
  latenciesMs: number[];
  /** Answers that differ from what the population planned (should stay 0: each one is printed). */
  surprises: string[];
}

export class Ledger {
  readonly tally: Tally = {
    batches: { current: 0, late: 0, too_late: 0, bad_event: 0, bad_body: 0 },
    posts: {},
    resends: 0,
    retries: 0,
    unacknowledged: 0,
    unacknowledgedByCode: {},
    eventsSent: 0,
    eventsAccepted: 0,
    eventsRejected: {},
    droppedConsent: {},
    latenciesMs: [],
    surprises: [],
  };
  /** One fact per accepted event (first sends only: a resend carries the same event ids). */
  readonly facts: EventFact[] = [];
  /** Events of batches never acknowledged: each may or may not have reached Kafka. */
  readonly maybeFacts: EventFact[] = [];
  private readonly maxSurprises = 20;

  countPost(status: string, ms?: number): void {
    this.tally.posts[status] = (this.tally.posts[status] ?? 0) + 1;
    if (ms !== undefined && this.tally.latenciesMs.length < 200_000) this.tally.latenciesMs.push(ms);
  }

  /** Latency percentile (0..100) of the answered POSTs, in ms. */
  latency(p: number): number | undefined {
    const xs = [...this.tally.latenciesMs].sort((a, b) => a - b);
    if (xs.length === 0) return undefined;
    return xs[Math.min(xs.length - 1, Math.floor((p / 100) * xs.length))];
  }

  /** Events dropped whole for lack of analytics consent (the other consent counters are stripped fields). */
  eventsDroppedNoConsent(): number {
    return this.tally.droppedConsent.no_analytics_consent ?? 0;
  }

  private surprise(msg: string): void {
    if (this.tally.surprises.length < this.maxSurprises) this.tally.surprises.push(msg);
  }

  /** Records the final answer to a batch's first send (after any retries). */
  record(b: PlannedBatch, status: number, body: unknown): void {
    const t = this.tally;
    t.batches[b.kind]++;
    t.eventsSent += b.events.length;
    if (status === 0 || status === 429 || status === 503) {
      // Never acknowledged (the device gave up retrying). Kafka may still hold some or all of its
      // records (a produce that timed out can have landed): the oracle cannot know, so the events
      // are kept aside as "maybe" and the check becomes a bound (see `oracleBounds`).
      t.unacknowledged++;
      const code = (body as { error?: { code?: string } } | undefined)?.error?.code ?? (status === 0 ? 'NO_ANSWER' : `HTTP_${status}`);
      t.unacknowledgedByCode[code] = (t.unacknowledgedByCode[code] ?? 0) + 1;
      if (b.kind !== 'bad_body' && b.device.consentAnalytics) {
        b.events.forEach((e) => {
          if (!e.expectReject) this.maybeFacts.push(this.fact(b, e.eventId, e.time, e.kind));
        });
      }
      return;
    }
    if (status !== 200) {
      const code = (body as { error?: { code?: string } } | undefined)?.error?.code ?? `HTTP_${status}`;
      t.eventsRejected[code] = (t.eventsRejected[code] ?? 0) + b.events.length;
      if (b.kind !== 'bad_body') this.surprise(`batch ${b.seq} (${b.kind}): HTTP ${status} ${code}`);
      return;
    }
    if (b.kind === 'bad_body') this.surprise(`batch ${b.seq}: malformed body was answered 200`);
    const a = body as IngestAnswer;
    t.eventsAccepted += a.accepted;
    for (const [reason, n] of Object.entries(a.dropped_consent ?? {})) t.droppedConsent[reason] = (t.droppedConsent[reason] ?? 0) + n;
    const rejected = new Set<number>();
    for (const r of a.rejected ?? []) {
      t.eventsRejected[r.reason] = (t.eventsRejected[r.reason] ?? 0) + 1;
      rejected.add(r.index);
      const planned = b.events[r.index]?.expectReject;
      if (planned !== r.reason) this.surprise(`batch ${b.seq} event ${r.index}: rejected ${r.reason}, planned ${planned ?? 'accept'}`);
    }
    if (!b.device.consentAnalytics) {
      if (a.accepted !== 0) this.surprise(`batch ${b.seq}: no analytics consent but ${a.accepted} accepted`);
      return;
    }
    let expected = 0;
    b.events.forEach((e, i) => {
      if (rejected.has(i)) return;
      if (e.expectReject) this.surprise(`batch ${b.seq} event ${i}: accepted, planned ${e.expectReject}`);
      expected++;
      this.facts.push(this.fact(b, e.eventId, e.time, e.kind));
    });
    if (expected !== a.accepted) this.surprise(`batch ${b.seq}: answer says ${a.accepted} accepted, ${expected} events were not rejected`);
  }

  private fact(b: PlannedBatch, eventId: string, time: number, kind: EventFact['kind']): EventFact {
    const day = Math.floor(time / DAY_MS);
    const d = b.device;
    return {
      event_key: h16(`${eventId}|${d.deviceId}|${day}`),
      daily_token: h16(`${d.deviceId}|${day}`),
      day,
      kind,
      app_id: d.appId,
      app_version: d.appVersion,
      device_model: d.model,
      os_version: d.osVersion,
      country: d.country,
      duration_ms: null,
      crash_signature: null,
      exception_type: null,
    };
  }

  /**
   * What `npm run query` must print for `req` with k-anonymity threshold `k`, from the accepted events.
   * Events outside the aggregator's lateness window are left out as the aggregator leaves them out.
   */
  oracle(req: QueryRequest, k: number, window: { today: number; maxLatenessDays: number }): ReportRow[] {
    return oracleReport(this.inWindow(this.facts, window), req, k);
  }

  /**
   * When some batches were never acknowledged, the exact answer is unknowable; each group's counts lie
   * between the oracle of the acknowledged events and that of all events that may have arrived.
   * Without k-suppression (k = 1), so a group is bounded whichever side of k it falls.
   */
  oracleBounds(req: QueryRequest, window: { today: number; maxLatenessDays: number }): { lower: ReportRow[]; upper: ReportRow[] } {
    const acked = this.inWindow(this.facts, window);
    return { lower: oracleReport(acked, req, 1), upper: oracleReport([...acked, ...this.inWindow(this.maybeFacts, window)], req, 1) };
  }

  private inWindow(facts: readonly EventFact[], w: { today: number; maxLatenessDays: number }): EventFact[] {
    return facts.filter((f) => f.day >= w.today - w.maxLatenessDays && f.day <= w.today + 1);
  }
}

/** Count columns of a report row (what the bounds apply to); rates are derived from them. */
const COUNT_COLUMNS = ['active_devices', 'device_days', 'sessions', 'crashes', 'crashed_devices', 'crashed_device_days'];

/**
 * Rows of `actual` whose counts fall outside [lower, upper] of the same group (a group missing from a
 * bound counts as 0 there). Returns a description of each violation; empty = within the bounds.
 */
export function outsideBounds(actual: readonly ReportRow[], lower: readonly ReportRow[], upper: readonly ReportRow[], dims: readonly string[]): string[] {
  const key = (r: ReportRow) => dims.map((d) => String(r[d])).join('|');
  const lo = new Map(lower.map((r) => [key(r), r]));
  const hi = new Map(upper.map((r) => [key(r), r]));
  const out: string[] = [];
  for (const r of actual) {
    const k = key(r);
    for (const c of COUNT_COLUMNS) {
      if (!(c in r)) continue;
      const v = Number(r[c]);
      const l = Number(lo.get(k)?.[c] ?? 0);
      const h = Number(hi.get(k)?.[c] ?? 0);
      if (v < l || v > h) out.push(`${k} ${c}=${v} not in [${l}, ${h}]`);
    }
  }
  return out;
}
