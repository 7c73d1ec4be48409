/**
 * The piscina pool of the HTTP side: starting it (worker.ts is loaded by its file name), running one
 * task under the time limit, and the pool gauges.
 */
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import { poolThreads, sealingSpec, type IngestConfig } from './config.ts';
import type { IngestContext } from './context.ts';
import type { WorkerOptions, WorkerResult, WorkerTask } from './task.ts';

export function createPool(cfg: IngestConfig, tokenKeys: WorkerOptions['tokenKeys']): Piscina {
  const here = import.meta.url;
  const fromTs = here.endsWith('.ts');
  const workerData: WorkerOptions = {
    maxDecompressedBytes: cfg.INGEST_MAX_DECOMPRESSED_BYTES,
    maxEventsPerBatch: cfg.INGEST_MAX_EVENTS_PER_BATCH,
    maxStringBytes: cfg.INGEST_MAX_STRING_BYTES,
    tokenKeys,
    sealing: sealingSpec(cfg),
  };
  return new Piscina({
    filename: fileURLToPath(new URL(fromTs ? './worker.ts' : './worker.js', here)),
    // Running from .ts sources (tsx, vitest): a worker thread starts a fresh module loader that does not
    // inherit the parent's loader hooks, so it must register tsx itself. From compiled .js, nothing.
    // A CPU profile of the process (node --cpu-prof, bench/README.md) covers the pool threads too.
    execArgv: [...(fromTs ? ['--import', 'tsx'] : []), ...process.execArgv.filter((a) => a.startsWith('--cpu-prof'))],
    minThreads: poolThreads(cfg),
    maxThreads: poolThreads(cfg),
    idleTimeout: 60_000,
    resourceLimits: { maxOldGenerationSizeMb: cfg.INGEST_TASK_MAX_HEAP_MB, maxYoungGenerationSizeMb: 32 },
    workerData,
  });
}

/**
 * One batch through the pool, the body moved in. A worker killed by the time or heap limit becomes a
 * typed failure; anything else thrown is a bug and is rethrown.
 */
export async function runTask({ pool, cfg, metrics }: Pick<IngestContext, 'pool' | 'cfg' | 'metrics'>, task: WorkerTask): Promise<WorkerResult> {
  const end = metrics.taskSeconds.startTimer();
  try {
    return (await pool.run(task, { transferList: [task.body], signal: AbortSignal.timeout(cfg.INGEST_TASK_TIMEOUT_MS) })) as WorkerResult;
  } catch (e) {
    const name = (e as { name?: string }).name;
    const code = (e as { code?: string }).code;
    if (name === 'AbortError' || name === 'TimeoutError') {
      // The limit runs from submission. A batch still queued when it expired is not to blame: that
      // is overload (429, retry); one a worker had started is (400, do not send it again).
      if (Atomics.load(task.started, 0) === 0) {
        return {
          ok: false,
          code: 'INGEST_OVERLOADED',
          message: `no worker was free within ${cfg.INGEST_TASK_TIMEOUT_MS} ms: retry after the delay in Retry-After`,
        };
      }
      return { ok: false, code: 'INGEST_BATCH_TOO_EXPENSIVE', message: `batch took longer than ${cfg.INGEST_TASK_TIMEOUT_MS} ms to process and was aborted` };
    }
    if (code === 'ERR_WORKER_OUT_OF_MEMORY') {
      return { ok: false, code: 'INGEST_BATCH_TOO_EXPENSIVE', message: `batch exceeded the ${cfg.INGEST_TASK_MAX_HEAP_MB} MiB worker memory limit` };
    }
    throw e;
  } finally {
    end();
  }
}

/**
 * Pool gauges, computed when /metrics is scraped, not per task. Utilisation is our own: the share of
 * the pool's thread-time spent inside tasks since the previous scrape (piscina's own figure mixes units
 * and walks its histograms, which cost ~13% of the HTTP thread when read per batch).
 */
export function samplePool({ pool, cfg, metrics, state }: Pick<IngestContext, 'pool' | 'cfg' | 'metrics' | 'state'>): void {
  const now = performance.now();
  const capacity = (now - state.poolSampledAt) * poolThreads(cfg);
  metrics.poolQueueDepth.set(pool.queueSize);
  metrics.poolUtilisation.set(capacity > 0 ? Math.min(1, state.poolBusyMs / capacity) : 0);
  metrics.poolThreads.set(pool.threads.length);
  state.poolBusyMs = 0;
  state.poolSampledAt = now;
}
