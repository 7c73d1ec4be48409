/**
 * From an event fact to the row the aggregator writes, and the decision whether it counts at all.
 *
 * Only the nine columns below ever reach ClickHouse: the grouping dimensions, the event kind, and the
 * two 16-byte keyed hashes. Policy 1.1.4: "we don't need to know in that day who is active, so
 * aggregate data is enough"; the daily token links nothing across days and the aggregate states only
 * keep hashes of hashes, so nothing personal is written. Durations, crash signatures and exception
 * types are dropped here because no aggregate needs them.
 */
import { randomBytes } from 'node:crypto';
import { DAY_MS, type EventFact, type EventKind } from '../schemas/index.ts';

export interface FactRow {
  /** UTC day, days since 1970-01-01. */
  day: number;
  app_id: string;
  app_version: string;
  device_model: string;
  os_version: string;
  country: string;
  kind: EventKind;
  daily_token: Buffer;
  event_key: Buffer;
  /**
   * The six dimension columns already in TabSeparated form (day to country, each followed by a tab),
   * shared by every row of the same group; set by FactReader, computed by encodeFactsTsv when absent.
   */
  dims_tsv?: Buffer;
}

export type FactVerdict = { kind: 'ok'; row: FactRow } | { kind: 'late'; day: number } | { kind: 'future'; day: number };

export interface WindowOptions {
  nowMs: number;
  maxLatenessDays: number;
  futureSkewMs: number;
  /** Negative control only (AGGREGATOR_UNSAFE_COUNT_ROWS): replace the dedup key with a random one. */
  unsafeCountRows?: boolean;
}

export function utcDay(ms: number): number {
  return Math.floor(ms / DAY_MS);
}

/** 'YYYY-MM-DD' of a day number; ClickHouse `Date` reads this form on every version. */
export function dayToIso(day: number): string {
  return new Date(day * DAY_MS).toISOString().slice(0, 10);
}

/** 'YYYY-MM-DD' -> day number, or undefined when it is not a real calendar day. */
export function isoToDay(s: string): number | undefined {
  if (!/^\d{4}-\d{2}-\d{2}$/.test(s)) return undefined;
  const ms = Date.parse(`${s}T00:00:00Z`);
  if (!Number.isFinite(ms) || dayToIso(ms / DAY_MS) !== s) return undefined;
  return ms / DAY_MS;
}

/**
 * The lateness window (aggregator/DESIGN.md, "Late and early events"): an event of day D counts while
 * D >= today - maxLatenessDays (so a phone that was offline for up to that long still lands in its own
 * day), and while D is not after the day of now + skew (a clock running ahead). Everything else is kept
 * out and counted in a metric.
 */
export function judgeFact(f: EventFact, w: WindowOptions): FactVerdict {
  const today = utcDay(w.nowMs);
  if (f.day < today - w.maxLatenessDays) return { kind: 'late', day: f.day };
  if (f.day > utcDay(w.nowMs + w.futureSkewMs)) return { kind: 'future', day: f.day };
  return {
    kind: 'ok',
    row: {
      day: f.day,
      app_id: f.app_id,
      app_version: f.app_version,
      device_model: f.device_model,
      os_version: f.os_version,
      country: f.country,
      kind: f.kind,
      daily_token: f.daily_token,
      event_key: w.unsafeCountRows ? randomBytes(16) : f.event_key,
    },
  };
}
