/**
 * The compiler: Batch schema + EventFact schema + category map -> `processBatch`, which validates,
 * enforces consent, tokenises, splits and encodes one decoded batch.
 *
 * Everything policy-related is derived from the map at build time:
 * - which fields are personal (personal record) and which consent strips them (consent effects);
 * - the personal records: the batch schema filtered to personal categories whose retention is not P0D
 *   (the draft, `buildDraftSchema`), then one record per retention class with the per-event fields as
 *   sets (personal.ts), plus ingest's received hour, zone and client IP;
 * - the EventFact: each output field declares `from` (an input path) and `via` (a derivation); the
 *   build fails unless the map allows that derivation for the input field's category, and `copy` /
 *   `union_branch` are refused for any personal category whatever the map says.
 * A field with no category or an unknown one fails the build with its path (SchemaBuildError).
 */
import avro from 'avsc';
import { CATEGORIES, MCC_COUNTRY, RESIDENCY, retentionDays, zoneOf, type CategoryMap, type Derivation } from './categories.ts';
import {
  classify,
  isRecordSchema,
  shortName,
  stripAttrs,
  type ArraySchema,
  type FieldInfo,
  type RecordSchema,
  type SchemaField,
  type SchemaNode,
} from './classify.ts';
import type { EventReject, OutRecord, SplitResult, Zone } from './contract.ts';
import { SchemaBuildError, type SchemaErrorCode } from './errors.ts';
import type { BatchHead, DeviceFields } from './batch-shape.ts';
import { compileFastPath, type FastPath } from './fast.ts';
import { factBatchSchemaOf } from './event-facts.ts';
import { compileFlatWriter, Slab } from './fact-writer.ts';
import { DEFAULT_LIMITS, guardBody, type DecodeLimits } from './guard.ts';
import { readSchema, typeOf, type Schema } from './load.ts';
import { DAY_MS } from './time.ts';
import type { DailyTokenizer } from './tokenizer.ts';
import { compileCheck, type Invalid } from './validate.ts';
import { compilePersonal, type PersonalClass } from './personal.ts';
import { headerFor } from './wire.ts';

export interface SplitOptions {
  /** Inject another map (tests: the negative control of the leak property). @default CATEGORIES */
  categories?: CategoryMap;
  /** @default schemas/avro/batch.avsc */
  batchSchema?: RecordSchema;
  /** @default schemas/avro/event-fact.avsc */
  eventFactSchema?: RecordSchema;
  /** The events-topic record wrapping a day's facts. @default schemas/avro/event-fact-batch.avsc */
  eventFactBatchSchema?: Schema;
  /** Most events per batch (overrides the schema's `maxItems` on `events`). @default 1000 */
  maxEvents?: number;
  /** Applied to strings without their own `maxLength`. @default 65536 */
  maxStringLength?: number;
  /** The rejects topic's record; every field must name a category like the others. @default schemas/avro/reject.avsc */
  rejectSchema?: RecordSchema;
  /** Confluent schema registry ids; when set, that record type uses the 5-byte wire format. */
  registryIds?: { eventFactBatch?: number; personal?: number; reject?: number };
  /** Residency rule. @default RESIDENCY */
  residency?: typeof RESIDENCY;
}

export interface ProcessContext {
  receivedAt: number;
  clientIp?: string;
  tokenizer: DailyTokenizer;
}

/**
 * The split compiled from the batch schema, the EventFact schema and the category map (`compileSplit`):
 * what ingest runs on every batch (validate, consent, tokenise, split, encode).
 */
export interface CompiledSplit {
  processBatch(batch: unknown, ctx: ProcessContext): SplitResult;
  /**
   * A binary body written with `batchType` (no header) -> the split. Same outcome as
   * `guardBody(batchType, body, limits)` + `processBatch(batchType.fromBuffer(body), ctx)`, including the
   * AvroGuardError it throws, but a body on the happy path goes through the generated fast path
   * (fast.ts), several times cheaper. Bodies written with another writer schema still need the guard +
   * resolver + `processBatch`.
   */
  processBody(body: Buffer, ctx: ProcessContext, limits?: DecodeLimits): SplitResult;
  /** Whether `processBody` has a fast path for this schema (false: it always takes the generic path). */
  readonly hasFastPath: boolean;
  readonly batchType: avro.Type;
  readonly eventFactType: avro.Type;
  /** The events-topic record: `{ facts: EventFact[] }`, one per (batch, day). */
  readonly eventFactBatchType: avro.Type;
  /** The personal records' retention classes (personal.ts), longest first: each its schema, type and topic suffix. */
  readonly personalClasses: readonly PersonalClass[];
  readonly rejectType: avro.Type;
  /** Field path -> category, for tests and the docs. */
  readonly fields: ReadonlyMap<string, FieldInfo>;
}

/**
 * What a consent switched off does: analytics drops the events; personalised ads and location strip the
 * fields whose category the map gates by that consent (policy 1.2, 5.1), counted as
 * `stripped_no_<consent>:<path>`.
 */
const CONSENT_EFFECT = { analytics: 'drop_events', personalised_ads: 'strip_field', location: 'strip_field' } as const;
type StripConsent = { [K in keyof typeof CONSENT_EFFECT]: (typeof CONSENT_EFFECT)[K] extends 'strip_field' ? K : never }[keyof typeof CONSENT_EFFECT];

/** A field nulled in the personal record unless `consent` is granted in the batch's `consent` record. */
export interface StripRule {
  path: string;
  consent: StripConsent;
}

/** The fast path of each compiled split, for the differential tests only (not exported from index.ts). */
export const FAST_PATHS = new WeakMap<CompiledSplit, FastPath>();

const IMPLICIT_NON_PERSONAL: ReadonlySet<Derivation> = new Set(['copy', 'union_branch']);

export function compileSplit(opts: SplitOptions = {}): CompiledSplit {
  const map = opts.categories ?? (CATEGORIES as CategoryMap);
  const batchSchema = opts.batchSchema ?? (readSchema('batch') as RecordSchema);
  const factSchema = opts.eventFactSchema ?? (readSchema('event-fact') as RecordSchema);
  const fields = classify(batchSchema, map);

  const checks = compileChecks(batchSchema, fields, opts);
  const stripRules = consentStripping(batchSchema, fields);
  const outputs = compileOutputs(batchSchema, factSchema, fields, map, stripRules, opts);
  const parts: SplitParts = { ...checks, ...outputs, residency: opts.residency ?? RESIDENCY };
  const processBatch = (batch: unknown, ctx: ProcessContext) => splitBatch(parts, batch, ctx);

  const fast = compileFastPath({
    batchSchema,
    factSchema,
    fields,
    kept,
    stripPaths: new Set(stripRules.map((r) => r.path)),
    maxStringLength: checks.maxStringLength,
    maxEvents: checks.maxEvents,
    eventFactType: outputs.eventFactType,
    distinctEvents: outputs.personal.distinctEvents,
    personalRecords: (draft, key, ctx) => outputs.personal.records(draft, key, ctx),
    identifiers: (draft) => outputs.personal.identifiers(draft),
    factHeader: Buffer.alloc(0), // facts inside the batch record carry no header
    batchHeader: outputs.factHeader,
    residency: parts.residency,
    checkBatch: checks.checkBatch,
    deviceIdentity,
    project: outputs.project,
    batchValues: outputs.wiring.batchValues,
  });

  const { batchType } = checks;
  function processBody(body: Buffer, ctx: ProcessContext, limits: DecodeLimits = DEFAULT_LIMITS): SplitResult {
    const r = fast?.(body, ctx, limits);
    if (r) return r;
    guardBody(batchType, body, limits);
    return processBatch(batchType.fromBuffer(body), ctx);
  }

  const { eventFactType, eventFactBatchType, rejectType } = outputs;
  const split: CompiledSplit = {
    processBatch,
    processBody,
    hasFastPath: fast !== undefined,
    batchType,
    eventFactType,
    eventFactBatchType,
    personalClasses: outputs.personal.classes,
    rejectType,
    fields,
  };
  if (fast) FAST_PATHS.set(split, fast);
  return split;
}

// ---- build steps ----------------------------------------------------------------------------------------

/** Validation: the batch without its events, and one event (both from the schema and its attributes). */
function compileChecks(batchSchema: RecordSchema, fields: Map<string, FieldInfo>, opts: SplitOptions) {
  const eventsInfo = fields.get('events');
  if (!eventsInfo) throw new SchemaBuildError('SCHEMA_BAD_DERIVATION', `${batchSchema.name}.events`, 'the batch schema needs an `events` array');
  const maxEvents: number = opts.maxEvents ?? eventsInfo.field.maxItems ?? 1000;
  const maxStringLength = opts.maxStringLength ?? 65_536;
  const eventsField = batchSchema.fields.find((f) => f.name === 'events')!;
  eventsField.maxItems = maxEvents;
  const checkBatch = compileCheck(batchSchema, { maxStringLength, maxCollectionLength: maxEvents, skipItems: new Set(['events']) });
  const batchType = typeOf(batchSchema, 'auto');
  const eventType = ((batchType as avro.types.RecordType).field('events').type as avro.types.ArrayType).itemsType;
  // The event's JSON comes from the source schema: avsc does not keep custom field attributes
  // (category, maxLength, format), and the checks need them.
  const eventSchemaNode: RecordSchema = { namespace: batchSchema.namespace, ...((eventsField.type as ArraySchema).items as RecordSchema) };
  const checkEvent = compileCheck(eventSchemaNode, { maxStringLength, maxCollectionLength: maxEvents });
  return { maxEvents, maxStringLength, checkBatch, checkEvent, batchType, eventType };
}

/**
 * Consent: the fields each stripping consent gates (derived from the map: the outermost field of a
 * category whose `consent` is that consent); every consent of `CONSENT_EFFECT` must exist in the batch.
 */
function consentStripping(batchSchema: RecordSchema, fields: Map<string, FieldInfo>): StripRule[] {
  const consentField = (name: string) => fields.get(`consent.${name}`);
  for (const c of Object.keys(CONSENT_EFFECT)) {
    if (!consentField(c))
      throw new SchemaBuildError('SCHEMA_BAD_DERIVATION', `${batchSchema.name}.consent.${c}`, `the batch needs consent.${c} (policy 1.2, 5.1)`);
  }
  const strips = (consent: string): consent is StripConsent => (CONSENT_EFFECT as Record<string, string>)[consent] === 'strip_field';
  const rules: StripRule[] = [];
  for (const f of fields.values()) {
    const consent = f.entry.consent;
    if (!strips(consent) || f.step.kind !== 'field' || fields.get(f.parent)?.entry.consent === consent) continue;
    if (!(Array.isArray(f.field.type) && f.field.type.includes('null'))) {
      throw new SchemaBuildError(
        'SCHEMA_BAD_DERIVATION',
        f.schemaPath,
        `field ${f.schemaPath} is gated by ${consent} consent, so it must be nullable to be stripped`,
      );
    }
    rules.push({ path: f.path, consent });
  }
  return rules;
}

/** The three outputs: the personal records (draft projection + classes), the EventFact wiring, rejects. */
function compileOutputs(
  batchSchema: RecordSchema,
  factSchema: RecordSchema,
  fields: Map<string, FieldInfo>,
  map: CategoryMap,
  stripRules: StripRule[],
  opts: SplitOptions,
) {
  // Every record the split writes names a category for every field (ARCHITECTURE.md principle 1): each
  // personal class record (with what ingest adds: received_at, zone, client_ip; compilePersonal checks
  // them) and the reject record.
  const personal = compilePersonal(buildDraftSchema(batchSchema, fields), map, opts.registryIds?.personal);
  const project = compileProjection(batchSchema, fields, stripRules);

  const eventFactType = typeOf(factSchema);
  const wiring = compileWiring(factSchema, fields, map);
  const factWriter = compileFlatWriter(eventFactType);
  // One events-topic record per (batch, day): the wrapper's header, the array's block count, the
  // facts (no header of their own), the array's terminating 0 (event-facts.ts says why).
  const eventFactBatchType = typeOf(factBatchSchemaOf(opts.eventFactBatchSchema ?? readSchema('event-fact-batch'), factSchema));
  const factHeader = headerFor(eventFactBatchType, opts.registryIds?.eventFactBatch);
  const rejectSchema = opts.rejectSchema ?? (readSchema('reject') as RecordSchema);
  classify(rejectSchema, map);
  const rejectType = typeOf(rejectSchema);
  const rejectHeader = headerFor(rejectType, opts.registryIds?.reject);
  const branchKeys = fields.get('events[].payload')?.branches?.map((b) => b.fullname) ?? [];
  const neverStored = neverStoredInEvent(fields);
  return {
    personal,
    stripRules,
    project,
    eventFactType,
    wiring,
    factWriter,
    eventFactBatchType,
    factHeader,
    rejectType,
    rejectHeader,
    branchKeys,
    neverStored,
  };
}

/** What the split reads of an event once `checkEvent` has passed. */
interface CheckedEvent {
  event_id: string;
  time: number;
}

/** Everything `splitBatch` needs, built once per compiled split. */
type SplitParts = ReturnType<typeof compileChecks> & ReturnType<typeof compileOutputs> & { residency: typeof RESIDENCY };

export type { BatchHead, DeviceFields };

// ---- the generic split of one decoded batch -------------------------------------------------------------

const frame = (header: Buffer, body: Buffer): Buffer => Buffer.concat([header, body], header.length + body.length);

function rejectRecord(c: SplitParts, zone: Zone, key: Buffer, r: EventReject, raw: unknown, receivedAt: number, context: string): OutRecord & { zone: Zone } {
  const rec = {
    received_at: receivedAt,
    zone,
    index: r.index,
    path: r.path,
    reason: r.reason,
    message: r.message,
    raw_event: rawText(c.eventType, c.neverStored, raw),
    batch_context: context,
  };
  return { key, value: frame(c.rejectHeader, c.rejectType.toBuffer(rec)), zone };
}

/**
 * A reject's batch context: sent_at, device and consent as JSON in avsc's shape, consent applied (a field
 * its consent strips is null) and the never-stored batch-level fields left out (batch_id).
 */
function batchContext(c: SplitParts, b: BatchHead): string {
  const sentAt = (b as unknown as { sent_at: number }).sent_at;
  const head = JSON.parse(JSON.stringify({ sent_at: sentAt, device: b.device, consent: b.consent })) as Record<string, unknown>;
  for (const rule of c.stripRules) {
    if ((b.consent as Record<string, unknown>)[rule.consent] === true) continue;
    const keys = rule.path.split('.');
    let at: unknown = head;
    for (const k of keys.slice(0, -1)) at = (at as Record<string, unknown> | null)?.[k];
    if (at && typeof at === 'object' && keys.at(-1)! in at) (at as Record<string, unknown>)[keys.at(-1)!] = null;
  }
  return JSON.stringify(head);
}

/** The batch-level checks, then validation, tokens, facts per day and the personal record. */
function splitBatch(c: SplitParts, batch: unknown, ctx: ProcessContext): SplitResult {
  const result: SplitResult = { accepted: 0, droppedConsent: {}, rejects: [], events: [], personal: [], rejected: [] };
  const bad = c.checkBatch(batch);
  if (bad) {
    // Batch-level problem: no record is written (the zone itself may be unknown), every event is
    // reported through one reject with index -1.
    result.rejects.push(batchReject(bad));
    return result;
  }
  const b = batch as BatchHead & { events: unknown[] };
  const device = b.device;
  const events = b.events;
  const identity = deviceIdentity(device);
  if (!identity) {
    result.rejects.push({
      index: -1,
      path: 'device.device_id',
      reason: 'SCHEMA_BAD_DEVICE_CONTEXT',
      message: 'batch: field device.device_id: empty, and no other device identifier present',
    });
    return result;
  }
  // Policy 1.2/5.1: no User Experience Program consent, no analytics: nothing is kept, not even the
  // rejects (they would store the raw events).
  if (b.consent.analytics !== true) {
    if (events.length) result.droppedConsent.no_analytics_consent = events.length;
    return result;
  }
  const zone = zoneOf(device.sim_mcc, device.region, c.residency);
  const deviceKey = Buffer.from(identity.value, 'utf8');
  let context: string | undefined;
  const reject = (r: EventReject, ev: unknown) => {
    result.rejects.push(r);
    context ??= batchContext(c, b);
    result.rejected.push(rejectRecord(c, zone, deviceKey, r, ev, ctx.receivedAt, context));
  };

  const { ok, days } = validateEvents(c, events, ctx, reject);
  const keys = eventKeysByDay(events, ok, days, identity.value, ctx);
  const keptForPersonal = writeFacts(c, b, events, ok, days, keys, reject, result);

  // Personal records: only when something was accepted (otherwise there is no purpose to keep them).
  if (result.accepted > 0) {
    const draft = c.project(b, keptForPersonal, b.consent, result.droppedConsent);
    result.personal.push(...c.personal.records(draft, deviceKey, { receivedAt: ctx.receivedAt, zone, clientIp: ctx.clientIp ?? null }));
    result.device = { identity: identity.value, identifiers: c.personal.identifiers(draft) };
  } else if (result.rejected.length > 0) {
    result.device = { identity: identity.value, identifiers: c.personal.identifiers(c.project(b, [], b.consent, {})) };
  }
  return result;
}

/** Validates each event and its token window: the indices of the good ones and their UTC days; rejects the others. */
function validateEvents(
  c: SplitParts,
  events: unknown[],
  ctx: ProcessContext,
  reject: (r: EventReject, ev: unknown) => void,
): { ok: number[]; days: number[] } {
  const ok: number[] = [];
  const days: number[] = [];
  for (let i = 0; i < events.length; i++) {
    const ev = events[i];
    const e = c.checkEvent(ev);
    let r: EventReject | undefined;
    if (e) r = { index: i, path: e.path, reason: e.reason, message: `event ${i}: field ${e.path}: ${e.detail}` };
    else {
      const refusal = ctx.tokenizer.refusal((ev as CheckedEvent).time, ctx.receivedAt);
      if (refusal) r = tokenReject(i, refusal);
    }
    if (r) {
      reject(r, ev);
      continue;
    }
    ok.push(i);
    days.push(Math.floor((ev as CheckedEvent).time / DAY_MS));
  }
  return { ok, days };
}

/** Day keys, daily tokens and event keys, per day present in the batch (usually one). */
interface BatchKeys {
  /** Day -> positions in `ok` of that day's events, in event order. */
  order: Map<number, number[]>;
  tokenOf: Map<number, Buffer>;
  /** Day -> concatenated event keys of that day's events. */
  keysOf: Map<number, Buffer>;
  /** Days whose secret is missing: their events are rejected. */
  refusedDay: Set<number>;
}

function eventKeysByDay(events: unknown[], ok: number[], days: number[], identity: string, ctx: ProcessContext): BatchKeys {
  const tokenOf = new Map<number, Buffer>();
  const keysOf = new Map<number, Buffer>();
  const order = new Map<number, number[]>();
  for (let j = 0; j < ok.length; j++) {
    const d = days[j]!;
    let list = order.get(d);
    if (!list) order.set(d, (list = []));
    list.push(j);
  }
  const refusedDay = new Set<number>();
  for (const [d, list] of order) {
    const keys = ctx.tokenizer.keys(d, ctx.receivedAt);
    if (!keys) {
      refusedDay.add(d);
      continue;
    }
    const token = ctx.tokenizer.dailyToken(keys, identity);
    tokenOf.set(d, token);
    const ids = Buffer.allocUnsafe(16 * list.length);
    const toks = Buffer.allocUnsafe(16 * list.length);
    for (let k = 0; k < list.length; k++) {
      uuidInto((events[ok[list[k]!]!] as CheckedEvent).event_id, ids, 16 * k);
      token.copy(toks, 16 * k);
    }
    keysOf.set(d, ctx.tokenizer.eventKeys(keys, ids, toks));
  }
  return { order, tokenOf, keysOf, refusedDay };
}

/**
 * Non-personal facts: one record per day, its facts in event order (the count is known: every event
 * of a day not refused becomes a fact). Returns the accepted events, for the personal record.
 */
function writeFacts(
  c: SplitParts,
  b: BatchHead,
  events: unknown[],
  ok: number[],
  days: number[],
  keys: BatchKeys,
  reject: (r: EventReject, ev: unknown) => void,
  result: SplitResult,
): unknown[] {
  const { order, tokenOf, keysOf, refusedDay } = keys;
  const batchValues = c.wiring.batchValues(b);
  const values: unknown[] = new Array(c.wiring.count);
  const seen = new Map<number, number>();
  const slabs = new Map<number, Slab>();
  for (const [d, list] of order) {
    if (refusedDay.has(d)) continue;
    const slab = new Slab(list.length * 160 + 256);
    c.factHeader.copy(slab.buf, 0);
    slab.pos = c.factHeader.length;
    slab.long(list.length);
    slabs.set(d, slab);
  }
  const keptForPersonal: unknown[] = [];
  for (let j = 0; j < ok.length; j++) {
    const i = ok[j]!;
    const d = days[j]!;
    const ev = events[i];
    if (refusedDay.has(d)) {
      reject(
        {
          index: i,
          path: 'time',
          reason: 'TOKEN_TOO_LATE',
          message: `event ${i}: field time: no secret for day ${new Date(d * DAY_MS).toISOString().slice(0, 10)} (too late, or not provisioned)`,
        },
        ev,
      );
      continue;
    }
    const k = seen.get(d) ?? 0;
    seen.set(d, k + 1);
    const token = tokenOf.get(d)!;
    c.wiring.eventValues(ev, batchValues, values, token, keysOf.get(d)!.subarray(16 * k, 16 * k + 16), c.branchKeys);
    const slab = slabs.get(d)!;
    slab.grow(c.factWriter.bound(values) + 1);
    c.factWriter.write(slab, values);
    keptForPersonal.push(ev);
    result.accepted++;
  }
  for (const [d, slab] of slabs) {
    slab.buf[slab.pos++] = 0; // end of the facts array
    result.events.push({ key: tokenOf.get(d)!, value: slab.buf.subarray(0, slab.pos) });
  }
  return keptForPersonal;
}

function batchReject(e: Invalid): EventReject {
  return { index: -1, path: e.path, reason: e.reason, message: `batch: field ${e.path || '<root>'}: ${e.detail}` };
}

function tokenReject(i: number, refusal: 'too_late' | 'from_future' | 'no_day_secret'): EventReject {
  const reason: SchemaErrorCode = refusal === 'from_future' ? 'TOKEN_FROM_FUTURE' : 'TOKEN_TOO_LATE';
  const why =
    refusal === 'from_future'
      ? 'event time is further in the future than the allowed clock skew'
      : refusal === 'too_late'
        ? "event's day secret has been destroyed (older than the grace period)"
        : "no secret for the event's day";
  return { index: i, path: 'time', reason, message: `event ${i}: field time: ${why}` };
}

/** device_id, else the strongest identifier present (policy principle 3); tagged so kinds never collide. */
function deviceIdentity(device: DeviceFields): { value: string } | undefined {
  if (typeof device.device_id === 'string' && device.device_id.length > 0) return { value: `device_id:${device.device_id}` };
  if (typeof device.imei === 'string' && device.imei.length > 0) return { value: `imei:${device.imei}` };
  if (typeof device.imsi === 'string' && device.imsi.length > 0) return { value: `imsi:${device.imsi}` };
  return undefined;
}

const HEX = (() => {
  const t = new Int8Array(128).fill(-1);
  for (let i = 0; i < 10; i++) t[48 + i] = i;
  for (let i = 0; i < 6; i++) t[65 + i] = t[97 + i] = 10 + i;
  return t;
})();

/** Writes the 16 bytes of a validated canonical UUID string into `out` at `at`. */
function uuidInto(s: string, out: Buffer, at: number): void {
  let o = at;
  for (let i = 0; i < 36;) {
    if (s.charCodeAt(i) === 45) {
      i++;
      continue;
    }
    out[o++] = (HEX[s.charCodeAt(i)]! << 4) | HEX[s.charCodeAt(i + 1)]!;
    i += 2;
  }
}

/**
 * The event's leaf fields whose category is never stored (retention P0D in the map: `event_id`,
 * `session_id`, a crash's `stack_trace`, an app status's `package` and `version`): a reject record must
 * not keep what the map says is used inside ingest only (policy 1.1.4: no join key between the two kinds
 * of data, and no per-device trace or app list marking the batches that had a crash or an app status).
 * `chains`: where they are in a valid event, and whether the event schema requires them (a string
 * without a default: kept as "", so the event still decodes for `npm run rejects -- replay`); `names`:
 * their leaf names (an event that failed validation, whose shape is not to be trusted).
 */
interface NeverStored {
  chains: Array<{ keys: string[]; required: boolean }>;
  names: ReadonlySet<string>;
}

function neverStoredInEvent(fields: Map<string, FieldInfo>): NeverStored {
  const chains: NeverStored['chains'] = [];
  for (const f of fields.values()) {
    if (!f.path.startsWith('events[].') || hasChildren(f.path, fields) || retentionDays(f.entry.retention) !== 0) continue;
    const keys: string[] = [];
    for (let info: FieldInfo | undefined = f; info && info.path !== 'events[]'; info = fields.get(info.parent)) keys.unshift(info.step.key);
    const t = f.field.type;
    const required = !('default' in f.field) && (t === 'string' || (typeof t === 'object' && !Array.isArray(t) && t.type === 'string'));
    chains.push({ keys, required });
  }
  return { chains, names: new Set(chains.map((c) => c.keys.at(-1)!)) };
}

/**
 * Removes the value at `keys` from a JSON value (into arrays and through one-key union wrappers), or
 * empties it (`required`: "").
 */
function removeAt(v: unknown, keys: string[], at: number, required: boolean): void {
  if (Array.isArray(v)) {
    for (const x of v) removeAt(x, keys, at, required);
    return;
  }
  if (v === null || typeof v !== 'object') return;
  let o = v as Record<string, unknown>;
  const key = keys[at]!;
  if (!(key in o)) {
    const only = Object.keys(o);
    if (only.length !== 1) return;
    const inner = o[only[0]!]; // Avro-JSON wraps a union's value: {"telemetry.v1.GeoPoint": {...}}
    if (inner === null || typeof inner !== 'object') return;
    o = inner as Record<string, unknown>;
  }
  if (at < keys.length - 1) removeAt(o[key], keys, at + 1, required);
  else if (!(key in o)) return;
  else if (required) o[key] = '';
  else delete o[key];
}

/** Removes every key in `names` from a JSON value, at any depth. */
function removeNamed(v: unknown, names: ReadonlySet<string>): void {
  if (v === null || typeof v !== 'object') return;
  if (Array.isArray(v)) {
    for (const x of v) removeNamed(x, names);
    return;
  }
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (names.has(k)) delete o[k];
    else removeNamed(o[k], names);
  }
}

/**
 * The event as Avro-JSON text without its never-stored fields (a required one kept as "": the text still
 * decodes as an event). An event that failed validation is JSON of whatever was sent (a payload wrapped
 * by a short or wrong name, or not at all; a nullable string wrapped as in Avro-JSON), so it loses every
 * key named like a never-stored field, wherever it is.
 */
function rawText(eventType: avro.Type, neverStored: NeverStored, raw: unknown): string {
  let s: string;
  try {
    const valid = eventType.isValid(raw);
    const text = valid ? eventType.toString(raw) : JSON.stringify(raw, (_k, v) => (typeof v === 'bigint' ? v.toString() : v));
    const json = JSON.parse(text) as unknown;
    if (valid) for (const c of neverStored.chains) removeAt(json, c.keys, 0, c.required);
    else removeNamed(json, neverStored.names);
    s = JSON.stringify(json);
  } catch {
    s = String(raw);
  }
  return s.length > 65_536 ? s.slice(0, 65_536) : s;
}

// ---- EventFact wiring ---------------------------------------------------------------------------------

interface Wiring {
  count: number;
  batchValues(batch: unknown): unknown[];
  eventValues(ev: unknown, batchValues: unknown[], out: unknown[], token: Buffer, eventKey: Buffer, branchKeys: string[]): void;
}

const DERIVE: Record<Exclude<Derivation, 'daily_token' | 'event_key' | 'drop'>, (v: unknown, branchKeys: string[]) => unknown> = {
  copy: (v) => v,
  union_branch: (v, keys) => {
    if (v === null || v === undefined) return null;
    for (const k of keys) if ((v as Record<string, unknown>)[k] !== undefined) return snakeOf(k);
    return null;
  },
  time_to_day: (v) => (typeof v === 'number' ? Math.floor(v / DAY_MS) : null),
  mcc_to_country: (v) => (typeof v === 'string' ? (MCC_COUNTRY[v] ?? 'ZZ') : 'ZZ'),
};

const snakeCache = new Map<string, string>();
function snakeOf(fullname: string): string {
  let s = snakeCache.get(fullname);
  if (!s)
    snakeCache.set(
      fullname,
      (s = shortName(fullname)
        .replace(/([a-z0-9])([A-Z])/g, '$1_$2')
        .toLowerCase()),
    );
  return s;
}

function compileWiring(factSchema: RecordSchema, fields: Map<string, FieldInfo>, map: CategoryMap): Wiring {
  type Slot =
    | { kind: 'batch'; get: (b: unknown) => unknown }
    | { kind: 'event'; get: (ev: unknown, keys: string[]) => unknown }
    | { kind: 'token' }
    | { kind: 'event_key' };
  const slots: Slot[] = [];
  for (const out of factSchema.fields) {
    const at = `${factSchema.name}.${out.name}`;
    const via = out.via as Derivation | undefined;
    const froms: string[] = out.from === undefined ? [] : Array.isArray(out.from) ? out.from : [out.from];
    if (!via || froms.length === 0)
      throw new SchemaBuildError('SCHEMA_BAD_DERIVATION', at, `output field ${at} must declare "from" (input path) and "via" (derivation)`);
    const getters: ((root: unknown) => unknown)[] = [];
    let scope: 'batch' | 'event' | undefined;
    for (const from of froms) {
      const info = fields.get(from);
      if (!info) throw new SchemaBuildError('SCHEMA_BAD_DERIVATION', at, `output field ${at} reads unknown input ${from}`);
      const entry = map[info.category]!;
      if (!entry.derivations.includes(via)) {
        throw new SchemaBuildError(
          'SCHEMA_BAD_DERIVATION',
          at,
          `output field ${at} reads ${from} (category ${info.category}) via "${via}", but the map allows only ${entry.derivations.join(', ')} for ${info.category}`,
        );
      }
      if (entry.personal && IMPLICIT_NON_PERSONAL.has(via)) {
        throw new SchemaBuildError(
          'SCHEMA_BAD_DERIVATION',
          at,
          `output field ${at} would copy ${from} of personal category ${info.category} into non-personal output`,
        );
      }
      const s = from.startsWith('events[].') || from === 'events[]' ? 'event' : 'batch';
      if (scope && scope !== s) throw new SchemaBuildError('SCHEMA_BAD_DERIVATION', at, `output field ${at} mixes batch and event inputs`);
      scope = s;
      getters.push(pathGetter(from, fields, s === 'event' ? 'events[]' : ''));
    }
    if (via === 'daily_token') slots.push({ kind: 'token' });
    else if (via === 'event_key') slots.push({ kind: 'event_key' });
    else if (via === 'drop') throw new SchemaBuildError('SCHEMA_BAD_DERIVATION', at, `output field ${at} uses "drop": remove the field instead`);
    else {
      const derive = DERIVE[via];
      const first = (root: unknown, keys: string[]) => {
        for (const g of getters) {
          const v = derive(g(root), keys);
          if (v !== null && v !== undefined) return v;
        }
        return null;
      };
      slots.push(scope === 'event' ? { kind: 'event', get: first } : { kind: 'batch', get: (b) => first(b, []) });
    }
  }
  return {
    count: slots.length,
    batchValues(batch) {
      return slots.map((s) => (s.kind === 'batch' ? s.get(batch) : undefined));
    },
    eventValues(ev, bv, out, token, eventKey, keys) {
      for (let i = 0; i < slots.length; i++) {
        const s = slots[i]!;
        out[i] = s.kind === 'batch' ? bv[i] : s.kind === 'event' ? s.get(ev, keys) : s.kind === 'token' ? token : eventKey;
      }
    },
  };
}

/** A getter from a scope root (the batch, or one event) to the value at `path` (null when absent). */
function pathGetter(path: string, fields: Map<string, FieldInfo>, scope: string): (root: unknown) => unknown {
  const steps: { kind: 'field' | 'branch'; key: string }[] = [];
  let p = path;
  while (p !== scope) {
    const info = fields.get(p);
    if (!info) throw new Error(`no field ${p}`);
    steps.unshift(info.step);
    p = info.parent;
    if (p.endsWith('[]') && p !== scope) throw new Error(`path ${path} crosses an array outside its scope`);
  }
  return (root) => {
    let v = root;
    for (let i = 0; i < steps.length && v !== null && v !== undefined; i++) v = (v as Record<string, unknown>)[steps[i]!.key];
    return v ?? null;
  };
}

// ---- personal record ----------------------------------------------------------------------------------

/** Goes to the device's personal records: personal, stored (not P0D), and not only kept in a raw event. */
const kept = (f: FieldInfo) => f.entry.personal && f.entry.retention !== 'P0D' && f.entry.deviceRecord !== false;

/** Keeps a field if it is personal with a retention, or it groups fields that are kept. */
function keepsAnything(path: string, fields: Map<string, FieldInfo>): boolean {
  for (const f of fields.values())
    if ((f.path === path || f.path.startsWith(`${path}.`) || f.path.startsWith(`${path}[]`)) && kept(f) && !hasChildren(f.path, fields)) return true;
  return false;
}
function hasChildren(path: string, fields: Map<string, FieldInfo>): boolean {
  for (const f of fields.keys()) if (f.startsWith(`${path}.`) || f.startsWith(`${path}[]`)) return true;
  return false;
}

/**
 * The personal draft schema: the batch schema with only the fields that are kept (see `kept`), in the
 * `<namespace>.personal` namespace; personal.ts makes the class records of it.
 */
export function buildDraftSchema(batchSchema: RecordSchema, fields: Map<string, FieldInfo>): RecordSchema {
  const ns = `${batchSchema.namespace}.personal`;
  const filterType = (t: SchemaNode, path: string): SchemaNode => {
    if (typeof t === 'string') return t;
    if (Array.isArray(t)) {
      return t.map((b) =>
        isRecordSchema(b) ? filterRecord(b, Array.isArray(t) && t.filter((x) => x !== 'null').length > 1 ? `${path}.${snakeOf(b.name)}` : path) : b,
      );
    }
    if (t.type === 'record') return filterRecord(t, path);
    if (t.type === 'array') return { type: 'array', items: filterType(t.items, `${path}[]`) };
    return stripAttrs(t);
  };
  const filterRecord = (rec: RecordSchema, path: string): RecordSchema => ({
    type: 'record',
    name: shortName(rec.name),
    namespace: ns,
    fields: rec.fields
      .filter((f) => keepsAnything(path ? `${path}.${f.name}` : f.name, fields))
      .map((f) => {
        const p = path ? `${path}.${f.name}` : f.name;
        const out: SchemaField = { name: f.name, type: filterType(f.type, p), category: f.category };
        if ('default' in f) out.default = f.default;
        return out;
      }),
  });
  const root = filterRecord(batchSchema, '');
  root.name = 'PersonalDraft';
  return root;
}

/** The batch's consent choices as the projection reads them (a missing choice is not granted). */
export type ConsentChoices = Readonly<Record<string, unknown>>;

/**
 * Copies the kept fields of a batch into the personal record's shape; nulls the fields whose consent is
 * not granted (`rules`, counted in `dropped` as `stripped_no_<consent>:<path>` when a value was there).
 */
function compileProjection(batchSchema: RecordSchema, fields: Map<string, FieldInfo>, rules: StripRule[]) {
  const strip = new Map(rules.map((r) => [r.path, { consent: r.consent, counter: `stripped_no_${r.consent}:${r.path}` }]));
  /** Projects one value of the batch (at some path) into the personal record's shape; `evs` replaces the events. */
  type P = (v: unknown, consent: ConsentChoices, dropped: Record<string, number>, evs?: unknown[]) => unknown;
  type RecordP = (v: unknown, consent: ConsentChoices, dropped: Record<string, number>, evs?: unknown[]) => Record<string, unknown>;
  const projType = (t: SchemaNode, path: string): P => {
    if (Array.isArray(t)) {
      const recs = t.filter(isRecordSchema);
      if (recs.length === 0) return (v) => v;
      if (t.filter((b) => b !== 'null').length === 1) {
        const inner = projRecord(recs[0]!, path, undefined);
        return (v, a, d) => (v === null || v === undefined ? null : inner(v, a, d));
      }
      const branches = recs.map((r) => ({
        key: r.name.includes('.') ? r.name : `${batchSchema.namespace}.${r.name}`,
        out: `${batchSchema.namespace}.personal.${shortName(r.name)}`,
        proj: projRecord(r, `${path}.${snakeOf(r.name)}`, undefined),
      }));
      return (v, a, d) => {
        const o = v as Record<string, unknown>;
        for (const br of branches) if (o[br.key] !== undefined) return { [br.out]: br.proj(o[br.key], a, d) };
        return null;
      };
    }
    if (t && typeof t === 'object' && t.type === 'record') return projRecord(t, path, undefined);
    return (v) => v;
  };
  const projRecord = (rec: RecordSchema, path: string, eventsOverride: 'events' | undefined): RecordP => {
    const parts = rec.fields
      .map((f) => ({ f, p: path ? `${path}.${f.name}` : f.name }))
      .filter(({ p }) => keepsAnything(p, fields))
      .map(({ f, p }): { name: string; rule: { consent: string; counter: string } | undefined; absent: unknown; proj: P } => {
        // A field an older writer did not have (a decoded value has it already, from the resolver).
        const absent = 'default' in f ? f.default : null;
        if (eventsOverride && f.name === 'events') {
          const item = projType((f.type as ArraySchema).items, `${p}[]`);
          return { name: f.name, rule: undefined, absent, proj: (_v, a, d, evs) => (evs ?? []).map((e) => item(e, a, d)) };
        }
        return { name: f.name, rule: strip.get(p), absent, proj: projType(f.type, p) };
      });
    return (v, consent, dropped, evs?: unknown[]) => {
      const o: Record<string, unknown> = {};
      for (const part of parts) {
        let x = part.proj((v as Record<string, unknown>)[part.name], consent, dropped, evs);
        if (part.rule && consent[part.rule.consent] !== true) {
          if (x !== null && x !== undefined) dropped[part.rule.counter] = (dropped[part.rule.counter] ?? 0) + 1;
          x = null;
        }
        o[part.name] = x === undefined ? part.absent : x;
      }
      return o;
    };
  };
  const root = projRecord(batchSchema, '', 'events');
  return (batch: unknown, events: unknown[], consent: ConsentChoices, dropped: Record<string, number>) => root(batch, consent, dropped, events);
}
