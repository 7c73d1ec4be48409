/**
 * Build-time walk of an Avro schema against the category map: every field must name a known category.
 * Produces one `FieldInfo` per field path, which the compiler uses to derive validation, consent, the
 * personal projection and the EventFact wiring. Nothing here is per-field hand-written policy.
 *
 * Paths: `device.imei`, `events[].time`, `events[].payload.crash.signature` (a branch of a union of
 * records is named by its record name in snake_case, which is also its `EventKind`).
 */
import type { CategoryEntry, CategoryMap } from './categories.ts';
import { SchemaBuildError } from './errors.ts';

/**
 * The JSON of an Avro schema as the `.avsc` files write it, with our attributes: a type name (a primitive,
 * or a named type defined earlier in the schema), a union (the list of its branches), or a schema object.
 */
export type SchemaNode = string | SchemaNode[] | SchemaObject;
export type SchemaObject = RecordSchema | EnumSchema | FixedSchema | ArraySchema | MapSchema | PrimitiveSchema;
/** The types that have a name, by which later parts of the schema refer to them. */
export type NamedSchema = RecordSchema | EnumSchema | FixedSchema;

/** Our attributes (schemas/README.md): the data category, and the checks validate.ts compiles from them. */
export type SchemaAttrs = { category?: string; maxLength?: number; maxItems?: number; format?: string; min?: number; doc?: string };

export type RecordSchema = SchemaAttrs & { type: 'record'; name: string; namespace?: string; fields: SchemaField[] };
export type EnumSchema = SchemaAttrs & { type: 'enum'; name: string; namespace?: string; symbols: string[] };
export type FixedSchema = SchemaAttrs & { type: 'fixed'; name: string; namespace?: string; size: number };
export type ArraySchema = SchemaAttrs & { type: 'array'; items: SchemaNode };
export type MapSchema = SchemaAttrs & { type: 'map'; values: SchemaNode };
/** A primitive written as an object, e.g. `{"type": "long", "logicalType": "timestamp-millis"}`. */
export type PrimitiveSchema = SchemaAttrs & { type: 'null' | 'boolean' | 'int' | 'long' | 'float' | 'double' | 'bytes' | 'string'; logicalType?: string };
/** A record's field. EventFact fields also name their input path (`from`) and derivation (`via`). */
export type SchemaField = SchemaAttrs & { name: string; type: SchemaNode; default?: unknown; from?: string | string[]; via?: string };

/** A record schema object (the walks test union branches with it). */
export function isRecordSchema(t: SchemaNode | undefined): t is RecordSchema {
  return !!t && typeof t === 'object' && !Array.isArray(t) && t.type === 'record';
}

export interface FieldInfo {
  path: string;
  /** Path in Avro terms for build errors, e.g. `Batch.device.imei`. */
  schemaPath: string;
  name: string;
  category: string;
  entry: CategoryEntry;
  field: SchemaField;
  /** Path of the parent value ('' for the root record). */
  parent: string;
  /** How to step from the parent value to this one: a field name, or a wrapped-union branch key. */
  step: { kind: 'field'; key: string } | { kind: 'branch'; key: string };
  /** Set on union-of-records fields: the branches, in order. */
  branches?: { fullname: string; kind: string; record: RecordSchema }[];
}

/** A schema object without our attributes (category and the checks): what an output schema carries. */
export function stripAttrs<T extends SchemaObject>(t: T): T {
  const { category: _c, maxLength: _m, format: _f, min: _n, maxItems: _i, doc: _d, ...rest } = t;
  return rest as T;
}

export function snake(name: string): string {
  return name.replace(/([a-z0-9])([A-Z])/g, '$1_$2').toLowerCase();
}

export function shortName(fullname: string): string {
  return fullname.slice(fullname.lastIndexOf('.') + 1);
}

/** Resolves named types as avsc does (namespace inheritance), for the walk only. */
export class Names {
  readonly types = new Map<string, NamedSchema>();
  fullname(node: { name: string; namespace?: string }, ns: string): string {
    const n = node.name;
    if (n.includes('.')) return n;
    const space = node.namespace ?? ns;
    return space ? `${space}.${n}` : n;
  }
  resolve(ref: string, ns: string): NamedSchema | undefined {
    return this.types.get(ref) ?? this.types.get(ns ? `${ns}.${ref}` : ref);
  }
}

export function classify(root: RecordSchema, map: CategoryMap): Map<string, FieldInfo> {
  const out = new Map<string, FieldInfo>();
  const names = new Names();
  const rootName = root.name;

  const deref = (t: SchemaNode, ns: string): SchemaNode => {
    if (typeof t === 'string') return names.resolve(t, ns) ?? t;
    return t;
  };

  const register = (t: SchemaNode, ns: string): string => {
    if (t && typeof t === 'object' && !Array.isArray(t) && 'name' in t && typeof t.name === 'string') {
      const full = names.fullname(t, ns);
      names.types.set(full, t);
      return full.slice(0, Math.max(0, full.lastIndexOf('.')));
    }
    return ns;
  };

  const walkRecord = (rec: RecordSchema, ns: string, path: string, schemaPath: string): void => {
    const recNs = register(rec, ns);
    for (const f of rec.fields) {
      const p = path ? `${path}.${f.name}` : f.name;
      const sp = `${schemaPath}.${f.name}`;
      const category = f.category;
      if (category === undefined) {
        throw new SchemaBuildError(
          'SCHEMA_FIELD_NO_CATEGORY',
          sp,
          `field ${sp} has no "category" attribute: every field must name a data category of schemas/categories.ts`,
        );
      }
      const entry = map[category];
      if (!entry) {
        throw new SchemaBuildError(
          'SCHEMA_FIELD_UNKNOWN_CATEGORY',
          sp,
          `field ${sp} names unknown category "${category}": add it to schemas/categories.ts or use one of ${Object.keys(map).join(', ')}`,
        );
      }
      const info: FieldInfo = { path: p, schemaPath: sp, name: f.name, category, entry, field: f, parent: path, step: { kind: 'field', key: f.name } };
      out.set(p, info);
      walkType(f.type, recNs, p, sp, info);
    }
  };

  const walkType = (t: SchemaNode, ns: string, path: string, schemaPath: string, owner: FieldInfo): void => {
    t = deref(t, ns);
    if (typeof t === 'string') return; // primitive
    if (Array.isArray(t)) {
      const records = t.map((b) => deref(b, ns)).filter(isRecordSchema);
      if (records.length === 1 && t.length === 2) {
        walkType(records[0]!, ns, path, schemaPath, owner); // nullable record: fields sit under the field itself
        return;
      }
      owner.branches = [];
      for (const b of t) {
        const bt = deref(b, ns);
        if (isRecordSchema(bt)) {
          const full = names.fullname(bt, ns);
          const kind = snake(shortName(full));
          owner.branches.push({ fullname: full, kind, record: bt });
          const bp = `${path}.${kind}`;
          out.set(bp, {
            ...owner,
            path: bp,
            schemaPath: `${schemaPath}.${shortName(full)}`,
            name: kind,
            parent: path,
            step: { kind: 'branch', key: full },
            branches: undefined,
          });
          walkRecord(bt, ns, bp, `${schemaPath}.${shortName(full)}`);
        } else register(bt, ns);
      }
      return;
    }
    switch (t.type) {
      case 'record':
        walkRecord(t, ns, path, schemaPath);
        return;
      case 'array':
        walkType(t.items, ns, `${path}[]`, `${schemaPath}[]`, owner);
        return;
      case 'map':
        walkType(t.values, ns, `${path}{}`, `${schemaPath}{}`, owner);
        return;
      case 'enum':
      case 'fixed':
        register(t, ns);
        return;
      default:
        return; // primitive with attributes, e.g. {"type": "long", "logicalType": ...}
    }
  };

  if (root.type !== 'record') throw new SchemaBuildError('SCHEMA_BAD_DERIVATION', rootName, `root schema ${rootName} must be a record`);
  walkRecord(root, '', '', rootName);
  return out;
}
