import { describe, expect, it } from 'vitest';
import { FlushBuffer, tpKey } from './flush-buffer.ts';
import type { FactRow } from './facts.ts';

const row = (k: number): FactRow => ({
  day: 1,
  app_id: 'a',
  app_version: '1',
  device_model: 'm',
  os_version: '1',
  country: 'DE',
  kind: 'session_start',
  daily_token: Buffer.alloc(16, 1),
  event_key: Buffer.alloc(16, k),
});

describe('FlushBuffer', () => {
  it('drops a row with the same effect as a buffered one and tracks the next offset per partition', () => {
    const b = new FlushBuffer();
    b.addRow(row(1));
    b.advance('t', 0, '10');
    b.addRow(row(1));
    b.advance('t', 0, '11');
    b.advance('t', 1, '5');
    const x = b.take();
    expect(x.rows).toHaveLength(1);
    expect(x.duplicates).toBe(1);
    expect([...x.offsets]).toEqual([
      [tpKey('t', 0), '12'],
      [tpKey('t', 1), '6'],
    ]);
    expect(b.empty).toBe(true);
  });
  it('keeps every row with dedup off (the negative control) and forgets rows after a take', () => {
    const b = new FlushBuffer();
    b.addRow(row(1), false);
    b.addRow(row(1), false);
    b.addRow(row(1));
    expect(b.take().rows).toHaveLength(3);
    b.addRow(row(1));
    expect(b.take().rows).toHaveLength(1);
  });
  it('forgets positions of partitions lost in a rebalance and restores failed commits without going back', () => {
    const b = new FlushBuffer();
    b.addRow(row(1));
    b.advance('t', 0, '1');
    b.addRow(row(2));
    b.advance('t', 1, '1');
    b.keepOnly(new Set([tpKey('t', 1)]));
    const x = b.take();
    expect([...x.offsets.keys()]).toEqual([tpKey('t', 1)]);
    b.addRow(row(3));
    b.advance('t', 1, '9');
    b.restoreOffsets(x.offsets);
    expect(b.take().offsets.get(tpKey('t', 1))).toBe('10');
  });
});
