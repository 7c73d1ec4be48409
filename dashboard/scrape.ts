/**
 * Scrapes the services' `/metrics` (Prometheus text) and turns counters into rates on the server, so
 * the page only draws numbers. Rates are computed from per-target deltas between scrapes: a target that
 * restarts (its counters drop to 0) contributes its new value, not a negative rate, and a target that
 * does not answer contributes nothing until it answers again (Prometheus' `rate()` does the same).
 */

export interface Sample {
  name: string;
  labels: Record<string, string>;
  value: number;
}

/**
 * Parses the Prometheus text exposition format (what prom-client writes): `name{a="b",c="d"} value`.
 * Comments, HELP/TYPE lines, timestamps and unparsable lines are skipped. Label values keep their
 * escapes decoded (\\, \", \n).
 */
export function parsePrometheusText(text: string): Sample[] {
  const out: Sample[] = [];
  for (const raw of text.split('\n')) {
    const line = raw.trim();
    if (line === '' || line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{(.*)\})?\s+(\S+)(\s+\S+)?$/.exec(line);
    if (!m) continue;
    const value = m[4] === '+Inf' ? Infinity : m[4] === '-Inf' ? -Infinity : Number(m[4]);
    if (Number.isNaN(value) && m[4] !== 'NaN') continue;
    const labels: Record<string, string> = {};
    if (m[3]) {
      const re = /([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g;
      let l: RegExpExecArray | null;
      while ((l = re.exec(m[3])) !== null) {
        labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c));
      }
    }
    out.push({ name: m[1]!, labels, value });
  }
  return out;
}

/** Sum of a metric's samples whose labels match `where` (every given label equal). */
export function sumOf(samples: readonly Sample[], name: string, where: Record<string, string> = {}): number {
  let s = 0;
  for (const x of samples) {
    if (x.name !== name) continue;
    if (Object.entries(where).every(([k, v]) => x.labels[k] === v)) s += x.value;
  }
  return s;
}

/** Per-label sums, e.g. rejected events by reason. */
export function sumBy(samples: readonly Sample[], name: string, label: string): Record<string, number> {
  const out: Record<string, number> = {};
  for (const x of samples) if (x.name === name && x.labels[label] !== undefined) out[x.labels[label]] = (out[x.labels[label]] ?? 0) + x.value;
  return out;
}

/** The counters and gauges the dashboard shows, read from one scrape of one target. */
export interface IngestReading {
  accepted: number;
  rejected: number;
  droppedConsent: number;
  /** Requests answered 4xx (whole batches refused: malformed body, too large, ...). */
  refusedBatches: number;
  requests: number;
}
export interface AggregatorReading {
  lag: number;
  read: number;
}

export function readIngest(samples: readonly Sample[]): IngestReading {
  let refused = 0;
  let requests = 0;
  for (const x of samples) {
    if (x.name !== 'ingest_requests_total') continue;
    requests += x.value;
    if (/^4\d\d$/.test(x.labels.status ?? '') && x.labels.status !== '429') refused += x.value;
  }
  return {
    accepted: sumOf(samples, 'ingest_events_accepted_total'),
    rejected: sumOf(samples, 'ingest_events_rejected_total'),
    // Events dropped whole; `stripped_*` reasons count fields removed from kept batches, not events.
    droppedConsent: samples
      .filter((x) => x.name === 'ingest_events_dropped_consent_total' && !(x.labels.reason ?? '').startsWith('stripped_'))
      .reduce((a, x) => a + x.value, 0),
    refusedBatches: refused,
    requests,
  };
}

export function readAggregator(samples: readonly Sample[]): AggregatorReading {
  return { lag: sumOf(samples, 'aggregator_consumer_lag'), read: sumOf(samples, 'aggregator_events_read_total') };
}

/** Monotonic totals over all targets: each target adds its delta since its previous scrape. */
export interface Totals {
  accepted: number;
  rejected: number;
  droppedConsent: number;
  refusedBatches: number;
  requests: number;
  aggregatorRead: number;
}

export interface Point {
  t: number;
  totals: Totals;
  /** Current consumer lag summed over aggregators that answered (a gauge, not a counter). */
  lag: number | null;
}

export interface TargetStatus {
  url: string;
  kind: 'ingest' | 'aggregator';
  up: boolean;
  error?: string;
  lastScrapeAt?: number;
}

export interface LiveRates {
  at: number;
  window_s: number;
  ingest: {
    events_per_s: number | null;
    rejected_per_s: number | null;
    dropped_consent_per_s: number | null;
    /** Rejected events as a share of events judged (accepted + rejected) in the window, in %. */
    reject_rate_pct: number | null;
    batches_refused_per_s: number | null;
    /** Counted since the dashboard started (deltas of every target). */
    totals: { accepted: number; rejected: number; dropped_consent: number; refused_batches: number };
    /** The services' own counters as last scraped, summed over targets (since each process started). */
    counters: { accepted: number; rejected: number; dropped_consent: number };
  };
  aggregator: { consumer_lag: number | null; events_read_per_s: number | null };
  targets: TargetStatus[];
  history: Array<{ t: number; events_per_s: number; reject_rate_pct: number | null; lag: number | null }>;
}

const ZERO: Totals = { accepted: 0, rejected: 0, droppedConsent: 0, refusedBatches: 0, requests: 0, aggregatorRead: 0 };

const round = (x: number, d = 1) => Math.round(x * 10 ** d) / 10 ** d;

/**
 * Accumulates scrapes into points and answers rates over a window. Pure bookkeeping (no I/O), so the
 * arithmetic is unit-tested; `Scraper` feeds it.
 */
export class RateBook {
  private readonly points: Point[] = [];
  private readonly lastIngest = new Map<string, IngestReading>();
  private readonly lastAgg = new Map<string, AggregatorReading>();
  private totals: Totals = { ...ZERO };

  constructor(private readonly o: { windowMs: number; keepMs: number; maxPoints?: number }) {}

  /** Adds one round of scrapes taken at `t`: each target's reading, or undefined when it did not answer. */
  add(t: number, ingest: Map<string, IngestReading | undefined>, aggregators: Map<string, AggregatorReading | undefined>): void {
    const tot = { ...this.totals };
    const delta = (now: number, before: number | undefined) => (before === undefined ? now : now >= before ? now - before : now);
    for (const [url, r] of ingest) {
      if (!r) continue;
      const p = this.lastIngest.get(url);
      // The first reading of a target only sets its baseline: counts from before the dashboard started
      // (or before a restart of the dashboard) are not a rate.
      if (p) {
        tot.accepted += delta(r.accepted, p.accepted);
        tot.rejected += delta(r.rejected, p.rejected);
        tot.droppedConsent += delta(r.droppedConsent, p.droppedConsent);
        tot.refusedBatches += delta(r.refusedBatches, p.refusedBatches);
        tot.requests += delta(r.requests, p.requests);
      }
      this.lastIngest.set(url, r);
    }
    let lag: number | null = null;
    for (const [url, r] of aggregators) {
      if (!r) continue;
      lag = (lag ?? 0) + r.lag;
      const p = this.lastAgg.get(url);
      if (p) tot.aggregatorRead += delta(r.read, p.read);
      this.lastAgg.set(url, r);
    }
    this.totals = tot;
    this.points.push({ t, totals: tot, lag });
    const keepAfter = t - this.o.keepMs;
    while (this.points.length > 2 && (this.points[0]!.t < keepAfter || this.points.length > (this.o.maxPoints ?? 1000))) this.points.shift();
  }

  /** Counts since each target was first seen (what the page shows as totals). */
  current(): Totals {
    return { ...this.totals };
  }

  rates(now: number, targets: TargetStatus[]): LiveRates {
    const pts = this.points;
    const lastP = pts[pts.length - 1];
    let first: Point | undefined;
    for (const p of pts) {
      if (lastP && p.t >= lastP.t - this.o.windowMs && p !== lastP) {
        first = p;
        break;
      }
    }
    const span = lastP && first ? (lastP.t - first.t) / 1000 : 0;
    const rate = (k: keyof Totals) => (span > 0 && lastP && first ? round((lastP.totals[k] - first.totals[k]) / span) : null);
    const accepted = rate('accepted');
    const rejected = rate('rejected');
    const judged = (accepted ?? 0) + (rejected ?? 0);
    const history: LiveRates['history'] = [];
    for (let i = 1; i < pts.length; i++) {
      const a = pts[i - 1]!;
      const b = pts[i]!;
      const dt = (b.t - a.t) / 1000;
      if (dt <= 0) continue;
      const acc = b.totals.accepted - a.totals.accepted;
      const rej = b.totals.rejected - a.totals.rejected;
      history.push({ t: b.t, events_per_s: round(acc / dt), reject_rate_pct: acc + rej > 0 ? round((100 * rej) / (acc + rej), 2) : null, lag: b.lag });
    }
    const t = this.totals;
    const counters = { accepted: 0, rejected: 0, dropped_consent: 0 };
    for (const r of this.lastIngest.values()) {
      counters.accepted += r.accepted;
      counters.rejected += r.rejected;
      counters.dropped_consent += r.droppedConsent;
    }
    return {
      at: now,
      window_s: round(span, 1),
      ingest: {
        events_per_s: accepted,
        rejected_per_s: rejected,
        dropped_consent_per_s: rate('droppedConsent'),
        // No events judged in the window (no traffic): no rate, rather than a reassuring 0 %.
        reject_rate_pct: span > 0 && judged > 0 ? round((100 * (rejected ?? 0)) / judged, 2) : null,
        batches_refused_per_s: rate('refusedBatches'),
        totals: { accepted: t.accepted, rejected: t.rejected, dropped_consent: t.droppedConsent, refused_batches: t.refusedBatches },
        counters,
      },
      aggregator: { consumer_lag: lastP?.lag ?? null, events_read_per_s: rate('aggregatorRead') },
      targets,
      history,
    };
  }
}

/** Fetches a target's /metrics with a timeout; undefined (and the error) when it does not answer. */
export async function scrapeOnce(url: string, timeoutMs: number): Promise<{ samples?: Sample[]; error?: string }> {
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) });
    if (!res.ok) return { error: `HTTP ${res.status}` };
    return { samples: parsePrometheusText(await res.text()) };
  } catch (e) {
    const c = (e as { cause?: { code?: string } }).cause;
    return { error: c?.code ?? (e as Error).name ?? String(e) };
  }
}

export interface ScraperOptions {
  ingest: string[];
  aggregator: string[];
  intervalMs: number;
  windowMs: number;
  keepMs?: number;
}

/** Scrapes every target each interval (one round at a time: a slow target delays, never piles up). */
export class Scraper {
  readonly book: RateBook;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> | undefined;
  private readonly status = new Map<string, TargetStatus>();
  private stopped = false;

  constructor(private readonly o: ScraperOptions) {
    this.book = new RateBook({ windowMs: o.windowMs, keepMs: o.keepMs ?? 5 * 60_000 });
    for (const url of o.ingest) this.status.set(url, { url, kind: 'ingest', up: false });
    for (const url of o.aggregator) this.status.set(url, { url, kind: 'aggregator', up: false });
  }

  async tick(): Promise<void> {
    const timeout = Math.max(200, Math.min(this.o.intervalMs, 2000));
    const t = Date.now();
    const ing = new Map<string, IngestReading | undefined>();
    const agg = new Map<string, AggregatorReading | undefined>();
    await Promise.all([
      ...this.o.ingest.map(async (url) => {
        const r = await scrapeOnce(url, timeout);
        ing.set(url, r.samples ? readIngest(r.samples) : undefined);
        this.status.set(url, { url, kind: 'ingest', up: !!r.samples, ...(r.error ? { error: r.error } : {}), lastScrapeAt: t });
      }),
      ...this.o.aggregator.map(async (url) => {
        const r = await scrapeOnce(url, timeout);
        agg.set(url, r.samples ? readAggregator(r.samples) : undefined);
        this.status.set(url, { url, kind: 'aggregator', up: !!r.samples, ...(r.error ? { error: r.error } : {}), lastScrapeAt: t });
      }),
    ]);
    this.book.add(t, ing, agg);
  }

  start(): void {
    const loop = () => {
      if (this.stopped) return;
      this.running = this.tick().finally(() => {
        if (!this.stopped) this.timer = setTimeout(loop, this.o.intervalMs);
      });
    };
    loop();
  }

  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    await this.running?.catch(() => {});
  }

  live(): LiveRates {
    return this.book.rates(Date.now(), [...this.status.values()]);
  }
}
