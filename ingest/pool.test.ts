/**
 * TaskGroups (pool.ts): which batches share a pool task, how many count as queued, and what each
 * member of a group is told when its worker is terminated. The pool here is a function that answers
 * groups the way a worker would (marking progress), so every case is exact; worker.test.ts runs the
 * same through a real piscina pool.
 */
import v8 from 'node:v8';
import { Worker } from 'node:worker_threads';
import { afterAll, describe, expect, it } from 'vitest';
import { setWorkerInitialHeap, TaskGroups, type GroupSettings, type SubmitGroup } from './pool.ts';
import { MEMBER_DONE, MEMBER_RUNNING, PROGRESS_SLOTS, type WorkerGroup, type WorkerGroupResult, type WorkerResult, type WorkerTask } from './task.ts';

const SETTINGS: GroupSettings = { maxBatches: 16, maxBytes: 1 << 20, timeoutMs: 60, maxHeapMb: 256 };

function task(length: number): WorkerTask {
  return { body: new ArrayBuffer(length), length, format: 'avro', encoding: 'identity', receivedAt: Date.now() };
}

/** A pool that runs each group at once: member i accepts as many events as its body has bytes. */
function answering(seen: WorkerGroup[] = []): SubmitGroup {
  return async (group) => {
    seen.push(group);
    return group.tasks.map((t, i) => {
      Atomics.store(group.progress, i * PROGRESS_SLOTS, MEMBER_DONE);
      return { ok: true, accepted: t.length } as WorkerResult;
    });
  };
}

/** A pool whose worker finishes members before `stuck`, then stays in it until the limit terminates it. */
function stuckAt(stuck: number, opts: { startedAfterMs?: number; error?: (signal: AbortSignal) => unknown } = {}): SubmitGroup {
  return (group, _transfer, signal) =>
    new Promise<WorkerGroupResult>((_resolve, reject) => {
      for (let i = 0; i < stuck; i++) Atomics.store(group.progress, i * PROGRESS_SLOTS, MEMBER_DONE);
      Atomics.store(group.progress, stuck * PROGRESS_SLOTS + 1, opts.startedAfterMs ?? 0);
      Atomics.store(group.progress, stuck * PROGRESS_SLOTS, MEMBER_RUNNING);
      const fail = () => reject(opts.error ? opts.error(signal) : signal.reason);
      if (opts.error) setTimeout(fail, 5);
      else signal.addEventListener('abort', fail);
    });
}

const codes = (rs: WorkerResult[]) => rs.map((r) => (r.ok ? 'ok' : r.code));

describe('TaskGroups', () => {
  it('hands the batches of one turn to the pool as one task, each batch answered with its own result', async () => {
    const seen: WorkerGroup[] = [];
    const groups = new TaskGroups(answering(seen), SETTINGS);
    const results = await Promise.all([10, 20, 30].map((n) => groups.run(task(n))));
    expect(seen.map((g) => g.tasks.length)).toEqual([3]);
    expect(results.map((r) => (r.ok ? r.accepted : -1))).toEqual([10, 20, 30]);
    // A later turn is a new group.
    await groups.run(task(5));
    expect(seen).toHaveLength(2);
  });

  it('cuts groups at the batch and byte caps; a body over the byte cap goes alone', async () => {
    const seen: WorkerGroup[] = [];
    const groups = new TaskGroups(answering(seen), { ...SETTINGS, maxBatches: 3, maxBytes: 100 });
    await Promise.all([10, 10, 10, 10, 10, 60, 60, 500, 10].map((n) => groups.run(task(n))));
    expect(seen.map((g) => g.tasks.map((t) => t.length))).toEqual([[10, 10, 10], [10, 10, 60], [60], [500], [10]]);
  });

  it('counts as queued the batches not handed over and those of groups no worker has started', async () => {
    let release: (() => void) | undefined;
    const groups = new TaskGroups(
      (group) =>
        new Promise<WorkerGroupResult>((resolve) => {
          release = () => {
            for (let i = 0; i < group.tasks.length; i++) Atomics.store(group.progress, i * PROGRESS_SLOTS, MEMBER_DONE);
            resolve(group.tasks.map(() => ({ ok: true }) as WorkerResult));
          };
        }),
      SETTINGS,
    );
    const pending = [groups.run(task(1)), groups.run(task(1))];
    expect(groups.queuedBatches).toBe(2); // not yet handed over
    await new Promise((r) => setImmediate(r));
    expect(groups.queuedBatches).toBe(2); // handed over, no worker started them
    release!();
    await Promise.all(pending);
    expect(groups.queuedBatches).toBe(0);
  });

  it('time limit: the running batch is told 400, the done and waiting ones of its group 429', async () => {
    const groups = new TaskGroups(stuckAt(1), SETTINGS);
    const results = await Promise.all([1, 2, 3].map((n) => groups.run(task(n))));
    expect(codes(results)).toEqual(['INGEST_OVERLOADED', 'INGEST_BATCH_TOO_EXPENSIVE', 'INGEST_OVERLOADED']);
  });

  it('time limit: a batch that started late (it ran for less than half the limit) is told to retry, not blamed', async () => {
    const groups = new TaskGroups(stuckAt(1, { startedAfterMs: 45 }), SETTINGS);
    const results = await Promise.all([1, 2].map((n) => groups.run(task(n))));
    expect(codes(results)).toEqual(['INGEST_OVERLOADED', 'INGEST_OVERLOADED']);
  });

  // Also the negative control of the blame: a worker that marked no progress looks like this, and no
  // batch can be told 400 (the progress, not the time-out, singles out the running batch).
  it('time limit before any worker started the group: every batch is told 429 (overload)', async () => {
    const groups = new TaskGroups((_g, _t, signal) => new Promise((_r, reject) => signal.addEventListener('abort', () => reject(signal.reason))), SETTINGS);
    const results = await Promise.all([1, 2].map((n) => groups.run(task(n))));
    expect(codes(results)).toEqual(['INGEST_OVERLOADED', 'INGEST_OVERLOADED']);
    expect((results[0] as { message: string }).message).toMatch(/no worker was free/);
  });

  it('heap limit: the running batch is told 400, the others 429', async () => {
    const oom = () => Object.assign(new Error('worker ran out of memory'), { code: 'ERR_WORKER_OUT_OF_MEMORY' });
    const groups = new TaskGroups(stuckAt(0, { error: oom }), SETTINGS);
    const results = await Promise.all([1, 2].map((n) => groups.run(task(n))));
    expect(codes(results)).toEqual(['INGEST_BATCH_TOO_EXPENSIVE', 'INGEST_OVERLOADED']);
    expect((results[0] as { message: string }).message).toMatch(/256 MiB/);
  });

  it('a batch whose processing threw fails alone; any other pool failure fails the whole group', async () => {
    const groups = new TaskGroups(
      async (g) => g.tasks.map((t) => (t.length === 2 ? { ok: false, thrown: 'TypeError: boom' } : ({ ok: true } as WorkerResult))),
      SETTINGS,
    );
    const [a, b] = await Promise.allSettled([groups.run(task(1)), groups.run(task(2))]);
    expect(a.status).toBe('fulfilled');
    expect(b.status === 'rejected' && String(b.reason)).toMatch(/boom/);
    const broken = new TaskGroups(() => Promise.reject(new Error('pool destroyed')), SETTINGS);
    const both = await Promise.allSettled([broken.run(task(1)), broken.run(task(2))]);
    expect(both.map((s) => s.status)).toEqual(['rejected', 'rejected']);
    // One that throws at once fails every member too (not only the batch that filled the group).
    const throwing = new TaskGroups(
      () => {
        throw new Error('pool destroyed');
      },
      { ...SETTINGS, maxBatches: 2 },
    );
    const thrown = await Promise.allSettled([throwing.run(task(1)), throwing.run(task(2)), throwing.run(task(3))]);
    expect(thrown.map((s) => s.status)).toEqual(['rejected', 'rejected', 'rejected']);
  });
});

/**
 * Full GCs of a worker thread made now, under the pool's limits, that keeps objects long enough to be
 * promoted and then drops them, as a worker's in-flight batches do.
 */
async function fullGcsOfAWorker(): Promise<number> {
  const code = `
    const { PerformanceObserver, constants } = require('node:perf_hooks');
    const { parentPort } = require('node:worker_threads');
    let full = 0;
    const obs = new PerformanceObserver((l) => { for (const e of l.getEntries()) if (e.detail.kind === constants.NODE_PERFORMANCE_GC_MAJOR) full++; });
    obs.observe({ entryTypes: ['gc'] });
    const ring = new Array(256);
    for (let i = 0; i < 30000; i++) ring[i % 256] = Array.from({ length: 200 }, (_, j) => ({ i, j, s: 'x' + j }));
    setTimeout(() => { obs.disconnect(); parentPort.postMessage(full); }, 50);`;
  const w = new Worker(code, { eval: true, resourceLimits: { maxOldGenerationSizeMb: 256, maxYoungGenerationSizeMb: 16 } });
  try {
    return await new Promise<number>((resolve, reject) => {
      w.once('message', resolve);
      w.once('error', reject);
    });
  } finally {
    await w.terminate();
  }
}

describe('setWorkerInitialHeap', () => {
  afterAll(() => v8.setFlagsFromString('--initial-old-space-size=0'));

  it('gives the isolates made after it a larger start, so a worker that promotes short-lived objects runs no full GC', async () => {
    expect(setWorkerInitialHeap({ INGEST_TASK_INITIAL_HEAP_MB: 64, INGEST_TASK_MAX_HEAP_MB: 256 })).toBe(64);
    const withStart = await fullGcsOfAWorker();
    // The control: V8's own start (0), the same work.
    expect(setWorkerInitialHeap({ INGEST_TASK_INITIAL_HEAP_MB: 0, INGEST_TASK_MAX_HEAP_MB: 256 })).toBe(0);
    const withoutStart = await fullGcsOfAWorker();
    expect(withStart).toBe(0);
    expect(withoutStart).toBeGreaterThan(0);
  }, 20_000);

  it('never starts above half of the heap limit', () => {
    expect(setWorkerInitialHeap({ INGEST_TASK_INITIAL_HEAP_MB: 64, INGEST_TASK_MAX_HEAP_MB: 32 })).toBe(16);
  });
});
