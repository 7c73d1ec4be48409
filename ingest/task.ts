/**
 * The contract between the HTTP thread and the pool workers: what a task carries in (the body, moved)
 * and what comes back (counts, rejects and the packed records of records.ts, moved). Types only, so
 * either side imports it without loading the other's code.
 */
import type { SealingSpec } from '../rights/sealer.ts';
import type { EventReject, Zone } from '../schemas/index.ts';
import type { ContentEncoding } from './body.ts';
import type { IngestFailure } from './errors.ts';
import type { PackedRecords } from './records.ts';
import type { TokenKeysSpec } from './token-keys.ts';

/** How the body is written, from Content-Type: an Avro container, or Avro-JSON (debugging, tests). */
export type BodyFormat = 'avro' | 'json';

export interface WorkerTask {
  /** The request body's ArrayBuffer, transferred (detached on the HTTP thread). */
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

/** Settings every worker thread starts with (piscina `workerData`: structured clone, plain data). */
export interface WorkerOptions {
  maxDecompressedBytes: number;
  maxEventsPerBatch: number;
  maxStringBytes: number;
  tokenKeys: TokenKeysSpec;
  /** Key stores and key material for sealing personal records; undefined only with INGEST_UNSAFE_UNSEALED. */
  sealing: SealingSpec | undefined;
}

export interface WorkerSuccess extends PackedRecords {
  ok: true;
  accepted: number;
  droppedConsent: Record<string, number>;
  rejects: EventReject[];
  /** Events in the batch as sent (accepted + dropped + rejected). */
  eventCount: number;
  /** Time spent in this task inside the worker (ms), to tell queue wait from work. */
  workMs: number;
  /** The device's zone and subject (hex keyed hash) when it has personal records: the suppression list's key (rights/suppression.ts). */
  subject?: { zone: Zone; hex: string };
}

export type WorkerResult = WorkerSuccess | IngestFailure;
