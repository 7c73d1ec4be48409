/**
 * The dashboard in a real browser (Debian's chromium driven by playwright-core), fed by a short demo run
 * through the real stack: two ingest workers, Kafka, the aggregator, ClickHouse. The charts must show
 * exactly the numbers the simulated devices' own ledger gives (plain sets over what ingest answered
 * "accepted") and the query command's code gives; the live panel must show the ingest counters, a
 * throughput and a reject rate while traffic flows, and a consumer lag. A screenshot is written to
 * .local/dashboard.png.
 */
import { existsSync, mkdirSync, mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { utcDay } from '../aggregator/facts.ts';
import type { ReportRow } from '../aggregator/query.ts';
import { REPO_ROOT } from '../stack/config.ts';
import { uniqueName } from '../testing/stack.ts';
import { crashRequest, dauRequest } from '../dashboard/server.ts';
import { startDemo, type DemoHandle } from './demo.ts';
import { Population } from './population.ts';
import { runSimulator } from './simulator.ts';

const CHROMIUM = '/usr/bin/chromium';
// Released cells are one day x app x version x model x OS x country (aggregator/README.md, "Privacy of
// the answers"): the 400 phones of this short run spread over ~2,500 such cells, so with k = 5 nothing
// would be drawn. This test is about the page drawing what the query code answers, so it releases
// every cell; suppression is tested in aggregator/privacy.int.test.ts.
const K = 1;
const DASHBOARD_DAYS = 7; // what startDemo configures

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

/**
 * The few DOM members the page functions below use: this file is compiled without the DOM lib (the
 * project is Node code), so they are described here.
 */
interface PageElement {
  dataset: Record<string, string>;
  textContent: string | null;
  nextElementSibling: PageElement | null;
  getAttribute(name: string): string | null;
}
interface PageGlobals {
  document: { getElementById(id: string): PageElement | null; querySelector(selector: string): PageElement | null };
}

async function bars(page: Page, selector: string): Promise<Array<Record<string, string>>> {
  // Runs in the page.
  return page.$$eval(selector, (els: PageElement[]) => els.map((e) => ({ ...e.dataset, label: String(e.nextElementSibling?.textContent ?? '').trim() })));
}

/**
 * Waits until element `id`'s data-`attr` equals `v` (eq) or is a number above it (gt). Playwright
 * serialises the page function's source, so it is self-contained and gets its inputs as an argument
 * (the page's CSP forbids string eval); `globalThis` because this file is compiled without the DOM lib.
 */
function waitData(page: Page, id: string, attr: string, op: 'eq' | 'gt', v: string | number, timeout: number) {
  return page.waitForFunction(
    ([id, attr, op, v]) => {
      const x = (globalThis as unknown as PageGlobals).document.getElementById(id)?.dataset[attr];
      return op === 'eq' ? x === v : x !== undefined && x !== '' && Number(x) > Number(v);
    },
    [id, attr, op, String(v)] as const,
    { timeout },
  );
}

const fmt = (v: number, digits: number) => v.toLocaleString('en-US', { maximumFractionDigits: digits, minimumFractionDigits: 0 });

describe('dashboard in a headless browser, fed by a demo run through the real stack', () => {
  let demo: DemoHandle;
  let ctx: BrowserContext;
  let page: Page;
  let userDir: string;
  const external: string[] = [];
  let ingestPorts: [number, number];

  beforeAll(async () => {
    if (!existsSync(CHROMIUM)) throw new Error(`${CHROMIUM} is missing: apt-get install -y chromium (.ci/run installs it)`);
    ingestPorts = [await freePort(), await freePort()];
    demo = await startDemo({
      durationS: 8,
      rate: 600,
      devices: 400,
      seed: 42,
      ports: { ingest: ingestPorts, aggregator: await freePort(), dashboard: await freePort() },
      minGroupDevices: K,
      runId: uniqueName('dashtest'),
      log: () => {},
    });
    userDir = mkdtempSync(path.join(os.tmpdir(), 'chromium-profile-'));
    ctx = await chromium.launchPersistentContext(userDir, {
      executablePath: CHROMIUM,
      headless: true,
      viewport: { width: 1280, height: 1000 },
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-quic',
        '--no-first-run',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
      ],
    });
    page = ctx.pages()[0] ?? (await ctx.newPage());
    page.on('request', (r) => {
      if (!r.url().startsWith(demo.report.urls.dashboard)) external.push(r.url());
    });
    await page.goto(demo.report.urls.dashboard);
    for (const id of ['dau', 'crash-free', 'crashes-per-1000', 'live']) {
      await page.waitForSelector(`#${id}[data-state="ready"]`, { timeout: 20_000 });
    }
  }, 170_000);

  afterAll(async () => {
    await ctx?.close().catch(() => {});
    if (userDir) rmSync(userDir, { recursive: true, force: true });
    const c = await demo?.stop();
    expect(c?.problems ?? []).toEqual([]);
  }, 90_000);

  it("the demo itself found ClickHouse equal to the devices' own count", () => {
    expect(demo.report.caughtUp).toBe(true);
    expect(demo.report.ledger.tally.surprises).toEqual([]);
    expect(demo.report.dau.rows.length).toBeGreaterThan(3);
    expect(demo.report.matches).toBe(true);
  });

  it("daily active devices: one bar per day x app, each with the oracle's number, shown as text", async () => {
    const today = utcDay(Date.now());
    const oracle = demo.report.ledger.oracle(dauRequest(today, DASHBOARD_DAYS), K, { today, maxLatenessDays: 3 });
    const fromQuery = (await demo.dashboard.dau()).rows;
    const key = (r: ReportRow | Record<string, string>) => `${r.day}|${r.app_id ?? r.app}`;
    const expected = new Map(oracle.map((r) => [key(r), Number(r.active_devices)]));
    expect(new Map(fromQuery.map((r) => [key(r), Number(r.active_devices)]))).toEqual(expected);
    const drawn = await bars(page, '#dau-chart rect.bar');
    expect(new Map(drawn.map((b) => [`${b.day}|${b.app}`, Number(b.value)]))).toEqual(expected);
    for (const b of drawn) expect(b.label).toBe(fmt(Number(b.value), 0));
    // Several days (late batches) and all three apps are on the chart.
    expect(new Set(drawn.map((b) => b.day)).size).toBeGreaterThanOrEqual(2);
    expect(new Set(drawn.map((b) => b.app)).size).toBe(3);
  });

  it('crash-free devices % and crashes per 1,000 sessions by app version match the oracle', async () => {
    const today = utcDay(Date.now());
    const oracle = demo.report.ledger.oracle(crashRequest(today, DASHBOARD_DAYS), K, { today, maxLatenessDays: 3 });
    const byVersion = (rows: readonly ReportRow[], col: string) =>
      new Map(rows.filter((r) => r[col] !== null).map((r) => [`${r.app_id}|${r.app_version}`, Number(r[col])]));
    expect(byVersion((await demo.dashboard.crash()).rows, 'crash_free_devices_pct')).toEqual(byVersion(oracle, 'crash_free_devices_pct'));
    for (const [chart, col] of [
      ['crash-free', 'crash_free_devices_pct'],
      ['crashes-per-1000', 'crashes_per_1000_sessions'],
    ] as const) {
      const drawn = await bars(page, `#${chart}-chart rect.bar`);
      expect(new Map(drawn.map((b) => [`${b.app}|${b.version}`, Number(b.value)]))).toEqual(byVersion(oracle, col));
      for (const b of drawn) expect(b.label).toBe(fmt(Number(b.value), 2) + (chart === 'crash-free' ? '%' : ''));
    }
    // The deliberately bad release (12 % of sessions crash) stands out against the good one (0.5 %).
    const cpk = byVersion(oracle, 'crashes_per_1000_sessions');
    expect(cpk.get('com.example.mail|4.3.0-beta')!).toBeGreaterThan(cpk.get('com.example.mail|4.2.0')!);
  });

  it('live panel: ingest counters, consumer lag, and throughput / reject rate while traffic flows; screenshot', async () => {
    // Counters: the page shows what the two workers' /metrics say (polled: one scrape interval behind).
    const expectedAccepted = demo.report.ingest.reduce((s, w) => s + w.accepted, 0);
    expect(expectedAccepted).toBeGreaterThan(1000);
    await waitData(page, 'live-totals', 'accepted', 'eq', expectedAccepted, 10_000);
    await waitData(page, 'live-lag', 'value', 'eq', 0, 15_000);

    // More traffic now, so the rates are measured while it flows.
    const burst = runSimulator({
      urls: ingestPorts.map((p) => `http://127.0.0.1:${p}`),
      population: new Population({ devices: 300, seed: 77, badEventShare: 0.1 }),
      ratePerSec: 500,
      durationMs: 9000,
    });
    await waitData(page, 'live-throughput', 'value', 'gt', 50, 15_000);
    await waitData(page, 'live-reject-rate', 'value', 'gt', 0, 15_000);
    const live = await page.evaluate(() => {
      const doc = (globalThis as unknown as PageGlobals).document;
      return {
        throughput: String(doc.getElementById('live-throughput')!.textContent),
        reject: String(doc.getElementById('live-reject-rate')!.textContent),
        spark: String(doc.querySelector('#spark-throughput polyline')?.getAttribute('points') ?? ''),
      };
    });
    expect(Number(live.throughput.replace(/,/g, ''))).toBeGreaterThan(50);
    expect(Number(live.reject)).toBeGreaterThan(0);
    expect(live.spark.split(' ').length).toBeGreaterThan(2);
    await sleep(1500);
    mkdirSync(path.join(REPO_ROOT, '.local'), { recursive: true });
    await page.screenshot({ path: path.join(REPO_ROOT, '.local', 'dashboard.png'), fullPage: true });
    const b = await burst;
    expect(b.ledger.tally.eventsAccepted).toBeGreaterThan(0);
    // The page loaded nothing from anywhere but its own server.
    expect(external).toEqual([]);
  }, 60_000);
});
