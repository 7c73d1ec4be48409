/**
 * Fault tests, ingest running as a child process (`tsx ingest/main.ts`) under HTTP load against the
 * real broker:
 * - Kafka stopped during load: 503 + Retry-After while it is down, /readyz false, no 200 for data that
 *   is not on Kafka, 200s again once it is back (without restarting ingest).
 * - SIGTERM during load: exit 0 and no batch answered 200 is missing from Kafka.
 * Each has a negative control: with the protection switched off by a test-only UNSAFE switch, the same
 * check finds acknowledged batches missing from Kafka.
 *
 * "Every 200 is on Kafka" is checked by recomputing each acknowledged event's event_key from the day
 * secrets ingest used (same key directory) and looking for it among the EventFacts on the topic.
 */
import { afterAll, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { DailyTokenizer, DAY_MS, FileKeySource, decodeEventFacts } from '../schemas/index.ts';
import { createKafka, readAll, stackInfo, startKafka, stopKafka, uniqueName } from '../testing/stack.ts';
import { batch, containerOf } from '../testing/batches.ts';
import { answerOf, runLoad, type LoadSummary } from '../testing/load.ts';
import { sealingEnv } from '../testing/sealing.ts';
import { QUICK_MIX } from '../testing/mix.ts';

interface Child {
  proc: ChildProcess;
  url: string;
  exited: Promise<number | null>;
  lines: string[];
}

interface Meta {
  deviceId: string;
  eventIds: string[];
  times: number[];
}

const children: ChildProcess[] = [];
afterAll(() => {
  for (const c of children) if (c.exitCode === null) c.kill('SIGKILL');
});

async function spawnIngest(env: Record<string, string>): Promise<Child> {
  const proc = spawn(process.execPath, ['--import', 'tsx', 'ingest/main.ts'], {
    cwd: join(import.meta.dirname, '..'),
    env: {
      PATH: process.env.PATH,
      HOME: process.env.HOME,
      INGEST_PORT: '0',
      INGEST_POOL_THREADS: '1',
      INGEST_TOPIC_PARTITIONS: '2',
      // The local stack is one Kafka cluster: every zone's topics share it.
      INGEST_ZONES_SHARE_MAIN_CLUSTER: 'true',
      // Plain HTTP on loopback: a test setup (ingest/README.md, "TLS"; ingest/tls.int.test.ts covers HTTPS).
      INGEST_UNSAFE_PLAINTEXT_HTTP: 'true',
      ...QUICK_MIX, // testing/mix.ts: a lone batch need not wait for a crowd here
      ...env,
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  children.push(proc);
  const lines: string[] = [];
  const exited = new Promise<number | null>((r) => proc.once('exit', (code) => r(code)));
  proc.stderr!.on('data', (d: Buffer) => lines.push(d.toString()));
  const port = await new Promise<number>((resolve, reject) => {
    const rl = createInterface({ input: proc.stdout! });
    const timer = setTimeout(() => reject(new Error(`ingest did not start: ${lines.join('')}`)), 60_000);
    rl.on('line', (l) => {
      lines.push(l);
      const m = /"msg":"ingest listening".*"port":(\d+)/.exec(l);
      if (m) {
        clearTimeout(timer);
        resolve(Number(m[1]));
      }
    });
    void exited.then((c) => reject(new Error(`ingest exited with ${c}: ${lines.join('\n')}`)));
  });
  return { proc, url: `http://127.0.0.1:${port}`, exited, lines };
}

function topicEnv() {
  const events = uniqueName('ingest_fault_ev');
  return {
    events,
    env: {
      PIPELINE_KAFKA_BROKERS: stackInfo().kafkaBrokers.join(','),
      PIPELINE_TOPIC_EVENTS: events,
      PIPELINE_TOPIC_PERSONAL_PREFIX: `${uniqueName('ingest_fault_p')}_`,
      PIPELINE_TOPIC_REJECTS_PREFIX: `${uniqueName('ingest_fault_r')}_`,
      PIPELINE_TOPIC_RIGHTS_PREFIX: `${uniqueName('ingest_fault_rt')}_`,
      INGEST_TOKEN_KEY_DIR: mkdtempSync(join(tmpdir(), 'ingest-keys-')),
      ...sealingEnv().env,
    },
  };
}

function nextBatch(): { body: Buffer; meta: Meta } {
  const b = batch({ events: 10 });
  return {
    body: containerOf(b),
    meta: { deviceId: b.device.device_id, eventIds: b.events.map((e) => e.event_id), times: b.events.map((e) => e.time) },
  };
}

/** event_keys of every event in the batches answered 200, recomputed from the shared day secrets. */
function expectedKeys(keyDir: string, load: LoadSummary<Meta>): Set<string> {
  const tok = new DailyTokenizer(new FileKeySource(keyDir));
  const out = new Set<string>();
  for (const r of load.results) {
    if (r.status !== 200) continue;
    expect(answerOf(r)?.accepted).toBe(r.meta.eventIds.length);
    const now = Date.now();
    const day = Math.floor(r.meta.times[0]! / DAY_MS);
    const keys = tok.keys(day, now)!;
    const token = tok.dailyToken(keys, `device_id:${r.meta.deviceId}`);
    const ids = Buffer.concat(r.meta.eventIds.map((id) => Buffer.from(id.replace(/-/g, ''), 'hex')));
    const toks = Buffer.concat(r.meta.eventIds.map(() => token));
    const ek = tok.eventKeys(keys, ids, toks);
    for (let i = 0; i < r.meta.eventIds.length; i++) out.add(ek.subarray(16 * i, 16 * i + 16).toString('hex'));
  }
  return out;
}

/** Every event_key on the topic, from every fact of every record (reads up to the current end offsets). */
async function keysOnTopic(topic: string): Promise<Set<string>> {
  const admin = createKafka(uniqueName('offsets')).admin();
  await admin.connect();
  // Right after a broker restart, partitions may still be electing leaders: retry briefly.
  let offsets: Awaited<ReturnType<typeof admin.fetchTopicOffsets>> | undefined;
  for (let i = 0; i < 60 && !offsets; i++) {
    try {
      offsets = await admin.fetchTopicOffsets(topic);
    } catch (e) {
      if (i === 59) throw e;
      await new Promise((r) => setTimeout(r, 500));
    }
  }
  await admin.disconnect();
  const total = offsets!.reduce((a, o) => a + Number(o.high) - Number(o.low), 0);
  const recs = await readAll(topic, total, 60_000);
  expect(recs).toHaveLength(total);
  // One record per (batch, day) holds that batch's facts of the day: every fact's key counts.
  return new Set(recs.flatMap((r) => decodeEventFacts(r.value!).map((f) => f.event_key.toString('hex'))));
}

function missing(expected: Set<string>, actual: Set<string>): number {
  let n = 0;
  for (const k of expected) if (!actual.has(k)) n++;
  return n;
}

async function ready(url: string): Promise<boolean> {
  try {
    return (await fetch(`${url}/readyz`, { signal: AbortSignal.timeout(5000) })).status === 200;
  } catch {
    return false;
  }
}

/** Load -> stop Kafka -> (down ~6 s) -> start Kafka -> load until 200s come back. */
async function outage(unsafe: boolean) {
  const t = topicEnv();
  const child = await spawnIngest({
    ...t.env,
    INGEST_PRODUCE_TIMEOUT_MS: '2000',
    INGEST_KAFKA_RETRIES: '1',
    INGEST_UNSAFE_ACK_BEFORE_PRODUCE: String(unsafe),
  });
  let kafkaBackAt = Infinity;
  let okAfterRestart = 0;
  const readyDuringOutage: boolean[] = [];
  const load = runLoad<Meta>({
    url: child.url,
    // The control answers at once whatever Kafka does, so it needs less load to show a loss.
    concurrency: unsafe ? 2 : 4,
    durationMs: 90_000,
    maxRequests: 20_000,
    pauseMs: unsafe ? 50 : 20,
    keep: true,
    stop: () => child.proc.exitCode !== null,
    next: () => nextBatch(),
    onResult: (r) => {
      if (r.status === 200 && performance.now() > kafkaBackAt) okAfterRestart++;
    },
  });
  // Stop the load as soon as recovery is shown (bounded by durationMs otherwise).
  const stopWhenRecovered = async () => {
    for (let i = 0; i < 600 && okAfterRestart < 20; i++) await new Promise((r) => setTimeout(r, 100));
  };
  await new Promise((r) => setTimeout(r, 1500));
  await stopKafka();
  for (let i = 0; i < 6; i++) {
    await new Promise((r) => setTimeout(r, 1000));
    readyDuringOutage.push(await ready(child.url));
  }
  await startKafka();
  kafkaBackAt = performance.now();
  await stopWhenRecovered();
  // Recovered means ready again too (the unsafe control answers 200 regardless, so wait here as well).
  for (let i = 0; i < 100 && !(await ready(child.url)); i++) await new Promise((r) => setTimeout(r, 300));
  // End the load by stopping ingest (gracefully): the load stops once the process has exited.
  child.proc.kill('SIGTERM');
  const summary = await load;
  const code = await child.exited;
  const onKafka = await keysOnTopic(t.events);
  const expected = expectedKeys(t.env.INGEST_TOKEN_KEY_DIR, summary);
  console.log(
    `outage unsafe=${unsafe}: ${JSON.stringify(summary.byStatus)} in ${Math.round(summary.elapsedMs)} ms, ok after restart ${okAfterRestart}, ready during outage ${readyDuringOutage.join(',')}, acknowledged events ${expected.size}, missing ${missing(expected, onKafka)}`,
  );
  return { summary, okAfterRestart, readyDuringOutage, code, missing: missing(expected, onKafka), expected: expected.size };
}

describe('faults (ingest as a child process, real broker)', () => {
  it('Kafka stopped during load: 503 + Retry-After, readyz false, no 200 for unpersisted data, recovers by itself', async () => {
    const r = await outage(false);
    expect(r.summary.byStatus['503'] ?? 0).toBeGreaterThan(0);
    for (const x of r.summary.results.filter((x) => x.status === 503)) expect(x.retryAfter).toBe('5');
    expect(r.readyDuringOutage.some((x) => x === false)).toBe(true);
    expect(r.okAfterRestart).toBeGreaterThan(0);
    expect(r.expected).toBeGreaterThan(0);
    expect(r.missing).toBe(0);
    expect(r.code).toBe(0);
  });

  it('negative control: with INGEST_UNSAFE_ACK_BEFORE_PRODUCE the same check finds 200s that are not on Kafka', async () => {
    const r = await outage(true);
    // Kafka being down never shows (503s here can only be INGEST_SHUTTING_DOWN at the end)...
    expect(r.summary.results.filter((x) => answerOf(x)?.error?.code === 'INGEST_KAFKA_UNAVAILABLE')).toEqual([]);
    // ...and the same check as above finds acknowledged events missing from Kafka.
    expect(r.missing).toBeGreaterThan(0);
  });

  async function sigterm(unsafe: boolean) {
    const t = topicEnv();
    const env: Record<string, string> = { ...t.env };
    if (unsafe) Object.assign(env, { INGEST_UNSAFE_ACK_BEFORE_PRODUCE: 'true', INGEST_UNSAFE_SKIP_DRAIN: 'true', INGEST_KAFKA_LINGER_MS: '50' });
    const child = await spawnIngest(env);
    let ok = 0;
    const load = runLoad<Meta>({
      url: child.url,
      concurrency: 8,
      durationMs: 60_000,
      maxRequests: 20_000,
      keep: true,
      stop: () => child.proc.exitCode !== null,
      next: () => nextBatch(),
      onResult: (r) => void (r.status === 200 && ok++),
    });
    // SIGTERM in the middle of a steady load: after 50 acknowledged batches (bounded wait).
    for (let i = 0; i < 300 && ok < 50; i++) await new Promise((r) => setTimeout(r, 100));
    child.proc.kill('SIGTERM');
    const code = await child.exited;
    const summary = await load;
    const onKafka = await keysOnTopic(t.events);
    const expected = expectedKeys(t.env.INGEST_TOKEN_KEY_DIR, summary);
    console.log(
      `sigterm unsafe=${unsafe}: exit ${code}, ${JSON.stringify(summary.byStatus)} in ${Math.round(summary.elapsedMs)} ms, acknowledged events ${expected.size}, missing ${missing(expected, onKafka)}`,
    );
    return { code, summary, missing: missing(expected, onKafka), expected: expected.size };
  }

  it('SIGTERM during load: exit 0, every batch answered 200 is on Kafka', async () => {
    const r = await sigterm(false);
    expect(r.code).toBe(0);
    expect(r.expected).toBeGreaterThan(0);
    expect(r.missing).toBe(0);
    // Answers during shutdown are 200 (drained) or 503 (refused); never a 500.
    expect(Object.keys(r.summary.byStatus).filter((s) => s !== '200' && s !== '503' && s !== '0')).toEqual([]);
  });

  it('negative control: acking before produce and exiting without drain loses acknowledged batches', async () => {
    const r = await sigterm(true);
    expect(r.expected).toBeGreaterThan(0);
    expect(r.missing).toBeGreaterThan(0);
  });
});
