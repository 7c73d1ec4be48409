/**
 * Framing of Avro bodies with a schema identifier a consumer can resolve.
 *
 * - Avro single-object encoding (spec, "Single-object encoding"): 0xC3 0x01, then the 8-byte
 *   little-endian CRC-64-AVRO fingerprint of the writer schema's Parsing Canonical Form, then the body.
 *   This is the default: it needs no registry service, and a reader that knows the schema by its
 *   fingerprint can decode the record years later.
 * - Confluent wire format: 0x00, then a 4-byte big-endian schema registry id, then the body. Used when
 *   an id is configured (no registry client here: the id comes from configuration).
 */
import avro from 'avsc';
import { crc64AvroLE } from './crc64.ts';
import { SchemaError } from './errors.ts';

export type AvroType = avro.Type;

/** The Parsing Canonical Form of a type (avsc's `schema()` without attributes is exactly PCF). */
export function canonicalForm(type: AvroType): string {
  return JSON.stringify(type.schema());
}

/** CRC-64-AVRO fingerprint of the canonical form, 8 bytes little-endian. */
export function fingerprintOf(type: AvroType): Buffer {
  return crc64AvroLE(Buffer.from(canonicalForm(type), 'utf8'));
}

const SO_MAGIC_0 = 0xc3;
const SO_MAGIC_1 = 0x01;
const SO_HEADER = 10;
const CF_HEADER = 5;

/** Header bytes to put in front of a body written with `type`. */
export function headerFor(type: AvroType, registryId?: number): Buffer {
  if (registryId !== undefined) {
    if (!Number.isInteger(registryId) || registryId < 0 || registryId > 0x7fffffff) {
      throw new RangeError(`schema registry id must be a non-negative 32-bit integer, got ${registryId}`);
    }
    const h = Buffer.alloc(CF_HEADER);
    h[0] = 0;
    h.writeUInt32BE(registryId, 1);
    return h;
  }
  const h = Buffer.alloc(SO_HEADER);
  h[0] = SO_MAGIC_0;
  h[1] = SO_MAGIC_1;
  fingerprintOf(type).copy(h, 2);
  return h;
}

/**
 * Known writer schemas, by fingerprint and by registry id. A consumer registers every schema version
 * it can read; bytes naming any other schema are refused with a typed error, never guessed.
 */
export class WriterRegistry {
  private readonly byFingerprint = new Map<string, AvroType>();
  private readonly byRegistryId = new Map<number, AvroType>();

  register(type: AvroType, registryId?: number): void {
    this.byFingerprint.set(fingerprintOf(type).toString('hex'), type);
    if (registryId !== undefined) this.byRegistryId.set(registryId, type);
  }

  /** Finds the writer schema named by the header of `buf`; returns it and where the body starts. */
  resolve(buf: Buffer): { writer: AvroType; bodyOffset: number } {
    if (buf.length >= SO_HEADER && buf[0] === SO_MAGIC_0 && buf[1] === SO_MAGIC_1) {
      const fp = buf.toString('hex', 2, SO_HEADER);
      const writer = this.byFingerprint.get(fp);
      if (!writer) {
        throw new SchemaError('SCHEMA_UNKNOWN_FINGERPRINT', `unknown writer schema fingerprint ${fp}: register that schema version before reading its records`);
      }
      return { writer, bodyOffset: SO_HEADER };
    }
    if (buf.length >= CF_HEADER && buf[0] === 0) {
      const id = buf.readUInt32BE(1);
      const writer = this.byRegistryId.get(id);
      if (!writer) {
        throw new SchemaError('SCHEMA_UNKNOWN_REGISTRY_ID', `unknown schema registry id ${id}: configure the id of every schema version this reader accepts`);
      }
      return { writer, bodyOffset: CF_HEADER };
    }
    throw new SchemaError(
      'SCHEMA_BAD_MAGIC',
      `not an Avro single-object (C3 01) or Confluent (00) record: first bytes ${buf.toString('hex', 0, Math.min(buf.length, 4))}`,
    );
  }
}
