/**
 * Public API of `schemas/`: the policy as data (category map, Avro schemas) and the code compiled
 * from it. The services (`ingest/`, `aggregator/`, `dashboard/`) import `schemas/` only from here (lint enforces it).
 */
import type { EventFact } from './contract.ts';
import { RecordCodec } from './codec.ts';
import { readSchema, typeOf } from './load.ts';

export * from './contract.ts';
export { SchemaError, SchemaBuildError, AvroGuardError, BatchError, SCHEMA_ERROR_CODES } from './errors.ts';
export type { SchemaErrorCode } from './errors.ts';
export { crc64Avro } from './crc64.ts';
export { canonicalForm, fingerprintOf, WriterRegistry } from './wire.ts';
export { RecordCodec } from './codec.ts';

export const eventFactSchema = readSchema('event-fact');
export const eventFactType = typeOf(eventFactSchema);

const eventFactCodec = new RecordCodec<EventFact>(eventFactType);

/**
 * EventFact -> Avro single-object encoding (C3 01 + CRC-64-AVRO fingerprint + body). The legacy
 * events-topic record (one fact per record); the topic now carries `encodeEventFacts` records.
 */
export function encodeEventFact(f: EventFact): Buffer {
  return eventFactCodec.encode(f);
}

/**
 * A legacy single-fact record -> EventFact (use `decodeEventFacts` for the events topic: it reads both).
 * The writer schema is found by its fingerprint; an unknown one throws `SchemaError` with code
 * `SCHEMA_UNKNOWN_FINGERPRINT` (or `SCHEMA_BAD_MAGIC`).
 */
export function decodeEventFact(buf: Buffer): EventFact {
  return eventFactCodec.decode(buf);
}

export { encodeEventFacts, decodeEventFacts, eventFactBatchSchema, eventFactBatchType, factBatchSchemaOf } from './event-facts.ts';

export { compileSplit, buildDraftSchema } from './compile.ts';
export { classNameOf } from './personal.ts';
export type { PersonalClass, PersonalOut } from './personal.ts';
export type { CompiledSplit, SplitOptions, ProcessContext } from './compile.ts';
export { CATEGORIES, DERIVATIONS, RESIDENCY, MCC_COUNTRY, zoneOf, personalRetentionClasses, retentionDays, retentionMs } from './categories.ts';
export type { CategoryEntry, CategoryMap, CategoryName, Consent, Derivation } from './categories.ts';
export { DailyTokenizer, EnvKeySource, FileKeySource, KEY_DIR_MODES } from './tokenizer.ts';
export { DAY_MS, dayOfIso, isoOfDay } from './time.ts';
export type { KeySource, KeyDirMode, TokenKeyStatus, TokenizerOptions, TokenRefusal } from './tokenizer.ts';
export { guardedDecode, guardBody, DEFAULT_LIMITS } from './guard.ts';
export type { DecodeLimits } from './guard.ts';
export { readSchema, typeOf } from './load.ts';
export { INT_MAX_BYTES, LONG_MAX_BYTES, longBytes, readInt, readLong, skipLong, varintEnd, varintTruncated, writeLong } from './varint.ts';
