// Runs ingest or the aggregator as a child process (`node --import tsx <main>`) with a given
// environment and collects everything it prints until it exits; for the tests that check what a
// service says when its security settings are incomplete or wrong.
import { spawn } from 'node:child_process';
import path from 'node:path';
import { REPO_ROOT } from '../stack/config.ts';

export interface ServiceRun {
  code: number | null;
  /** stdout and stderr, in arrival order per stream. */
  output: string;
  stdout: string;
  stderrLines: string[];
  /** Killed at the deadline instead of exiting by itself. */
  timedOut: boolean;
}

export function runService(service: 'ingest' | 'aggregator', env: Record<string, string>, timeoutMs = 60_000): Promise<ServiceRun> {
  return runScript(path.join(service, 'main.ts'), [], env, timeoutMs);
}

/** Any of the project's commands (`tools/rights.ts`, ...) as a child process, awaited: the same capture as runService. */
export function runScript(script: string, args: string[], env: Record<string, string>, timeoutMs = 60_000): Promise<ServiceRun> {
  const proc = spawn(process.execPath, ['--import', 'tsx', script, ...args], {
    cwd: REPO_ROOT,
    // Only what the service needs: no PIPELINE_/INGEST_/AGGREGATOR_ variable of the test runner leaks in.
    env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    proc.kill('SIGKILL');
  }, timeoutMs);
  return new Promise((resolve) =>
    proc.once('close', (code) => {
      clearTimeout(timer);
      resolve({ code, output: `${out}${err}`, stdout: out, stderrLines: err.split('\n').filter((l) => l.length > 0), timedOut });
    }),
  );
}
