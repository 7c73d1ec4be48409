/**
 * The state one demo run shares between its phases: demo.ts sets it up phase by phase, report.ts
 * reads it for the report, cleanup.ts undoes it. One explicit object instead of closures, so each
 * phase shows what it reads and what it sets.
 */
import { setTimeout as sleep } from 'node:timers/promises';
import type { RunningDashboard } from '../dashboard/server.ts';
import type { ExternalServices, StackConfig } from '../stack/config.ts';
import type { StackInfo } from '../testing/stack.ts';
import type { DemoProcesses, RunningChild } from './children.ts';

export interface DemoOptions {
  durationS: number;
  rate: number;
  devices: number;
  seed: number;
  ports: { ingest: [number, number]; aggregator: number; dashboard: number };
  /** k-anonymity threshold for the aggregator views, the query and the dashboard. @default 5 */
  minGroupDevices?: number;
  /** Partitions of each demo topic. @default 3 */
  partitions?: number;
  /** Run id (topic prefix, database name). @default demo_<time> */
  runId?: string;
  /** Where runs keep logs and bookkeeping. @default <repo>/.local/demo */
  baseDir?: string;
  /** Aborts the simulator early (Ctrl-C); the report still follows. */
  signal?: AbortSignal;
  log?: (line: string) => void;
}

/**
 * What a run creates outside its own folder. Written to `<runDir>/resources.json` before anything is
 * created, so a run killed half-way is cleaned up by the next one (children.ts, `reapStaleRuns`).
 */
export interface Resources {
  topics: string[];
  database: string;
  brokers: string[];
  clickhouseUrl: string;
  keyDir: string;
}

export interface CleanupResult {
  stopped: string[];
  removed: string[];
  problems: string[];
  leftRunning: string[];
  /** Milliseconds per cleanup step. */
  timings: Record<string, number>;
}

/** The shared settings every child gets: the stack's brokers and the run's own topic names. */
export interface PipelineEnv {
  PIPELINE_KAFKA_BROKERS: string;
  PIPELINE_TOPIC_EVENTS: string;
  PIPELINE_TOPIC_PERSONAL_PREFIX: string;
  PIPELINE_TOPIC_RIGHTS_PREFIX: string;
  PIPELINE_TOPIC_REJECTS_PREFIX: string;
}

/** The local stack as the run found it: what it started itself is what cleanup may stop. */
export interface RunStack {
  config: StackConfig;
  external: ExternalServices;
  /** Parts this run started ('kafka', 'clickhouse'); empty when the stack was already running. */
  started: string[];
  info: StackInfo;
}

export interface DemoRun {
  readonly opts: DemoOptions;
  readonly log: (line: string) => void;
  /** k-anonymity threshold of the aggregator, the query and the dashboard. */
  readonly k: number;
  /** Topic prefix and database name. */
  readonly runId: string;
  /** Logs, pid files, resources.json and the day secrets of this run. */
  readonly runDir: string;
  /** When startDemo began (Date.now()). */
  readonly startedAt: number;
  readonly stack: RunStack;
  readonly env: PipelineEnv;
  readonly topics: string[];
  readonly resources: Resources;
  readonly procs: DemoProcesses;
  /** The consumer group of the run's aggregator. */
  readonly groupId: string;
  /** Set by startChildren: ingest-a, ingest-b, aggregator. */
  children: RunningChild[];
  /** Set once the dashboard is up; cleanup closes it. */
  dashboard?: RunningDashboard;
  /** Set by the first stopRun; later calls get the same result. */
  stopping?: Promise<CleanupResult>;
}

/** Passed to the aggregator and to the oracle, so both keep the same events out as too late. */
export const AGG_MAX_LATENESS_DAYS = 3;

/**
 * Runs `fn` until it succeeds or `timeoutMs` passes (then throws its last error). On a shared machine a
 * broker or ClickHouse may be restarting for a moment; a demo should ride that out, not crash.
 */
export async function retrying<T>(fn: () => Promise<T>, timeoutMs: number, intervalMs = 1000): Promise<T> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      return await fn();
    } catch (e) {
      if (Date.now() + intervalMs > deadline) throw e;
      await sleep(intervalMs);
    }
  }
}
