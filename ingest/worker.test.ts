import { describe, expect, it } from 'vitest';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { batch, containerOf } from '../testing/batches.ts';
import { decodeEventFacts } from '../schemas/index.ts';
import { loadIngestConfig } from './config.ts';
import { createPool } from './pool.ts';
import { packRecords, unpackRecords } from './records.ts';
import type { WorkerResult, WorkerTask } from './task.ts';

describe('worker records packing', () => {
  it('round-trips keys, values, zones, retention classes and headers through one ArrayBuffer', () => {
    const r = {
      events: [{ key: Buffer.from('k1'), value: Buffer.from('v1') }],
      personal: [
        { key: Buffer.from('pk'), value: Buffer.from('pv'), zone: 'ru' as const, retentionClass: 'p30d' },
        { key: Buffer.from('pk'), value: Buffer.from('p7'), zone: 'row' as const, retentionClass: 'p7d' },
      ],
      rejected: [{ key: Buffer.from('rk'), value: Buffer.alloc(0), zone: 'in' as const, headers: { reason: 'X' } }],
    };
    const packed = packRecords(r);
    expect(packed.data.byteLength).toBe(2 + 2 + 2 + 2 + 2 + 2 + 2);
    expect(packed.classes).toEqual(['p30d', 'p7d']);
    expect(unpackRecords(packed)).toEqual(r);
  });
});

describe('pool task', () => {
  it('moves the body in (detached on this side) and the records out, without copies', async () => {
    const cfg = loadIngestConfig({ INGEST_POOL_THREADS: '1', INGEST_ZONES_SHARE_MAIN_CLUSTER: 'true', INGEST_UNSAFE_UNSEALED: 'true' });
    const pool = createPool(cfg, { kind: 'file', dir: mkdtempSync(join(tmpdir(), 'keys-')) });
    try {
      const body = containerOf(batch({ events: 5 }));
      const ab = new ArrayBuffer(body.length);
      new Uint8Array(ab).set(body);
      const task: WorkerTask = {
        body: ab,
        length: body.length,
        format: 'avro',
        encoding: 'identity',
        receivedAt: Date.now(),
        started: new Int32Array(new SharedArrayBuffer(4)),
      };
      const result = (await pool.run(task, { transferList: [ab] })) as WorkerResult;
      expect(ab.byteLength).toBe(0); // transferred, not cloned
      expect(Atomics.load(task.started, 0)).toBe(1);
      if (!result.ok) throw new Error(result.message);
      expect(result.accepted).toBe(5);
      expect(result.data).toBeInstanceOf(ArrayBuffer);
      const recs = unpackRecords(result);
      expect(recs.events).toHaveLength(1); // one record per (batch, day): the batch's facts of today
      expect(decodeEventFacts(recs.events[0]!.value)).toHaveLength(5);
      // The device record (p30d) only: no client IP and no location in this task, so no p7d record.
      expect(recs.personal.map((p) => p.retentionClass)).toEqual(['p30d']);
      // The record Buffers are views on the one moved ArrayBuffer.
      for (const e of recs.events) expect(e.value.buffer).toBe(result.data);
    } finally {
      await pool.destroy();
    }
  });
});
