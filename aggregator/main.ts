/**
 * `npm run aggregator`: one aggregator process (a member of the consumer group) with its ops server.
 * SIGTERM/SIGINT: stop fetching, flush what was read (insert, then commit), leave the group. If
 * ClickHouse is down the final flush keeps retrying; a second signal exits at once, losing nothing
 * (what was not inserted was not committed, and is read again by whoever takes the partitions).
 */
import { createServer, type Server } from 'node:http';
import { createLogger } from '../runtime/log.ts';
import { handleOps } from '../runtime/ops.ts';
import { ConfigError } from '../runtime/config.ts';
import { Aggregator } from './aggregator.ts';
import { loadAggregatorConfig, type AggregatorConfig } from './config.ts';
import { createAggregatorMetrics, type AggregatorMetrics } from './metrics.ts';
import { openStore, storeOptionsFrom } from './store-open.ts';
import type { Store } from './store.ts';

export interface RunningAggregator {
  aggregator: Aggregator;
  metrics: AggregatorMetrics;
  /** The aggregator's own store (with chdb, the only session this process may open on its data path). */
  store: Store;
  server: Server;
  port: number;
  stop(): Promise<void>;
}

/** Starts an aggregator in this process (tests and `main`). */
export async function startAggregator(
  cfg: AggregatorConfig,
  opts: { now?: () => number; defaultMetrics?: boolean; /** TEST ONLY: see AggregatorDeps. */ unsafeCommitOnInsertError?: boolean } = {},
): Promise<RunningAggregator> {
  const logger = createLogger({ service: 'aggregator', level: cfg.AGGREGATOR_LOG_LEVEL });
  const metrics = createAggregatorMetrics({ defaultMetrics: opts.defaultMetrics ?? false });
  const store = await openStore(storeOptionsFrom(cfg));
  const aggregator = new Aggregator({
    config: cfg,
    store,
    logger,
    metrics,
    ...(opts.now ? { now: opts.now } : {}),
    ...(opts.unsafeCommitOnInsertError ? { unsafeCommitOnInsertError: true } : {}),
  });
  const server = createServer((req, res) => {
    if (!handleOps({ registry: metrics.registry, ready: () => aggregator.ready() }, req, res)) {
      res.writeHead(404).end();
    }
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(cfg.AGGREGATOR_PORT, cfg.AGGREGATOR_HOST, () => resolve());
  });
  const addr = server.address();
  const port = typeof addr === 'object' && addr ? addr.port : cfg.AGGREGATOR_PORT;
  await aggregator.start();
  // `sink` stays the log field's name (operators' log queries use it); its value is the store kind.
  logger.info('aggregator started', { port, topic: cfg.PIPELINE_TOPIC_EVENTS, group: cfg.AGGREGATOR_GROUP_ID, sink: store.kind, database: store.database });
  return {
    aggregator,
    metrics,
    store,
    server,
    port,
    async stop() {
      await aggregator.stop();
      await store.close();
      await new Promise<void>((r) => server.close(() => r()));
    },
  };
}

async function main(): Promise<void> {
  let cfg: AggregatorConfig;
  try {
    cfg = loadAggregatorConfig();
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`aggregator: ${e.problems.join('\n  ')}\n`);
      process.exit(2);
    }
    throw e;
  }
  const running = await startAggregator(cfg, { defaultMetrics: true });
  let signals = 0;
  const onSignal = () => {
    if (++signals > 1) process.exit(1);
    running.stop().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

if (import.meta.url === `file://${process.argv[1]}`) {
  main().catch((err: unknown) => {
    process.stderr.write(`aggregator: failed to start: ${(err as Error).stack ?? String(err)}\n`);
    process.exit(1);
  });
}
