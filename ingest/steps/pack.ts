/**
 * Step 5 of a pool task: the split -> the task's result. All records are packed into one ArrayBuffer
 * (records.ts) that is moved back to the HTTP thread, not cloned; the counts and rejects travel with it.
 */
import { packRecords } from '../records.ts';
import type { WorkerSuccess } from '../task.ts';
import type { Split } from './split.ts';

export function pack({ result, eventCount }: Split, startedAt: number): WorkerSuccess {
  return {
    ok: true,
    accepted: result.accepted,
    droppedConsent: result.droppedConsent,
    rejects: result.rejects,
    eventCount,
    ...packRecords(result),
    workMs: performance.now() - startedAt,
  };
}
