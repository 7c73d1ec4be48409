/**
 * Store on embedded ClickHouse (chdb 26.x, in-process, data in AGGREGATOR_CHDB_PATH). Same DDL and SQL
 * as the server store. chdb's synchronous `query()` would block the event loop for the length of an
 * insert, so only its async API is used (`queryAsync`, raw `insert`), which runs on libuv's pool.
 * chdb allows one open data path per process: the query command cannot read a path an aggregator
 * process holds open.
 */
import { mkdirSync } from 'node:fs';
import { Session } from 'chdb';
import { AggregatorError } from './errors.ts';
import type { FactRow } from './facts.ts';
import { migrationParamsOf, runMigrations, type SqlRunner } from './migrate.ts';
import { dropDailyPartitionsOlderThan, type InsertOptions, type Store, type StoreOptions } from './store.ts';
import { encodeFactsTsv, FACT_COLUMNS } from './tsv.ts';

export class ChdbStore implements Store {
  readonly kind = 'embedded' as const;
  readonly database: string;
  private readonly session: Session;
  private readonly runner: SqlRunner;

  constructor(private readonly o: StoreOptions) {
    this.database = o.database;
    mkdirSync(o.chdbPath, { recursive: true });
    this.session = new Session(o.chdbPath);
    this.runner = {
      exec: async (sql) => {
        try {
          await this.session.queryAsync(sql, { format: 'TabSeparated' });
        } catch (cause) {
          throw new AggregatorError('AGG_SINK_QUERY_FAILED', `chdb statement failed: ${(cause as Error).message}`, { cause });
        }
      },
      rows: (sql) => this.query(sql),
    };
  }

  async migrate(): Promise<void> {
    await runMigrations(this.runner, migrationParamsOf(this.o));
  }

  async insertFacts(rows: readonly FactRow[], opts: InsertOptions = {}): Promise<void> {
    if (rows.length === 0) return;
    // chdb takes a payload in one call, so a midway stall is two inserts with the stall between them.
    const parts = opts.midway ? [rows.slice(0, rows.length >> 1), rows.slice(rows.length >> 1)] : [rows];
    for (let i = 0; i < parts.length; i++) {
      if (i > 0 && opts.midway) await opts.midway();
      const part = parts[i]!;
      if (part.length === 0) continue;
      try {
        await this.session.insert({
          table: `${this.database}.facts_in`,
          values: encodeFactsTsv(part),
          format: 'TabSeparated',
          columns: [...FACT_COLUMNS],
          timeout: this.o.insertTimeoutMs,
        });
      } catch (cause) {
        throw new AggregatorError('AGG_SINK_INSERT_FAILED', `chdb insert of ${part.length} rows failed: ${(cause as Error).message}`, { cause });
      }
    }
  }

  async query<T>(sql: string): Promise<T[]> {
    let text: string;
    try {
      text = (await this.session.queryAsync(sql, { format: 'JSONEachRow' })).text();
    } catch (cause) {
      throw new AggregatorError('AGG_SINK_QUERY_FAILED', `chdb query failed: ${(cause as Error).message}`, { cause });
    }
    const out: T[] = [];
    for (const line of text.split('\n')) if (line.trim()) out.push(JSON.parse(line) as T);
    return out;
  }

  command(sql: string): Promise<void> {
    return this.runner.exec(sql);
  }

  dropPartitionsOlderThan(day: number): Promise<string[]> {
    return dropDailyPartitionsOlderThan(this.runner, this.database, day);
  }

  async close(): Promise<void> {
    this.session.close();
  }
}
