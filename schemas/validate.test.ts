/**
 * The named formats of validate.ts (schemas/README.md, "Formats"): what each accepts and refuses, and
 * that a format attribute naming no format fails instead of matching as a substring regex.
 */
import { describe, expect, it } from 'vitest';
import { compileCheck, formatRegExp, NAMED_FORMATS } from './validate.ts';

const cases: Record<string, { ok: string[]; bad: string[] }> = {
  app_id: {
    ok: ['com.miui.weather2', 'com.example.mail', 'org.telegram.messenger', 'Com.Ex_1.a'],
    bad: ['weather', '', 'com.', '.com.x', 'com..x', 'com.1x', '1com.x', 'com.miui weather', 'com.miui-weather', 'com.x\n', `a.${'b'.repeat(64)}`],
  },
  app_version: {
    ok: ['13.0.6.1', '8.0.40-beta1', '4.3.0-beta', '0', '1.0.0', '2.4.0'],
    bad: ['', 'v13', '13.0.6.1.2.3', '13..0', '13.0-', '13.0-beta 1', '1.0 (free text)', '1.0.0-beta-2', '1234567890'],
  },
  os_version: {
    ok: ['13', '14.0.3', 'MIUI 14.0.3', 'HyperOS 1.0.2', 'V14.0.3.0.TKHMIXM', '13-beta1', '12L'],
    bad: ['', 'Android', 'One UI 6.0', '13 (Alice phone)', 'MIUI  14', '13; DROP TABLE', '14.0.3 build by alice'],
  },
  device_name: {
    ok: ['Xiaomi', 'M2102J20SG', 'SM-A536B', 'Pixel 7', 'Redmi Note 12 Pro+', 'moto_g.5'],
    bad: ['', ' Xiaomi', 'Модель', 'a@b.c', 'model;imei=1', 'x'.repeat(65), 'tab\there'],
  },
};

describe('named formats', () => {
  it.each(Object.entries(cases))('%s accepts its examples and refuses free text', (name, { ok, bad }) => {
    const re = NAMED_FORMATS[name]!;
    for (const v of ok) expect([v, re.test(v)]).toEqual([v, true]);
    for (const v of bad) expect([v, re.test(v)]).toEqual([v, false]);
  });

  it('a check with a named format refuses with SCHEMA_BAD_FORMAT, naming the format', () => {
    const check = compileCheck({ type: 'string', format: 'app_id' }, { maxStringLength: 100, maxCollectionLength: 10 });
    expect(check('com.miui.weather2')).toBeUndefined();
    expect(check('weather')).toMatchObject({ reason: 'SCHEMA_BAD_FORMAT', detail: expect.stringMatching(/^does not match format app_id /) });
  });

  it('a bare word that names no format fails instead of matching as a regex (control: a regex source still works)', () => {
    expect(() => formatRegExp('app_identifier')).toThrowError(/unknown named format "app_identifier"/);
    expect(formatRegExp('^[0-9]{3}$').test('460')).toBe(true);
  });
});
