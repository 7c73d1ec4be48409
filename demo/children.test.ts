/**
 * Cleanup logic of the demo's child processes, with stand-in children (tiny Node servers) so no Kafka
 * or ClickHouse is needed: stop by pid in order, SIGKILL after the grace for a child that ignores
 * SIGTERM, ports free afterwards, leftovers of a demo that died are reaped by the next one, and a pid
 * that is not ours (marker missing) is never signalled.
 */
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../stack/config.ts';
import { isOurProcess, portIsFree } from '../stack/proc.ts';
import { DemoProcesses, childEnv, reapStaleRuns, waitFor } from './children.ts';

const tmp = mkdtempSync(path.join(os.tmpdir(), 'demo-children-'));
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

/** A child that listens on PORT; with IGNORE_TERM it shrugs off SIGTERM (a stuck drain). */
const script = path.join(tmp, 'child.mjs');
writeFileSync(
  script,
  `import http from 'node:http';
   const s = http.createServer((q, r) => r.end('ok')).listen(Number(process.env.PORT), '127.0.0.1');
   process.on('SIGTERM', () => { if (process.env.IGNORE_TERM !== '1') s.close(() => process.exit(0)); });
   setInterval(() => {}, 1000);`,
);

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = net.createServer().listen(0, '127.0.0.1', () => {
      const p = (s.address() as net.AddressInfo).port;
      s.close(() => resolve(p));
    });
  });
}

const answers = (port: number) => fetch(`http://127.0.0.1:${port}/`).then((r) => r.ok);

async function startChild(procs: DemoProcesses, service: string, env: Record<string, string> = {}) {
  const port = await freePort();
  const c = procs.start({ service, script, env: childEnv(process.env, { PORT: String(port), ...env }), ports: [port] });
  await waitFor(service, () => answers(port), { timeoutMs: 20_000, abortIf: () => (procs.alive(c) ? undefined : `exited: ${procs.tail(c)}`) });
  return { c, port };
}

describe('demo child processes', () => {
  it("childEnv drops every service setting of the caller and sets the child's own", () => {
    const env = childEnv(
      { PATH: '/bin', INGEST_PORT: '1', AGGREGATOR_DATABASE: 'x', PIPELINE_TOPIC_EVENTS: 'y', DASHBOARD_PORT: '2', HOME: '/root' },
      { INGEST_PORT: '18180' },
    );
    expect(env).toEqual({ PATH: '/bin', HOME: '/root', INGEST_PORT: '18180' });
  });

  it('stops children by pid in the order given, and their ports are free afterwards', async () => {
    const procs = new DemoProcesses(path.join(tmp, 'run-a'), 'run_a', REPO_ROOT);
    const a = await startChild(procs, 'ingest-a');
    const b = await startChild(procs, 'aggregator');
    expect(readFileSync(`/proc/${a.c.pid}/cmdline`, 'utf8')).toContain('--demo-run=run_a:ingest-a');
    const r = await procs.stop(['ingest-a', 'aggregator'], 5000);
    expect(r).toEqual({ stopped: ['ingest-a', 'aggregator'], problems: [] });
    expect(procs.alive(a.c) || procs.alive(b.c)).toBe(false);
    expect(await portIsFree(a.port)).toBe(true);
    expect(await portIsFree(b.port)).toBe(true);
    // Stopping again is harmless.
    expect((await procs.stop('all', 1000)).stopped).toEqual([]);
  }, 60_000);

  it('a child that ignores SIGTERM is killed after the grace period', async () => {
    const procs = new DemoProcesses(path.join(tmp, 'run-b'), 'run_b', REPO_ROOT);
    const a = await startChild(procs, 'ingest-a', { IGNORE_TERM: '1' });
    const t0 = Date.now();
    const r = await procs.stop('all', 800);
    expect(r.stopped).toEqual(['ingest-a']);
    expect(Date.now() - t0).toBeGreaterThanOrEqual(700);
    expect(procs.alive(a.c)).toBe(false);
    expect(await portIsFree(a.port)).toBe(true);
  }, 60_000);

  it('the next demo reaps children of a demo that died, but not those of a live one', async () => {
    const base = path.join(tmp, 'runs');
    // A demo process that is gone: its pid is recorded as owner, then it exits.
    const dead = spawn(process.execPath, ['-e', '0']);
    await new Promise((r) => dead.once('exit', r));
    const orphaned = new DemoProcesses(path.join(base, 'run_dead'), 'run_dead', REPO_ROOT);
    writeFileSync(path.join(base, 'run_dead', 'owner.pid'), String(dead.pid));
    writeFileSync(path.join(base, 'run_dead', 'resources.json'), JSON.stringify({ topics: ['t1'], database: 'run_dead' }));
    const o = await startChild(orphaned, 'ingest-a');
    // A live demo (this process owns it).
    const live = new DemoProcesses(path.join(base, 'run_live'), 'run_live', REPO_ROOT);
    const l = await startChild(live, 'ingest-a');

    const reaped = await reapStaleRuns(base);
    expect(reaped.map((x) => [x.runId, x.stopped, x.resources])).toEqual([['run_dead', ['ingest-a'], { topics: ['t1'], database: 'run_dead' }]]);
    expect(orphaned.alive(o.c)).toBe(false);
    expect(live.alive(l.c)).toBe(true);
    await live.stop();
    expect(live.alive(l.c)).toBe(false);
  }, 60_000);

  it('never signals a recorded pid whose command line lacks the marker (a recycled pid)', async () => {
    const procs = new DemoProcesses(path.join(tmp, 'run-c'), 'run_c', REPO_ROOT);
    const a = await startChild(procs, 'ingest-a');
    // Point the record at another live process of ours (this test runner): same pid file, wrong process.
    const rec = JSON.parse(readFileSync(a.c.pidFile, 'utf8'));
    writeFileSync(a.c.pidFile, JSON.stringify({ ...rec, pid: process.pid }));
    const r = await procs.stop('all', 500);
    expect(r.stopped).toEqual([]);
    expect(isOurProcess(process.pid, 'node')).toBe(true); // still here
    // Negative control: with the right pid back, the same call stops it.
    writeFileSync(a.c.pidFile, JSON.stringify(rec));
    expect((await procs.stop('all', 5000)).stopped).toEqual(['ingest-a']);
    expect(procs.alive(a.c)).toBe(false);
  }, 60_000);
});
