/**
 * What the HTTP side's modules share, in one explicit object made by `startIngest` (http.ts) and
 * passed to every handler: settings, log, metrics, the Kafka sink, the worker pool, the day-secret
 * watch, and the few counters that change while the service runs (`ServiceState`).
 */
import type { Suppression } from './suppression.ts';
import type { Piscina } from 'piscina';
import type { TaskGroups } from './pool.ts';
import type { Logger } from '../runtime/index.ts';
import type { IngestConfig } from './config.ts';
import type { IngestMetrics } from './metrics.ts';
import type { BatchRecords } from './records.ts';
import type { TokenKeyWatch } from './token-keys.ts';

/** What the server needs from Kafka; `KafkaSink` (produce.ts) in production, an in-memory one in tests. */
export interface RecordSink {
  start(): Promise<void>;
  /** Resolves only when Kafka acknowledged (acks=all) every record of the batch. */
  send(records: BatchRecords): Promise<void>;
  ready(): Promise<{ ok: boolean; checks: Record<string, string> }>;
  stop(): Promise<void>;
}

/** The counters of one running service. Only the HTTP thread reads and writes them. */
export interface ServiceState {
  /** Body bytes admitted and not yet answered (each request reserves its Content-Length). */
  inflightBytes: number;
  /** Batches admitted and not yet answered. */
  inflightBatches: number;
  /** Set by close(): new batches get 503, every answer closes its connection, /readyz is false. */
  shuttingDown: boolean;
  /** Called once when inflightBatches comes back to 0 (close() waits for the drain). */
  idleWaiters: Array<() => void>;
  /** Worker time (ms) spent on batches since the pool was last sampled (pool utilisation gauge). */
  poolBusyMs: number;
  /** When the pool was last sampled (performance.now()). */
  poolSampledAt: number;
}

export function newServiceState(): ServiceState {
  return { inflightBytes: 0, inflightBatches: 0, shuttingDown: false, idleWaiters: [], poolBusyMs: 0, poolSampledAt: performance.now() };
}

export interface IngestContext {
  cfg: IngestConfig;
  log: Logger;
  metrics: IngestMetrics;
  sink: RecordSink;
  pool: Piscina;
  /** Hands batches to the pool in groups (pool.ts). */
  groups: TaskGroups;
  keys: TokenKeyWatch;
  state: ServiceState;
  /** Devices whose batches are dropped (withdrawn, restricted); undefined only with INGEST_UNSAFE_UNSEALED. */
  suppression: Suppression | undefined;
}
