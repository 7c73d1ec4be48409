/**
 * The piscina pool of the HTTP side: starting it (worker.ts is loaded by its file name), handing it
 * batches in groups under the per-batch limits (`TaskGroups`), and the pool gauges.
 */
import v8 from 'node:v8';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import { poolThreads, sealingSpec, type IngestConfig } from './config.ts';
import type { IngestContext } from './context.ts';
import type { IngestMetrics } from './metrics.ts';
import { MEMBER_RUNNING, MEMBER_WAITING, PROGRESS_SLOTS } from './task.ts';
import type { WorkerGroup, WorkerGroupResult, WorkerOptions, WorkerResult, WorkerTask } from './task.ts';

/** What every worker thread starts with, from the settings. */
export function workerOptions(cfg: IngestConfig, tokenKeys: WorkerOptions['tokenKeys']): WorkerOptions {
  return {
    maxDecompressedBytes: cfg.INGEST_MAX_DECOMPRESSED_BYTES,
    maxEventsPerBatch: cfg.INGEST_MAX_EVENTS_PER_BATCH,
    maxStringBytes: cfg.INGEST_MAX_STRING_BYTES,
    tokenKeys,
    sealing: sealingSpec(cfg),
  };
}

/**
 * V8's --initial-old-space-size for the isolates made after this call: the pool's workers, and the ones
 * piscina makes to replace a worker. V8 reads it only when it configures a new heap, and Node's
 * resourceLimits have no such field. A batch's objects outlive a scavenge or two and die in the old
 * generation; from V8's small start, which it keeps near the live size, each worker ran a full GC
 * several times a second (`--trace-gc`: ~60 in a 10 s run of 500-event batches, heap at 15-18 MB falling
 * to 11-12), and none with 64 MB (ingest/README.md, "CPU per event"). The main thread's heap is
 * configured before any code runs, so it keeps V8's start.
 */
export function setWorkerInitialHeap(cfg: Pick<IngestConfig, 'INGEST_TASK_INITIAL_HEAP_MB' | 'INGEST_TASK_MAX_HEAP_MB'>): number {
  const mb = Math.min(cfg.INGEST_TASK_INITIAL_HEAP_MB, Math.floor(cfg.INGEST_TASK_MAX_HEAP_MB / 2));
  // Set even when 0 (V8's own start): the flag is the process's, so an earlier pool's value must not stay.
  v8.setFlagsFromString(`--initial-old-space-size=${mb}`);
  return mb;
}

export function createPool(cfg: IngestConfig, tokenKeys: WorkerOptions['tokenKeys']): Piscina {
  setWorkerInitialHeap(cfg);
  const here = import.meta.url;
  const fromTs = here.endsWith('.ts');
  const workerData = workerOptions(cfg, tokenKeys);
  return new Piscina({
    filename: fileURLToPath(new URL(fromTs ? './worker.ts' : './worker.js', here)),
    // Running from .ts sources (tsx, vitest): a worker thread starts a fresh module loader that does not
    // inherit the parent's loader hooks, so it must register tsx itself. From compiled .js, nothing.
    // A CPU profile of the process (node --cpu-prof, bench/README.md) covers the pool threads too.
    execArgv: [...(fromTs ? ['--import', 'tsx'] : []), ...process.execArgv.filter((a) => a.startsWith('--cpu-prof'))],
    minThreads: poolThreads(cfg),
    maxThreads: poolThreads(cfg),
    idleTimeout: 60_000,
    // A 16 MB young generation rather than 32: with 32, each worker ran a full mark-compact about twice
    // a second at the bench's load although its heap stayed at 11-13 MB; with 16, in two alternating
    // pairs, V8's helper threads spent 0.87 and 1.10 µs per event against 1.35 and 1.47, and peak RSS was
    // ~50 MB lower (ingest/README.md, "CPU per event").
    resourceLimits: { maxOldGenerationSizeMb: cfg.INGEST_TASK_MAX_HEAP_MB, maxYoungGenerationSizeMb: 16 },
    workerData,
  });
}

/** How a group reaches the pool: piscina's `run` in production, a fake in the unit tests of the grouping. */
export type SubmitGroup = (group: WorkerGroup, transfer: ArrayBuffer[], signal: AbortSignal) => Promise<WorkerGroupResult>;

export function piscinaSubmit(pool: Piscina): SubmitGroup {
  return (group, transfer, signal) => pool.run(group, { transferList: transfer, signal }) as Promise<WorkerGroupResult>;
}

export interface GroupSettings {
  /** Most batches in one pool task (INGEST_POOL_GROUP_MAX_BATCHES). */
  maxBatches: number;
  /** Most body bytes in one pool task; a larger body goes alone (INGEST_POOL_GROUP_MAX_BYTES). */
  maxBytes: number;
  /** INGEST_TASK_TIMEOUT_MS. */
  timeoutMs: number;
  /** INGEST_TASK_MAX_HEAP_MB, for the message. */
  maxHeapMb: number;
}

interface Member {
  task: WorkerTask;
  resolve: (r: WorkerResult) => void;
  reject: (e: unknown) => void;
}

interface OpenGroup {
  members: Member[];
  bytes: number;
}

/**
 * Hands batches to the pool in groups (task.ts `WorkerGroup`): the batches whose bodies were read in
 * one turn of the event loop go to a worker as one task, up to `maxBatches` and `maxBytes`. A task per
 * batch cost a message, a structured clone each way and a worker wake-up (a futex and a context switch)
 * per batch, on both threads; grouped, they are paid per group (ingest/README.md, "CPU per event"). The
 * wait is at most one turn of the loop: a group is handed over on `setImmediate`, or at once when full.
 *
 * Limits stay per batch. The time limit runs from the group's submission. When it expires, or the worker
 * exhausts its heap, piscina terminates the worker and every member's result is lost; the shared
 * progress says which member was running:
 * - the running member is to blame (400 INGEST_BATCH_TOO_EXPENSIVE) if it ran for at least half the
 *   limit itself; one that started late, after the queue or the group's earlier members took the time,
 *   is told to retry (429), as a batch that never started is;
 * - every other member, waiting or done, is told to retry (429 INGEST_OVERLOADED): nothing of it was
 *   acknowledged, so nothing is lost.
 */
export class TaskGroups {
  private open: OpenGroup | undefined;
  /** Groups handed to the pool and not yet settled, for the queue depth. */
  private readonly running = new Set<WorkerGroup>();

  constructor(
    private readonly submit: SubmitGroup,
    private readonly s: GroupSettings,
    private readonly onGroup: (batches: number) => void = () => {},
  ) {}

  /** One batch: its body is moved to the worker with the group; resolves with the batch's own result. */
  run(task: WorkerTask): Promise<WorkerResult> {
    return new Promise<WorkerResult>((resolve, reject) => {
      if (this.open && this.open.bytes + task.length > this.s.maxBytes) this.flush();
      if (!this.open) {
        const g: OpenGroup = { members: [], bytes: 0 };
        this.open = g;
        setImmediate(() => {
          if (this.open === g) this.flush();
        });
      }
      this.open.members.push({ task, resolve, reject });
      this.open.bytes += task.length;
      if (this.open.members.length >= this.s.maxBatches) this.flush();
    });
  }

  /**
   * Batches waiting for a worker: those not yet handed over, and those of groups no worker has started
   * (admission.ts refuses new batches past INGEST_MAX_QUEUED_BATCHES).
   */
  get queuedBatches(): number {
    let n = this.open?.members.length ?? 0;
    for (const g of this.running) if (Atomics.load(g.progress, 0) === MEMBER_WAITING) n += g.tasks.length;
    return n;
  }

  private flush(): void {
    const open = this.open;
    this.open = undefined;
    if (!open || open.members.length === 0) return;
    const members = open.members;
    const group: WorkerGroup = {
      tasks: members.map((m) => m.task),
      progress: new Int32Array(new SharedArrayBuffer(4 * PROGRESS_SLOTS * members.length)),
      submittedAt: Date.now(),
    };
    this.onGroup(members.length);
    this.running.add(group);
    // A submit that throws instead of rejecting (a destroyed pool) fails the group the same way, never
    // the caller that happened to fill it, nor the setImmediate callback.
    let submitted: Promise<WorkerGroupResult>;
    try {
      submitted = this.submit(
        group,
        group.tasks.map((t) => t.body),
        AbortSignal.timeout(this.s.timeoutMs),
      );
    } catch (e) {
      submitted = Promise.reject(e);
    }
    void submitted
      .then(
        (results) => {
          members.forEach((m, i) => {
            const r = results[i];
            if (r === undefined) m.reject(new Error(`pool task answered ${results.length} results for a group of ${members.length}`));
            else if ('thrown' in r) m.reject(new Error(`pool worker failed on this batch: ${r.thrown}`));
            else m.resolve(r);
          });
        },
        (e: unknown) => this.failed(group, members, e),
      )
      .finally(() => this.running.delete(group));
  }

  /** The worker was terminated (time or heap limit): each member's answer by what it was doing (see the class comment). */
  private failed(group: WorkerGroup, members: Member[], e: unknown): void {
    const name = (e as { name?: string }).name;
    const code = (e as { code?: string }).code;
    const timedOut = name === 'AbortError' || name === 'TimeoutError';
    const outOfMemory = code === 'ERR_WORKER_OUT_OF_MEMORY';
    if (!timedOut && !outOfMemory) {
      for (const m of members) m.reject(e);
      return;
    }
    const now = Date.now();
    members.forEach((m, i) => {
      const state = Atomics.load(group.progress, i * PROGRESS_SLOTS);
      const ranMs = now - group.submittedAt - Atomics.load(group.progress, i * PROGRESS_SLOTS + 1);
      if (state === MEMBER_RUNNING && outOfMemory) {
        m.resolve({ ok: false, code: 'INGEST_BATCH_TOO_EXPENSIVE', message: `batch exceeded the ${this.s.maxHeapMb} MiB worker memory limit` });
      } else if (state === MEMBER_RUNNING && ranMs >= this.s.timeoutMs / 2) {
        m.resolve({
          ok: false,
          code: 'INGEST_BATCH_TOO_EXPENSIVE',
          message: `batch was still being processed after ${ranMs} ms when the ${this.s.timeoutMs} ms limit expired, and was aborted`,
        });
      } else if (state === MEMBER_WAITING && Atomics.load(group.progress, 0) === MEMBER_WAITING) {
        m.resolve({ ok: false, code: 'INGEST_OVERLOADED', message: `no worker was free within ${this.s.timeoutMs} ms: retry after the delay in Retry-After` });
      } else {
        m.resolve({
          ok: false,
          code: 'INGEST_OVERLOADED',
          message: `the worker holding this batch was stopped by another batch's ${outOfMemory ? 'memory' : 'time'} limit: retry after the delay in Retry-After`,
        });
      }
    });
  }
}

export function createTaskGroups(cfg: IngestConfig, pool: Piscina, metrics: IngestMetrics): TaskGroups {
  return new TaskGroups(
    piscinaSubmit(pool),
    {
      maxBatches: cfg.INGEST_POOL_GROUP_MAX_BATCHES,
      maxBytes: cfg.INGEST_POOL_GROUP_MAX_BYTES,
      timeoutMs: cfg.INGEST_TASK_TIMEOUT_MS,
      maxHeapMb: cfg.INGEST_TASK_MAX_HEAP_MB,
    },
    (n) => metrics.poolGroupBatches.observe(n),
  );
}

/** One batch through the pool (in a group, `TaskGroups`), timed from hand-over to result. */
export async function runTask({ groups, metrics }: Pick<IngestContext, 'groups' | 'metrics'>, task: WorkerTask): Promise<WorkerResult> {
  const end = metrics.taskSeconds.startTimer();
  try {
    return await groups.run(task);
  } finally {
    end();
  }
}

/**
 * Pool gauges, computed when /metrics is scraped, not per task. Utilisation is our own: the share of
 * the pool's thread-time spent inside tasks since the previous scrape (piscina's own figure mixes units
 * and walks its histograms, which cost ~13% of the HTTP thread when read per batch).
 */
export function samplePool({ pool, groups, cfg, metrics, state }: Pick<IngestContext, 'pool' | 'groups' | 'cfg' | 'metrics' | 'state'>): void {
  const now = performance.now();
  const capacity = (now - state.poolSampledAt) * poolThreads(cfg);
  metrics.poolQueueDepth.set(groups.queuedBatches);
  metrics.poolUtilisation.set(capacity > 0 ? Math.min(1, state.poolBusyMs / capacity) : 0);
  metrics.poolThreads.set(pool.threads.length);
  state.poolBusyMs = 0;
  state.poolSampledAt = now;
}
