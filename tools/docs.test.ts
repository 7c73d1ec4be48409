import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { aggregatorSettings } from '../aggregator/config.ts';
import { ingestSettings } from '../ingest/config.ts';
import { pipelineSettings } from '../runtime/pipeline-settings.ts';
import { CONFIG_SECTIONS, README, renderReadme } from './docs.ts';

describe('README configuration table', () => {
  const readme = readFileSync(README, 'utf8');

  it('is current (run `npm run docs` when this fails)', () => {
    expect(readme).toBe(renderReadme(readme));
  });

  it('lists every setting of every service, with its default, and no secret value', () => {
    for (const spec of [pipelineSettings, ingestSettings, aggregatorSettings]) {
      for (const name of Object.keys(spec)) expect(readme).toContain(`| \`${name}\` |`);
    }
    expect(readme).toContain('| `INGEST_PORT` | int | `18080` |');
    expect(readme).toMatch(/\| `AGGREGATOR_CLICKHOUSE_PASSWORD` \| string \| \*\(secret\)\* \|/);
  });

  it('negative control: a setting added to a spec makes the checked-in README stale', () => {
    const grown = CONFIG_SECTIONS.map((s, i) =>
      i === 1 ? { ...s, spec: { ...s.spec, INGEST_NEW_KNOB: { kind: 'int' as const, default: 1, doc: 'new' } } } : s,
    );
    expect(renderReadme(readme, grown)).not.toBe(readme);
    expect(renderReadme(readme, grown)).toContain('`INGEST_NEW_KNOB`');
  });

  it('refuses a README without the markers instead of appending somewhere', () => {
    expect(() => renderReadme('# x\n')).toThrow(/config-table:start/);
  });
});
