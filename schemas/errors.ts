/**
 * Error catalogue of `schemas/` (ARCHITECTURE.md, "Errors": one `as const` code list per folder, so a code is a
 * union type). Data errors inside a batch become values (`EventReject`, `SplitResult`); the classes
 * below are thrown only where the caller cannot continue: an unknown schema fingerprint, a hostile
 * Avro body, a schema/map that must fail the build.
 */
import { CodedError } from '../runtime/errors.ts';

export const SCHEMA_ERROR_CODES = [
  // Build time: the schemas and the category map do not agree. These stop the process at start.
  'SCHEMA_FIELD_NO_CATEGORY',
  'SCHEMA_FIELD_UNKNOWN_CATEGORY',
  'SCHEMA_BAD_DERIVATION',
  'SCHEMA_INCOMPATIBLE_CHANGE',
  // Wire level: bytes a consumer cannot resolve.
  'SCHEMA_BAD_MAGIC',
  'SCHEMA_UNKNOWN_FINGERPRINT',
  'SCHEMA_UNKNOWN_REGISTRY_ID',
  'SCHEMA_UNRESOLVABLE_WRITER',
  // Hostile or truncated Avro bodies (checked before avsc sees the bytes).
  'AVRO_TRUNCATED',
  'AVRO_TRAILING_BYTES',
  'AVRO_LIMIT_EXCEEDED',
  'AVRO_NEGATIVE_LENGTH',
  'AVRO_BAD_UTF8',
  'AVRO_BAD_UNION_BRANCH',
  'AVRO_BAD_ENUM_INDEX',
  'AVRO_BAD_VARINT',
  // Per-event validation reasons (EventReject.reason).
  'SCHEMA_TYPE_MISMATCH',
  'SCHEMA_MISSING_FIELD',
  'SCHEMA_UNKNOWN_ENUM_SYMBOL',
  'SCHEMA_STRING_TOO_LONG',
  'SCHEMA_ARRAY_TOO_LONG',
  'SCHEMA_BAD_UTF8',
  'SCHEMA_BAD_FORMAT',
  'SCHEMA_BAD_DEVICE_CONTEXT',
  'SCHEMA_DUPLICATE_EVENT_ID',
  // Events that cannot be tokenised (their day's secret is gone or not yet issued).
  'TOKEN_TOO_LATE',
  'TOKEN_FROM_FUTURE',
] as const;

export type SchemaErrorCode = (typeof SCHEMA_ERROR_CODES)[number];

export class SchemaError extends CodedError<SchemaErrorCode> {
  override readonly name: string = 'SchemaError';
}

/** Build-time failure: the schemas and the category map disagree (the build must stop). */
export class SchemaBuildError extends SchemaError {
  override readonly name: string = 'SchemaBuildError';
  constructor(
    code: SchemaErrorCode,
    /** Dotted path of the offending field, e.g. `Batch.device.imei`. */
    readonly path: string,
    message: string,
  ) {
    super(code, message);
  }
}

/** The bytes of an Avro body break a structural rule or a configured limit; nothing was allocated. */
export class AvroGuardError extends SchemaError {
  override readonly name: string = 'AvroGuardError';
  constructor(
    code: SchemaErrorCode,
    /** Path inside the value being decoded, e.g. `events[3].payload`. */
    readonly path: string,
    /** Byte offset in the body where the problem was found. */
    readonly offset: number,
    message: string,
  ) {
    super(code, message);
  }
}

/** A batch whose device context is unusable: every event is rejected (see README, "Batch errors"). */
export class BatchError extends SchemaError {
  override readonly name: string = 'BatchError';
  constructor(
    code: SchemaErrorCode,
    readonly path: string,
    message: string,
  ) {
    super(code, message);
  }
}
