import { describe, expect, it } from 'vitest';
import { listMigrations, majorVersion, renderMigration, runMigrations, statements } from './migrate.ts';

describe('migrations', () => {
  it('are versioned files in order, then repeatable ones', () => {
    const names = listMigrations().map((m) => m.name);
    expect(names[0]).toBe('001_daily_aggregates');
    expect(names.at(-1)).toBe('R_analyst_views');
  });
  it('bake k into the views and pick the view statement the server allows', () => {
    const views = listMigrations().find((m) => m.repeatable)!.text;
    const old = renderMigration(views, { database: 'db1', minGroupDevices: 7 }, majorVersion('18.16.1'));
    expect(old).toContain('CREATE VIEW db1.crash_rates');
    expect(old).toContain('WHERE active_devices >= 7');
    expect(renderMigration(views, { database: 'db1', minGroupDevices: 7 }, majorVersion('26.7.2.1'))).toContain('CREATE OR REPLACE VIEW db1.crash_rates');
    // Finest grain (crash_rates, daily_active_devices), the dashboard's roll-ups, and the threshold.
    const stmts = statements(old);
    expect(stmts.map((s) => /^CREATE VIEW db1\.(\w+)/.exec(s)?.[1])).toEqual([
      'crash_rates',
      'daily_active_devices',
      'daily_active_devices_by_app',
      'crash_rates_by_app_version',
      'release_policy',
    ]);
    // Each data view suppresses the released cell (day x all six dimensions) before any sum: k is
    // applied to a per-cell uniqExactMerge grouped by every dimension, never to a rolled-up group.
    for (const stmt of stmts.slice(1, 4)) {
      expect(stmt).toMatch(/GROUP BY day, app_id, app_version, device_model, os_version, country\s*\)\s*WHERE (active_devices|cell_devices) >= 7\b/);
      expect(stmt.match(/GROUP BY/g)!.length - 1).toBe(stmt.match(/\bsum\(/g) ? 1 : 0);
    }
    // crash_rates: the cells of daily_agg joined to their bounded session and crash counts (per device
    // least(count, bound) first, then summed per cell), and k applied after the join, to the cell.
    expect(stmts[0]).toMatch(/FROM db1\.daily_agg\s+GROUP BY day, app_id, app_version, device_model, os_version, country\s*\) AS cells\s+ANY LEFT JOIN/);
    expect(stmts[0]).toMatch(/sum\(least\(device_sessions, 5\)\) AS bounded_sessions/);
    expect(stmts[0]).toMatch(/AS bounds USING \(day, app_id, app_version, device_model, os_version, country\)\s*WHERE active_devices >= 7$/);
    expect(stmts[4]).toContain('toUInt32(7) AS min_group_devices');
    expect(stmts[4]).toContain('toUInt32(5) AS contribution_bound');
  });
  it('refuse to bake a threshold below 1 (a reader store carries none)', async () => {
    const db = { exec: async () => {}, rows: async <T>() => [{ v: '18.16.1' }] as T[] };
    await expect(runMigrations(db, { database: 'db1', minGroupDevices: 0 })).rejects.toThrow(/threshold of 0/);
  });
  it('write nothing personal: the only stored columns are dimensions and 16-byte hashes', () => {
    const sql = listMigrations()
      .map((m) => m.text)
      .join('\n')
      .toLowerCase();
    for (const personal of ['imei', 'device_id', 'ip', 'account', 'latitude', 'event_id ']) expect(sql).not.toMatch(new RegExp(`\\b${personal.trim()}\\b`));
  });
});
