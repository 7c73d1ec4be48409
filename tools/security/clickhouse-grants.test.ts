// deploy/security/clickhouse-grants.sql (the SQL access-control equivalent of the 18.16 users.xml) must
// at least parse with a modern ClickHouse parser (chdb 26.x): documentation that cannot be run is
// documentation that rots. Placeholders are replaced by a well-formed hash first.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { statements } from '../../aggregator/migrate.ts';
import { parseError } from '../../testing/clickhouse-parse.ts';

const text = readFileSync(new URL('../../deploy/security/clickhouse-grants.sql', import.meta.url), 'utf8').replace(/<sha256 hex of [^>]+>/g, 'a'.repeat(64));

describe('clickhouse-grants.sql', () => {
  const stmts = statements(text);
  it('parses statement by statement with the ClickHouse 26.x parser (and the check rejects a broken one)', () => {
    expect(stmts.length).toBeGreaterThan(10);
    for (const s of stmts) expect(parseError(s), s.slice(0, 80)).toBe('');
    expect(parseError('GRANT SELEKT ON analytics.crash_rates TO analyst')).toMatch(/Syntax error/);
  });

  it('grants the analyst the released views and nothing else', () => {
    const views = ['daily_active_devices', 'crash_rates', 'daily_active_devices_by_app', 'crash_rates_by_app_version', 'release_policy'];
    const toAnalyst = stmts.filter((s) => /^GRANT .* TO analyst$/.test(s));
    expect(toAnalyst).toEqual([
      ...views.map((v) => `GRANT SELECT ON analytics.${v} TO analyst`),
      'GRANT SELECT, INSERT ON analytics.privacy_ledger TO analyst',
    ]);
    // Each runs as the definer, which alone may read the raw states.
    for (const v of views) expect(stmts).toContain(`ALTER TABLE analytics.${v} MODIFY SQL SECURITY DEFINER DEFINER = analytics_views_definer`);
  });
});
