/**
 * The piscina task: one whole batch per task, all of its CPU work off the HTTP thread.
 *
 *   body bytes (moved in) -> gunzip (capped) -> Avro container / JSON
 *   -> current batch schema: schemas processBody (the generated fast path: guard, decode, validate,
 *      consent, split, tokenise, encode in one walk of the bytes)
 *      other writer schemas, Avro-JSON: guarded decode (resolving) -> schemas processBatch
 *   -> one ArrayBuffer holding every record's key and value (moved out)
 *
 * Moving rather than copying: the request body's ArrayBuffer is transferred in, and all output records
 * are packed into one fresh ArrayBuffer plus a small Uint32 index that are transferred back, so a batch
 * crosses the thread boundary without a copy of its payload (structured clone would copy every Buffer).
 *
 * Every data error is returned as a value (`IngestFailure`); anything thrown is a bug or a limit hit,
 * and the HTTP side maps a worker killed by the time or memory limit to INGEST_BATCH_TOO_EXPENSIVE.
 */
import { Piscina } from 'piscina';
import type { EventReject, OutRecord, SplitResult, Zone } from '../schemas/contract.ts';
import { DailyTokenizer } from '../schemas/tokenizer.ts';
import { decompress, type ContentEncoding } from './body.ts';
import { readContainer, DEFAULT_CONTAINER_LIMITS, type ContainerLimits } from './container.ts';
import { fail, type IngestFailure } from './errors.ts';
import { BatchDecoder } from './decoder.ts';
import { keySourceOf, type TokenKeysSpec } from './token-keys.ts';

export type BodyFormat = 'avro' | 'json';

export interface WorkerTask {
  body: ArrayBuffer;
  length: number;
  format: BodyFormat;
  encoding: ContentEncoding;
  receivedAt: number;
  clientIp?: string;
  /** Shared flag the worker sets when it starts the task, so a time-out can tell "waited in the queue
   *  too long" (overload: 429) from "took too long to process" (hostile batch: 400). */
  started: Int32Array;
}

export interface WorkerOptions {
  maxDecompressedBytes: number;
  maxEventsPerBatch: number;
  maxStringBytes: number;
  tokenKeys: TokenKeysSpec;
}

/** Kinds of packed records (index column 0). */
export const REC_EVENT = 0;
export const REC_PERSONAL = 1;
export const REC_REJECTED = 2;
export const ZONE_CODES: readonly Zone[] = ['cn', 'ru', 'in', 'row'];
/** u32 columns per record in the index: kind, zone, keyOffset, keyLength, valueOffset, valueLength. */
export const INDEX_WIDTH = 6;

export interface WorkerSuccess {
  ok: true;
  accepted: number;
  droppedConsent: Record<string, number>;
  rejects: EventReject[];
  /** Events in the batch as sent (accepted + dropped + rejected). */
  eventCount: number;
  data: ArrayBuffer;
  index: ArrayBuffer;
  /** Headers of record i, or null; omitted entirely when no record has any (the usual case). */
  headers: Array<Record<string, string> | null> | null;
  /** Time spent in this task inside the worker (ms), to tell queue wait from work. */
  workMs: number;
}

export type WorkerResult = WorkerSuccess | IngestFailure;

interface State {
  decoder: BatchDecoder;
  tokenizer: DailyTokenizer;
  opts: WorkerOptions;
  container: ContainerLimits;
}

let state: State | undefined;

function init(opts: WorkerOptions): State {
  state ??= {
    decoder: new BatchDecoder(
      { maxStringLength: opts.maxStringBytes, maxCollectionLength: opts.maxEventsPerBatch, maxTotalItems: opts.maxEventsPerBatch * 20 },
      opts.maxEventsPerBatch,
      opts.maxStringBytes,
    ),
    tokenizer: new DailyTokenizer(keySourceOf(opts.tokenKeys)),
    opts,
    container: { ...DEFAULT_CONTAINER_LIMITS, maxDecompressedBytes: opts.maxDecompressedBytes },
  };
  return state;
}

/**
 * Decodes the body into one Batch value, or says why it cannot be read. A binary batch written with
 * the current batch schema (what every up-to-date SDK sends) is not decoded here: its bytes come back
 * as `avro`, for the pipeline's generated fast path (`processBody`: guard, decode and split in one walk,
 * ~3-4x cheaper than guard + avsc + processBatch, and the same results: schemas/fast.test.ts).
 */
export function decodeBody(s: Pick<State, 'decoder' | 'container'>, body: Buffer, format: BodyFormat): { ok: true; batch: unknown } | { ok: true; avro: Buffer } | IngestFailure {
  if (body.length === 0) return fail('INGEST_BODY_EMPTY', 'empty body: send one batch');
  if (format === 'json') {
    const text = body.toString('utf8');
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (e) {
      return fail('INGEST_BAD_JSON', `body is not valid JSON: ${(e as Error).message.slice(0, 200)}`);
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return fail('INGEST_BAD_JSON', 'body must be one JSON object (a Batch)');
    return { ok: true, batch: s.decoder.fromJson(parsed, text) };
  }
  const c = readContainer(body, s.container);
  if (!c.ok) return c;
  if (c.value.objectCount !== 1 || c.value.blocks.length !== 1) {
    return fail('INGEST_BATCH_INVALID', `an upload holds exactly one Batch record, this container holds ${c.value.objectCount}`);
  }
  const w = s.decoder.writer(c.value.schemaJson);
  if ('ok' in w) return w;
  if (w.resolver === undefined) return { ok: true, avro: c.value.blocks[0]!.data };
  try {
    return { ok: true, batch: s.decoder.decode(w, c.value.blocks[0]!.data) };
  } catch (e) {
    return schemaFailure(e);
  }
}

/** Typed errors of schemas/ -> ingest failures; anything else is a bug and is rethrown. */
function schemaFailure(e: unknown): IngestFailure {
  const code = (e as { code?: unknown }).code;
  const msg = (e as Error).message ?? String(e);
  if (typeof code === 'string') {
    if (code.startsWith('AVRO_')) return fail('INGEST_AVRO_INVALID', `Avro body refused: ${msg}`);
    if (code.startsWith('SCHEMA_')) return fail('INGEST_BATCH_INVALID', msg);
  }
  throw e;
}

/** Packs every output record into one ArrayBuffer + index, so they can be moved, not cloned. */
export function packRecords(r: Pick<SplitResult, 'events' | 'personal' | 'rejected'>): { data: ArrayBuffer; index: ArrayBuffer; headers: Array<Record<string, string> | null> | null } {
  const n = r.events.length + r.personal.length + r.rejected.length;
  let bytes = 0;
  for (const list of [r.events, r.personal, r.rejected] as OutRecord[][]) for (const x of list) bytes += x.key.length + x.value.length;
  const data = new Uint8Array(new ArrayBuffer(bytes));
  const index = new Uint32Array(n * INDEX_WIDTH);
  let headers: Array<Record<string, string> | null> | null = null;
  let at = 0;
  let i = 0;
  const put = (kind: number, zone: Zone | undefined, x: OutRecord) => {
    const o = i * INDEX_WIDTH;
    index[o] = kind;
    index[o + 1] = zone ? ZONE_CODES.indexOf(zone) : 0;
    index[o + 2] = at;
    index[o + 3] = x.key.length;
    data.set(x.key, at);
    at += x.key.length;
    index[o + 4] = at;
    index[o + 5] = x.value.length;
    data.set(x.value, at);
    at += x.value.length;
    if (x.headers) {
      headers ??= new Array<Record<string, string> | null>(n).fill(null);
      headers[i] = x.headers;
    }
    i++;
  };
  for (const x of r.events) put(REC_EVENT, undefined, x);
  for (const x of r.personal) put(REC_PERSONAL, x.zone, x);
  for (const x of r.rejected) put(REC_REJECTED, x.zone, x);
  return { data: data.buffer, index: index.buffer, headers };
}

/** Inverse of `packRecords`, on the HTTP thread: Buffers are views on the moved ArrayBuffer (no copy). */
export function unpackRecords(w: Pick<WorkerSuccess, 'data' | 'index' | 'headers'>): Pick<SplitResult, 'events' | 'personal' | 'rejected'> {
  const index = new Uint32Array(w.index);
  const out: Pick<SplitResult, 'events' | 'personal' | 'rejected'> = { events: [], personal: [], rejected: [] };
  for (let i = 0, o = 0; o < index.length; i++, o += INDEX_WIDTH) {
    const rec: OutRecord = { key: Buffer.from(w.data, index[o + 2]!, index[o + 3]!), value: Buffer.from(w.data, index[o + 4]!, index[o + 5]!) };
    const h = w.headers?.[i];
    if (h) rec.headers = h;
    const kind = index[o]!;
    if (kind === REC_EVENT) out.events.push(rec);
    else (kind === REC_PERSONAL ? out.personal : out.rejected).push({ ...rec, zone: ZONE_CODES[index[o + 1]!]! });
  }
  return out;
}

/** Marks the result's ArrayBuffers for transfer (piscina's Transferable protocol + Piscina.move). */
function movable(result: WorkerResult): unknown {
  if (!result.ok) return result;
  return Piscina.move({
    get [Piscina.transferableSymbol]() {
      return [result.data, result.index];
    },
    get [Piscina.valueSymbol]() {
      return result;
    },
  } as never);
}

export default async function processTask(task: WorkerTask): Promise<unknown> {
  Atomics.store(task.started, 0, 1);
  const t0 = performance.now();
  const s = init(Piscina.workerData as WorkerOptions);
  const raw = Buffer.from(task.body, 0, task.length);
  const body = decompress(raw, task.encoding, s.opts.maxDecompressedBytes);
  if (!body.ok) return body;
  const decoded = decodeBody(s, body.value, task.format);
  if (!decoded.ok) return decoded;
  let split: SplitResult;
  try {
    const ctx = task.clientIp === undefined ? { receivedAt: task.receivedAt, tokenizer: s.tokenizer } : { receivedAt: task.receivedAt, clientIp: task.clientIp, tokenizer: s.tokenizer };
    split = 'avro' in decoded ? s.decoder.pipeline.processBody(decoded.avro, ctx, s.decoder.limits) : s.decoder.pipeline.processBatch(decoded.batch, ctx);
  } catch (e) {
    return schemaFailure(e);
  }
  // A batch-level problem (device context unusable, envelope invalid) comes back as one reject with
  // index -1 and no records: nothing of the batch can be kept, so the answer is 400, not 200.
  const batchLevel = split.rejects.find((r) => r.index < 0);
  if (batchLevel) return { ...fail('INGEST_BATCH_INVALID', batchLevel.message), rejects: split.rejects };
  const dropped = Object.values(split.droppedConsent).reduce((a, b) => a + b, 0);
  const eventCount = split.accepted + dropped + split.rejects.length;
  if (eventCount === 0) return fail('INGEST_BATCH_EMPTY', 'the batch holds no events: send at least one');
  const packed = packRecords(split);
  return movable({ ok: true, accepted: split.accepted, droppedConsent: split.droppedConsent, rejects: split.rejects, eventCount, ...packed, workMs: performance.now() - t0 });
}

// Compile the pipeline when the worker starts rather than on its first batch, so the first devices
// after a start or a worker replacement do not wait for it.
if (Piscina.isWorkerThread && Piscina.workerData) init(Piscina.workerData as WorkerOptions);
