/** Prometheus text parsing and the server-side rate arithmetic of the dashboard's live panel. */
import { describe, expect, it } from 'vitest';
import { RateBook, parsePrometheusText, readAggregator, readIngest, sumBy, type AggregatorReading, type IngestReading } from './scrape.ts';

const TEXT = `# HELP ingest_events_accepted_total Events acknowledged by Kafka and answered 200
# TYPE ingest_events_accepted_total counter
ingest_events_accepted_total 1200
ingest_events_rejected_total{reason="SCHEMA_BAD_FORMAT"} 7
ingest_events_rejected_total{reason="TOKEN_TOO_LATE"} 3
ingest_events_dropped_consent_total{reason="no_analytics_consent"} 40
ingest_events_dropped_consent_total{reason="stripped_no_personalised_ads:device.gaid"} 9
ingest_requests_total{status="200",code="OK"} 90
ingest_requests_total{status="400",code="INGEST_BAD_JSON"} 2
ingest_requests_total{status="429",code="INGEST_OVERLOADED"} 5
ingest_request_duration_seconds_bucket{le="+Inf",status="200"} 90
weird_label{path="a\\"b\\\\c"} 1 1700000000000
not a metric line
`;

describe('dashboard scrape', () => {
  it('parses the Prometheus text format prom-client writes, labels with escapes, +Inf, timestamps', () => {
    const s = parsePrometheusText(TEXT);
    expect(s.find((x) => x.name === 'weird_label')).toEqual({ name: 'weird_label', labels: { path: 'a"b\\c' }, value: 1 });
    expect(s.find((x) => x.name === 'ingest_request_duration_seconds_bucket')?.labels.le).toBe('+Inf');
    expect(sumBy(s, 'ingest_events_rejected_total', 'reason')).toEqual({ SCHEMA_BAD_FORMAT: 7, TOKEN_TOO_LATE: 3 });
    expect(s.some((x) => x.name === 'not')).toBe(false);
  });

  it('reads ingest counters: consent drops count events dropped whole, not stripped fields; refused = 4xx but not 429', () => {
    const r = readIngest(parsePrometheusText(TEXT));
    expect(r).toEqual({ accepted: 1200, rejected: 10, droppedConsent: 40, refusedBatches: 2, requests: 97 });
    expect(
      readAggregator(
        parsePrometheusText(
          'aggregator_consumer_lag{topic="t",partition="0"} 5\naggregator_consumer_lag{topic="t",partition="1"} 2\naggregator_events_read_total 10',
        ),
      ),
    ).toEqual({ lag: 7, read: 10 });
  });

  const ing = (accepted: number, rejected: number): IngestReading => ({ accepted, rejected, droppedConsent: 0, refusedBatches: 0, requests: 0 });
  const agg = (lag: number, read: number): AggregatorReading => ({ lag, read });

  it('computes rates over the window from deltas of every target; a restarted target is not a negative rate', () => {
    const book = new RateBook({ windowMs: 10_000, keepMs: 60_000 });
    // Baselines (counts from before the dashboard started are not a rate).
    book.add(
      0,
      new Map([
        ['a', ing(1000, 10)],
        ['b', ing(500, 0)],
      ]),
      new Map([['g', agg(50, 0)]]),
    );
    book.add(
      5000,
      new Map([
        ['a', ing(1500, 20)],
        ['b', ing(1000, 0)],
      ]),
      new Map([['g', agg(10, 900)]]),
    );
    // b restarts: its counter drops to 100, which counts as 100 new events.
    book.add(
      10_000,
      new Map([
        ['a', ing(2000, 30)],
        ['b', ing(100, 0)],
      ]),
      new Map([['g', agg(0, 1900)]]),
    );
    const r = book.rates(10_000, []);
    expect(r.window_s).toBe(10);
    expect(r.ingest.events_per_s).toBe((500 + 500 + 500 + 100) / 10);
    expect(r.ingest.rejected_per_s).toBe(2);
    expect(r.ingest.reject_rate_pct).toBe(Math.round(((100 * 20) / (1600 + 20)) * 100) / 100);
    expect(r.aggregator).toEqual({ consumer_lag: 0, events_read_per_s: 190 });
    expect(r.ingest.counters).toEqual({ accepted: 2100, rejected: 30, dropped_consent: 0 });
    expect(r.history.map((h) => h.events_per_s)).toEqual([200, 120]);
  });

  it('a target that does not answer adds nothing, and no traffic means no reject rate (not 0 %)', () => {
    const book = new RateBook({ windowMs: 10_000, keepMs: 60_000 });
    book.add(0, new Map([['a', ing(100, 1)]]), new Map([['g', undefined]]));
    book.add(2000, new Map([['a', undefined]]), new Map([['g', undefined]]));
    book.add(4000, new Map([['a', ing(100, 1)]]), new Map([['g', undefined]]));
    const r = book.rates(4000, []);
    expect(r.ingest.events_per_s).toBe(0);
    expect(r.ingest.reject_rate_pct).toBeNull();
    expect(r.aggregator.consumer_lag).toBeNull();
  });

  it('keeps a bounded history', () => {
    const book = new RateBook({ windowMs: 10_000, keepMs: 20_000 });
    for (let t = 0; t <= 100_000; t += 1000) book.add(t, new Map([['a', ing(t, 0)]]), new Map());
    expect(book.rates(100_000, []).history.length).toBeLessThanOrEqual(21);
  });
});
