import { describe, expect, it } from 'vitest';
import { ConfigError, defineSettings, loadConfig, settingsTable } from './config.ts';

const spec = defineSettings({
  SVC_PORT: { kind: 'int', min: 1, max: 65535, default: 8080, doc: 'port' },
  SVC_MODE: { kind: 'enum', values: ['a', 'b'] as const, default: 'a', doc: 'mode' },
  SVC_BROKERS: { kind: 'list', minItems: 1, default: ['x:1'], doc: 'brokers' },
  SVC_DEBUG: { kind: 'bool', default: false, doc: 'debug' },
  SVC_KEY: { kind: 'string', secret: true, doc: 'a required secret' },
});

function problems(env: Record<string, string>): string[] {
  try {
    loadConfig(spec, { prefixes: ['SVC_'], env });
  } catch (e) {
    if (e instanceof ConfigError) return e.problems;
    throw e;
  }
  return [];
}

describe('loadConfig', () => {
  it('applies defaults and parses typed values', () => {
    const c = loadConfig(spec, { prefixes: ['SVC_'], env: { SVC_KEY: 'k', SVC_PORT: '99', SVC_MODE: 'b', SVC_BROKERS: 'a:1, b:2', SVC_DEBUG: 'yes' } });
    expect(c).toEqual({ SVC_KEY: 'k', SVC_PORT: 99, SVC_MODE: 'b', SVC_BROKERS: ['a:1', 'b:2'], SVC_DEBUG: true });
    const d = loadConfig(spec, { prefixes: ['SVC_'], env: { SVC_KEY: 'k' } });
    expect(d.SVC_PORT).toBe(8080);
  });

  it('rejects an unknown variable under its prefix and suggests the nearest', () => {
    expect(problems({ SVC_KEY: 'k', SVC_PROT: '1' })).toEqual(['SVC_PROT is not a known setting (did you mean SVC_PORT?)']);
  });

  it('ignores variables outside its prefixes', () => {
    expect(problems({ SVC_KEY: 'k', OTHER_THING: '1' })).toEqual([]);
  });

  it('names each invalid value and what was expected', () => {
    expect(problems({ SVC_KEY: 'k', SVC_PORT: '70000', SVC_MODE: 'c', SVC_DEBUG: 'maybe' })).toEqual([
      'SVC_PORT="70000": expected a value <= 65535',
      'SVC_MODE="c": expected one of a, b',
      'SVC_DEBUG="maybe": expected true or false',
    ]);
    expect(problems({ SVC_KEY: 'k', SVC_PORT: '1.5' })).toEqual(['SVC_PORT="1.5": expected an integer']);
  });

  it('requires settings without default and never echoes a secret', () => {
    expect(problems({})).toEqual(['SVC_KEY is required: a required secret']);
    const s2 = defineSettings({ SVC_KEY: { kind: 'int', secret: true, doc: 'k' } });
    try {
      loadConfig(s2, { prefixes: ['SVC_'], env: { SVC_KEY: 'hunter2' } });
      expect.unreachable();
    } catch (e) {
      expect(String(e)).not.toContain('hunter2');
    }
  });

  it('renders a markdown table with defaults', () => {
    const t = settingsTable(spec);
    expect(t).toContain('| `SVC_PORT` | int | `8080` | port |');
    expect(t).toContain('| `SVC_KEY` | string | *required* | a required secret |');
    expect(t).toContain('`a` \\| `b`');
  });
});
