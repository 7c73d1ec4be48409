/**
 * Configuration of the dashboard server (`npm run dashboard`), from `DASHBOARD_*` variables; unknown
 * ones stop the process (runtime/config.ts). It reads ClickHouse as the analyst, with the query
 * command's `ANALYST_*` settings (aggregator/analyst-config.ts: one analyst role, no k of its own), and
 * scrapes the services' /metrics; it writes nothing anywhere.
 */
import { analystSettings, withAnalystPassword, type AnalystConfig } from '../aggregator/analyst-config.ts';
import { defineSettings, loadConfig, type ConfigOf } from '../runtime/config.ts';

export const dashboardSettings = defineSettings({
  DASHBOARD_HOST: {
    kind: 'string',
    default: '127.0.0.1',
    doc: 'Address to listen on. The page shows aggregates only, but keep it local unless it sits behind your access control.',
  },
  DASHBOARD_PORT: { kind: 'int', min: 0, max: 65535, default: 18090, doc: 'HTTP port of the page and its JSON endpoints (0 = any free port).' },
  DASHBOARD_ANSWERS: {
    kind: 'enum',
    values: ['private', 'exact'] as const,
    default: 'private',
    doc: "`private`: differentially private answers under the analyst's daily budget (aggregator/private-query.ts), complete UTC days only, drawn with error bars (95 %); `exact`: exact sums of released cells for the privileged role, each use logged in the privacy ledger.",
  },
  DASHBOARD_DAYS: { kind: 'int', min: 1, max: 366, default: 14, doc: 'Days shown, ending today (UTC).' },
  DASHBOARD_INGEST_METRICS_URLS: {
    kind: 'list',
    default: ['http://127.0.0.1:18080/metrics'],
    doc: "Ingest workers' /metrics URLs to scrape (comma-separated).",
  },
  DASHBOARD_AGGREGATOR_METRICS_URLS: {
    kind: 'list',
    default: ['http://127.0.0.1:18081/metrics'],
    doc: "Aggregators' /metrics URLs to scrape (comma-separated).",
  },
  DASHBOARD_SCRAPE_INTERVAL_MS: { kind: 'int', min: 200, max: 60_000, default: 2000, doc: "How often the services' /metrics are scraped." },
  DASHBOARD_RATE_WINDOW_MS: { kind: 'int', min: 1000, max: 600_000, default: 10_000, doc: 'Window over which throughput and reject rate are computed.' },
});

export type DashboardConfig = Omit<ConfigOf<typeof dashboardSettings>, 'DASHBOARD_ANSWERS'> & {
  readonly DASHBOARD_ANSWERS: 'private' | 'exact';
} & AnalystConfig;

export function loadDashboardConfig(env: NodeJS.ProcessEnv = process.env): DashboardConfig {
  return withAnalystPassword(loadConfig({ ...dashboardSettings, ...analystSettings }, { prefixes: ['DASHBOARD_', 'ANALYST_'], env }) as DashboardConfig);
}
