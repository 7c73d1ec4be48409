/**
 * A generated population of devices and their events with its ground truth (the oracle), for the
 * aggregator's integration tests and the bench. Deterministic for a seed. It includes what the
 * aggregator must cope with: the same event delivered twice (same event key), events from days
 * inside the lateness window, and events too late or from the future that must not count.
 */
import { createHash } from 'node:crypto';
import type { EventFact, EventKind } from '../schemas/contract.ts';
import { dayToIso, utcDay } from '../aggregator/facts.ts';
import type { Dimension, QueryRequest, ReportRow } from '../aggregator/query.ts';
import { rng } from './rng.ts';

export interface PopulationOptions {
  seed: number;
  /** Days relative to today that count (must be inside the lateness window). @default [0, -1, -3] */
  days?: number[];
  /** Devices per counted day. @default 400 */
  devicesPerDay?: number;
  /** Events from days too late (today - 10) and from the future (today + 2). @default 20 each */
  lateEvents?: number;
  futureEvents?: number;
  /** Share of events sent twice. @default 0.05 */
  duplicateShare?: number;
  nowMs?: number;
}

export interface Population {
  /** Facts in send order (duplicates included, interleaved). */
  facts: EventFact[];
  /** Facts that are inside the window, each unique event once. */
  counted: EventFact[];
  /** Records (deliveries, repeats included) that are too late / from the future. */
  late: number;
  future: number;
  duplicates: number;
}

const h16 = (...parts: Array<string | number>) => createHash('sha256').update(parts.join('|')).digest().subarray(0, 16);

const APPS = ['com.example.mail', 'com.example.maps'];
const VERSIONS = ['1.0.0', '1.1.0'];
const MODELS = ['M2102J20SG', '2201117TY', 'SM-G991B'];
const OSES = ['12', '13'];
const COUNTRIES = ['DE', 'IN', 'BR'];

export function generatePopulation(o: PopulationOptions): Population {
  const r = rng(o.seed);
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(r() * xs.length)]!;
  const now = o.nowMs ?? Date.now();
  const today = utcDay(now);
  const counted: EventFact[] = [];
  const mk = (
    device: number,
    day: number,
    n: number,
    kind: EventKind,
    dims: Omit<EventFact, 'event_key' | 'daily_token' | 'day' | 'kind' | 'duration_ms' | 'crash_signature' | 'exception_type'>,
  ): EventFact => ({
    event_key: h16(o.seed, 'event', device, day, n),
    daily_token: h16(o.seed, 'device', device, day),
    day,
    kind,
    ...dims,
    duration_ms: kind === 'session_end' || kind === 'page_view' ? 1000 + n : null,
    crash_signature: kind === 'crash' ? 'sig' + (n % 3) : null,
    exception_type: kind === 'crash' ? 'java.lang.IllegalStateException' : null,
  });
  const devicesPerDay = o.devicesPerDay ?? 400;
  for (const rel of o.days ?? [0, -1, -3]) {
    const day = today + rel;
    for (let d = 0; d < devicesPerDay; d++) {
      // Skewed towards the first values, so some fine-grained groups fall below k.
      const skew = <T>(xs: readonly T[]): T => (r() < 0.7 ? xs[0]! : pick(xs));
      const dims = { app_id: pick(APPS), app_version: skew(VERSIONS), device_model: skew(MODELS), os_version: skew(OSES), country: skew(COUNTRIES) };
      const sessions = 1 + Math.floor(r() * 3);
      let n = 0;
      for (let s = 0; s < sessions; s++) {
        counted.push(mk(d, day, n++, 'session_start', dims));
        if (r() < 0.5) counted.push(mk(d, day, n++, 'page_view', dims));
        if (r() < 0.08) counted.push(mk(d, day, n++, 'crash', dims));
        else counted.push(mk(d, day, n++, 'session_end', dims));
      }
    }
  }
  const outside: EventFact[] = [];
  const dims0 = { app_id: APPS[0]!, app_version: VERSIONS[0]!, device_model: MODELS[0]!, os_version: OSES[0]!, country: COUNTRIES[0]! };
  for (let i = 0; i < (o.lateEvents ?? 20); i++) outside.push(mk(100_000 + i, today - 10, 0, i % 2 ? 'crash' : 'session_start', dims0));
  for (let i = 0; i < (o.futureEvents ?? 20); i++) outside.push(mk(200_000 + i, today + 2, 0, 'session_start', dims0));
  // Shuffle (deterministically), then repeat some events, a few positions later.
  const all = [...counted, ...outside];
  for (let i = all.length - 1; i > 0; i--) {
    const j = Math.floor(r() * (i + 1));
    [all[i], all[j]] = [all[j]!, all[i]!];
  }
  const facts: EventFact[] = [];
  const share = o.duplicateShare ?? 0.05;
  let duplicates = 0;
  const later: Array<[number, EventFact]> = [];
  for (let i = 0; i < all.length; i++) {
    facts.push(all[i]!);
    if (r() < share) later.push([i + 1 + Math.floor(r() * 500), all[i]!]);
    while (later.length && later[0]![0] <= i) {
      facts.push(later.shift()![1]);
      duplicates++;
    }
  }
  for (const [, f] of later) {
    facts.push(f);
    duplicates++;
  }
  // Deliveries, not events: a repeated late event is a second late record for the metric.
  const late = facts.filter((f) => f.day === today - 10).length;
  const future = facts.filter((f) => f.day === today + 2).length;
  return { facts, counted, late, future, duplicates };
}

/** What `npm run query` must print for `req`, computed from the counted facts with plain sets. */
export function oracleReport(counted: readonly EventFact[], req: QueryRequest, k: number): ReportRow[] {
  // Released cells: one UTC day x all six dimensions, kept when they cover >= k distinct devices; every
  // report is a sum of released cells (aggregator/migrations/R_analyst_views.sql).
  const cellDims: Dimension[] = ['day', 'app_id', 'app_version', 'device_model', 'os_version', 'country'];
  const dimValue = (f: EventFact, d: Dimension) => (d === 'day' ? dayToIso(f.day) : f[d]);
  type Sets = { devices: Set<string>; sessions: Set<string>; crashes: Set<string>; crashed: Set<string> };
  const cells = new Map<string, { outer: string; sets: Sets }>();
  for (const f of counted) {
    if (f.day < req.from || f.day > req.to) continue;
    if (req.app !== undefined && f.app_id !== req.app) continue;
    const ck = JSON.stringify(cellDims.map((d) => dimValue(f, d)));
    let g = cells.get(ck);
    if (!g) {
      g = {
        outer: JSON.stringify(req.by.map((d) => dimValue(f, d))),
        sets: { devices: new Set(), sessions: new Set(), crashes: new Set(), crashed: new Set() },
      };
      cells.set(ck, g);
    }
    const tok = f.daily_token.toString('hex');
    g.sets.devices.add(tok);
    if (f.kind === 'session_start') g.sets.sessions.add(f.event_key.toString('hex'));
    if (f.kind === 'crash') {
      g.sets.crashes.add(f.event_key.toString('hex'));
      g.sets.crashed.add(tok);
    }
  }
  const outer = new Map<string, { devices: number; sessions: number; crashes: number; crashed: number }>();
  for (const { outer: ok, sets } of cells.values()) {
    if (sets.devices.size < k) continue;
    const o = outer.get(ok) ?? { devices: 0, sessions: 0, crashes: 0, crashed: 0 };
    o.devices += sets.devices.size;
    o.sessions += sets.sessions.size;
    o.crashes += sets.crashes.size;
    o.crashed += sets.crashed.size;
    outer.set(ok, o);
  }
  const perDayOut = req.by.includes('day');
  const round = (x: number) => Math.round(x * 1000) / 1000;
  const rows: Array<{ key: string[]; row: ReportRow }> = [];
  for (const [ok, o] of outer) {
    const key = JSON.parse(ok) as string[];
    const row: ReportRow = {};
    req.by.forEach((d, i) => (row[d] = key[i]!));
    row[perDayOut ? 'active_devices' : 'device_days'] = o.devices;
    if (req.report === 'crash-rate') {
      row.sessions = o.sessions;
      row.crashes = o.crashes;
      row[perDayOut ? 'crashed_devices' : 'crashed_device_days'] = o.crashed;
      row.crash_free_devices_pct = o.devices > 0 ? round(100 * (1 - o.crashed / o.devices)) : null;
      row.crashes_per_1000_sessions = o.sessions > 0 ? round((1000 * o.crashes) / o.sessions) : null;
    }
    rows.push({ key, row });
  }
  // Same order as ClickHouse's ORDER BY over the dimensions (byte-wise string order).
  rows.sort((a, b) => {
    for (let i = 0; i < a.key.length; i++) {
      const c = Buffer.compare(Buffer.from(a.key[i]!), Buffer.from(b.key[i]!));
      if (c) return c;
    }
    return 0;
  });
  return rows.map((r) => r.row);
}
