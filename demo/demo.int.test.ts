/**
 * `npm run demo` as a user runs it, interrupted with Ctrl-C (SIGINT) mid-traffic: it still prints the
 * report (tables equal to the devices' own count), then stops everything it started: the child
 * processes are gone, their ports free, the demo's topics and database removed, and the stack (which
 * it did not start: the test setup did) left running.
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../stack/config.ts';
import { portIsFree } from '../stack/proc.ts';
import { createClickHouse, createKafka } from '../testing/stack.ts';

async function freeBase(): Promise<number> {
  for (let i = 0; i < 50; i++) {
    const base = 30_000 + Math.floor(Math.random() * 20_000);
    const ports = [base, base + 1, base + 2, base + 8];
    if ((await Promise.all(ports.map((p) => portIsFree(p)))).every(Boolean)) return base;
  }
  throw new Error('no free port range');
}

const alive = (pid: number) => {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
};

describe('npm run demo, interrupted with Ctrl-C', () => {
  it('prints the report, then stops everything it started and removes its topics and database', async () => {
    const base = await freeBase();
    const proc = spawn(
      process.execPath,
      ['--import', 'tsx', 'demo/main.ts', '--duration', '120', '--rate', '400', '--devices', '300', '--port-base', String(base)],
      {
        cwd: REPO_ROOT,
        stdio: ['ignore', 'pipe', 'pipe'],
      },
    );
    let out = '';
    proc.stdout.on('data', (c: Buffer) => (out += c.toString()));
    proc.stderr.on('data', (c: Buffer) => (out += c.toString()));
    const exited = new Promise<number | null>((resolve) => proc.once('exit', (code) => resolve(code)));

    // Interrupt a few seconds into the traffic.
    const deadline = Date.now() + 120_000;
    while (!/devices posting/.test(out) && Date.now() < deadline && proc.exitCode === null) await new Promise((r) => setTimeout(r, 200));
    expect(out).toMatch(/devices posting/);
    await new Promise((r) => setTimeout(r, 4000));
    proc.kill('SIGINT');
    const code = await Promise.race([exited, new Promise<'timeout'>((r) => setTimeout(() => r('timeout'), 120_000))]);
    if (code === 'timeout') proc.kill('SIGKILL');
    expect(code, out).toBe(0);

    const pids = [...out.matchAll(/(ingest-a|ingest-b|aggregator) \(pid (\d+)/g)].map((m) => Number(m[2]));
    expect(pids.length).toBe(3);
    const runId = /logs in \.local\/demo\/([a-z0-9_]+)\//.exec(out)?.[1];
    expect(runId).toBeTruthy();

    // The report came before the cleanup, with the tables and the check against the devices' count.
    expect(out).toMatch(/SIGINT: stopping/);
    expect(out).toMatch(/== Daily active devices/);
    expect(out).toMatch(/== Crash rates by app version/);
    expect(out).toMatch(/check: both tables equal/);
    expect(out.indexOf('check: both tables equal')).toBeLessThan(out.indexOf('demo: stopped'));
    expect(out).toMatch(/demo: stopped dashboard, ingest-a, ingest-b, aggregator; removed 17 topics, database/);

    // Nothing it started is left.
    for (const pid of pids) expect(alive(pid)).toBe(false);
    for (const p of [base, base + 1, base + 2, base + 8]) expect(await portIsFree(p)).toBe(true);
    expect(existsSync(path.join(REPO_ROOT, '.local', 'demo', runId!))).toBe(false);
    const admin = createKafka('demo-int-check').admin();
    await admin.connect();
    try {
      expect((await admin.listTopics()).filter((t) => t.startsWith(`${runId}.`))).toEqual([]);
    } finally {
      await admin.disconnect();
    }
    const ch = createClickHouse();
    try {
      const rows = await (await ch.query({ query: `SELECT name FROM system.databases WHERE name = '${runId}'`, format: 'JSONEachRow' })).json();
      expect(rows).toEqual([]);
    } finally {
      await ch.close();
    }
    // It did not start the stack, so it left it running and said so.
    expect(out).toMatch(/left running: kafka \(was running before the demo\), clickhouse/);
  }, 170_000);
});
