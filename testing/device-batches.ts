/**
 * A generated population of devices as the device SDK sees it: batches of raw events (device ids,
 * event ids, event times) for the ingest service's HTTP API, with the ground truth the aggregates
 * must show. Used by the end-to-end test (ingest -> Kafka -> aggregator -> ClickHouse).
 *
 * Ingest computes the daily tokens and event keys itself with secrets this code never sees, so the
 * oracle does not predict them: it stands in its own stand-ins (a hash of the device id and day, a hash
 * of the device id and event id). `oracleReport` only compares them for identity, and the mapping
 * device-day -> token, device+event id -> key is one-to-one on both sides, so the counts agree.
 *
 * What the population carries, each at a known place in the truth:
 * - devices active today, yesterday and two days ago (events sent late, counted in their own day);
 * - sessions (session_start), crashes, and the non-counted kinds in between;
 * - retried batches: the same body posted again (the same event ids);
 * - re-sent events: a later batch repeating some event ids of an earlier one next to new ones;
 * - events too old for ingest (their day's secret is gone: `TOKEN_TOO_LATE`) and from the future
 *   (`TOKEN_FROM_FUTURE`): refused by ingest with a reason, so never counted.
 */
import { createHash } from 'node:crypto';
import type { EventFact, EventKind } from '../schemas/contract.ts';
import { DAY_MS, MCC_COUNTRY } from '../schemas/index.ts';
import { device, NS, ZONE_MCC } from './batches.ts';
import { rng } from './rng.ts';
import { utcDay } from '../aggregator/facts.ts';

export interface DeviceBatchOptions {
  seed: number;
  /** Devices active per day. @default 60 */
  devicesPerDay?: number;
  /** Days relative to today that devices are active on (all inside ingest's 48 h grace). @default [0, -1, -2] */
  days?: number[];
  nowMs?: number;
}

export interface PostedBatch {
  /** Avro in-memory batch value (ingest's schema); post with `containerOf`. */
  batch: Record<string, unknown>;
  /** Events of this batch ingest must refuse, by reason code. */
  refused: Record<string, number>;
  /** True when this is a retry of an earlier batch (same body). */
  retry: boolean;
}

export interface DeviceBatchPopulation {
  /** In posting order (retries included). */
  batches: PostedBatch[];
  /** Stand-in facts of every distinct counted event, for `oracleReport`. */
  counted: EventFact[];
  /** Distinct events that must arrive on the events topic (counted ones; every kind). */
  distinctEvents: number;
  /** Deliveries of events ingest accepts (retries and re-sends included). */
  acceptedDeliveries: number;
  /**
   * Events-topic records those deliveries make: ingest writes one record per (batch, UTC day) and
   * every batch here holds accepted events of one day only, so one per posted batch.
   */
  acceptedRecords: number;
}

const sha = (...parts: Array<string | number>) => createHash('sha256').update(parts.join('|')).digest();

/** A v4-shaped UUID derived from `parts` (ingest validates the format, and the test must be repeatable). */
function uuidOf(...parts: Array<string | number>): string {
  const h = sha('uuid', ...parts).toString('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

const APPS = ['com.example.mail', 'com.example.maps'];
const VERSIONS = ['1.0.0', '1.1.0'];
const MODELS = ['M2102J20SG', '2201117TG', '23049PCD8G'];
const OSES = ['12', '13'];
const ZONES = ['row', 'cn', 'in', 'ru'] as const;

const PAYLOAD: Record<EventKind, () => Record<string, unknown>> = {
  session_start: () => ({ [`${NS}.SessionStart`]: {} }),
  page_view: () => ({ [`${NS}.PageView`]: { page: 'inbox', duration_ms: 1200 } }),
  app_foreground: () => ({ [`${NS}.AppForeground`]: {} }),
  app_background: () => ({ [`${NS}.AppBackground`]: {} }),
  network_stats: () => ({ [`${NS}.NetworkStats`]: { request_count: 3, error_count: 0, latency_ms: 40 } }),
  app_status: () => ({ [`${NS}.AppStatus`]: { action: 'update', package: 'com.example.other', version: '2.0' } }),
  crash: () => ({
    [`${NS}.Crash`]: {
      signature: '9f86d081884c7d65',
      exception_type: 'java.lang.IllegalStateException',
      app_version: '1.0.0',
      stack_trace: 'at com.example.Main.run(Main.java:7)',
    },
  }),
  session_end: () => ({ [`${NS}.SessionEnd`]: { duration_ms: 30_000 } }),
};

export function generateDeviceBatches(o: DeviceBatchOptions): DeviceBatchPopulation {
  const r = rng(o.seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  // Skewed towards the first values, so some fine-grained groups fall below k.
  const skew = <T>(xs: readonly T[]): T => (r() < 0.7 ? xs[0]! : pick(xs));
  const now = o.nowMs ?? Date.now();
  const today = utcDay(now);
  const batches: PostedBatch[] = [];
  const counted: EventFact[] = [];
  let distinctEvents = 0;
  let acceptedDeliveries = 0;
  let acceptedRecords = 0;

  for (const rel of o.days ?? [0, -1, -2]) {
    const day = today + rel;
    // Event times within that day, and never after now (today's events happened already).
    const dayStart = day * DAY_MS;
    const latest = Math.min(dayStart + DAY_MS - 1, now - 1000);
    for (let d = 0; d < (o.devicesPerDay ?? 60); d++) {
      const zone = skew(ZONES);
      const deviceId = `e2e-${o.seed}-${d}`;
      const dev = {
        ...device({ zone, deviceId }),
        app_id: pick(APPS),
        app_version: skew(VERSIONS),
        model: skew(MODELS),
        os_version: skew(OSES),
      };
      const dims = {
        app_id: dev.app_id,
        app_version: dev.app_version,
        device_model: dev.model as string,
        os_version: dev.os_version,
        country: MCC_COUNTRY[ZONE_MCC[zone]]!,
      };
      const token = sha('device', deviceId, day).subarray(0, 16);
      let n = 0;
      const event = (kind: EventKind): Record<string, unknown> => {
        const eventId = uuidOf(o.seed, deviceId, day, n++);
        const time = dayStart + Math.floor(r() * (latest - dayStart));
        counted.push({
          event_key: sha('event', deviceId, eventId).subarray(0, 16),
          daily_token: token,
          day: Math.floor(time / DAY_MS),
          kind,
          ...dims,
          duration_ms: null,
          crash_signature: null,
          exception_type: null,
        });
        distinctEvents++;
        return { event_id: eventId, time, session_id: `s-${n}`, payload: PAYLOAD[kind]() };
      };
      const events: Array<Record<string, unknown>> = [];
      const sessions = 1 + Math.floor(r() * 3);
      for (let s = 0; s < sessions; s++) {
        events.push(event('session_start'));
        for (const k of ['app_foreground', 'page_view', 'network_stats'] as const) if (r() < 0.6) events.push(event(k));
        if (r() < 0.1) events.push(event('crash'));
        if (r() < 0.1) events.push(event('app_status'));
        events.push(event(r() < 0.05 ? 'crash' : 'session_end'));
        if (r() < 0.5) events.push(event('app_background'));
      }
      const accepted = events.length;
      // Refused by ingest: from a day whose secret is gone (5 days ago), and from tomorrow.
      const refused: Record<string, number> = {};
      if (d % 10 === 3) {
        events.push({ event_id: uuidOf(o.seed, deviceId, 'old', day), time: now - 5 * DAY_MS, session_id: 'old', payload: PAYLOAD.session_start() });
        refused.TOKEN_TOO_LATE = 1;
      }
      if (d % 10 === 7) {
        events.push({ event_id: uuidOf(o.seed, deviceId, 'future', day), time: now + DAY_MS, session_id: 'future', payload: PAYLOAD.crash() });
        refused.TOKEN_FROM_FUTURE = 1;
      }
      const batchOf = (tag: string, evs: Array<Record<string, unknown>>) => ({
        batch_id: uuidOf(o.seed, 'batch', tag, deviceId, day),
        sent_at: now - 500,
        device: dev,
        consent: { analytics: true, personalised_ads: false },
        events: evs,
      });
      const body = batchOf('main', events);
      batches.push({ batch: body, refused, retry: false });
      acceptedDeliveries += accepted;
      acceptedRecords++;
      // A retry of the whole batch (its response was lost): the same body, the same event ids.
      if (r() < 0.1) {
        batches.push({ batch: body, refused, retry: true });
        acceptedDeliveries += accepted;
        acceptedRecords++;
      }
      // A re-send: a later batch repeats the first two events of this one (no ack came back for
      // them, say) next to a new one.
      if (d % 6 === 5) {
        const again = [...events.slice(0, 2), event('page_view')];
        batches.push({ batch: batchOf('resend', again), refused: {}, retry: false });
        acceptedDeliveries += again.length;
        acceptedRecords++;
      }
    }
  }
  return { batches, counted, distinctEvents, acceptedDeliveries, acceptedRecords };
}
