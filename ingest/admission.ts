/**
 * Admission of a batch, decided from its headers before a byte of the body is read, cheapest and most
 * protective check first:
 *
 *   shutting down? -> 503 | content type -> 415 | content encoding -> 415 | Content-Length > limit -> 413
 *   | admitting it would pass the in-flight byte bound, or the pool queue is full -> 429
 *
 * An admitted batch reserves its Content-Length (the full body limit when chunked) against
 * INGEST_MAX_INFLIGHT_BYTES until it is answered (`release`), so memory is bounded before bodies are
 * read (ARCHITECTURE.md principle 4: overload is a 429, never an unbounded queue). Only then does a
 * client that sent `Expect: 100-continue` get `100 Continue`: a refused one never uploads its body.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import { parseContentEncoding, parseContentLength, type ContentEncoding } from './body.ts';
import type { IngestContext, ServiceState } from './context.ts';
import { fail, type Outcome } from './errors.ts';
import type { BodyFormat } from './task.ts';

const CONTENT_TYPES: Record<string, BodyFormat> = {
  'avro/binary': 'avro',
  'application/avro': 'avro',
  'application/vnd.apache.avro+binary': 'avro',
  'application/json': 'json',
};

export interface Admitted {
  format: BodyFormat;
  encoding: ContentEncoding;
  /** Content-Length, or undefined for a chunked body. */
  declaredLength: number | undefined;
  /** Bytes reserved against the in-flight bound; give them back with `release`. */
  reserved: number;
}

/** Checks the headers; on success reserves the body's bytes and asks for the body if the client waits. */
export function admit(
  ctx: Pick<IngestContext, 'cfg' | 'metrics' | 'groups' | 'state'>,
  req: IncomingMessage,
  res: ServerResponse,
  expectsContinue: boolean,
): Outcome<Admitted> {
  const { cfg, state } = ctx;
  if (state.shuttingDown) return fail('INGEST_SHUTTING_DOWN', 'this ingest worker is shutting down: retry on another');
  const type = (req.headers['content-type'] ?? '').split(';', 1)[0]!.trim().toLowerCase();
  const format = CONTENT_TYPES[type];
  if (!format) {
    return fail(
      'INGEST_UNSUPPORTED_CONTENT_TYPE',
      `Content-Type "${type.slice(0, 60)}" is not accepted: use avro/binary (Avro container) or application/json (Avro-JSON)`,
    );
  }
  const enc = parseContentEncoding(req.headers['content-encoding']);
  if (!enc.ok) return enc;
  const len = parseContentLength(req.headers['content-length']);
  if (!len.ok) return len;
  if (len.value !== undefined && len.value > cfg.INGEST_MAX_BODY_BYTES) {
    return fail('INGEST_BODY_TOO_LARGE', `body of ${len.value} bytes exceeds ${cfg.INGEST_MAX_BODY_BYTES}: split the batch`);
  }
  // Backpressure, before a byte of the body is read. A chunked body reserves the full limit.
  const reserve = len.value ?? cfg.INGEST_MAX_BODY_BYTES;
  if (state.inflightBytes + reserve > cfg.INGEST_MAX_INFLIGHT_BYTES || ctx.groups.queuedBatches >= cfg.INGEST_MAX_QUEUED_BATCHES) {
    return fail('INGEST_OVERLOADED', 'ingest is saturated: retry after the delay in Retry-After');
  }
  state.inflightBytes += reserve;
  state.inflightBatches++;
  ctx.metrics.inflightBytes.set(state.inflightBytes);
  ctx.metrics.inflightBatches.set(state.inflightBatches);
  // Admitted: only now ask a client that sent `Expect: 100-continue` for its body.
  if (expectsContinue) res.writeContinue();
  return { ok: true, value: { format, encoding: enc.value, declaredLength: len.value, reserved: reserve } };
}

/** Gives back an answered batch's reservation; wakes close() when the last in-flight batch is done. */
export function release({ metrics, state }: Pick<IngestContext, 'metrics' | 'state'>, bytes: number): void {
  state.inflightBytes -= bytes;
  state.inflightBatches--;
  metrics.inflightBytes.set(state.inflightBytes);
  metrics.inflightBatches.set(state.inflightBatches);
  if (state.inflightBatches === 0) for (const w of state.idleWaiters.splice(0)) w();
}

/** Resolves true once no batch is in flight, or false after `ms` (the drain deadline of a stop). */
export function drained(state: ServiceState, ms: number): Promise<boolean> {
  return new Promise<boolean>((resolve) => {
    if (state.inflightBatches === 0) return resolve(true);
    const timer = setTimeout(() => resolve(false), ms);
    state.idleWaiters.push(() => {
      clearTimeout(timer);
      resolve(true);
    });
  });
}
