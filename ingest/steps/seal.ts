/**
 * Step 5 of a pool task (between split and pack): the batch's personal and reject records are re-keyed
 * to the device's subject and sealed under its data key (rights/sealer.ts), so nothing personal leaves
 * the worker in clear (policy 4.1) and erasing the key shreds every copy (policy 5.2). The zone's key
 * store not answering fails the batch with INGEST_KEYSTORE_UNAVAILABLE (503): nothing that could not be
 * sealed is written. Events records (non-personal) are untouched.
 */
import { createHash } from 'node:crypto';
import { KeyStoreError } from '../../rights/keystore.ts';
import type { Sealer } from '../../rights/sealer.ts';
import { fail, type Outcome } from '../errors.ts';
import type { PersonalOut } from '../records.ts';
import type { Split } from './split.ts';

export interface Sealed extends Split {
  /** The device's zone and subject, when the batch has personal or reject records. */
  subject?: { zone: Split['result']['personal'][number]['zone']; hex: string };
}

/**
 * Digest of a personal record's content before sealing (zone, class, key, value): byte-equal records
 * of one device (two batches of one day carry the same identifiers, settings and upload day)
 * share it, so the HTTP thread writes such a record once (mix.ts `RecentRecords`, policy 1.1.4: the
 * number of a device's personal records must not mirror the number of its batches). Sealed bytes
 * differ on every seal (a fresh nonce), hence the digest of the clear bytes; it stays in memory.
 */
export function contentDigest(p: Split['result']['personal'][number]): string {
  return createHash('sha256').update(`${p.zone}/${p.retentionClass}/${p.key.length}/`).update(p.key).update(p.value).digest('base64url').slice(0, 22);
}

export async function sealRecords(sealer: Sealer | undefined, split: Split): Promise<Outcome<Sealed>> {
  const r = split.result;
  for (const p of r.personal as PersonalOut[]) p.digest = contentDigest(p);
  const zone = r.personal[0]?.zone ?? r.rejected[0]?.zone;
  if (!sealer) return { ok: true, value: split };
  if (zone === undefined) return { ok: true, value: split };
  try {
    await sealer.sealResult(r);
  } catch (e) {
    if (e instanceof KeyStoreError) return fail('INGEST_KEYSTORE_UNAVAILABLE', `${e.message}; nothing of the batch was written, retry later`);
    throw e;
  }
  // A literal, not `{ ...split, subject }`: a spread took ~0.9 µs here on V8's slow path (steps/pack.ts).
  return {
    ok: true,
    value: { result: split.result, eventCount: split.eventCount, subject: { zone, hex: (r.personal[0] ?? r.rejected[0])!.key.toString('hex') } },
  };
}
