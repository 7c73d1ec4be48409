/**
 * The devices and batches bench/linkage.ts posts, with the ground truth it keeps (which device sent
 * which batch). A realistic mix: every residency zone, a few apps, versions and models, sessions of the
 * usual kinds (so short batches often look alike), retries of the same body, batches spanning UTC
 * midnight (events of yesterday 23:59 and of today 00:0x: two events records, two daily tokens) and
 * late batches (yesterday's events sent today), all inside the day secrets' window.
 */
import { randomUUID } from 'node:crypto';
import { DAY_MS } from '../schemas/index.ts';
import { batch as testBatch, device, type TestBatch, type TestEvent, ZONE_MCC } from '../testing/batches.ts';
import { rng } from '../testing/rng.ts';
import { eventPayload } from '../testing/schema-fixtures.ts';

export type BatchShape = 'today' | 'midnight' | 'late';

export interface LinkagePost {
  /** Device identity as ingest keys the personal record (`device_id:<id>`). */
  identity: string;
  deviceId: string;
  shape: BatchShape;
  retry: boolean;
  batch: TestBatch;
}

const APPS = ['com.miui.weather2', 'com.example.mail', 'com.example.maps'];
const VERSIONS = ['13.0.6.1', '13.0.7.0', '14.0.0.2'];
const MODELS = ['M2102J20SG', '2201117TG', '23049PCD8G', '22101316G', '2304FPN6DG', '23078PND5G'];
const OSES = ['12', '13', '14'];
const ZONES = Object.keys(ZONE_MCC) as Array<keyof typeof ZONE_MCC>;
/** eventPayload(i) index of each kind. */
const KIND = { session_start: 0, page_view: 1, app_foreground: 2, network_stats: 3, app_background: 4, app_status: 5, crash: 6, session_end: 7 };

/** One or more sessions of the usual kinds, as a device SDK writes them. */
function sessionKinds(r: () => number): number[] {
  const out: number[] = [];
  const sessions = 1 + Math.floor(r() * 3);
  for (let s = 0; s < sessions; s++) {
    out.push(KIND.session_start);
    for (const k of [KIND.app_foreground, KIND.page_view, KIND.network_stats]) if (r() < 0.6) out.push(k);
    if (r() < 0.1) out.push(KIND.crash);
    if (r() < 0.1) out.push(KIND.app_status);
    out.push(r() < 0.05 ? KIND.crash : KIND.session_end);
    if (r() < 0.5) out.push(KIND.app_background);
  }
  return out;
}

function eventsAt(kinds: number[], from: number, stepMs: number): TestEvent[] {
  return kinds.map((k, i) => ({ event_id: randomUUID(), time: from + i * stepMs, session_id: 's-1', payload: eventPayload(k) }));
}

/** The batch's events by shape; `now` must be at least 10 minutes past UTC midnight. */
function eventsOf(shape: BatchShape, r: () => number, now: number): TestEvent[] {
  const today = Math.floor(now / DAY_MS) * DAY_MS;
  if (shape === 'midnight') {
    const before = sessionKinds(r);
    const after = sessionKinds(r);
    return [...eventsAt(before, today - 1000 * (before.length + 1), 1000), ...eventsAt(after, today + 60_000 + Math.floor(r() * 300_000), 1000)];
  }
  if (shape === 'late') return eventsAt(sessionKinds(r), today - DAY_MS / 2 + Math.floor(r() * 3_600_000), 2000);
  return eventsAt(sessionKinds(r), now - 600_000 + Math.floor(r() * 500_000), 2000);
}

/**
 * `devices` devices, each sending 2 or 3 batches (15 % spanning midnight, 15 % late), and a retry of
 * 10 % of the batches (the same body again); shuffled into a posting order.
 */
export function linkagePopulation(o: { seed: number; devices: number; now: number }): LinkagePost[] {
  const r = rng(o.seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const posts: LinkagePost[] = [];
  for (let d = 0; d < o.devices; d++) {
    const deviceId = `link-${o.seed}-${d}-${randomUUID()}`;
    const dev = {
      ...device({ zone: ZONES[d % ZONES.length]!, deviceId }),
      app_id: pick(APPS),
      app_version: pick(VERSIONS),
      model: pick(MODELS),
      os_version: pick(OSES),
    };
    const n = 2 + (r() < 0.3 ? 1 : 0);
    for (let b = 0; b < n; b++) {
      const u = r();
      const shape: BatchShape = u < 0.15 ? 'midnight' : u < 0.3 ? 'late' : 'today';
      const batch: TestBatch = {
        batch_id: randomUUID(),
        sent_at: o.now - 500,
        device: dev,
        consent: testBatch({ events: 0 }).consent,
        events: eventsOf(shape, r, o.now),
      };
      const post = { identity: `device_id:${deviceId}`, deviceId, shape, retry: false, batch };
      posts.push(post);
      if (r() < 0.1) posts.push({ ...post, retry: true });
    }
  }
  // Posting order: shuffled, a retry never before its first post.
  for (let i = posts.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [posts[i], posts[j]] = [posts[j]!, posts[i]!];
  }
  const seen = new Set<string>();
  for (const p of posts) {
    if (seen.has(p.batch.batch_id)) p.retry = true;
    else {
      p.retry = false;
      seen.add(p.batch.batch_id);
    }
  }
  return posts;
}
