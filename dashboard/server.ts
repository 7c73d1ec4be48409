/**
 * The dashboard: one page and three JSON endpoints, served by a small companion process (not mounted in
 * the aggregator). Why separate: the aggregator's ops port is what its probes and Prometheus hit, and a
 * page that runs roll-up queries on each load would share that process's event loop with the consumer;
 * the dashboard also needs every ingest worker's /metrics, which the aggregator has no business
 * knowing. It only reads (ClickHouse through the query command's code, /metrics over HTTP).
 *
 *   GET /              the page (plain HTML, inline SVG drawing, no external resources)
 *   GET /api/dau       daily active devices by day x app       (query command: dau --by day,app_id)
 *   GET /api/crash     crash-free devices % and crashes per 1,000 sessions by app x version
 *                      (query command: crash-rate --by app_id,app_version; over the range = device-days)
 *   GET /api/live      ingest throughput, reject rate, consumer lag, computed here from scrapes
 *   GET /healthz
 *
 * It connects as the analyst (ANALYST_*) and shows sums of the released cells only (the query
 * command's code): by default differentially private, under the analyst's daily budget, with error
 * bars (DASHBOARD_ANSWERS=private); exact and logged for the privileged role (exact). The threshold k
 * it prints is read from the views (`release_policy`), not a setting.
 */
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { dayToIso, utcDay } from '../aggregator/facts.ts';
import { readReleasePolicy, runLoggedExactReport, runPrivateReport } from '../aggregator/private-query.ts';
import type { QueryRequest, ReportRow } from '../aggregator/query.ts';
import { analystStoreOptions } from '../aggregator/analyst-config.ts';
import { openStore } from '../aggregator/store-open.ts';
import type { Store } from '../aggregator/store.ts';
import type { DashboardConfig } from './config.ts';
import { renderPage } from './page.ts';
import { Scraper, type LiveRates } from './scrape.ts';

export interface AnalyticsAnswer {
  from: string;
  to: string;
  /** The views' k-anonymity threshold (null while they cannot be read). */
  k: number | null;
  /** `private`: noisy rows with `*_sd` columns; `exact`: exact rows, the use logged. */
  answers: 'private' | 'exact';
  rows: ReportRow[];
  /** Private answers: this question's epsilon, the analyst's charges today, the daily budget. */
  epsilon?: number;
  spent?: number;
  dailyEpsilon?: number;
  error?: string;
}

export interface RunningDashboard {
  url: string;
  port: number;
  server: Server;
  scraper: Scraper;
  /** The same answers the endpoints give (tests compare them with the page). */
  dau(): Promise<AnalyticsAnswer>;
  crash(): Promise<AnalyticsAnswer>;
  live(): LiveRates;
  close(): Promise<void>;
}

export interface DashboardOptions {
  /** Overrides "today" (tests). */
  now?: () => number;
}

export function dauRequest(today: number, days: number): QueryRequest {
  return { report: 'dau', from: today - days + 1, to: today, by: ['day', 'app_id'], format: 'json' };
}

export function crashRequest(today: number, days: number): QueryRequest {
  return { report: 'crash-rate', from: today - days + 1, to: today, by: ['app_id', 'app_version'], format: 'json' };
}

export async function startDashboard(cfg: DashboardConfig, opts: DashboardOptions = {}): Promise<RunningDashboard> {
  const now = opts.now ?? Date.now;
  const store: Store = await openStore(analystStoreOptions(cfg));
  const scraper = new Scraper({
    ingest: cfg.DASHBOARD_INGEST_METRICS_URLS,
    aggregator: cfg.DASHBOARD_AGGREGATOR_METRICS_URLS,
    intervalMs: cfg.DASHBOARD_SCRAPE_INTERVAL_MS,
    windowMs: cfg.DASHBOARD_RATE_WINDOW_MS,
  });

  const exact = cfg.DASHBOARD_ANSWERS === 'exact';
  const answer = async (req: QueryRequest): Promise<AnalyticsAnswer> => {
    const base = { from: dayToIso(req.from), to: dayToIso(req.to), answers: cfg.DASHBOARD_ANSWERS };
    try {
      const policy = await readReleasePolicy(store);
      if (exact) return { ...base, k: policy.minGroupDevices, rows: await runLoggedExactReport(store, req, { nowMs: now() }) };
      const a = await runPrivateReport(store, req, undefined, { nowMs: now() });
      return { ...base, k: policy.minGroupDevices, rows: a.rows, epsilon: a.epsilon, spent: a.spentToday, dailyEpsilon: a.dailyEpsilon };
    } catch (e) {
      // The database does not exist until the aggregator's first start: say so, keep serving the rest.
      return { ...base, k: null, rows: [], error: (e as Error).message.split('\n', 1)[0]!.slice(0, 300) };
    }
  };
  // Private answers cover complete UTC days only: a question about today would be answered once (the
  // ledger's answer for the rest of the day) while its counts still grow.
  const lastDay = () => utcDay(now()) - (exact ? 0 : 1);
  const dau = () => answer(dauRequest(lastDay(), cfg.DASHBOARD_DAYS));
  const crash = () => answer(crashRequest(lastDay(), cfg.DASHBOARD_DAYS));
  const live = () => scraper.live();

  const page = renderPage({
    days: cfg.DASHBOARD_DAYS,
    answers: cfg.DASHBOARD_ANSWERS,
    database: cfg.ANALYST_DATABASE,
    scrapeIntervalMs: cfg.DASHBOARD_SCRAPE_INTERVAL_MS,
  });

  const send = (res: ServerResponse, status: number, type: string, body: string) => {
    res.writeHead(status, {
      'content-type': type,
      'content-length': Buffer.byteLength(body),
      'cache-control': 'no-store',
      // Everything the page needs is inline; nothing may be loaded from elsewhere.
      'content-security-policy': "default-src 'none'; script-src 'unsafe-inline'; style-src 'unsafe-inline'; connect-src 'self'; img-src 'self' data:",
      'x-content-type-options': 'nosniff',
    });
    res.end(body);
  };
  const json = (res: ServerResponse, v: unknown) => send(res, 200, 'application/json', JSON.stringify(v));

  const handle = async (req: IncomingMessage, res: ServerResponse) => {
    const path = (req.url ?? '/').split('?', 1)[0];
    if (req.method !== 'GET' && req.method !== 'HEAD') return send(res, 405, 'text/plain', 'method not allowed\n');
    switch (path) {
      case '/':
        return send(res, 200, 'text/html; charset=utf-8', page);
      case '/api/dau':
        return json(res, await dau());
      case '/api/crash':
        return json(res, await crash());
      case '/api/live':
        return json(res, live());
      case '/healthz':
        return json(res, { ok: true });
      default:
        return send(res, 404, 'text/plain', 'not found\n');
    }
  };
  const server = createServer((req, res) => {
    handle(req, res).catch((e: unknown) => {
      if (!res.headersSent) send(res, 500, 'text/plain', `dashboard error: ${(e as Error).message}\n`);
    });
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(cfg.DASHBOARD_PORT, cfg.DASHBOARD_HOST, () => resolve());
  });
  scraper.start();
  const port = (server.address() as AddressInfo).port;
  return {
    url: `http://${cfg.DASHBOARD_HOST}:${port}/`,
    port,
    server,
    scraper,
    dau,
    crash,
    live,
    async close() {
      await scraper.stop();
      server.closeAllConnections();
      await new Promise<void>((r) => server.close(() => r()));
      await store.close();
    },
  };
}
