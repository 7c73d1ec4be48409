/**
 * The piscina task: a group of whole batches (pool.ts `TaskGroups`), all of their CPU work off the HTTP
 * thread. Each batch goes through `processTask`, a chain of six steps (steps/), each returning its value
 * or a typed failure (`IngestFailure`); the chain stops at the first failure and returns it as the
 * batch's result:
 *
 *   body bytes (moved in)
 *   -> decompress      gunzip with the decompressed-size cap                       steps/decompress.ts
 *   -> read upload     Avro container (one Batch datum + writer schema) or JSON    steps/read-upload.ts
 *   -> resolve writer  current schema: bytes as they are; other writer schemas,   steps/resolve-writer.ts
 *                      Avro-JSON: guarded, resolving decode into a value
 *   -> split           schemas processBody (generated fast path) / processBatch    steps/split.ts
 *   -> seal            personal and reject records re-keyed and sealed per device  steps/seal.ts
 *   -> pack            every record into one ArrayBuffer (moved out)               steps/pack.ts
 *
 * Moving rather than copying: each request body's ArrayBuffer is transferred in, and each batch's output
 * records are packed, behind a small Uint32 index, into one fresh ArrayBuffer that is transferred back,
 * so a batch crosses the thread boundary without a copy of its payload (records.ts).
 *
 * A batch whose steps throw (a bug) gets its own `WorkerThrown` result; the others of the group are not
 * affected. A worker killed by the time or heap limit loses the whole group: the HTTP side (pool.ts)
 * reads the shared progress to blame only the batch that was running.
 *
 * The HTTP thread loads this file only by its name, as piscina's worker entry (pool.ts).
 */
import { Piscina } from 'piscina';
import { DailyTokenizer, type ProcessContext } from '../schemas/index.ts';
import { DEFAULT_CONTAINER_LIMITS, type ContainerLimits } from './container.ts';
import { BatchDecoder } from './decoder.ts';
import { decompress } from './steps/decompress.ts';
import { pack } from './steps/pack.ts';
import { readUpload } from './steps/read-upload.ts';
import { resolveWriter } from './steps/resolve-writer.ts';
import { sealRecords } from './steps/seal.ts';
import { splitBatch } from './steps/split.ts';
import { openSealer, type Sealer, type ZoneStores } from '../rights/sealer.ts';
import { MEMBER_DONE, MEMBER_RUNNING, PROGRESS_SLOTS } from './task.ts';
import type { WorkerGroup, WorkerGroupResult, WorkerOptions, WorkerResult, WorkerTask, WorkerThrown } from './task.ts';
import { keySourceOf } from './token-keys.ts';

/** What a worker thread keeps between tasks: the compiled policy, the tokenizer, the limits, the sealer. */
export interface WorkerState {
  decoder: BatchDecoder;
  tokenizer: DailyTokenizer;
  opts: WorkerOptions;
  container: ContainerLimits;
  /** Undefined only with INGEST_UNSAFE_UNSEALED. */
  sealer: Sealer | undefined;
  /** The key stores the sealer reads (closed only by a caller outside the pool; a worker keeps them). */
  stores: ZoneStores | undefined;
}

let state: WorkerState | undefined;

function init(opts: WorkerOptions): WorkerState {
  return (state ??= workerState(opts));
}

/** A worker's state from its options (bench/ingest.ts builds one to time the task on its own thread). */
export function workerState(opts: WorkerOptions): WorkerState {
  const sealing = opts.sealing ? openSealer(opts.sealing) : undefined;
  return {
    decoder: new BatchDecoder(
      { maxStringLength: opts.maxStringBytes, maxCollectionLength: opts.maxEventsPerBatch, maxTotalItems: opts.maxEventsPerBatch * 20 },
      opts.maxEventsPerBatch,
      opts.maxStringBytes,
    ),
    tokenizer: new DailyTokenizer(keySourceOf(opts.tokenKeys)),
    opts,
    container: { ...DEFAULT_CONTAINER_LIMITS, maxDecompressedBytes: opts.maxDecompressedBytes },
    sealer: sealing?.sealer,
    stores: sealing?.stores,
  };
}

function contextOf(task: WorkerTask, tokenizer: DailyTokenizer): ProcessContext {
  return task.clientIp === undefined ? { receivedAt: task.receivedAt, tokenizer } : { receivedAt: task.receivedAt, clientIp: task.clientIp, tokenizer };
}

/**
 * The pool task: the group's batches one after the other, each marked running and done in the shared
 * progress (task.ts), their results moved back together. A batch whose processing throws (a bug) fails
 * alone; the others keep their results.
 */
export default async function processGroup(group: WorkerGroup): Promise<unknown> {
  const s = init(Piscina.workerData as WorkerOptions);
  const results: WorkerGroupResult = [];
  const transfer: ArrayBuffer[] = [];
  for (let i = 0; i < group.tasks.length; i++) {
    const at = i * PROGRESS_SLOTS;
    Atomics.store(group.progress, at + 1, Date.now() - group.submittedAt);
    Atomics.store(group.progress, at, MEMBER_RUNNING);
    let r: WorkerResult | WorkerThrown;
    try {
      r = await processTask(group.tasks[i]!, s);
    } catch (e) {
      r = { ok: false, thrown: (e as Error).stack ?? String(e) };
    }
    Atomics.store(group.progress, at, MEMBER_DONE);
    if (r.ok) transfer.push(r.data);
    results.push(r);
  }
  return Piscina.move({
    get [Piscina.transferableSymbol]() {
      return transfer;
    },
    get [Piscina.valueSymbol]() {
      return results;
    },
  } as never);
}

/** One batch, through the six steps. */
export async function processTask(task: WorkerTask, s: WorkerState): Promise<WorkerResult> {
  const t0 = performance.now();
  const body = decompress(Buffer.from(task.body, 0, task.length), task.encoding, s.opts.maxDecompressedBytes);
  if (!body.ok) return body;
  const upload = readUpload(body.value, task.format, s.container);
  if (!upload.ok) return upload;
  const input = resolveWriter(s.decoder, upload.value);
  if (!input.ok) return input;
  const split = splitBatch(s.decoder, input.value, contextOf(task, s.tokenizer));
  if (!split.ok) return split;
  const sealed = await sealRecords(s.sealer, split.value);
  if (!sealed.ok) return sealed;
  return pack(sealed.value, t0);
}

// Compile the policy when the worker starts rather than on its first batch, so the first devices
// after a start or a worker replacement do not wait for it.
if (Piscina.isWorkerThread && Piscina.workerData) init(Piscina.workerData as WorkerOptions);
