/**
 * bench:split — events/s per core (single thread) of the full split path versus bare avsc decoding of
 * the same bytes, in the same run. Full path = `CompiledSplit.processBody`: hostile-Avro checks + decode +
 * validate + consent + daily token / event keys + split + encode (EventFact per event, one personal
 * record), i.e. what ingest does with a binary body. The generic path (guardBody + avsc decode +
 * processBatch, still used for Avro-JSON, other writer schemas and any body the fast path hands back)
 * is measured too, for reference.
 * Last line: JSON with events_per_s, baseline_events_per_s, cost_ratio (= baseline / full: how many
 * times slower the full path is; target <= 3).
 */
import { compileSplit, guardBody, DEFAULT_LIMITS, DailyTokenizer, EnvKeySource } from '../schemas/index.ts';
import { FAST_PATHS } from '../schemas/compile.ts';
import { batch, NOW } from '../testing/schema-fixtures.ts';

const EVENTS = 50;
const BATCHES = 64;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 15);
const MIN_MS = Number(process.env.BENCH_MIN_MS ?? 200);

const p = compileSplit();
const key = Buffer.alloc(32, 3).toString('base64');
const tokenizer = new DailyTokenizer(new EnvKeySource(`2026-11-29:${key},2026-11-28:${key}`));
const bodies = Array.from({ length: BATCHES }, () => p.batchType.toBuffer(batch(EVENTS)));
const limits = { ...DEFAULT_LIMITS, maxItems: { events: 1000 } };
const avgBytes = bodies.reduce((n, b) => n + b.length, 0) / BATCHES;
const ctx = { receivedAt: NOW, clientIp: '203.0.113.7', tokenizer };

// The bench must measure the fast path, not a silent fallback: every body must be answered by it.
const fast = FAST_PATHS.get(p);
if (!fast || bodies.some((b) => !fast(b, ctx, limits))) throw new Error('the fast path does not answer the bench bodies: it would measure the generic path');

let sink = 0;
function baseline(): void {
  for (const b of bodies) sink += (p.batchType.fromBuffer(b) as { events: unknown[] }).events.length;
}
function check(r: { accepted: number; rejects: unknown[]; events: unknown[]; personal: unknown[] }): void {
  if (r.accepted !== EVENTS) throw new Error(`expected ${EVENTS} accepted, got ${r.accepted}: ${JSON.stringify(r.rejects[0])}`);
  sink += r.events.length + r.personal.length;
}
function full(): void {
  for (const b of bodies) check(p.processBody(b, ctx, limits));
}
function generic(): void {
  for (const b of bodies) {
    guardBody(p.batchType, b, limits);
    check(p.processBatch(p.batchType.fromBuffer(b), ctx));
  }
}

function rate(fn: () => void): number {
  let n = 0;
  const t0 = process.hrtime.bigint();
  let dt = 0;
  do {
    fn();
    n++;
    dt = Number(process.hrtime.bigint() - t0) / 1e6;
  } while (dt < MIN_MS);
  return (n * BATCHES * EVENTS) / (dt / 1000);
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)]!;

// Warm up every path (JIT), then measure in short back-to-back pairs (order alternating), so that the
// load of the shared machine, which swings by 2x within seconds, hits both sides of a pair alike. The
// ratio is the median of the per-pair ratios; the rates are medians too.
for (let i = 0; i < 30; i++) {
  baseline();
  full();
  if (i % 5 === 0) generic();
}
const base: number[] = [];
const fullR: number[] = [];
const genR: number[] = [];
const ratios: number[] = [];
const genRatios: number[] = [];
for (let r = 0; r < ROUNDS; r++) {
  let x: number;
  let y: number;
  if (r % 2 === 0) {
    x = rate(baseline);
    y = rate(full);
  } else {
    y = rate(full);
    x = rate(baseline);
  }
  base.push(x);
  fullR.push(y);
  ratios.push(x / y);
  if (r % 3 === 0) {
    const z = rate(generic);
    genR.push(z);
    genRatios.push(rate(baseline) / z);
  }
}
const b = median(base);
const f = median(fullR);
const g = median(genR);
const ratio = median(ratios);
const genRatio = median(genRatios);
const row = (name: string, xs: number[], m: number) =>
  `${name.padEnd(52)} ${Math.round(m).toString().padStart(10)} ${Math.round(Math.min(...xs))
    .toString()
    .padStart(10)} ${Math.round(Math.max(...xs))
    .toString()
    .padStart(10)}`;
console.log(`batches of ${EVENTS} mixed events, ${Math.round(avgBytes)} bytes each; ${ROUNDS} rounds of >= ${MIN_MS} ms; events/s on one thread`);
console.log(`${'path'.padEnd(52)} ${'median'.padStart(10)} ${'min'.padStart(10)} ${'max'.padStart(10)}`);
console.log(row('avsc decode only (baseline)', base, b));
console.log(row('processBody: checks+decode+validate+consent+split+encode', fullR, f));
console.log(row('generic: guardBody+avsc decode+processBatch (reference)', genR, g));
console.log(
  `cost ratio (baseline / full, median of ${ROUNDS} pairs): ${ratio.toFixed(2)} [pairs ${Math.min(...ratios).toFixed(2)}..${Math.max(...ratios).toFixed(2)}]  (target <= 3); generic path ${genRatio.toFixed(2)}   [sink ${sink % 10}]`,
);
console.log(
  JSON.stringify({
    events_per_s: Math.round(f),
    baseline_events_per_s: Math.round(b),
    cost_ratio: Number(ratio.toFixed(3)),
    generic_events_per_s: Math.round(g),
    generic_cost_ratio: Number(genRatio.toFixed(3)),
    events_per_batch: EVENTS,
    bytes_per_batch: Math.round(avgBytes),
    rounds: ROUNDS,
  }),
);
