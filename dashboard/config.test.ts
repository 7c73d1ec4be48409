import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { settingsTable } from '../runtime/config.ts';
import { dashboardSettings, loadDashboardConfig } from './config.ts';

describe('dashboard config', () => {
  it('is documented in dashboard/README.md (table generated from the spec)', () => {
    const readme = readFileSync(new URL('./README.md', import.meta.url), 'utf8');
    expect(readme).toContain(settingsTable(dashboardSettings));
  });

  it('refuses an unknown DASHBOARD_ variable', () => {
    expect(loadDashboardConfig({}).DASHBOARD_PORT).toBe(18090);
    expect(() => loadDashboardConfig({ DASHBOARD_PORTT: '1' })).toThrow(/DASHBOARD_PORT/);
  });
});
