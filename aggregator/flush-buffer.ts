/**
 * Rows waiting for the next flush, and the Kafka positions they cover.
 *
 * `offsets` holds, per topic-partition, the offset of the next record after the last one buffered.
 * Committing it is only allowed once every row buffered before it is in ClickHouse (aggregator.ts
 * inserts first, then commits). Rows whose dedup key (fact-reader.ts, `keyOfRow`) was already
 * buffered are dropped here: repeats of an event, and the page views, foregrounds... of a device whose
 * group already has it. An optimisation that saves rows, never relied on for correctness (the
 * uniqExact states are: a dropped row would have changed no state).
 */
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

export class FlushBuffer {
  private rows: FactRow[] = [];
  private seen = new Set<string>();
  private offsets = new Map<string, string>();
  private duplicates = 0;

  get size(): number {
    return this.rows.length;
  }

  /** True when there is nothing to insert and no position to commit. */
  get empty(): boolean {
    return this.rows.length === 0 && this.offsets.size === 0;
  }

  /** Buffers a row unless a row with the same dedup key is buffered; `key` null = always keep. */
  addRow(row: FactRow, key: string | null): void {
    if (key !== null) {
      if (this.seen.has(key)) {
        this.duplicates++;
        return;
      }
      this.seen.add(key);
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
    this.seen = new Set();
    this.offsets = new Map();
    this.duplicates = 0;
    return out;
  }
}
