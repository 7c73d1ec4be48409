/**
 * What ingest does to a batch's personal and reject records before they leave the worker: the record
 * key (the device identity in clear) becomes the device's subject (a keyed hash, zone-keys.ts), and the
 * value is sealed under the device's DEK (envelope.ts) from its zone's key store (keystore.ts). So no
 * personal topic holds an identifier or a personal value in clear, and erasing the DEK shreds every
 * copy (policy 5.2).
 *
 * DEKs are cached per worker thread for `cacheTtlMs` (bounded by `cacheEntries`), so a device's later
 * batches cost no key-store round trip. After an erasure a cached DEK may seal a few more batches for
 * at most the TTL: those records are as unreadable as the older ones (their key is gone), which is
 * what the person asked for. The key store being down is RIGHTS_KEYSTORE_UNAVAILABLE (retriable): the
 * batch fails with 503 and nothing of it is written.
 */
import type { SplitResult, Zone } from '../schemas/index.ts';
import { seal } from './envelope.ts';
import { KeyStore, type KeyStoreConnection } from './keystore.ts';
import { openZoneKeys, subjectOf, type ZoneKeys } from './zone-keys.ts';

/** Where a process finds the zones' key stores and key material (plain data: it crosses to worker threads). */
export interface SealingSpec {
  keyDir: string;
  /** Make a missing subject key / first KEK (manage mode), or require them (read-only). */
  createKeys: boolean;
  /** host:port/database per zone. */
  stores: Record<Zone, string>;
  user: string;
  password: string;
  /** PostgreSQL schema of the key store's tables in each zone database. */
  schema: string;
  cacheTtlMs: number;
}

/** `host:port/database` + credentials -> a connection. */
export function connectionOf(address: string, user: string, password: string): KeyStoreConnection {
  const m = /^([^:/]+):(\d+)\/(.+)$/.exec(address);
  if (!m) throw new Error(`key store address ${address}: expected host:port/database`);
  return { host: m[1]!, port: Number(m[2]), database: m[3]!, user, password };
}

/** The key stores and zone keys of a spec, opened lazily per zone. */
export class ZoneStores {
  private readonly stores = new Map<Zone, KeyStore>();
  private readonly keys = new Map<Zone, ZoneKeys>();

  constructor(readonly spec: Omit<SealingSpec, 'cacheTtlMs'>) {}

  keysOf(zone: Zone): ZoneKeys {
    let k = this.keys.get(zone);
    if (!k) this.keys.set(zone, (k = openZoneKeys(this.spec.keyDir, zone, { create: this.spec.createKeys })));
    return k;
  }

  storeOf(zone: Zone): KeyStore {
    let s = this.stores.get(zone);
    if (!s)
      this.stores.set(
        zone,
        (s = new KeyStore(this.keysOf(zone), connectionOf(this.spec.stores[zone], this.spec.user, this.spec.password), { schema: this.spec.schema })),
      );
    return s;
  }

  async close(): Promise<void> {
    await Promise.all([...this.stores.values()].map((s) => s.close()));
    this.stores.clear();
  }
}

export function openSealer(spec: SealingSpec): { sealer: Sealer; stores: ZoneStores } {
  const stores = new ZoneStores(spec);
  return {
    sealer: new Sealer(
      (z) => stores.storeOf(z),
      (z) => stores.keysOf(z),
      { cacheTtlMs: spec.cacheTtlMs },
    ),
    stores,
  };
}

export interface SealerOptions {
  /** @default 30000 */
  cacheTtlMs?: number;
  /** @default 100000 */
  cacheEntries?: number;
}

export class Sealer {
  private readonly cache = new Map<string, { dek: Buffer; at: number }>();
  private readonly ttl: number;
  private readonly max: number;
  /** Key-store round trips (cache misses), for the metrics and tests. */
  lookups = 0;

  constructor(
    private readonly stores: (zone: Zone) => KeyStore,
    private readonly keysOf: (zone: Zone) => ZoneKeys,
    opts: SealerOptions = {},
  ) {
    this.ttl = opts.cacheTtlMs ?? 30_000;
    this.max = opts.cacheEntries ?? 100_000;
  }

  /** Re-keys and seals the personal and rejected records of one split result, in place. */
  async sealResult(r: SplitResult): Promise<void> {
    const bound = [...r.personal, ...r.rejected];
    if (bound.length === 0) return;
    if (!r.device) throw new Error('split result with personal records but no device (schemas/contract.ts SplitResult.device)');
    const zone = bound[0]!.zone;
    const keys = this.keysOf(zone);
    const subject = subjectOf(keys, r.device.identity);
    const dek = await this.dek(zone, subject, r.device.identifiers);
    for (const rec of bound) {
      if (rec.zone !== zone) throw new Error(`one batch's records in two zones (${zone}, ${rec.zone})`);
      rec.key = subject;
      rec.value = seal(dek, rec.value, subject);
    }
  }

  private async dek(zone: Zone, subject: Buffer, identifiers: readonly string[]): Promise<Buffer> {
    const k = `${zone}/${subject.toString('hex')}`;
    const now = performance.now();
    const hit = this.cache.get(k);
    if (hit && now - hit.at < this.ttl) return hit.dek;
    this.lookups++;
    const dek = await this.stores(zone).dekFor(subject, identifiers);
    this.cache.delete(k);
    this.cache.set(k, { dek, at: now });
    if (this.cache.size > this.max) this.cache.delete(this.cache.keys().next().value!);
    return dek;
  }
}
