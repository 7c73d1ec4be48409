/**
 * Step 2 of a pool task: the decompressed body -> one upload, still undecoded. An Avro body is an
 * Object Container File (container.ts: magic, metadata, sync marker after every block, inflate budget)
 * holding exactly one Batch datum and the writer schema it was written with; an Avro-JSON body is one
 * JSON object. Nothing is decoded against the batch schema yet (that is resolve-writer.ts).
 */
import { readContainer, type ContainerLimits } from '../container.ts';
import { fail, type Outcome } from '../errors.ts';
import type { BodyFormat } from '../task.ts';

export type Upload =
  /** One Batch datum's bytes and the schema (`avro.schema`, its JSON as UTF-8 bytes) they were written with. */
  | { format: 'avro'; schema: Buffer; data: Buffer }
  /** A parsed JSON object and its text (spec Avro-JSON is decoded from the text). */
  | { format: 'json'; parsed: object; text: string };

export function readUpload(body: Buffer, format: BodyFormat, limits: ContainerLimits): Outcome<Upload> {
  if (body.length === 0) return fail('INGEST_BODY_EMPTY', 'empty body: send one batch');
  if (format === 'json') {
    const text = body.toString('utf8');
    let parsed: unknown;
    try {
      parsed = JSON.parse(text);
    } catch (e) {
      return fail('INGEST_BAD_JSON', `body is not valid JSON: ${(e as Error).message.slice(0, 200)}`);
    }
    if (typeof parsed !== 'object' || parsed === null || Array.isArray(parsed)) return fail('INGEST_BAD_JSON', 'body must be one JSON object (a Batch)');
    return { ok: true, value: { format: 'json', parsed, text } };
  }
  const c = readContainer(body, limits);
  if (!c.ok) return c;
  if (c.value.objectCount !== 1 || c.value.blocks.length !== 1) {
    return fail('INGEST_BATCH_INVALID', `an upload holds exactly one Batch record, this container holds ${c.value.objectCount}`);
  }
  return { ok: true, value: { format: 'avro', schema: c.value.schema, data: c.value.blocks[0]!.data } };
}
