/**
 * The device simulator: posts the population's batches over real HTTP to the ingest workers,
 * round-robin (what a load balancer in front of stateless ingest copies does), at a target event rate,
 * for a bounded time and a bounded number of batches. Behaves like the SDK: a 429/503 or a dropped
 * connection is retried on the next worker after Retry-After (capped at 5 s, at most 8 times, not
 * longer than 20 s past the run); a 4xx is final; a "lost answer" (the population's resend share)
 * posts the same bytes again to the next worker.
 */
import http from 'node:http';
import { setTimeout as sleep } from 'node:timers/promises';
import { postOnce } from '../testing/load.ts';
import { Ledger } from './ledger.ts';
import type { PlannedBatch, Population } from './population.ts';

export interface SimulatorOptions {
  /** Base URLs of the ingest workers (http://127.0.0.1:18180). */
  urls: string[];
  population: Population;
  /** Target events per second over all workers. */
  ratePerSec: number;
  durationMs: number;
  /** Concurrent HTTP clients (devices uploading at the same moment). @default 16 */
  concurrency?: number;
  /** Hard bound on batches planned. @default 1_000_000 */
  maxBatches?: number;
  /** Stops planning new batches (Ctrl-C); batches in flight still get their answer. */
  signal?: AbortSignal;
  now?: () => number;
  ledger?: Ledger;
}

export interface SimulatorResult {
  ledger: Ledger;
  elapsedMs: number;
  /** Events per second actually posted (first sends). */
  eventsPerSec: number;
}

const RETRYABLE = new Set([429, 503]);
const MAX_RETRIES = 8;
/** How long past the end of the run a device keeps retrying an unanswered batch. */
const RETRY_GRACE_MS = 20_000;

export async function runSimulator(o: SimulatorOptions): Promise<SimulatorResult> {
  if (o.urls.length === 0) throw new Error('simulator: no ingest URL');
  const ledger = o.ledger ?? new Ledger();
  const now = o.now ?? Date.now;
  const agents = o.urls.map(() => new http.Agent({ keepAlive: true, maxSockets: o.concurrency ?? 16 }));
  const targets = o.urls.map((u) => new URL(u));
  const maxBatches = o.maxBatches ?? 1_000_000;
  let rr = 0;
  let plannedEvents = 0;
  let planned = 0;
  const t0 = performance.now();
  const deadline = t0 + o.durationMs;

  /** One POST with the SDK's retry rule; returns the final status and parsed body. */
  const post = async (body: Buffer, contentType: string): Promise<{ status: number; body: unknown }> => {
    for (let attempt = 0; ; attempt++) {
      const i = rr++ % targets.length;
      let status = 0;
      let parsed: unknown;
      let retryAfterS = 1;
      const t = performance.now();
      try {
        const a = await postOnce(agents[i]!, targets[i]!, body, contentType);
        status = a.status;
        retryAfterS = Number(a.retryAfter ?? 1) || 1;
        try {
          parsed = JSON.parse(a.text);
        } catch {
          parsed = undefined;
        }
      } catch {
        status = 0;
      }
      ledger.countPost(status === 0 ? 'error' : String(status), status === 0 ? undefined : performance.now() - t);
      // Like the SDK: keep a batch until it is answered 200 or 4xx, honouring Retry-After; give up only
      // after MAX_RETRIES or well past the end of the run (the ledger then keeps it as "unacknowledged").
      if ((status === 0 || RETRYABLE.has(status)) && attempt < MAX_RETRIES && performance.now() < deadline + RETRY_GRACE_MS && !o.signal?.aborted) {
        ledger.tally.retries++;
        await sleep(Math.min(5000, retryAfterS * 1000));
        continue;
      }
      return { status, body: parsed };
    }
  };

  const client = async () => {
    while (planned < maxBatches && !o.signal?.aborted) {
      const b: PlannedBatch = o.population.next(now());
      planned++;
      // Pace by events, not batches: the rate the user asked for is events per second.
      const due = t0 + (plannedEvents / o.ratePerSec) * 1000;
      plannedEvents += b.events.length;
      // Stop at the deadline by the schedule and by the clock: when ingest falls behind the asked rate
      // (a loaded machine), the run still ends on time and the report shows the rate reached.
      if (due > deadline || performance.now() > deadline) break;
      const wait = due - performance.now();
      if (wait > 0) await sleep(wait);
      if (o.signal?.aborted) break;
      const first = await post(b.body, b.contentType);
      ledger.record(b, first.status, first.body);
      for (let k = 0; k < b.resends && !o.signal?.aborted; k++) {
        ledger.tally.resends++;
        await post(b.body, b.contentType);
      }
    }
  };
  try {
    await Promise.all(Array.from({ length: o.concurrency ?? 16 }, client));
  } finally {
    for (const a of agents) a.destroy();
  }
  const elapsedMs = performance.now() - t0;
  return { ledger, elapsedMs, eventsPerSec: ledger.tally.eventsSent / (elapsedMs / 1000) };
}
