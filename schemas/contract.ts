/**
 * The contract between `schemas/` (policy, split, encoding) and its two consumers, `ingest/` and
 * `aggregator/`. It is written first so the three can be built side by side; `schemas/index.ts`
 * implements it. Change it only together with every consumer.
 */

/** Residency zones of privacy policy section 6 ("Mainland China", "Russia", "India", rest of world). */
export type Zone = 'cn' | 'ru' | 'in' | 'row';
export const ZONES: readonly Zone[] = ['cn', 'ru', 'in', 'row'] as const;

/** Event kinds a device can report (one Avro record type per kind in the batch schema). */
export type EventKind = 'session_start' | 'session_end' | 'page_view' | 'app_foreground' | 'app_background' | 'app_status' | 'crash' | 'network_stats';

/**
 * The counting rule of the aggregates: the kinds whose event key is counted, a session start in
 * `sessions`, a crash in `crashes` (and its device in `crashed_devices`). Every other kind only adds
 * its device (daily token) to `devices` of its group. The aggregates' SQL applies the same rule
 * (aggregator/migrations/001_daily_aggregates.sql, `uniqExactStateIf(event_key, kind = ...)`).
 */
export const KEY_COUNTED_KINDS = ['session_start', 'crash'] as const satisfies readonly EventKind[];

/** Whether the aggregates count this kind's event key (`KEY_COUNTED_KINDS`). */
export function countsEventKey(kind: string): boolean {
  for (let i = 0; i < KEY_COUNTED_KINDS.length; i++) if (KEY_COUNTED_KINDS[i] === kind) return true;
  return false;
}

/**
 * One non-personal event fact: the only thing that reaches the events topic and, from there, the
 * aggregator and ClickHouse. Policy 1.1.4: non-personally identifiable information, aggregated.
 * Every field is either a non-personal category or a declared generalisation of a personal one.
 */
export interface EventFact {
  /** 16 bytes: keyed hash of (device identity, client event_id) under the day's secret; the dedup key. */
  event_key: Buffer;
  /** 16 bytes: keyed hash of the device identity under the secret of `day` (policy 1.1.4 daily actives). */
  daily_token: Buffer;
  /** UTC day of the event time, as days since 1970-01-01 (generalisation of the exact event time). */
  day: number;
  kind: EventKind;
  app_id: string;
  app_version: string;
  device_model: string;
  os_version: string;
  /** ISO 3166-1 alpha-2, generalised from the SIM mobile country code; 'ZZ' when unknown. */
  country: string;
  /** page_view / session_end duration; null for other kinds. */
  duration_ms: number | null;
  /** crash only: stable crash signature and exception type; null for other kinds. */
  crash_signature: string | null;
  exception_type: string | null;
}

/** A record ready for Kafka: key and value are final bytes (value carries its schema identifier). */
export interface OutRecord {
  key: Buffer;
  value: Buffer;
  headers?: Record<string, string>;
}

/** Why one event of a batch was rejected; `path` is the field path inside the event. */
export interface EventReject {
  index: number;
  path: string;
  reason: string; // a code from schemas/errors.ts, e.g. SCHEMA_TYPE_MISMATCH
  message: string; // `event 17: field payload.crash.signature: expected string, got int`
}

/** The result of validating, consent-checking and splitting one decoded batch. */
export interface SplitResult {
  accepted: number;
  /** Events dropped because the user did not consent, counted by reason. */
  droppedConsent: Record<string, number>;
  rejects: EventReject[];
  /** Non-personal facts for the events topic, keyed by daily token. */
  events: OutRecord[];
  /**
   * Personal records, each bound to the topic of its residency zone and retention class (`p7d`,
   * `p30d`: schemas/personal.ts), one per class that holds something.
   */
  personal: Array<OutRecord & { zone: Zone; retentionClass: string }>;
  /** Rejected events (raw, possibly personal, unclassified) for the zone's rejects topic. */
  rejected: Array<OutRecord & { zone: Zone }>;
  /**
   * Who the personal and rejected records are about, when there are any: the device identity their
   * keys hold (`device_id:<id>`, else `imei:`/`imsi:`) and every identifier the personal record keeps
   * (`<field>:<value>`, schemas/personal.ts `identifiers`), for the key store's lookups (rights/).
   */
  device?: { identity: string; identifiers: string[] };
}
