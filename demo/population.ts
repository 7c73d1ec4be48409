/**
 * The demo's device population: a seeded set of phones across apps, app versions, models, OS versions
 * and countries in every residency zone (policy 6: cn, ru, in via the SIM MCC; the rest of the world),
 * and the batches they upload. Batch bodies are built with the ingest tests' realistic generator
 * (`testing/batches.ts`: the same Avro batch type and container writer the tests and the bench
 * use); this file only decides *what* the phones say.
 *
 * What makes it realistic enough to show the pipeline's rules at work:
 * - sessions of page views with heavy-tailed durations, foreground/background, network stats, the odd
 *   app install/update, and crashes whose probability depends on the app version (so the crash-rate
 *   table shows a bad release);
 * - a share of devices that withheld analytics consent (policy 1.2 / 5.3: ingest must drop them whole)
 *   and of devices that declined personalised ads (their advertising ids are stripped);
 * - late batches (phones that were offline: yesterday's or the day before's sessions), some too late for
 *   their day's secret (TOKEN_TOO_LATE), batches sent twice (a retry after a lost response: same
 *   bytes, same event ids, which must count once), and malformed ones (a bad event inside a good batch,
 *   or a body that is not a batch at all).
 *
 * Deterministic for a seed, except for `now`, so the unit test can check the population's shape.
 */
import type { EventKind, Zone } from '../schemas/contract.ts';
import { MCC_COUNTRY } from '../schemas/categories.ts';
import { DAY_MS } from '../schemas/index.ts';
import { NS, containerOf } from '../testing/batches.ts';

// ---- seeded randomness ------------------------------------------------------------------------------

export type Rng = () => number;

/** mulberry32: small, fast, good enough to shape a population; not for secrets. */
export function seededRng(seed: number): Rng {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function pickWeighted<T>(r: Rng, items: ReadonlyArray<readonly [T, number]>): T {
  let total = 0;
  for (const [, w] of items) total += w;
  let x = r() * total;
  for (const [v, w] of items) {
    x -= w;
    if (x < 0) return v;
  }
  return items[items.length - 1]![0];
}

const pick = <T>(r: Rng, xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
const hex = (r: Rng, n: number) => Array.from({ length: n }, () => Math.floor(r() * 16).toString(16)).join('');
const digits = (r: Rng, n: number) => Array.from({ length: n }, () => Math.floor(r() * 10)).join('');
/** A v4-shaped UUID from the seeded stream (event ids must be UUIDs: batch.avsc `format: uuid`). */
export const seededUuid = (r: Rng) => `${hex(r, 8)}-${hex(r, 4)}-4${hex(r, 3)}-${pick(r, ['8', '9', 'a', 'b'])}${hex(r, 3)}-${hex(r, 12)}`;

// ---- the catalogue ------------------------------------------------------------------------------------

/**
 * Apps and versions with their share of installs and their crash probability per session. One version
 * per app is deliberately bad, so the crash-rate chart has something to show.
 */
export const APPS: ReadonlyArray<{ id: string; share: number; versions: ReadonlyArray<{ version: string; share: number; crashPerSession: number }> }> = [
  {
    id: 'com.example.mail',
    share: 0.45,
    versions: [
      { version: '4.1.0', share: 0.3, crashPerSession: 0.01 },
      { version: '4.2.0', share: 0.55, crashPerSession: 0.005 },
      { version: '4.3.0-beta', share: 0.15, crashPerSession: 0.12 },
    ],
  },
  {
    id: 'com.example.maps',
    share: 0.35,
    versions: [
      { version: '2.7.3', share: 0.6, crashPerSession: 0.02 },
      { version: '2.8.0', share: 0.4, crashPerSession: 0.05 },
    ],
  },
  {
    id: 'com.example.weather',
    share: 0.2,
    versions: [
      { version: '13.0.6', share: 0.7, crashPerSession: 0.008 },
      { version: '13.1.0', share: 0.3, crashPerSession: 0.003 },
    ],
  },
];

export const MODELS: ReadonlyArray<readonly [{ manufacturer: string; model: string; rom: string }, number]> = [
  [{ manufacturer: 'Xiaomi', model: '2201117TG', rom: 'MIUI 14.0.3' }, 0.22],
  [{ manufacturer: 'Xiaomi', model: 'M2102J20SG', rom: 'MIUI 13.0.7' }, 0.14],
  [{ manufacturer: 'Xiaomi', model: '23049PCD8G', rom: 'HyperOS 1.0.2' }, 0.12],
  [{ manufacturer: 'samsung', model: 'SM-A536B', rom: 'One UI 6.0' }, 0.16],
  [{ manufacturer: 'samsung', model: 'SM-G991B', rom: 'One UI 5.1' }, 0.12],
  [{ manufacturer: 'Google', model: 'Pixel 7', rom: 'UQ1A.240205.004' }, 0.1],
  [{ manufacturer: 'OPPO', model: 'CPH2211', rom: 'ColorOS 13' }, 0.08],
  [{ manufacturer: 'vivo', model: 'V2111', rom: 'FuntouchOS 13' }, 0.06],
];

export const OS_VERSIONS: ReadonlyArray<readonly [string, number]> = [
  ['11', 0.1],
  ['12', 0.2],
  ['13', 0.35],
  ['14', 0.35],
];

/**
 * Where the phones are: SIM MCCs per residency zone (the zone follows from the MCC, policy 6; see
 * schemas/categories.ts RESIDENCY), with locale and timezone to match. A few rest-of-world phones have
 * no SIM (tablets): their country is unknown (ZZ) and their zone falls back to the settings region.
 */
export const PLACES: ReadonlyArray<readonly [{ zone: Zone; mcc: string | null; region: string | null; locale: string; timezone: string }, number]> = [
  [{ zone: 'cn', mcc: '460', region: null, locale: 'zh-CN', timezone: 'Asia/Shanghai' }, 0.18],
  [{ zone: 'ru', mcc: '250', region: null, locale: 'ru-RU', timezone: 'Europe/Moscow' }, 0.08],
  [{ zone: 'in', mcc: '404', region: null, locale: 'hi-IN', timezone: 'Asia/Kolkata' }, 0.1],
  [{ zone: 'in', mcc: '405', region: null, locale: 'en-IN', timezone: 'Asia/Kolkata' }, 0.04],
  [{ zone: 'row', mcc: '310', region: null, locale: 'en-US', timezone: 'America/New_York' }, 0.14],
  [{ zone: 'row', mcc: '262', region: null, locale: 'de-DE', timezone: 'Europe/Berlin' }, 0.1],
  [{ zone: 'row', mcc: '724', region: null, locale: 'pt-BR', timezone: 'America/Sao_Paulo' }, 0.08],
  [{ zone: 'row', mcc: '234', region: null, locale: 'en-GB', timezone: 'Europe/London' }, 0.06],
  [{ zone: 'row', mcc: '510', region: null, locale: 'id-ID', timezone: 'Asia/Jakarta' }, 0.07],
  [{ zone: 'row', mcc: '440', region: null, locale: 'ja-JP', timezone: 'Asia/Tokyo' }, 0.05],
  [{ zone: 'row', mcc: null, region: 'FR', locale: 'fr-FR', timezone: 'Europe/Paris' }, 0.03],
];

const PAGES = ['inbox', 'message/view', 'compose', 'search', 'settings', 'map/route', 'map/explore', 'forecast/daily', 'forecast/hourly', 'radar'];
const PACKAGES = ['com.tencent.mm', 'com.whatsapp', 'org.telegram.messenger', 'com.spotify.music'];
const EXCEPTIONS = ['java.lang.NullPointerException', 'java.lang.IllegalStateException', 'java.lang.OutOfMemoryError', 'android.os.DeadObjectException'];

// ---- the population ---------------------------------------------------------------------------------

export interface DeviceProfile {
  index: number;
  deviceId: string;
  zone: Zone;
  mcc: string | null;
  region: string | null;
  /** ISO country the pipeline derives from the MCC (ZZ without a SIM): what the aggregates show. */
  country: string;
  locale: string;
  timezone: string;
  manufacturer: string;
  model: string;
  rom: string;
  osVersion: string;
  appId: string;
  appVersion: string;
  crashPerSession: number;
  /** User Experience Program (policy 1.2, 5.1): false = every event must be dropped by ingest. */
  consentAnalytics: boolean;
  consentAds: boolean;
  imei: string;
  imsi: string | null;
  gaid: string;
  oaid: string;
}

export interface PopulationOptions {
  devices: number;
  seed: number;
  /** Share of devices that withheld analytics consent. @default 0.08 */
  consentWithheldShare?: number;
  /** Share of consenting devices that declined personalised ads. @default 0.4 */
  noAdsShare?: number;
  /** Share of batches carrying sessions of yesterday or the day before (offline phones). @default 0.15 */
  lateShare?: number;
  /** Share of batches older than their day's secret (4 days): rejected TOKEN_TOO_LATE. @default 0.01 */
  tooLateShare?: number;
  /** Share of batches sent a second time (a retry after a lost response). @default 0.03 */
  retryShare?: number;
  /** Share of batches with one invalid event among good ones. @default 0.03 */
  badEventShare?: number;
  /** Share of bodies that are not a batch at all (truncated Avro, broken JSON). @default 0.01 */
  badBodyShare?: number;
}

export type BatchKind = 'current' | 'late' | 'too_late' | 'bad_event' | 'bad_body';

export interface PlannedEvent {
  eventId: string;
  time: number;
  kind: EventKind;
  /** The event the simulator expects ingest to reject (a malformed one), with the reason it should give. */
  expectReject?: string;
}

export interface PlannedBatch {
  seq: number;
  kind: BatchKind;
  device: DeviceProfile;
  events: PlannedEvent[];
  body: Buffer;
  contentType: string;
  /** Extra sends of the same bytes (a device retrying after a lost answer). */
  resends: number;
  /** The batch value the body encodes (for a malformed body: what it was cut from). Tests feed it to schemas. */
  value: Record<string, unknown>;
}

export function buildDevices(o: PopulationOptions): DeviceProfile[] {
  const r = seededRng(o.seed);
  const withheld = o.consentWithheldShare ?? 0.08;
  const noAds = o.noAdsShare ?? 0.4;
  const out: DeviceProfile[] = [];
  for (let i = 0; i < o.devices; i++) {
    const place = pickWeighted(r, PLACES);
    const model = pickWeighted(r, MODELS);
    const app = pickWeighted(
      r,
      APPS.map((a) => [a, a.share] as const),
    );
    const ver = pickWeighted(
      r,
      app.versions.map((v) => [v, v.share] as const),
    );
    const consentAnalytics = r() >= withheld;
    out.push({
      index: i,
      deviceId: `dev-${hex(r, 24)}`,
      zone: place.zone,
      mcc: place.mcc,
      region: place.region,
      country: place.mcc ? (MCC_COUNTRY[place.mcc] ?? 'ZZ') : 'ZZ',
      locale: place.locale,
      timezone: place.timezone,
      manufacturer: model.manufacturer,
      model: model.model,
      rom: model.rom,
      osVersion: pickWeighted(r, OS_VERSIONS),
      appId: app.id,
      appVersion: ver.version,
      crashPerSession: ver.crashPerSession,
      consentAnalytics,
      consentAds: consentAnalytics && r() >= noAds,
      imei: `86${digits(r, 13)}`,
      imsi: place.mcc ? `${place.mcc}01${digits(r, 10)}` : null,
      gaid: seededUuid(r),
      oaid: hex(r, 32),
    });
  }
  return out;
}

/** A heavy-tailed duration (log-normal), clamped: most page views last seconds, a few minutes. */
function logNormalMs(r: Rng, medianMs: number, sigma: number, minMs: number, maxMs: number): number {
  const g = Math.sqrt(-2 * Math.log(1 - r())) * Math.cos(2 * Math.PI * r());
  return Math.round(Math.min(maxMs, Math.max(minMs, medianMs * Math.exp(sigma * g))));
}

interface AvroEvent {
  event_id: string;
  time: number;
  session_id: string;
  payload: Record<string, unknown>;
}

/**
 * One session of one device ending at `endAt`: start, foreground, page views, maybe network stats or
 * an app install/update, then either a crash (which ends the session: a crashed app sends no
 * session_end) or background + session_end with the session's duration.
 */
function session(r: Rng, d: DeviceProfile, endAt: number): { avro: AvroEvent[]; planned: PlannedEvent[] } {
  const sessionId = `s-${hex(r, 16)}`;
  const steps: Array<{ offset: number; kind: EventKind; payload: Record<string, unknown> }> = [];
  let t = 0;
  steps.push({ offset: t, kind: 'session_start', payload: { [`${NS}.SessionStart`]: {} } });
  t += 50 + Math.floor(r() * 400);
  steps.push({ offset: t, kind: 'app_foreground', payload: { [`${NS}.AppForeground`]: {} } });
  const views = 1 + Math.floor(r() * 6);
  const crashAt = r() < d.crashPerSession ? Math.floor(r() * (views + 1)) : -1;
  let crashed = false;
  for (let v = 0; v < views; v++) {
    if (v === crashAt) {
      crashed = true;
      break;
    }
    const dur = logNormalMs(r, 8000, 1.0, 300, 600_000);
    steps.push({ offset: t, kind: 'page_view', payload: { [`${NS}.PageView`]: { page: pick(r, PAGES), duration_ms: dur } } });
    t += dur;
    if (r() < 0.25) {
      steps.push({
        offset: t,
        kind: 'network_stats',
        payload: {
          [`${NS}.NetworkStats`]: {
            request_count: 1 + Math.floor(r() * 40),
            error_count: r() < 0.2 ? 1 + Math.floor(r() * 3) : 0,
            latency_ms: logNormalMs(r, 120, 0.7, 10, 20_000),
          },
        },
      });
    }
  }
  if (crashAt === views) crashed = true;
  if (!crashed && r() < 0.05) {
    steps.push({
      offset: t,
      kind: 'app_status',
      payload: {
        [`${NS}.AppStatus`]: {
          action: pick(r, ['install', 'update', 'update', 'delete']),
          package: pick(r, PACKAGES),
          version: `${1 + Math.floor(r() * 9)}.${Math.floor(r() * 20)}.${Math.floor(r() * 10)}`,
        },
      },
    });
  }
  if (crashed) {
    steps.push({
      offset: t,
      kind: 'crash',
      payload: {
        [`${NS}.Crash`]: {
          signature: hex(r, 16),
          exception_type: pick(r, EXCEPTIONS),
          app_version: d.appVersion,
          stack_trace: `at ${d.appId}.ui.MainActivity.onResume(MainActivity.java:${10 + Math.floor(r() * 400)})`,
        },
      },
    });
  } else {
    t += 100 + Math.floor(r() * 2000);
    steps.push({ offset: t, kind: 'app_background', payload: { [`${NS}.AppBackground`]: {} } });
    steps.push({ offset: t, kind: 'session_end', payload: { [`${NS}.SessionEnd`]: { duration_ms: t } } });
  }
  const start = endAt - t;
  const avro: AvroEvent[] = [];
  const planned: PlannedEvent[] = [];
  for (const s of steps) {
    const eventId = seededUuid(r);
    avro.push({ event_id: eventId, time: start + s.offset, session_id: sessionId, payload: s.payload });
    planned.push({ eventId, time: start + s.offset, kind: s.kind });
  }
  return { avro, planned };
}

/** An event ingest must reject, appended to an otherwise good batch, with the reason it should give. */
function badEvent(r: Rng, time: number): { avro: AvroEvent; planned: PlannedEvent } {
  const eventId = seededUuid(r);
  const variant = Math.floor(r() * 3);
  if (variant === 0) {
    // page longer than batch.avsc's maxLength 128
    return {
      avro: { event_id: eventId, time, session_id: 's-bad', payload: { [`${NS}.PageView`]: { page: 'x'.repeat(200), duration_ms: 10 } } },
      planned: { eventId, time, kind: 'page_view', expectReject: 'SCHEMA_STRING_TOO_LONG' },
    };
  }
  if (variant === 1) {
    // a crash signature that is not hex (format ^[0-9a-f]{8,64}$)
    return {
      avro: {
        event_id: eventId,
        time,
        session_id: 's-bad',
        payload: { [`${NS}.Crash`]: { signature: 'not-a-signature', exception_type: 'java.lang.Error', app_version: '0', stack_trace: null } },
      },
      planned: { eventId, time, kind: 'crash', expectReject: 'SCHEMA_BAD_FORMAT' },
    };
  }
  // an event id that is not a UUID (an SDK bug)
  const bad = `evt-${hex(r, 8)}`;
  return {
    avro: { event_id: bad, time, session_id: 's-bad', payload: { [`${NS}.AppForeground`]: {} } },
    planned: { eventId: bad, time, kind: 'app_foreground', expectReject: 'SCHEMA_BAD_FORMAT' },
  };
}

/** The batch value in avsc's in-memory shape (what `containerOf` encodes). */
export function batchValue(d: DeviceProfile, batchId: string, sentAt: number, events: AvroEvent[]): Record<string, unknown> {
  return {
    batch_id: batchId,
    sent_at: sentAt,
    device: {
      device_id: d.deviceId,
      imei: d.imei,
      oaid: d.oaid,
      gaid: d.gaid,
      imsi: d.imsi,
      sim_mcc: d.mcc,
      sim_mnc: d.mcc ? '01' : null,
      sim_operator: d.mcc ? 'Operator' : null,
      manufacturer: d.manufacturer,
      model: d.model,
      os_version: d.osVersion,
      rom_version: d.rom,
      app_id: d.appId,
      app_version: d.appVersion,
      sdk_version: '2.4.0',
      locale: d.locale,
      timezone: d.timezone,
      region: d.region,
      account_id: null,
      location: null,
    },
    consent: { analytics: d.consentAnalytics, personalised_ads: d.consentAds },
    events,
  };
}

/**
 * Plans batches one at a time. Each batch is one device's upload of 1-3 sessions; devices are drawn
 * uniformly, so with enough batches every device shows up and some several times.
 */
export class Population {
  readonly devices: DeviceProfile[];
  private readonly r: Rng;
  private seq = 0;
  private readonly o: Required<PopulationOptions>;

  constructor(o: PopulationOptions) {
    this.o = {
      consentWithheldShare: 0.08,
      noAdsShare: 0.4,
      lateShare: 0.15,
      tooLateShare: 0.01,
      retryShare: 0.03,
      badEventShare: 0.03,
      badBodyShare: 0.01,
      ...o,
    };
    this.devices = buildDevices(this.o);
    // A second stream for the batches, so the device list does not depend on how many batches are drawn.
    this.r = seededRng((o.seed ^ 0x9e3779b9) >>> 0);
  }

  /**
   * The next batch at wall-clock `now`. Current sessions end within the last 20 minutes; late ones on
   * yesterday or the day before (both still inside their day secret's 48 h grace and the aggregator's
   * 3-day lateness window); too-late ones four days back (their secret is past its grace).
   */
  next(now: number): PlannedBatch {
    const r = this.r;
    const seq = this.seq++;
    const device = this.devices[Math.floor(r() * this.devices.length)]!;
    const x = r();
    const o = this.o;
    let kind: BatchKind = 'current';
    if (x < o.badBodyShare) kind = 'bad_body';
    else if (x < o.badBodyShare + o.tooLateShare) kind = 'too_late';
    else if (x < o.badBodyShare + o.tooLateShare + o.lateShare) kind = 'late';
    else if (x < o.badBodyShare + o.tooLateShare + o.lateShare + o.badEventShare) kind = 'bad_event';

    const today = Math.floor(now / DAY_MS);
    const sessions = 1 + Math.floor(r() * 3);
    const avro: AvroEvent[] = [];
    const planned: PlannedEvent[] = [];
    for (let s = 0; s < sessions; s++) {
      let endAt: number;
      if (kind === 'late') {
        const day = today - (r() < 0.65 ? 1 : 2);
        endAt = day * DAY_MS + Math.floor(r() * (DAY_MS - 1));
      } else if (kind === 'too_late') {
        endAt = (today - 4) * DAY_MS + Math.floor(r() * (DAY_MS - 1));
      } else {
        endAt = now - 1000 - Math.floor(r() * 20 * 60_000);
      }
      const sess = session(r, device, endAt);
      avro.push(...sess.avro);
      planned.push(...sess.planned);
    }
    if (kind === 'too_late') for (const p of planned) p.expectReject = 'TOKEN_TOO_LATE';
    if (kind === 'bad_event') {
      const b = badEvent(r, now - 2000);
      // Somewhere in the middle: the good events on both sides must still go through (DESIGN 6).
      const at = Math.floor(r() * (avro.length + 1));
      avro.splice(at, 0, b.avro);
      planned.splice(at, 0, b.planned);
    }
    const batchId = `b-${hex(r, 20)}`;
    const resends = r() < o.retryShare ? 1 : 0;
    let body: Buffer;
    let contentType = 'avro/binary';
    const value = batchValue(device, batchId, now - 500, avro);
    if (kind === 'bad_body') {
      if (r() < 0.5) {
        // A body cut off mid-upload: the Avro container is truncated.
        const full = containerOf(value, 'deflate');
        body = full.subarray(0, Math.max(8, Math.floor(full.length * 0.6)));
      } else {
        // A debugging client posting broken Avro-JSON.
        contentType = 'application/json';
        body = Buffer.from(`{"batch_id": "${batchId}", "events": [`);
      }
      for (const p of planned) p.expectReject = 'BATCH';
    } else {
      body = containerOf(value, 'deflate');
    }
    return { seq, kind, device, events: planned, body, contentType, resends, value };
  }
}
