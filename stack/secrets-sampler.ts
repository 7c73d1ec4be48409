/**
 * A sampler of every process's command line and environment (/proc/<pid>/cmdline, /proc/<pid>/environ),
 * for the tests that show no secret of the secured stack is ever on a command line or in an environment
 * (stack/secrets-hygiene.int.test.ts, stack/secrets-rotation.int.test.ts; stack/README.md, "Secrets").
 *
 * It runs in a worker thread, so its pace does not depend on what the test's own event loop is doing,
 * and keeps each distinct command line and environment it saw (not one copy per sample), because the
 * secrets to look for may not exist yet when sampling starts (the stack generates them): the caller greps
 * the set afterwards. It also reports how often it sampled (the largest gap between two samples) so a test
 * can show a process living only tens of milliseconds would have been seen.
 */
import { Worker } from 'node:worker_threads';

export interface SampleReport {
  samples: number;
  /** Largest time between the starts of two samples, ms. */
  maxGapMs: number;
  /** Every distinct `pid comm: cmdline` line (NULs as spaces) seen. */
  cmdlines: string[];
  /** Every distinct environment (NUL-separated entries joined by newlines) seen, with its pid. */
  environs: string[];
}

export interface Sampler {
  stop(): Promise<SampleReport>;
}

// Plain JavaScript: the worker is evaluated as a script, without the TypeScript loader.
const WORKER = `
const { parentPort, workerData } = require('node:worker_threads');
const fs = require('node:fs');
const stop = new Int32Array(workerData.stop);
const sleeper = new Int32Array(new SharedArrayBuffer(4));
const cmdlines = new Set();
const environs = new Set();
let samples = 0;
let maxGapMs = 0;
let last = 0;
const self = String(process.pid);
while (Atomics.load(stop, 0) === 0) {
  const t = performance.now();
  if (last) maxGapMs = Math.max(maxGapMs, t - last);
  last = t;
  let pids = [];
  try { pids = fs.readdirSync('/proc').filter((d) => /^[0-9]+$/.test(d)); } catch {}
  for (const pid of pids) {
    let cmd;
    try { cmd = fs.readFileSync('/proc/' + pid + '/cmdline'); } catch { continue; }
    if (cmd.length > 0) {
      let comm = '';
      try { comm = fs.readFileSync('/proc/' + pid + '/comm', 'utf8').trim(); } catch {}
      cmdlines.add(pid + ' ' + comm + ': ' + cmd.toString('utf8').split('\\0').join(' ').trim());
    }
    if (workerData.environ && pid !== self) {
      try {
        const env = fs.readFileSync('/proc/' + pid + '/environ');
        if (env.length > 0) environs.add(pid + '\\n' + env.toString('utf8').split('\\0').join('\\n'));
      } catch {}
    }
  }
  samples++;
  const left = workerData.intervalMs - (performance.now() - t);
  if (left > 0) Atomics.wait(sleeper, 0, 0, left);
}
parentPort.postMessage({ samples, maxGapMs, cmdlines: [...cmdlines], environs: [...environs] });
`;

/** Starts sampling every `intervalMs` (default 20) until stop(). `environ: false` skips environments. */
export function startSampler(opts: { intervalMs?: number; environ?: boolean } = {}): Sampler {
  const stopFlag = new SharedArrayBuffer(4);
  const worker = new Worker(WORKER, { eval: true, workerData: { stop: stopFlag, intervalMs: opts.intervalMs ?? 20, environ: opts.environ ?? true } });
  const report = new Promise<SampleReport>((resolve, reject) => {
    worker.once('message', (m: SampleReport) => resolve(m));
    worker.once('error', reject);
  });
  return {
    async stop() {
      Atomics.store(new Int32Array(stopFlag), 0, 1);
      const r = await report;
      await worker.terminate();
      return r;
    },
  };
}

/** Where a secret shows up in a report: `cmdline of <pid> <comm>` / `environment of <pid>`, never the secret itself. */
export function secretHits(report: SampleReport, secrets: Record<string, string>): string[] {
  const hits: string[] = [];
  for (const [label, secret] of Object.entries(secrets)) {
    if (!secret) continue;
    for (const c of report.cmdlines) if (c.includes(secret)) hits.push(`${label} in the command line of ${c.slice(0, c.indexOf(':'))}`);
    for (const e of report.environs) if (e.includes(secret)) hits.push(`${label} in the environment of pid ${e.slice(0, e.indexOf('\n'))}`);
  }
  return hits;
}
