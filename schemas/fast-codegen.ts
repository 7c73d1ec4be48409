/**
 * The code generator of the binary fast path (fast.ts says what the fast path is and why). From the
 * batch schema, its attributes and the category map it writes the source of one object (`Generated`)
 * and compiles it with `new Function`. Read in this order:
 *   1. `generate`: composes the emitters below into the source, then compiles it;
 *   2. `planSlots`: which event-level inputs the EventFact reads (the columns the parser fills);
 *   3. the parser emitters: `emitHead*` (the batch-level values, built as JS values), `emitEvents` (the
 *      per-event loop), `emitEvent*` (one event's values: checks, kept bytes copied, columns filled);
 *   4. the EventFact writer emitters: `emitFactWriter` (prefix/holes/tail split for template mode),
 *      `emitFactSlot` (one output field) and `writeOut`;
 *   5. `generatedSource` and `PARSER_HELPERS`: the fixed frame and helpers the emitted lines run in.
 * Every emitter appends lines to `Gen.lines` in the order the generated code runs; the variable
 * counter (`fresh`) and the constants table (`constant`) are shared, so the order of the calls is the
 * order of the names and `K[i]` indices in the source.
 *
 * A construct the generator does not handle throws `Unsupported`: then there is no fast path and the
 * generic one serves every body.
 */
import type avro from 'avsc';
import { MCC_COUNTRY, type Derivation } from './categories.ts';
import { isRecordSchema, Names, shortName, snake, type FieldInfo, type RecordSchema, type SchemaAttrs, type SchemaField, type SchemaNode } from './classify.ts';
import type { BatchHead } from './batch-shape.ts';
import { isUtf8 } from './guard.ts';
import { DAY_MS } from './time.ts';
import type { FastSpec } from './fast-spec.ts';
import { readLong, varintEnd, writeLong } from './varint.ts';
import { formatRegExp } from './validate.ts';

/** A schema construct the generator does not handle: no fast path, the generic one serves. */
export class Unsupported extends Error {}

/** The compiled object; the driver in fast.ts calls it. */
export interface Generated {
  /** Parses the body: the event count, or -1 to fall back. Leaves the batch-level value in `head`. */
  parse(buf: Buffer, maxStringBytes: number, maxItems: number, maxTotal: number): number;
  /** Writes the EventFact of event j at w; returns the end, or -1 to fall back. */
  fact(buf: Buffer, j: number, out: Buffer, od: DataView, w: number, kd: DataView, ko: number, td: DataView, chunks: Buffer[]): number;
  /**
   * Template mode (batches of one day): the fact's leading fields are the same for every event except
   * fixed-size holes (event key, kind). `fact` of event 0 gives the template (its first `prefixLen()`
   * bytes); `holes` then writes the holes at their offsets, `tail` the fields after the prefix.
   * `tailMax` bounds the tail's size over the batch. Undefined when the fact has no such prefix.
   */
  prefixLen(): number;
  holes(j: number, out: Buffer, od: DataView, base: number, kd: DataView, ko: number): boolean;
  tail(buf: Buffer, j: number, out: Buffer, od: DataView, w: number, chunks: Buffer[]): number;
  tailMax(n: number, chunks: Buffer[]): number;
  /** The batch-level values `parse` built (avsc's in-memory shape); `events` is left null for the driver. */
  head: BatchHead & { events: unknown[] | null };
  ids: Buffer;
  times: Float64Array;
  personal(): { buf: Buffer; len: number };
}

/** Two ASCII characters (big-endian 16-bit) -> the byte their hex digits spell, or -1. */
const T16 = (() => {
  const hex = new Int8Array(256).fill(-1);
  for (let i = 0; i < 10; i++) hex[48 + i] = i;
  for (let i = 0; i < 6; i++) hex[65 + i] = hex[97 + i] = 10 + i;
  const t = new Int16Array(65536).fill(-1);
  for (let a = 0; a < 256; a++) for (let b = 0; b < 256; b++) if (hex[a]! >= 0 && hex[b]! >= 0) t[(a << 8) | b] = (hex[a]! << 4) | hex[b]!;
  return t;
})();

// ---- shared state of the emitters -----------------------------------------------------------------

/** How the parser keeps an event-level input the EventFact reads: a number, a string's position, a union branch. */
type Rep = 'num' | 'str' | 'branch';

/** One event-level input the EventFact reads, kept per event in typed arrays (`CN`, `CS`/`CL`, `CB` + id). */
interface Column {
  from: string;
  rep: Rep;
  id: number;
}

/** One EventFact field, as the writer sees it. */
type Slot = { kind: 'event_key' } | { kind: 'daily_token' } | { kind: 'batch'; index: number } | EventSlot;
type EventSlot = { kind: 'event'; via: Derivation; cols: Column[]; out: avro.Type };

/** Which of a value's bytes go to the personal record: all of them (one copy), some (per field), none. */
type Mode = 'all' | 'partial' | 'none';

/** State shared by the emitters while one schema's source is generated. */
interface Gen {
  spec: FastSpec;
  fields: Map<string, FieldInfo>;
  names: Names;
  /** Event-level inputs the EventFact reads, by input path. */
  columns: Map<string, Column>;
  /** Lines of the function body being emitted. */
  lines: string[];
  /** Values handed to the generated code (regexes, symbol lists, tables), read there as `K[i]`. */
  consts: unknown[];
  /** Counter of fresh variable names. */
  tmp: number;
}

const BAIL = 'return -1;';

function emit(g: Gen, line: string): void {
  g.lines.push(line);
}

/** Hands `v` to the generated code; returns the expression that reads it there. */
function constant(g: Gen, v: unknown): string {
  g.consts.push(v);
  return `K[${g.consts.length - 1}]`;
}

/** A fresh variable name with prefix `p`. */
function fresh(g: Gen, p: string): string {
  return `${p}${g.tmp++}`;
}

/**
 * `let x = <varint at P>`: the one-byte case of schemas/varint.ts `readLong` inline, the rest through
 * `rl` (which calls it). Inline because most varints of an event are one byte and this is the
 * parser's innermost step; the differential test (fast.test.ts) holds it to avsc.
 */
function inlineVarint(x: string): string {
  return `let ${x} = buf[P]; if (${x} < 128) { P++; ${x} = ${x} & 1 ? -(${x} + 1) / 2 : ${x} / 2; } else ${x} = rl(buf, end);`;
}

// ---- which fields are kept for the personal record ---------------------------------------------------

function isLeaf(g: Gen, p: string): boolean {
  for (const k of g.fields.keys()) if (k.startsWith(`${p}.`) || k.startsWith(`${p}[]`)) return false;
  return true;
}
const under = (f: string, p: string) => f === p || f.startsWith(`${p}.`) || f.startsWith(`${p}[]`);
const keepsAny = (g: Gen, p: string) => [...g.fields.values()].some((f) => under(f.path, p) && g.spec.kept(f) && isLeaf(g, f.path));
const keepsAll = (g: Gen, p: string) => [...g.fields.values()].every((f) => !under(f.path, p) || !isLeaf(g, f.path) || g.spec.kept(f));
function modeOf(g: Gen, p: string): Mode {
  return !keepsAny(g, p) ? 'none' : keepsAll(g, p) ? 'all' : 'partial';
}

// ---- 1. the composition ---------------------------------------------------------------------------

export function generate(spec: FastSpec): Generated {
  const g: Gen = { spec, fields: spec.fields, names: new Names(), columns: new Map(), lines: [], consts: [], tmp: 0 };
  for (const s of spec.stripPaths) if (s.startsWith('events[]')) throw new Unsupported(`consent stripping inside events (${s})`);
  const slots = planSlots(g);
  const parseBody = emitParser(g);
  const writer = emitFactWriter(g, slots);
  const src = generatedSource(spec, g.columns, parseBody, writer);
  return new Function('D', 'K', src)({ isUtf8, T16, wl: writeLong, MCC: MCC_COUNTRY, FH: spec.factHeader, readLong, VE: varintEnd }, g.consts) as Generated;
}

// ---- 2. which event-level inputs the EventFact reads, and how ---------------------------------------

function planSlots(g: Gen): Slot[] {
  const factFields = g.spec.factSchema.fields;
  const avroFields = (g.spec.eventFactType as avro.types.RecordType).fields;
  return factFields.map((f, index): Slot => {
    const via = f.via as Derivation;
    const froms = Array.isArray(f.from) ? f.from : [f.from!]; // compileWiring refused a field without `from`
    if (via === 'event_key') return { kind: 'event_key' };
    if (via === 'daily_token') return { kind: 'daily_token' };
    if (!froms[0]!.startsWith('events[]')) return { kind: 'batch', index };
    const cols = froms.map((from) => columnOf(g, from, via));
    return { kind: 'event', via, cols, out: avroFields[index]!.type };
  });
}

/** The column holding input `from` (created on first use). */
function columnOf(g: Gen, from: string, via: Derivation): Column {
  const info = g.fields.get(from)!;
  let rep: Rep;
  if (via === 'union_branch') {
    if (from !== 'events[].payload' || !info.branches) throw new Unsupported(`union_branch from ${from}`);
    rep = 'branch';
  } else {
    const t = primitiveOf(info.field.type);
    if (t === 'string') rep = 'str';
    else if (t === 'long' || t === 'int') rep = 'num';
    else throw new Unsupported(`event input ${from} of type ${t}`);
  }
  let c = g.columns.get(from);
  if (!c) g.columns.set(from, (c = { from, rep, id: g.columns.size }));
  return c;
}

// ---- 3. the parser ---------------------------------------------------------------------------------

/** The body of `parse`: the whole batch, then the end-of-body check. */
function emitParser(g: Gen): string {
  const headVar = emitHead(g, g.spec.batchSchema, '', '');
  emit(g, `if (P !== end) ${BAIL}`);
  emit(g, `G.head = ${headVar};`);
  emit(g, 'return N;');
  return g.lines.splice(0, g.lines.length).join('\n');
}

/** Head (batch-level) value of type t into a fresh variable; returns its name. */
function emitHead(g: Gen, t: SchemaNode, ns: string, path: string): string {
  if (typeof t === 'string') {
    const named = g.names.resolve(t, ns);
    if (named) return emitHead(g, named, ns, path);
    return emitHeadPrim(g, t);
  }
  if (Array.isArray(t)) return emitHeadUnion(g, t, ns, path);
  switch (t.type) {
    case 'record':
      return emitHeadRecord(g, t, ns, path);
    case 'enum': {
      g.names.types.set(g.names.fullname(t, ns), t);
      const out = fresh(g, 'e');
      emit(g, `const ${out} = ${constant(g, t.symbols)}[rl(buf, end)]; if (${out} === undefined) ${BAIL}`);
      return out;
    }
    case 'array':
    case 'map':
    case 'fixed':
      throw new Unsupported(`${t.type} at ${path}`);
    default:
      return emitHeadPrim(g, t.type);
  }
}

/** A batch-level union: a nullable value, or a union of records built as avsc's wrapped value. */
function emitHeadUnion(g: Gen, t: SchemaNode[], ns: string, path: string): string {
  const others = t.filter((b) => b !== 'null');
  const out = fresh(g, 'h');
  emit(g, `let ${out} = null; { const k = rl(buf, end); if (k !== k) ${BAIL}`);
  if (others.length === 1) {
    const nullIdx = t.indexOf('null');
    const other = t.indexOf(others[0]!);
    emit(g, `if (k === ${other}) {`);
    const inner = emitHead(g, others[0]!, ns, path);
    emit(g, `${out} = ${inner}; } else if (k !== ${nullIdx}) ${BAIL} }`);
    return out;
  }
  emit(g, 'switch (k) {');
  t.forEach((b, i) => {
    if (b === 'null') {
      emit(g, `case ${i}: break;`);
      return;
    }
    const r = typeof b === 'string' ? g.names.resolve(b, ns) : b;
    if (!isRecordSchema(r)) throw new Unsupported(`union at ${path}`);
    const full = g.names.fullname(r, ns);
    emit(g, `case ${i}: {`);
    const inner = emitHead(g, r, ns, `${path}.${snake(shortName(full))}`);
    emit(g, `${out} = { ${JSON.stringify(full)}: ${inner} }; break; }`);
  });
  emit(g, `default: ${BAIL} } }`);
  return out;
}

/** A batch-level record as a JS object; its `events` field is the per-event loop (left null here). */
function emitHeadRecord(g: Gen, t: RecordSchema, ns: string, path: string): string {
  const full = g.names.fullname(t, ns);
  g.names.types.set(full, t);
  const recNs = full.slice(0, Math.max(0, full.lastIndexOf('.')));
  const parts: string[] = [];
  for (const f of t.fields) {
    const p = path ? `${path}.${f.name}` : f.name;
    if (p === 'events') {
      emitEvents(g, f, recNs);
      parts.push(`${JSON.stringify(f.name)}: null`);
    } else parts.push(`${JSON.stringify(f.name)}: ${emitHead(g, f.type, recNs, p)}`);
  }
  const out = fresh(g, 'r');
  emit(g, `const ${out} = { ${parts.join(', ')} };`);
  return out;
}

function emitHeadPrim(g: Gen, name: string): string {
  const out = fresh(g, 'p');
  switch (name) {
    case 'null':
      emit(g, `const ${out} = null;`);
      break;
    case 'boolean':
      emit(g, `if (P >= end || buf[P] > 1) ${BAIL} const ${out} = buf[P++] === 1;`);
      break;
    case 'int':
      emit(g, `const ${out} = rl(buf, end); if (!(${out} >= -2147483648 && ${out} <= 2147483647)) ${BAIL}`);
      break;
    case 'long':
      emit(g, `const ${out} = rl(buf, end); if (${out} !== ${out}) ${BAIL}`);
      break;
    case 'float':
    case 'double': {
      const n = name === 'float' ? 4 : 8;
      emit(g, `if (P + ${n} > end) ${BAIL} const ${out} = buf.${name === 'float' ? 'readFloatLE' : 'readDoubleLE'}(P); P += ${n};`);
      break;
    }
    case 'string':
      emit(g, `const ${out}s = rs(buf, end, Infinity); if (${out}s < 0) ${BAIL} const ${out} = A ? buf.latin1Slice(${out}s, P) : buf.utf8Slice(${out}s, P);`);
      break;
    default:
      throw new Unsupported(`type ${name}`);
  }
  return out;
}

/** The events array: the block loop and, per event, its columns reset and its values. */
function emitEvents(g: Gen, f: SchemaField, ns: string): void {
  const t = typeof f.type === 'string' ? g.names.resolve(f.type, ns) : f.type;
  if (!t || Array.isArray(t) || t.type !== 'array') throw new Unsupported('events is not an array');
  const item = typeof t.items === 'string' ? g.names.resolve(t.items, ns) : t.items;
  if (!isRecordSchema(item)) throw new Unsupported('events items are not records');
  const byName = new Map(item.fields.map((x) => [x.name, x]));
  if (primitiveOf(byName.get('time')?.type) !== 'long') throw new Unsupported('events[].time must be a long');
  const id = byName.get('event_id');
  if (primitiveOf(id?.type) !== 'string' || id!.format !== 'uuid') throw new Unsupported('events[].event_id must be a uuid string');
  emit(g, 'let n = 0;');
  emit(g, 'for (;;) {');
  emit(g, `let c = rl(buf, end); if (c !== c) ${BAIL} if (c === 0) break;`);
  emit(g, `if (c < 0) { c = -c; const sz = rl(buf, end); if (!(sz >= 0) || sz > end - P) ${BAIL} }`);
  emit(g, `n += c; if (n > maxItems || n > maxTotal || n > MAXEV) ${BAIL}`);
  emit(g, 'for (let j = n - c; j < n; j++) {');
  for (const c of g.columns.values()) emit(g, c.rep === 'num' ? `CN${c.id}[j] = NaN;` : c.rep === 'str' ? `CL${c.id}[j] = -1;` : `CB${c.id}[j] = -1;`);
  emitEventValue(g, item, ns, 'events[]', {}, keepsAll(g, 'events[]') ? 'all' : keepsAny(g, 'events[]') ? 'partial' : 'none');
  emit(g, '}');
  emit(g, '}');
  emit(g, 'N = n;');
}

/** One event-level value: validate, copy the kept bytes (at once when all of them are kept), fill the columns. */
function emitEventValue(g: Gen, t: SchemaNode, ns: string, path: string, field: SchemaAttrs, mode: Mode): void {
  if (mode === 'all') {
    const s = fresh(g, 'a');
    emit(g, `const ${s} = P;`);
    emitEventType(g, t, ns, path, field, 'none');
    emit(g, `cp(buf, ${s}, P);`);
  } else emitEventType(g, t, ns, path, field, mode);
}

function emitEventType(g: Gen, t: SchemaNode, ns: string, path: string, field: SchemaAttrs, mode: Mode): void {
  if (typeof t === 'string') {
    const named = g.names.resolve(t, ns);
    if (named) return emitEventType(g, named, ns, path, field, mode);
    return emitEventPrim(g, t, path, field);
  }
  if (Array.isArray(t)) return emitEventUnion(g, t, ns, path, field, mode);
  switch (t.type) {
    case 'record': {
      const full = g.names.fullname(t, ns);
      g.names.types.set(full, t);
      const recNs = full.slice(0, Math.max(0, full.lastIndexOf('.')));
      for (const f of t.fields) {
        const p = `${path === 'events[]' ? 'events[].' : `${path}.`}${f.name}`;
        emitEventValue(g, f.type, recNs, p, f, mode === 'none' ? 'none' : modeOf(g, p));
      }
      return;
    }
    case 'enum': {
      g.names.types.set(g.names.fullname(t, ns), t);
      emit(g, `{ ${inlineVarint('k')} if (!(k >= 0 && k < ${t.symbols.length})) ${BAIL} }`);
      return;
    }
    case 'array':
    case 'map':
    case 'fixed':
      throw new Unsupported(`${t.type} at ${path}`);
    default:
      return emitEventPrim(g, t.type, path, field);
  }
}

/** An event-level union: the branch index (copied when partly kept, kept in a column when read), then the branch. */
function emitEventUnion(g: Gen, t: SchemaNode[], ns: string, path: string, field: SchemaAttrs, mode: Mode): void {
  const others = t.filter((b) => b !== 'null');
  const col = g.columns.get(path);
  const k = fresh(g, 'k');
  const s = fresh(g, 'u');
  emit(g, `{ const ${s} = P; ${inlineVarint(k)} if (${k} !== ${k}) ${BAIL}`);
  if (mode === 'partial') emit(g, `cp(buf, ${s}, P);`);
  if (col?.rep === 'branch') emit(g, `CB${col.id}[j] = ${k};`);
  emit(g, `switch (${k}) {`);
  t.forEach((b, i) => {
    if (b === 'null') {
      emit(g, `case ${i}: break;`);
      return;
    }
    const r = typeof b === 'string' ? (g.names.resolve(b, ns) ?? b) : b;
    emit(g, `case ${i}: {`);
    if (others.length === 1) emitEventType(g, r, ns, path, field, mode);
    else {
      if (!isRecordSchema(r)) throw new Unsupported(`union at ${path}`);
      const bp = `${path}.${snake(shortName(g.names.fullname(r, ns)))}`;
      emitEventType(g, r, ns, bp, field, mode === 'none' ? 'none' : modeOf(g, bp) === 'all' ? 'partial' : modeOf(g, bp));
    }
    emit(g, 'break; }');
  });
  emit(g, `default: ${BAIL} } }`);
}

/** An event-level primitive: range and attribute checks (min, maxLength, format), its column. */
function emitEventPrim(g: Gen, name: string, path: string, field: SchemaAttrs): void {
  const col = g.columns.get(path);
  const min = field.min;
  switch (name) {
    case 'null':
      return;
    case 'boolean':
      emit(g, `if (P >= end || buf[P] > 1) ${BAIL} P++;`);
      return;
    case 'int':
    case 'long': {
      const x = fresh(g, 'n');
      const range = name === 'int' ? `!(${x} >= -2147483648 && ${x} <= 2147483647)` : `${x} !== ${x}`;
      emit(g, `${inlineVarint(x)} if (${range}) ${BAIL}`);
      if (min !== undefined) emit(g, `if (${x} < ${Number(min)}) ${BAIL}`);
      if (path === 'events[].time') emit(g, `TIMES[j] = ${x};`);
      if (col) emit(g, `CN${col.id}[j] = ${x};`);
      return;
    }
    case 'float':
    case 'double': {
      const n = name === 'float' ? 4 : 8;
      emit(g, `if (P + ${n} > end || !Number.isFinite(buf.${name === 'float' ? 'readFloatLE' : 'readDoubleLE'}(P))) ${BAIL} P += ${n};`);
      return;
    }
    case 'string':
      return emitEventString(g, path, field, col);
    default:
      throw new Unsupported(`type ${name} at ${path}`);
  }
}

/** An event-level string: a UUID goes to its 16 bytes (the event id to IDS), others are scanned and checked. */
function emitEventString(g: Gen, path: string, field: SchemaAttrs, col: Column | undefined): void {
  const max = field.maxLength ?? g.spec.maxStringLength;
  const s = fresh(g, 's');
  const format = field.format;
  if (format === 'uuid') {
    if (col) throw new Unsupported(`uuid field ${path} read by the EventFact`);
    emit(g, `if (!uu(buf, end, ${max}, ${path === 'events[].event_id' ? 'IDS, 16 * j' : 'null, 0'})) ${BAIL}`);
    return;
  }
  emit(g, `const ${s} = rs(buf, end, ${max}); if (${s} < 0) ${BAIL}`);
  if (format !== undefined) emit(g, `if (!${constant(g, formatRegExp(format))}.test(A ? buf.latin1Slice(${s}, P) : buf.utf8Slice(${s}, P))) ${BAIL}`);
  if (col) emit(g, `CS${col.id}[j] = ${s}; CL${col.id}[j] = P - ${s};`);
}

// ---- 4. the EventFact writer -----------------------------------------------------------------------

/** The bodies of `fact`, `holes`, `tail` and `tailMax` (see `Generated`). */
interface FactWriterSource {
  fact: string[];
  holes: string[];
  tail: string[];
  tailMax: string[];
  /** Bytes every tail may take besides the `tailMax` lines' sums. */
  tailFixed: number;
}

/**
 * Prefix for template mode: leading fields that are constant over a one-day batch (header, token,
 * batch-level fields, the day) or fixed-size holes (event key; the kind as a 1-byte enum index).
 */
function prefixOf(slots: Slot[]): ('const' | 'hole')[] {
  const prefix: ('const' | 'hole')[] = [];
  for (const s of slots) {
    let kind: 'const' | 'hole' | undefined;
    if (s.kind === 'event_key') kind = 'hole';
    else if (s.kind === 'daily_token' || s.kind === 'batch') kind = 'const';
    else if (s.via === 'time_to_day' && s.cols.length === 1 && s.cols[0]!.from === 'events[].time' && ['int', 'long'].includes(typeName(s.out))) kind = 'const';
    else if (s.via === 'union_branch' && typeName(s.out) === 'enum' && (s.out as avro.types.EnumType).symbols.length < 64) kind = 'hole';
    if (!kind) break;
    prefix.push(kind);
  }
  return prefix;
}

function emitFactWriter(g: Gen, slots: Slot[]): FactWriterSource {
  const prefix = prefixOf(slots);
  const w: FactWriterSource = { fact: [], holes: [], tail: [], tailMax: [], tailFixed: 0 };
  const fe = (l: string) => w.fact.push(l);
  fe('const w0 = w;');
  fe(`wc(FHD, 0, od, w, ${g.spec.factHeader.length}); w += ${g.spec.factHeader.length};`);
  let chunk = 0;
  let inRun = false;
  slots.forEach((s, pi) => {
    const inTail = pi >= prefix.length;
    const both = (l: string) => {
      fe(l);
      if (inTail) w.tail.push(l);
    };
    if (s.kind === 'batch') {
      // A run of batch-level fields: one chunk encoded once per batch (the driver's `runs`).
      if (!inRun) {
        const c = chunk++;
        both(`O.set(CH[${c}], w); w += CH[${c}].length;`);
        if (inTail) w.tailMax.push(`b += CH[${c}].length;`);
        inRun = true;
      }
    } else {
      inRun = false;
      if (s.kind === 'event_key') {
        fe('HK = w - w0;');
        w.holes.push('wc(kd, ko, od, base + HK, 16);');
        both('wc(kd, ko, od, w, 16); w += 16;');
      } else if (s.kind === 'daily_token') both('wc(td, 0, od, w, 16); w += 16;');
      else {
        if (prefix[pi] === 'hole') emitKindHole(g, s, w);
        emitFactSlot(g, s, both);
        if (inTail) {
          const rep = s.cols[0]!.rep;
          if (rep === 'str' && s.via === 'copy') w.tailMax.push(`b += 11 + Math.max(${s.cols.map((c) => `CL${c.id}[j]`).join(', ')}, 0);`);
          else w.tailFixed += 24;
        }
      }
    }
    if (pi === prefix.length - 1) fe('PE = w - w0;');
  });
  fe('return w;');
  return w;
}

/** The kind (union branch -> enum index, one byte) as a hole of the template. */
function emitKindHole(g: Gen, s: EventSlot, w: FactWriterSource): void {
  w.fact.push('HB = w - w0;');
  const c = s.cols[0]!;
  const syms = (s.out as avro.types.EnumType).symbols;
  const branches = g.fields.get('events[].payload')!.branches!;
  const table = branchIndexTable(g, c.from).map((b) => (b < 0 ? -1 : syms.indexOf(branches[b]!.kind)));
  w.holes.push(`{ const e = ${constant(g, table)}[CB${c.id}[j]]; if (e === undefined || e < 0) return false; O[base + HB] = 2 * e; }`);
}

/** One event-level fact field: the derived value, first non-null over the inputs (compile.ts `first`), written. */
function emitFactSlot(g: Gen, s: EventSlot, out: (l: string) => void): void {
  const rep = s.cols[0]!.rep;
  const derivedRep: 'num' | 'str' | 'kind' | 'jsstr' = s.via === 'union_branch' ? 'kind' : s.via === 'mcc_to_country' ? 'jsstr' : rep === 'str' ? 'str' : 'num';
  if (s.via === 'time_to_day' && rep !== 'num') throw new Unsupported('time_to_day of a non-number');
  if (s.via === 'mcc_to_country' && rep !== 'str') throw new Unsupported('mcc_to_country of a non-string');
  if (s.via !== 'copy' && s.via !== 'time_to_day' && s.via !== 'union_branch' && s.via !== 'mcc_to_country') throw new Unsupported(`derivation ${s.via}`);
  for (const c of s.cols) if (c.rep !== rep) throw new Unsupported('mixed inputs');
  out('{');
  if (derivedRep === 'num') {
    out('let x = NaN;');
    for (const c of s.cols) out(`if (x !== x) x = ${s.via === 'time_to_day' ? `Math.floor(CN${c.id}[j] / ${DAY_MS})` : `CN${c.id}[j]`};`);
    writeOut(s.out, 'x !== x', 'w = wl(O, w, x);', 'num', out);
  } else if (derivedRep === 'str') {
    out('let xs = 0, xl = -1;');
    for (const c of s.cols) out(`if (xl < 0) { xs = CS${c.id}[j]; xl = CL${c.id}[j]; }`);
    writeOut(s.out, 'xl < 0', 'w = wl(O, w, xl); wc(BV, xs, od, w, xl); w += xl;', 'str', out);
  } else if (derivedRep === 'jsstr') {
    out('let x = null;');
    for (const c of s.cols) out(`if (x === null) x = CL${c.id}[j] < 0 ? null : (MCC[buf.utf8Slice(CS${c.id}[j], CS${c.id}[j] + CL${c.id}[j])] ?? 'ZZ');`);
    out("if (x === null) x = 'ZZ';"); // DERIVE.mcc_to_country never gives null
    writeOut(s.out, 'false', 'const xb = Buffer.from(x, "utf8"); w = wl(O, w, xb.length); for (let i = 0; i < xb.length; i++) O[w++] = xb[i];', 'str', out);
  } else emitBranchKind(g, s, out);
  out('}');
}

/** union_branch: the branch index -> the kind; written as enum index or string, fixed at build time. */
function emitBranchKind(g: Gen, s: EventSlot, out: (l: string) => void): void {
  const branches = g.fields.get('events[].payload')!.branches!;
  const c = s.cols[0]!;
  out(`const x = CB${c.id}[j];`);
  const target = unwrapNullable(s.out);
  const tn = typeName(target);
  let table: unknown[];
  if (tn === 'enum') {
    const syms = (target as avro.types.EnumType).symbols;
    // An index -1 means "no such symbol": the generic writer throws there, so fall back.
    table = branchIndexTable(g, s.cols[0]!.from).map((b) => (b < 0 ? -1 : syms.indexOf(branches[b]!.kind)));
    writeOut(s.out, 'x < 0', `const e = ${constant(g, table)}[x]; if (e === undefined || e < 0) return -1; w = wl(O, w, e);`, 'kind', out);
  } else if (tn === 'string') {
    table = branchIndexTable(g, s.cols[0]!.from).map((b) => (b < 0 ? null : Buffer.from(branches[b]!.kind)));
    writeOut(s.out, 'x < 0', `const e = ${constant(g, table)}[x]; w = wl(O, w, e.length); for (let i = 0; i < e.length; i++) O[w++] = e[i];`, 'kind', out);
  } else throw new Unsupported(`union_branch into ${tn}`);
}

/** Union member index -> branch index in FieldInfo.branches (-1 for null). */
function branchIndexTable(g: Gen, from: string): number[] {
  const info = g.fields.get(from)!;
  const t = info.field.type as SchemaNode[];
  let bi = 0;
  return t.map((b) => (b === 'null' ? -1 : bi++));
}

/** Writes a derived value into an output field, with its null branch when the field is nullable. */
function writeOut(t: avro.Type, isNull: string, write: string, rep: string, out: (l: string) => void): void {
  if (t.typeName === 'union:unwrapped' || t.typeName === 'union:wrapped') {
    const types = (t as UnionType).types;
    const nullIdx = types.findIndex((b) => b.typeName === 'null');
    if (types.length !== 2 || nullIdx < 0) throw new Unsupported('fact union');
    const inner = types[1 - nullIdx]!;
    checkOutType(inner, rep);
    out(`if (${isNull}) O[w++] = ${nullIdx * 2}; else { O[w++] = ${(1 - nullIdx) * 2}; ${write} }`);
    return;
  }
  checkOutType(t, rep);
  out(`if (${isNull}) return -1; ${write}`); // a null into a non-null field: the generic writer decides
}

function checkOutType(t: avro.Type, rep: string): void {
  const tn = typeName(t);
  const ok = rep === 'num' ? tn === 'int' || tn === 'long' : rep === 'str' ? tn === 'string' : rep === 'kind' ? tn === 'enum' || tn === 'string' : false;
  if (!ok) throw new Unsupported(`fact field of type ${tn} from ${rep}`);
}

// ---- 5. the frame of the generated source -----------------------------------------------------------

/** The generated module: state and column arrays, the fixed helpers, then `G` with the emitted bodies. */
function generatedSource(spec: FastSpec, columns: Map<string, Column>, parseBody: string, w: FactWriterSource): string {
  const colDecls = [...columns.values()]
    .map((c) =>
      c.rep === 'num'
        ? `const CN${c.id} = new Float64Array(MAXEV);`
        : c.rep === 'str'
          ? `const CS${c.id} = new Int32Array(MAXEV), CL${c.id} = new Int32Array(MAXEV);`
          : `const CB${c.id} = new Int32Array(MAXEV);`,
    )
    .join('\n');
  return `"use strict";
const { isUtf8, T16, wl, MCC, FH, readLong, VE } = D;
const FHD = new DataView(FH.buffer, FH.byteOffset, FH.length);
const MAXEV = ${spec.maxEvents};
let P = 0, A = true, LMS = 0, N = 0, HK = 0, HB = 0, PE = -1;
let Q = Buffer.allocUnsafe(1 << 16), q = 0;
let QV = new DataView(Q.buffer, Q.byteOffset, Q.length);
let BV = QV;
const IDS = Buffer.allocUnsafe(16 * MAXEV);
const TIMES = new Float64Array(MAXEV);
${colDecls}
${PARSER_HELPERS}
const G = {
  head: null, ids: IDS, times: TIMES,
  personal() { return { buf: Q, len: q }; },
  parse(buf, maxStringBytes, maxItems, maxTotal) {
    const end = buf.length;
    P = 0; q = 0; N = 0; LMS = maxStringBytes;
    if (Q.length < end) { Q = Buffer.allocUnsafe(Math.max(end, 2 * Q.length)); QV = new DataView(Q.buffer, Q.byteOffset, Q.length); }
    BV = new DataView(buf.buffer, buf.byteOffset, buf.length);
${parseBody}
  },
  fact(buf, j, O, od, w, kd, ko, td, CH) {
${w.fact.join('\n')}
  },
  prefixLen() { return PE; },
  holes(j, O, od, base, kd, ko) {
${w.holes.join('\n')}
    return true;
  },
  tail(buf, j, O, od, w, CH) {
${w.tail.join('\n')}
    return w;
  },
  tailMax(n, CH) {
    let m = 0;
    for (let j = 0; j < n; j++) {
      let b = ${w.tailFixed};
${w.tailMax.join('\n')}
      if (b > m) m = b;
    }
    return m;
  },
};
return G;`;
}

/**
 * The fixed helpers of the generated parser (the same for every schema): varint (`rl`), string (`rs`)
 * and UUID (`uu`) readers working on the parse position `P`, and the copies into the personal bytes `Q`.
 */
const PARSER_HELPERS = `// zigzag varint at P (schemas/varint.ts readLong); NaN when truncated, longer than 7 bytes (beyond
// 2^48: the generic path decides) or not in canonical form, i.e. a multi-byte varint ending in a 0 byte
// (a kept value's bytes are copied, so they must be what avsc would write).
function rl(buf, end) {
  const n = readLong(buf, P, end, 7);
  const e = VE.pos;
  if (n !== n || (e - P > 1 && buf[e - 1] === 0)) return NaN;
  P = e;
  return n;
}
// string at P: start of its bytes (P moves to the end), -1 to fall back. A: all ASCII.
// A string longer in bytes than its limit in UTF-16 units may still be valid: the generic path decides.
function rs(buf, end, fmax) {
  const len = rl(buf, end);
  if (!(len >= 0) || len > fmax || len > LMS || len > end - P) return -1;
  const s = P, e = s + len;
  let i = s;
  while (i + 4 <= e && (BV.getUint32(i) & 0x80808080) === 0) i += 4;
  while (i < e && buf[i] < 128) i++;
  if (i < e) { if (isUtf8(buf, i, e) >= 0) return -1; A = false; } else A = true;
  P = e;
  return s;
}
// 32-bit word copy between DataViews (per-byte loops cost several ns a byte; native calls ~50 ns each)
function wc(sv, s, dv, d, len) {
  let i = 0;
  for (; i + 4 <= len; i += 4) dv.setUint32(d + i, sv.getUint32(s + i));
  for (; i < len; i++) dv.setUint8(d + i, sv.getUint8(s + i));
}
// uuid-format string at P: its 36 bytes must be canonical UUID text (either hex case), which also makes
// them ASCII (no UTF-8 scan needed); the 16 bytes go to out[o] when out is given. Two characters per
// lookup (T16: big-endian char pair -> byte, -1 when not two hex digits).
function uu(buf, end, fmax, out, o) {
  const len = rl(buf, end);
  if (len !== 36 || len > fmax || len > LMS || len > end - P) return false;
  const s = P;
  if (buf[s + 8] !== 45 || buf[s + 13] !== 45 || buf[s + 18] !== 45 || buf[s + 23] !== 45) return false;
  for (let k = 0; k < 16; k++) {
    const b = T16[BV.getUint16(s + UUP[k])];
    if (b < 0) return false;
    if (out !== null) out[o + k] = b;
  }
  P = s + 36;
  return true;
}
const UUP = [0, 2, 4, 6, 9, 11, 14, 16, 19, 21, 24, 26, 28, 30, 32, 34];
function cp(buf, s, e) {
  const len = e - s;
  if (len > 64) buf.copy(Q, q, s, e);
  else if (len >= 8) wc(BV, s, QV, q, len);
  else for (let i = 0; i < len; i++) Q[q + i] = buf[s + i];
  q += len;
}`;

// ---- type helpers --------------------------------------------------------------------------------

/** avsc's two kinds of union type (wrapped: unions of several records; unwrapped: the others). */
type UnionType = avro.types.UnwrappedUnionType | avro.types.WrappedUnionType;

function typeName(t: avro.Type): string {
  return t.typeName.startsWith('logical:') ? typeName((t as avro.types.LogicalType).underlyingType) : t.typeName;
}

function unwrapNullable(t: avro.Type): avro.Type {
  if (t.typeName === 'union:unwrapped' || t.typeName === 'union:wrapped') return (t as UnionType).types.find((b) => b.typeName !== 'null')!;
  return t;
}

/** The primitive name of a field type (`"long"`, `{"type": "long", "logicalType": ...}`, nullable X -> X). */
function primitiveOf(t: SchemaNode | undefined): string | undefined {
  if (typeof t === 'string') return t;
  if (Array.isArray(t)) {
    const others = t.filter((b) => b !== 'null');
    return others.length === 1 ? primitiveOf(others[0]) : undefined;
  }
  if (t && typeof t === 'object' && typeof t.type === 'string' && !['record', 'enum', 'array', 'map', 'fixed'].includes(t.type)) return t.type;
  return undefined;
}
