/**
 * `npm run bench:linkage`: can the topics ingest writes be joined back to devices without a day
 * secret? (policy section 1.1.4, "used separately"; ARCHITECTURE.md principle 9.)
 *
 * Twice, each with its own ingest process (`ingest/main.ts`, local stack, its own topics): once as
 * configured (ingest/mix.ts: coarse timestamps, mixed order, a device's byte-equal personal record once
 * per day), once with INGEST_UNSAFE_LINKABLE=true (the negative control: producer timestamps, a batch's
 * records together, every personal record written). Each time ~600 batches of 240 devices
 * (bench/linkage-population.ts: every zone, retries, batches spanning UTC midnight, late batches) are
 * posted within ~20-30 s by 128 independent clients, every topic is read back, and the adversary of
 * bench/linkage-attack.ts joins personal records to events records by transport features (timestamps,
 * places in the partitions, a device's other records: `siblings`), by content features and by both.
 * The bench alone knows the truth: it reads the day secrets ingest created, maps each daily token to its
 * device, and scores the adversary's guesses.
 *
 * Last line JSON: link_accuracy (the strongest of the adversary's joins, named by strongest_join; each
 * join's own figure as link_accuracy_<join>: all, without_<feature>, transport, content, with_size),
 * link_accuracy_held_out (the join picked on half the devices, scored on the other half, both ways:
 * the strongest join without the upward lean of picking it on the records it is scored on),
 * chance (mean of 1 / the anonymity set: the records its timestamps cannot tell apart, at most the
 * mix's records of the personal record's country and day), chance_ignoring_country, anonymity_set_p50,
 * cross_day_link_accuracy (midnight batches whose two tokens a join chained to the device, the highest
 * of the joins), the same with the prefix negative_control_, content_crowd_p50 and content_chance (the
 * crowd the content features leave: bench/linkage-attack.ts contentCrowds), and the counts. The
 * negative control's link_accuracy must be >= 0.9, or the attack is too weak to show anything; the
 * bench exits 1 then. The adversary reads personal values in clear (ingest runs with
 * INGEST_UNSAFE_UNSEALED), as an operator holding the zones' keys could.
 *
 * Knobs (environment): BENCH_LINKAGE_DEVICES (240), BENCH_LINKAGE_SECONDS (20), BENCH_LINKAGE_SEED (7),
 * BENCH_LINKAGE_CONCURRENCY (128), and INGEST_MIX_* passed through to ingest. Start it at least ten
 * minutes past UTC midnight (the population's shapes need it).
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ingestSettings } from '../ingest/config.ts';
import { personalTopic } from '../runtime/index.ts';
import { DailyTokenizer, DAY_MS, decodeEventFacts, FileKeySource, ZONES, type Zone } from '../schemas/index.ts';
import { containerOf } from '../testing/batches.ts';
import { deleteWhatThisFileMade, trackNamesOfThisProcess } from '../testing/cleanup.ts';
import { runLoad } from '../testing/load.ts';
import { createKafka, readAll, stackInfo, uniqueName, type ReadRecord } from '../testing/stack.ts';
import {
  anonymitySets,
  DEVICE_CLASS,
  deviceRecordCodec,
  guess,
  personalSeen,
  prepare,
  type EventsSeen,
  ALL_FEATURES,
  contentCrowds,
  FEATURE_SETS,
  type Feature,
  type PersonalSeen,
} from './linkage-attack.ts';
import { linkagePopulation, type LinkagePost } from './linkage-population.ts';

const root = join(import.meta.dirname, '..');
const env = process.env;
const devices = Number(env.BENCH_LINKAGE_DEVICES ?? 240);
const seconds = Number(env.BENCH_LINKAGE_SECONDS ?? 20);
const seed = Number(env.BENCH_LINKAGE_SEED ?? 7);
/**
 * Devices posting at once. Devices are independent (each its own connection), so this is large: a
 * closed loop of a few clients would cap every mix at their number, which no real population does.
 */
const concurrency = Number(env.BENCH_LINKAGE_CONCURRENCY ?? 128);

interface Ingest {
  proc: ChildProcess;
  url: string;
  keyDir: string;
  eventsTopic: string;
  personalPrefix: string;
}

async function startIngest(linkable: boolean): Promise<Ingest> {
  const keyDir = mkdtempSync(join(tmpdir(), 'bench-linkage-keys-'));
  const eventsTopic = uniqueName('bench_link_ev');
  const personalPrefix = `${uniqueName('bench_link_p')}_`;
  const port = String(18100 + Math.floor(Math.random() * 800));
  const ingestEnv: Record<string, string> = {
    PATH: env.PATH ?? '',
    HOME: env.HOME ?? '',
    PIPELINE_KAFKA_BROKERS: stackInfo().kafkaBrokers.join(','),
    PIPELINE_TOPIC_EVENTS: eventsTopic,
    PIPELINE_TOPIC_PERSONAL_PREFIX: personalPrefix,
    PIPELINE_TOPIC_REJECTS_PREFIX: `${uniqueName('bench_link_r')}_`,
    PIPELINE_TOPIC_RIGHTS_PREFIX: `${uniqueName('bench_link_rt')}_`,
    INGEST_PORT: port,
    INGEST_LOG_LEVEL: 'warn',
    INGEST_TOKEN_KEY_DIR: keyDir,
    INGEST_TOPIC_PARTITIONS: '6',
    INGEST_UNSAFE_LINKABLE: String(linkable),
    // The adversary is the strongest one: it reads the personal values in clear, as an operator holding
    // the zones' keys could (rights/README.md), so the bench writes them unsealed.
    INGEST_UNSAFE_UNSEALED: 'true',
    // Plain HTTP on loopback: the bench is about the topics, not the transport (development only).
    INGEST_UNSAFE_PLAINTEXT_HTTP: 'true',
  };
  // The mix's own settings pass through, to measure other sizes (ingest/mix.ts).
  for (const [k, v] of Object.entries(env)) if (k.startsWith('INGEST_MIX_') && v !== undefined) ingestEnv[k] = v;
  // One local cluster for every zone (a development setup), where the residency check asks for it.
  if ('INGEST_ZONES_SHARE_MAIN_CLUSTER' in ingestSettings) ingestEnv.INGEST_ZONES_SHARE_MAIN_CLUSTER = 'true';
  const proc = spawn(process.execPath, ['--import', 'tsx', 'ingest/main.ts'], { cwd: root, env: ingestEnv, stdio: ['ignore', 'inherit', 'inherit'] });
  const url = `http://127.0.0.1:${port}`;
  for (let i = 0; i < 600; i++) {
    if (proc.exitCode !== null) throw new Error(`ingest exited with ${proc.exitCode}`);
    try {
      if ((await fetch(`${url}/readyz`)).status === 200) return { proc, url, keyDir, eventsTopic, personalPrefix };
    } catch {
      /* not up yet */
    }
    await new Promise((r) => setTimeout(r, 100));
  }
  throw new Error('ingest did not become ready in 60 s');
}

const dayOfTime = (t: number) => Math.floor(t / DAY_MS);
const daysOf = (p: LinkagePost) => new Set(p.batch.events.map((e) => dayOfTime(e.time)));

/** Posts every batch (paced over `seconds`); returns the posts answered 200. */
async function post(url: string, posts: LinkagePost[]): Promise<{ ok: LinkagePost[]; byStatus: Record<string, number> }> {
  const bodies = posts.map((p) => containerOf(p.batch));
  const ok: LinkagePost[] = [];
  const pauseMs = Math.max(0, (concurrency * seconds * 1000) / posts.length - 20);
  const r = await runLoad({
    url,
    concurrency,
    durationMs: 10 * seconds * 1000,
    maxRequests: posts.length,
    pauseMs,
    jitter: true,
    next: (i) => ({ body: bodies[i]!, meta: posts[i]! }),
    onResult: (x) => {
      if (x.status === 200) ok.push(x.meta);
    },
  });
  return { ok, byStatus: r.byStatus };
}

function seen(r: ReadRecord): Omit<PersonalSeen, 'receivedAt' | 'simMcc' | 'days' | 'appStatus' | 'crash'> {
  return {
    topic: r.topic,
    partition: r.partition,
    offset: Number(r.offset),
    timestamp: Number(r.timestamp),
    key: r.key!.toString('hex'),
    size: r.value!.length,
  };
}

/** Reads every topic back: the adversary's view. */
async function readTopics(ing: Ingest, ok: LinkagePost[]): Promise<{ personal: PersonalSeen[]; events: EventsSeen[] }> {
  const personalCodec = deviceRecordCodec();
  const expectedEvents = ok.reduce((s, p) => s + daysOf(p).size, 0);
  const zoneOfMcc: Record<string, Zone> = { '460': 'cn', '250': 'ru', '404': 'in', '310': 'row' };
  const perZone = (z: Zone) => ok.filter((p) => zoneOfMcc[p.batch.device.sim_mcc] === z).length;
  const events = (await readAll(ing.eventsTopic, expectedEvents, 30_000)).map((r) => ({ ...seen(r), facts: decodeEventFacts(r.value!) }));
  const personal: PersonalSeen[] = [];
  // How many records each personal topic holds (a device's byte-equal records are written once, so
  // fewer than its batches): the sum of its partitions' end offsets (no transactions, no compaction).
  const admin = createKafka().admin();
  await admin.connect();
  const held = async (topic: string) => (await admin.fetchTopicOffsets(topic)).reduce((s, p) => s + Number(p.high), 0);
  for (const z of ZONES) {
    const topic = personalTopic(ing.personalPrefix, z, DEVICE_CLASS);
    const n = Math.min(perZone(z), await held(topic));
    for (const r of await readAll(topic, n, 30_000)) {
      personal.push({ ...seen(r), ...personalSeen(personalCodec.decode(r.value!)) });
    }
  }
  await admin.disconnect();
  return { personal, events };
}

const median = (xs: number[]) => (xs.length ? xs.slice().sort((a, b) => a - b)[Math.floor(xs.length / 2)]! : NaN);
const mean = (xs: number[]) => (xs.length ? xs.reduce((a, b) => a + b, 0) / xs.length : NaN);
const round = (x: number) => Number(x.toFixed(3));

/** Scores the adversary against the truth (daily token -> device, from the day secrets ingest made). */
function evaluate(ing: Ingest, posts: LinkagePost[], view: { personal: PersonalSeen[]; events: EventsSeen[] }, meanMix: number) {
  const tokenizer = new DailyTokenizer(new FileKeySource(ing.keyDir, { mode: 'read-only' }));
  const now = Date.now();
  const deviceOfToken = new Map<string, string>();
  for (const id of new Set(posts.map((p) => p.identity))) {
    for (const day of [dayOfTime(now), dayOfTime(now) - 1]) {
      const keys = tokenizer.keys(day, now);
      if (keys) deviceOfToken.set(tokenizer.dailyToken(keys, id).toString('hex'), id);
    }
  }
  const identityOfKey = (hexKey: string) => Buffer.from(hexKey, 'hex').toString('utf8');
  const own = (pi: number, ei: number) => deviceOfToken.get(view.events[ei]!.key) === identityOfKey(view.personal[pi]!.key);
  // The record's last candidate day (a record of today's upload, or of a midnight batch's today).
  const mainDay = (pi: number) => view.personal[pi]!.days[view.personal[pi]!.days.length - 1]!;
  const prepared = prepare(view.personal, view.events);
  // Devices with a batch spanning midnight: the two days whose tokens an adversary would chain.
  const midnightDays = new Map<string, [number, number]>();
  for (const p of posts) {
    if (p.shape !== 'midnight') continue;
    const days = [...daysOf(p)].sort((a, b) => a - b);
    midnightDays.set(p.identity, [days[0]!, days[days.length - 1]!]);
  }
  const accuracy = (features: readonly Feature[]) => {
    const g = guess(prepared, features, Math.random);
    // Linked: the one events record the adversary names for the personal record is its device's.
    const linked = g.map((m, pi) => own(pi, m.best));
    // Chained: for each of the two days, the adversary's most confident guess among the device's records
    // (they share their key, so its days are joined by the key) names the device's own token of that day.
    const strongest = new Map<string, { pi: number; ei: number; s: number }>();
    g.forEach((m, pi) => {
      const id = identityOfKey(view.personal[pi]!.key);
      if (!midnightDays.has(id)) return;
      for (const [day, b] of m.byDay) {
        const k = `${id}/${day}`;
        if ((strongest.get(k)?.s ?? -Infinity) < b.s) strongest.set(k, { pi, ei: b.i, s: b.s });
      }
    });
    const chained = [...midnightDays].map(([id, [y, t]]) => {
      const [gy, gt] = [strongest.get(`${id}/${y}`), strongest.get(`${id}/${t}`)];
      return Number(!!gy && !!gt && own(gy.pi, gy.ei) && own(gt.pi, gt.ei));
    });
    return { link: mean(linked.map(Number)), linked, crossDay: mean(chained), midnight: midnightDays.size };
  };
  // What the transport adversary faces: the records its timestamps cannot tell apart, and at most the mix
  // (consecutive mixes keep their order in the partitions).
  const byTimestamp = anonymitySets(prepared, own);
  // The country is on both sides by design (a dimension of the facts; the residency zone of the
  // personal topic), so of a mix the adversary faces only the events records of the personal record's
  // country and candidate days (a record naming a past day hides only among the few past-day records
  // of its mix): a mix holds `recordsPerMix` events records, of which these days' and this country's
  // share. Its batch put `ownPerBatch` of them there on average (two for a batch spanning midnight), and
  // naming any of them links: the crowd per record of its own.
  const ownPerBatch = view.events.length / Math.max(1, posts.length);
  const recordsPerMix = meanMix * ownPerBatch;
  const dayCountryShare = (pi: number) => {
    const p = prepared[pi]!.p;
    const same = view.events.filter((e) => p.days.includes(e.facts[0]?.day ?? -1) && e.facts.every((f) => f.country === p.country));
    return same.length / Math.max(1, view.events.length);
  };
  const setsIgnoringCountry = byTimestamp.map((s) => Math.max(1, Math.min(s / ownPerBatch, meanMix)));
  const sets = byTimestamp.map((s, pi) => Math.max(1, Math.min(s, recordsPerMix * dayCountryShare(pi)) / ownPerBatch));
  const crowds = contentCrowds(prepared, own);
  // The adversary's joins: every feature, each feature left out, transport alone, content alone, and
  // with size. The strongest of them is the figure: an adversary would keep whichever links best
  // (leaving a feature out can help: a device's count of personal records no longer follows its
  // batches, so `recurrence` now misleads).
  const joins: Record<string, readonly Feature[]> = {
    all: FEATURE_SETS.all,
    ...Object.fromEntries(ALL_FEATURES.filter((f) => f !== 'transport').map((f) => [`without_${f}`, ALL_FEATURES.filter((x) => x !== f)])),
    transport: FEATURE_SETS.transport,
    content: FEATURE_SETS.content,
    with_size: [...ALL_FEATURES, 'size'],
  };
  const results = Object.fromEntries(Object.entries(joins).map(([name, f]) => [name, accuracy(f)]));
  const best = Object.entries(results).reduce((a, b) => (b[1].link > a[1].link ? b : a));
  // The strongest join is picked knowing the truth of every record it is scored on, so it leans high
  // (the maximum of nine noisy figures). An adversary picks its join on devices whose truth it knows (its
  // own phones) and uses it on the rest: two folds by device, the join best on one scored on the other.
  const fold = (pi: number) => createHash('sha256').update(view.personal[pi]!.key).digest()[0]! & 1;
  let heldOutLinked = 0;
  for (const f of [0, 1]) {
    const on = (x: number) => view.personal.map((_, pi) => pi).filter((pi) => fold(pi) === x);
    const score = (r: { linked: boolean[] }, pis: number[]) => pis.reduce((s, pi) => s + Number(r.linked[pi]), 0);
    const train = on(1 - f);
    const pick = Object.values(results).reduce((a, b) => (score(b, train) > score(a, train) ? b : a));
    heldOutLinked += score(pick, on(f));
  }
  const today = dayOfTime(now);
  const pastDaySplit = (linked: boolean[], crowd: number[]) => {
    // Past: a record that names only past days (when records list their events' days).
    const part = (past: boolean) => view.personal.map((_, pi) => pi).filter((pi) => mainDay(pi) < today === past);
    const [t, y] = [part(false), part(true)];
    return {
      link_accuracy_today_records: round(mean(t.map((pi) => Number(linked[pi])))),
      chance_today_records: round(mean(t.map((pi) => 1 / crowd[pi]!))),
      link_accuracy_past_day_records: round(mean(y.map((pi) => Number(linked[pi])))),
      chance_past_day_records: round(mean(y.map((pi) => 1 / crowd[pi]!))),
      past_day_records: y.length,
    };
  };
  const bestCross = Math.max(...Object.values(results).map((r) => r.crossDay));
  return {
    link_accuracy: round(best[1].link),
    strongest_join: best[0],
    link_accuracy_held_out: round(heldOutLinked / Math.max(1, view.personal.length)),
    // Records of today and of a past day (midnight and late batches) apart: their crowds differ.
    ...pastDaySplit(best[1].linked, sets),
    ...Object.fromEntries(Object.entries(results).map(([name, r]) => [`link_accuracy_${name}`, round(r.link)])),
    chance: round(mean(sets.map((s) => 1 / s))),
    anonymity_set_p50: round(median(sets)),
    chance_ignoring_country: round(mean(setsIgnoringCountry.map((s) => 1 / s))),
    content_crowd_p50: median(crowds),
    content_chance: round(mean(crowds.map((c) => 1 / c))),
    timestamp_anonymity_set_p50: median(byTimestamp),
    mean_mix_batches: round(meanMix),
    cross_day_link_accuracy: round(bestCross),
    midnight_devices: results.all!.midnight,
    personal_records: view.personal.length,
    events_records: view.events.length,
    unmatched_tokens: view.events.filter((e) => !deviceOfToken.has(e.key)).length,
  };
}

async function phase(linkable: boolean, posts: LinkagePost[]) {
  const ing = await startIngest(linkable);
  try {
    const t0 = performance.now();
    const { ok, byStatus } = await post(ing.url, posts);
    const postSeconds = (performance.now() - t0) / 1000;
    const metrics = await (await fetch(`${ing.url}/metrics`)).text();
    const metric = (name: string) => Number(new RegExp(`^${name} (\\S+)$`, 'm').exec(metrics)?.[1] ?? NaN);
    // Linkable: no mixes (each batch is its own); the timestamps decide alone.
    const meanMix = linkable ? Infinity : metric('ingest_mix_batches_sum') / metric('ingest_mix_batches_count');
    const view = await readTopics(ing, ok);
    return { ...evaluate(ing, ok, view, meanMix), batches_ok: ok.length, post_seconds: round(postSeconds), status_counts: byStatus };
  } finally {
    ing.proc.kill('SIGTERM');
    await new Promise((r) => ing.proc.once('exit', r));
  }
}

trackNamesOfThisProcess();
const posts = linkagePopulation({ seed, devices, now: Date.now() });
let exit = 0;
try {
  const protectedRun = await phase(false, posts);
  console.log(`protected (as configured): ${JSON.stringify(protectedRun)}`);
  const control = await phase(true, posts);
  console.log(`negative control (INGEST_UNSAFE_LINKABLE=true): ${JSON.stringify(control)}`);
  // The negative control: the attack must link the unprotected topics.
  if (control.link_accuracy < 0.9) {
    console.error('the attack is too weak: it does not link the unprotected topics (negative control below 0.9)');
    exit = 1;
  }
  const out: Record<string, unknown> = {
    devices,
    batches_posted: posts.length,
    midnight_batches: posts.filter((p) => p.shape === 'midnight').length,
    ...protectedRun,
  };
  for (const [k, v] of Object.entries(control)) out[`negative_control_${k}`] = v;
  console.log(JSON.stringify(out));
} finally {
  for (const p of (await deleteWhatThisFileMade()).problems) console.error(`cleanup: ${p}`);
}
process.exit(exit);
