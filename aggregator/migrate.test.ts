import { describe, expect, it } from 'vitest';
import { listMigrations, majorVersion, renderMigration, statements } from './migrate.ts';

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
    // Finest grain (daily_active_devices, crash_rates) and the dashboard's roll-ups, each k-suppressed.
    expect(statements(old)).toHaveLength(4);
    for (const stmt of statements(old)) expect(stmt).toMatch(/WHERE active_devices >= 7$/);
    expect(old).toContain('CREATE VIEW db1.daily_active_devices_by_app');
    expect(old).toContain('CREATE VIEW db1.crash_rates_by_app_version');
  });
  it('write nothing personal: the only stored columns are dimensions and 16-byte hashes', () => {
    const sql = listMigrations()
      .map((m) => m.text)
      .join('\n')
      .toLowerCase();
    for (const personal of ['imei', 'device_id', 'ip', 'account', 'latitude', 'event_id ']) expect(sql).not.toMatch(new RegExp(`\\b${personal.trim()}\\b`));
  });
});
