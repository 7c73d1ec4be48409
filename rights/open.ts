/**
 * Reading sealed records back (the access right, policy 5.2; the tests): a record's key is its device's
 * subject, so its DEK is found in the zone's key store by the key alone; no DEK (the device was erased)
 * means the record cannot be opened by anyone, the operator included.
 */
import type { Zone } from '../schemas/index.ts';
import { EnvelopeError, isSealed, unseal } from './envelope.ts';
import { KeyStoreError } from './keystore.ts';
import type { ZoneStores } from './sealer.ts';

export interface SealedRecord {
  key: Buffer | null;
  value: Buffer | null;
}

/**
 * Opens sealed records of one zone: each value in clear, or null when its device has no key any more
 * (erased) or the value does not authenticate. DEKs are fetched once per subject.
 */
export async function openRecords<R extends SealedRecord>(
  stores: ZoneStores,
  zone: Zone,
  records: readonly R[],
): Promise<Array<R & { opened: Buffer | null }>> {
  const deks = new Map<string, Buffer | undefined>();
  const out: Array<R & { opened: Buffer | null }> = [];
  for (const r of records) {
    if (!r.key || !r.value || !isSealed(r.value)) {
      out.push({ ...r, opened: null });
      continue;
    }
    const hex = r.key.toString('hex');
    if (!deks.has(hex)) deks.set(hex, await dekOrNone(stores, zone, r.key));
    const dek = deks.get(hex);
    let opened: Buffer | null = null;
    if (dek) {
      try {
        opened = unseal(dek, r.value, r.key);
      } catch {
        opened = null;
      }
    }
    out.push({ ...r, opened });
  }
  return out;
}

/** The subject's DEK; none when erased, or wrapped by a retired KEK (a restored backup row), or not authentic. */
async function dekOrNone(stores: ZoneStores, zone: Zone, subject: Buffer): Promise<Buffer | undefined> {
  try {
    return await stores.storeOf(zone).dekIfAny(subject);
  } catch (e) {
    if (e instanceof EnvelopeError || (e instanceof KeyStoreError && e.code === 'RIGHTS_KEYSTORE_KEK_MISSING')) return undefined;
    throw e;
  }
}
