/**
 * Configuration of the dashboard server (`npm run dashboard`), from `DASHBOARD_*` variables; unknown
 * ones stop the process (runtime/config.ts). It reads ClickHouse the way the query command does and
 * scrapes the services' /metrics; it writes nothing anywhere.
 */
import { defineSettings, loadConfig, type ConfigOf } from '../runtime/config.ts';

export const dashboardSettings = defineSettings({
  DASHBOARD_HOST: {
    kind: 'string',
    default: '127.0.0.1',
    doc: 'Address to listen on. The page shows aggregates only, but keep it local unless it sits behind your access control.',
  },
  DASHBOARD_PORT: { kind: 'int', min: 0, max: 65535, default: 18090, doc: 'HTTP port of the page and its JSON endpoints (0 = any free port).' },
  DASHBOARD_CLICKHOUSE_URL: { kind: 'url', default: 'http://127.0.0.1:18123', doc: 'ClickHouse HTTP endpoint holding the aggregator database.' },
  DASHBOARD_CLICKHOUSE_USER: { kind: 'string', default: 'default', doc: 'ClickHouse user (read access to the aggregator database is enough).' },
  DASHBOARD_CLICKHOUSE_PASSWORD: { kind: 'string', secret: true, default: '', doc: 'ClickHouse password.' },
  DASHBOARD_DATABASE: {
    kind: 'string',
    pattern: /^[A-Za-z_][A-Za-z0-9_]{0,62}$/,
    default: 'analytics',
    doc: 'Database the aggregator writes (AGGREGATOR_DATABASE).',
  },
  DASHBOARD_MIN_GROUP_DEVICES: {
    kind: 'int',
    min: 1,
    max: 1_000_000,
    default: 5,
    doc: "k-anonymity threshold applied in ClickHouse to every group shown (as the query command does); use the aggregator's AGGREGATOR_MIN_GROUP_DEVICES or higher.",
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

export type DashboardConfig = ConfigOf<typeof dashboardSettings>;

export function loadDashboardConfig(env: NodeJS.ProcessEnv = process.env): DashboardConfig {
  return loadConfig(dashboardSettings, { prefixes: ['DASHBOARD_'], env });
}
