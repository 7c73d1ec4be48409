/**
 * The narrow interface between the aggregator and ClickHouse: the *store* of the aggregates (in this
 * project "sink" means Kafka producing; the ClickHouse side is always called a store). Two
 * implementations answer it with the same DDL and the same SQL: the ClickHouse server over HTTP
 * (store-server.ts) and embedded chdb (store-chdb.ts); store-open.ts picks one. Everything above
 * this file is engine-agnostic. This file imports no implementation.
 */
import { DAY_MS } from '../schemas/index.ts';
import type { FactRow } from './facts.ts';
import type { MigrationParams, SqlRunner } from './migrate.ts';

export interface InsertOptions {
  /**
   * TEST ONLY: called once half of the payload has been handed to ClickHouse and before the rest is.
   * A crash test stalls here to SIGKILL the process in the middle of an insert.
   */
  midway?: () => Promise<void>;
}

export interface Store {
  readonly kind: 'server' | 'embedded';
  readonly database: string;
  /** Applies pending migrations (repeatable: running it twice is harmless). */
  migrate(): Promise<void>;
  /** Inserts fact rows into `<db>.facts_in` (fed through the materialized view into `daily_agg`). */
  insertFacts(rows: readonly FactRow[], opts?: InsertOptions): Promise<void>;
  /** Runs a SELECT and returns its rows (JSONEachRow; 64-bit integers may arrive as strings). */
  query<T>(sql: string): Promise<T[]>;
  /** Runs a statement that returns no rows (the privacy ledger's INSERT ... SELECT). */
  command(sql: string): Promise<void>;
  /** Drops whole day partitions of `daily_agg` older than `day`; returns the dropped partition ids. */
  dropPartitionsOlderThan(day: number): Promise<string[]>;
  close(): Promise<void>;
}

export interface StoreOptions extends MigrationParams {
  kind: 'server' | 'embedded';
  url: string;
  user: string;
  password: string;
  /** Server store: file the password came from; read again when it changes (aggregator/store-server.ts). */
  passwordFile?: string;
  /** Server store: PEM CA for an https:// url (aggregator/clickhouse-tls.ts). */
  tlsCaFile?: string;
  chdbPath: string;
  insertTimeoutMs: number;
}

/** Partition ids of `daily_agg` are YYYYMMDD (PARTITION BY day); this picks those before `day`. */
export function partitionsOlderThan(ids: readonly string[], day: number): string[] {
  const cutoff = new Date(day * DAY_MS).toISOString().slice(0, 10).replace(/-/g, '');
  return ids.filter((id) => /^\d{8}$/.test(id) && id < cutoff).sort();
}

/**
 * Retention: drop whole day partitions of `daily_agg` (and of `device_daily`) older than `day`. Both stores run the same
 * SQL, so the sweep is written once here and each store only supplies how to run statements.
 */
export async function dropDailyPartitionsOlderThan(db: SqlRunner, database: string, day: number): Promise<string[]> {
  const parts = await db.rows<{ partition_id: string }>(
    `SELECT DISTINCT partition_id FROM system.parts WHERE database = '${database}' AND table = 'daily_agg' AND active`,
  );
  const old = partitionsOlderThan(
    parts.map((p) => p.partition_id),
    day,
  );
  for (const id of old) await db.exec(`ALTER TABLE ${database}.daily_agg DROP PARTITION ID '${id}'`);
  // The per-device session and crash states (migration 003) are kept no longer than the aggregates.
  const deviceParts = await db.rows<{ partition_id: string }>(
    `SELECT DISTINCT partition_id FROM system.parts WHERE database = '${database}' AND table = 'device_daily' AND active`,
  );
  for (const id of partitionsOlderThan(
    deviceParts.map((p) => p.partition_id),
    day,
  ))
    await db.exec(`ALTER TABLE ${database}.device_daily DROP PARTITION ID '${id}'`);
  return old;
}
