/**
 * Rows waiting for the next flush, and the Kafka positions they cover.
 *
 * `offsets` holds, per topic-partition, the offset of the next record after the last one buffered.
 * Committing it is only allowed once every row buffered before it is in ClickHouse (aggregator.ts
 * inserts first, then commits). Duplicate event keys inside one buffer are dropped here: an
 * optimisation that saves rows, never relied on for correctness (the uniqExact states are).
 */
import type { FactRow } from './facts.ts';

export interface FlushBatch {
  rows: FactRow[];
  /** `topic\0partition` -> next offset to commit. */
  offsets: Map<string, string>;
  /** Rows dropped as duplicates of an event key already in this batch. */
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

  constructor(private readonly dedupInMemory = true) {}

  get size(): number {
    return this.rows.length;
  }

  /** True when there is nothing to insert and no position to commit. */
  get empty(): boolean {
    return this.rows.length === 0 && this.offsets.size === 0;
  }

  /** Buffers a row (or only its position, for a record that does not count: late, future, bad). */
  add(topic: string, partition: number, offset: string, row: FactRow | null): void {
    if (row) {
      // latin1 maps each byte to one char: a cheap exact key for 16 raw bytes.
      const k = row.event_key.toString('latin1');
      if (this.dedupInMemory && this.seen.has(k)) this.duplicates++;
      else {
        this.seen.add(k);
        this.rows.push(row);
      }
    }
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
