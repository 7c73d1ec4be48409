/**
 * Step 4 of a pool task: the batch -> its records, by the compiled policy of schemas/ (validate,
 * consent, classify, split, daily token, encode). Bytes in the current schema go through the generated
 * fast path `processBody`, a decoded value through `processBatch` (same results: schemas/fast.test.ts).
 *
 * Good events go through even when others are rejected (ARCHITECTURE.md principle 6); but a batch-level
 * problem (device context unusable, envelope invalid) comes back as one reject with index -1 and no
 * records: nothing of the batch can be kept, so the answer is 400, not 200.
 */
import type { ProcessContext, SplitResult } from '../../schemas/index.ts';
import { schemaFailure, type BatchDecoder } from '../decoder.ts';
import { fail, type Outcome } from '../errors.ts';
import type { SplitInput } from './resolve-writer.ts';

export interface Split {
  result: SplitResult;
  /** Events in the batch as sent (accepted + dropped for consent + rejected). */
  eventCount: number;
}

export function splitBatch(decoder: BatchDecoder, input: SplitInput, ctx: ProcessContext): Outcome<Split> {
  let result: SplitResult;
  try {
    result = input.kind === 'bytes' ? decoder.split.processBody(input.bytes, ctx, decoder.limits) : decoder.split.processBatch(input.batch, ctx);
  } catch (e) {
    return schemaFailure(e);
  }
  const batchLevel = result.rejects.find((r) => r.index < 0);
  if (batchLevel) return { ...fail('INGEST_BATCH_INVALID', batchLevel.message), rejects: result.rejects };
  let dropped = 0;
  for (const n of Object.values(result.droppedConsent)) dropped += n;
  const eventCount = result.accepted + dropped + result.rejects.length;
  if (eventCount === 0) return fail('INGEST_BATCH_EMPTY', 'the batch holds no events: send at least one');
  return { ok: true, value: { result, eventCount } };
}
