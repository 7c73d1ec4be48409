/**
 * Differentially private answers under a per-analyst daily budget (aggregator/README.md, "Differential
 * privacy"). The query command's default path:
 *
 * 1. The release policy is read from the views (`release_policy`: k, daily_epsilon, default_epsilon);
 *    no client setting changes it.
 * 2. The same question (report, days, app, dimensions, epsilon) asked again the same UTC day by the same
 *    analyst gets the answer the ledger holds, not fresh noise: averaging repeated answers recovers the
 *    exact count (aggregator/dp.test.ts shows how fast), so a repeat costs nothing and tells nothing new.
 * 3. Otherwise the question is charged: if the analyst's charges today plus its epsilon pass
 *    daily_epsilon it is refused (`AGG_PRIVACY_BUDGET_SPENT`), and the refusal is logged.
 * 4. The exact sums of released cells (query.ts) get two-sided geometric noise (dp.ts): dau spends
 *    epsilon on active devices; crash-rate splits it (CRASH_RATE_SHARES) over active devices, crashed
 *    devices, sessions and crashes, and the rates are computed from the noisy counts with their
 *    expected error. Sessions and crashes are the bounded ones: each device counted at most
 *    contribution_bound times per cell and day (device_daily, migration 003), the sensitivity the noise
 *    is calibrated to; one device can add any number of exact ones.
 * 5. The ledger row (with the noisy rows) is written, THEN the charges are summed again (two questions
 *    racing past step 3 both count; the later is refused), and only then is the answer returned.
 *
 * The analyst is the ClickHouse user the server runs the statement as (currentUser(), or on 18.16 the
 * statement's own entry in system.processes), not a name the client sends. Exact answers (`--exact`)
 * are logged in the ledger before they are returned, with epsilon 0: they are for the role that may
 * read the released views directly, and everything it asks through the command is on record.
 * What enforces this is the process that holds the ClickHouse credential: a person who holds the same
 * credential can read the exact views with SQL, so analysts meant to see noisy answers only must reach
 * the command without holding it (README, "For analysts").
 */
import { randomBytes } from 'node:crypto';
import { crashFreePct, crashesPer1000, cryptoUniform, geometricNoise, geometricSd, type Uniform } from './dp.ts';
import { AggregatorError } from './errors.ts';
import { majorVersion } from './migrate.ts';
import { utcDay, dayToIso } from './facts.ts';
import { fetchReport, runReport, sqlString, type QueryRequest, type RawGroup, type ReportRow, type ReportSource } from './query.ts';

export interface ReleasePolicy {
  minGroupDevices: number;
  dailyEpsilon: number;
  defaultEpsilon: number;
  /** Sessions (and crashes) one device may add to a cell per day: their sensitivity. */
  contributionBound: number;
}

export interface LedgerSource extends ReportSource {
  command(sql: string): Promise<void>;
}

export interface PrivateAnswer {
  rows: ReportRow[];
  epsilon: number;
  /** Charged today by this analyst, this question included. */
  spentToday: number;
  dailyEpsilon: number;
  /** True when the ledger already held this question's answer (no new noise, no charge). */
  repeated: boolean;
  analyst: string;
}

export interface PrivateOptions {
  /** Noise source; tests pass a seeded one. @default cryptoUniform */
  uniform?: Uniform;
  /** Overrides "now" (tests). */
  nowMs?: number;
  /**
   * The analyst as a service in front of the command authenticated them (answer-service.ts: one budget
   * per person, whatever ClickHouse user the service connects as). Without it: the ClickHouse user.
   */
  analyst?: string;
  /**
   * Database of the privacy ledger when it is not the views database (answer-service.ts,
   * ANSWERS_LEDGER_DATABASE: on ClickHouse 18.16 a database of its own that the answer service's user may
   * write and the read-only analyst may not see, stack/clickhouse-users.ts). @default src.database
   */
  ledgerDatabase?: string;
}

export async function readReleasePolicy(src: ReportSource): Promise<ReleasePolicy> {
  const [p] = await src.query<{
    min_group_devices: number | string;
    daily_epsilon: number | string;
    default_epsilon: number | string;
    contribution_bound: number | string;
  }>(`SELECT min_group_devices, daily_epsilon, default_epsilon, contribution_bound FROM ${src.database}.release_policy`);
  if (!p) throw new AggregatorError('AGG_SINK_QUERY_FAILED', `${src.database}.release_policy returned no row`);
  return {
    minGroupDevices: Number(p.min_group_devices),
    dailyEpsilon: Number(p.daily_epsilon),
    defaultEpsilon: Number(p.default_epsilon),
    contributionBound: Number(p.contribution_bound),
  };
}

/** The question as the ledger keys it: order of --by does not make a new question. */
export function canonicalRequest(req: QueryRequest, epsilon: number): string {
  return JSON.stringify({ report: req.report, from: dayToIso(req.from), to: dayToIso(req.to), app: req.app ?? null, by: [...req.by].sort(), epsilon });
}

/** Columns of a private report: the noisy counts and rates, each beside the standard deviation of its noise. */
export function privateColumns(req: QueryRequest): string[] {
  const perDay = req.by.includes('day');
  const devices = perDay ? 'active_devices' : 'device_days';
  const cols = [...req.by, devices, `${devices}_sd`];
  if (req.report === 'crash-rate') {
    const crashed = perDay ? 'crashed_devices' : 'crashed_device_days';
    cols.push(crashed, `${crashed}_sd`, 'crash_free_devices_pct', 'crash_free_devices_pct_sd');
    cols.push('sessions', 'sessions_sd', 'crashes', 'crashes_sd', 'crashes_per_1000_sessions', 'crashes_per_1000_sessions_sd');
  }
  return cols;
}

/**
 * How a crash-rate question's epsilon is split (sequential composition: the shares add up to 1). The
 * device counts carry the crash-free %, the headline number, so they get most of it; sessions and
 * crashes have sensitivity contribution_bound and are useful for large groups only.
 */
export const CRASH_RATE_SHARES = { devices: 0.375, crashed: 0.375, sessions: 0.125, crashes: 0.125 } as const;

const round = (x: number, digits = 3) => Math.round(x * 10 ** digits) / 10 ** digits;

/**
 * Adds the mechanism's noise to the exact sums of a report (query.ts: fetchReport) and derives the rates
 * from the noisy counts. Sessions and crashes are the bounded ones (each device at most `bound` per cell
 * and day), never the exact ones, whose sensitivity is unbounded.
 */
export function noisyRows(req: QueryRequest, raw: readonly RawGroup[], epsilon: number, bound: number, u: Uniform = cryptoUniform): ReportRow[] {
  const perDay = req.by.includes('day');
  const devices = perDay ? 'active_devices' : 'device_days';
  const crashed = perDay ? 'crashed_devices' : 'crashed_device_days';
  const crash = req.report === 'crash-rate';
  const eDevices = crash ? epsilon * CRASH_RATE_SHARES.devices : epsilon;
  return raw.map((r) => {
    const out: ReportRow = {};
    for (const d of req.by) out[d] = String(r[d]);
    const sdDevices = geometricSd(eDevices);
    const n = Number(r.device_days) + geometricNoise(eDevices, 1, u);
    out[devices] = n;
    out[`${devices}_sd`] = round(sdDevices);
    if (crash) {
      const eCrashed = epsilon * CRASH_RATE_SHARES.crashed;
      const sdCrashed = geometricSd(eCrashed);
      const c = Number(r.crashed_device_days) + geometricNoise(eCrashed, 1, u);
      out[crashed] = c;
      out[`${crashed}_sd`] = round(sdCrashed);
      const free = crashFreePct(n, c, sdDevices, sdCrashed);
      out.crash_free_devices_pct = free ? round(free.pct) : null;
      out.crash_free_devices_pct_sd = free ? round(free.sd) : null;
      const eSessions = epsilon * CRASH_RATE_SHARES.sessions;
      const eCrashes = epsilon * CRASH_RATE_SHARES.crashes;
      const sdSessions = geometricSd(eSessions, bound);
      const sdCrashes = geometricSd(eCrashes, bound);
      const sessions = Number(r.bounded_sessions) + geometricNoise(eSessions, bound, u);
      const crashes = Number(r.bounded_crashes) + geometricNoise(eCrashes, bound, u);
      out.sessions = sessions;
      out.sessions_sd = round(sdSessions);
      out.crashes = crashes;
      out.crashes_sd = round(sdCrashes);
      const per = crashesPer1000(crashes, sessions, sdCrashes, sdSessions);
      out.crashes_per_1000_sessions = per ? round(per.rate) : null;
      out.crashes_per_1000_sessions_sd = per ? round(per.sd) : null;
    }
    return out;
  });
}

/** Where the ledger is: `<ledgerDatabase or the views database>.privacy_ledger`. */
interface LedgerAt {
  src: LedgerSource;
  db: string;
}
const ledger = (l: LedgerAt) => `${l.db}.privacy_ledger`;
const ledgerAt = (src: LedgerSource, o: PrivateOptions): LedgerAt => ({ src, db: o.ledgerDatabase || src.database });

/** Builds the SQL expression of "the ClickHouse user running this very statement". */
type Who = () => string;

/**
 * currentUser() where the server has it (20.x on, chdb). 18.16 has none, so there the statement finds
 * itself in system.processes by a random marker in its own text (every user may read system on 18.16).
 */
async function identity(src: ReportSource): Promise<Who> {
  const [{ v } = { v: '' }] = await src.query<{ v: string }>('SELECT version() AS v');
  if (majorVersion(v) >= 20) return () => 'currentUser()';
  return () => `(SELECT any(user) FROM system.processes WHERE position(query, '${`ledger_${randomBytes(8).toString('hex')}`}') > 0)`;
}

async function spentToday(l: LedgerAt, who: Who, day: string): Promise<number> {
  const [r] = await l.src.query<{ spent: number | string | null }>(
    `SELECT sum(epsilon) AS spent FROM ${ledger(l)} WHERE analyst = ${who()} AND day = toDate(${sqlString(day)})`,
  );
  return Number(r?.spent ?? 0);
}

async function record(l: LedgerAt, who: Who, day: string, request: string, mode: 'dp' | 'exact' | 'refused' | 'repeat', epsilon: number, answer: string) {
  await l.src.command(
    `INSERT INTO ${ledger(l)} (day, at, analyst, request, mode, epsilon, answer) SELECT toDate(${sqlString(day)}), now(), ${who()}, ${sqlString(request)}, ${sqlString(mode)}, ${epsilon}, ${sqlString(answer)}`,
  );
}

async function hasLedger(l: LedgerAt): Promise<boolean> {
  const [{ n } = { n: 0 }] = await l.src.query<{ n: number | string }>(
    `SELECT count() AS n FROM system.tables WHERE database = ${sqlString(l.db)} AND name = 'privacy_ledger'`,
  );
  return Number(n) > 0;
}

export class PrivacyBudgetError extends AggregatorError {
  override readonly name: string = 'PrivacyBudgetError';
}

export async function runPrivateReport(src: LedgerSource, req: QueryRequest, epsilonArg: number | undefined, o: PrivateOptions = {}): Promise<PrivateAnswer> {
  const l = ledgerAt(src, o);
  if (!(await hasLedger(l)))
    throw new AggregatorError(
      'AGG_NO_LEDGER',
      `${l.db} has no privacy_ledger, so no budget can be kept and no private answer given (on ClickHouse 18.16 the views database of proxies has none: its read-only analyst could not write one: the answer service writes the ledger database of its own user, stack/clickhouse-users.ts). The privileged role may ask with --exact.`,
    );
  const policy = await readReleasePolicy(src);
  const epsilon = epsilonArg ?? policy.defaultEpsilon;
  if (!(epsilon > 0) || epsilon > policy.dailyEpsilon)
    throw new PrivacyBudgetError('AGG_BAD_EPSILON', `--epsilon ${epsilon}: must be above 0 and at most the daily budget ${policy.dailyEpsilon}`);
  const day = dayToIso(utcDay(o.nowMs ?? Date.now()));
  const request = canonicalRequest(req, epsilon);
  const who = o.analyst !== undefined ? () => sqlString(o.analyst!) : await identity(src);
  const [{ me } = { me: '' }] = await src.query<{ me: string }>(`SELECT ${who()} AS me`);

  const [prior] = await src.query<{ answer: string }>(
    `SELECT answer FROM ${ledger(l)} WHERE analyst = ${who()} AND day = toDate(${sqlString(day)}) AND request = ${sqlString(request)} AND mode = 'dp' ORDER BY at LIMIT 1`,
  );
  if (prior) {
    await record(l, who, day, request, 'repeat', 0, '');
    return {
      rows: JSON.parse(prior.answer) as ReportRow[],
      epsilon,
      spentToday: await spentToday(l, who, day),
      dailyEpsilon: policy.dailyEpsilon,
      repeated: true,
      analyst: me,
    };
  }

  const refuse = async (spent: number) => {
    await record(l, who, day, request, 'refused', 0, '');
    return new PrivacyBudgetError(
      'AGG_PRIVACY_BUDGET_SPENT',
      `privacy budget spent: ${me} has used ${round(spent)} of ${policy.dailyEpsilon} for ${day} (UTC); this question needs ${epsilon}. ` +
        'Ask again tomorrow, ask with a smaller --epsilon, or repeat a question already answered today (free).',
    );
  };
  const before = await spentToday(l, who, day);
  if (before + epsilon > policy.dailyEpsilon + 1e-9) throw await refuse(before);

  const rows = noisyRows(req, await fetchReport(src, req), epsilon, policy.contributionBound, o.uniform);
  await record(l, who, day, request, 'dp', epsilon, JSON.stringify(rows));
  const after = await spentToday(l, who, day);
  if (after > policy.dailyEpsilon + 1e-9) throw await refuse(after);
  return { rows, epsilon, spentToday: after, dailyEpsilon: policy.dailyEpsilon, repeated: false, analyst: me };
}

/**
 * Exact sums of released cells for the privileged role, never unlogged: the use goes on the privacy
 * ledger before the answer leaves. Where the analyst's database has no ledger (the views database of
 * proxies on ClickHouse 18.16, whose analyst is read-only and could not write one), the server's own
 * query log must be on for this user (`log_queries`, which readonly=1 keeps it from switching off);
 * otherwise the answer is refused.
 */
export async function runLoggedExactReport(src: LedgerSource, req: QueryRequest, o: PrivateOptions = {}): Promise<ReportRow[]> {
  const l = ledgerAt(src, o);
  if (!(await hasLedger(l))) {
    const [{ value } = { value: '0' }] = await src.query<{ value: string }>(`SELECT value FROM system.settings WHERE name = 'log_queries'`);
    if (value !== '1')
      throw new AggregatorError(
        'AGG_EXACT_UNLOGGED',
        `exact answers are logged, but ${src.database} has no privacy_ledger and the server does not log this user's queries (log_queries = ${value}): ask without --exact, or have the operator turn on log_queries in the analyst's profile`,
      );
    return runReport(src, req);
  }
  const rows = await runReport(src, req);
  await record(l, await identity(src), dayToIso(utcDay(o.nowMs ?? Date.now())), canonicalRequest(req, 0), 'exact', 0, '');
  return rows;
}
