import { describe, expect, it } from 'vitest';
import { ConfigError, settingsTable } from '../runtime/config.ts';
import { aggregatorConfigSpec, loadAggregatorConfig } from './config.ts';
import { readFileSync } from 'node:fs';

describe('aggregator config', () => {
  it('has safe defaults and rejects unknown AGGREGATOR_ variables', () => {
    const c = loadAggregatorConfig({});
    expect(c.AGGREGATOR_MAX_LATENESS_DAYS).toBe(3);
    expect(c.AGGREGATOR_MIN_GROUP_DEVICES).toBe(5);
    expect(c.AGGREGATOR_RETENTION_DAYS).toBe(750);
    expect(c.AGGREGATOR_UNSAFE_COUNT_ROWS).toBe(false);
    expect(c.AGGREGATOR_TEST_STALL_AT).toBe('none');
    expect(() => loadAggregatorConfig({ AGGREGATOR_FLUSH_INTERVALL_MS: '5' })).toThrow(ConfigError);
  });
  it('is documented in the README (table generated from the spec)', () => {
    const readme = readFileSync(new URL('./README.md', import.meta.url), 'utf8');
    expect(readme).toContain(settingsTable(aggregatorConfigSpec));
  });
});
