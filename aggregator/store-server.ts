/**
 * Store on a ClickHouse server through @clickhouse/client (HTTP). Works with Debian's 18.16 and current
 * releases: it sends no settings 18.16 does not know, uses TabSeparated for inserts and JSONEachRow
 * for reads (both exist on every version).
 */
import { PassThrough } from 'node:stream';
import { ClickHouseLogLevel, createClient, type ClickHouseClient } from '@clickhouse/client';
import { AggregatorError } from './errors.ts';
import type { FactRow } from './facts.ts';
import { migrationParamsOf, runMigrations, type SqlRunner } from './migrate.ts';
import { dropDailyPartitionsOlderThan, type InsertOptions, type Store, type StoreOptions } from './store.ts';
import { encodeFactsTsv, FACT_COLUMNS } from './tsv.ts';

export class ServerStore implements Store {
  readonly kind = 'server' as const;
  readonly database: string;
  private readonly client: ClickHouseClient;
  private readonly runner: SqlRunner;

  constructor(private readonly o: StoreOptions) {
    this.database = o.database;
    this.client = createClient({
      url: o.url,
      username: o.user,
      password: o.password,
      request_timeout: o.insertTimeoutMs,
      // One flush at a time per process; a small pool is plenty and keeps sockets few.
      max_open_connections: 4,
      compression: { request: false, response: false },
      // The client would log every failed request itself; failures are logged once, by the aggregator.
      log: { level: ClickHouseLogLevel.OFF },
    });
    this.runner = {
      exec: async (sql) => {
        await this.client.command({ query: sql });
      },
      rows: (sql) => this.query(sql),
    };
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
        table: `${this.database}.facts_in`,
        values: stream,
        format: 'TabSeparated',
        columns: [...FACT_COLUMNS] as [string, ...string[]],
        // With a midway stall the server turns the first half into its own block and writes it, so the
        // "crash during insert" window really leaves a partial insert behind.
        ...(opts.midway ? { clickhouse_settings: { max_insert_block_size: String(half) as never } } : {}),
      })
      .catch((cause: unknown) => {
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
      const rs = await this.client.query({ query: sql, format: 'JSONEachRow' });
      return await rs.json<T>();
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
