// Process and port plumbing for the local stack. Services are started detached with their output in a
// log file, and remembered in a pid file that also holds a marker (the service's own config path) that
// must appear in /proc/<pid>/cmdline. That marker is why stopping is safe: a pid is only signalled if it
// is still the process we started, never a later process that happened to receive the same pid, and never
// anything found by name.
import { spawn } from 'node:child_process';
import { closeSync, existsSync, mkdirSync, openSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { StackError } from './errors.ts';

export interface PidRecord {
  pid: number;
  /** A string that appears in the process's command line (its config file path). */
  marker: string;
  service: string;
  ports: number[];
  startedAt: string;
}

export function readPidRecord(file: string): PidRecord | undefined {
  if (!existsSync(file)) return undefined;
  try {
    const rec = JSON.parse(readFileSync(file, 'utf8')) as PidRecord;
    return Number.isInteger(rec.pid) && typeof rec.marker === 'string' ? rec : undefined;
  } catch {
    return undefined;
  }
}

/** True when `pid` is a live (not zombie) process whose command line contains `marker`. */
export function isOurProcess(pid: number, marker: string): boolean {
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
    // Field 3 (after the parenthesised command name) is the state; Z = zombie, X = dead.
    const state = stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3);
    if (state === 'Z' || state === 'X') return false;
    const cmdline = readFileSync(`/proc/${pid}/cmdline`, 'utf8').split('\0').join(' ');
    return cmdline.includes(marker);
  } catch {
    return false;
  }
}

/** The recorded process if it is still alive and still ours; clears a stale record. */
export function liveRecord(file: string): PidRecord | undefined {
  const rec = readPidRecord(file);
  if (!rec) return undefined;
  if (isOurProcess(rec.pid, rec.marker)) return rec;
  rmSync(file, { force: true });
  return undefined;
}

/** Can we bind host:port right now? Binding is the only check that sees every listener, answering or not. */
export function portIsFree(port: number, host = '127.0.0.1'): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = net.createServer();
    srv.once('error', () => resolve(false));
    srv.listen({ port, host, exclusive: true }, () => srv.close(() => resolve(true)));
  });
}

/** Does something accept TCP connections on host:port? */
export function portAnswers(port: number, host = '127.0.0.1', timeoutMs = 1000): Promise<boolean> {
  return new Promise((resolve) => {
    const sock = net.connect({ port, host });
    const done = (ok: boolean) => {
      sock.destroy();
      resolve(ok);
    };
    sock.setTimeout(timeoutMs, () => done(false));
    sock.once('connect', () => done(true));
    sock.once('error', () => done(false));
  });
}

export interface SpawnSpec {
  service: string;
  command: string;
  args: string[];
  cwd: string;
  logFile: string;
  pidFile: string;
  marker: string;
  ports: number[];
  env?: NodeJS.ProcessEnv;
  /** Run as this user/group (a root stack runs PostgreSQL as Debian's `postgres` user: it refuses root). */
  uid?: number;
  gid?: number;
}

/** Starts a service detached from this process (it outlives the CLI or test run) and records its pid. */
export function spawnService(spec: SpawnSpec): PidRecord {
  mkdirSync(path.dirname(spec.logFile), { recursive: true });
  mkdirSync(path.dirname(spec.pidFile), { recursive: true });
  const fd = openSync(spec.logFile, 'a');
  try {
    const child = spawn(spec.command, spec.args, {
      cwd: spec.cwd,
      detached: true,
      stdio: ['ignore', fd, fd],
      env: spec.env ?? process.env,
      ...(spec.uid !== undefined ? { uid: spec.uid } : {}),
      ...(spec.gid !== undefined ? { gid: spec.gid } : {}),
    });
    if (child.pid === undefined) {
      throw new StackError('STACK_START_FAILED', `${spec.service}: could not start ${spec.command} (see ${spec.logFile})`);
    }
    // Spawn errors (ENOENT after all) arrive asynchronously; the caller's readiness wait notices the
    // process is gone, so the handler only has to keep the error from crashing this process.
    child.on('error', () => {});
    child.unref();
    const rec: PidRecord = {
      pid: child.pid,
      marker: spec.marker,
      service: spec.service,
      ports: spec.ports,
      startedAt: new Date().toISOString(),
    };
    writeFileSync(spec.pidFile, JSON.stringify(rec, null, 2) + '\n');
    return rec;
  } finally {
    closeSync(fd);
  }
}

function signal(pid: number, sig: NodeJS.Signals): void {
  try {
    process.kill(pid, sig);
  } catch {
    // already gone
  }
}

/**
 * Stops the recorded process: SIGTERM (Kafka and ClickHouse both shut down cleanly on it; `signal` for a
 * service that wants another, e.g. PostgreSQL's fast shutdown on SIGINT), SIGKILL after
 * `graceMs`, then waits until every port it held can be bound again, so the next start never races the
 * old process's sockets.
 */
export async function stopRecorded(pidFile: string, opts: { graceMs?: number; kill?: boolean; signal?: NodeJS.Signals } = {}): Promise<boolean> {
  const rec = liveRecord(pidFile);
  if (!rec) {
    rmSync(pidFile, { force: true });
    return false;
  }
  const graceMs = opts.graceMs ?? 20_000;
  signal(rec.pid, opts.kill ? 'SIGKILL' : (opts.signal ?? 'SIGTERM'));
  const deadline = Date.now() + graceMs;
  while (isOurProcess(rec.pid, rec.marker) && Date.now() < deadline) await sleep(100);
  if (isOurProcess(rec.pid, rec.marker)) {
    signal(rec.pid, 'SIGKILL');
    const killDeadline = Date.now() + 10_000;
    while (isOurProcess(rec.pid, rec.marker) && Date.now() < killDeadline) await sleep(100);
    if (isOurProcess(rec.pid, rec.marker)) {
      throw new StackError('STACK_STOP_TIMEOUT', `${rec.service} (pid ${rec.pid}) did not exit after SIGKILL`);
    }
  }
  rmSync(pidFile, { force: true });
  await waitPortsFree(rec.ports, 15_000, rec.service);
  return true;
}

export async function waitPortsFree(ports: number[], timeoutMs: number, service: string): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (const port of ports) {
    while (!(await portIsFree(port))) {
      if (Date.now() > deadline) {
        throw new StackError('STACK_STOP_TIMEOUT', `${service}: port ${port} still held ${timeoutMs} ms after the process exited`);
      }
      await sleep(100);
    }
  }
}

/** Last lines of a log file, for start failures: the cause is nearly always there. */
export function tailOf(file: string, lines = 5): string {
  try {
    const text = readFileSync(file, 'utf8').trimEnd().split('\n');
    return text.slice(-lines).join(' | ');
  } catch {
    return '';
  }
}

/**
 * A cross-process lock (O_EXCL file holding the owner's pid). Concurrent `stack:up` runs, from two test
 * runs or a test run plus a terminal, would otherwise both see "not running" and both start a broker
 * on the same data folder.
 */
let inProcess: Promise<unknown> = Promise.resolve();

export function withLock<T>(lockFile: string, fn: () => Promise<T>, timeoutMs = 180_000): Promise<T> {
  // Calls from one process queue here first (the file lock below cannot tell two of our own async paths
  // apart). Public entry points take the lock; internal helpers never do, so nothing nests.
  const run = inProcess.then(() => withFileLock(lockFile, fn, timeoutMs));
  inProcess = run.catch(() => undefined);
  return run;
}

async function withFileLock<T>(lockFile: string, fn: () => Promise<T>, timeoutMs: number): Promise<T> {
  mkdirSync(path.dirname(lockFile), { recursive: true });
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    try {
      writeFileSync(lockFile, String(process.pid), { flag: 'wx' });
      break;
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
      const owner = Number(readFileSync(lockFile, 'utf8').trim());
      let alive = false;
      if (Number.isInteger(owner) && owner > 0) {
        try {
          process.kill(owner, 0);
          alive = true;
        } catch {
          alive = false;
        }
      }
      if (!alive) {
        rmSync(lockFile, { force: true });
        continue;
      }
      if (Date.now() > deadline) {
        throw new StackError(
          'STACK_LOCK_TIMEOUT',
          `another stack command (pid ${owner}) holds ${lockFile}; wait for it or remove the file if that process is gone`,
        );
      }
      await sleep(200);
    }
  }
  try {
    return await fn();
  } finally {
    rmSync(lockFile, { force: true });
  }
}
