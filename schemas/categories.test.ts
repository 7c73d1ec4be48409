/** The map's one calendar for retentions (categories.ts `retentionDays`), shared by ingest and the aggregator. */
import { describe, expect, it } from 'vitest';
import { CATEGORIES, DAY_MS, retentionDays, retentionMs } from './index.ts';

describe('retention periods', () => {
  it('count a year as 365 days, a month as 30, a week as 7', () => {
    expect(retentionDays('P1Y')).toBe(365);
    expect(retentionMs('P1Y')).toBe(365 * DAY_MS);
    expect(retentionDays('P25M')).toBe(750);
    expect(retentionDays('P2W')).toBe(14);
    expect(retentionDays('P30D')).toBe(30);
    expect(retentionDays('P0D')).toBe(0);
    expect(retentionDays('P1Y2M3W4D')).toBe(365 + 60 + 21 + 4);
  });

  it('refuse what no consumer can honour', () => {
    for (const p of ['30D', 'PT1H', 'P1.5Y', 'P-1D', '']) expect(() => retentionDays(p), p).toThrow(/unsupported ISO 8601 period/);
  });

  it('read every retention of the map', () => {
    for (const [name, c] of Object.entries(CATEGORIES)) expect(retentionMs(c.retention), name).toBe(retentionDays(c.retention) * DAY_MS);
  });
});
