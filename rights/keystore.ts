/**
 * The key store of one residency zone: each device's data key (DEK), wrapped by the zone's KEK, and the
 * lookup from any identifier the device sent to its subject, in a PostgreSQL database inside the zone
 * (policy section 6; one database per zone on the local stack, stack/README.md). Nothing in it names
 * a device in clear: rows are keyed by subjects and identifier hashes (keyed hashes, zone-keys.ts), and
 * a DEK is only stored wrapped.
 *
 * - `dekFor(subject, identifiers)`: the device's DEK, created on its first batch. Two ingest copies
 *   racing on a new device agree: the insert is ON CONFLICT DO NOTHING and both read the winner.
 * - `erase(subject)`: deletes the wrapped DEK and the device's lookups (then VACUUM, so the row's bytes
 *   leave the table's pages); every sealed copy of its records is unreadable from then on. Erasing twice
 *   is harmless (the second finds nothing).
 * - `rewrap(keys)`: re-wraps every live DEK with the current KEK, after `rotateKek`; then the old KEK can
 *   be retired, and a backup or WAL of this store from before an erasure no longer opens anything.
 * - `audit`/`auditLog`: the trail of rights requests (action, zone, outcome, counts; the subject only
 *   as a short keyed-hash prefix, never an identifier).
 *
 * The store being down is a retriable RIGHTS_KEYSTORE_UNAVAILABLE: ingest answers 503 and writes
 * nothing it could not seal.
 */
import pg from 'pg';
import { CodedError } from '../runtime/index.ts';
import { newKey, unwrapDek, wrapDek } from './envelope.ts';
import { identifierHash, type ZoneKeys } from './zone-keys.ts';

export type KeyStoreErrorCode = 'RIGHTS_KEYSTORE_UNAVAILABLE' | 'RIGHTS_KEYSTORE_KEK_MISSING';
export class KeyStoreError extends CodedError<KeyStoreErrorCode> {}

export interface KeyStoreConnection {
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
}

export interface AuditEntry {
  action: string;
  zone: string;
  /** A short prefix of the subject's hex (enough to tell requests apart, useless to re-identify). */
  subjectRef: string | null;
  outcome: string;
  counts: Record<string, number | string>;
}

const tables = (schema: string) => [
  `CREATE SCHEMA IF NOT EXISTS ${schema}`,
  `CREATE TABLE IF NOT EXISTS ${schema}.rights_device_keys (
     subject bytea PRIMARY KEY,
     kek_version integer NOT NULL,
     wrapped_dek bytea NOT NULL,
     created_at timestamptz NOT NULL DEFAULT now())`,
  `CREATE TABLE IF NOT EXISTS ${schema}.rights_identifiers (
     ident bytea PRIMARY KEY,
     subject bytea NOT NULL)`,
  `CREATE INDEX IF NOT EXISTS rights_identifiers_subject ON ${schema}.rights_identifiers (subject)`,
  `CREATE TABLE IF NOT EXISTS ${schema}.rights_audit (
     id bigserial PRIMARY KEY,
     at timestamptz NOT NULL DEFAULT now(),
     action text NOT NULL,
     zone text NOT NULL,
     subject_ref text,
     outcome text NOT NULL,
     counts jsonb NOT NULL DEFAULT '{}'::jsonb)`,
];

const UNAVAILABLE_CODES = new Set(['ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', '57P01', '57P03', '08006', '08001', '08004']);

function unavailable(e: unknown, zone: string): never {
  const code = (e as { code?: string }).code;
  if (e instanceof KeyStoreError) throw e;
  if (code === undefined || UNAVAILABLE_CODES.has(code) || /timeout|terminated|Connection/i.test(String((e as Error).message))) {
    throw new KeyStoreError('RIGHTS_KEYSTORE_UNAVAILABLE', `key store of zone ${zone} unavailable: ${(e as Error).message}`, { cause: e, retriable: true });
  }
  throw e;
}

export class KeyStore {
  private readonly pool: pg.Pool;
  private ready: Promise<void> | undefined;

  /** The PostgreSQL schema holding the tables (`rights` by default; tests use one each). */
  readonly schema: string;
  private readonly ddlLock: boolean;

  constructor(
    readonly keys: ZoneKeys,
    conn: KeyStoreConnection,
    opts: { maxConnections?: number; connectTimeoutMs?: number; schema?: string; ddlLock?: boolean } = {},
  ) {
    this.schema = opts.schema ?? 'rights';
    this.ddlLock = opts.ddlLock ?? true;
    if (!/^[a-z_][a-z0-9_]{0,62}$/.test(this.schema)) throw new Error(`key store schema ${this.schema}: lower-case letters, digits and _`);
    this.pool = new pg.Pool({
      ...conn,
      max: opts.maxConnections ?? 2,
      connectionTimeoutMillis: opts.connectTimeoutMs ?? 2000,
      idleTimeoutMillis: 30_000,
      // A query stuck on a dead server must fail like a refused one (503), not hang the batch.
      query_timeout: 5000,
    });
    // An idle client losing its server must not crash the process; the next query reports it.
    this.pool.on('error', () => {});
  }

  get zone(): string {
    return this.keys.zone;
  }

  /**
   * Creates the tables once per instance (idempotent). Every pool worker thread of every ingest copy
   * has its own instance, and PostgreSQL's `CREATE ... IF NOT EXISTS` is not safe against a concurrent
   * twin (the loser fails on the catalog's unique index, pg_type_typname_nsp_index): the statements run
   * in one transaction under an advisory lock of the schema, so the first creates and the others wait,
   * then find the tables (keystore-init.int.test.ts). `ddlLock: false` is the test's negative control.
   */
  private init(): Promise<void> {
    this.ready ??= (async () => {
      const c = await this.pool.connect();
      try {
        await c.query('BEGIN');
        if (this.ddlLock) await c.query('SELECT pg_advisory_xact_lock(hashtext($1))', [`telemetry-rights-keystore:${this.schema}`]);
        for (const sql of tables(this.schema)) await c.query(sql);
        await c.query('COMMIT');
      } catch (e) {
        await c.query('ROLLBACK').catch(() => {});
        throw e;
      } finally {
        c.release();
      }
    })().catch((e: unknown) => {
      this.ready = undefined;
      unavailable(e, this.zone);
    });
    return this.ready;
  }

  private async q<R extends pg.QueryResultRow>(sql: string, params: unknown[] = []): Promise<pg.QueryResult<R>> {
    await this.init();
    try {
      return await this.pool.query<R>(sql, params);
    } catch (e) {
      unavailable(e, this.zone);
    }
  }

  private unwrap(row: { subject: Buffer; kek_version: number; wrapped_dek: Buffer }): Buffer {
    const kek = this.keys.keks.get(row.kek_version);
    if (!kek) throw new KeyStoreError('RIGHTS_KEYSTORE_KEK_MISSING', `zone ${this.zone}: a data key is wrapped by kek-v${row.kek_version}, which is not here`);
    return unwrapDek(kek, row.wrapped_dek, this.zone, row.subject);
  }

  /** The device's DEK, created when it has none; registers the identifiers it was seen with. */
  async dekFor(subject: Buffer, identifiers: readonly string[]): Promise<Buffer> {
    const v = this.keys.current;
    const fresh = newKey();
    const wrapped = wrapDek(this.keys.keks.get(v)!, fresh, this.zone, subject);
    const r = await this.q<{ subject: Buffer; kek_version: number; wrapped_dek: Buffer }>(
      `WITH ins AS (
         INSERT INTO ${this.schema}.rights_device_keys (subject, kek_version, wrapped_dek) VALUES ($1, $2, $3)
         ON CONFLICT (subject) DO NOTHING RETURNING subject, kek_version, wrapped_dek)
       SELECT subject, kek_version, wrapped_dek FROM ins
       UNION ALL SELECT subject, kek_version, wrapped_dek FROM ${this.schema}.rights_device_keys WHERE subject = $1
       LIMIT 1`,
      [subject, v, wrapped],
    );
    if (identifiers.length) {
      const hashes = identifiers.map((i) => identifierHash(this.keys, i));
      await this.q(`INSERT INTO ${this.schema}.rights_identifiers (ident, subject) SELECT unnest($1::bytea[]), $2 ON CONFLICT (ident) DO NOTHING`, [
        hashes,
        subject,
      ]);
    }
    return this.unwrap(r.rows[0]!);
  }

  /** The DEK of a device if it still has one (undefined after an erasure, or for a device never seen). */
  async dekIfAny(subject: Buffer): Promise<Buffer | undefined> {
    const r = await this.q<{ subject: Buffer; kek_version: number; wrapped_dek: Buffer }>(
      `SELECT subject, kek_version, wrapped_dek FROM ${this.schema}.rights_device_keys WHERE subject = $1`,
      [subject],
    );
    return r.rows[0] ? this.unwrap(r.rows[0]) : undefined;
  }

  /** The subjects an identifier (`device_id:<v>`, `imei:<v>`, ...) was seen with. */
  async subjectsOf(identifier: string): Promise<Buffer[]> {
    const r = await this.q<{ subject: Buffer }>(`SELECT subject FROM ${this.schema}.rights_identifiers WHERE ident = $1`, [
      identifierHash(this.keys, identifier),
    ]);
    return r.rows.map((x) => x.subject);
  }

  /** Destroys a device's DEK and lookups. Returns whether there was a key to destroy. */
  async erase(subject: Buffer): Promise<boolean> {
    const r = await this.q(`DELETE FROM ${this.schema}.rights_device_keys WHERE subject = $1`, [subject]);
    await this.q(`DELETE FROM ${this.schema}.rights_identifiers WHERE subject = $1`, [subject]);
    // The deleted tuples' bytes leave the pages now, not at the next autovacuum.
    await this.q(`VACUUM ${this.schema}.rights_device_keys`);
    await this.q(`VACUUM ${this.schema}.rights_identifiers`);
    return (r.rowCount ?? 0) > 0;
  }

  /** Re-wraps every DEK not wrapped by the current KEK with it; returns how many. */
  async rewrap(): Promise<number> {
    const v = this.keys.current;
    const rows = await this.q<{ subject: Buffer; kek_version: number; wrapped_dek: Buffer }>(
      `SELECT subject, kek_version, wrapped_dek FROM ${this.schema}.rights_device_keys WHERE kek_version <> $1`,
      [v],
    );
    for (const row of rows.rows) {
      const dek = this.unwrap(row);
      await this.q(`UPDATE ${this.schema}.rights_device_keys SET kek_version = $1, wrapped_dek = $2 WHERE subject = $3 AND kek_version = $4`, [
        v,
        wrapDek(this.keys.keks.get(v)!, dek, this.zone, row.subject),
        row.subject,
        row.kek_version,
      ]);
    }
    await this.q(`VACUUM ${this.schema}.rights_device_keys`);
    return rows.rows.length;
  }

  /** KEK versions still wrapping some DEK (a version can be retired once it is not listed). */
  async kekVersionsInUse(): Promise<number[]> {
    const r = await this.q<{ v: number }>(`SELECT DISTINCT kek_version AS v FROM ${this.schema}.rights_device_keys ORDER BY 1`);
    return r.rows.map((x) => x.v);
  }

  async audit(e: AuditEntry): Promise<void> {
    await this.q(`INSERT INTO ${this.schema}.rights_audit (action, zone, subject_ref, outcome, counts) VALUES ($1, $2, $3, $4, $5)`, [
      e.action,
      e.zone,
      e.subjectRef,
      e.outcome,
      JSON.stringify(e.counts),
    ]);
  }

  async auditLog(limit = 1000): Promise<Array<AuditEntry & { at: string }>> {
    const r = await this.q<{ at: Date; action: string; zone: string; subject_ref: string | null; outcome: string; counts: Record<string, number | string> }>(
      `SELECT at, action, zone, subject_ref, outcome, counts FROM ${this.schema}.rights_audit ORDER BY id DESC LIMIT $1`,
      [limit],
    );
    return r.rows.map((x) => ({ at: x.at.toISOString(), action: x.action, zone: x.zone, subjectRef: x.subject_ref, outcome: x.outcome, counts: x.counts }));
  }

  async close(): Promise<void> {
    await this.pool.end();
  }
}
