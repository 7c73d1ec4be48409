/**
 * The questions of `npm run query` (query-cli.ts): `dau|crash-rate --from DAY --to DAY [--app ID] [--by DIMS]
 * [--format table|csv|json] [--epsilon E | --exact]`, and the exact sums of released cells behind them.
 *
 * Answers only from the released views (aggregator/migrations/R_analyst_views.sql), connected as the
 * analyst (`ANALYST_*`, aggregator/analyst-config.ts), never with the aggregator's credentials. Every
 * figure is a sum of released cells (one UTC day x all six dimensions, each covering at least k
 * distinct devices; k lives in the views only): so a range and the same range minus a day, or a
 * roll-up and the finer rows under it, differ by released cells only, and no differencing of two
 * answers exposes a cell under k. Daily tokens change every day (policy 1.1.4): a range without `day`
 * in --by reports device-days, and the columns say so; a device in two cells of one day (two apps, an
 * update mid-day) counts once per cell.
 */
import { QueryArgumentError } from './errors.ts';
import { dayToIso, isoToDay } from './facts.ts';
import type { Store } from './store.ts';

export const REPORTS = ['dau', 'crash-rate'] as const;
export type Report = (typeof REPORTS)[number];
export const DIMENSIONS = ['day', 'app_id', 'app_version', 'device_model', 'os_version', 'country'] as const;
export type Dimension = (typeof DIMENSIONS)[number];
export const FORMATS = ['table', 'csv', 'json'] as const;
export type Format = (typeof FORMATS)[number];

export interface QueryRequest {
  report: Report;
  from: number;
  to: number;
  app?: string;
  by: Dimension[];
  format: Format;
}

/** How the command answers: noisy under the budget (default), or exact and logged (--exact). */
export interface AnswerMode {
  exact: boolean;
  /** --epsilon; undefined = the views' default_epsilon. */
  epsilon?: number;
}

/** One output group: its dimension values and the exact counts (derived rates computed here). */
export type ReportRow = Record<string, string | number | null>;

const USAGE =
  'usage: npm run query -- dau|crash-rate --from YYYY-MM-DD --to YYYY-MM-DD [--app APP_ID] [--by DIMS] [--format table|csv|json] [--epsilon E | --exact]\n' +
  `  DIMS: comma-separated, any of ${DIMENSIONS.join(', ')} (default day,app_id; "none" for one total row)\n` +
  "  --epsilon E: privacy cost of this question (default: the views' default_epsilon, 0.5); answers are noisy, charged to your daily budget\n" +
  '  --exact: exact sums, for the role allowed them; every use is logged';

export function usage(): string {
  return USAGE;
}

/** The command line's question and how to answer it. */
export function parseCommandLine(argv: readonly string[]): { req: QueryRequest; mode: AnswerMode } {
  const bad = (msg: string) => new QueryArgumentError('AGG_BAD_ARGUMENT', `${msg}\n${USAGE}`);
  const rest: string[] = [];
  let exact = false;
  let epsilon: number | undefined;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--exact') {
      exact = true;
    } else if (a === '--epsilon' || a.startsWith('--epsilon=')) {
      const v = a.includes('=') ? a.slice(a.indexOf('=') + 1) : argv[++i];
      if (epsilon !== undefined) throw bad('--epsilon given twice');
      if (v === undefined || !/^\d+(\.\d+)?$/.test(v) || !(Number(v) > 0))
        throw new QueryArgumentError('AGG_BAD_EPSILON', `--epsilon "${v ?? ''}": expected a positive number such as 0.5\n${USAGE}`);
      epsilon = Number(v);
    } else {
      rest.push(a);
    }
  }
  if (exact && epsilon !== undefined) throw bad('--exact and --epsilon exclude each other: an exact answer spends no epsilon, it is logged');
  return { req: parseQueryArgs(rest), mode: { exact, ...(epsilon !== undefined ? { epsilon } : {}) } };
}

export function parseQueryArgs(argv: readonly string[]): QueryRequest {
  const bad = (msg: string) => new QueryArgumentError('AGG_BAD_ARGUMENT', `${msg}\n${USAGE}`);
  const [report, ...rest] = argv;
  if (report === undefined) throw bad('missing report: dau or crash-rate');
  if (!(REPORTS as readonly string[]).includes(report)) throw bad(`unknown report "${report}": expected dau or crash-rate`);
  const opts = new Map<string, string>();
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i]!;
    const eq = a.indexOf('=');
    const [name, inline] = a.startsWith('--') && eq > 0 ? [a.slice(0, eq), a.slice(eq + 1)] : [a, undefined];
    if (!['--from', '--to', '--app', '--by', '--format'].includes(name)) throw bad(`unknown argument "${a}"`);
    const value = inline ?? rest[++i];
    if (value === undefined || (inline === undefined && value.startsWith('--'))) throw bad(`${name} needs a value`);
    if (opts.has(name)) throw bad(`${name} given twice`);
    opts.set(name, value);
  }
  const day = (name: string): number => {
    const v = opts.get(name);
    if (v === undefined) throw bad(`${name} is required`);
    const d = isoToDay(v);
    if (d === undefined) throw new QueryArgumentError('AGG_BAD_DAY', `${name} "${v}": expected a calendar day as YYYY-MM-DD\n${USAGE}`);
    return d;
  };
  const from = day('--from');
  const to = day('--to');
  if (to < from) throw new QueryArgumentError('AGG_BAD_DAY', `--to ${dayToIso(to)} is before --from ${dayToIso(from)}`);
  if (to - from > 3660) throw new QueryArgumentError('AGG_BAD_DAY', `range of ${to - from + 1} days is too long (at most 3661)`);
  const byRaw = opts.get('--by') ?? 'day,app_id';
  const by: Dimension[] = [];
  if (byRaw !== 'none') {
    for (const d of byRaw.split(',').map((s) => s.trim())) {
      if (!(DIMENSIONS as readonly string[]).includes(d)) {
        throw new QueryArgumentError('AGG_BAD_DIMENSION', `--by: unknown dimension "${d}": expected any of ${DIMENSIONS.join(', ')} or none`);
      }
      if (by.includes(d as Dimension)) throw new QueryArgumentError('AGG_BAD_DIMENSION', `--by: dimension "${d}" given twice`);
      by.push(d as Dimension);
    }
  }
  const format = opts.get('--format') ?? 'table';
  if (!(FORMATS as readonly string[]).includes(format)) throw bad(`--format "${format}": expected table, csv or json`);
  const app = opts.get('--app');
  if (app !== undefined && app.length === 0) throw bad('--app needs a non-empty app id');
  return { report: report as Report, from, to, by, format: format as Format, ...(app !== undefined ? { app } : {}) };
}

/** A ClickHouse string literal (18.16 has no query parameters); backslash and quote escaped. */
export function sqlString(s: string): string {
  return `'${s.replace(/\\/g, '\\\\').replace(/'/g, "\\'")}'`;
}

/** The released cells the query command sums (one UTC day x all six dimensions, k-suppressed in the view). */
export const RELEASED_CELLS_VIEW = 'crash_rates';

export function buildReportSql(database: string, req: QueryRequest): string {
  const where = [`day >= toDate(${sqlString(dayToIso(req.from))})`, `day <= toDate(${sqlString(dayToIso(req.to))})`];
  if (req.app !== undefined) where.push(`app_id = ${sqlString(req.app)}`);
  const dims = req.by.map((d) => (d === 'day' ? 'toString(day) AS day' : d));
  // The filter runs in its own subquery: `toString(day) AS day` would otherwise shadow the Date column
  // in WHERE. `cells > 0` drops the one all-zero row a total (--by none) over no released cell would be.
  return [
    'SELECT * FROM (',
    `  SELECT ${[...dims, 'sum(active_devices) AS device_days', 'sum(sessions) AS sessions', 'sum(crashes) AS crashes', 'sum(crashed_devices) AS crashed_device_days', 'sum(bounded_sessions) AS bounded_sessions', 'sum(bounded_crashes) AS bounded_crashes', 'count() AS cells'].join(', ')}`,
    `  FROM (SELECT * FROM ${database}.${RELEASED_CELLS_VIEW} WHERE ${where.join(' AND ')})`,
    req.by.length ? `  GROUP BY ${req.by.join(', ')}` : '',
    ')',
    'WHERE cells > 0',
    req.by.length ? `ORDER BY ${req.by.join(', ')}` : '',
  ]
    .filter((l) => l !== '')
    .join('\n');
}

/** One group as ClickHouse returns it (64-bit integers may arrive as strings). */
export interface RawGroup {
  [dim: string]: string | number;
  device_days: string | number;
  sessions: string | number;
  crashes: string | number;
  crashed_device_days: string | number;
  /** Sessions and crashes with each device counted at most contribution_bound times per cell and day. */
  bounded_sessions: string | number;
  bounded_crashes: string | number;
}

const round = (x: number, digits = 3) => Math.round(x * 10 ** digits) / 10 ** digits;

/** Shapes raw groups into report rows; rates are computed here from exact integers, so every engine prints the same. */
export function shapeRows(req: QueryRequest, raw: readonly RawGroup[]): ReportRow[] {
  const perDay = req.by.includes('day');
  const devicesCol = perDay ? 'active_devices' : 'device_days';
  const crashedCol = perDay ? 'crashed_devices' : 'crashed_device_days';
  return raw.map((g) => {
    const row: ReportRow = {};
    for (const d of req.by) row[d] = String(g[d]);
    const devices = Number(g.device_days);
    row[devicesCol] = devices;
    if (req.report === 'crash-rate') {
      const sessions = Number(g.sessions);
      const crashes = Number(g.crashes);
      const crashed = Number(g.crashed_device_days);
      row.sessions = sessions;
      row.crashes = crashes;
      row[crashedCol] = crashed;
      row.crash_free_devices_pct = devices > 0 ? round(100 * (1 - crashed / devices)) : null;
      row.crashes_per_1000_sessions = sessions > 0 ? round((1000 * crashes) / sessions) : null;
    }
    return row;
  });
}

/** What a report needs of a store: the database of the released views and a way to run a SELECT. */
export type ReportSource = Pick<Store, 'database' | 'query'>;

/** The groups of a report as ClickHouse sums them (the private path needs the bounded columns too). */
export function fetchReport(source: ReportSource, req: QueryRequest): Promise<RawGroup[]> {
  return source.query<RawGroup>(buildReportSql(source.database, req));
}

export async function runReport(source: ReportSource, req: QueryRequest): Promise<ReportRow[]> {
  return shapeRows(req, await fetchReport(source, req));
}

export function formatReport(rows: readonly ReportRow[], format: Format, columns?: readonly string[]): string {
  const cols = columns ?? (rows[0] ? Object.keys(rows[0]) : []);
  const cell = (v: string | number | null | undefined) => (v === null || v === undefined ? '' : String(v));
  if (format === 'json') return JSON.stringify(rows, null, 2);
  if (format === 'csv') {
    const q = (s: string) => (/[",\n\r]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s);
    return [cols.join(','), ...rows.map((r) => cols.map((c) => q(cell(r[c]))).join(','))].join('\n');
  }
  const widths = cols.map((c) => Math.max(c.length, ...rows.map((r) => cell(r[c]).length)));
  const line = (vals: string[]) =>
    vals
      .map((v, i) => v.padEnd(widths[i]!))
      .join('  ')
      .trimEnd();
  return (
    [line([...cols]), line(widths.map((w) => '-'.repeat(w))), ...rows.map((r) => line(cols.map((c) => cell(r[c]))))].join('\n') +
    `\n(${rows.length} group${rows.length === 1 ? '' : 's'})`
  );
}

/** Columns of a report, known even when every group was suppressed. */
export function reportColumns(req: QueryRequest): string[] {
  const perDay = req.by.includes('day');
  const cols: string[] = [...req.by, perDay ? 'active_devices' : 'device_days'];
  if (req.report === 'crash-rate')
    cols.push('sessions', 'crashes', perDay ? 'crashed_devices' : 'crashed_device_days', 'crash_free_devices_pct', 'crashes_per_1000_sessions');
  return cols;
}
