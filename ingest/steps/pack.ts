/**
 * Step 6 of a pool task: the split -> the task's result. All records are packed into one ArrayBuffer
 * (records.ts) that is moved back to the HTTP thread, not cloned; the counts and rejects travel with it.
 */
import { packRecords } from '../records.ts';
import type { WorkerSuccess } from '../task.ts';
import type { Sealed } from './seal.ts';

export function pack({ result, eventCount, subject }: Sealed, startedAt: number): WorkerSuccess {
  return {
    ...(subject ? { subject } : {}),
    ok: true,
    accepted: result.accepted,
    droppedConsent: result.droppedConsent,
    rejects: result.rejects,
    eventCount,
    ...packRecords(result),
    workMs: performance.now() - startedAt,
  };
}
