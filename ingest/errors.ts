/**
 * Error catalogue of `ingest/` (ARCHITECTURE.md, "Errors": one `as const` code list, one HTTP status per code).
 *
 * A device acts on the status alone, so each status must mean one thing:
 * - 4xx: the batch itself is wrong; retrying the same bytes will fail the same way, so the device
 *   should drop (or fix) it.
 * - 429/503: nothing is wrong with the batch; the service is saturated or Kafka is unavailable, so the
 *   device should retry after `Retry-After` seconds. Retrying is safe: events carry a client `event_id`
 *   and the aggregator deduplicates by `event_key` (ARCHITECTURE.md principle 5).
 * - 200 only after Kafka acknowledged every record (acks=all); it never appears in this table.
 */

import { CodedError } from '../runtime/errors.ts';

export const INGEST_ERROR_CODES = [
  'INGEST_NOT_FOUND',
  'INGEST_METHOD_NOT_ALLOWED',
  'INGEST_UNSUPPORTED_CONTENT_TYPE',
  'INGEST_UNSUPPORTED_CONTENT_ENCODING',
  'INGEST_BODY_TOO_LARGE',
  'INGEST_DECOMPRESSED_TOO_LARGE',
  'INGEST_BODY_EMPTY',
  'INGEST_BODY_INCOMPLETE',
  'INGEST_BAD_GZIP',
  'INGEST_BAD_JSON',
  'INGEST_CONTAINER_BAD_MAGIC',
  'INGEST_CONTAINER_BAD_HEADER',
  'INGEST_CONTAINER_TRUNCATED',
  'INGEST_CONTAINER_BAD_SYNC',
  'INGEST_CONTAINER_UNKNOWN_CODEC',
  'INGEST_CONTAINER_BAD_BLOCK',
  'INGEST_WRITER_SCHEMA_UNRESOLVABLE',
  'INGEST_AVRO_INVALID',
  'INGEST_BATCH_INVALID',
  'INGEST_BATCH_EMPTY',
  'INGEST_BATCH_TOO_EXPENSIVE',
  'INGEST_OVERLOADED',
  'INGEST_KAFKA_UNAVAILABLE',
  'INGEST_KEYSTORE_UNAVAILABLE',
  'INGEST_SHUTTING_DOWN',
  'INGEST_INTERNAL',
] as const;

export type IngestErrorCode = (typeof INGEST_ERROR_CODES)[number];

/** The one place a code becomes an HTTP status (a test checks every code has a sensible one). */
export const HTTP_STATUS: { readonly [C in IngestErrorCode]: number } = {
  INGEST_NOT_FOUND: 404,
  INGEST_METHOD_NOT_ALLOWED: 405,
  INGEST_UNSUPPORTED_CONTENT_TYPE: 415,
  INGEST_UNSUPPORTED_CONTENT_ENCODING: 415,
  // 413 is decided from Content-Length before the body is read, or while streaming a chunked body,
  // or (decompressed) while inflating: in no case is the whole oversized body held in memory.
  INGEST_BODY_TOO_LARGE: 413,
  INGEST_DECOMPRESSED_TOO_LARGE: 413,
  INGEST_BODY_EMPTY: 400,
  INGEST_BODY_INCOMPLETE: 400,
  INGEST_BAD_GZIP: 400,
  INGEST_BAD_JSON: 400,
  INGEST_CONTAINER_BAD_MAGIC: 400,
  INGEST_CONTAINER_BAD_HEADER: 400,
  INGEST_CONTAINER_TRUNCATED: 400,
  INGEST_CONTAINER_BAD_SYNC: 400,
  INGEST_CONTAINER_UNKNOWN_CODEC: 400,
  INGEST_CONTAINER_BAD_BLOCK: 400,
  INGEST_WRITER_SCHEMA_UNRESOLVABLE: 400,
  INGEST_AVRO_INVALID: 400,
  INGEST_BATCH_INVALID: 400,
  INGEST_BATCH_EMPTY: 400,
  // A batch that exceeded the per-task time or memory limit: a normal batch takes about a millisecond
  // and the limits are orders of magnitude above that, so retrying would only stall a worker again.
  INGEST_BATCH_TOO_EXPENSIVE: 400,
  INGEST_OVERLOADED: 429,
  INGEST_KAFKA_UNAVAILABLE: 503,
  // The zone's key store did not answer: the personal records cannot be sealed, so nothing is written.
  INGEST_KEYSTORE_UNAVAILABLE: 503,
  INGEST_SHUTTING_DOWN: 503,
  INGEST_INTERNAL: 500,
};

/** Codes whose answer carries `Retry-After`: the device should send the same batch again later. */
export function isRetryable(code: IngestErrorCode): boolean {
  const s = HTTP_STATUS[code];
  return s === 429 || s === 503;
}

/** A data error as a value (the worker steps, body reading and admission return these; they are not thrown). */
export interface IngestFailure {
  ok: false;
  code: IngestErrorCode;
  message: string;
  /** For INGEST_BATCH_INVALID: the batch-level rejects (index -1) that explain it. */
  rejects?: Array<{ index: number; path: string; reason: string; message: string }>;
}

export function fail(code: IngestErrorCode, message: string): IngestFailure {
  return { ok: false, code, message };
}

/** What a step returns: its value, or the typed failure that ends the request (ARCHITECTURE.md principle 6). */
export type Outcome<T> = { ok: true; value: T } | IngestFailure;

/** Thrown only for infrastructure failures that end a request (Kafka, pool); keeps its cause. */
export class IngestError extends CodedError<IngestErrorCode> {
  override readonly name: string = 'IngestError';
  get status(): number {
    return HTTP_STATUS[this.code];
  }
}
