/**
 * The binary fast path of the split: one generated function (`new Function`, built from the batch
 * schema, its attributes and the category map) that walks a binary Avro body ONCE and
 *   - makes every check the hostile-Avro guard makes (bounds, limits, UTF-8, union/enum indices,
 *     trailing bytes) and every per-event check of validate.ts (maxLength, format, min, finite numbers),
 *   - builds only the batch-level part as JS values (device, consent: amortised over the batch),
 *   - writes each event's personal bytes (the kept fields, policy 1.1.1-1.1.3 with a retention) by
 *     copying them from the input: the personal record schema is the batch schema filtered, so a kept
 *     field's encoding is the same bytes,
 *   - keeps, per event, only what the EventFact needs (positions of strings, numbers, the branch taken)
 *     and the 16 raw bytes of the event id (char-table scan, no regex),
 * then writes the EventFacts of the batch with a generated writer, straight into one EventFactBatch
 * record per day (header, block count, facts, 0): the records the events topic carries.
 *
 * Why: the generic path (guard walk, avsc decode into objects, re-validation of every type, closure
 * chains for wiring and projection, avsc encode of the personal record) cost ~10x bare avsc decoding;
 * the target is <= 3x (schemas/README.md, "Bench").
 *
 * Soundness rule: the fast path never reports an error. On anything that is not the plain happy path
 * (a check fails, an event would be rejected or refused a token, a varint is not in canonical form, a
 * string is longer in bytes than its limit in UTF-16 units, an unusual number) it returns `undefined`
 * and the caller runs the generic path (guardBody + avsc + processBatch), which gives the exact error or
 * rejects. So the fast path only has to be right when it answers, and the differential test
 * (fast.test.ts) checks that it answers exactly what the generic path answers, byte for byte.
 * A schema construct it does not handle (maps, fixed, bytes, arrays other than `events`, consent
 * stripping inside events) makes `compileFastPath` return undefined: then every body takes the generic path.
 *
 * This file holds the entry point and the hand-written driver (the batch-level steps around the
 * generated code); the code generator is fast-codegen.ts.
 */
import type avro from 'avsc';
import { zoneOf } from './categories.ts';
import type { BatchHead } from './batch-shape.ts';
import type { FastSpec } from './fast-spec.ts';
import type { SplitResult, Zone } from './contract.ts';
import type { PersonalOut } from './personal.ts';
import { generate, Unsupported, type Generated } from './fast-codegen.ts';
import type { DecodeLimits } from './guard.ts';
import { DAY_MS } from './time.ts';
import type { DailyTokenizer } from './tokenizer.ts';
import { writeLong } from './varint.ts';

export type { FastSpec };

export interface FastContext {
  receivedAt: number;
  clientIp?: string;
  tokenizer: DailyTokenizer;
}

/** Returns the split of a binary body, or undefined when the generic path must decide. */
export type FastPath = (body: Buffer, ctx: FastContext, limits: DecodeLimits) => SplitResult | undefined;

export function compileFastPath(spec: FastSpec): FastPath | undefined {
  let gen: Generated;
  try {
    gen = generate(spec);
  } catch (e) {
    if (e instanceof Unsupported) return undefined;
    throw e;
  }
  return driver(spec, gen);
}

// ---- the driver: batch-level steps in the order of compile.ts processBatch ------------------------------

function driver(spec: FastSpec, g: Generated): FastPath {
  const encodeBatchLevel = batchLevelEncoder(spec);

  return (body, ctx, limits) => {
    const n = g.parse(body, limits.maxStringLength, limits.maxItems?.['events'] ?? limits.maxCollectionLength, limits.maxTotalItems);
    if (n < 0) return undefined;
    const head = g.head;
    head.events = new Array(n); // checkBatch looks only at the array's length (items are checked above)
    if (spec.checkBatch(head)) return undefined;
    const identity = spec.deviceIdentity(head.device);
    if (!identity) return undefined;
    const result: SplitResult = { accepted: 0, droppedConsent: {}, rejects: [], events: [], personal: [], rejected: [] };
    // Policy 1.2/5.1: no User Experience Program consent, nothing is kept.
    if (head.consent.analytics !== true) {
      if (n) result.droppedConsent.no_analytics_consent = n;
      return result;
    }
    if (n === 0) return result;
    const zone = zoneOf(head.device.sim_mcc, head.device.region, spec.residency);
    const keys = dayKeys(g, n, ctx, identity.value);
    if (!keys) return undefined;
    // Batch-level fact fields, encoded once (the bytes the generic flat writer gives; where it would
    // throw, toBuffer throws too and the generic path decides).
    let chunks: Buffer[];
    try {
      chunks = encodeBatchLevel(spec.batchValues(head));
    } catch {
      return undefined;
    }
    const written = keys.days.length === 1 ? writeOneDay(spec, g, body, n, keys, chunks, result) : writeDays(spec, g, body, n, keys, chunks, result);
    if (!written) return undefined;
    result.accepted = n;
    const personal = personalRecords(spec, g, head, n, zone, identity.value, ctx, result.droppedConsent);
    if (!personal) return undefined;
    result.personal.push(...personal.records);
    result.device = personal.device;
    return result;
  };
}

/**
 * Runs of consecutive batch-level fact fields: each run is encoded once per batch (strings directly,
 * anything else by avsc) and copied into every fact (the generated writer's `CH[i]`).
 */
function batchLevelEncoder(spec: FastSpec): (bv: unknown[]) => Buffer[] {
  const factFields = spec.factSchema.fields;
  const avroFields = (spec.eventFactType as avro.types.RecordType).fields;
  const runs: number[][] = [];
  let run: number[] | undefined;
  factFields.forEach((f, i) => {
    const froms = Array.isArray(f.from) ? f.from : [f.from!]; // compileWiring refused a field without `from`
    const batchLevel = f.via !== 'event_key' && f.via !== 'daily_token' && !froms[0]!.startsWith('events[]');
    if (batchLevel) {
      if (!run) runs.push((run = []));
      run.push(i);
    } else run = undefined;
  });
  const runTypes = runs.map((r) => r.map((i) => avroFields[i]!.type));
  const encodeRun = (r: number[], types: avro.Type[], bv: unknown[]): Buffer => {
    let size = 0;
    for (let k = 0; k < r.length; k++) {
      const x = bv[r[k]!];
      size += typeof x === 'string' && types[k]!.typeName === 'string' ? 10 + Buffer.byteLength(x) : types[k]!.toBuffer(x).length;
    }
    const b = Buffer.allocUnsafe(size);
    let w = 0;
    for (let k = 0; k < r.length; k++) {
      const x = bv[r[k]!];
      if (typeof x === 'string' && types[k]!.typeName === 'string') {
        const len = Buffer.byteLength(x);
        w = writeLong(b, w, len);
        w += b.write(x, w, 'utf8');
      } else w += types[k]!.toBuffer(x).copy(b, w);
    }
    return b.subarray(0, w);
  };
  return (bv) => runs.map((r, i) => encodeRun(r, runTypes[i]!, bv));
}

/** The UTC days of a batch's events, with each day's daily token and its events' keys. */
interface DayKeys {
  /** Distinct days, in order of first appearance (usually one). */
  days: number[];
  /** Event j -> its day's index in `days`. */
  dayOf: Int32Array;
  /** Event j -> its index among its day's events (its event key's slot in that day's `keyBufs`). */
  at: Int32Array;
  tokens: Buffer[];
  /** Per day: the event keys of its events, 16 bytes each, in event order. */
  keyBufs: Buffer[];
}

/** Tokens per day; undefined on any refusal (the generic path writes the rejects). */
function dayKeys(g: Generated, n: number, ctx: FastContext, identity: string): DayKeys | undefined {
  const { tokenizer, receivedAt } = ctx;
  const times = g.times;
  const dayOf = new Int32Array(n);
  const days: number[] = [];
  for (let j = 0; j < n; j++) {
    const t = times[j]!;
    if (tokenizer.refusal(t, receivedAt)) return undefined;
    const d = Math.floor(t / DAY_MS);
    let k = days.indexOf(d);
    if (k < 0) k = days.push(d) - 1;
    dayOf[j] = k;
  }
  const tokens: Buffer[] = [];
  const keyBufs: Buffer[] = [];
  const at = new Int32Array(n);
  for (let k = 0; k < days.length; k++) {
    const keys = tokenizer.keys(days[k]!, receivedAt);
    if (!keys) return undefined;
    const token = tokenizer.dailyToken(keys, identity);
    let ids: Buffer;
    if (days.length === 1) ids = g.ids.subarray(0, 16 * n);
    else {
      let m = 0;
      ids = Buffer.allocUnsafe(16 * n);
      for (let j = 0; j < n; j++) {
        if (dayOf[j] !== k) continue;
        g.ids.copy(ids, 16 * m, 16 * j, 16 * j + 16);
        at[j] = m++;
      }
      ids = ids.subarray(0, 16 * m);
    }
    tokens.push(token);
    keyBufs.push(tokenizer.eventKeysOf(keys, ids, token));
  }
  if (days.length === 1) for (let j = 0; j < n; j++) at[j] = j;
  return { days, dayOf, at, tokens, keyBufs };
}

const dataView = (b: Buffer) => new DataView(b.buffer, b.byteOffset, b.length);

/**
 * Template mode (a batch of one day): event 0 written in full gives the common prefix; it is repeated
 * over the whole buffer by one native fill, then only the holes and the tail are written per event.
 * Facts have different lengths (the tail), so each is moved down to the end of the previous one.
 * Pushes the day's record; false to fall back.
 */
function writeOneDay(spec: FastSpec, g: Generated, body: Buffer, n: number, keys: DayKeys, chunks: Buffer[], result: SplitResult): boolean {
  const fh = spec.factHeader;
  const bh = spec.batchHeader;
  const eventSlots = spec.factSchema.fields.length;
  const tailMax = g.tailMax(n, chunks);
  let chunkLen = 0;
  for (const c of chunks) chunkLen += c.length;
  const first = Buffer.allocUnsafe(fh.length + 32 + chunkLen + 11 * eventSlots + tailMax);
  const kd = dataView(keys.keyBufs[0]!);
  if (g.fact(body, 0, first, dataView(first), 0, kd, 0, dataView(keys.tokens[0]!), chunks) < 0) return false;
  const pre = g.prefixLen();
  const stride = pre + tailMax;
  const lead = bh.length + 10;
  const out = Buffer.allocUnsafe(lead + n * stride + 1);
  const od = dataView(out);
  bh.copy(out, 0);
  let c = writeLong(out, bh.length, n);
  out.fill(first.subarray(0, stride), lead, lead + n * stride);
  for (let j = 0; j < n; j++) {
    const base = lead + j * stride;
    if (!g.holes(j, out, od, base, kd, 16 * j)) return false;
    const w = g.tail(body, j, out, od, base + pre, chunks);
    if (w < 0) return false;
    if (c !== base) out.copyWithin(c, base, w);
    c += w - base;
  }
  out[c++] = 0;
  result.events.push({ key: keys.tokens[0]!, value: out.subarray(0, c) });
  return true;
}

/** A batch over several days: each day's record in turn, its facts written in full. False to fall back. */
function writeDays(spec: FastSpec, g: Generated, body: Buffer, n: number, keys: DayKeys, chunks: Buffer[], result: SplitResult): boolean {
  const fh = spec.factHeader;
  const bh = spec.batchHeader;
  const eventSlots = spec.factSchema.fields.length;
  const { days, dayOf, at, tokens } = keys;
  const kds = keys.keyBufs.map(dataView);
  const tds = tokens.map(dataView);
  let chunkLen = 0;
  for (const c of chunks) chunkLen += c.length;
  const out = Buffer.allocUnsafe(days.length * (bh.length + 11) + n * (fh.length + 32 + chunkLen + 11 * eventSlots) + eventSlots * body.length);
  const od = dataView(out);
  const counts = new Int32Array(days.length);
  for (let j = 0; j < n; j++) counts[dayOf[j]!]!++;
  let w = 0;
  for (let k = 0; k < days.length; k++) {
    const start = w;
    bh.copy(out, w);
    w = writeLong(out, w + bh.length, counts[k]!);
    for (let j = 0; j < n; j++) {
      if (dayOf[j] !== k) continue;
      w = g.fact(body, j, out, od, w, kds[k]!, 16 * at[j]!, tds[k]!, chunks);
      if (w < 0) return false;
    }
    out[w++] = 0;
    result.events.push({ key: tokens[k]!, value: out.subarray(start, w) });
  }
  return true;
}

/**
 * The personal records: the draft's batch-level part through the generic projection (consent stripping
 * counted there), its events reduced from the copied per-event bytes (they are the draft events'
 * encoding) to one event per distinct value of each field (personal.ts `DistinctEvents`: the sets are
 * the same, and the events are never decoded whole), then the class records of personal.ts, as the
 * generic path makes them. Undefined to fall back.
 */
function personalRecords(
  spec: FastSpec,
  g: Generated,
  head: BatchHead,
  n: number,
  zone: Zone,
  identity: string,
  ctx: FastContext,
  dropped: Record<string, number>,
): { records: PersonalOut[]; device: { identity: string; identifiers: string[] } } | undefined {
  const draft = spec.project(head, [], head.consent, dropped);
  const ev = g.personal();
  const events = spec.distinctEvents(ev.buf, 0, ev.len, n);
  if (!events) return undefined;
  draft.events = events;
  return {
    records: spec.personalRecords(draft, Buffer.from(identity, 'utf8'), { receivedAt: ctx.receivedAt, zone, clientIp: ctx.clientIp ?? null }),
    device: { identity, identifiers: spec.identifiers(draft) },
  };
}
