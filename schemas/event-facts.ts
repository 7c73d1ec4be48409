/**
 * The events topic's record: one `EventFactBatch` per (HTTP batch, UTC day), holding every fact of
 * that batch for that day (schemas/avro/event-fact-batch.avsc).
 *
 * Why a batch record: kafkajs costs ~20-25 us per record on the producing side and about as much on
 * the consuming side, and the broker's own ceiling for ~100-byte records was 40-77k records/s on the
 * bench box (ingest/BENCH-HISTORY.md). Tens of facts per record divide all three by the batch size. Nothing
 * else moves: the facts of one batch share the device, hence for one day the daily token, which is the
 * record key and so the partition; dedup stays per fact by `event_key` in the aggregator.
 *
 * Privacy (policy 1.1.4): the wrapper adds no field of its own. `factBatchSchemaOf` refuses a wrapper
 * with anything but `facts: array<EventFact>`, so every byte of a record is still one of the
 * EventFact's fields, each of which the compiler checks against the category map.
 *
 * Schema evolution: records written before this change hold one EventFact each; `decodeEventFacts`
 * reads both (the writer schema is named by the record's fingerprint).
 */
import type { EventFact } from './contract.ts';
import { RecordCodec } from './codec.ts';
import { SchemaBuildError, SchemaError } from './errors.ts';
import { readSchema, typeOf, type Schema } from './load.ts';

/**
 * The wrapper schema with its `facts` items replaced by the EventFact schema itself (inlined: avsc then
 * needs no registry, and the Parsing Canonical Form, hence the fingerprint, is the one a reader with a
 * registry would compute). Throws SchemaBuildError unless the wrapper is exactly `{ facts: array<fact> }`.
 */
export function factBatchSchemaOf(wrapper: Schema, factSchema: Schema): Schema {
  const at = String(wrapper.name ?? 'EventFactBatch');
  // As far as the check below reads it: any part may be missing or of another kind.
  const fields = wrapper.fields as { name?: unknown; type?: { type?: unknown; items?: unknown } }[] | undefined;
  const factName = `${String(factSchema.namespace ?? '')}.${String(factSchema.name)}`.replace(/^\./, '');
  const items = fields?.[0]?.type?.items;
  const itemName = typeof items === 'string' ? (items.includes('.') ? items : `${String(wrapper.namespace ?? '')}.${items}`.replace(/^\./, '')) : undefined;
  if (
    wrapper.type !== 'record' ||
    !fields ||
    fields.length !== 1 ||
    fields[0]!.name !== 'facts' ||
    fields[0]!.type?.type !== 'array' ||
    itemName !== factName
  ) {
    throw new SchemaBuildError(
      'SCHEMA_BAD_DERIVATION',
      at,
      `${at} must be a record with exactly one field, facts: array of ${factName} (policy 1.1.4: every byte of the events topic is an EventFact field the category map allows)`,
    );
  }
  return { ...wrapper, fields: [{ ...fields[0], type: { type: 'array', items: JSON.parse(JSON.stringify(factSchema)) } }] };
}

export const eventFactBatchSchema = factBatchSchemaOf(readSchema('event-fact-batch'), readSchema('event-fact'));
export const eventFactBatchType = typeOf(eventFactBatchSchema);

const batchCodec = new RecordCodec<{ facts: EventFact[] }>(eventFactBatchType);
const legacyCodec = new RecordCodec<EventFact>(typeOf(readSchema('event-fact')));

/** Facts (of one batch and one day: the caller groups) -> one events-topic record value. */
export function encodeEventFacts(facts: EventFact[]): Buffer {
  return batchCodec.encode({ facts });
}

/**
 * One events-topic record value -> its facts. Accepts an EventFactBatch record (any registered
 * version) and, for records written before batch records, a single EventFact record (-> [fact]). An
 * unknown writer schema throws SchemaError (`SCHEMA_UNKNOWN_FINGERPRINT`, `SCHEMA_BAD_MAGIC`, ...).
 */
export function decodeEventFacts(buf: Buffer): EventFact[] {
  let isBatch: boolean;
  try {
    batchCodec.registry.resolve(buf);
    isBatch = true;
  } catch (e) {
    if (!(e instanceof SchemaError)) throw e;
    isBatch = false;
  }
  return isBatch ? batchCodec.decode(buf).facts : [legacyCodec.decode(buf)];
}
