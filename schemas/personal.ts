/**
 * The personal records of a batch, generated from the batch schema and the category map: one record
 * per retention class (`p7d`, `p30d`, ...: the retentions of the stored personal categories), each for
 * the personal topic of the zone and class, whose `retention.ms` is that class (ingest/topics.ts). So
 * Kafka itself deletes precise location and IP addresses after 7 days while the device record lives
 * 30 (policy 4.4; the map's `retention`).
 *
 * A personal record does not mirror the facts (policy 1.1.4, "used separately"; ARCHITECTURE.md
 * principle 9): the events topic holds, per (batch, UTC day), the kind and order of every event, so a
 * personal record listing each event's time and kind in the same order would be a fingerprint present
 * on both sides. Instead the per-event personal fields are kept as sets:
 * - a timestamp of a category with a `personalPrecision` (activity time: `day`) is cut to its UTC hour or day,
 *   wherever it is (the batch's `sent_at`, ingest's `received_at`); the events' own times are not kept
 *   (categories.ts `event_time`: `deviceRecord: false`); a map that keeps a per-event timestamp makes it
 *   the distinct cuts the batch was active in (`events_time`), sorted, one record per cut;
 * - each event kind (union branch) with kept fields becomes the distinct values of those fields
 *   (`events_<kind>: [{...}]`), sorted, without the items that hold nothing; kinds with no kept field
 *   leave no trace. With the checked-in map no kind has one: crash traces and app status records are
 *   never stored (categories.ts `crash_logs`, `app_usage_facts`: their presence alone would mark the
 *   batches that had a crash or an app status, which the facts show too).
 * Nothing says how many events the batch had, of which kinds, or in which order.
 *
 * The draft (`draftSchema`): the batch schema filtered to the kept fields (personal, retention not P0D),
 * events included, the shape both split paths produce first (the generic projection; the fast path's
 * copied per-event bytes reduced by `distinctEvents` to one event per distinct value of each field,
 * which gives the same sets); `records` turns a draft into the class records. Every field of every
 * class schema names its category (the build classifies them).
 */
import type avro from 'avsc';
import { retentionDays, type CategoryMap } from './categories.ts';
import { DAY_MS } from './time.ts';
import { classify, isRecordSchema, shortName, snake, stripAttrs, type ArraySchema, type RecordSchema, type SchemaField, type SchemaNode } from './classify.ts';
import type { OutRecord, Zone } from './contract.ts';
import { SchemaBuildError } from './errors.ts';
import { typeOf } from './load.ts';
import { readLong, varintEnd } from './varint.ts';
import { headerFor } from './wire.ts';

/** The cuts of `personalPrecision` (schemas/categories.ts), in ms. */
const PRECISION_MS = { hour: 3_600_000, day: DAY_MS } as const;

/** One retention class of personal data: its own record schema and its own topic per zone. */
export interface PersonalClass {
  /** `p7d`, `p30d`: the retention period lower-cased; the topic suffix (`telemetry.personal.<zone>.<name>`). */
  readonly name: string;
  /** The ISO period of the map this class keeps its records for. */
  readonly retention: string;
  readonly schema: RecordSchema;
  readonly type: avro.Type;
  readonly header: Buffer;
}

/** A personal record bound for the topic of its zone and retention class. */
export type PersonalOut = OutRecord & { zone: Zone; retentionClass: string };

/** What ingest adds to the batch's own fields: when, where from, the network address. */
export interface PersonalContext {
  receivedAt: number;
  zone: Zone;
  clientIp: string | null;
}

/** The class name of a retention period: `P7D` -> `p7d` (as categories.ts `personalRetentionClasses` names them). */
export const classNameOf = (retention: string) => retention.toLowerCase();

/** Fields ingest adds to every record (or, for `client_ip`, to its own class), with their categories. */
const CONTEXT_FIELDS: SchemaField[] = [
  { name: 'received_at', type: { type: 'long', logicalType: 'timestamp-millis' }, category: 'activity_time' },
  { name: 'zone', type: { type: 'enum', name: 'Zone', symbols: ['cn', 'ru', 'in', 'row'] }, category: 'network_location' },
  { name: 'client_ip', type: ['null', 'string'], default: null, category: 'ip_address' },
];
/** Context fields every class record carries (when their category may be kept that long): a record says when and where. */
const EVERY_CLASS = new Set(['received_at', 'zone']);

type Value = Record<string, unknown>;
/** Picks a class's part of a draft value; undefined when the class keeps nothing of it. */
type Pick = (v: unknown) => unknown;

export interface PersonalPlan {
  readonly classes: readonly PersonalClass[];
  /** The draft's events array type. */
  readonly draftEventsType: avro.Type;
  /** The fast path's reader of its copied per-event bytes (`DistinctEvents`). */
  readonly distinctEvents: DistinctEvents;
  /** The class records of one draft (the batch's kept fields, consent applied, `events` = the accepted events). */
  records(draft: Value, key: Buffer, ctx: PersonalContext): PersonalOut[];
  /**
   * Every identifier the draft keeps (batch-level fields of a category with `lookup`, consent applied),
   * as `<field>:<value>` (`device_id:...`, `imei:...`, `oaid:...`): what a rights request may name.
   */
  identifiers(draft: Value): string[];
}

/**
 * Builds the classes from the draft schema. `registryId` (Confluent wire format) applies to every class;
 * a registry would hold one subject per class.
 */
export function compilePersonal(draftSchema: RecordSchema, map: CategoryMap, registryId?: number): PersonalPlan {
  const retentionOf = (category: string | undefined): string => {
    const e = category === undefined ? undefined : map[category];
    if (!e) throw new SchemaBuildError('SCHEMA_FIELD_UNKNOWN_CATEGORY', String(category), `unknown category ${String(category)}`);
    return e.retention;
  };
  // The cut of a category's timestamps in the personal records (ms), or undefined: kept as sent.
  const cut: Cut = (category) => {
    const p = category === undefined ? undefined : map[category]?.personalPrecision;
    return p === undefined ? undefined : PRECISION_MS[p];
  };
  const eventsField = draftSchema.fields.find((f) => f.name === 'events');
  const head = draftSchema.fields.filter((f) => f.name !== 'events');
  const eventItem = eventsField ? ((eventsField.type as ArraySchema).items as RecordSchema) : undefined;

  // Every retention a kept leaf has, longest first (the order of the topics in the plan).
  const retentions = new Set<string>();
  const collect = (f: SchemaField) => {
    const rec = recordOf(f.type);
    if (f.category === 'structure' && rec) rec.fields.forEach(collect);
    else retentions.add(retentionOf(f.category));
  };
  head.forEach(collect);
  for (const f of eventItem?.fields ?? []) {
    if (f.name === 'payload' || f.category === 'structure') for (const b of branchesOf(f.type)) b.fields.forEach(collect);
    else collect(f);
  }
  retentions.delete('P0D');
  const ordered = [...retentions].sort((a, b) => retentionDays(b) - retentionDays(a));

  const classes: PersonalClass[] = [];
  const pickers: Array<{ cls: PersonalClass; splitBy: string | undefined; pick: (d: Value, ctx: PersonalContext) => Value | undefined }> = [];
  for (const retention of ordered) {
    const name = classNameOf(retention);
    const ns = `${draftSchema.namespace ?? 'telemetry.v1.personal'}.${name}`;
    const fields: SchemaField[] = [];
    const parts: Array<{ name: string; context: boolean; pick: (d: Value, ctx: PersonalContext) => unknown }> = [];
    for (const c of CONTEXT_FIELDS) {
      const r = retentionOf(c.category);
      const inClass = EVERY_CLASS.has(c.name) ? retentionDays(r) >= retentionDays(retention) : r === retention;
      if (!inClass) continue;
      fields.push(c.name === 'zone' ? { ...c, type: { ...(c.type as object), namespace: ns } as SchemaNode } : c);
      const get =
        c.name === 'received_at'
          ? (_d: Value, x: PersonalContext) => cutTo(cut(c.category), x.receivedAt)
          : c.name === 'zone'
            ? (_d: Value, x: PersonalContext) => x.zone
            : (_d: Value, x: PersonalContext) => x.clientIp;
      parts.push({ name: c.name, context: EVERY_CLASS.has(c.name), pick: get });
    }
    for (const f of head) {
      const sub = pickField(f, retention, ns, retentionOf, cut);
      if (!sub) continue;
      fields.push(sub.field);
      parts.push({ name: f.name, context: false, pick: (d) => sub.pick(d[f.name]) });
    }
    const summaries = eventSummaries(eventItem, retention, ns, retentionOf, cut);
    for (const s of summaries) {
      fields.push(s.field);
      parts.push({ name: s.field.name, context: false, pick: (d) => s.pick((d.events as unknown[] | undefined) ?? []) });
    }
    // A class whose only per-event field is a cut timestamp (the activity days) is written once per
    // cut: a batch active on two days gives two records of one day each. A device's records of a day
    // are then byte-equal whichever batch carried them, so ingest writes each once (ingest/mix.ts
    // RecentRecords), and no record ties two days' daily tokens together in one mix (policy 1.1.4).
    const splitBy = summaries.length === 1 && summaries[0]!.cut ? summaries[0]!.field.name : undefined;
    const schema: RecordSchema = {
      type: 'record',
      name: 'PersonalRecord',
      namespace: ns,
      doc: `Personal data of one batch kept ${retentionDays(retention)} days (retention class ${name}), for the personal topic of its residency zone and class (generated from batch.avsc and the category map).`,
      fields,
    };
    // The build checks every field of every class record names a known category (ARCHITECTURE.md principle 1).
    classify(schema, map);
    const type = typeOf(schema, 'auto');
    const cls: PersonalClass = { name, retention, schema, type, header: headerFor(type, registryId) };
    classes.push(cls);
    pickers.push({
      cls,
      splitBy,
      pick: (d, ctx) => {
        const out: Value = {};
        let content = false;
        for (const p of parts) {
          const x = p.pick(d, ctx);
          out[p.name] = x;
          if (!p.context && holds(x)) content = true;
        }
        return content ? out : undefined;
      },
    });
  }

  // Batch-level leaves of a lookup category: [path in the draft, field name].
  const lookups: Array<{ path: string[]; name: string }> = [];
  const findLookups = (fields: SchemaField[], at: string[]) => {
    for (const f of fields) {
      const rec = recordOf(f.type);
      if (f.category === 'structure' && rec) findLookups(rec.fields, [...at, f.name]);
      else if (f.category !== undefined && map[f.category]?.lookup) lookups.push({ path: [...at, f.name], name: f.name });
    }
  };
  findLookups(head, []);

  const draftEventsType = eventsField
    ? typeOf({ type: 'array', items: eventItem } as unknown as Record<string, unknown>, 'auto')
    : typeOf({ type: 'array', items: 'null' }, 'auto');
  // Each class record is encoded behind its header in one scratch buffer, then copied out once (instead
  // of avsc's toBuffer, which allocates and copies, and a concat with the header, which does it again).
  let scratch = Buffer.allocUnsafe(1 << 14);
  const encode = (cls: PersonalClass, v: Value): Buffer => {
    const h = cls.header.length;
    for (;;) {
      const end = cls.type.encode(v, scratch, h);
      if (end >= 0) {
        const out = Buffer.allocUnsafe(end);
        cls.header.copy(out, 0);
        scratch.copy(out, h, h, end);
        return out;
      }
      scratch = Buffer.allocUnsafe(2 * (scratch.length - end)); // avsc returns minus the bytes missing
    }
  };
  return {
    classes,
    draftEventsType,
    distinctEvents: eventItem ? distinctEventsReader(eventItem, draftEventsType, cut) : () => [],
    records(draft, key, ctx) {
      const out: PersonalOut[] = [];
      for (const { cls, pick, splitBy } of pickers) {
        const v = pick(draft, ctx);
        if (!v) continue;
        const cuts = splitBy === undefined ? undefined : (v[splitBy] as unknown[]);
        if (cuts && cuts.length > 1) {
          for (const t of cuts) out.push({ key, value: encode(cls, { ...v, [splitBy!]: [t] }), zone: ctx.zone, retentionClass: cls.name });
        } else out.push({ key, value: encode(cls, v), zone: ctx.zone, retentionClass: cls.name });
      }
      return out;
    },
    identifiers(draft) {
      const out: string[] = [];
      for (const l of lookups) {
        let v: unknown = draft;
        for (const k of l.path) v = (v as Value | null | undefined)?.[k];
        if (typeof v === 'string' && v.length > 0) out.push(`${l.name}:${v}`);
      }
      return out;
    },
  };
}

/** A timestamp cut to `ms` (the start of its UTC hour or day), or as it is without a cut. */
const cutTo = (ms: number | undefined, t: number) => (ms === undefined ? t : Math.floor(t / ms) * ms);

/** Whether a picked value holds anything (a non-null leaf, a non-empty list). */
function holds(x: unknown): boolean {
  if (x === null || x === undefined) return false;
  if (Array.isArray(x)) return x.length > 0;
  if (typeof x === 'object') return Object.values(x as Value).some(holds);
  return true;
}

function recordOf(t: SchemaNode): RecordSchema | undefined {
  if (isRecordSchema(t)) return t;
  if (Array.isArray(t)) {
    const recs = t.filter(isRecordSchema);
    if (recs.length === 1 && t.length === 2) return recs[0];
  }
  return undefined;
}
function branchesOf(t: SchemaNode): RecordSchema[] {
  return Array.isArray(t) ? t.filter(isRecordSchema) : isRecordSchema(t) ? [t] : [];
}
const isTimestamp = (t: SchemaNode) =>
  typeof t === 'object' && !Array.isArray(t) && t.type === 'long' && 'logicalType' in t && t.logicalType === 'timestamp-millis';

type RetentionOf = (category: string | undefined) => string;
/** The cut (ms) of a category's timestamps in the personal records, or undefined (categories.ts `personalPrecision`). */
type Cut = (category: string | undefined) => number | undefined;

/**
 * A batch-level draft field's part in one class: a field of another category than `structure` goes
 * whole to the class of its retention; a `structure` record keeps the fields of that class (and is
 * left out when it keeps none). Timestamps of a category with a `personalPrecision` are cut to it.
 */
function pickField(f: SchemaField, retention: string, ns: string, retentionOf: RetentionOf, cut: Cut): { field: SchemaField; pick: Pick } | undefined {
  const rec = recordOf(f.type);
  if (f.category === 'structure' && rec) {
    const subs = rec.fields.map((x) => ({ name: x.name, sub: pickField(x, retention, ns, retentionOf, cut) })).filter((x) => x.sub);
    if (subs.length === 0) return undefined;
    if (!isRecordSchema(f.type)) throw new SchemaBuildError('SCHEMA_BAD_DERIVATION', f.name, `structure field ${f.name} must be a record`);
    const field: SchemaField = {
      name: f.name,
      category: f.category,
      type: { type: 'record', name: shortName(rec.name), namespace: ns, fields: subs.map((x) => x.sub!.field) },
    };
    return {
      field,
      pick: (v) => {
        const o: Value = {};
        for (const x of subs) o[x.name] = x.sub!.pick((v as Value | null | undefined)?.[x.name]);
        return o;
      },
    };
  }
  if (retentionOf(f.category) !== retention) return undefined;
  const field: SchemaField = { ...f, type: renamespace(f.type, ns) };
  const ms = isTimestamp(f.type) ? cut(f.category) : undefined;
  if (ms !== undefined) return { field, pick: (v) => (typeof v === 'number' ? cutTo(ms, v) : v) };
  return { field, pick: (v) => (v === undefined ? (f.default ?? null) : v) };
}

/** A type with its named records and enums moved into the class's namespace (each class is its own schema). */
function renamespace(t: SchemaNode, ns: string): SchemaNode {
  if (typeof t === 'string') return t;
  if (Array.isArray(t)) return t.map((b) => renamespace(b, ns));
  if (t.type === 'record') return { ...t, name: shortName(t.name), namespace: ns, fields: t.fields.map((f) => ({ ...f, type: renamespace(f.type, ns) })) };
  if (t.type === 'enum') return { ...t, name: shortName(t.name), namespace: ns };
  if (t.type === 'array') return { ...t, items: renamespace(t.items, ns) };
  return t;
}

/**
 * The per-event fields of one class as sets (see the header): `events_<field>` for a plain field (the
 * distinct hours or days for a cut timestamp), `events_<kind>` for an event kind's kept fields.
 */
function eventSummaries(
  item: RecordSchema | undefined,
  retention: string,
  ns: string,
  retentionOf: RetentionOf,
  cut: Cut,
): Array<{ field: SchemaField; pick: (events: unknown[]) => unknown[]; cut?: true }> {
  if (!item) return [];
  const out: Array<{ field: SchemaField; pick: (events: unknown[]) => unknown[]; cut?: true }> = [];
  for (const f of item.fields) {
    const branches = branchesOf(f.type);
    if (branches.length > 0 && (f.category === 'structure' || Array.isArray(f.type))) {
      for (const b of branches) {
        const kept = b.fields.filter((x) => retentionOf(x.category) === retention);
        if (kept.length === 0) continue;
        const kind = snake(shortName(b.name));
        const full = b.name.includes('.') ? b.name : `${b.namespace ?? item.namespace ?? ns}.${b.name}`;
        const rec: RecordSchema = {
          type: 'record',
          name: shortName(b.name),
          namespace: ns,
          fields: kept.map((x) => ({ ...x, type: renamespace(x.type, ns) })),
        };
        const names = kept.map((x) => x.name);
        const short = shortName(full);
        out.push({
          field: { name: `events_${kind}`, category: 'structure', type: { type: 'array', items: rec } },
          pick: (events) => {
            const items: Value[] = [];
            for (const e of events) {
              const payload = (e as Value)[f.name] as Value | null | undefined;
              const v = payload ? ((payload[full] ?? payload[short]) as Value | undefined) : undefined;
              if (!v) continue;
              const o: Value = {};
              let any = false;
              for (const n of names) {
                const x = v[n] ?? null;
                o[n] = x;
                if (!any && holds(x)) any = true;
              }
              if (any) items.push(o);
            }
            return distinctSorted(items);
          },
        });
      }
      continue;
    }
    if (f.category === 'structure') {
      throw new SchemaBuildError('SCHEMA_BAD_DERIVATION', `events[].${f.name}`, `per-event structure field ${f.name} has no set form in the personal record`);
    }
    if (retentionOf(f.category) !== retention) continue;
    const ms = isTimestamp(f.type) ? cut(f.category) : undefined;
    out.push({
      ...(ms !== undefined ? { cut: true as const } : {}),
      field: {
        name: `events_${f.name}`,
        category: f.category,
        type: { type: 'array', items: renamespace(typeof f.type === 'object' && !Array.isArray(f.type) ? stripAttrs(f.type) : f.type, ns) },
      },
      pick: (events) => {
        const xs: unknown[] = [];
        for (const e of events) {
          const x = (e as Value)[f.name];
          if (x != null) xs.push(typeof x === 'number' ? cutTo(ms, x) : x);
        }
        return distinctSorted(xs);
      },
    });
  }
  return out;
}

/**
 * Distinct values in a canonical order: numbers ascending; strings, and records of strings, numbers and
 * nulls, by an injective text of their values (each string length-prefixed); anything else by its JSON.
 * Both split paths call this, so the order only has to be the same for the same set.
 */
function distinctSorted<T>(xs: T[]): T[] {
  if (xs.length === 0) return xs;
  if (xs.every((x) => typeof x === 'number')) return [...new Set(xs)].sort((a, b) => (a as number) - (b as number));
  const byText = new Map<string, T>();
  for (const x of xs) byText.set(canonicalText(x), x);
  return [...byText.keys()].sort().map((k) => byText.get(k)!);
}

function canonicalText(x: unknown): string {
  if (typeof x === 'string') return `s${x.length}:${x}`;
  if (x === null || typeof x !== 'object' || Array.isArray(x)) return `j${JSON.stringify(x)}`;
  let t = 'r';
  for (const k in x as Value) {
    const v = (x as Value)[k];
    if (typeof v === 'string') t += `s${v.length}:${v}`;
    else if (typeof v === 'number') t += `n${v};`;
    else if (v === null || v === undefined) t += '-';
    else return `j${JSON.stringify(x)}`;
  }
  return t;
}

/**
 * The fast path's reader of the draft events' encoding: `n` events' bytes one after the other (what
 * fast.ts copies per event, no array framing) -> the events reduced to what the sets depend on, or
 * undefined when the bytes are not `n` events (then the fast path hands back). Every per-event set of a
 * class reads ONE field of each event and keeps its distinct values (see the header), so one event per
 * distinct value of each field gives the same sets: `{ time: <day> }` per distinct cut of a cut
 * timestamp, `{ payload: <branch value> }` per distinct encoded branch, and so on for any field. The
 * whole draft events are never built: a number field is read as a varint, any other field is skipped
 * over and compared by its encoded bytes (the fast path copies only canonical varints and valid UTF-8,
 * so equal bytes are equal values, and different bytes different values), and only the distinct ones
 * are decoded (avsc, the field's type in the draft). A field holding a float or a double (-0 and 0,
 * NaNs: equal as set members with different bytes) keeps every event's value, decoded.
 */
export type DistinctEvents = (buf: Buffer, start: number, end: number, n: number) => Value[] | undefined;

function distinctEventsReader(item: RecordSchema, eventsType: avro.Type, cut: Cut): DistinctEvents {
  const fieldTypes = ((eventsType as avro.types.ArrayType).itemsType as avro.types.RecordType).fields;
  // The generated loop (`new Function`, like avsc's own readers): one block per field of the draft
  // event, in order. Per field f: `S<f>` the distinct numbers and `L<f>` the last one (a number field),
  // or `M<f>` the first position of each distinct encoding (by its bytes as a latin1 key) with `D<f>`
  // the last item per union branch (a run of equal items costs a byte comparison, not a key), or `A<f>`
  // every decoded value (a field with floats).
  const consts: unknown[] = [];
  const K = (v: unknown) => `K[${consts.push(v) - 1}]`;
  const decl: string[] = [];
  const reset: string[] = [];
  const loop: string[] = [];
  const reps: string[] = [];
  let tmp = 0;
  const fresh = (x: string) => `${x}${tmp++}`;
  /** Statements moving `p` over a value of type t (the fast path's checked bytes; a cut one makes p NaN or > end). */
  const skip = (t: avro.Type): string => {
    const u = underlying(t);
    switch (u.typeName) {
      case 'null':
        return '';
      case 'boolean':
        return 'p++;';
      case 'int':
      case 'long':
      case 'enum':
        return 'while (buf[p++] >= 128);';
      case 'float':
        return 'p += 4;';
      case 'double':
        return 'p += 8;';
      case 'fixed':
        return `p += ${(u as avro.types.FixedType).size};`;
      case 'string':
      case 'bytes':
        return `{ ${varint('l')} p += l; }`;
      case 'record':
      case 'error':
        return (u as avro.types.RecordType).fields.map((f) => skip(f.type)).join('\n');
      case 'union:wrapped':
      case 'union:unwrapped': {
        const k = fresh('k');
        const cases = (u as avro.types.UnwrappedUnionType).types.map((b, i) => `case ${i}: ${skip(b)} break;`);
        return `{ ${varint(k)} switch (${k}) { ${cases.join(' ')} default: return undefined; } }`;
      }
      default:
        return `p = ${K(skipperOf(u))}(buf, p);`;
    }
  };
  fieldTypes.forEach((ft, f) => {
    const schema = item.fields[f]!;
    if (schema.name !== ft.name) throw new SchemaBuildError('SCHEMA_BAD_DERIVATION', `events[].${ft.name}`, 'draft event fields out of order');
    const t = ft.type;
    const tn = underlying(t).typeName;
    const name = JSON.stringify(ft.name);
    if (tn === 'int' || tn === 'long') {
      const ms = isTimestamp(schema.type) ? cut(schema.category) : undefined;
      decl.push(`const S${f} = new Set(); let L${f} = NaN;`);
      reset.push(`S${f}.clear(); L${f} = NaN;`);
      loop.push(`{ ${varint('x')} ${ms !== undefined ? `x = Math.floor(x / ${ms}) * ${ms};` : ''} if (x !== L${f}) { L${f} = x; S${f}.add(x); } }`);
      reps.push(`for (const x of S${f}) out.push({ ${name}: x });`);
      return;
    }
    const T = K(t);
    if (!exactBytes(t)) {
      decl.push(`const A${f} = [];`);
      reset.push(`A${f}.length = 0;`);
      loop.push(`{ const d = ${T}.decode(buf, p); A${f}.push(d.value); p = d.offset; }`);
      reps.push(`for (const x of A${f}) out.push({ ${name}: x });`);
      return;
    }
    const u = underlying(t);
    const branches = u.typeName.startsWith('union:') ? (u as avro.types.UnwrappedUnionType).types : [u];
    decl.push(`const M${f} = new Map(); const D${f} = [${branches.map(() => '{ s: 0, e: -1 }').join(', ')}];`);
    reset.push(`M${f}.clear(); for (const d of D${f}) d.e = -1;`);
    const seen = (b: number) => `seen(buf, s, p, D${f}[${b}], M${f});`;
    if (branches.length > 1 || u !== branches[0]) {
      // A branch without bytes of its own (an empty record, null) is its index: seen once, no comparison.
      const cases = branches.map((b, i) => {
        const body = skip(b);
        return body === '' ? `case ${i}: if (D${f}[${i}].e < 0) ${seen(i)} break;` : `case ${i}: ${body} ${seen(i)} break;`;
      });
      loop.push(`{ const s = p; ${varint('k')} switch (k) { ${cases.join(' ')} default: return undefined; } }`);
    } else loop.push(`{ const s = p; ${skip(t)} ${seen(0)} }`);
    reps.push(`for (const s of M${f}.values()) out.push({ ${name}: ${T}.decode(buf, s).value });`);
  });
  const src = `"use strict";
const { readLong, VE, K } = H;
${decl.join('\n')}
function seen(buf, s, p, d, m) {
  const len = p - s;
  if (len === d.e - d.s) {
    let i = 0;
    if (len > 64) i = buf.compare(buf, d.s, d.e, s, p) === 0 ? len : 0;
    else while (i < len && buf[s + i] === buf[d.s + i]) i++;
    if (i === len) return;
  }
  d.s = s; d.e = p;
  const key = buf.latin1Slice(s, p);
  if (!m.has(key)) m.set(key, s);
}
return (buf, start, end, n) => {
  ${reset.join('\n')}
  let p = start;
  for (let j = 0; j < n; j++) {
    ${loop.join('\n')}
    if (!(p <= end)) return undefined;
  }
  if (p !== end) return undefined;
  const out = [];
  ${reps.join('\n')}
  return out;
};`;
  return new Function('H', src)({ readLong, VE: varintEnd, K: consts }) as DistinctEvents;
}

/** `let x = <zig-zag varint at p>` (one-byte case inline), p moved past it; a bad one returns undefined. */
function varint(x: string): string {
  return `let ${x} = buf[p++]; if (${x} < 128) ${x} = (${x} >>> 1) ^ -(${x} & 1); else { let v = ${x} & 127, m = 128, b = 128; while (b >= 128 && m < 2 ** 56) { b = buf[p++]; v += (b & 127) * m; m *= 128; } if (b >= 128) return undefined; ${x} = v % 2 === 1 ? -(v + 1) / 2 : v / 2; }`;
}

/** A logical type's underlying type (the type itself otherwise). */
function underlying(t: avro.Type): avro.Type {
  return t.typeName.startsWith('logical:') ? underlying((t as avro.types.LogicalType).underlyingType) : t;
}

/** Whether equal values of `t` always have equal encodings and different values different ones (no float or double inside). */
function exactBytes(t: avro.Type): boolean {
  const u = underlying(t);
  switch (u.typeName) {
    case 'float':
    case 'double':
      return false;
    case 'record':
    case 'error':
      return (u as avro.types.RecordType).fields.every((f) => exactBytes(f.type));
    case 'union:wrapped':
    case 'union:unwrapped':
      return (u as avro.types.UnwrappedUnionType).types.every(exactBytes);
    case 'array':
      return exactBytes((u as avro.types.ArrayType).itemsType);
    case 'map':
      return exactBytes((u as avro.types.MapType).valuesType);
    default:
      return true;
  }
}

function skipString(buf: Buffer, p: number): number {
  const len = readLong(buf, p, buf.length, 10);
  return varintEnd.pos + len;
}

/** Where the value of type `t` at `p` ends (the bytes are the fast path's checked copies); NaN when they are cut short. */
function skipperOf(t: avro.Type): (buf: Buffer, p: number) => number {
  const u = underlying(t);
  const varint = (buf: Buffer, p: number) => {
    readLong(buf, p, buf.length, 10);
    return varintEnd.pos;
  };
  switch (u.typeName) {
    case 'null':
      return (_b, p) => p;
    case 'boolean':
      return (_b, p) => p + 1;
    case 'int':
    case 'long':
    case 'enum':
      return varint;
    case 'float':
      return (_b, p) => p + 4;
    case 'double':
      return (_b, p) => p + 8;
    case 'fixed': {
      const size = (u as avro.types.FixedType).size;
      return (_b, p) => p + size;
    }
    case 'string':
    case 'bytes':
      return skipString;
    case 'record':
    case 'error': {
      const fs = (u as avro.types.RecordType).fields.map((f) => skipperOf(f.type));
      return (buf, p) => {
        for (const s of fs) p = s(buf, p);
        return p;
      };
    }
    case 'union:wrapped':
    case 'union:unwrapped': {
      const bs = (u as avro.types.UnwrappedUnionType).types.map(skipperOf);
      return (buf, p) => {
        const k = readLong(buf, p, buf.length, 10);
        const b = bs[k];
        return b ? b(buf, varintEnd.pos) : NaN;
      };
    }
    case 'array':
    case 'map': {
      const item = u.typeName === 'array' ? skipperOf((u as avro.types.ArrayType).itemsType) : skipperOf((u as avro.types.MapType).valuesType);
      const key = u.typeName === 'map' ? skipString : undefined;
      return (buf, p) => {
        for (;;) {
          let c = readLong(buf, p, buf.length, 10);
          p = varintEnd.pos;
          if (!(c === c) || c === 0) return c === 0 ? p : NaN;
          if (c < 0) {
            c = -c;
            readLong(buf, p, buf.length, 10);
            p = varintEnd.pos;
          }
          for (let i = 0; i < c && p === p; i++) p = item(buf, key ? key(buf, p) : p);
          if (!(p === p)) return NaN;
        }
      };
    }
    default:
      throw new SchemaBuildError('SCHEMA_BAD_DERIVATION', u.typeName, `no reader for type ${u.typeName} in the personal draft`);
  }
}
