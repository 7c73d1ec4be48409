/**
 * bench:split — events/s per core (single thread) of the full split path versus bare avsc decoding of
 * the same bytes, in the same run. Full path = guardBody (hostile-Avro walk) + avsc decode + validate +
 * consent + daily token / event keys + split + encode (EventFact per event, one personal record).
 * Last line: JSON with events_per_s, baseline_events_per_s, cost_ratio (= baseline / full: how many
 * times slower the full path is; target <= 3).
 */
import { compilePipeline, guardBody, DEFAULT_LIMITS, DailyTokenizer, EnvKeySource } from '../schemas/index.ts';
import { batch, NOW } from '../schemas/test/fixtures.ts';

const EVENTS = 50;
const BATCHES = 64;
const ROUNDS = Number(process.env.BENCH_ROUNDS ?? 7);
const MIN_MS = Number(process.env.BENCH_MIN_MS ?? 400);

const p = compilePipeline();
const key = Buffer.alloc(32, 3).toString('base64');
const tokenizer = new DailyTokenizer(new EnvKeySource(`2026-11-29:${key},2026-11-28:${key}`));
const bodies = Array.from({ length: BATCHES }, () => p.batchType.toBuffer(batch(EVENTS)));
const limits = { ...DEFAULT_LIMITS, maxItems: { events: 1000 } };
const avgBytes = bodies.reduce((n, b) => n + b.length, 0) / BATCHES;

let sink = 0;
function baseline(): void {
  for (const b of bodies) sink += (p.batchType.fromBuffer(b) as { events: unknown[] }).events.length;
}
function full(): void {
  for (const b of bodies) {
    guardBody(p.batchType, b, limits);
    const r = p.processBatch(p.batchType.fromBuffer(b), { receivedAt: NOW, clientIp: '203.0.113.7', tokenizer });
    if (r.accepted !== EVENTS) throw new Error(`expected ${EVENTS} accepted, got ${r.accepted}: ${JSON.stringify(r.rejects[0])}`);
    sink += r.events.length + r.personal.length;
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

// Warm up both paths (JIT), then alternate rounds so background load hits both alike.
for (let i = 0; i < 30; i++) {
  baseline();
  full();
}
const base: number[] = [];
const fullR: number[] = [];
for (let r = 0; r < ROUNDS; r++) {
  base.push(rate(baseline));
  fullR.push(rate(full));
}
const b = median(base);
const f = median(fullR);
const row = (name: string, xs: number[], m: number) => `${name.padEnd(44)} ${Math.round(m).toString().padStart(10)} ${Math.round(Math.min(...xs)).toString().padStart(10)} ${Math.round(Math.max(...xs)).toString().padStart(10)}`;
console.log(`batches of ${EVENTS} mixed events, ${Math.round(avgBytes)} bytes each; ${ROUNDS} rounds of >= ${MIN_MS} ms; events/s on one thread`);
console.log(`${'path'.padEnd(44)} ${'median'.padStart(10)} ${'min'.padStart(10)} ${'max'.padStart(10)}`);
console.log(row('avsc decode only (baseline)', base, b));
console.log(row('guard+decode+validate+consent+split+encode', fullR, f));
console.log(`cost ratio (baseline / full): ${(b / f).toFixed(2)}  (target <= 3)   [sink ${sink % 10}]`);
console.log(JSON.stringify({ events_per_s: Math.round(f), baseline_events_per_s: Math.round(b), cost_ratio: Number((b / f).toFixed(3)), events_per_batch: EVENTS, bytes_per_batch: Math.round(avgBytes), rounds: ROUNDS }));
