/**
 * Store on a ClickHouse server through @clickhouse/client (HTTP or HTTPS). Works with Debian's 18.16 and
 * current releases: it sends no settings 18.16 does not know, uses TabSeparated for inserts and JSONEachRow
 * for reads (both exist on every version).
 *
 * This is the one place the services create a ClickHouse client (the aggregator, the query command, the
 * answer service and the dashboard all open a store), so the two transport/secret rules live here:
 * - TLS: an https:// url is verified against `tlsCaFile` (PEM) when given, else the system's CAs
 *   (aggregator/clickhouse-tls.ts says which urls the configuration accepts).
 * - Rotation: with `passwordFile`, every request carries the file's current password (re-read when the
 *   file changed: inode, size or mtime; stack/README.md, Rotation). A request refused for its password
 *   (the file was replaced between our check and the server's reload, or the other way round) makes the
 *   next request read the file again whatever its stamp; a query or command is retried once at once; an
 *   insert is not (its stream is spent): the aggregator's flush retries it with back-off.
 */
import { readFileSync } from 'node:fs';
import { PassThrough } from 'node:stream';
import { ClickHouseLogLevel, createClient, type ClickHouseClient } from '@clickhouse/client';
import { passwordFileReader } from '../runtime/file-watch.ts';
import { AggregatorError } from './errors.ts';
import type { FactRow } from './facts.ts';
import { migrationParamsOf, runMigrations, type SqlRunner } from './migrate.ts';
import { dropDailyPartitionsOlderThan, type InsertOptions, type Store, type StoreOptions } from './store.ts';
import { encodeFactsTsv, FACT_COLUMNS } from './tsv.ts';

/** ClickHouse's answers to a bad login: 192 UNKNOWN_USER, 193 WRONG_PASSWORD, 194 REQUIRED_PASSWORD, 516 AUTHENTICATION_FAILED (newer servers). */
export function isAuthenticationError(e: unknown): boolean {
  const m = e instanceof Error ? e.message : String(e);
  const code = (e as { code?: unknown } | undefined)?.code;
  return (
    ['192', '193', '194', '516'].includes(String(code)) ||
    /Code: (192|193|194|516)\b|Wrong password for user|Authentication failed|password is incorrect|Required password for user/.test(m)
  );
}

/** The password of a store: fixed, or the content of a file read again when the file changed (runtime/file-watch.ts). */
class StorePassword {
  private readonly read: ((force?: boolean) => string) | undefined;
  constructor(
    private readonly initial: string,
    file: string | undefined,
  ) {
    this.read = file ? passwordFileReader(file, initial) : undefined;
  }

  current(force = false): string {
    return this.read ? this.read(force) : this.initial;
  }
}

export class ServerStore implements Store {
  readonly kind = 'server' as const;
  readonly database: string;
  private readonly client: ClickHouseClient;
  private readonly runner: SqlRunner;
  private readonly password: StorePassword;
  private rereadNext = false;

  constructor(private readonly o: StoreOptions) {
    this.database = o.database;
    this.password = new StorePassword(o.password, o.passwordFile || undefined);
    this.client = createClient({
      url: o.url,
      username: o.user,
      password: o.password,
      ...(o.tlsCaFile ? { tls: { ca_cert: readFileSync(o.tlsCaFile) } } : {}),
      request_timeout: o.insertTimeoutMs,
      // One flush at a time per process; a small pool is plenty and keeps sockets few.
      max_open_connections: 4,
      compression: { request: false, response: false },
      // The client would log every failed request itself; failures are logged once, by the aggregator.
      log: { level: ClickHouseLogLevel.OFF },
    });
    this.runner = {
      exec: (sql) => this.withAuth((auth) => this.client.command({ query: sql, auth }).then(() => undefined)),
      rows: (sql) => this.query(sql),
    };
  }

  /** Credentials for the next request (the password file's current content when there is one). */
  private auth(): { username: string; password: string } {
    const force = this.rereadNext;
    this.rereadNext = false;
    return { username: this.o.user, password: this.password.current(force) };
  }

  /** Runs a request; refused for its password, reads the password again and retries it once. */
  private async withAuth<T>(fn: (auth: { username: string; password: string }) => Promise<T>): Promise<T> {
    try {
      return await fn(this.auth());
    } catch (e) {
      if (!this.o.passwordFile || !isAuthenticationError(e)) throw e;
      this.rereadNext = true;
      return await fn(this.auth());
    }
  }

  async migrate(): Promise<void> {
    await runMigrations(this.runner, migrationParamsOf(this.o));
  }

  async insertFacts(rows: readonly FactRow[], opts: InsertOptions = {}): Promise<void> {
    if (rows.length === 0) return;
    const stream = new PassThrough();
    const half = opts.midway ? Math.max(1, rows.length >> 1) : rows.length;
    const done = this.client
      .insert({
        auth: this.auth(),
        table: `${this.database}.facts_in`,
        values: stream,
        format: 'TabSeparated',
        columns: [...FACT_COLUMNS] as [string, ...string[]],
        // With a midway stall the server turns the first half into its own block and writes it, so the
        // "crash during insert" window really leaves a partial insert behind.
        ...(opts.midway ? { clickhouse_settings: { max_insert_block_size: String(half) as never } } : {}),
      })
      .catch((cause: unknown) => {
        // The stream is spent: no retry here, but the flush's retry reads the password file again.
        if (this.o.passwordFile && isAuthenticationError(cause)) this.rereadNext = true;
        throw new AggregatorError(
          'AGG_SINK_INSERT_FAILED',
          `insert of ${rows.length} rows into ${this.database}.facts_in failed: ${(cause as Error).message}`,
          { cause },
        );
      });
    // An error before the stream ends must not leave an unhandled rejection behind.
    done.catch(() => undefined);
    stream.write(encodeFactsTsv(rows.slice(0, half)));
    if (opts.midway) {
      await opts.midway();
      stream.write(encodeFactsTsv(rows.slice(half)));
    }
    stream.end();
    await done;
  }

  async query<T>(sql: string): Promise<T[]> {
    try {
      return await this.withAuth(async (auth) => {
        const rs = await this.client.query({ query: sql, format: 'JSONEachRow', auth });
        return await rs.json<T>();
      });
    } catch (cause) {
      throw new AggregatorError('AGG_SINK_QUERY_FAILED', `query failed: ${(cause as Error).message}`, { cause });
    }
  }

  command(sql: string): Promise<void> {
    return this.runner.exec(sql);
  }

  dropPartitionsOlderThan(day: number): Promise<string[]> {
    return dropDailyPartitionsOlderThan(this.runner, this.database, day);
  }

  async close(): Promise<void> {
    await this.client.close();
  }
}
