/**
 * `BatchDecoder`: the part of `schemas/` the ingest worker calls: the compiled policy (schemas'
 * `CompiledSplit`: validate, consent, split, tokenise, encode), the batch schema, the hostile Avro guard, and
 * writer-schema resolution for Avro container uploads.
 *
 * Writer schemas: a container names the schema its bytes were written with (`avro.schema`). A device
 * built against an older or newer batch schema still posts readable data, so the writer schema is
 * resolved into the current batch schema with Avro's resolution rules (avsc `createResolver`); one that
 * cannot be resolved (a field the reader needs with no default, a type that does not promote) is refused
 * with INGEST_WRITER_SCHEMA_UNRESOLVABLE. The guard walks the bytes against the WRITER schema, since
 * those are the bytes on the wire, before avsc allocates anything.
 */
import avro from 'avsc';
import { compileSplit, fingerprintOf, guardBody, type DecodeLimits, type CompiledSplit } from '../schemas/index.ts';
import { fail, type IngestFailure } from './errors.ts';

export type { DecodeLimits, CompiledSplit };

export interface Writer {
  type: avro.Type;
  /** undefined when the writer schema is the reader schema (no resolution needed). */
  resolver: avro.Resolver | undefined;
}

export class BatchDecoder {
  readonly split: CompiledSplit;
  private readonly readerFingerprint: string;
  /**
   * Writer schemas seen recently, by their bytes as sent, newest last (devices of one SDK version send
   * the same one). Compared as bytes: turning a multi-KB schema into a string and hashing it for a map
   * cost ~6 µs a batch, a quarter of reading its container (ingest/README.md, "CPU per event").
   */
  private readonly writers: Array<{ schema: Buffer; writer: Writer | IngestFailure }> = [];
  private static readonly MAX_WRITERS = 64;

  constructor(
    readonly limits: DecodeLimits,
    maxEvents: number,
    maxStringLength: number,
  ) {
    this.split = compileSplit({ maxEvents, maxStringLength });
    this.readerFingerprint = fingerprintOf(this.split.batchType).toString('hex');
  }

  /** The writer of a container's `avro.schema` bytes (its JSON text in UTF-8), resolved once and cached. */
  writer(schema: Buffer): Writer | IngestFailure {
    for (let i = this.writers.length - 1; i >= 0; i--) {
      const e = this.writers[i]!;
      if (e.schema.length === schema.length && e.schema.equals(schema)) return e.writer;
    }
    const w = this.resolve(schema.toString('utf8'));
    if (this.writers.length >= BatchDecoder.MAX_WRITERS) this.writers.shift();
    // A copy: `schema` is a view on a request body, which the cache must not keep alive.
    this.writers.push({ schema: Buffer.from(schema), writer: w });
    return w;
  }

  private resolve(schemaJson: string): Writer | IngestFailure {
    let type: avro.Type;
    try {
      type = avro.Type.forSchema(JSON.parse(schemaJson) as avro.Schema, { wrapUnions: 'auto' } as avro.ForSchemaOptions);
    } catch (e) {
      return fail('INGEST_WRITER_SCHEMA_UNRESOLVABLE', `avro.schema of the container is not a valid Avro schema: ${(e as Error).message.slice(0, 200)}`);
    }
    if (fingerprintOf(type).toString('hex') === this.readerFingerprint) return { type: this.split.batchType, resolver: undefined };
    try {
      return { type, resolver: this.split.batchType.createResolver(type) };
    } catch (e) {
      return fail(
        'INGEST_WRITER_SCHEMA_UNRESOLVABLE',
        `writer schema ${type.name ?? type.typeName} cannot be read as the batch schema ${this.split.batchType.name}: ${(e as Error).message.slice(0, 300)}`,
      );
    }
  }

  /** Guard the bytes against the writer schema, then decode (resolving into the batch schema). */
  decode(w: Writer, data: Buffer): unknown {
    guardBody(w.type, data, this.limits);
    return w.resolver ? this.split.batchType.fromBuffer(data, w.resolver) : w.type.fromBuffer(data);
  }

  /**
   * Avro-JSON (debugging and tests). Spec Avro-JSON (unions wrapped as {"type": value}) is decoded as a
   * whole with the batch schema. If that fails, the parsed JSON goes to processBatch as is, in avsc's
   * in-memory shape (nullable unions as plain values, record unions wrapped by full name), where every
   * event is validated on its own: one bad event is rejected, the good ones go through.
   */
  fromJson(parsed: unknown, text: string): unknown {
    try {
      return this.split.batchType.fromString(text);
    } catch {
      return parsed;
    }
  }
}

/** Typed errors of schemas/ -> ingest failures; anything else is a bug and is rethrown. */
export function schemaFailure(e: unknown): IngestFailure {
  const code = (e as { code?: unknown }).code;
  const msg = (e as Error).message ?? String(e);
  if (typeof code === 'string') {
    if (code.startsWith('AVRO_')) return fail('INGEST_AVRO_INVALID', `Avro body refused: ${msg}`);
    if (code.startsWith('SCHEMA_')) return fail('INGEST_BATCH_INVALID', msg);
  }
  throw e;
}
