/**
 * `npm run bench:privacy`: a curious analyst against the query command's two paths, on the local
 * ClickHouse server (aggregator/private-query.ts, aggregator/README.md "Differential privacy").
 *
 * The target is a one-device group inside a released cell: on day D3 exactly one phone (T) of the cell
 * app mail x version 1.0 crashed. k-suppression applies to the cell's active devices (12 >= k), so it
 * does not hide that one crashed device. The analyst tries three ways to learn T's crash:
 * - range differencing: crashed device-days over [D1..D3] minus over [D1..D2], for version 1.0;
 * - roll-up differencing: crashed devices of the app on D3 minus the other version's row;
 * - repetition: the cell's question asked again and again, answers averaged.
 * On the exact path (`--exact`, the privileged role: the negative control) each attack recovers the
 * crash exactly. On the analyst's differentially private path each answer is noisy, and repetition
 * returns the ledger's answer, so the error stays. Each trial asks as a fresh analyst-day (its own
 * budget), as a new analyst would.
 *
 * Also: how many questions at the default epsilon the daily budget allows, and the relative error of
 * daily active devices for groups over 1,000 devices at the default epsilon. Last line: JSON.
 * Knobs: BENCH_PRIVACY_TRIALS (default 60), BENCH_PRIVACY_REPEATS (10).
 */
import { DAY_MS } from '../schemas/index.ts';
import { utcDay, type FactRow } from '../aggregator/facts.ts';
import { DEFAULT_DAILY_EPSILON, DEFAULT_EPSILON } from '../aggregator/migrate.ts';
import { runLoggedExactReport, runPrivateReport, type PrivateOptions } from '../aggregator/private-query.ts';
import type { QueryRequest, ReportRow } from '../aggregator/query.ts';
import { openStore } from '../aggregator/store-open.ts';
import type { Store } from '../aggregator/store.ts';
import { deleteWhatThisFileMade, trackNamesOfThisProcess } from '../testing/cleanup.ts';
import { stackInfo, uniqueName } from '../testing/stack.ts';

const TRIALS = Number(process.env.BENCH_PRIVACY_TRIALS ?? 60);
const REPEATS = Number(process.env.BENCH_PRIVACY_REPEATS ?? 10);
const K = 5;
const MAIL = 'com.example.mail';
const today = utcDay(Date.now());
const [D1, D2, D3] = [today - 2, today - 1, today];

let seq = 0;
const key = (s: string) => Buffer.from(s.padEnd(16, '.').slice(0, 16));
function cell(day: number, app: string, version: string, n: number, crashed = 0): FactRow[] {
  const rows: FactRow[] = [];
  for (let i = 0; i < n; i++) {
    const s = ++seq;
    const base = { day, app_id: app, app_version: version, device_model: 'm1', os_version: '13', country: 'DE', daily_token: key(`d${s}`) };
    rows.push({ ...base, kind: 'session_start', event_key: key(`s${s}`) });
    if (i < crashed) rows.push({ ...base, kind: 'crash', event_key: key(`c${s}`) });
  }
  return rows;
}

/** Sizes of the big groups (one cell each, on D3), for the relative error at the default epsilon. */
const BIG = [1000, 1200, 1500, 1800, 2200, 2600, 3000, 3500, 4200, 5000];

const facts: FactRow[] = [
  ...cell(D1, MAIL, '1.0', 12),
  ...cell(D2, MAIL, '1.0', 12),
  ...cell(D3, MAIL, '1.0', 12, 1), // T: the one crashed phone
  ...cell(D3, MAIL, '2.0', 20),
  ...BIG.flatMap((n, i) => cell(D3, `com.example.big${i}`, '1.0', n)),
];

const q = (report: QueryRequest['report'], from: number, to: number, by: QueryRequest['by'], app?: string): QueryRequest => ({
  report,
  from,
  to,
  by,
  format: 'json',
  ...(app ? { app } : {}),
});
const crashedOf = (rows: readonly ReportRow[], pick: (r: ReportRow) => boolean) => {
  const r = rows.find(pick);
  return Number(r?.crashed_device_days ?? r?.crashed_devices ?? 0);
};

type Ask = (req: QueryRequest) => Promise<ReportRow[]>;

/** The three attacks; each returns its estimate of T's crashed-device count (truth: 1). */
async function attacks(ask: Ask): Promise<{ range: number; rollup: number; repetition: number }> {
  const wide = await ask(q('crash-rate', D1, D3, ['app_version'], MAIL));
  const narrow = await ask(q('crash-rate', D1, D2, ['app_version'], MAIL));
  const range = crashedOf(wide, (r) => r.app_version === '1.0') - crashedOf(narrow, (r) => r.app_version === '1.0');
  const app = await ask(q('crash-rate', D3, D3, ['day', 'app_id'], MAIL));
  const versions = await ask(q('crash-rate', D3, D3, ['day', 'app_id', 'app_version'], MAIL));
  const rollup = crashedOf(app, () => true) - crashedOf(versions, (r) => r.app_version === '2.0');
  let sum = 0;
  for (let i = 0; i < REPEATS; i++) sum += crashedOf(await ask(q('crash-rate', D3, D3, ['day', 'app_version'], MAIL)), (r) => r.app_version === '1.0');
  return { range, rollup, repetition: sum / REPEATS };
}

const pct = (xs: number[], p: number) => {
  const s = [...xs].sort((a, b) => a - b);
  return s[Math.min(s.length - 1, Math.max(0, Math.ceil((p / 100) * s.length) - 1))]!;
};
const r4 = (x: number) => Math.round(x * 10_000) / 10_000;

async function main(): Promise<void> {
  trackNamesOfThisProcess();
  const s = stackInfo();
  const database = uniqueName('bench_privacy');
  let store: Store | undefined;
  try {
    store = await openStore({
      kind: 'server',
      url: s.clickhouseUrl,
      user: 'default',
      password: '',
      chdbPath: '',
      insertTimeoutMs: 60_000,
      database,
      minGroupDevices: K,
    });
    await store.migrate();
    await store.insertFacts(facts);
    const st = store;
    console.log(
      `population: ${facts.length} facts; target: 1 crashed phone in a released cell of 12; ${BIG.length} groups of ${BIG[0]}-${BIG.at(-1)} devices; k ${K}, default epsilon ${DEFAULT_EPSILON}, daily budget ${DEFAULT_DAILY_EPSILON}`,
    );

    // Negative control: the exact, privileged path.
    const exact = await attacks((req) => runLoggedExactReport(st, req));
    const exactRecovered = exact.range === 1 && exact.rollup === 1 && exact.repetition === 1;
    console.log(`exact path: range ${exact.range}, roll-up ${exact.rollup}, repetition ${exact.repetition} (truth 1): recovered ${exactRecovered}`);

    // The analyst's path, one fresh analyst-day per trial.
    const errors: Record<'range' | 'rollup' | 'repetition', number[]> = { range: [], rollup: [], repetition: [] };
    let recovered = 0;
    const t0 = Date.now();
    for (let t = 0; t < TRIALS; t++) {
      const o: PrivateOptions = { nowMs: Date.now() + (t + 1) * 3 * DAY_MS };
      const est = await attacks(async (req) => (await runPrivateReport(st, req, undefined, o)).rows);
      for (const k of ['range', 'rollup', 'repetition'] as const) errors[k].push(Math.abs(est[k] - 1));
      if (Math.round(est.range) === 1 && Math.round(est.rollup) === 1 && Math.round(est.repetition) === 1) recovered++;
    }
    const all = [...errors.range, ...errors.rollup, ...errors.repetition];
    console.log(
      `private path, ${TRIALS} trials (${((Date.now() - t0) / TRIALS).toFixed(0)} ms each): |estimate - truth| p50 range ${pct(errors.range, 50)}, roll-up ${pct(errors.rollup, 50)}, repetition ${pct(errors.repetition, 50)}; all three right in ${recovered} trials`,
    );

    // Questions the default budget allows in one day.
    const budgetDay: PrivateOptions = { nowMs: Date.now() + (TRIALS + 5) * 3 * DAY_MS };
    let answered = 0;
    for (let i = 0; i < 1000; i++) {
      try {
        await runPrivateReport(st, q('dau', D3 - i, D3, ['day']), undefined, budgetDay);
        answered++;
      } catch (e) {
        if ((e as { code?: string }).code !== 'AGG_PRIVACY_BUDGET_SPENT') throw e;
        console.log(`budget: ${answered} questions at epsilon ${DEFAULT_EPSILON}, then: ${(e as Error).message}`);
        break;
      }
    }

    // Relative error of daily actives for groups over 1,000 devices, at the default epsilon.
    const rel: number[] = [];
    for (let t = 0; t < TRIALS; t++) {
      const o: PrivateOptions = { nowMs: Date.now() + (TRIALS + 10 + t) * 3 * DAY_MS };
      const rows = (await runPrivateReport(st, q('dau', D3, D3, ['app_id']), undefined, o)).rows;
      BIG.forEach((n, i) => {
        const r = rows.find((x) => x.app_id === `com.example.big${i}`);
        rel.push(Math.abs(Number(r?.device_days) - n) / n);
      });
    }
    const p95 = pct(rel, 95);
    console.log(`daily actives, groups of ${BIG[0]}+ devices, ${rel.length} answers: relative error p50 ${r4(pct(rel, 50))}, p95 ${r4(p95)}`);

    console.log(
      JSON.stringify({
        exact_attack_recovered: exactRecovered,
        dp_attack_abs_error_p50: pct(all, 50),
        dp_attack_abs_error_p50_range: pct(errors.range, 50),
        dp_attack_abs_error_p50_rollup: pct(errors.rollup, 50),
        dp_attack_abs_error_p50_repetition: pct(errors.repetition, 50),
        dp_attack_all_recovered_share: r4(recovered / TRIALS),
        queries_until_budget_refusal: answered,
        dau_rel_error_p95_groups_over_1000: r4(p95),
        default_epsilon: DEFAULT_EPSILON,
        daily_epsilon: DEFAULT_DAILY_EPSILON,
        k: K,
        trials: TRIALS,
        repeats: REPEATS,
        clickhouse_version: s.clickhouseVersion ?? null,
      }),
    );
  } finally {
    await store?.close();
    const left = await deleteWhatThisFileMade();
    for (const p of left.problems) console.error(`cleanup: ${p}`);
  }
}

main().then(
  () => process.exit(0),
  (err: unknown) => {
    console.error(err);
    process.exit(1);
  },
);
