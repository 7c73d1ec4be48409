// What the split reads of a batch (fields of schemas/avro/batch.avsc) once its checks have passed: the
// types shared by the generic split (compile.ts) and the fast path (fast.ts, fast-codegen.ts), kept apart
// so neither imports the other for them.

/**
 * The device fields the split reads: the identifiers (`deviceIdentity` checks their types, so a schema
 * without one still works) and the residency inputs (`zoneOf`).
 */
export interface DeviceFields {
  device_id?: unknown;
  imei?: unknown;
  imsi?: unknown;
  sim_mcc?: string | null;
  region?: string | null;
}

/** What the split reads of a batch's batch-level values once `checkBatch` has passed (fields of batch.avsc). */
export interface BatchHead {
  device: DeviceFields;
  /** `location` is absent from the bodies of older writers that a resolver did not fill (then: not granted). */
  consent: { analytics: boolean; personalised_ads: boolean; location?: boolean };
}
