/**
 * Validation of a decoded value (avsc in-memory shape: nullable unions unwrapped, unions of records
 * wrapped as `{ "telemetry.v1.Crash": {...} }`) against the schema and its extra attributes:
 * `maxLength` (UTF-16 code units), `maxItems`, `format` (a regex, or a named format of `NAMED_FORMATS`), `min`. Values decoded from
 * binary Avro are already well-typed; values from Avro-JSON are not, so every check is made. Compiled
 * once into closures; the error path is assembled only when something fails.
 */
import type { SchemaErrorCode } from './errors.ts';
import { isRecordSchema, Names, shortName, snake, type NamedSchema, type SchemaAttrs, type SchemaNode } from './classify.ts';

export interface Invalid {
  path: string;
  reason: SchemaErrorCode;
  detail: string;
}

export type Check = (v: unknown) => Invalid | undefined;

export interface ValidateOptions {
  /** Applied to strings without their own `maxLength`. */
  maxStringLength: number;
  /** Applied to arrays without their own `maxItems`. */
  maxCollectionLength: number;
  /** Array fields (by path) whose items are NOT checked here (the caller checks them one by one). */
  skipItems?: Set<string>;
}

const UUID_RE = /^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$/;

/**
 * Named formats a string field's `format` may give instead of a regex (schemas/README.md, "Formats").
 * The dimensions the EventFact copies (app id, app version, OS version, model, manufacturer) get one
 * each so that they cannot carry free text into non-personal output (ARCHITECTURE.md principle 2):
 * - `app_id`: reverse-DNS, at least two dot-separated labels, each a letter then letters, digits or `_`
 *   (`com.miui.weather2`); at most 16 labels of at most 63 characters.
 * - `app_version`: 1 to 5 dot-separated numbers of at most 9 digits, optionally `-` and a suffix of 1 to
 *   16 letters or digits (`13.0.6.1`, `8.0.40-beta1`, `4.3.0-beta`).
 * - `os_version`: an optional prefix of 1 to 12 letters (optionally followed by one space), 1 to 5
 *   dot-separated numbers, an optional suffix starting with a letter (after an optional `-`, `.` or `_`)
 *   of at most 16 letters or digits (`13`, `14.0.3`, `MIUI 14.0.3`, `V14.0.3.0.TKHMIXM`).
 * - `device_name`: a letter or digit, then up to 63 letters, digits, spaces, `-`, `_`, `.`, `+`
 *   (`Xiaomi`, `SM-A536B`, `Pixel 7`).
 * - `uuid`: canonical UUID text, either case.
 * Every quantifier is bounded and every repetition starts with a separator, so matching is linear.
 */
export const NAMED_FORMATS: Readonly<Record<string, RegExp>> = {
  uuid: UUID_RE,
  app_id: /^[A-Za-z][A-Za-z0-9_]{0,62}(?:\.[A-Za-z][A-Za-z0-9_]{0,62}){1,15}$/,
  app_version: /^[0-9]{1,9}(?:\.[0-9]{1,9}){0,4}(?:-[A-Za-z0-9]{1,16})?$/,
  os_version: /^(?:[A-Za-z]{1,12} ?)?[0-9]{1,9}(?:\.[0-9]{1,9}){0,4}(?:[-._]?[A-Za-z][A-Za-z0-9]{0,15})?$/,
  device_name: /^[A-Za-z0-9][A-Za-z0-9 ._+-]{0,63}$/,
};

/**
 * The regex of a `format` attribute: a named format, else the attribute is a regex source. A bare word
 * that names no format throws (it would otherwise be a regex matching any string that contains it).
 * The generic checks here and the generated fast path (fast-codegen.ts) both use this one function.
 */
export function formatRegExp(format: string): RegExp {
  const named = NAMED_FORMATS[format];
  if (named) return named;
  if (/^[a-z][a-z0-9_]*$/.test(format)) throw new Error(`unknown named format "${format}": use one of ${Object.keys(NAMED_FORMATS).join(', ')} or a regex`);
  return new RegExp(format);
}

/** The detail of a format failure: the regex it failed, named (`uuid` keeps its short text). */
function formatDetail(format: string): string {
  const named = NAMED_FORMATS[format];
  return named && format !== 'uuid' ? `does not match format ${format} (${named.source})` : `does not match ${format}`;
}

export function describe(v: unknown): string {
  if (v === null) return 'null';
  if (v === undefined) return 'nothing';
  if (typeof v === 'number') return Number.isInteger(v) ? (Math.abs(v) < 2 ** 31 ? 'int' : 'long') : 'double';
  if (typeof v === 'string') return 'string';
  if (typeof v === 'boolean') return 'boolean';
  if (typeof v === 'bigint') return 'long';
  if (Buffer.isBuffer(v)) return 'bytes';
  if (Array.isArray(v)) return 'array';
  return 'record';
}

const prefix = (name: string, e: Invalid): Invalid => ({ ...e, path: e.path ? (e.path.startsWith('[') ? `${name}${e.path}` : `${name}.${e.path}`) : name });

function mismatch(expected: string, v: unknown): Invalid {
  return { path: '', reason: 'SCHEMA_TYPE_MISMATCH', detail: `expected ${expected}, got ${describe(v)}` };
}

export function compileCheck(root: SchemaNode & SchemaAttrs, opts: ValidateOptions): Check {
  const names = new Names();
  return typeCheck(root, '', '', opts, names, root);
}

/** `field`: the attributes of the field holding the value (its limits and format). */
function typeCheck(t: SchemaNode, ns: string, path: string, opts: ValidateOptions, names: Names, field: SchemaAttrs): Check {
  if (typeof t === 'string') {
    const named = names.resolve(t, ns);
    if (named) return typeCheck(named, ns, path, opts, names, field);
    return primitive(t, opts, field);
  }
  if (Array.isArray(t)) return unionCheck(t, ns, path, opts, names, field);
  switch (t.type) {
    case 'record': {
      const full = names.fullname(t, ns);
      names.types.set(full, t);
      const recNs = full.slice(0, Math.max(0, full.lastIndexOf('.')));
      const fields = t.fields.map((f) => ({
        name: f.name,
        // May be absent: a nullable field, or one with a default (an older writer's value, e.g. consent.location).
        optional: (Array.isArray(f.type) && f.type.includes('null')) || 'default' in f,
        check: typeCheck(f.type, recNs, path ? `${path}.${f.name}` : f.name, opts, names, f),
      }));
      return (v) => {
        if (v === null || typeof v !== 'object' || Array.isArray(v) || Buffer.isBuffer(v)) return mismatch('record', v);
        const o = v as Record<string, unknown>;
        for (let i = 0; i < fields.length; i++) {
          const f = fields[i]!;
          const fv = o[f.name];
          if (fv === undefined) {
            if (f.optional) continue;
            return { path: f.name, reason: 'SCHEMA_MISSING_FIELD', detail: 'missing required field' };
          }
          const e = f.check(fv);
          if (e) return prefix(f.name, e);
        }
        return undefined;
      };
    }
    case 'array': {
      const max = field.maxItems ?? opts.maxCollectionLength;
      const skip = opts.skipItems?.has(path) ?? false;
      const item = typeCheck(t.items, ns, `${path}[]`, opts, names, {});
      return (v) => {
        if (!Array.isArray(v)) return mismatch('array', v);
        if (v.length > max) return { path: '', reason: 'SCHEMA_ARRAY_TOO_LONG', detail: `${v.length} items exceed the limit of ${max}` };
        if (skip) return undefined;
        for (let i = 0; i < v.length; i++) {
          const e = item(v[i]);
          if (e) return { ...e, path: `[${i}]${e.path ? (e.path.startsWith('[') ? e.path : `.${e.path}`) : ''}` };
        }
        return undefined;
      };
    }
    case 'map': {
      const max = field.maxItems ?? opts.maxCollectionLength;
      const values = typeCheck(t.values, ns, `${path}{}`, opts, names, {});
      return (v) => {
        if (v === null || typeof v !== 'object' || Array.isArray(v)) return mismatch('map', v);
        const keys = Object.keys(v);
        if (keys.length > max) return { path: '', reason: 'SCHEMA_ARRAY_TOO_LONG', detail: `${keys.length} entries exceed the limit of ${max}` };
        for (const k of keys) {
          const e = values((v as Record<string, unknown>)[k]);
          if (e) return prefix(k, e);
        }
        return undefined;
      };
    }
    case 'enum': {
      names.types.set(names.fullname(t, ns), t);
      const symbols = new Set<string>(t.symbols);
      const list = t.symbols.join(', ');
      return (v) => {
        if (typeof v !== 'string') return mismatch(`enum ${t.name}`, v);
        if (!symbols.has(v)) return { path: '', reason: 'SCHEMA_UNKNOWN_ENUM_SYMBOL', detail: `unknown symbol "${v.slice(0, 40)}", expected one of ${list}` };
        return undefined;
      };
    }
    case 'fixed': {
      names.types.set(names.fullname(t, ns), t);
      const size = t.size;
      return (v) => (Buffer.isBuffer(v) && v.length === size ? undefined : mismatch(`fixed(${size})`, v));
    }
    default:
      return primitive(t.type, opts, field);
  }
}

function unionCheck(t: SchemaNode[], ns: string, path: string, opts: ValidateOptions, names: Names, field: SchemaAttrs): Check {
  const hasNull = t.includes('null');
  const others = t.filter((b) => b !== 'null');
  const resolved = others.map((b) => (typeof b === 'string' ? (names.resolve(b, ns) ?? b) : b));
  const records = resolved.filter(isRecordSchema);
  if (others.length === 1) {
    // Nullable X: the in-memory value is null or X itself (avsc unwrapped union).
    const inner = typeCheck(others[0]!, ns, path, opts, names, field);
    return (v) => (v === null || (hasNull && v === undefined) ? undefined : inner(v));
  }
  // Union of several records: wrapped, `{ "<fullname>": value }`. Paths name the branch by its kind.
  const branches = resolved.map((b) => {
    const full = typeof b === 'object' ? names.fullname(b as NamedSchema, ns) : String(b);
    const kind = snake(shortName(full));
    return { full, kind, check: typeCheck(b, ns, `${path}.${kind}`, opts, names, field) };
  });
  const expected = `one of ${branches.map((b) => shortName(b.full)).join(' | ')}`;
  if (records.length !== others.length) throw new Error(`validate: unsupported union at ${path}`);
  return (v) => {
    if (v === null) return hasNull ? undefined : mismatch(expected, v);
    if (typeof v !== 'object' || Array.isArray(v)) return mismatch(expected, v);
    const o = v as Record<string, unknown>;
    for (let i = 0; i < branches.length; i++) {
      const b = branches[i]!;
      const bv = o[b.full];
      if (bv !== undefined) {
        const e = b.check(bv);
        return e ? prefix(b.kind, e) : undefined;
      }
    }
    const keys = Object.keys(o);
    return { path: '', reason: 'SCHEMA_TYPE_MISMATCH', detail: `expected ${expected}, got ${keys.length ? `"${keys[0]!.slice(0, 60)}"` : 'an empty record'}` };
  };
}

function primitive(name: string, opts: ValidateOptions, field: SchemaAttrs): Check {
  switch (name) {
    case 'null':
      return (v) => (v === null ? undefined : mismatch('null', v));
    case 'boolean':
      return (v) => (typeof v === 'boolean' ? undefined : mismatch('boolean', v));
    case 'int':
    case 'long': {
      const lo = name === 'int' ? -(2 ** 31) : Number.MIN_SAFE_INTEGER;
      const hi = name === 'int' ? 2 ** 31 - 1 : Number.MAX_SAFE_INTEGER;
      const min = field.min;
      return (v) => {
        if (typeof v !== 'number' || !Number.isInteger(v) || v < lo || v > hi) return mismatch(name, v);
        if (min !== undefined && v < min) return { path: '', reason: 'SCHEMA_BAD_FORMAT', detail: `${v} is below the minimum ${min}` };
        return undefined;
      };
    }
    case 'float':
    case 'double':
      return (v) => (typeof v === 'number' && Number.isFinite(v) ? undefined : mismatch(name, v));
    case 'bytes':
      return (v) => (Buffer.isBuffer(v) ? undefined : mismatch('bytes', v));
    case 'string': {
      const max = field.maxLength ?? opts.maxStringLength;
      const format = field.format;
      const re = format === undefined ? undefined : formatRegExp(format);
      const formatFailed = format === undefined ? '' : formatDetail(format);
      return (v) => {
        if (typeof v !== 'string') return mismatch('string', v);
        if (v.length > max) return { path: '', reason: 'SCHEMA_STRING_TOO_LONG', detail: `${v.length} characters exceed the limit of ${max}` };
        // A lone surrogate cannot be encoded as UTF-8 (Buffer would silently write U+FFFD).
        if (!(v as unknown as { isWellFormed(): boolean }).isWellFormed())
          return { path: '', reason: 'SCHEMA_BAD_UTF8', detail: 'string is not well-formed Unicode (lone surrogate), cannot be UTF-8' };
        if (re && !re.test(v)) return { path: '', reason: 'SCHEMA_BAD_FORMAT', detail: formatFailed };
        return undefined;
      };
    }
    default:
      throw new Error(`validate: unsupported type ${name}`);
  }
}
