/** Reads the checked-in `.avsc` files (JSON with extra attributes such as `category`, `from`, `via`). */
import { readFileSync } from 'node:fs';
import avro from 'avsc';

export type Schema = Record<string, unknown>;

export function readSchema(name: string): Schema {
  const url = new URL(`./avro/${name}.avsc`, import.meta.url);
  return JSON.parse(readFileSync(url, 'utf8')) as Schema;
}

/** avsc type of a schema; extra attributes are ignored by avsc and do not change the fingerprint. */
/** Unions of several records are wrapped (`{ "telemetry.v1.Crash": {...} }`), nullable ones are not. */
export function typeOf(schema: Schema, wrapUnions: 'auto' | boolean = 'auto'): avro.Type {
  return avro.Type.forSchema(schema as avro.Schema, { wrapUnions } as avro.ForSchemaOptions);
}
