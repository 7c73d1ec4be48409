/**
 * The ingest HTTP service: wires the parts together, listens, and stops gracefully. This thread only
 * does I/O: it reads bodies, hands them (moved, not copied) to the piscina pool, and hands the records
 * the pool returns to Kafka. Decompression, decoding, validation, splitting and encoding all run in
 * workers (worker.ts).
 *
 *   routing.ts    which request goes where; ops endpoints; Expect: 100-continue
 *   admission.ts  415/413/429/503 from the headers, before the body is read; in-flight reservations
 *   batches.ts    POST /v1/batches: body -> pool task -> Kafka -> answer (the 200 rule)
 *   respond.ts    answer bodies, status per code, Retry-After, request metrics
 *   pool.ts       the worker pool, batches handed over in groups under the per-batch limits, gauges
 *   context.ts    what they share, passed in: settings, metrics, sink, pool, counters
 *   tls.ts        HTTPS: the certificate files, their checks, reload on change
 */
import { createServer, type Server, type ServerOptions } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import { ConfigError, createLogger, type Level, type Logger } from '../runtime/index.ts';
import { drained } from './admission.ts';
import { poolThreads, sealingProblems, tlsProblems, type IngestConfig } from './config.ts';
import { newServiceState, type IngestContext, type RecordSink } from './context.ts';
import { createMetrics, type IngestMetrics } from './metrics.ts';
import { createPool, createTaskGroups } from './pool.ts';
import { KafkaSink } from './produce.ts';
import { startSuppression } from './suppression.ts';
import { route, routeExpectingContinue } from './routing.ts';
import type { WorkerOptions } from './task.ts';
import { TokenKeyWatch } from './token-keys.ts';
import { httpsOptions, readTlsFiles, tlsFilesOf, TlsReloader } from './tls.ts';

export type { RecordSink };

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

export async function startIngest(cfg: IngestConfig, opts: StartOptions): Promise<IngestService> {
  const problems = [...sealingProblems(cfg), ...tlsProblems(cfg)];
  if (problems.length) throw new ConfigError(problems);
  // Read before anything starts: a wrong certificate or key file throws TlsFileError naming its setting.
  const tlsFiles = tlsFilesOf(cfg);
  const tlsIdentity = tlsFiles ? readTlsFiles(tlsFiles) : undefined;
  const log = opts.log ?? createLogger({ service: 'ingest', level: cfg.INGEST_LOG_LEVEL as Level, logPersonalData: cfg.INGEST_DEBUG_LOG_PERSONAL_DATA });
  const keys = new TokenKeyWatch(opts.tokenKeys);
  const metrics = createMetrics({ tokenKeys: () => keys.gauges() });
  const sink = opts.sink ?? new KafkaSink(cfg, metrics, log);
  await sink.start();
  // The suppression list is read to its end before the first batch (rights/suppression.ts).
  const suppression = cfg.INGEST_UNSAFE_UNSEALED ? undefined : await startSuppression(cfg, log);
  const pool = createPool(cfg, opts.tokenKeys);
  const groups = createTaskGroups(cfg, pool, metrics);
  const ctx: IngestContext = { cfg, log, metrics, sink, pool, groups, keys, state: newServiceState(), suppression };

  const options: ServerOptions = {
    headersTimeout: cfg.INGEST_HEADERS_TIMEOUT_MS,
    requestTimeout: cfg.INGEST_REQUEST_TIMEOUT_MS,
    keepAliveTimeout: cfg.INGEST_KEEPALIVE_TIMEOUT_MS,
    // Node checks header/request timeouts on this interval (default 30 s): a slow-loris client would
    // otherwise hold its socket up to 30 s past headersTimeout.
    connectionsCheckingInterval: Math.max(50, Math.min(1000, Math.floor(cfg.INGEST_HEADERS_TIMEOUT_MS / 4))),
    maxHeaderSize: 16 * 1024,
  };
  const onRequest: Parameters<typeof createServer>[1] = (req, res) => route(ctx, req, res, false);
  // HTTPS unless INGEST_UNSAFE_PLAINTEXT_HTTP allowed plain HTTP (tlsProblems above): the same options,
  // handler and limits below either way.
  let server: Server;
  let reloader: TlsReloader | undefined;
  if (tlsFiles && tlsIdentity) {
    const https = createHttpsServer({ ...options, ...httpsOptions(tlsIdentity, cfg.INGEST_HEADERS_TIMEOUT_MS) }, onRequest);
    reloader = new TlsReloader(https, tlsFiles, tlsIdentity, { log, registry: metrics.registry });
    server = https;
  } else {
    server = createServer(options, onRequest);
  }
  server.on('checkContinue', (req, res) => routeExpectingContinue(ctx, req, res));
  server.maxHeadersCount = cfg.INGEST_MAX_HEADERS_COUNT;
  server.maxConnections = cfg.INGEST_MAX_CONNECTIONS;
  const sockets = new Set<Socket>();
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(cfg.INGEST_PORT, cfg.INGEST_HOST, () => {
      server.off('error', reject);
      resolve();
    });
  });
  const port = (server.address() as AddressInfo).port;
  reloader?.start();
  const scheme = reloader ? 'https' : 'http';
  const tlsFields = tlsIdentity ? { tls_serial: tlsIdentity.serial, tls_not_after: tlsIdentity.notAfter.toISOString() } : {};
  log.info('ingest listening', { host: cfg.INGEST_HOST, port, scheme, pool_threads: poolThreads(cfg), ...tlsFields });

  let closing: Promise<{ drained: boolean }> | undefined;
  const close = () => {
    reloader?.stop();
    return (closing ??= stop(ctx, server, sockets));
  };
  return { server, port, url: `${scheme}://${cfg.INGEST_HOST === '0.0.0.0' ? '127.0.0.1' : cfg.INGEST_HOST}:${port}`, metrics, close };
}

/**
 * Stop accepting (the listener closes; idle keep-alive connections now, busy ones after their current
 * response: Connection: close is set on every answer from here on), let in-flight batches finish within
 * INGEST_SHUTDOWN_DRAIN_MS, then flush Kafka and stop the pool.
 */
async function stop({ cfg, log, sink, pool, state, suppression }: IngestContext, server: Server, sockets: Set<Socket>): Promise<{ drained: boolean }> {
  state.shuttingDown = true;
  server.close();
  server.closeIdleConnections();
  const ok = await drained(state, cfg.INGEST_SHUTDOWN_DRAIN_MS);
  // Every batch answered 200 was acknowledged already; stop() flushes anything still queued.
  await sink.stop();
  await suppression?.stop();
  await pool.destroy();
  for (const s of sockets) s.destroy();
  log.info('ingest stopped', { drained: ok, inflight_batches: state.inflightBatches });
  return { drained: ok };
}
