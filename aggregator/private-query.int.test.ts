/**
 * Differentially private answers under a per-analyst daily budget (private-query.ts), against the real
 * ClickHouse 18.16 server and chdb: the ledger row exists before an answer is returned (and without a
 * ledger there is no answer), a repeated question gets the same noisy answer and no charge, the budget
 * refuses the question that would pass it, and an exact answer is logged. Negative control for
 * repetition: fresh noise on every ask (what the ledger prevents) averages down to the exact count.
 * Each test uses its own ledger day (nowMs), so their charges do not mix.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClickHouse, stackInfo, uniqueName } from '../testing/stack.ts';
import { DAY_MS } from '../schemas/index.ts';
import { utcDay, type FactRow } from './facts.ts';
import { noisyRows, runLoggedExactReport, runPrivateReport } from './private-query.ts';
import { fetchReport, type QueryRequest } from './query.ts';
import { openStore } from './store-open.ts';
import type { Store } from './store.ts';

const K = 5;
const DAILY = 2;
const APP = 'com.example.mail';
const today = utcDay(Date.now());

const key = (s: string) => Buffer.from(s.padEnd(16, '.').slice(0, 16));
const FACTS: FactRow[] = [];
for (let i = 0; i < 40; i++) {
  const base = { day: today, app_id: APP, app_version: '1.0', device_model: 'm1', os_version: '13', country: 'DE', daily_token: key(`d${i}`) };
  FACTS.push({ ...base, kind: 'session_start', event_key: key(`s${i}`) });
  if (i < 6) FACTS.push({ ...base, kind: 'crash', event_key: key(`c${i}`) });
}
// One heavy phone: 50 more sessions and 20 more crashes the same day (device d0).
const HEAVY = { day: today, app_id: APP, app_version: '1.0', device_model: 'm1', os_version: '13', country: 'DE', daily_token: key('d0') };
for (let j = 0; j < 50; j++) FACTS.push({ ...HEAVY, kind: 'session_start', event_key: key(`hs${j}`) });
for (let j = 0; j < 20; j++) FACTS.push({ ...HEAVY, kind: 'crash', event_key: key(`hc${j}`) });

const req = (by: QueryRequest['by'], report: QueryRequest['report'] = 'dau'): QueryRequest => ({
  report,
  from: today,
  to: today,
  app: APP,
  by,
  format: 'json',
});
/** A ledger day of its own for each test, far from the others. */
const ledgerDay = (n: number) => Date.now() + n * 10 * DAY_MS;

describe.each(['server', 'embedded'] as const)('private answers on %s', (kind) => {
  let store: Store;
  let chdbDir: string | undefined;
  const database = uniqueName('dp');

  beforeAll(async () => {
    if (kind === 'embedded') chdbDir = mkdtempSync(path.join(tmpdir(), 'dp-chdb-'));
    store = await openStore({
      kind,
      url: stackInfo().clickhouseUrl,
      user: 'default',
      password: '',
      chdbPath: chdbDir ?? '',
      insertTimeoutMs: 30_000,
      database,
      minGroupDevices: K,
      dailyEpsilon: DAILY,
      defaultEpsilon: 0.5,
    });
    await store.migrate();
    await store.insertFacts(FACTS);
  }, 60_000);

  afterAll(async () => {
    if (kind === 'server') {
      const c = createClickHouse();
      await c.command({ query: `DROP DATABASE IF EXISTS ${database}` });
      await c.close();
    }
    await store?.close();
    if (chdbDir) rmSync(chdbDir, { recursive: true, force: true });
  });

  const ledgerRows = (nowMs: number) =>
    store.query<{ mode: string; epsilon: number; answer: string; analyst: string }>(
      `SELECT mode, epsilon, answer, analyst FROM ${database}.privacy_ledger WHERE day = toDate('${new Date(nowMs).toISOString().slice(0, 10)}') ORDER BY at, mode`,
    );

  it('answers with noise, charges the default epsilon, and the ledger holds the answer', async () => {
    const now = ledgerDay(1);
    const a = await runPrivateReport(store, req(['day', 'app_id']), undefined, { nowMs: now });
    expect(a.epsilon).toBe(0.5);
    expect(a.spentToday).toBe(0.5);
    expect(a.repeated).toBe(false);
    expect(a.rows).toHaveLength(1);
    expect(a.rows[0]).toMatchObject({ app_id: APP, active_devices_sd: expect.closeTo(2.8, 1) });
    expect(Math.abs(Number(a.rows[0]!.active_devices) - 40)).toBeLessThan(40);
    const l = await ledgerRows(now);
    expect(l.map((r) => [r.mode, r.epsilon])).toEqual([['dp', 0.5]]);
    expect(JSON.parse(l[0]!.answer)).toEqual(a.rows);
    expect(l[0]!.analyst).toBe(a.analyst);
  });

  it('a repeated question (dimensions in any order) gets the same noisy answer and is not charged again', async () => {
    const now = ledgerDay(2);
    const first = await runPrivateReport(store, req(['day', 'app_id'], 'crash-rate'), 1, { nowMs: now });
    const answers = [];
    for (let i = 0; i < 20; i++)
      answers.push(await runPrivateReport(store, req(i % 2 ? ['app_id', 'day'] : ['day', 'app_id'], 'crash-rate'), 1, { nowMs: now }));
    for (const a of answers) {
      expect(a.repeated).toBe(true);
      expect(a.rows).toEqual(first.rows);
      expect(a.spentToday).toBe(1);
    }
    // The average of the answers is the first answer: nothing to average away.
    const mean = answers.reduce((s, a) => s + Number(a.rows[0]!.active_devices), 0) / answers.length;
    expect(mean).toBe(Number(first.rows[0]!.active_devices));
    expect((await ledgerRows(now)).filter((r) => r.mode === 'repeat')).toHaveLength(20);
  });

  it('negative control: fresh noise on every ask averages down to the exact count', async () => {
    const exact = await fetchReport(store, req(['day', 'app_id']));
    const n = 400;
    let sum = 0;
    for (let i = 0; i < n; i++) sum += Number(noisyRows(req(['day', 'app_id']), exact, 0.5, 5)[0]!.active_devices);
    expect(Math.round(sum / n)).toBe(40);
  });

  it('refuses the question that would pass the daily budget, says why, and logs the refusal', async () => {
    const now = ledgerDay(3);
    const asked: number[] = [];
    let refused: (Error & { code?: string }) | undefined;
    for (let i = 0; i < 10 && !refused; i++) {
      try {
        // Distinct questions: different dimension sets and reports.
        const by = ([['day'], ['app_id'], ['app_version'], ['device_model'], ['os_version'], ['country'], []] as QueryRequest['by'][])[i % 7]!;
        await runPrivateReport(store, req(by), 0.5, { nowMs: now });
        asked.push(i);
      } catch (e) {
        refused = e as Error & { code?: string };
      }
    }
    expect(asked).toHaveLength(DAILY / 0.5);
    expect(refused?.code).toBe('AGG_PRIVACY_BUDGET_SPENT');
    expect(refused?.message).toMatch(/privacy budget spent: .* has used 2 of 2 for \d{4}-\d\d-\d\d \(UTC\); this question needs 0\.5/);
    const l = await ledgerRows(now);
    expect(l.filter((r) => r.mode === 'dp').reduce((s, r) => s + r.epsilon, 0)).toBe(DAILY);
    expect(l.filter((r) => r.mode === 'refused')).toHaveLength(1);
    // An epsilon above the whole budget is a bad argument, not a charge.
    await expect(runPrivateReport(store, req(['day']), DAILY + 1, { nowMs: ledgerDay(4) })).rejects.toMatchObject({ code: 'AGG_BAD_EPSILON' });
  });

  it('no ledger, no answer: the ledger row is written before the answer is returned', async () => {
    const broken = { database, query: store.query.bind(store), command: async () => Promise.reject(new Error('ledger unavailable')) };
    await expect(runPrivateReport(broken, req(['day', 'app_id']), 0.5, { nowMs: ledgerDay(5) })).rejects.toThrow(/ledger unavailable/);
    await expect(runLoggedExactReport(broken, req(['day', 'app_id']), { nowMs: ledgerDay(5) })).rejects.toThrow(/ledger unavailable/);
  });

  it('one device adds at most the contribution bound to the sessions and crashes the private path releases', async () => {
    // Exact: 40 + 50 sessions, 6 + 20 crashes. Bounded (5 per device and cell-day): 40 + 4 and 6 + 4.
    const [raw] = await fetchReport(store, req(['day', 'app_id'], 'crash-rate'));
    expect([Number(raw!.sessions), Number(raw!.crashes)]).toEqual([90, 26]);
    expect(Number(raw!.bounded_sessions)).toBe(44);
    expect(Number(raw!.bounded_crashes)).toBe(10);
    // The private answer is noise around the bounded counts, with the noise of sensitivity 5.
    const a = await runPrivateReport(store, req(['day', 'app_id'], 'crash-rate'), DAILY, { nowMs: ledgerDay(7) });
    const row = a.rows[0]!;
    expect(Number(row.sessions_sd)).toBeCloseTo(Math.sqrt(2 * Math.exp(-0.05)) / (1 - Math.exp(-0.05)), 2); // epsilon 2 x 0.125 / bound 5
    expect(Math.abs(Number(row.sessions) - 44)).toBeLessThan(12 * Number(row.sessions_sd));
    // The rate comes from the noisy counts (none when the noisy sessions fall to 0 or below).
    if (Number(row.sessions) > 0) expect(row.crashes_per_1000_sessions).toBeCloseTo((1000 * Math.max(0, Number(row.crashes))) / Number(row.sessions), 2);
    else expect(row.crashes_per_1000_sessions).toBeNull();
    // Negative control: the exact counts move by 50 sessions for one phone; the bound is what keeps the
    // noise's calibration true.
    expect(Number(raw!.sessions) - Number(raw!.bounded_sessions)).toBe(46);
  });

  it('an exact answer is never unlogged: without a ledger it needs the server to log the query', async () => {
    // A database with no privacy_ledger (and no views: the check comes first).
    const noLedger = { database: 'system', query: store.query.bind(store), command: store.command.bind(store) };
    const err = await runLoggedExactReport(noLedger, req(['day'])).then(
      () => undefined,
      (e: Error & { code?: string }) => e,
    );
    const [{ value } = { value: '' }] = await store.query<{ value: string }>(`SELECT value FROM system.settings WHERE name = 'log_queries'`);
    if (value === '1') {
      // chdb logs every query: the check passes and the missing views are what fails.
      expect(err?.message).toMatch(/crash_rates/);
    } else {
      // The plain 18.16 server does not log queries by default: refused, with the reason.
      expect(err).toMatchObject({ code: 'AGG_EXACT_UNLOGGED' });
      expect(err?.message).toMatch(/no privacy_ledger and the server does not log this user's queries/);
    }
    await expect(runPrivateReport(noLedger, req(['day']), 0.5)).rejects.toMatchObject({ code: 'AGG_NO_LEDGER' });
  });

  it('an exact answer is logged with its question', async () => {
    const now = ledgerDay(6);
    const rows = await runLoggedExactReport(store, req(['day', 'app_id'], 'crash-rate'), { nowMs: now });
    expect(rows[0]).toMatchObject({ active_devices: 40, crashed_devices: 6 });
    const l = await ledgerRows(now);
    expect(l.map((r) => [r.mode, r.epsilon])).toEqual([['exact', 0]]);
  });
});
