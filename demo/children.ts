/**
 * The demo's child processes (two ingest workers, one aggregator) and how they are stopped.
 *
 * Children run in their own process group (detached), so a Ctrl-C in the terminal reaches only the
 * demo, which then stops them in order (ingest first so it drains into Kafka, then the aggregator so it
 * flushes to ClickHouse) instead of all at once. Each child is recorded in a pid file with a marker
 * that appears in its command line (`--demo-run=<run>:<service>`), the same scheme stack/ uses:
 * a pid is only ever signalled while /proc/<pid>/cmdline still carries that marker, so a recycled pid
 * or someone else's `npm run ingest` is never touched, and nothing is found by name.
 *
 * If the demo itself dies without cleaning up (SIGKILL, a closed terminal), its run directory keeps an
 * `owner.pid`; the next demo finds runs whose owner is gone and stops what they left (`reapStaleRuns`).
 *
 * Ingest and aggregator children are registered as scrape targets of the stack's Prometheus
 * (`stack:up -- --monitoring`, stack/README.md "Monitoring") while they run, so its alerts and graphs
 * cover the demo; the registration is a file, harmless when Prometheus is not running.
 */
import { existsSync, mkdirSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { isOurProcess, readPidRecord, spawnService, stopRecorded, tailOf, type PidRecord } from '../stack/proc.ts';
import { loadStackConfig } from '../stack/config.ts';
import { registerTarget, unregisterTargets, type MonitoredJob } from '../stack/monitoring.ts';

/** The scrape job of a child, by the script it runs (the job names of deploy/prometheus/alerts.yml). */
const SCRAPE_JOBS: Readonly<Record<string, MonitoredJob>> = { 'ingest/main.ts': 'ingest', 'aggregator/main.ts': 'aggregator' };
const targetPrefix = (runId: string) => `demo-${runId}-`;

export interface ChildSpec {
  service: string;
  /** Node script to run with tsx, relative to `cwd`. */
  script: string;
  env: NodeJS.ProcessEnv;
  ports: number[];
}

export interface RunningChild {
  service: string;
  pid: number;
  ports: number[];
  logFile: string;
  pidFile: string;
  marker: string;
}

/** Environment for a child: this process's, minus every service setting (a stray one would be used or refused). */
export function childEnv(base: NodeJS.ProcessEnv, own: Record<string, string>): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  for (const [k, v] of Object.entries(base)) {
    if (/^(INGEST|AGGREGATOR|PIPELINE|DASHBOARD)_/.test(k)) continue;
    env[k] = v;
  }
  return { ...env, ...own };
}

export class DemoProcesses {
  readonly children: RunningChild[] = [];
  private readonly unmonitor = new Map<string, () => void>();

  constructor(
    readonly runDir: string,
    readonly runId: string,
    private readonly cwd: string,
  ) {
    mkdirSync(path.join(runDir, 'run'), { recursive: true });
    writeFileSync(path.join(runDir, 'owner.pid'), String(process.pid));
  }

  start(spec: ChildSpec): RunningChild {
    const marker = `--demo-run=${this.runId}:${spec.service}`;
    const logFile = path.join(this.runDir, `${spec.service}.log`);
    const pidFile = path.join(this.runDir, 'run', `${spec.service}.pid`);
    // `marker` is an extra argument after the script: neither ingest/main.ts nor aggregator/main.ts reads
    // argv, and it makes this process recognisable in /proc for as long as it lives.
    const rec: PidRecord = spawnService({
      service: spec.service,
      command: process.execPath,
      args: ['--import', 'tsx', spec.script, marker],
      cwd: this.cwd,
      logFile,
      pidFile,
      marker,
      ports: spec.ports,
      env: spec.env,
    });
    const child: RunningChild = { service: spec.service, pid: rec.pid, ports: spec.ports, logFile, pidFile, marker };
    this.children.push(child);
    const job = SCRAPE_JOBS[spec.script];
    if (job && spec.ports[0] !== undefined) {
      this.unmonitor.set(spec.service, registerTarget(loadStackConfig(), job, `127.0.0.1:${spec.ports[0]}`, `${targetPrefix(this.runId)}${spec.service}`));
    }
    return child;
  }

  alive(c: RunningChild): boolean {
    return isOurProcess(c.pid, c.marker);
  }

  /** Last lines of a child's log (start failures say why there). */
  tail(c: RunningChild, lines = 8): string {
    return tailOf(c.logFile, lines);
  }

  /**
   * Stops children in the order given (each: SIGTERM, SIGKILL after `graceMs`, then waits until its
   * ports can be bound again). Returns the services stopped; never throws for one child's trouble
   * before trying the others.
   */
  async stop(services: string[] | 'all' = 'all', graceMs = 25_000): Promise<{ stopped: string[]; problems: string[] }> {
    const order = services === 'all' ? [...this.children].reverse().map((c) => c.service) : services;
    const stopped: string[] = [];
    const problems: string[] = [];
    for (const name of order) {
      const c = this.children.find((x) => x.service === name);
      if (!c) continue;
      try {
        this.unmonitor.get(name)?.();
        if (await stopRecorded(c.pidFile, { graceMs })) stopped.push(name);
      } catch (e) {
        problems.push(`${name}: ${(e as Error).message}`);
      }
    }
    return { stopped, problems };
  }

  /** Removes the run directory's bookkeeping once everything is stopped (logs stay unless `logs`). */
  finish(opts: { removeLogs: boolean }): void {
    rmSync(path.join(this.runDir, 'owner.pid'), { force: true });
    rmSync(path.join(this.runDir, 'run'), { recursive: true, force: true });
    if (opts.removeLogs) rmSync(this.runDir, { recursive: true, force: true });
  }
}

function ownerAlive(runDir: string): boolean {
  const file = path.join(runDir, 'owner.pid');
  if (!existsSync(file)) return false;
  const pid = Number(readFileSync(file, 'utf8').trim());
  if (!Number.isInteger(pid) || pid <= 0) return false;
  try {
    process.kill(pid, 0);
    // Alive, and a node process (a recycled pid of something else would not make the run alive).
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').includes('node');
  } catch {
    return false;
  }
}

export interface StaleRun {
  runDir: string;
  runId: string;
  stopped: string[];
  /** What the run created outside this folder (topics, database): the caller removes them. */
  resources: unknown;
}

/**
 * Finds runs under `baseDir` whose demo process is gone, stops the children they recorded (by pid and
 * marker only) and returns them so the caller can remove their topics and database.
 */
export async function reapStaleRuns(baseDir: string): Promise<StaleRun[]> {
  if (!existsSync(baseDir)) return [];
  const out: StaleRun[] = [];
  for (const name of readdirSync(baseDir)) {
    const runDir = path.join(baseDir, name);
    const runFiles = path.join(runDir, 'run');
    if (!existsSync(runFiles) || ownerAlive(runDir)) continue;
    const stopped: string[] = [];
    for (const f of readdirSync(runFiles)) {
      if (!f.endsWith('.pid')) continue;
      const rec = readPidRecord(path.join(runFiles, f));
      if (rec && (await stopRecorded(path.join(runFiles, f), { graceMs: 10_000 }).catch(() => false))) stopped.push(rec.service);
    }
    let resources: unknown;
    try {
      resources = JSON.parse(readFileSync(path.join(runDir, 'resources.json'), 'utf8'));
    } catch {
      resources = undefined;
    }
    rmSync(runFiles, { recursive: true, force: true });
    rmSync(path.join(runDir, 'owner.pid'), { force: true });
    unregisterTargets(loadStackConfig(), targetPrefix(name));
    out.push({ runDir, runId: name, stopped, resources });
  }
  return out;
}

/** Polls `check` until it returns true, a child dies, or the deadline passes. */
export async function waitFor(
  what: string,
  check: () => Promise<boolean>,
  opts: { timeoutMs: number; intervalMs?: number; abortIf?: () => string | undefined },
): Promise<void> {
  const deadline = Date.now() + opts.timeoutMs;
  for (;;) {
    const reason = opts.abortIf?.();
    if (reason) throw new Error(`${what}: ${reason}`);
    if (await check().catch(() => false)) return;
    if (Date.now() > deadline) throw new Error(`${what}: not ready after ${Math.round(opts.timeoutMs / 1000)} s`);
    await sleep(opts.intervalMs ?? 250);
  }
}
