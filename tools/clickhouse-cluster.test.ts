import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { listMigrations, statements } from '../aggregator/migrate.ts';
import { CLUSTER_DDL_FILE, clusterDdl, DEFAULT_CLUSTER_OPTIONS } from './clickhouse-cluster.ts';
import { parseError } from '../testing/clickhouse-parse.ts';

describe('ClickHouse cluster DDL', () => {
  const text = readFileSync(CLUSTER_DDL_FILE, 'utf8');
  const stmts = statements(text);

  it('is current: the checked-in file is what `npm run cluster:ddl` generates from the migrations', () => {
    expect(text).toBe(clusterDdl());
  });

  it('parses with the ClickHouse parser, statement by statement (and the check rejects a broken one)', () => {
    expect(stmts.length).toBeGreaterThanOrEqual(7);
    for (const s of stmts) expect(parseError(s), s.slice(0, 80)).toBe('');
    // negative control: the same check on a statement missing its closing parenthesis fails
    expect(parseError(stmts[1]!.replace(/\)\s*ENGINE/, ' ENGINE'))).toMatch(/Syntax error/);
  });

  it('runs every statement on the whole cluster and replicates every stored table', () => {
    for (const s of stmts) expect(s).toMatch(/ON CLUSTER '\{cluster\}'/);
    const engines = stmts.flatMap((s) => [...s.matchAll(/ENGINE = (\w+)/g)].map((m) => m[1]!));
    expect(engines.filter((e) => /MergeTree$/.test(e) && !e.startsWith('Replicated'))).toEqual([]);
    expect(engines).toContain('ReplicatedAggregatingMergeTree');
  });

  it('keeps the names the aggregator and the dashboards use, as Distributed tables over every shard', () => {
    const db = DEFAULT_CLUSTER_OPTIONS.database;
    for (const t of ['facts_in', 'daily_agg']) {
      expect(
        stmts.some((s) => s.startsWith(`CREATE TABLE IF NOT EXISTS ${db}.${t} ON CLUSTER`) && /ENGINE = Distributed\(/.test(s)),
        t,
      ).toBe(true);
    }
    for (const v of ['daily_active_devices', 'crash_rates', 'daily_active_devices_by_app', 'crash_rates_by_app_version']) {
      const s = stmts.find((x) => x.startsWith(`CREATE OR REPLACE VIEW ${db}.${v} `));
      expect(s, v).toBeDefined();
      expect(s).toMatch(new RegExp(`FROM ${db}\\.daily_agg\\n`)); // the Distributed table, not one shard's
    }
    const mv = stmts.find((s) => s.includes('MATERIALIZED VIEW'))!;
    expect(mv).toMatch(/TO analytics\.daily_agg_local AS/);
    expect(mv).toMatch(/FROM analytics\.facts_in_local\n/);
  });

  it('retention becomes a TTL on the replicated table (the sweep sees no parts through Distributed)', () => {
    expect(text).toContain(`TTL day + INTERVAL ${DEFAULT_CLUSTER_OPTIONS.retentionDays} DAY`);
  });

  it('for 18.x servers (the local cluster): no TTL, views dropped and created, still every statement ON CLUSTER', () => {
    const old = clusterDdl({ ...DEFAULT_CLUSTER_OPTIONS, serverMajor: 18 });
    const olds = statements(old);
    expect(old).not.toMatch(/\bTTL\b|ttl_only_drop_parts|OR REPLACE/);
    for (const s of olds) expect(s).toMatch(/ON CLUSTER '\{cluster\}'/);
    const views = olds.filter((s) => s.startsWith('CREATE VIEW ')).map((s) => /^CREATE VIEW (\S+)/.exec(s)![1]);
    expect(views.length).toBeGreaterThanOrEqual(4);
    for (const v of views) expect(olds).toContain(`DROP TABLE IF EXISTS ${v} ON CLUSTER '{cluster}'`);
    // The tables are the same as for a current server, but for the TTL.
    const tables = (t: string[]) => t.filter((s) => s.startsWith('CREATE TABLE')).map((s) => s.replace(/\nTTL[\s\S]*$/, ''));
    expect(tables(olds)).toEqual(tables(statements(clusterDdl())));
  });

  it('refuses a migration it cannot map instead of passing a non-replicated table through', () => {
    const extra = { name: '002_log', repeatable: false, text: 'CREATE TABLE IF NOT EXISTS {db}.audit (x UInt8) ENGINE = Log;' };
    expect(() => clusterDdl(DEFAULT_CLUSTER_OPTIONS, [...listMigrations(), extra])).toThrow(/engine Log has no cluster mapping/);
    const odd = { name: '003_alter', repeatable: false, text: 'ALTER TABLE {db}.daily_agg ADD COLUMN x UInt8;' };
    expect(() => clusterDdl(DEFAULT_CLUSTER_OPTIONS, [...listMigrations(), odd])).toThrow(/not handled by the cluster generator/);
  });
});
