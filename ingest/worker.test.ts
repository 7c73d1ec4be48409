import { describe, expect, it } from 'vitest';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { batch, containerOf, olderWriterContainer } from '../testing/batches.ts';
import { decodeEventFacts } from '../schemas/index.ts';
import { loadIngestConfig } from './config.ts';
import { createMetrics } from './metrics.ts';
import { createPool, createTaskGroups } from './pool.ts';
import { INDEX_WIDTH, packRecords, unpackRecords } from './records.ts';
import { MEMBER_DONE, PROGRESS_SLOTS, type WorkerGroup, type WorkerGroupResult, type WorkerResult, type WorkerTask } from './task.ts';

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
    // The index (six u32 per record, four records) and then every key and value, back to back.
    expect(packed.count).toBe(4);
    expect(packed.data.byteLength).toBe(4 * INDEX_WIDTH * 4 + (2 + 2 + 2 + 2 + 2 + 2 + 2));
    expect(packed.classes).toEqual(['p30d', 'p7d']);
    expect(unpackRecords(packed)).toEqual(r);
  });
});

describe('pool task', () => {
  it('runs a group of batches in one task: bodies moved in, each batch its own result, records moved out', async () => {
    const cfg = loadIngestConfig({ INGEST_POOL_THREADS: '1', INGEST_ZONES_SHARE_MAIN_CLUSTER: 'true', INGEST_UNSAFE_UNSEALED: 'true' });
    const pool = createPool(cfg, { kind: 'file', dir: mkdtempSync(join(tmpdir(), 'keys-')) });
    try {
      const bodies = [containerOf(batch({ events: 5 })), Buffer.from('not a container'), containerOf(batch({ events: 3 }))];
      const tasks: WorkerTask[] = bodies.map((body) => {
        const ab = new ArrayBuffer(body.length);
        new Uint8Array(ab).set(body);
        return { body: ab, length: body.length, format: 'avro', encoding: 'identity', receivedAt: Date.now() };
      });
      const group: WorkerGroup = { tasks, progress: new Int32Array(new SharedArrayBuffer(4 * PROGRESS_SLOTS * 3)), submittedAt: Date.now() };
      const results = (await pool.run(group, { transferList: tasks.map((t) => t.body) })) as WorkerGroupResult;
      for (const t of tasks) expect(t.body.byteLength).toBe(0); // transferred, not cloned
      for (let i = 0; i < 3; i++) expect(Atomics.load(group.progress, i * PROGRESS_SLOTS)).toBe(MEMBER_DONE);
      expect(results).toHaveLength(3);
      const [first, bad, third] = results as [WorkerResult, WorkerResult, WorkerResult];
      // The bad body fails alone, with its own code; its neighbours keep their records.
      expect(bad.ok ? 'ok' : bad.code).toBe('INGEST_CONTAINER_BAD_MAGIC');
      if (!first.ok || !third.ok) throw new Error('a good batch of the group failed');
      expect([first.accepted, third.accepted]).toEqual([5, 3]);
      expect(first.data).not.toBe(third.data);
      const recs = unpackRecords(first);
      expect(recs.events).toHaveLength(1); // one record per (batch, day): the batch's facts of today
      expect(decodeEventFacts(recs.events[0]!.value)).toHaveLength(5);
      // The device record (p30d) only: no client IP and no location in this task, so no p7d record.
      expect(recs.personal.map((p) => p.retentionClass)).toEqual(['p30d']);
      // The record Buffers are views on the one moved ArrayBuffer.
      for (const e of recs.events) expect(e.value.buffer).toBe(first.data);
    } finally {
      await pool.destroy();
    }
  });

  it('blames only the batch that was running when the time limit stopped its group', async () => {
    const cfg = loadIngestConfig({
      INGEST_POOL_THREADS: '1',
      INGEST_ZONES_SHARE_MAIN_CLUSTER: 'true',
      INGEST_UNSAFE_UNSEALED: 'true',
      INGEST_TASK_TIMEOUT_MS: '100',
      INGEST_MAX_EVENTS_PER_BATCH: '30000',
      INGEST_POOL_GROUP_MAX_BYTES: String(64 << 20),
    });
    const pool = createPool(cfg, { kind: 'file', dir: mkdtempSync(join(tmpdir(), 'keys-')) });
    const groups = createTaskGroups(cfg, pool, createMetrics());
    const task = (body: Buffer): WorkerTask => {
      const ab = new ArrayBuffer(body.length);
      new Uint8Array(ab).set(body);
      return { body: ab, length: body.length, format: 'avro', encoding: 'identity', receivedAt: Date.now() };
    };
    try {
      // A warm worker: the first group also waits for the worker to start and compile.
      for (let i = 0; i < 50 && !(await groups.run(task(containerOf(batch({ events: 2 }))))).ok; i++) await new Promise((r) => setTimeout(r, 200));
      // 30,000 events through the generic path (an older writer schema, ~6 µs per event) take well over
      // the 100 ms limit; the small batch before it takes about a millisecond.
      const big = olderWriterContainer(batch({ events: 30_000 }));
      const small = containerOf(batch({ events: 2 }));
      // Handed over in one turn: one group of three.
      const answers = await Promise.all([groups.run(task(small)), groups.run(task(big)), groups.run(task(small))]);
      expect(answers.map((a) => (a.ok ? 'ok' : a.code))).toEqual(['INGEST_OVERLOADED', 'INGEST_BATCH_TOO_EXPENSIVE', 'INGEST_OVERLOADED']);
    } finally {
      await pool.destroy();
    }
  });
});
