/**
 * `npm run bench:ingest`: realistic device batches over HTTP at one ingest process, real broker.
 *
 * Three processes: ingest (`ingest/main.ts`), the load generator (`bench/loadgen.ts`),
 * and Kafka (stack/). In the same run, Kafka's own ProducerPerformance measures the broker's raw
 * capacity for records of the same size with acks=all, so the ingest figure can be read against what
 * the broker alone does on this machine. The events topic carries one record per (batch, day) holding
 * all its facts (schemas/event-facts.ts), so "the same size" is that batch record's size, and the
 * broker's msgs/s times the facts per record is the events/s the broker alone could carry. Prints
 * events/s, batches/s, p50/p99, ingest peak RSS (VmHWM), broker raw msgs/s, the implied events/s and
 * the ratio; the last line is JSON.
 *
 * CPU: ingest's own CPU time (user + system of all its threads, /proc/<pid>/task/<tid>/stat) over the
 * measured period per accepted event (`ingest_cpu_us_per_event`; the HTTP thread's share apart), beside
 * bare avsc decoding of the same kind of batch bytes on one thread of this process
 * (`decode_cpu_us_per_event`: the Batch datum alone; `decode_with_inflate_cpu_us_per_event`: with the
 * container's deflate block inflated first) and their ratios (`cpu_ratio`). CPU per event is the figure
 * to compare across runs on a shared box; events/s moves with whatever else the box runs. The floor under
 * it, in the same run: a bare node:http server (bench/http-floor.ts) under the same load, reading and
 * answering (`http_floor_cpu_us_per_event`) and also decoding (`http_decode_floor_cpu_us_per_event`, its
 * `floor_cpu_ratio` to bare decoding, and `ingest_to_floor`); BENCH_NO_FLOOR=1 skips it.
 *
 * `-- --brokers 3` (or BENCH_BROKERS=3): against the three-broker cluster of
 * `npm run stack:up -- --brokers 3` (RF 3, min.insync.replicas 2, acks=all), the reference too.
 *
 * The brokers, in the same run: their CPU over the measured period per accepted event
 * (`broker_cpu_us_per_event`, /proc of the stack's broker processes) and under ProducerPerformance per
 * fact its records stand for (`broker_raw_cpu_us_per_event`); the box's busy cores (`box_busy_cores`);
 * a produce call's mean round trip (`mean_produce_call_ms`) and calls per mix; the topics that were on
 * the brokers before the run (`topics_at_start`: leftovers cost the brokers CPU on every fetch).
 *
 * Knobs (environment): BENCH_CONCURRENCY (128), BENCH_SECONDS (20), BENCH_EVENTS (50; 500 for large batches),
 * BENCH_POOL_THREADS (ingest default), BENCH_COMPRESSION (none|gzip: Kafka record compression; the devices'
 * bodies are always deflate containers), BENCH_RAW_RECORDS (100000: ProducerPerformance records),
 * BENCH_NODE_FLAGS (V8/Node flags for ingest, to measure e.g. GC sizing),
 * Sealing (rights/README.md): the same load also runs unsealed just before and just after the sealed run
 * (as configured); the JSON gives unsealed_events_per_s (their mean), both runs, and sealing_cost
 * (1 - sealed / unsealed). BENCH_NO_SEAL=1: one unsealed run only.
 * BENCH_CPU_PROF=1 writes ingest CPU profiles to .local/. BENCH_NO_MIX=1 turns the mixing off
 * (INGEST_UNSAFE_LINKABLE) to measure what it costs. INGEST_MIX_*, INGEST_POOL_GROUP_*, INGEST_TASK_* and
 * INGEST_MAX_QUEUED_BATCHES pass through to ingest, to measure other sizes.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readdirSync, readFileSync } from 'node:fs';
import { availableParallelism, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { parseArgs } from 'node:util';
import { deflateRawSync, inflateRawSync } from 'node:zlib';
import { noteOtherKafka, stackInfo, uniqueName } from '../testing/stack.ts';
import { percentile } from '../testing/load.ts';
import { deleteWhatThisFileMade, listTopics, trackNamesOfThisProcess } from '../testing/cleanup.ts';
import { batch, batchType, loadBodies } from '../testing/batches.ts';
import { readContainer } from '../ingest/container.ts';
import { loadIngestConfig, poolThreads } from '../ingest/config.ts';
import { workerOptions } from '../ingest/pool.ts';
import { MAX_BYTES_PER_CALL } from '../ingest/produce.ts';
import { processTask, workerState } from '../ingest/worker.ts';
import type { LoadgenSummary } from './loadgen.ts';
import { compileSplit, DailyTokenizer, FileKeySource } from '../schemas/index.ts';
import { sealingEnv } from '../testing/sealing.ts';

const root = join(import.meta.dirname, '..');
const env = process.env;
// More clients than a mix's minimum (INGEST_MIX_MIN_BATCHES): a closed loop of fewer could never fill
// one and would measure the mix's longest wait instead of ingest.
const concurrency = Number(env.BENCH_CONCURRENCY ?? 128);
const seconds = Number(env.BENCH_SECONDS ?? 20);
const events = Number(env.BENCH_EVENTS ?? 50);
// `-- --brokers 3`: the three-broker cluster of `npm run stack:up -- --brokers 3` (RF 3, min.insync.replicas
// 2, acks=all), the production shape; otherwise the single local broker.
const cli = parseArgs({ options: { brokers: { type: 'string' } }, allowPositionals: false }).values;
const brokerCount = Number(cli.brokers ?? env.BENCH_BROKERS ?? 1);
if (brokerCount !== 1 && brokerCount !== 3) throw new Error(`--brokers ${cli.brokers}: expected 1 or 3`);
const brokers = brokerCount === 3 ? stackInfo().clusterBrokers : stackInfo().kafkaBrokers;
const replication = brokerCount === 3 ? 3 : 1;

function vmHwmMb(pid: number): number {
  const m = /VmHWM:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) / 1024 : NaN;
}

async function startIngest(sealed: boolean): Promise<{ proc: ChildProcess; url: string; env: Record<string, string> }> {
  const ingestEnv: Record<string, string> = {
    PATH: env.PATH ?? '',
    HOME: env.HOME ?? '',
    PIPELINE_KAFKA_BROKERS: brokers.join(','),
    PIPELINE_TOPIC_EVENTS: uniqueName('bench_ingest_ev'),
    PIPELINE_TOPIC_PERSONAL_PREFIX: `${uniqueName('bench_ingest_p')}_`,
    PIPELINE_TOPIC_REJECTS_PREFIX: `${uniqueName('bench_ingest_r')}_`,
    PIPELINE_TOPIC_RIGHTS_PREFIX: `${uniqueName('bench_ingest_rt')}_`,
    INGEST_PORT: '0',
    INGEST_LOG_LEVEL: 'warn',
    INGEST_TOKEN_KEY_DIR: mkdtempSync(join(tmpdir(), 'bench-keys-')),
    INGEST_TOPIC_PARTITIONS: '6',
    INGEST_TOPIC_REPLICATION: String(replication),
    // The local stack is one Kafka cluster: every zone's topics share it (development only; policy section 6).
    INGEST_ZONES_SHARE_MAIN_CLUSTER: 'true',
    // Plain HTTP on loopback: the bench measures ingest's own work, not TLS (development only).
    INGEST_UNSAFE_PLAINTEXT_HTTP: 'true',
  };
  // Personal records sealed per device as in production (rights/README.md); BENCH_NO_SEAL=1 writes them
  // in clear, to measure what sealing costs on the same box.
  if (!sealed) ingestEnv.INGEST_UNSAFE_UNSEALED = 'true';
  else Object.assign(ingestEnv, sealingEnv().env);
  if (env.BENCH_POOL_THREADS) ingestEnv.INGEST_POOL_THREADS = env.BENCH_POOL_THREADS;
  if (env.BENCH_COMPRESSION) ingestEnv.INGEST_KAFKA_COMPRESSION = env.BENCH_COMPRESSION;
  if (env.BENCH_PRODUCERS) ingestEnv.INGEST_KAFKA_PRODUCERS = env.BENCH_PRODUCERS;
  if (env.BENCH_MAX_RECORDS_PER_CALL) ingestEnv.INGEST_KAFKA_MAX_RECORDS_PER_CALL = env.BENCH_MAX_RECORDS_PER_CALL;
  // What the mixing (ingest/mix.ts) costs: the same run without it, for a comparison on the same box.
  if (env.BENCH_NO_MIX === '1') ingestEnv.INGEST_UNSAFE_LINKABLE = 'true';
  // The mix's own settings, the pool's grouping, the workers' heap and the queue bound pass through, to
  // measure other sizes (ingest/mix.ts, ingest/pool.ts).
  for (const [k, v] of Object.entries(env))
    if (
      (k.startsWith('INGEST_MIX_') || k.startsWith('INGEST_POOL_GROUP_') || k.startsWith('INGEST_TASK_') || k === 'INGEST_MAX_QUEUED_BATCHES') &&
      v !== undefined
    )
      ingestEnv[k] = v;
  const prof = env.BENCH_CPU_PROF ? ['--cpu-prof', `--cpu-prof-dir=${join(root, '.local', 'bench-ingest-prof')}`] : [];
  // The port is picked here and readiness polled (INGEST_LOG_LEVEL=warn hides the "listening" line).
  ingestEnv.INGEST_PORT = String(18100 + Math.floor(Math.random() * 800));
  // BENCH_NODE_FLAGS: V8/Node flags for the ingest process (e.g. GC sizing), to measure their effect.
  const flags = (env.BENCH_NODE_FLAGS ?? '').split(' ').filter(Boolean);
  const proc = spawn(process.execPath, [...flags, ...prof, '--import', 'tsx', 'ingest/main.ts'], {
    cwd: root,
    env: ingestEnv,
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const url = `http://127.0.0.1:${ingestEnv.INGEST_PORT}`;
  for (let i = 0; i < 600; i++) {
    if (proc.exitCode !== null) throw new Error(`ingest exited with ${proc.exitCode}`);
    try {
      if ((await fetch(`${url}/readyz`)).status === 200) return { proc, url, env: ingestEnv };
    } catch {
      /* not up yet */
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('ingest did not become ready in 60 s');
}

/**
 * CPU time (user + system) so far of each of a process's threads, in microseconds, by thread id, from
 * /proc/<pid>/task/<tid>/stat. The HTTP thread's id is the process id; the others are the pool workers,
 * V8's GC and compiler threads and libuv's pool. Threads that ended in between are not counted (the pool
 * keeps its threads).
 */
function threadMicros(pid: number): Map<string, number> {
  const out = new Map<string, number>();
  for (const tid of readdirSync(`/proc/${pid}/task`)) {
    let stat: string;
    try {
      stat = readFileSync(`/proc/${pid}/task/${tid}/stat`, 'utf8');
    } catch {
      continue; // the thread ended between the listing and the read
    }
    out.set(tid, statMicros(stat));
  }
  return out;
}

/**
 * User + system CPU of a /proc `stat` line (a process's or one thread's), µs. Fields after the command
 * name (in parentheses, may hold spaces): utime and stime are the 14th and 15th fields, in clock ticks.
 */
function statMicros(stat: string): number {
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  return ((Number(f[11]) + Number(f[12])) * 1e6) / CLOCK_TICKS;
}

/**
 * A process's CPU between two readings, µs: the HTTP thread, the pool workers, the rest. Node does not
 * name its threads, so the pool workers are taken as the `poolThreads` busiest other threads: each
 * worker burns several times what any GC or compiler thread does (measured with `perf` per thread).
 */
function cpuBetween(pid: number, start: Map<string, number>, end: Map<string, number>, poolThreads: number): { main: number; pool: number; other: number } {
  const others: number[] = [];
  let main = 0;
  for (const [tid, us] of end) {
    const d = us - (start.get(tid) ?? 0);
    if (tid === String(pid)) main = d;
    else others.push(d);
  }
  others.sort((a, b) => b - a);
  const pool = others.slice(0, poolThreads).reduce((a, b) => a + b, 0);
  const other = others.slice(poolThreads).reduce((a, b) => a + b, 0);
  return { main, pool, other };
}
const CLOCK_TICKS = Number(execFileSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).trim()) || 100;

/** The brokers the bench writes to (the local stack's processes; none for an external Kafka). */
const brokerPids = brokerCount === 3 ? stackInfo().brokerPids.cluster : stackInfo().brokerPids.kafka;

/** CPU time (user + system, every thread) so far of the broker processes together, µs; NaN without their pids. */
function brokerMicros(): number {
  if (brokerPids.length === 0) return NaN;
  let us = 0;
  for (const pid of brokerPids) us += statMicros(readFileSync(`/proc/${pid}/stat`, 'utf8'));
  return us;
}

/** Busy and total CPU time of the whole box so far, in clock ticks (/proc/stat: all but idle and iowait are busy). */
function boxTicks(): { busy: number; total: number } {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const total = f.reduce((a, b) => a + b, 0);
  return { busy: total - f[3]! - f[4]!, total };
}

interface MeasuredLoad extends LoadgenSummary {
  /** CPU of the ingest process over the measured period (between the load generator's marks), µs: HTTP thread, pool workers, the rest. */
  ingest_cpu_us: { main: number; pool: number; other: number };
  /** CPU of the broker processes over the same period, µs (NaN for an external Kafka). */
  broker_cpu_us: number;
  /** Cores of the whole box busy over the same period, of os.availableParallelism(): how saturated the shared box was. */
  box_busy_cores: number;
}

/** The load generator against one started ingest; its CPU read from /proc at the measured period's marks. */
function runLoadgen(ingest: { url: string; proc: ChildProcess; env: Record<string, string> }): Promise<MeasuredLoad> {
  // The pool size as the ingest process computes it from its settings.
  return loadAgainst(ingest.url, ingest.proc.pid!, poolThreads(loadIngestConfig(ingest.env)));
}

/** The load generator against a server at `url`, process `serverPid` with `threads` pool threads (0: none). */
function loadAgainst(url: string, serverPid: number, threads: number): Promise<MeasuredLoad> {
  return new Promise((resolve, reject) => {
    const args = { url, concurrency, warmupMs: 4000, durationMs: seconds * 1000, events, distinct: 400 };
    const p = spawn(process.execPath, ['--import', 'tsx', 'bench/loadgen.ts', JSON.stringify(args)], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
    let last = '';
    let cpuStart = new Map<string, number>();
    let cpuEnd = new Map<string, number>();
    let brokerStart = NaN;
    let brokerEnd = NaN;
    let boxStart = { busy: 0, total: 0 };
    let boxEnd = { busy: 0, total: 0 };
    createInterface({ input: p.stdout! }).on('line', (l) => {
      if (l === 'MEASURE_START') {
        cpuStart = threadMicros(serverPid);
        brokerStart = brokerMicros();
        boxStart = boxTicks();
      } else if (l === 'MEASURE_END') {
        cpuEnd = threadMicros(serverPid);
        brokerEnd = brokerMicros();
        boxEnd = boxTicks();
      } else last = l;
    });
    p.once('exit', (code) =>
      code === 0
        ? resolve({
            ...(JSON.parse(last) as LoadgenSummary),
            ingest_cpu_us: cpuBetween(serverPid, cpuStart, cpuEnd, threads),
            broker_cpu_us: brokerEnd - brokerStart,
            box_busy_cores: ((boxEnd.busy - boxStart.busy) / (boxEnd.total - boxStart.total)) * availableParallelism(),
          })
        : reject(new Error(`load generator exited with ${code}`)),
    );
  });
}

/** ingest's CPU per accepted event over the measured period of one run, µs (all threads, or one kind). */
function cpuPerEvent(load: MeasuredLoad, which: 'all' | 'main' | 'pool' | 'other' = 'all'): number {
  const c = load.ingest_cpu_us;
  const us = which === 'all' ? c.main + c.pool + c.other : c[which];
  return us / ((load.by_status['200'] ?? 0) * events);
}

/**
 * The reference: bare avsc decoding of the same kind of batch bytes as the load generator posts, on this
 * process's one thread, CPU µs per event. `datum`: the Batch datum of each container (already inflated),
 * avsc's `fromBuffer` alone; `container`: the container's block inflated (deflate, as devices send it)
 * and then decoded, what reading the posted bytes at all takes.
 */
function decodeCpuPerEvent(): { datum: number; container: number } {
  const bodies = loadBodies(64, events);
  const blocks = bodies.map((b) => {
    const c = readContainer(b);
    if (!c.ok) throw new Error(c.message);
    return { data: c.value.blocks[0]!.data, deflated: deflateRawSync(c.value.blocks[0]!.data) };
  });
  const slice = (one: (b: (typeof blocks)[number]) => number): number => {
    let n = 0;
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    while (performance.now() - t0 < 300) for (const b of blocks) n += one(b);
    const cpu = process.cpuUsage(cpu0);
    return (cpu.user + cpu.system) / n;
  };
  const eventsOf = (d: Buffer) => (batchType.fromBuffer(d) as { events: unknown[] }).events.length;
  const datumOne = (b: (typeof blocks)[number]) => eventsOf(b.data);
  const containerOne = (b: (typeof blocks)[number]) => eventsOf(inflateRawSync(b.deflated));
  for (const b of blocks) {
    datumOne(b); // warm-up
    containerOne(b);
  }
  // Nine short slices of each, interleaved, and their medians: one 1.5 s stretch read 0.38-0.68 µs
  // across runs on this shared box, moving `cpu_ratio` more than ingest's own CPU did.
  const datum: number[] = [];
  const container: number[] = [];
  for (let i = 0; i < 9; i++) {
    datum.push(slice(datumOne));
    container.push(slice(containerOne));
  }
  const median = (xs: number[]) =>
    percentile(
      xs.sort((x, y) => x - y),
      50,
    );
  return { datum: median(datum), container: median(container) };
}

/**
 * The pool task's own work on this one thread (ingest/worker.ts `processTask`: read the container with
 * its inflate, split, seal under the same key store, pack), over the load generator's kind of bodies,
 * CPU µs per event. What ingest's threads spend beyond it per event is the cost of moving batches
 * (HTTP, hand-over, Kafka) and of a shared box.
 */
async function taskCpuPerEvent(ingestEnv: Record<string, string>): Promise<number> {
  const cfg = loadIngestConfig(ingestEnv);
  const state = workerState(workerOptions(cfg, { kind: 'file', dir: cfg.INGEST_TOKEN_KEY_DIR, mode: cfg.INGEST_TOKEN_KEYS_MODE }));
  const bodies = loadBodies(400, events);
  const one = async (b: Buffer): Promise<number> => {
    const body = new ArrayBuffer(b.length);
    new Uint8Array(body).set(b);
    const r = await processTask({ body, length: b.length, format: 'avro', encoding: 'identity', receivedAt: Date.now(), clientIp: '127.0.0.1' }, state);
    if (!r.ok) throw new Error(`the task refused a load generator batch: ${r.code} ${r.message}`);
    return r.accepted;
  };
  try {
    for (const b of bodies) await one(b); // warm-up; the key store's DEKs are cached from here on
    let n = 0;
    const cpu0 = process.cpuUsage();
    const t0 = performance.now();
    while (performance.now() - t0 < 3000) for (const b of bodies) n += await one(b);
    const cpu = process.cpuUsage(cpu0);
    return (cpu.user + cpu.system) / n;
  } finally {
    await state.stores?.close();
  }
}

/**
 * The floor under ingest's CPU (bench/http-floor.ts): a bare node:http server on one thread under the
 * same load, CPU µs per answered event. `read` reads each body and answers; `decode` also reads the
 * container and decodes the batch with bare avsc. Whatever ingest does, Node's HTTP server costs it at
 * least the first, and reading the batches at least the second.
 */
async function floorCpuPerEvent(mode: 'read' | 'decode'): Promise<number> {
  const port = 18900 + Math.floor(Math.random() * 100);
  const proc = spawn(process.execPath, ['--import', 'tsx', 'bench/http-floor.ts', String(port), mode], { cwd: root, stdio: ['ignore', 'pipe', 'inherit'] });
  try {
    await new Promise<void>((resolve, reject) => {
      proc.once('exit', (c) => reject(new Error(`bench/http-floor.ts exited with ${c}`)));
      createInterface({ input: proc.stdout! }).once('line', () => resolve());
    });
    const load = await loadAgainst(`http://127.0.0.1:${port}`, proc.pid!, 0);
    return cpuPerEvent(load);
  } finally {
    proc.removeAllListeners('exit');
    // Gone before the next run starts, so two floors never share the box or a port.
    if (proc.exitCode === null) await new Promise((r) => (proc.once('exit', r), proc.kill('SIGTERM')));
  }
}

/**
 * Kafka's own ProducerPerformance: same record size, acks=all, idempotent, as fast as it goes, batching
 * as ingest does (`batch.size` = ingest's most bytes per call, produce.ts MAX_BYTES_PER_CALL; with the
 * producer's default 16 KB, three 4.4 kB records per batch, the three-broker cluster carried 822-960
 * records/s against 6.6k and its brokers burned 1.5-1.6 cores on it). Also the brokers' CPU over the
 * run, µs.
 */
function brokerRaw(recordSize: number, records: number): { msgsPerS: number; line: string; brokerCpuUs: number } {
  const topic = uniqueName('bench_ingest_raw');
  const libs = join(root, '.local', 'kafka', 'libs', '*');
  execFileSync(
    'java',
    [
      '-cp',
      libs,
      'org.apache.kafka.tools.TopicCommand',
      '--bootstrap-server',
      brokers[0]!,
      '--create',
      '--topic',
      topic,
      '--partitions',
      '6',
      '--replication-factor',
      String(replication),
    ],
    { stdio: 'ignore' },
  );
  const cpu0 = brokerMicros();
  const out = execFileSync(
    'java',
    [
      '-Xmx256m',
      '-cp',
      libs,
      'org.apache.kafka.tools.ProducerPerformance',
      '--topic',
      topic,
      '--num-records',
      String(records),
      '--record-size',
      String(recordSize),
      '--throughput',
      '-1',
      '--producer-props',
      `bootstrap.servers=${brokers.join(',')}`,
      'acks=all',
      'enable.idempotence=true',
      `batch.size=${MAX_BYTES_PER_CALL}`,
      'linger.ms=5',
    ],
    { encoding: 'utf8', timeout: 300_000 },
  );
  const brokerCpuUs = brokerMicros() - cpu0;
  const lines = out.trim().split('\n');
  const line = lines[lines.length - 1]!;
  const m = /([\d.]+) records\/sec/.exec(line);
  return { msgsPerS: m ? Number(m[1]) : NaN, line, brokerCpuUs };
}

/** Size of the events-topic record of a realistic batch, and how many facts (events) it holds. */
function eventRecordSize(): { bytes: number; factsPerRecord: number; recordsPerBatch: number } {
  const p = compileSplit();
  const tok = new DailyTokenizer(new FileKeySource(mkdtempSync(join(tmpdir(), 'bench-k-'))));
  const r = p.processBatch(batch({ events }), { receivedAt: Date.now(), tokenizer: tok });
  const sizes = r.events.map((e) => e.value.length);
  return { bytes: Math.round(sizes.reduce((a, b) => a + b, 0) / sizes.length), factsPerRecord: r.accepted / r.events.length, recordsPerBatch: r.events.length };
}

/** The same load against an ingest writing personal records unsealed (INGEST_UNSAFE_UNSEALED). */
async function unsealedRun(): Promise<MeasuredLoad> {
  const plain = await startIngest(false);
  try {
    return await runLoadgen(plain);
  } finally {
    plain.proc.kill('SIGTERM');
    await new Promise((r) => plain.proc.once('exit', r));
  }
}

const sized = eventRecordSize();
const recordSize = sized.bytes;
trackNamesOfThisProcess();
// Ingest makes the topics; on the three-broker cluster they are deleted at the end too (left there, a
// hundred runs' topics slowed every later run: each follower fetch walks every partition it follows).
if (brokerCount === 3) noteOtherKafka(brokers);
// Topics already there cost the brokers CPU on every fetch (above), so a run says how many it found.
const topicsAtStart = (await listTopics(brokers)).filter((t) => !t.startsWith('__')).length;
if (topicsAtStart > 0)
  console.error(
    `note: ${topicsAtStart} topics were on ${brokers.join(',')} before this run; leftovers of killed runs slow the brokers (npm run stack:clean deletes them)`,
  );
// What sealing costs: the same load without it just before and just after the sealed run (as
// configured), their mean the reference (a drift of the shared box over the runs cancels out).
const unsealedBefore = env.BENCH_NO_SEAL === '1' ? undefined : await unsealedRun();
const ingest = await startIngest(env.BENCH_NO_SEAL !== '1');
let load: MeasuredLoad;
let peakRssMb = NaN;
let poolUtil = NaN;
let meanMix = NaN;
let meanGroup = NaN;
let meanProduceMs = NaN;
let produceCallsPerMix = NaN;
try {
  load = await runLoadgen(ingest);
  peakRssMb = vmHwmMb(ingest.proc.pid!);
  const metrics = await (await fetch(`${ingest.url}/metrics`)).text();
  poolUtil = Number(/^ingest_pool_utilisation (\S+)$/m.exec(metrics)?.[1] ?? NaN);
  // Batches per published mix (ingest/mix.ts): the crowd an events record hides in at this load.
  const metric = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(metrics)?.[1] ?? NaN);
  meanMix = metric('ingest_mix_batches_sum') / metric('ingest_mix_batches_count');
  // Batches per pool task (ingest/pool.ts TaskGroups).
  meanGroup = metric('ingest_pool_group_batches_sum') / metric('ingest_pool_group_batches_count');
  // One produce call's round trip (acks=all), summed over the clusters' labels: what a mix waits for Kafka.
  const summed = (name: string) => [...metrics.matchAll(new RegExp(`^${name}(?:\\{[^}]*\\})? (\\S+)$`, 'gm'))].reduce((a, m) => a + Number(m[1]), 0);
  meanProduceMs = (1000 * summed('ingest_kafka_produce_duration_seconds_sum')) / summed('ingest_kafka_produce_duration_seconds_count');
  produceCallsPerMix = summed('ingest_kafka_produce_duration_seconds_count') / metric('ingest_mix_batches_count');
} finally {
  ingest.proc.kill('SIGTERM');
}
const exitCode = await new Promise<number | null>((r) => ingest.proc.once('exit', (c) => r(c)));
// With ingest stopped: the task's own work on one thread, in the sealed run's configuration.
const taskUs = await taskCpuPerEvent(ingest.env);
const unsealedAfter = unsealedBefore ? await unsealedRun() : undefined;
// The floor under the same load on the same box (BENCH_NO_FLOOR=1 skips it).
const floor = env.BENCH_NO_FLOOR === '1' ? undefined : { read: await floorCpuPerEvent('read'), decode: await floorCpuPerEvent('decode') };
const unsealedLoad =
  unsealedBefore && unsealedAfter
    ? {
        events_per_s: (unsealedBefore.events_per_s + unsealedAfter.events_per_s) / 2,
        p99_ms: Math.max(unsealedBefore.p99_ms, unsealedAfter.p99_ms),
        runs: [unsealedBefore.events_per_s, unsealedAfter.events_per_s].map(Math.round),
        cpu_us_per_event: (cpuPerEvent(unsealedBefore) + cpuPerEvent(unsealedAfter)) / 2,
      }
    : undefined;
// 100k batch-sized records (~0.4 GB): tens of seconds of the broker on this box.
const decode = decodeCpuPerEvent();
const decodeUs = decode.datum;
const ingestUs = cpuPerEvent(load);
const ingestMainUs = cpuPerEvent(load, 'main');
const ingestPoolUs = cpuPerEvent(load, 'pool');
const rawRecords = Number(env.BENCH_RAW_RECORDS ?? 100_000);
const raw = brokerRaw(recordSize, rawRecords);
for (const p of (await deleteWhatThisFileMade()).problems) console.error(`cleanup: ${p}`);
// One events record per (batch, day) + one personal record per batch.
const recordsPerS = load.batches_per_s * (sized.recordsPerBatch + 1);
const ratio = recordsPerS / raw.msgsPerS;
const rawEventsPerS = raw.msgsPerS * sized.factsPerRecord;
// The brokers' CPU per event: under ingest (its events records and the personal records beside them),
// and under ProducerPerformance per fact its records stand for (events records only).
const brokerUs = load.broker_cpu_us / ((load.by_status['200'] ?? 0) * events);
const brokerRawUs = raw.brokerCpuUs / (rawRecords * sized.factsPerRecord);

console.log(
  `ingest: ${load.events_per_s.toFixed(0)} events/s, ${load.batches_per_s.toFixed(0)} batches/s (${events} events, ${load.body_bytes} B per batch), concurrency ${concurrency}, ${load.elapsed_s.toFixed(1)} s`,
);
console.log(`latency of 200s: p50 ${load.p50_ms.toFixed(1)} ms, p99 ${load.p99_ms.toFixed(1)} ms; answers ${JSON.stringify(load.by_status)}`);
console.log(
  `ingest peak RSS (VmHWM, incl. worker threads): ${peakRssMb.toFixed(0)} MB; pool utilisation ${poolUtil.toFixed(2)}; load generator CPU ${load.loadgen_cpu_s.toFixed(1)} s; ingest exit ${exitCode}`,
);
console.log(
  `broker raw (ProducerPerformance, ${recordSize} B records = one batch's ${sized.factsPerRecord} facts, acks=all, idempotent): ${raw.msgsPerS.toFixed(0)} msgs/s = ${rawEventsPerS.toFixed(0)} events/s`,
);
console.log(`  ${raw.line}`);
console.log(
  `CPU per accepted event: ingest ${ingestUs.toFixed(2)} µs (all threads, /proc; HTTP thread ${ingestMainUs.toFixed(2)}, pool workers ${ingestPoolUs.toFixed(2)}, other threads ${cpuPerEvent(load, 'other').toFixed(2)}; the task's own work on one thread ${taskUs.toFixed(2)}), bare avsc decode ${decodeUs.toFixed(2)} µs (${decode.container.toFixed(2)} with the container's inflate): ratio ${(ingestUs / decodeUs).toFixed(1)}`,
);
if (floor)
  console.log(
    `floor (a bare node:http server, same load): ${floor.read.toFixed(2)} µs per event to read and answer, ${floor.decode.toFixed(2)} µs with the batch decoded (ratio ${(floor.decode / decodeUs).toFixed(1)}); ingest spends ${(ingestUs / floor.decode).toFixed(1)}x the second`,
  );
console.log(`ingest Kafka records/s ${recordsPerS.toFixed(0)} = ${(ratio * 100).toFixed(1)}% of broker raw`);
console.log(
  `brokers' CPU per event: ${brokerUs.toFixed(2)} µs under ingest, ${brokerRawUs.toFixed(2)} µs per fact under ProducerPerformance; the box's busy cores during the measured period ${load.box_busy_cores.toFixed(2)} of ${availableParallelism()}`,
);
console.log(
  JSON.stringify({
    events_per_s: Math.round(load.events_per_s),
    batches_per_s: Math.round(load.batches_per_s),
    p50_ms: Number(load.p50_ms.toFixed(2)),
    p99_ms: Number(load.p99_ms.toFixed(2)),
    peak_rss_mb: Math.round(peakRssMb),
    broker_raw_msgs_per_s: Math.round(raw.msgsPerS),
    broker_raw_implied_events_per_s: Math.round(rawEventsPerS),
    facts_per_record: sized.factsPerRecord,
    ratio_records_to_broker_raw: Number(ratio.toFixed(3)),
    broker_cpu_us_per_event: Number(brokerUs.toFixed(2)),
    broker_raw_cpu_us_per_event: Number(brokerRawUs.toFixed(2)),
    box_busy_cores: Number(load.box_busy_cores.toFixed(2)),
    topics_at_start: topicsAtStart,
    record_size_bytes: recordSize,
    ingest_cpu_us_per_event: Number(ingestUs.toFixed(2)),
    ingest_http_thread_cpu_us_per_event: Number(ingestMainUs.toFixed(2)),
    ingest_pool_cpu_us_per_event: Number(ingestPoolUs.toFixed(2)),
    ingest_other_threads_cpu_us_per_event: Number(cpuPerEvent(load, 'other').toFixed(2)),
    task_cpu_us_per_event: Number(taskUs.toFixed(2)),
    decode_cpu_us_per_event: Number(decodeUs.toFixed(3)),
    cpu_ratio: Number((ingestUs / decodeUs).toFixed(2)),
    decode_with_inflate_cpu_us_per_event: Number(decode.container.toFixed(3)),
    cpu_ratio_to_decode_with_inflate: Number((ingestUs / decode.container).toFixed(2)),
    ...(floor
      ? {
          http_floor_cpu_us_per_event: Number(floor.read.toFixed(2)),
          http_decode_floor_cpu_us_per_event: Number(floor.decode.toFixed(2)),
          floor_cpu_ratio: Number((floor.decode / decodeUs).toFixed(2)),
          ingest_to_floor: Number((ingestUs / floor.decode).toFixed(2)),
        }
      : {}),
    brokers: brokerCount,
    replication,
    kafka_compression: env.BENCH_COMPRESSION ?? 'none',
    concurrency,
    events_per_batch: events,
    mixing: env.BENCH_NO_MIX !== '1',
    mean_mix_batches: Number(meanMix.toFixed(1)),
    mean_pool_group_batches: Number(meanGroup.toFixed(1)),
    mean_produce_call_ms: Number(meanProduceMs.toFixed(1)),
    produce_calls_per_mix: Number(produceCallsPerMix.toFixed(2)),
    sealed: env.BENCH_NO_SEAL !== '1',
    ...(unsealedLoad
      ? {
          unsealed_events_per_s: Math.round(unsealedLoad.events_per_s),
          unsealed_runs_events_per_s: unsealedLoad.runs,
          unsealed_p99_ms: Number(unsealedLoad.p99_ms.toFixed(2)),
          unsealed_ingest_cpu_us_per_event: Number(unsealedLoad.cpu_us_per_event.toFixed(2)),
          sealing_cost: Number((1 - load.events_per_s / unsealedLoad.events_per_s).toFixed(3)),
        }
      : {}),
    status_counts: load.by_status,
  }),
);
