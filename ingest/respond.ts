/**
 * Answers: JSON bodies, the status of each error code (errors.ts, HTTP_STATUS), Retry-After on 429 and
 * 503, what happens to a body that was never read, and the request metrics of every answer.
 */
import type { IncomingMessage, ServerResponse } from 'node:http';
import type { IngestContext } from './context.ts';
import { HTTP_STATUS, isRetryable, type IngestError, type IngestErrorCode, type IngestFailure } from './errors.ts';
import type { IngestMetrics } from './metrics.ts';
import type { WorkerSuccess } from './task.ts';

/** Bodies up to this size are read and discarded when refused early, so the keep-alive connection survives. */
const DISCARD_MAX = 64 * 1024;

/** One refused event (index >= 0) or batch-level problem (index -1) in an answer. */
export interface AnswerReject {
  index: number;
  path: string;
  reason: string;
  message: string;
}

/** The JSON body of a 200 answer to a batch. */
export interface BatchAnswer {
  accepted: number;
  /** Events dropped for lack of consent, by reason. */
  dropped_consent: Record<string, number>;
  rejected: AnswerReject[];
}

/** The JSON body of every error answer. */
export interface ErrorAnswer {
  error: { code: IngestErrorCode; message: string };
  /** For INGEST_BATCH_INVALID: the batch-level rejects that explain it. */
  rejected?: AnswerReject[];
}

export function sendJson(res: ServerResponse, status: number, body: unknown, extra: Record<string, string> = {}): void {
  if (res.headersSent) return;
  const text = JSON.stringify(body);
  res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...extra });
  res.end(text);
}

/**
 * `{ error: { code, message } }` (plus `rejected` when a batch-level problem has rejects to show) with
 * the code's status. `bodyUnread`: the request body was not read (refused from the headers).
 */
export function sendError(
  { cfg, state }: Pick<IngestContext, 'cfg' | 'state'>,
  req: IncomingMessage,
  res: ServerResponse,
  f: IngestFailure | IngestError,
  opts: { bodyUnread?: boolean } = {},
): void {
  const status = HTTP_STATUS[f.code];
  const headers: Record<string, string> = {};
  if (isRetryable(f.code)) {
    headers['retry-after'] = String(status === 429 ? cfg.INGEST_RETRY_AFTER_OVERLOAD_S : cfg.INGEST_RETRY_AFTER_UNAVAILABLE_S);
  }
  if (opts.bodyUnread) {
    // The body was not read. A small one is drained so the connection stays usable; a big one is not
    // worth reading, so the connection is closed after the answer.
    const len = Number(req.headers['content-length'] ?? NaN);
    // With `Expect: 100-continue` refused, the client never sends the body: close rather than wait.
    if (Number.isFinite(len) && len <= DISCARD_MAX && !req.headers.expect) req.resume();
    else {
      headers.connection = 'close';
      res.once('finish', () => req.socket.destroySoon());
    }
  }
  if (state.shuttingDown) headers.connection = 'close';
  const rejects = 'rejects' in f ? f.rejects : undefined;
  const body: ErrorAnswer = rejects ? { error: { code: f.code, message: f.message }, rejected: rejects } : { error: { code: f.code, message: f.message } };
  sendJson(res, status, body, headers);
}

/** Counts the answer (status, code, duration) once it is sent. */
export function observe(metrics: IngestMetrics, res: ServerResponse, t0: number, code: IngestErrorCode | 'OK'): void {
  res.once('finish', () => {
    metrics.requests.inc({ status: String(res.statusCode), code });
    metrics.requestSeconds.observe({ status: String(res.statusCode) }, (performance.now() - t0) / 1000);
  });
}

/** An error answer, counted. */
export function answerError(
  ctx: Pick<IngestContext, 'cfg' | 'state' | 'metrics'>,
  req: IncomingMessage,
  res: ServerResponse,
  t0: number,
  f: IngestFailure | IngestError,
  opts: { bodyUnread?: boolean } = {},
): void {
  observe(ctx.metrics, res, t0, f.code);
  sendError(ctx, req, res, f, opts);
}

/** The 200 answer of a batch, counted: what was accepted, dropped for consent, and rejected with why. */
export function answerBatch(metrics: IngestMetrics, res: ServerResponse, t0: number, result: WorkerSuccess): void {
  observe(metrics, res, t0, 'OK');
  const body: BatchAnswer = {
    accepted: result.accepted,
    dropped_consent: result.droppedConsent,
    rejected: result.rejects.map((r) => ({ index: r.index, path: r.path, reason: r.reason, message: r.message })),
  };
  sendJson(res, 200, body);
}
