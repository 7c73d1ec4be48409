import { describe, expect, it } from 'vitest';
import { QueryArgumentError } from './errors.ts';
import { buildReportSql, formatReport, parseCommandLine, parseQueryArgs, sqlString } from './query.ts';

const code = (argv: string[]) => {
  try {
    parseQueryArgs(argv);
  } catch (e) {
    if (e instanceof QueryArgumentError) return e.code;
    throw e;
  }
  return 'ok';
};

describe('parseQueryArgs', () => {
  it('parses a full command line', () => {
    expect(parseQueryArgs(['crash-rate', '--from', '2026-01-01', '--to=2026-01-07', '--app', 'com.x', '--by', 'day,country', '--format', 'csv'])).toEqual({
      report: 'crash-rate',
      from: 20454,
      to: 20460,
      app: 'com.x',
      by: ['day', 'country'],
      format: 'csv',
    });
    expect(parseQueryArgs(['dau', '--from', '2026-01-01', '--to', '2026-01-01', '--by', 'none']).by).toEqual([]);
  });
  it('gives a clear error for each kind of mistake', () => {
    expect(code([])).toBe('AGG_BAD_ARGUMENT');
    expect(code(['mau', '--from', '2026-01-01', '--to', '2026-01-01'])).toBe('AGG_BAD_ARGUMENT');
    expect(code(['dau', '--from', '2026-01-01'])).toBe('AGG_BAD_ARGUMENT');
    expect(code(['dau', '--from', '2026-02-30', '--to', '2026-03-01'])).toBe('AGG_BAD_DAY');
    expect(code(['dau', '--from', '2026-03-02', '--to', '2026-03-01'])).toBe('AGG_BAD_DAY');
    expect(code(['dau', '--from', '2026-03-01', '--to', '2026-03-01', '--by', 'day,imei'])).toBe('AGG_BAD_DIMENSION');
    expect(code(['dau', '--from', '2026-03-01', '--to', '2026-03-01', '--format', 'xml'])).toBe('AGG_BAD_ARGUMENT');
    expect(code(['dau', '--from', '2026-03-01', '--to', '2026-03-01', '--bogus', '1'])).toBe('AGG_BAD_ARGUMENT');
    expect(() => parseQueryArgs(['dau', '--from', '2026-03-01', '--to', '2026-03-01', '--by', 'day,imei'])).toThrow(/unknown dimension "imei"/);
  });
});

describe('parseCommandLine', () => {
  const base = ['dau', '--from', '2026-01-01', '--to', '2026-01-01'];
  it('answers privately by default, with --epsilon or the views default, and exactly only when asked', () => {
    expect(parseCommandLine(base).mode).toEqual({ exact: false });
    expect(parseCommandLine([...base, '--epsilon', '0.25']).mode).toEqual({ exact: false, epsilon: 0.25 });
    expect(parseCommandLine([...base, '--epsilon=1']).mode).toEqual({ exact: false, epsilon: 1 });
    expect(parseCommandLine([...base, '--exact']).mode).toEqual({ exact: true });
    expect(parseCommandLine([...base, '--exact']).req.report).toBe('dau');
  });
  it('refuses a bad epsilon, and --exact with --epsilon', () => {
    for (const bad of ['0', '-1', 'abc', '1e9x', '']) expect(() => parseCommandLine([...base, '--epsilon', bad])).toThrow(/--epsilon/);
    expect(() => parseCommandLine([...base, '--epsilon'])).toThrow(/expected a positive number/);
    expect(() => parseCommandLine([...base, '--exact', '--epsilon', '1'])).toThrow(/exclude each other/);
  });
});

describe('buildReportSql', () => {
  it('sums released cells of the views only (no k, no raw states), and escapes the app id', () => {
    const sql = buildReportSql('analytics_views', { report: 'dau', from: 20454, to: 20460, by: ['country'], format: 'json', app: "o'neil\\" });
    expect(sql).toContain('FROM analytics_views.crash_rates WHERE');
    expect(sql).toContain('GROUP BY country');
    expect(sql).not.toMatch(/daily_agg|uniqExact|Merge|>=\s*\d+\s*$/m);
    expect(sql).toContain(`app_id = ${sqlString("o'neil\\")}`);
    expect(sqlString("o'neil\\")).toBe("'o\\'neil\\\\'");
  });
});

describe('formatReport', () => {
  const rows = [
    { day: '2026-01-01', active_devices: 7 },
    { day: '2026-01-02', active_devices: 12 },
  ];
  it('prints csv, json and an aligned table', () => {
    expect(formatReport(rows, 'csv')).toBe('day,active_devices\n2026-01-01,7\n2026-01-02,12');
    expect(JSON.parse(formatReport(rows, 'json'))).toEqual(rows);
    expect(formatReport(rows, 'table').split('\n')[0]).toBe('day         active_devices');
  });
});
