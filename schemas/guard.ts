/**
 * Hostile-Avro guard: a skip-validating walk of a binary body against its writer schema, run BEFORE avsc
 * sees the bytes.
 *
 * Why: avsc allocates an array from the block count it reads before checking that enough bytes remain,
 * so a 5-byte body claiming 50 million items makes it spin for seconds and take hundreds of MiB; it also
 * decodes invalid UTF-8 by silently substituting U+FFFD. This walk allocates nothing per value. It checks
 * every block count, string and bytes length against the bytes remaining (count x the smallest encoded
 * size of one item) and against configured limits, every union/enum index against the schema, and every
 * string for well-formed UTF-8, and throws `AvroGuardError` (typed, with path and offset) in
 * microseconds. Only then does avsc decode.
 */
import avro from 'avsc';
import { AvroGuardError, type SchemaErrorCode } from './errors.ts';
import { INT_MAX_BYTES, LONG_MAX_BYTES, readLong, skipLong, varintEnd, varintTruncated } from './varint.ts';

export interface DecodeLimits {
  /** Longest string or bytes value, in bytes. @default 65536 */
  maxStringLength: number;
  /** Most items in one array or map (all blocks together). @default 10000 */
  maxCollectionLength: number;
  /** Most items in all arrays and maps of one body together (bounds zero-size items too). @default 100000 */
  maxTotalItems: number;
  /** Per-path overrides of maxCollectionLength, e.g. `{ events: 1000 }` (path without indices). */
  maxItems?: Record<string, number>;
}

export const DEFAULT_LIMITS: DecodeLimits = { maxStringLength: 65_536, maxCollectionLength: 10_000, maxTotalItems: 100_000 };

type Walk = (buf: Buffer, pos: number) => number;

interface State {
  end: number;
  items: number;
  idx: number[];
  limits: DecodeLimits;
}

class Fail {
  constructor(
    readonly code: SchemaErrorCode,
    readonly path: string,
    readonly offset: number,
    readonly message: string,
  ) {}
}

const plans = new WeakMap<avro.Type, { walk: Walk; st: State }>();

/** Walks `buf` (a body without header) against `type`; throws AvroGuardError on the first problem. */
export function guardBody(type: avro.Type, buf: Buffer, limits: DecodeLimits = DEFAULT_LIMITS, start = 0): void {
  let plan = plans.get(type);
  if (!plan) {
    const st: State = { end: 0, items: 0, idx: [], limits };
    plan = { walk: compile(type, '', st), st };
    plans.set(type, plan);
  }
  const st = plan.st;
  st.end = buf.length;
  st.items = 0;
  st.idx.length = 0;
  st.limits = limits;
  let pos: number;
  try {
    pos = plan.walk(buf, start);
  } catch (e) {
    if (e instanceof Fail)
      throw new AvroGuardError(e.code, withIndices(e.path, st.idx), e.offset, `${e.message} at ${withIndices(e.path, st.idx) || '<root>'} (byte ${e.offset})`);
    throw e;
  }
  if (pos !== buf.length) {
    throw new AvroGuardError('AVRO_TRAILING_BYTES', '', pos, `${buf.length - pos} trailing bytes after the value (byte ${pos})`);
  }
}

/** Guard, then decode with avsc (optionally resolving `writer` into `reader`). */
export function guardedDecode<T = unknown>(type: avro.Type, buf: Buffer, limits: DecodeLimits = DEFAULT_LIMITS, reader?: avro.Type): T {
  guardBody(type, buf, limits);
  if (reader && reader !== type) return reader.fromBuffer(buf, reader.createResolver(type)) as T;
  return type.fromBuffer(buf) as T;
}

function withIndices(path: string, idx: number[]): string {
  let i = 0;
  return path.replace(/\[\]/g, () => (i < idx.length ? `[${idx[i++]}]` : '[]'));
}

function minSize(type: avro.Type, seen = new Set<avro.Type>()): number {
  if (seen.has(type)) return 0;
  switch (type.typeName) {
    case 'null':
      return 0;
    case 'float':
      return 4;
    case 'double':
      return 8;
    case 'fixed':
      return (type as avro.types.FixedType).size;
    case 'record':
    case 'error': {
      seen.add(type);
      let n = 0;
      for (const f of (type as avro.types.RecordType).fields) n += minSize(f.type, seen);
      seen.delete(type);
      return n;
    }
    default:
      if (typeof type.typeName === 'string' && type.typeName.startsWith('logical:')) return minSize((type as avro.types.LogicalType).underlyingType, seen);
      return 1; // boolean, int, long, string, bytes, enum, union index, array/map terminator
  }
}

/** The varint at `pos` (position after it in `varintEnd.pos`); throws the guard's error when it is cut or too long. */
function readVarint(buf: Buffer, pos: number, st: State, path: string, maxBytes: number): number {
  const n = readLong(buf, pos, st.end, maxBytes);
  if (n !== n) throw varintFail(pos, path, maxBytes);
  return n;
}

function skipVarint(buf: Buffer, pos: number, st: State, path: string, maxBytes: number): number {
  const p = skipLong(buf, pos, st.end, maxBytes);
  if (p < 0) throw varintFail(pos, path, maxBytes);
  return p;
}

function varintFail(start: number, path: string, maxBytes: number): Fail {
  if (varintTruncated(start, maxBytes)) return new Fail('AVRO_TRUNCATED', path, varintEnd.pos, 'truncated varint');
  return new Fail('AVRO_BAD_VARINT', path, varintEnd.pos, `varint longer than ${maxBytes} bytes`);
}

/** A string or bytes length, checked against the limit and the bytes left; its bytes start at `varintEnd.pos`. */
function length(buf: Buffer, pos: number, st: State, path: string): number {
  const len = readVarint(buf, pos, st, path, LONG_MAX_BYTES);
  const p = varintEnd.pos;
  if (len < 0) throw new Fail('AVRO_NEGATIVE_LENGTH', path, pos, `negative length ${len}`);
  if (len > st.limits.maxStringLength)
    throw new Fail('AVRO_LIMIT_EXCEEDED', path, pos, `length ${len} exceeds the limit of ${st.limits.maxStringLength} bytes`);
  if (len > st.end - p) throw new Fail('AVRO_TRUNCATED', path, pos, `length ${len} but only ${st.end - p} bytes remain`);
  return len;
}

/** Well-formed UTF-8 per RFC 3629 (no overlongs, no surrogates, nothing above U+10FFFF). */
export function isUtf8(buf: Buffer, start: number, end: number): number {
  let i = start;
  while (i < end) {
    const b = buf[i]!;
    if (b < 0x80) {
      i++;
      continue;
    }
    if (b >= 0xc2 && b <= 0xdf) {
      if (i + 1 >= end || (buf[i + 1]! & 0xc0) !== 0x80) return i;
      i += 2;
    } else if (b >= 0xe0 && b <= 0xef) {
      if (i + 2 >= end) return i;
      const b1 = buf[i + 1]!;
      if ((b1 & 0xc0) !== 0x80 || (buf[i + 2]! & 0xc0) !== 0x80) return i;
      if (b === 0xe0 && b1 < 0xa0) return i; // overlong
      if (b === 0xed && b1 >= 0xa0) return i; // surrogate
      i += 3;
    } else if (b >= 0xf0 && b <= 0xf4) {
      if (i + 3 >= end) return i;
      const b1 = buf[i + 1]!;
      if ((b1 & 0xc0) !== 0x80 || (buf[i + 2]! & 0xc0) !== 0x80 || (buf[i + 3]! & 0xc0) !== 0x80) return i;
      if (b === 0xf0 && b1 < 0x90) return i; // overlong
      if (b === 0xf4 && b1 >= 0x90) return i; // above U+10FFFF
      i += 4;
    } else return i;
  }
  return -1;
}

function compile(type: avro.Type, path: string, st: State, named = new Map<string, Walk>()): Walk {
  const name = type.typeName;
  if (name.startsWith('logical:')) return compile((type as avro.types.LogicalType).underlyingType, path, st, named);
  switch (name) {
    case 'null':
      return (_b, p) => p;
    case 'boolean':
      return (b, p) => {
        if (p >= st.end) throw new Fail('AVRO_TRUNCATED', path, p, 'truncated boolean');
        if (b[p]! > 1) throw new Fail('AVRO_BAD_VARINT', path, p, `boolean byte ${b[p]}`);
        return p + 1;
      };
    case 'int':
      return (b, p) => skipVarint(b, p, st, path, INT_MAX_BYTES);
    case 'long':
      return (b, p) => skipVarint(b, p, st, path, LONG_MAX_BYTES);
    case 'float':
    case 'double': {
      const n = name === 'float' ? 4 : 8;
      return (_b, p) => {
        if (p + n > st.end) throw new Fail('AVRO_TRUNCATED', path, p, `truncated ${name}`);
        return p + n;
      };
    }
    case 'fixed': {
      const n = (type as avro.types.FixedType).size;
      return (_b, p) => {
        if (p + n > st.end) throw new Fail('AVRO_TRUNCATED', path, p, `truncated fixed(${n})`);
        return p + n;
      };
    }
    case 'bytes':
      return (b, p) => {
        const len = length(b, p, st, path);
        const q = varintEnd.pos;
        return q + len;
      };
    case 'string':
      return (b, p) => {
        const len = length(b, p, st, path);
        const q = varintEnd.pos;
        const bad = isUtf8(b, q, q + len);
        if (bad >= 0) throw new Fail('AVRO_BAD_UTF8', path, bad, 'invalid UTF-8 in string');
        return q + len;
      };
    case 'enum': {
      const n = (type as avro.types.EnumType).symbols.length;
      return (b, p) => {
        const i = readVarint(b, p, st, path, INT_MAX_BYTES);
        const q = varintEnd.pos;
        if (i < 0 || i >= n) throw new Fail('AVRO_BAD_ENUM_INDEX', path, p, `enum index ${i} outside 0..${n - 1}`);
        return q;
      };
    }
    case 'union:wrapped':
    case 'union:unwrapped': {
      const branches: Walk[] = (type as avro.types.UnwrappedUnionType | avro.types.WrappedUnionType).types.map((bt) => {
        const bn = bt.name ? String(bt.name).split('.').pop()! : bt.typeName;
        return compile(bt, path ? `${path}.${bn}` : bn, st, named);
      });
      return (b, p) => {
        const i = readVarint(b, p, st, path, INT_MAX_BYTES);
        const q = varintEnd.pos;
        const w = branches[i];
        if (!w) throw new Fail('AVRO_BAD_UNION_BRANCH', path, p, `union branch ${i} outside 0..${branches.length - 1}`);
        return w(b, q);
      };
    }
    case 'record':
    case 'error': {
      const key = type.name;
      const cached = named.get(`${key}@${path}`);
      if (cached) return cached;
      let walks: Walk[] = [];
      const self: Walk = (b, p) => {
        for (let i = 0; i < walks.length; i++) p = walks[i]!(b, p);
        return p;
      };
      named.set(`${key}@${path}`, self); // recursive types: the same walk object is reused
      walks = (type as avro.types.RecordType).fields.map((f) => compile(f.type, path ? `${path}.${f.name}` : f.name, st, named));
      return self;
    }
    case 'array':
    case 'map':
      return compileCollection(type as avro.types.ArrayType | avro.types.MapType, name === 'map', path, st, named);
    default:
      throw new Error(`guard: unsupported Avro type ${name} at ${path}`);
  }
}

/** Arrays and maps: blocks of items (a negative count is followed by the block's byte size) up to a 0 count. */
function compileCollection(t: avro.types.ArrayType | avro.types.MapType, isMap: boolean, path: string, st: State, named: Map<string, Walk>): Walk {
  const itemPath = `${path}[]`;
  const itemType: avro.Type = isMap ? (t as avro.types.MapType).valuesType : (t as avro.types.ArrayType).itemsType;
  const item = compile(itemType, itemPath, st, named);
  const itemMin = minSize(itemType) + (isMap ? 1 : 0);
  const keyWalk: Walk | undefined = isMap ? compile(STRING, `${itemPath}<key>`, st, named) : undefined;
  return (b, p) => {
    const limit = st.limits.maxItems?.[path] ?? st.limits.maxCollectionLength;
    const depth = st.idx.length;
    st.idx.push(0);
    let total = 0;
    for (;;) {
      const at = p;
      let count = readVarint(b, p, st, path, LONG_MAX_BYTES);
      p = varintEnd.pos;
      if (count === 0) break;
      if (count < 0) {
        count = -count;
        const size = readVarint(b, p, st, path, LONG_MAX_BYTES);
        const r = varintEnd.pos;
        if (size < 0 || size > st.end - r) throw new Fail('AVRO_TRUNCATED', path, at, `block of ${size} bytes but only ${st.end - r} remain`);
        p = r;
      }
      total += count;
      st.items += count;
      if (total > limit) throw new Fail('AVRO_LIMIT_EXCEEDED', path, at, `${total} items exceed the limit of ${limit}`);
      if (st.items > st.limits.maxTotalItems)
        throw new Fail('AVRO_LIMIT_EXCEEDED', path, at, `${st.items} items in the body exceed the limit of ${st.limits.maxTotalItems}`);
      if (count * itemMin > st.end - p) throw new Fail('AVRO_TRUNCATED', path, at, `block claims ${count} items but only ${st.end - p} bytes remain`);
      for (let i = 0; i < count; i++) {
        st.idx[depth] = total - count + i;
        if (keyWalk) p = keyWalk(b, p);
        p = item(b, p);
      }
    }
    st.idx.length = depth;
    return p;
  };
}

const STRING = avro.Type.forSchema('string');
