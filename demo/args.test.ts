import { describe, expect, it } from 'vitest';
import { DEMO_DEFAULTS, parseDemoArgs } from './args.ts';
import { DemoError } from './errors.ts';

describe('npm run demo arguments', () => {
  it('defaults finish in about a minute on a 2-core box; options override them', () => {
    expect(parseDemoArgs([])).toEqual(DEMO_DEFAULTS);
    expect(DEMO_DEFAULTS.durationS).toBeLessThanOrEqual(45);
    expect(parseDemoArgs(['--duration', '60', '--rate=2000', '--devices', '5000', '--keep', '--port-base', '20000'])).toEqual({
      ...DEMO_DEFAULTS,
      durationS: 60,
      rate: 2000,
      devices: 5000,
      keep: true,
      portBase: 20000,
    });
  });

  it.each([
    [['--duration'], /--duration needs a value/],
    [['--duration', '0'], /expected 1\.\.3600/],
    [['--rate', 'fast'], /expected a whole number/],
    [['--keep=yes'], /--keep takes no value/],
    [['--devise', '10'], /unknown argument "--devise"/],
  ])('%j is refused with a clear line and the usage', (argv, msg) => {
    let err: unknown;
    try {
      parseDemoArgs(argv);
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(DemoError);
    expect((err as DemoError).code).toBe('DEMO_BAD_ARGUMENT');
    expect((err as Error).message).toMatch(msg);
    expect((err as Error).message).toContain('usage: npm run demo');
  });
});
