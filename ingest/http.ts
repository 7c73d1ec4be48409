/**
 * The ingest HTTP server: routing, limits, backpressure, acknowledgement. This thread only does I/O:
 * it reads bodies, hands them (moved, not copied) to the piscina pool, and hands the records the pool
 * returns to Kafka. Decompression, decoding, validation, splitting and encoding all run in workers.
 *
 * Order of checks for POST /v1/batches, cheapest and most protective first, all before reading the body:
 *   shutting down? -> 503 | content type -> 415 | content encoding -> 415 | Content-Length > limit -> 413
 *   | admitting it would pass the in-flight byte bound, or the pool queue is full -> 429
 * then: read body (413 if a chunked body passes the limit) -> pool task -> Kafka -> 200 / 4xx / 503.
 *
 * The 200 rule (DESIGN principle 4): the response is written only after `sink.send` resolved, i.e.
 * after Kafka acknowledged every record of the batch with acks=all.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo, Socket } from 'node:net';
import { fileURLToPath } from 'node:url';
import { Piscina } from 'piscina';
import { createLogger, handleOps, type Level, type Logger } from '../runtime/index.ts';
import { parseContentEncoding, parseContentLength, readBody } from './body.ts';
import { poolThreads, type IngestConfig } from './config.ts';
import { HTTP_STATUS, IngestError, isRetryable, type IngestErrorCode, type IngestFailure } from './errors.ts';
import { createMetrics, type IngestMetrics } from './metrics.ts';
import { TokenKeyWatch } from './token-keys.ts';
import { KafkaSink } from './produce.ts';
import { unpackRecords, type BatchRecords } from './records.ts';
import type { BodyFormat, WorkerOptions, WorkerResult, WorkerTask } from './task.ts';

/** What the server needs from Kafka; `KafkaSink` in production. */
export interface RecordSink {
  start(): Promise<void>;
  send(records: BatchRecords): Promise<void>;
  ready(): Promise<{ ok: boolean; checks: Record<string, string> }>;
  stop(): Promise<void>;
}

export interface IngestService {
  server: Server;
  port: number;
  url: string;
  metrics: IngestMetrics;
  /** Graceful stop: refuse new batches, finish in-flight ones, flush Kafka, stop the pool. */
  close(): Promise<{ drained: boolean }>;
}

export interface StartOptions {
  sink?: RecordSink;
  log?: Logger;
  /** Where day secrets for the daily token live (FileKeySource, manage or read-only), or TOKEN_KEYS-style
   *  spec. /readyz and the key gauges read the same place as the workers. */
  tokenKeys: WorkerOptions['tokenKeys'];
}

const CONTENT_TYPES: Record<string, BodyFormat> = {
  'avro/binary': 'avro',
  'application/avro': 'avro',
  'application/vnd.apache.avro+binary': 'avro',
  'application/json': 'json',
};

/** Bodies up to this size are read and discarded when refused early, so the keep-alive connection survives. */
const DISCARD_MAX = 64 * 1024;

export function createPool(cfg: IngestConfig, tokenKeys: WorkerOptions['tokenKeys']): Piscina {
  const here = import.meta.url;
  const fromTs = here.endsWith('.ts');
  const workerData: WorkerOptions = {
    maxDecompressedBytes: cfg.INGEST_MAX_DECOMPRESSED_BYTES,
    maxEventsPerBatch: cfg.INGEST_MAX_EVENTS_PER_BATCH,
    maxStringBytes: cfg.INGEST_MAX_STRING_BYTES,
    tokenKeys,
  };
  return new Piscina({
    filename: fileURLToPath(new URL(fromTs ? './worker.ts' : './worker.js', here)),
    // Running from .ts sources (tsx, vitest): a worker thread starts a fresh module loader that does not
    // inherit the parent's loader hooks, so it must register tsx itself. From compiled .js, nothing.
    execArgv: fromTs ? ['--import', 'tsx'] : [],
    minThreads: poolThreads(cfg),
    maxThreads: poolThreads(cfg),
    idleTimeout: 60_000,
    resourceLimits: { maxOldGenerationSizeMb: cfg.INGEST_TASK_MAX_HEAP_MB, maxYoungGenerationSizeMb: 32 },
    workerData,
  });
}

export async function startIngest(cfg: IngestConfig, opts: StartOptions): Promise<IngestService> {
  const log = opts.log ?? createLogger({ service: 'ingest', level: cfg.INGEST_LOG_LEVEL as Level, logPersonalData: cfg.INGEST_DEBUG_LOG_PERSONAL_DATA });
  const keys = new TokenKeyWatch(opts.tokenKeys);
  const metrics = createMetrics({ tokenKeys: () => keys.gauges() });
  const sink = opts.sink ?? new KafkaSink(cfg, metrics, log);
  await sink.start();
  const pool = createPool(cfg, opts.tokenKeys);

  let inflightBytes = 0;
  let inflightBatches = 0;
  let shuttingDown = false;
  const idleWaiters: Array<() => void> = [];
  const release = (bytes: number) => {
    inflightBytes -= bytes;
    inflightBatches--;
    metrics.inflightBytes.set(inflightBytes);
    metrics.inflightBatches.set(inflightBatches);
    if (inflightBatches === 0) for (const w of idleWaiters.splice(0)) w();
  };
  // Pool gauges are computed when scraped, not per task. Utilisation is our own: the share of the
  // pool's thread-time spent inside tasks since the previous scrape (piscina's own figure mixes units
  // and walks its histograms, which cost ~13% of the HTTP thread when read per batch).
  let busyMs = 0;
  let lastScrape = performance.now();
  const samplePool = () => {
    const now = performance.now();
    const capacity = (now - lastScrape) * poolThreads(cfg);
    metrics.poolQueueDepth.set(pool.queueSize);
    metrics.poolUtilisation.set(capacity > 0 ? Math.min(1, busyMs / capacity) : 0);
    metrics.poolThreads.set(pool.threads.length);
    busyMs = 0;
    lastScrape = now;
  };

  const sendJson = (res: ServerResponse, status: number, body: unknown, extra: Record<string, string> = {}) => {
    if (res.headersSent) return;
    const text = JSON.stringify(body);
    res.writeHead(status, { 'content-type': 'application/json', 'content-length': Buffer.byteLength(text), ...extra });
    res.end(text);
  };

  const sendError = (req: IncomingMessage, res: ServerResponse, f: IngestFailure | IngestError, opts: { bodyUnread?: boolean } = {}) => {
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
    if (shuttingDown) headers.connection = 'close';
    const rejects = 'rejects' in f ? f.rejects : undefined;
    const body = rejects ? { error: { code: f.code, message: f.message }, rejected: rejects } : { error: { code: f.code, message: f.message } };
    sendJson(res, status, body, headers);
  };

  const observe = (res: ServerResponse, t0: number, code: IngestErrorCode | 'OK') => {
    res.once('finish', () => {
      metrics.requests.inc({ status: String(res.statusCode), code });
      metrics.requestSeconds.observe({ status: String(res.statusCode) }, (performance.now() - t0) / 1000);
    });
  };

  const runTask = async (task: WorkerTask): Promise<WorkerResult> => {
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
          return { ok: false, code: 'INGEST_OVERLOADED', message: `no worker was free within ${cfg.INGEST_TASK_TIMEOUT_MS} ms: retry after the delay in Retry-After` };
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
  };

  async function handleBatch(req: IncomingMessage, res: ServerResponse, t0: number, expectsContinue: boolean): Promise<void> {
    const refuse = (f: IngestFailure) => {
      observe(res, t0, f.code);
      sendError(req, res, f, { bodyUnread: true });
    };
    if (shuttingDown) return refuse({ ok: false, code: 'INGEST_SHUTTING_DOWN', message: 'this ingest worker is shutting down: retry on another' });
    const type = (req.headers['content-type'] ?? '').split(';', 1)[0]!.trim().toLowerCase();
    const format = CONTENT_TYPES[type];
    if (!format) {
      return refuse({ ok: false, code: 'INGEST_UNSUPPORTED_CONTENT_TYPE', message: `Content-Type "${type.slice(0, 60)}" is not accepted: use avro/binary (Avro container) or application/json (Avro-JSON)` });
    }
    const enc = parseContentEncoding(req.headers['content-encoding']);
    if (!enc.ok) return refuse(enc);
    const len = parseContentLength(req.headers['content-length']);
    if (!len.ok) return refuse(len);
    if (len.value !== undefined && len.value > cfg.INGEST_MAX_BODY_BYTES) {
      return refuse({ ok: false, code: 'INGEST_BODY_TOO_LARGE', message: `body of ${len.value} bytes exceeds ${cfg.INGEST_MAX_BODY_BYTES}: split the batch` });
    }
    // Backpressure, before a byte of the body is read. A chunked body reserves the full limit.
    const reserve = len.value ?? cfg.INGEST_MAX_BODY_BYTES;
    if (inflightBytes + reserve > cfg.INGEST_MAX_INFLIGHT_BYTES || pool.queueSize >= cfg.INGEST_MAX_QUEUED_BATCHES) {
      return refuse({ ok: false, code: 'INGEST_OVERLOADED', message: 'ingest is saturated: retry after the delay in Retry-After' });
    }
    inflightBytes += reserve;
    inflightBatches++;
    metrics.inflightBytes.set(inflightBytes);
    metrics.inflightBatches.set(inflightBatches);
    try {
      // Admitted: only now ask a client that sent `Expect: 100-continue` for its body.
      if (expectsContinue) res.writeContinue();
      const endBody = metrics.bodySeconds.startTimer();
      const body = await readBody(req, cfg.INGEST_MAX_BODY_BYTES, len.value);
      endBody();
      if (!body.ok) {
        observe(res, t0, body.code);
        // A body cut off mid-way leaves the connection in an unknown state: close it.
        sendError(req, res, body, { bodyUnread: body.code === 'INGEST_BODY_TOO_LARGE' });
        return;
      }
      const task: WorkerTask = {
        body: body.value.buffer as ArrayBuffer,
        length: body.value.length,
        format,
        encoding: enc.value,
        receivedAt: Date.now(),
        started: new Int32Array(new SharedArrayBuffer(4)),
      };
      if (req.socket.remoteAddress) task.clientIp = req.socket.remoteAddress;
      const result = await runTask(task);
      if (!result.ok) {
        observe(res, t0, result.code);
        sendError(req, res, result);
        return;
      }
      metrics.workSeconds.observe(result.workMs / 1000);
      busyMs += result.workMs;
      const records = unpackRecords(result);
      const answer = {
        accepted: result.accepted,
        dropped_consent: result.droppedConsent,
        rejected: result.rejects.map((r) => ({ index: r.index, path: r.path, reason: r.reason, message: r.message })),
      };
      if (cfg.INGEST_UNSAFE_ACK_BEFORE_PRODUCE) {
        // UNSAFE (tests' negative control only): answer first, produce afterwards, ignore failures.
        observe(res, t0, 'OK');
        sendJson(res, 200, answer);
        await sink.send(records).catch(() => {});
      } else {
        const t1 = performance.now();
        try {
          await sink.send(records);
        } catch (e) {
          const err = e instanceof IngestError ? e : new IngestError('INGEST_KAFKA_UNAVAILABLE', `Kafka: ${(e as Error).message}`, { cause: e });
          observe(res, t0, err.code);
          sendError(req, res, err);
          return;
        }
        log.debug('batch acknowledged', { events: result.eventCount, records: records.events.length + records.personal.length + records.rejected.length, produce_ms: Math.round(performance.now() - t1) });
        observe(res, t0, 'OK');
        sendJson(res, 200, answer);
      }
      metrics.eventsAccepted.inc(result.accepted);
      metrics.batchEvents.observe(result.eventCount);
      for (const r of result.rejects) metrics.eventsRejected.inc({ reason: r.reason });
      for (const [reason, n] of Object.entries(result.droppedConsent)) metrics.eventsDroppedConsent.inc({ reason }, n);
      if (result.rejects.length > 0) log.personal('rejected events', result.rejects);
    } finally {
      release(reserve);
    }
  }

  const server = createServer(
    {
      headersTimeout: cfg.INGEST_HEADERS_TIMEOUT_MS,
      requestTimeout: cfg.INGEST_REQUEST_TIMEOUT_MS,
      keepAliveTimeout: cfg.INGEST_KEEPALIVE_TIMEOUT_MS,
      // Node checks header/request timeouts on this interval (default 30 s): a slow-loris client would
      // otherwise hold its socket up to 30 s past headersTimeout.
      connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(cfg.INGEST_HEADERS_TIMEOUT_MS / 4))),
      maxHeaderSize: 16 * 1024,
    },
    (req, res) => onRequest(req, res, false),
  );
  function onRequest(req: IncomingMessage, res: ServerResponse, expectsContinue: boolean): void {
    const t0 = performance.now();
    if (req.url === '/metrics') samplePool();
    if (handleOps({ registry: metrics.registry, ready }, req, res)) return;
    const path = (req.url ?? '/').split('?', 1)[0];
    if (path === '/v1/batches') {
      if (req.method !== 'POST') {
        observe(res, t0, 'INGEST_METHOD_NOT_ALLOWED');
        return sendError(req, res, { ok: false, code: 'INGEST_METHOD_NOT_ALLOWED', message: 'use POST' }, { bodyUnread: true });
      }
      handleBatch(req, res, t0, expectsContinue).catch((e: unknown) => {
        log.error('batch failed', {}, e);
        observe(res, t0, 'INGEST_INTERNAL');
        sendError(req, res, { ok: false, code: 'INGEST_INTERNAL', message: 'internal error' });
      });
      return;
    }
    observe(res, t0, 'INGEST_NOT_FOUND');
    sendError(req, res, { ok: false, code: 'INGEST_NOT_FOUND', message: `no route ${req.method} ${path?.slice(0, 80)}` }, { bodyUnread: true });
  }
  // `Expect: 100-continue` (curl and many SDKs for bodies over 1 kB): Node would answer 100 at once and
  // the client would start uploading. Batches decide first (415/413/429 from the headers), and only an
  // admitted one gets 100 Continue; other routes get it at once.
  server.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?', 1)[0];
    if (path === '/v1/batches' && req.method === 'POST') return onRequest(req, res, true);
    res.writeContinue();
    onRequest(req, res, false);
  });
  server.maxHeadersCount = cfg.INGEST_MAX_HEADERS_COUNT;
  server.maxConnections = cfg.INGEST_MAX_CONNECTIONS;
  const sockets = new Set<Socket>();
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });

  async function ready(): Promise<{ ok: boolean; checks: Record<string, string> }> {
    const k = await sink.ready();
    const poolOk = pool.threads.length > 0;
    // Without today's day secret (read-only mode: the rotation has not provided it) every event of today
    // would be refused: take this copy out of the Service instead (the device retries on another).
    const tk = keys.readiness();
    const checks: Record<string, string> = { ...k.checks, pool: poolOk ? 'ok' : 'no worker threads', token_keys: tk.detail, accepting: shuttingDown ? 'shutting down' : 'ok' };
    return { ok: k.ok && poolOk && tk.ok && !shuttingDown, checks };
  }

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(cfg.INGEST_PORT, cfg.INGEST_HOST, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  log.info('ingest listening', { host: cfg.INGEST_HOST, port, pool_threads: poolThreads(cfg) });

  let closing: Promise<{ drained: boolean }> | undefined;
  const close = () =>
    (closing ??= (async () => {
      shuttingDown = true;
      // Stop accepting: the listener closes; idle keep-alive connections are closed now, busy ones
      // after their current response (Connection: close is set on every answer from here on).
      server.close();
      server.closeIdleConnections();
      const drained = await new Promise<boolean>((resolve) => {
        if (inflightBatches === 0) return resolve(true);
        const timer = setTimeout(() => resolve(false), cfg.INGEST_SHUTDOWN_DRAIN_MS);
        idleWaiters.push(() => {
          clearTimeout(timer);
          resolve(true);
        });
      });
      // Every batch answered 200 was acknowledged already; stop() flushes anything still queued.
      await sink.stop();
      await pool.destroy();
      for (const s of sockets) s.destroy();
      log.info('ingest stopped', { drained, inflight_batches: inflightBatches });
      return { drained };
    })());

  return { server, port, url: `http://${cfg.INGEST_HOST === '0.0.0.0' ? '127.0.0.1' : cfg.INGEST_HOST}:${port}`, metrics, close };
}
