/**
 * The bench's load generator, run as its own process so its CPU is not the ingest process's:
 * pre-builds a pool of realistic device batches (Avro container, deflate), then posts them with N
 * keep-alive clients for a warm-up and a measured period. Last stdout line: JSON summary.
 *
 * Usage: tsx bench/loadgen.ts '{"url":"http://127.0.0.1:18080","concurrency":32,"warmupMs":3000,"durationMs":15000,"events":50,"distinct":400}'
 */
import { loadBodies } from '../testing/batches.ts';
import { percentile, runLoad } from '../testing/load.ts';

/** The JSON summary the load generator prints as its last stdout line (bench/ingest.ts reads it). */
export interface LoadgenSummary {
  requests: number;
  by_status: Record<string, number>;
  batches_per_s: number;
  events_per_s: number;
  p50_ms: number;
  p99_ms: number;
  body_bytes: number;
  loadgen_cpu_s: number;
  elapsed_s: number;
}

interface Args {
  url: string;
  concurrency: number;
  warmupMs: number;
  durationMs: number;
  events: number;
  distinct: number;
}

const a = JSON.parse(process.argv[2] ?? '{}') as Args;
// Distinct batches (distinct devices and event ids) cycled through; reposting one is what a device
// retry looks like and costs ingest the same work.
const bodies = loadBodies(a.distinct, a.events);
const bodyBytes = bodies.reduce((s, b) => s + b.length, 0) / bodies.length;

const next = (i: number) => ({ body: bodies[i % bodies.length]!, meta: null });
await runLoad({ url: a.url, concurrency: a.concurrency, durationMs: a.warmupMs, maxRequests: 10_000_000, next });
// The bench reads ingest's CPU time (/proc) at these two marks, so it covers the measured period only.
console.log('MEASURE_START');
const cpu0 = process.cpuUsage();
const r = await runLoad({ url: a.url, concurrency: a.concurrency, durationMs: a.durationMs, maxRequests: 100_000_000, next });
const cpu = process.cpuUsage(cpu0);
console.log('MEASURE_END');
const ok = r.byStatus['200'] ?? 0;
const lat = r.latenciesMs.sort((x, y) => x - y);
const s = r.elapsedMs / 1000;
const summary: LoadgenSummary = {
  requests: r.requests,
  by_status: r.byStatus,
  batches_per_s: ok / s,
  events_per_s: (ok * a.events) / s,
  p50_ms: percentile(lat, 50),
  p99_ms: percentile(lat, 99),
  body_bytes: Math.round(bodyBytes),
  loadgen_cpu_s: (cpu.user + cpu.system) / 1e6,
  elapsed_s: s,
};
console.log(JSON.stringify(summary));
