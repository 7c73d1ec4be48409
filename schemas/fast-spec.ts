// The input of the fast-path generator (fast-codegen.ts), built by fast.ts from the compiled split: its
// own module so the generator and its driver do not import each other.
import type avro from 'avsc';
import type { RESIDENCY } from './categories.ts';
import type { FieldInfo, RecordSchema } from './classify.ts';
import type { DeviceFields } from './batch-shape.ts';
import type { DistinctEvents, PersonalContext, PersonalOut } from './personal.ts';
import type { Invalid } from './validate.ts';

export interface FastSpec {
  batchSchema: RecordSchema;
  factSchema: RecordSchema;
  fields: Map<string, FieldInfo>;
  /** A personal field that goes to the personal record (personal and retention not P0D). */
  kept: (f: FieldInfo) => boolean;
  /** Fields nulled when their consent (personalised ads, location) is off (batch level only on the fast path). */
  stripPaths: ReadonlySet<string>;
  maxStringLength: number;
  maxEvents: number;
  eventFactType: avro.Type;
  /** The fast path's copied per-event bytes (the personal draft events' encoding) -> the events the sets depend on (personal.ts). */
  distinctEvents: DistinctEvents;
  /** The class records of a draft (personal.ts). */
  personalRecords: (draft: Record<string, unknown>, key: Buffer, ctx: PersonalContext) => PersonalOut[];
  /** The identifiers a draft keeps (personal.ts `identifiers`). */
  identifiers: (draft: Record<string, unknown>) => string[];
  /** Header in front of each fact (empty: facts sit inside an EventFactBatch record). */
  factHeader: Buffer;
  /** Header of the events-topic record (EventFactBatch) holding one day's facts. */
  batchHeader: Buffer;
  residency: typeof RESIDENCY;
  /** The generic pieces, reused on the batch-level values (cheap: once per batch). */
  checkBatch: (batch: unknown) => Invalid | undefined;
  deviceIdentity: (device: DeviceFields) => { value: string } | undefined;
  /** The personal record's batch-level part; strips (and counts) the fields whose consent `consent` does not grant. */
  project: (batch: unknown, events: unknown[], consent: Readonly<Record<string, unknown>>, dropped: Record<string, number>) => Record<string, unknown>;
  batchValues: (batch: unknown) => unknown[];
}
