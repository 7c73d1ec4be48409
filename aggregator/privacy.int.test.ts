/**
 * A curious analyst against the released views (aggregator/migrations/R_analyst_views.sql), on the real
 * ClickHouse 18.16 server and on chdb: one phone is alone in its group on one day, and the analyst
 * tries to recover it from answers that each look k-anonymous.
 *
 * - Range differencing: the group had >= k devices on an earlier day, so it is shown for any range;
 *   the range [D1..D3] minus the range [D1..D2] is day D3 of the group.
 * - Roll-up differencing: a roll-up per day and app minus the visible finer rows of that day and app
 *   is what the finer rows suppressed.
 *
 * With suppression per released cell before any sum (the query command and the views today), both
 * differences are 0. Negative control: the same attacks against the previous shape (a group shown when
 * any day of the range reached k, then every day summed; roll-ups merging the raw states and applying k
 * to the rolled-up group), whose SQL is kept below, recover the phone exactly.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createClickHouse, stackInfo, uniqueName } from '../testing/stack.ts';
import { dayToIso, utcDay, type FactRow } from './facts.ts';
import { runReport, sqlString, type QueryRequest } from './query.ts';
import { openStore } from './store-open.ts';
import type { Store } from './store.ts';

const K = 5;
const APP = 'com.example.mail';
const today = utcDay(Date.now());
const [D1, D2, D3] = [today - 2, today - 1, today];

let seq = 0;
const key = (s: string) => Buffer.from(s.padEnd(16, '.').slice(0, 16));
/** `n` devices (fresh daily tokens) of one cell on one day, each with one session; `crashed` of them crash. */
function cell(day: number, version: string, model: string, n: number, crashed = 0): FactRow[] {
  const rows: FactRow[] = [];
  for (let i = 0; i < n; i++) {
    const token = key(`d${++seq}`);
    const base = { day, app_id: APP, app_version: version, device_model: model, os_version: '13', country: 'DE', daily_token: token };
    rows.push({ ...base, kind: 'session_start', event_key: key(`s${seq}`) });
    if (i < crashed) rows.push({ ...base, kind: 'crash', event_key: key(`c${seq}`) });
  }
  return rows;
}

// Version 2.0 has 6 devices on D1 and D2, then ONE on D3 (the target, who crashed). Version 1.0 is a big
// group every day; on D3 a rare model of 1.0 holds the target of the roll-up attack: one phone, crashed.
const FACTS: FactRow[] = [
  ...cell(D1, '1.0', 'm1', 12),
  ...cell(D2, '1.0', 'm1', 12),
  ...cell(D3, '1.0', 'm1', 12),
  ...cell(D1, '2.0', 'm1', 6),
  ...cell(D2, '2.0', 'm1', 6),
  ...cell(D3, '2.0', 'm1', 1, 1),
  ...cell(D3, '1.0', 'rare-model', 1, 1),
];

type Read = (sql: string) => Promise<Array<Record<string, string | number>>>;

/** The query command's SQL before suppression moved to the released cells (the negative control). */
function previousReportSql(db: string, from: number, to: number): string {
  return `SELECT * FROM (
  SELECT app_version, sum(devices) AS device_days, max(devices) AS max_daily_devices
  FROM (
    SELECT app_version, day, uniqExactMerge(devices) AS devices FROM ${db}.daily_agg
    WHERE day >= toDate(${sqlString(dayToIso(from))}) AND day <= toDate(${sqlString(dayToIso(to))}) AND app_id = ${sqlString(APP)}
    GROUP BY app_version, day
  )
  GROUP BY app_version
)
WHERE max_daily_devices >= ${K}`;
}

/** The previous roll-up view's body: states merged per day and app, k applied to the rolled-up group. */
function previousRollupSql(db: string, day: number): string {
  return `SELECT active_devices, crashed_devices FROM (
  SELECT day, app_id, uniqExactMerge(devices) AS active_devices, uniqExactMerge(crashed_devices) AS crashed_devices
  FROM ${db}.daily_agg GROUP BY day, app_id
) WHERE active_devices >= ${K} AND day = toDate(${sqlString(dayToIso(day))}) AND app_id = ${sqlString(APP)}`;
}

const req = (from: number, to: number, by: QueryRequest['by'], report: QueryRequest['report'] = 'dau'): QueryRequest => ({
  report,
  from,
  to,
  app: APP,
  by,
  format: 'json',
});

describe.each(['server', 'embedded'] as const)('differencing attacks on %s', (kind) => {
  let store: Store;
  let chdbDir: string | undefined;
  const database = uniqueName('privacy');

  beforeAll(async () => {
    if (kind === 'embedded') chdbDir = mkdtempSync(path.join(tmpdir(), 'privacy-chdb-'));
    store = await openStore({
      kind,
      url: stackInfo().clickhouseUrl,
      user: 'default',
      password: '',
      chdbPath: chdbDir ?? '',
      insertTimeoutMs: 30_000,
      database,
      minGroupDevices: K,
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

  const read: Read = (sql) => store.query(sql);
  const devicesOf = (rows: ReadonlyArray<Record<string, unknown>>, version: string) => Number(rows.find((r) => r.app_version === version)?.device_days ?? 0);

  it('range differencing recovers the lone phone of day D3 from the previous query shape (negative control)', async () => {
    const wide = await read(previousReportSql(database, D1, D3));
    const narrow = await read(previousReportSql(database, D1, D2));
    expect(devicesOf(wide, '2.0') - devicesOf(narrow, '2.0')).toBe(1);
  });

  it('range differencing through the query command recovers nothing: D3 of version 2.0 is never in a sum', async () => {
    const wide = await runReport(store, req(D1, D3, ['app_version']));
    const narrow = await runReport(store, req(D1, D2, ['app_version']));
    expect(devicesOf(wide, '2.0')).toBe(12);
    expect(devicesOf(wide, '2.0') - devicesOf(narrow, '2.0')).toBe(0);
    // Every other split of the same range agrees: per day, D3 shows no version 2.0 at all.
    const perDay = await runReport(store, req(D1, D3, ['day', 'app_version']));
    expect(perDay.filter((r) => r.app_version === '2.0').map((r) => [r.day, r.active_devices])).toEqual([
      [dayToIso(D1), 6],
      [dayToIso(D2), 6],
    ]);
  });

  it('roll-up differencing recovers the lone crashed phone of a rare model from the previous roll-up view (negative control)', async () => {
    const [rollup] = await read(previousRollupSql(database, D3));
    const visible = await runReport(store, req(D3, D3, ['day', 'app_id', 'app_version', 'device_model', 'os_version', 'country'], 'crash-rate'));
    const sum = (c: string) => visible.reduce((s, r) => s + Number(r[c]), 0);
    expect(Number(rollup!.active_devices) - sum('active_devices')).toBe(2); // the lone 2.0 phone and the rare model
    expect(Number(rollup!.crashed_devices) - sum('crashed_devices')).toBe(2); // ... and both crashed
  });

  it('roll-up differencing through the views and the query command recovers nothing', async () => {
    const finest = req(D3, D3, ['day', 'app_id', 'app_version', 'device_model', 'os_version', 'country'], 'crash-rate');
    const visible = await runReport(store, finest);
    const sum = (c: string) => visible.reduce((s, r) => s + Number(r[c]), 0);
    const [viaCommand] = await runReport(store, req(D3, D3, ['day', 'app_id'], 'crash-rate'));
    const [viaView] = await read(
      `SELECT active_devices, crashed_devices FROM ${database}.crash_rates_by_app_version WHERE day = toDate(${sqlString(dayToIso(D3))}) AND app_version = '1.0'`,
    );
    const [dauView] = await read(`SELECT active_devices FROM ${database}.daily_active_devices_by_app WHERE day = toDate(${sqlString(dayToIso(D3))})`);
    expect(sum('active_devices')).toBe(12);
    expect(Number(viaCommand!.active_devices) - sum('active_devices')).toBe(0);
    expect(Number(viaCommand!.crashed_devices) - sum('crashed_devices')).toBe(0);
    expect(Number(dauView!.active_devices) - sum('active_devices')).toBe(0);
    expect(Number(viaView!.active_devices)).toBe(12);
    expect(Number(viaView!.crashed_devices)).toBe(0);
    // The total over everything (--by none) is the same sum: no coarser answer sees more.
    const [total] = await runReport(store, req(D1, D3, [], 'crash-rate'));
    expect(total).toMatchObject({ device_days: 12 * 3 + 12, crashed_device_days: 0 });
  });

  it('the threshold is one setting, read from the views', async () => {
    expect(await read(`SELECT min_group_devices FROM ${database}.release_policy`)).toEqual([{ min_group_devices: K }]);
  });
});
