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
 * issue 3 asks for <= 3x.
 *
 * Soundness rule: the fast path never reports an error. On anything that is not the plain happy path
 * (a check fails, an event would be rejected or refused a token, a varint is not in canonical form, a
 * string is longer in bytes than its limit in UTF-16 units, an unusual number) it returns `undefined`
 * and the caller runs the generic path (guardBody + avsc + processBatch), which gives the exact error or
 * rejects. So the fast path only has to be right when it answers, and the differential test
 * (fast.test.ts) checks that it answers exactly what the generic path answers, byte for byte.
 * A schema construct it does not handle (maps, fixed, bytes, arrays other than `events`, consent
 * stripping inside events) makes `compileFastPath` return undefined: then every body takes the generic path.
 */
import type avro from 'avsc';
import { MCC_COUNTRY, RESIDENCY, zoneOf, type Derivation } from './categories.ts';
import { Names, shortName, snake, type FieldInfo, type SchemaNode } from './classify.ts';
import type { SplitResult } from './contract.ts';
import { isUtf8, type DecodeLimits } from './guard.ts';
import { DAY_MS, type DailyTokenizer } from './tokenizer.ts';
import type { Invalid } from './validate.ts';

export interface FastSpec {
  batchSchema: SchemaNode;
  factSchema: SchemaNode;
  fields: Map<string, FieldInfo>;
  /** A personal field that goes to the personal record (personal and retention not P0D). */
  kept: (f: FieldInfo) => boolean;
  /** Fields nulled when personalised-ads consent is off (batch level only on the fast path). */
  stripPaths: ReadonlySet<string>;
  maxStringLength: number;
  maxEvents: number;
  eventFactType: avro.Type;
  personalType: avro.Type;
  /** Header in front of each fact (empty: facts sit inside an EventFactBatch record). */
  factHeader: Buffer;
  /** Header of the events-topic record (EventFactBatch) holding one day's facts. */
  batchHeader: Buffer;
  personalHeader: Buffer;
  residency: typeof RESIDENCY;
  /** The generic pieces, reused on the batch-level values (cheap: once per batch). */
  checkBatch: (batch: unknown) => Invalid | undefined;
  deviceIdentity: (device: any) => { value: string } | undefined;
  project: (batch: any, events: unknown[], ads: boolean, dropped: Record<string, number>) => unknown;
  batchValues: (batch: any) => unknown[];
}

export interface FastContext {
  receivedAt: number;
  clientIp?: string;
  tokenizer: DailyTokenizer;
}

/** Returns the split of a binary body, or undefined when the generic path must decide. */
export type FastPath = (body: Buffer, ctx: FastContext, limits: DecodeLimits) => SplitResult | undefined;

/** A schema construct the generator does not handle: no fast path, the generic one serves. */
class Unsupported extends Error {}

interface Generated {
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
  head: any;
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

/** Zigzag varint writer shared by the generated code (same output as avsc and fact-writer's Slab.long). */
function wl(o: Buffer, w: number, n: number): number {
  let v = n >= 0 ? n * 2 : -n * 2 - 1;
  while (v >= 0x80) {
    o[w++] = (v & 0x7f) | 0x80;
    v = Math.floor(v / 128);
  }
  o[w++] = v;
  return w;
}

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

// ---- the generator ------------------------------------------------------------------------------------

type Rep = 'num' | 'str' | 'branch';

interface Column {
  from: string;
  rep: Rep;
  id: number;
}

function generate(spec: FastSpec): Generated {
  const { fields, kept, batchSchema } = spec;
  const names = new Names();
  const consts: unknown[] = []; // values handed to the generated code (regexes, symbol lists, ...)
  const K = (v: unknown) => {
    consts.push(v);
    return `K[${consts.length - 1}]`;
  };
  let tmp = 0;
  const v = (p: string) => `${p}${tmp++}`;

  const isLeaf = (p: string) => {
    for (const k of fields.keys()) if (k.startsWith(`${p}.`) || k.startsWith(`${p}[]`)) return false;
    return true;
  };
  const under = (f: string, p: string) => f === p || f.startsWith(`${p}.`) || f.startsWith(`${p}[]`);
  const keepsAny = (p: string) => [...fields.values()].some((f) => under(f.path, p) && kept(f) && isLeaf(f.path));
  const keepsAll = (p: string) => [...fields.values()].every((f) => !under(f.path, p) || !isLeaf(f.path) || kept(f));
  for (const s of spec.stripPaths) if (s.startsWith('events[]')) throw new Unsupported(`consent stripping inside events (${s})`);

  // ---- which event-level inputs the EventFact reads, and how ----
  const columns = new Map<string, Column>();
  const factFields = spec.factSchema.fields as SchemaNode[];
  const avroFields = (spec.eventFactType as any).fields as { name: string; type: avro.Type }[];
  type Slot = { kind: 'event_key' } | { kind: 'daily_token' } | { kind: 'batch'; index: number } | { kind: 'event'; via: Derivation; cols: Column[]; out: avro.Type };
  const slots: Slot[] = factFields.map((f, index) => {
    const via = f.via as Derivation;
    const froms: string[] = Array.isArray(f.from) ? f.from : [f.from];
    if (via === 'event_key') return { kind: 'event_key' };
    if (via === 'daily_token') return { kind: 'daily_token' };
    if (!froms[0]!.startsWith('events[]')) return { kind: 'batch', index };
    const cols = froms.map((from) => {
      const info = fields.get(from)!;
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
      let c = columns.get(from);
      if (!c) columns.set(from, (c = { from, rep, id: columns.size }));
      return c;
    });
    return { kind: 'event', via, cols, out: avroFields[index]!.type };
  });

  // ---- the parser ----
  const lines: string[] = [];
  const emit = (s: string) => lines.push(s);
  /** `const x = <varint at P>` with the one-byte case inline (most varints of an event are one byte). */
  const varint = (x: string) => `let ${x} = buf[P]; if (${x} < 128) { P++; ${x} = ${x} & 1 ? -(${x} + 1) / 2 : ${x} / 2; } else ${x} = rl(buf, end);`;
  const BAIL = 'return -1;';

  /** Head (batch-level) value of type t into a fresh variable; returns its name. */
  function head(t: SchemaNode, ns: string, path: string): string {
    if (typeof t === 'string') {
      const named = names.resolve(t, ns);
      if (named) return head(named, ns, path);
      return headPrim(t);
    }
    if (Array.isArray(t)) {
      const hasNull = t.includes('null');
      const others = t.filter((b) => b !== 'null');
      const out = v('h');
      emit(`let ${out} = null; { const k = rl(buf, end); if (k !== k) ${BAIL}`);
      if (others.length === 1) {
        const nullIdx = t.indexOf('null');
        const other = t.indexOf(others[0]);
        emit(`if (k === ${other}) {`);
        const inner = head(others[0], ns, path);
        emit(`${out} = ${inner}; } else if (k !== ${nullIdx}) ${BAIL} }`);
        return out;
      }
      emit('switch (k) {');
      t.forEach((b, i) => {
        if (b === 'null') {
          emit(`case ${i}: break;`);
          return;
        }
        const r = typeof b === 'string' ? names.resolve(b, ns) : b;
        if (!r || r.type !== 'record') throw new Unsupported(`union at ${path}`);
        const full = names.fullname(r, ns);
        emit(`case ${i}: {`);
        const inner = head(r, ns, `${path}.${snake(shortName(full))}`);
        emit(`${out} = { ${JSON.stringify(full)}: ${inner} }; break; }`);
      });
      emit(`default: ${BAIL} } }`);
      void hasNull;
      return out;
    }
    switch (t.type) {
      case 'record': {
        const full = names.fullname(t, ns);
        names.types.set(full, t);
        const recNs = full.slice(0, Math.max(0, full.lastIndexOf('.')));
        const parts: string[] = [];
        for (const f of t.fields as SchemaNode[]) {
          const p = path ? `${path}.${f.name}` : f.name;
          if (p === 'events') {
            events(f, recNs);
            parts.push(`${JSON.stringify(f.name)}: null`);
          } else parts.push(`${JSON.stringify(f.name)}: ${head(f.type, recNs, p)}`);
        }
        const out = v('r');
        emit(`const ${out} = { ${parts.join(', ')} };`);
        return out;
      }
      case 'enum': {
        names.types.set(names.fullname(t, ns), t);
        const out = v('e');
        emit(`const ${out} = ${K(t.symbols)}[rl(buf, end)]; if (${out} === undefined) ${BAIL}`);
        return out;
      }
      case 'array':
      case 'map':
      case 'fixed':
        throw new Unsupported(`${t.type} at ${path}`);
      default:
        return headPrim(t.type);
    }
  }

  function headPrim(name: string): string {
    const out = v('p');
    switch (name) {
      case 'null':
        emit(`const ${out} = null;`);
        break;
      case 'boolean':
        emit(`if (P >= end || buf[P] > 1) ${BAIL} const ${out} = buf[P++] === 1;`);
        break;
      case 'int':
        emit(`const ${out} = rl(buf, end); if (!(${out} >= -2147483648 && ${out} <= 2147483647)) ${BAIL}`);
        break;
      case 'long':
        emit(`const ${out} = rl(buf, end); if (${out} !== ${out}) ${BAIL}`);
        break;
      case 'float':
      case 'double': {
        const n = name === 'float' ? 4 : 8;
        emit(`if (P + ${n} > end) ${BAIL} const ${out} = buf.${name === 'float' ? 'readFloatLE' : 'readDoubleLE'}(P); P += ${n};`);
        break;
      }
      case 'string':
        emit(`const ${out}s = rs(buf, end, Infinity); if (${out}s < 0) ${BAIL} const ${out} = A ? buf.latin1Slice(${out}s, P) : buf.utf8Slice(${out}s, P);`);
        break;
      default:
        throw new Unsupported(`type ${name}`);
    }
    return out;
  }

  /** The events array: the per-event loop. */
  function events(f: SchemaNode, ns: string): void {
    const t = typeof f.type === 'string' ? names.resolve(f.type, ns) : f.type;
    if (!t || t.type !== 'array') throw new Unsupported('events is not an array');
    const item = typeof t.items === 'string' ? names.resolve(t.items, ns) : t.items;
    if (!item || item.type !== 'record') throw new Unsupported('events items are not records');
    const byName = new Map((item.fields as SchemaNode[]).map((x) => [x.name, x]));
    if (primitiveOf(byName.get('time')?.type) !== 'long') throw new Unsupported('events[].time must be a long');
    const id = byName.get('event_id');
    if (primitiveOf(id?.type) !== 'string' || id.format !== 'uuid') throw new Unsupported('events[].event_id must be a uuid string');
    emit('let n = 0;');
    emit('for (;;) {');
    emit(`let c = rl(buf, end); if (c !== c) ${BAIL} if (c === 0) break;`);
    emit(`if (c < 0) { c = -c; const sz = rl(buf, end); if (!(sz >= 0) || sz > end - P) ${BAIL} }`);
    emit(`n += c; if (n > maxItems || n > maxTotal || n > MAXEV) ${BAIL}`);
    emit('for (let j = n - c; j < n; j++) {');
    for (const c of columns.values()) emit(c.rep === 'num' ? `CN${c.id}[j] = NaN;` : c.rep === 'str' ? `CL${c.id}[j] = -1;` : `CB${c.id}[j] = -1;`);
    ev(item, ns, 'events[]', {}, keepsAll('events[]') ? 'all' : keepsAny('events[]') ? 'partial' : 'none');
    emit('}');
    emit('}');
    emit('N = n;');
  }

  /** One event-level value: validate, copy the kept bytes, fill the columns. */
  function ev(t: SchemaNode, ns: string, path: string, field: SchemaNode, mode: 'all' | 'partial' | 'none'): void {
    if (mode === 'all') {
      const s = v('a');
      emit(`const ${s} = P;`);
      evInner(t, ns, path, field, 'none');
      emit(`cp(buf, ${s}, P);`);
    } else evInner(t, ns, path, field, mode);
  }

  function modeOf(p: string): 'all' | 'partial' | 'none' {
    return !keepsAny(p) ? 'none' : keepsAll(p) ? 'all' : 'partial';
  }

  function evInner(t: SchemaNode, ns: string, path: string, field: SchemaNode, mode: 'all' | 'partial' | 'none'): void {
    if (typeof t === 'string') {
      const named = names.resolve(t, ns);
      if (named) return evInner(named, ns, path, field, mode);
      return evPrim(t, path, field);
    }
    if (Array.isArray(t)) {
      const others = t.filter((b) => b !== 'null');
      const col = columns.get(path);
      const k = v('k');
      const s = v('u');
      emit(`{ const ${s} = P; ${varint(k)} if (${k} !== ${k}) ${BAIL}`);
      if (mode === 'partial') emit(`cp(buf, ${s}, P);`);
      if (col?.rep === 'branch') emit(`CB${col.id}[j] = ${k};`);
      emit(`switch (${k}) {`);
      t.forEach((b, i) => {
        if (b === 'null') {
          emit(`case ${i}: break;`);
          return;
        }
        const r = typeof b === 'string' ? names.resolve(b, ns) ?? b : b;
        emit(`case ${i}: {`);
        if (others.length === 1) evInner(r, ns, path, field, mode);
        else {
          if (!r || typeof r !== 'object' || r.type !== 'record') throw new Unsupported(`union at ${path}`);
          const bp = `${path}.${snake(shortName(names.fullname(r, ns)))}`;
          evInner(r, ns, bp, field, mode === 'none' ? 'none' : modeOf(bp) === 'all' ? 'partial' : modeOf(bp));
        }
        emit('break; }');
      });
      emit(`default: ${BAIL} } }`);
      return;
    }
    switch (t.type) {
      case 'record': {
        const full = names.fullname(t, ns);
        names.types.set(full, t);
        const recNs = full.slice(0, Math.max(0, full.lastIndexOf('.')));
        for (const f of t.fields as SchemaNode[]) {
          const p = `${path === 'events[]' ? 'events[].' : `${path}.`}${f.name}`;
          ev(f.type, recNs, p, f, mode === 'none' ? 'none' : modeOf(p));
        }
        return;
      }
      case 'enum': {
        names.types.set(names.fullname(t, ns), t);
        emit(`{ ${varint('k')} if (!(k >= 0 && k < ${t.symbols.length})) ${BAIL} }`);
        return;
      }
      case 'array':
      case 'map':
      case 'fixed':
        throw new Unsupported(`${t.type} at ${path}`);
      default:
        return evPrim(t.type, path, field);
    }
  }

  function evPrim(name: string, path: string, field: SchemaNode): void {
    const col = columns.get(path);
    const min: number | undefined = field.min;
    switch (name) {
      case 'null':
        return;
      case 'boolean':
        emit(`if (P >= end || buf[P] > 1) ${BAIL} P++;`);
        return;
      case 'int':
      case 'long': {
        const x = v('n');
        const range = name === 'int' ? `!(${x} >= -2147483648 && ${x} <= 2147483647)` : `${x} !== ${x}`;
        emit(`${varint(x)} if (${range}) ${BAIL}`);
        if (min !== undefined) emit(`if (${x} < ${Number(min)}) ${BAIL}`);
        if (path === 'events[].time') emit(`TIMES[j] = ${x};`);
        if (col) emit(`CN${col.id}[j] = ${x};`);
        return;
      }
      case 'float':
      case 'double': {
        const n = name === 'float' ? 4 : 8;
        emit(`if (P + ${n} > end || !Number.isFinite(buf.${name === 'float' ? 'readFloatLE' : 'readDoubleLE'}(P))) ${BAIL} P += ${n};`);
        return;
      }
      case 'string': {
        const max: number = field.maxLength ?? spec.maxStringLength;
        const s = v('s');
        const format: string | undefined = field.format;
        if (format === 'uuid') {
          if (col) throw new Unsupported(`uuid field ${path} read by the EventFact`);
          emit(`if (!uu(buf, end, ${max}, ${path === 'events[].event_id' ? 'IDS, 16 * j' : 'null, 0'})) ${BAIL}`);
          return;
        }
        emit(`const ${s} = rs(buf, end, ${max}); if (${s} < 0) ${BAIL}`);
        if (format !== undefined) emit(`if (!${K(new RegExp(format))}.test(A ? buf.latin1Slice(${s}, P) : buf.utf8Slice(${s}, P))) ${BAIL}`);
        if (col) emit(`CS${col.id}[j] = ${s}; CL${col.id}[j] = P - ${s};`);
        return;
      }
      default:
        throw new Unsupported(`type ${name} at ${path}`);
    }
  }

  const headVar = head(batchSchema, '', '');
  emit(`if (P !== end) ${BAIL}`);
  emit(`G.head = ${headVar};`);
  emit('return N;');
  const parseBody = lines.splice(0, lines.length).join('\n');

  // ---- the EventFact writer ----
  // Prefix for template mode: leading fields that are constant over a one-day batch (header, token,
  // batch-level fields, the day) or fixed-size holes (event key; the kind as a 1-byte enum index).
  type Part = { slot: Slot; index: number; prefix: 'const' | 'hole' | undefined };
  const parts: Part[] = slots.map((slot, index) => ({ slot, index, prefix: undefined }));
  for (const part of parts) {
    const s = part.slot;
    let kind: 'const' | 'hole' | undefined;
    if (s.kind === 'event_key') kind = 'hole';
    else if (s.kind === 'daily_token' || s.kind === 'batch') kind = 'const';
    else if (s.via === 'time_to_day' && s.cols.length === 1 && s.cols[0]!.from === 'events[].time' && ['int', 'long'].includes(typeName(s.out))) kind = 'const';
    else if (s.via === 'union_branch' && typeName(s.out) === 'enum' && (s.out as any).symbols.length < 64) kind = 'hole';
    if (!kind) break;
    part.prefix = kind;
  }
  const prefixCount = parts.filter((x) => x.prefix).length;

  const factLines: string[] = [];
  const holeLines: string[] = [];
  const tailLines: string[] = [];
  const tailMaxLines: string[] = [];
  let tailFixed = 0;
  const fe = (l: string) => factLines.push(l);
  fe('const w0 = w;');
  fe(`wc(FHD, 0, od, w, ${spec.factHeader.length}); w += ${spec.factHeader.length};`);
  let chunk = 0;
  let inRun = false;
  parts.forEach((part, pi) => {
    const s = part.slot;
    const inTail = pi >= prefixCount;
    const both = (l: string) => {
      fe(l);
      if (inTail) tailLines.push(l);
    };
    if (s.kind === 'batch') {
      if (!inRun) {
        const c = chunk++;
        both(`O.set(CH[${c}], w); w += CH[${c}].length;`);
        if (inTail) tailMaxLines.push(`b += CH[${c}].length;`);
        inRun = true;
      }
    } else {
      inRun = false;
      if (s.kind === 'event_key') {
        fe('HK = w - w0;');
        holeLines.push('wc(kd, ko, od, base + HK, 16);');
        both('wc(kd, ko, od, w, 16); w += 16;');
      } else if (s.kind === 'daily_token') both('wc(td, 0, od, w, 16); w += 16;');
      else {
        if (part.prefix === 'hole') {
          fe('HB = w - w0;');
          const c = s.cols[0]!;
          const syms: string[] = (s.out as any).symbols;
          const branches = fields.get('events[].payload')!.branches!;
          const table = branchIndexTable(c.from).map((b) => (b < 0 ? -1 : syms.indexOf(branches[b]!.kind)));
          holeLines.push(`{ const e = ${K(table)}[CB${c.id}[j]]; if (e === undefined || e < 0) return false; O[base + HB] = 2 * e; }`);
        }
        factSlot(s, both);
        if (inTail) {
          const rep = s.cols[0]!.rep;
          if (rep === 'str' && s.via === 'copy') tailMaxLines.push(`b += 11 + Math.max(${s.cols.map((c) => `CL${c.id}[j]`).join(', ')}, 0);`);
          else tailFixed += 24;
        }
      }
    }
    if (pi === prefixCount - 1) fe('PE = w - w0;');
  });
  fe('return w;');
  function factSlot(s: Extract<Slot, { kind: 'event' }>, out: (l: string) => void): void {
    // The derived value, first non-null over the inputs (compile.ts `first`).
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
    } else {
      // union_branch: the branch index -> the kind; written as enum index or string, fixed at build time.
      const branches = fields.get('events[].payload')!.branches!;
      const c = s.cols[0]!;
      out(`const x = CB${c.id}[j];`);
      const target = unwrapNullable(s.out);
      const tn = typeName(target);
      let table: unknown[];
      if (tn === 'enum') {
        const syms: string[] = (target as any).symbols;
        // An index -1 means "no such symbol": the generic writer throws there, so fall back.
        table = branchIndexTable(s.cols[0]!.from).map((b) => (b < 0 ? -1 : syms.indexOf(branches[b]!.kind)));
        writeOut(s.out, 'x < 0', `const e = ${K(table)}[x]; if (e === undefined || e < 0) return -1; w = wl(O, w, e);`, 'kind', out);
      } else if (tn === 'string') {
        table = branchIndexTable(s.cols[0]!.from).map((b) => (b < 0 ? null : Buffer.from(branches[b]!.kind)));
        writeOut(s.out, 'x < 0', `const e = ${K(table)}[x]; w = wl(O, w, e.length); for (let i = 0; i < e.length; i++) O[w++] = e[i];`, 'kind', out);
      } else throw new Unsupported(`union_branch into ${tn}`);
    }
    out('}');
  }

  /** Union member index -> branch index in FieldInfo.branches (-1 for null). */
  function branchIndexTable(from: string): number[] {
    const info = fields.get(from)!;
    const t: SchemaNode[] = info.field.type;
    let bi = 0;
    return t.map((b) => (b === 'null' ? -1 : bi++));
  }

  function writeOut(t: avro.Type, isNull: string, write: string, rep: string, out: (l: string) => void): void {
    const x = t as any;
    if (x.typeName === 'union:unwrapped' || x.typeName === 'union:wrapped') {
      const types = x.types as avro.Type[];
      const nullIdx = types.findIndex((b) => (b as any).typeName === 'null');
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

  const colDecls = [...columns.values()]
    .map((c) => (c.rep === 'num' ? `const CN${c.id} = new Float64Array(MAXEV);` : c.rep === 'str' ? `const CS${c.id} = new Int32Array(MAXEV), CL${c.id} = new Int32Array(MAXEV);` : `const CB${c.id} = new Int32Array(MAXEV);`))
    .join('\n');

  const src = `"use strict";
const { isUtf8, T16, wl, MCC, FH } = D;
const FHD = new DataView(FH.buffer, FH.byteOffset, FH.length);
const MAXEV = ${spec.maxEvents};
let P = 0, A = true, LMS = 0, N = 0, HK = 0, HB = 0, PE = -1;
let Q = Buffer.allocUnsafe(1 << 16), q = 0;
let QV = new DataView(Q.buffer, Q.byteOffset, Q.length);
let BV = QV;
const IDS = Buffer.allocUnsafe(16 * MAXEV);
const TIMES = new Float64Array(MAXEV);
${colDecls}
// zigzag varint at P; NaN when truncated, longer than 7 bytes (beyond 2^48: the generic path decides)
// or not in canonical form (a kept value's bytes are copied, so they must be what avsc would write).
function rl(buf, end) {
  let p = P;
  if (p >= end) return NaN;
  let b = buf[p++];
  let n = b & 0x7f;
  if (b & 0x80) {
    let sh = 128, k = 1;
    do {
      if (p >= end || k === 7) return NaN;
      b = buf[p++];
      n += (b & 0x7f) * sh;
      sh *= 128;
      k++;
    } while (b & 0x80);
    if (b === 0) return NaN;
  }
  P = p;
  return n % 2 === 0 ? n / 2 : -(n + 1) / 2;
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
}
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
${factLines.join('\n')}
  },
  prefixLen() { return PE; },
  holes(j, O, od, base, kd, ko) {
${holeLines.join('\n')}
    return true;
  },
  tail(buf, j, O, od, w, CH) {
${tailLines.join('\n')}
    return w;
  },
  tailMax(n, CH) {
    let m = 0;
    for (let j = 0; j < n; j++) {
      let b = ${tailFixed};
${tailMaxLines.join('\n')}
      if (b > m) m = b;
    }
    return m;
  },
};
return G;`;
  // eslint-disable-next-line @typescript-eslint/no-implied-eval
  return new Function('D', 'K', src)({ isUtf8, T16, wl, MCC: MCC_COUNTRY, FH: spec.factHeader }, consts) as Generated;
}

function typeName(t: avro.Type): string {
  const x = t as any;
  return x.typeName.startsWith('logical:') ? typeName(x.underlyingType) : x.typeName;
}

function unwrapNullable(t: avro.Type): avro.Type {
  const x = t as any;
  if (x.typeName === 'union:unwrapped' || x.typeName === 'union:wrapped') return (x.types as avro.Type[]).find((b) => (b as any).typeName !== 'null')!;
  return t;
}

/** The primitive name of a field type (`"long"`, `{"type": "long", "logicalType": ...}`, nullable X -> X). */
function primitiveOf(t: SchemaNode): string | undefined {
  if (typeof t === 'string') return t;
  if (Array.isArray(t)) {
    const others = t.filter((b) => b !== 'null');
    return others.length === 1 ? primitiveOf(others[0]) : undefined;
  }
  if (t && typeof t === 'object' && typeof t.type === 'string' && !['record', 'enum', 'array', 'map', 'fixed'].includes(t.type)) return t.type;
  return undefined;
}

// ---- the driver: batch-level steps in the order of compile.ts processBatch ------------------------------

function driver(spec: FastSpec, g: Generated): FastPath {
  const factFields = spec.factSchema.fields as SchemaNode[];
  const avroFields = (spec.eventFactType as any).fields as { name: string; type: avro.Type }[];
  // Runs of consecutive batch-level fact fields: encoded once per batch, copied into every fact.
  const runs: number[][] = [];
  let run: number[] | undefined;
  factFields.forEach((f, i) => {
    const froms: string[] = Array.isArray(f.from) ? f.from : [f.from];
    const batchLevel = f.via !== 'event_key' && f.via !== 'daily_token' && !froms[0]!.startsWith('events[]');
    if (batchLevel) {
      if (!run) runs.push((run = []));
      run.push(i);
    } else run = undefined;
  });
  const personalFields = (spec.personalType as any).fields as { name: string }[];
  if (personalFields[personalFields.length - 1]?.name !== 'events') return () => undefined;
  const fh = spec.factHeader;
  const eventSlots = factFields.length;
  const runTypes = runs.map((r) => r.map((i) => avroFields[i]!.type));
  /** One run of batch-level fields: strings written directly, anything else by avsc. */
  const encodeRun = (r: number[], bv: unknown[]): Buffer => {
    const types = runTypes[runs.indexOf(r)]!;
    let size = 0;
    for (let k = 0; k < r.length; k++) {
      const x = bv[r[k]!];
      size += typeof x === 'string' && (types[k] as any).typeName === 'string' ? 10 + Buffer.byteLength(x) : types[k]!.toBuffer(x).length;
    }
    const b = Buffer.allocUnsafe(size);
    let w = 0;
    for (let k = 0; k < r.length; k++) {
      const x = bv[r[k]!];
      if (typeof x === 'string' && (types[k] as any).typeName === 'string') {
        const len = Buffer.byteLength(x);
        w = wl(b, w, len);
        w += b.write(x, w, 'utf8');
      } else w += types[k]!.toBuffer(x).copy(b, w);
    }
    return b.subarray(0, w);
  };

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
    const { tokenizer, receivedAt } = ctx;
    const times = g.times;

    // Tokens per day (usually one day per batch); any refusal -> the generic path writes the rejects.
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
    const at = new Int32Array(n); // index of event j among its day's events
    for (let k = 0; k < days.length; k++) {
      const keys = tokenizer.keys(days[k]!, receivedAt);
      if (!keys) return undefined;
      const token = tokenizer.dailyToken(keys, identity.value);
      let ids: Buffer;
      if (days.length === 1) ids = g.ids.subarray(0, 16 * n);
      else {
        let m = 0;
        ids = Buffer.allocUnsafe(16 * n);
        for (let j = 0; j < n; j++) if (dayOf[j] === k) g.ids.copy(ids, 16 * m, 16 * j, 16 * j + 16), (at[j] = m++);
        ids = ids.subarray(0, 16 * m);
      }
      tokens.push(token);
      keyBufs.push(tokenizer.eventKeysOf(keys, ids, token));
    }
    if (days.length === 1) for (let j = 0; j < n; j++) at[j] = j;

    // Batch-level fact fields, encoded once (the bytes the generic flat writer gives; where it would
    // throw, toBuffer throws too and the generic path decides).
    const bv = spec.batchValues(head);
    let chunks: Buffer[];
    try {
      chunks = runs.map((r) => encodeRun(r, bv));
    } catch {
      return undefined;
    }
    const dv = (b: Buffer) => new DataView(b.buffer, b.byteOffset, b.length);
    const kds = keyBufs.map(dv);
    const tds = tokens.map(dv);
    const bh = spec.batchHeader;
    if (days.length === 1) {
      // Template mode: event 0 written in full gives the common prefix; it is repeated over the whole
      // buffer by one native fill, then only the holes and the tail are written per event. Facts have
      // different lengths (the tail), so each is moved down to the end of the previous one.
      const tailMax = g.tailMax(n, chunks);
      let chunkLen = 0;
      for (const c of chunks) chunkLen += c.length;
      const first = Buffer.allocUnsafe(fh.length + 32 + chunkLen + 11 * eventSlots + tailMax);
      if (g.fact(body, 0, first, dv(first), 0, kds[0]!, 0, tds[0]!, chunks) < 0) return undefined;
      const pre = g.prefixLen();
      const stride = pre + tailMax;
      const lead = bh.length + 10;
      const out = Buffer.allocUnsafe(lead + n * stride + 1);
      const od = dv(out);
      bh.copy(out, 0);
      let c = wl(out, bh.length, n);
      out.fill(first.subarray(0, stride), lead, lead + n * stride);
      const kd = kds[0]!;
      for (let j = 0; j < n; j++) {
        const base = lead + j * stride;
        if (!g.holes(j, out, od, base, kd, 16 * j)) return undefined;
        const w = g.tail(body, j, out, od, base + pre, chunks);
        if (w < 0) return undefined;
        if (c !== base) out.copyWithin(c, base, w);
        c += w - base;
      }
      out[c++] = 0;
      result.events.push({ key: tokens[0]!, value: out.subarray(0, c) });
    } else {
      let chunkLen = 0;
      for (const c of chunks) chunkLen += c.length;
      const out = Buffer.allocUnsafe(days.length * (bh.length + 11) + n * (fh.length + 32 + chunkLen + 11 * eventSlots) + eventSlots * body.length);
      const od = dv(out);
      const counts = new Int32Array(days.length);
      for (let j = 0; j < n; j++) counts[dayOf[j]!]!++;
      let w = 0;
      for (let k = 0; k < days.length; k++) {
        const start = w;
        bh.copy(out, w);
        w = wl(out, w + bh.length, counts[k]!);
        for (let j = 0; j < n; j++) {
          if (dayOf[j] !== k) continue;
          w = g.fact(body, j, out, od, w, kds[k]!, 16 * at[j]!, tds[k]!, chunks);
          if (w < 0) return undefined;
        }
        out[w++] = 0;
        result.events.push({ key: tokens[k]!, value: out.subarray(start, w) });
      }
    }
    result.accepted = n;

    // Personal record: the batch-level part through the generic projection (consent stripping counted
    // there), encoded with an empty events array, whose 0x00 terminator is replaced by the copied events.
    const ads = head.consent.personalised_ads === true;
    const value = spec.project(head, [], ads, result.droppedConsent) as any;
    value.received_at = receivedAt;
    value.zone = zone;
    value.client_ip = ctx.clientIp ?? null;
    const headBytes = spec.personalType.toBuffer(value);
    const ev = g.personal();
    const ph = spec.personalHeader;
    const rec = Buffer.allocUnsafe(ph.length + headBytes.length - 1 + 10 + ev.len + 1);
    ph.copy(rec, 0);
    headBytes.copy(rec, ph.length, 0, headBytes.length - 1);
    let r = wl(rec, ph.length + headBytes.length - 1, n);
    ev.buf.copy(rec, r, 0, ev.len);
    r += ev.len;
    rec[r++] = 0;
    result.personal.push({ key: Buffer.from(identity.value, 'utf8'), value: rec.subarray(0, r), zone });
    return result;
  };
}
