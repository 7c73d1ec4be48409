/**
 * Rows waiting for the next flush, and the Kafka positions they cover.
 *
 * `offsets` holds, per topic-partition, the offset of the next record after the last one buffered.
 * Committing it is only allowed once every row buffered before it is in ClickHouse (aggregator.ts
 * inserts first, then commits). A row with the same effect as one already buffered (`sameEffect`)
 * is dropped here: repeats of an event, and the page views, foregrounds... of a device whose group
 * already has it. An optimisation that saves rows, never relied on for correctness (the
 * uniqExact states are: a dropped row would have changed no state).
 */
import { countsEventKey } from '../schemas/index.ts';
import type { FactRow } from './facts.ts';

export interface FlushBatch {
  rows: FactRow[];
  /** `topic\0partition` -> next offset to commit. */
  offsets: Map<string, string>;
  /** Rows dropped because a row with the same effect (dedup key) was already in this batch. */
  duplicates: number;
}

export function tpKey(topic: string, partition: number): string {
  return `${topic}\u0000${partition}`;
}

export function splitTpKey(k: string): { topic: string; partition: number } {
  const i = k.lastIndexOf('\u0000');
  return { topic: k.slice(0, i), partition: Number(k.slice(i + 1)) };
}

function sameBuf(a: Buffer, b: Buffer): boolean {
  if (a === b) return true;
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

/**
 * True when inserting `b` after `a` changes no state of `daily_agg` (DESIGN.md: a row adds its token
 * to `devices` of its group; a session_start also its event key to `sessions`; a crash its event
 * key to `crashes` and its token to `crashed_devices`). Same group and token, and for the counted
 * kinds also the same kind and event key.
 */
export function sameEffect(a: FactRow, b: FactRow): boolean {
  if (a === b) return true;
  const counted = countsEventKey(a.kind);
  if (counted !== countsEventKey(b.kind)) return false;
  if (counted && (a.kind !== b.kind || !sameBuf(a.event_key, b.event_key))) return false;
  if (!sameBuf(a.daily_token, b.daily_token)) return false;
  if (a.dims_tsv !== undefined && a.dims_tsv === b.dims_tsv) return true;
  return (
    a.day === b.day &&
    a.app_id === b.app_id &&
    a.app_version === b.app_version &&
    a.device_model === b.device_model &&
    a.os_version === b.os_version &&
    a.country === b.country
  );
}

/** A 30-bit hash of what `sameEffect` compares first (tokens and event keys are keyed hashes: uniform). */
function effectHash(r: FactRow): number {
  const k = countsEventKey(r.kind) ? r.event_key : r.daily_token;
  const h = (k[0]! | (k[1]! << 8) | (k[2]! << 16) | (k[3]! << 24)) ^ (k[12]! | (k[13]! << 8) | (k[14]! << 16)) ^ Math.imul(r.day, 0x9e3779b1);
  return h & 0x3fffffff;
}

export class FlushBuffer {
  private rows: FactRow[] = [];
  /** Effect hash -> index of the last row with it; `chain[i]` = the previous row with the same hash. */
  private heads = new Map<number, number>();
  private chain: number[] = [];
  private offsets = new Map<string, string>();
  private duplicates = 0;

  get size(): number {
    return this.rows.length;
  }

  /** True when there is nothing to insert and no position to commit. */
  get empty(): boolean {
    return this.rows.length === 0 && this.offsets.size === 0;
  }

  /**
   * Buffers a row unless a buffered row has the same effect (no string keys: a hash of the token or
   * event key, then `sameEffect`). `dedup` false (the negative control) keeps every row.
   */
  addRow(row: FactRow, dedup = true): void {
    if (dedup) {
      const h = effectHash(row);
      const head = this.heads.get(h);
      // The walk is bounded: past 64 rows with one hash (only contrived keys collide that much) the
      // row is kept, which costs a row, never a count.
      for (let i = head ?? -1, n = 0; i >= 0 && n < 64; i = this.chain[i]!, n++) {
        if (sameEffect(this.rows[i]!, row)) {
          this.duplicates++;
          return;
        }
      }
      this.heads.set(h, this.rows.length);
      this.chain.push(head ?? -1);
    } else {
      this.chain.push(-1);
    }
    this.rows.push(row);
  }

  /** Records that everything up to and including `offset` of the partition has been buffered. */
  advance(topic: string, partition: number, offset: string): void {
    this.offsets.set(tpKey(topic, partition), (BigInt(offset) + 1n).toString());
  }

  /** Forget the position of partitions this process no longer owns (rows stay: inserting them is harmless). */
  keepOnly(assigned: ReadonlySet<string>): void {
    for (const k of [...this.offsets.keys()]) if (!assigned.has(k)) this.offsets.delete(k);
  }

  /** Puts back positions whose commit failed, unless a newer position was buffered meanwhile. */
  restoreOffsets(offsets: ReadonlyMap<string, string>): void {
    for (const [k, v] of offsets) if (!this.offsets.has(k)) this.offsets.set(k, v);
  }

  take(): FlushBatch {
    const out: FlushBatch = { rows: this.rows, offsets: this.offsets, duplicates: this.duplicates };
    this.rows = [];
    this.heads = new Map();
    this.chain = [];
    this.offsets = new Map();
    this.duplicates = 0;
    return out;
  }
}
