/**
 * The contract between the HTTP thread and the pool workers: what a task carries in (a group of
 * batches, their bodies moved) and what comes back per batch (counts, rejects and the packed records of
 * records.ts, moved). Types and constants only, so either side imports it without loading the other's
 * code.
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
}

/** A member's state in `WorkerGroup.progress`. */
export const MEMBER_WAITING = 0;
export const MEMBER_RUNNING = 1;
export const MEMBER_DONE = 2;
/** Int32 slots per member in `WorkerGroup.progress`: its state, and when it started (ms after `submittedAt`). */
export const PROGRESS_SLOTS = 2;

/**
 * What one pool task carries: the batches that reached the pool together (pool.ts `TaskGroups`), run
 * one after the other by one worker. One message and one wake-up of a worker for all of them, where a
 * task per batch paid both per batch (ingest/README.md, "CPU per event").
 */
export interface WorkerGroup {
  tasks: WorkerTask[];
  /** Shared with the HTTP thread, PROGRESS_SLOTS per member: the worker marks each member running and
   *  done, so a time-out or memory failure blames only the batch that was running (pool.ts). */
  progress: Int32Array;
  /** Date.now() on the HTTP thread when the group was handed to the pool. */
  submittedAt: number;
}

/** A member whose processing threw (a bug): the HTTP side rethrows it for that batch alone (500). */
export interface WorkerThrown {
  ok: false;
  thrown: string;
}

/** The answer to a `WorkerGroup`: one result per member, in order; their ArrayBuffers moved. */
export type WorkerGroupResult = Array<WorkerResult | WorkerThrown>;

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
