/**
 * The ledger's oracle: exact when every batch was answered, a bound when some never were (a produce
 * that timed out may still have landed in Kafka, so the device's "not acknowledged" proves nothing).
 */
import { describe, expect, it } from 'vitest';
import type { QueryRequest } from '../aggregator/query.ts';
import { DAY_MS } from '../schemas/index.ts';
import { Ledger, outsideBounds } from './ledger.ts';
import { Population } from './population.ts';

const NOW = Date.UTC(2026, 10, 29, 12, 0, 0);
const TODAY = Math.floor(NOW / DAY_MS);
const W = { today: TODAY, maxLatenessDays: 3 };
const REQ: QueryRequest = { report: 'crash-rate', from: TODAY - 2, to: TODAY, by: ['app_id'], format: 'json' };

describe('demo ledger', () => {
  const pop = new Population({ devices: 50, seed: 4, consentWithheldShare: 0, badEventShare: 0, badBodyShare: 0, tooLateShare: 0 });
  const batches = Array.from({ length: 40 }, () => pop.next(NOW));
  const ok = (n: number) => ({ accepted: n, dropped_consent: {}, rejected: [] });

  it('a batch answered 503 at the end is neither counted nor forgotten: it widens the bounds', () => {
    const l = new Ledger();
    batches.slice(0, 30).forEach((b) => l.record(b, 200, ok(b.events.length)));
    batches.slice(30).forEach((b) => l.record(b, 503, { error: { code: 'INGEST_KAFKA_UNAVAILABLE' } }));
    expect(l.tally.unacknowledged).toBe(10);
    expect(l.tally.unacknowledgedByCode).toEqual({ INGEST_KAFKA_UNAVAILABLE: 10 });
    expect(l.tally.surprises).toEqual([]);
    const { lower, upper } = l.oracleBounds(REQ, W);
    const sessions = (rows: typeof lower) => rows.reduce((s, r) => s + Number(r.sessions), 0);
    expect(sessions(upper)).toBeGreaterThan(sessions(lower));
    // Whatever subset of the unacknowledged batches landed, the truth is inside the bounds ...
    const half = new Ledger();
    batches.slice(0, 35).forEach((b) => half.record(b, 200, ok(b.events.length)));
    expect(outsideBounds(half.oracle(REQ, 1, W), lower, upper, ['app_id'])).toEqual([]);
    // ... and a count above everything that was sent is caught (control).
    const inflated = upper.map((r) => ({ ...r, sessions: Number(r.sessions) + 1 }));
    expect(outsideBounds(inflated, lower, upper, ['app_id']).length).toBe(upper.length);
  });

  it('exact oracle: a resend (same event ids) counts once', () => {
    const a = new Ledger();
    const b = new Ledger();
    batches.forEach((x) => a.record(x, 200, ok(x.events.length)));
    batches.forEach((x) => {
      b.record(x, 200, ok(x.events.length));
      b.record(x, 200, ok(x.events.length));
    });
    expect(b.oracle(REQ, 1, W)).toEqual(a.oracle(REQ, 1, W));
  });
});
