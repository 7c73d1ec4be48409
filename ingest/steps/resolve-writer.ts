/**
 * Step 3 of a pool task: an upload -> what the split reads. A binary batch written with the current
 * batch schema (what every up-to-date SDK sends) is not decoded here: its bytes go on as they are, to
 * the generated fast path (`processBody`: guard, decode and split in one walk, ~3-4x cheaper than guard
 * + avsc + processBatch, and the same results: schemas/fast.test.ts). A batch written with another
 * writer schema is resolved into the current one (decoder.ts: cached, Avro's resolution rules), guarded
 * and decoded into a value; Avro-JSON is decoded into a value.
 */
import { schemaFailure, type BatchDecoder } from '../decoder.ts';
import type { Outcome } from '../errors.ts';
import type { Upload } from './read-upload.ts';

export type SplitInput =
  /** Bytes in the current batch schema, for the fast path. */
  | { kind: 'bytes'; bytes: Buffer }
  /** A decoded Batch value (avsc's shape), for processBatch. */
  | { kind: 'value'; batch: unknown };

export function resolveWriter(decoder: BatchDecoder, upload: Upload): Outcome<SplitInput> {
  if (upload.format === 'json') return { ok: true, value: { kind: 'value', batch: decoder.fromJson(upload.parsed, upload.text) } };
  const w = decoder.writer(upload.schema);
  if ('ok' in w) return w;
  if (w.resolver === undefined) return { ok: true, value: { kind: 'bytes', bytes: upload.data } };
  try {
    return { ok: true, value: { kind: 'value', batch: decoder.decode(w, upload.data) } };
  } catch (e) {
    return schemaFailure(e);
  }
}
