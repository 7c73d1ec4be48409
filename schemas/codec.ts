/**
 * A reader of one record type that accepts every registered writer version (schema evolution: the
 * writer schema is found by fingerprint or registry id, then resolved into the reader schema).
 */
import avro from 'avsc';
import { SchemaError } from './errors.ts';
import { WriterRegistry, headerFor, type AvroType } from './wire.ts';

export interface CodecOptions {
  /** Confluent schema registry id of the reader/writer schema; when set, records use the 5-byte wire format. */
  registryId?: number;
}

export class RecordCodec<T> {
  readonly registry = new WriterRegistry();
  private readonly header: Buffer;
  private readonly resolvers = new Map<AvroType, avro.Resolver | null>();

  constructor(
    readonly type: AvroType,
    opts: CodecOptions = {},
  ) {
    this.header = headerFor(type, opts.registryId);
    this.registry.register(type, opts.registryId);
    this.resolvers.set(type, null);
  }

  /** Accept records written with an older or newer version of this schema. */
  addWriter(writer: AvroType, registryId?: number): void {
    this.resolvers.set(writer, resolverFor(this.type, writer));
    this.registry.register(writer, registryId);
  }

  encode(value: T): Buffer {
    const body = this.type.toBuffer(value);
    const out = Buffer.allocUnsafe(this.header.length + body.length);
    this.header.copy(out, 0);
    body.copy(out, this.header.length);
    return out;
  }

  decode(buf: Buffer): T {
    const { writer, bodyOffset } = this.registry.resolve(buf);
    const resolver = this.resolvers.get(writer) ?? undefined;
    return this.type.fromBuffer(buf.subarray(bodyOffset), resolver) as T;
  }
}

/** `reader.createResolver(writer)` with avsc's untyped error turned into a typed one. */
export function resolverFor(reader: AvroType, writer: AvroType): avro.Resolver {
  try {
    return reader.createResolver(writer);
  } catch (cause) {
    throw new SchemaError(
      'SCHEMA_UNRESOLVABLE_WRITER',
      `writer schema ${writer.name ?? writer.typeName} cannot be read as ${reader.name ?? reader.typeName}: ${(cause as Error).message}`,
      { cause },
    );
  }
}
