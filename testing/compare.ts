/** Runs the analyst reports against a store and returns them beside the oracle's answers. */
import { utcDay } from '../aggregator/facts.ts';
import { runReport, type Dimension, type QueryRequest, type ReportRow } from '../aggregator/query.ts';
import type { Store } from '../aggregator/store.ts';
import type { EventFact } from '../schemas/contract.ts';
import { oracleReport } from './population.ts';

/** Roll-ups every exactness test checks: per day, per app, finest grain (k bites), and one total. */
export const CHECKED_ROLLUPS: Dimension[][] = [
  ['day', 'app_id'],
  ['day', 'country'],
  ['day', 'app_id', 'app_version', 'device_model', 'os_version', 'country'],
  ['app_id'],
  [],
];

export async function reportsVsOracle(
  store: Store,
  counted: readonly EventFact[],
  k: number,
  nowMs = Date.now(),
): Promise<Array<{ req: QueryRequest; got: ReportRow[]; want: ReportRow[] }>> {
  const today = utcDay(nowMs);
  const out = [];
  for (const report of ['dau', 'crash-rate'] as const) {
    for (const by of CHECKED_ROLLUPS) {
      const req: QueryRequest = { report, from: today - 7, to: today + 7, by, format: 'json' };
      out.push({ req, got: await runReport(store, req), want: oracleReport(counted, req, k) });
    }
  }
  return out;
}
