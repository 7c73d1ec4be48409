/**
 * A worker thread of rights/rights.test.ts's race on zone keys: for each directory of its list, it waits
 * until every racer has reached that directory (a counter per directory in shared memory), then opens
 * the zone's keys with `create`, as several ingest processes and their workers do on a fresh key
 * directory. Posts, per directory, the subject key it read (hex) or the error code it got.
 */
import { parentPort, workerData } from 'node:worker_threads';
import { openZoneKeys } from '../rights/zone-keys.ts';

const { dirs, racers, counters } = workerData as { dirs: string[]; racers: number; counters: Int32Array };
const out: string[] = [];
for (let i = 0; i < dirs.length; i++) {
  Atomics.add(counters, i, 1);
  while (Atomics.load(counters, i) < racers) {
    /* spin: all racers start this directory together */
  }
  try {
    out.push(openZoneKeys(dirs[i]!, 'row', { create: true }).subjectKey.toString('hex'));
  } catch (e) {
    out.push(`error ${(e as { code?: string }).code ?? (e as Error).message}`);
  }
}
parentPort!.postMessage(out);
