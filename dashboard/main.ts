/**
 * `npm run dashboard`: the dashboard page on DASHBOARD_PORT (18090), reading the aggregator's database
 * and scraping the /metrics URLs it is given. `npm run demo` starts one of these itself, pointed at the
 * demo's own services. SIGINT/SIGTERM close it.
 */
import { ConfigError } from '../runtime/config.ts';
import { loadDashboardConfig } from './config.ts';
import { startDashboard } from './server.ts';

async function main(): Promise<void> {
  let cfg;
  try {
    cfg = loadDashboardConfig();
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`dashboard: ${e.problems.join('\n  ')}\n`);
      process.exit(2);
    }
    throw e;
  }
  const d = await startDashboard(cfg);
  process.stdout.write(
    `dashboard: ${d.url} (as ${cfg.ANALYST_CLICKHOUSE_USER}, database ${cfg.ANALYST_DATABASE}; scraping ${[...cfg.DASHBOARD_INGEST_METRICS_URLS, ...cfg.DASHBOARD_AGGREGATOR_METRICS_URLS].join(', ')})\n`,
  );
  const stop = () => {
    d.close().then(
      () => process.exit(0),
      () => process.exit(1),
    );
  };
  process.once('SIGINT', stop);
  process.once('SIGTERM', stop);
}

main().catch((e: unknown) => {
  process.stderr.write(`dashboard: cannot start: ${(e as Error).message}\n`);
  process.exit(1);
});
