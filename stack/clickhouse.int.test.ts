// @clickhouse/client against the stack's ClickHouse server (18.16), and chdb (embedded, modern engine)
// answering the same DDL and queries with the same results.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Session } from 'chdb';
import { createClickHouse, createTestDatabase, stackInfo, toClickHouseError, uniqueName, type TestDatabase } from '../testing/stack.ts';
import { ClickHouseServerError } from './clickhouse-errors.ts';

// One table definition for both engines: what the aggregator's tables look like (a Date partition key,
// low-cardinality dimensions as String, counters as UInt64), written in SQL that 18.16 accepts.
const TABLE_DDL = (db: string) => `
  CREATE TABLE ${db}.daily_events (
    day Date,
    app String,
    os_version String,
    events UInt64,
    crashes UInt64
  ) ENGINE = MergeTree()
  PARTITION BY toYYYYMM(day)
  ORDER BY (day, app, os_version)`;

const ROWS = [
  { day: '2026-03-01', app: 'maps', os_version: '14', events: 10, crashes: 1 },
  { day: '2026-03-01', app: 'maps', os_version: '15', events: 5, crashes: 0 },
  { day: '2026-03-01', app: 'mail', os_version: '15', events: 7, crashes: 2 },
  { day: '2026-03-02', app: 'maps', os_version: '14', events: 3, crashes: 0 },
  { day: '2026-03-02', app: 'mail', os_version: '14', events: 4, crashes: 1 },
  // Same key as the first row: MergeTree keeps both rows; the sum below must count both.
  { day: '2026-03-01', app: 'maps', os_version: '14', events: 2, crashes: 1 },
];

const QUERIES = (db: string) => [
  `SELECT day, app, sum(events) AS events, sum(crashes) AS crashes FROM ${db}.daily_events GROUP BY day, app ORDER BY day, app`,
  `SELECT app, count() AS rows, round(1 - sum(crashes) / sum(events), 4) AS crash_free FROM ${db}.daily_events GROUP BY app ORDER BY app`,
  `SELECT toString(day) AS day, uniqExact(os_version) AS versions FROM ${db}.daily_events WHERE app = 'maps' GROUP BY day ORDER BY day`,
];

// Modern ClickHouse (chdb) prints 64-bit integers in JSON as numbers; 18.16 quotes them. The setting is
// given explicitly to both so "same answers" means byte-identical output, not "equal after massaging".
const JSON_SETTINGS = { output_format_json_quote_64bit_integers: 1 } as const;

let db: TestDatabase;

beforeAll(async () => {
  db = await createTestDatabase('ch_int');
  await db.client.command({ query: TABLE_DDL(db.name) });
  await db.client.insert({ table: `${db.name}.daily_events`, values: ROWS, format: 'JSONEachRow' });
});

afterAll(async () => {
  await db?.drop();
});

async function serverAnswer(sql: string): Promise<string> {
  const rs = await db.client.query({ query: sql, format: 'JSONEachRow', clickhouse_settings: JSON_SETTINGS });
  return rs.text();
}

describe('@clickhouse/client against the ClickHouse server', () => {
  it('is the server the stack reports, answering SQL', async () => {
    const rs = await db.client.query({ query: 'SELECT version() AS v', format: 'JSONEachRow' });
    const [row] = await rs.json<{ v: string }>();
    const info = stackInfo();
    if (!info.external.clickhouse) expect(row?.v).toBe(info.clickhouseVersion);
    expect(row?.v).toMatch(/^\d+\.\d+/);
  });

  it('stores the JSONEachRow rows in its own database and answers the aggregate queries', async () => {
    const tables = await (
      await db.client.query({ query: `SELECT name, engine FROM system.tables WHERE database = '${db.name}'`, format: 'JSONEachRow' })
    ).json();
    expect(tables).toEqual([{ name: 'daily_events', engine: 'MergeTree' }]);

    const [byDay] = QUERIES(db.name);
    const rows = await (await db.client.query({ query: byDay as string, format: 'JSONEachRow' })).json<Record<string, unknown>>();
    // UInt64 sums come back as strings (JSON cannot hold every 64-bit integer); day as 'YYYY-MM-DD'.
    expect(rows).toEqual([
      { day: '2026-03-01', app: 'mail', events: '7', crashes: '2' },
      { day: '2026-03-01', app: 'maps', events: '17', crashes: '2' },
      { day: '2026-03-02', app: 'mail', events: '4', crashes: '1' },
      { day: '2026-03-02', app: 'maps', events: '3', crashes: '0' },
    ]);
  });

  it('a suite sees only its own database: another test database does not have the table', async () => {
    const other = await createTestDatabase('ch_int_other');
    try {
      const count = await (
        await other.client.query({ query: `SELECT count() AS n FROM system.tables WHERE database = '${other.name}'`, format: 'JSONEachRow' })
      ).json<{ n: string }>();
      expect(count).toEqual([{ n: '0' }]);
    } finally {
      await other.drop();
    }
    const dbs = await (await db.client.query({ query: `SELECT name FROM system.databases WHERE name = '${other.name}'`, format: 'JSONEachRow' })).json();
    expect(dbs).toEqual([]);
  });

  it('bad SQL gives a typed error with the server code and name', async () => {
    const syntax = await db.client.query({ query: 'SELEC day FROM daily_events', format: 'JSONEachRow' }).then(
      () => undefined,
      (e: unknown) => e,
    );
    const err = toClickHouseError(syntax);
    expect(err).toBeInstanceOf(ClickHouseServerError);
    expect(err?.code).toBe(62);
    expect(err?.type).toBe('SYNTAX_ERROR');
    expect(err?.message).toMatch(/Syntax error/);

    const missing = await db.client.query({ query: `SELECT * FROM ${db.name}.no_such_table`, format: 'JSONEachRow' }).catch((e: unknown) => e);
    expect(toClickHouseError(missing)).toMatchObject({ code: 60, type: 'UNKNOWN_TABLE' });
  });

  it('an unreachable server is not mistaken for a SQL error', async () => {
    const dead = createClickHouse(undefined, { url: 'http://127.0.0.1:1' });
    try {
      const e = await dead.query({ query: 'SELECT 1', format: 'JSONEachRow' }).catch((x: unknown) => x);
      expect(e).toBeInstanceOf(Error);
      expect(toClickHouseError(e)).toBeUndefined();
    } finally {
      await dead.close();
    }
  });
});

describe('chdb (embedded ClickHouse)', () => {
  let session: Session;
  const chdbDb = uniqueName('chdb_int');

  beforeAll(async () => {
    session = new Session();
    session.query(`CREATE DATABASE ${chdbDb}`);
    session.query(TABLE_DDL(chdbDb));
    await session.insert({ table: `${chdbDb}.daily_events`, values: ROWS.map((r) => JSON.stringify(r)).join('\n') + '\n', format: 'JSONEachRow' });
  });

  afterAll(() => {
    session?.close();
  });

  it('answers the same queries with byte-identical JSONEachRow output as the server', async () => {
    for (const [i, serverSql] of QUERIES(db.name).entries()) {
      const chdbSql = QUERIES(chdbDb)[i] as string;
      const settings = Object.entries(JSON_SETTINGS)
        .map(([k, v]) => `${k} = ${v}`)
        .join(', ');
      const embedded = session.query(`${chdbSql} SETTINGS ${settings}`, 'JSONEachRow');
      const server = await serverAnswer(serverSql);
      expect(embedded.trim().length).toBeGreaterThan(0);
      expect(embedded).toBe(server);
    }
  });

  it('its errors map to the same typed error as the server', () => {
    let caught: unknown;
    try {
      session.query(`SELECT * FROM ${chdbDb}.no_such_table`, 'JSONEachRow');
    } catch (e) {
      caught = e;
    }
    expect(toClickHouseError(caught)).toMatchObject({ code: 60, type: 'UNKNOWN_TABLE' });
  });
});
