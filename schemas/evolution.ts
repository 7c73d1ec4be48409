/**
 * Schema evolution: resolving writer schemas into the reader's, and a compatibility check that refuses
 * changes which would break readers (a removed field without default, a changed type).
 */
import avro from 'avsc';
import { SchemaError } from './errors.ts';
import { resolverFor } from './codec.ts';
import { typeOf, type Schema } from './load.ts';
import { shortName } from './classify.ts';

/**
 * Parses a writer schema (JSON text or object) and checks the reader can resolve it. Throws
 * SchemaError `SCHEMA_UNRESOLVABLE_WRITER` with avsc's reason otherwise.
 */
export function resolveWriter(reader: avro.Type, writerSchemaJson: string | Schema): { writer: avro.Type; resolver: avro.Resolver } {
  let writer: avro.Type;
  try {
    writer = typeOf(typeof writerSchemaJson === 'string' ? (JSON.parse(writerSchemaJson) as Schema) : writerSchemaJson);
  } catch (cause) {
    throw new SchemaError('SCHEMA_UNRESOLVABLE_WRITER', `writer schema is not a valid Avro schema: ${(cause as Error).message}`, { cause });
  }
  return { writer, resolver: resolverFor(reader, writer) };
}

/**
 * Can readers of `oldSchema` read data written with `newSchema`, and can readers of `newSchema` read
 * old data (full compatibility)? Returns the problems, one clear sentence each; empty means compatible.
 */
export function checkCompatibility(oldSchema: Schema, newSchema: Schema): string[] {
  const problems: string[] = [];
  const oldT = typeOf(oldSchema);
  const newT = typeOf(newSchema);
  walk(oldT, newT, shortName(String(oldSchema.name)), problems);
  for (const [r, w, dir] of [
    [oldT, newT, 'old readers cannot read new data'],
    [newT, oldT, 'new readers cannot read old data'],
  ] as const) {
    try {
      r.createResolver(w);
    } catch (e) {
      problems.push(`${dir}: ${(e as Error).message}`);
    }
  }
  return [...new Set(problems)];
}

function walk(o: avro.Type, n: avro.Type, path: string, problems: string[]): void {
  if (o.typeName !== 'record' || n.typeName !== 'record') return;
  const ot = o as avro.types.RecordType;
  const nt = n as avro.types.RecordType;
  for (const f of ot.fields) {
    const g: avro.types.Field | undefined = nt.field(f.name);
    if (!g) {
      if (f.defaultValue() === undefined) problems.push(`field ${path}.${f.name} was removed but has no default: old readers need it`);
      continue;
    }
    const a = JSON.stringify(f.type.schema());
    const b = JSON.stringify(g.type.schema());
    if (f.type.typeName === 'record' && g.type.typeName === 'record') walk(f.type, g.type, `${path}.${f.name}`, problems);
    else if (a !== b) problems.push(`field ${path}.${f.name} changed type from ${a} to ${b}`);
  }
  for (const g of nt.fields) {
    if (!ot.field(g.name) && g.defaultValue() === undefined)
      problems.push(`field ${path}.${g.name} was added without a default: new readers cannot read old data`);
  }
}
