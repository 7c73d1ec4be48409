/**
 * The dashboard's answers against the real ClickHouse 18.16 server: by default differentially private
 * (noisy counts with the standard deviation of their noise, complete days only, charged once per panel
 * and day in the privacy ledger: reloading the page costs nothing and shows the same numbers); exact on
 * request, each use logged.
 */
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dayToIso, utcDay, type FactRow } from '../aggregator/facts.ts';
import { openStore } from '../aggregator/store-open.ts';
import type { Store } from '../aggregator/store.ts';
import { createClickHouse, stackInfo, uniqueName } from '../testing/stack.ts';
import { loadDashboardConfig } from './config.ts';
import { startDashboard, type RunningDashboard } from './server.ts';

const database = uniqueName('dash_dp');
const today = utcDay(Date.now());
const key = (s: string) => Buffer.from(s.padEnd(16, '.').slice(0, 16));
const facts: FactRow[] = [];
// Devices a day: enough that the noisy device count of the crash report (epsilon 0.5 x 0.375, geometric
// noise) falls to 0, where the crash-free percentage is null, with a chance of about 1e-10 (with 30 it
// was about 0.002, and a run failed on it).
const DEVICES = 120;
for (const day of [today - 1, today]) {
  for (let i = 0; i < DEVICES; i++) {
    const base = { day, app_id: 'com.example.mail', app_version: '1.0', device_model: 'm1', os_version: '13', country: 'DE', daily_token: key(`${day}-${i}`) };
    facts.push({ ...base, kind: 'session_start', event_key: key(`s${day}-${i}`) });
    if (i < 3) facts.push({ ...base, kind: 'crash', event_key: key(`c${day}-${i}`) });
  }
}

let store: Store;
const dashboards: RunningDashboard[] = [];
const start = async (answers: 'private' | 'exact') => {
  const d = await startDashboard(
    loadDashboardConfig({
      DASHBOARD_PORT: '0',
      DASHBOARD_ANSWERS: answers,
      DASHBOARD_DAYS: '3',
      DASHBOARD_INGEST_METRICS_URLS: 'http://127.0.0.1:9/metrics',
      DASHBOARD_AGGREGATOR_METRICS_URLS: 'http://127.0.0.1:9/metrics',
      ANALYST_CLICKHOUSE_URL: stackInfo().clickhouseUrl,
      ANALYST_CLICKHOUSE_USER: 'default',
      ANALYST_DATABASE: database,
    }),
  );
  dashboards.push(d);
  return d;
};
const ledger = () => store.query<{ mode: string; epsilon: number }>(`SELECT mode, epsilon FROM ${database}.privacy_ledger ORDER BY at, mode`);

beforeAll(async () => {
  store = await openStore({
    kind: 'server',
    url: stackInfo().clickhouseUrl,
    user: 'default',
    password: '',
    chdbPath: '',
    insertTimeoutMs: 30_000,
    database,
    minGroupDevices: 5,
  });
  await store.migrate();
  await store.insertFacts(facts);
});

afterAll(async () => {
  for (const d of dashboards) await d.close();
  await store?.close();
  const c = createClickHouse();
  await c.command({ query: `DROP DATABASE IF EXISTS ${database}` });
  await c.close();
});

describe('dashboard answers', () => {
  it('private by default: noisy counts with their sd, complete days only, one charge per panel however often it is loaded', async () => {
    const d = await start('private');
    type Answer = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
    const get = async (p: string) => (await fetch(new URL(p, d.url))).json() as Promise<Answer>;
    const dau = await get('/api/dau');
    expect(dau).toMatchObject({ answers: 'private', k: 5, to: dayToIso(today - 1), epsilon: 0.5 });
    expect(dau.rows).toHaveLength(1);
    expect(dau.rows[0]).toMatchObject({ day: dayToIso(today - 1), app_id: 'com.example.mail', active_devices_sd: expect.any(Number) });
    expect(dau.rows[0].active_devices_sd).toBeGreaterThan(0);
    const crash = await get('/api/crash');
    expect(crash.rows[0]).toMatchObject({ crash_free_devices_pct_sd: expect.any(Number), crashed_device_days_sd: expect.any(Number) });
    // Sessions and crashes: the bounded counts (each device at most contribution_bound per cell-day), noisy.
    // (the rate is null when the noisy sessions fall to 0 or below: possible here, 120 sessions against a
    // noise sd of ~113 at this epsilon share and bound)
    expect(crash.rows[0]).toMatchObject({ sessions_sd: expect.any(Number), crashes_sd: expect.any(Number) });
    expect(crash.rows[0].sessions_sd).toBeGreaterThan(100);
    for (let i = 0; i < 3; i++) {
      expect((await get('/api/dau')).rows).toEqual(dau.rows);
      expect((await get('/api/crash')).rows).toEqual(crash.rows);
    }
    const l = await ledger();
    expect(l.filter((r) => r.mode === 'dp').map((r) => r.epsilon)).toEqual([0.5, 0.5]);
    expect(l.filter((r) => r.mode === 'repeat')).toHaveLength(6);
    // The page draws the whiskers from the *_sd columns.
    const html = await (await fetch(d.url)).text();
    expect(html).toContain('"answers":"private"');
    expect(html).toContain('function whisker(');
  });

  it('exact on request: exact sums including today, every load logged', async () => {
    const d = await start('exact');
    const before = (await ledger()).filter((r) => r.mode === 'exact').length;
    const dau = await d.dau();
    expect(dau.answers).toBe('exact');
    expect(dau.rows.map((r) => [r.day, r.active_devices])).toEqual([
      [dayToIso(today - 1), DEVICES],
      [dayToIso(today), DEVICES],
    ]);
    await d.crash();
    expect((await ledger()).filter((r) => r.mode === 'exact').length - before).toBe(2);
  });
});
