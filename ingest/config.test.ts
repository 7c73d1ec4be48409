// Residency fails closed (policy section 6): a zone the residency rule binds to a country has its personal
// and rejects topics on a cluster of its own, or ingest (and the topic plan, which reads the same
// settings) refuses to start with one line naming the zone. The negative controls: a complete per-zone
// setup, and the explicit single-cluster switch, both start.
import { describe, expect, it } from 'vitest';
import { ConfigError } from '../runtime/index.ts';
import { RESIDENCY, ZONES, type Zone } from '../schemas/index.ts';
import { loadIngestConfig, RESIDENCY_ZONES, zoneBrokers, zonesSharingMainCluster } from './config.ts';

const MAIN = 'main-1:9092,main-2:9092';
const OWN: Record<string, string> = {
  PIPELINE_KAFKA_BROKERS: MAIN,
  INGEST_ZONE_BROKERS_CN: 'cn-1:9092,cn-2:9092',
  INGEST_ZONE_BROKERS_RU: 'ru-1:9092',
  INGEST_ZONE_BROKERS_IN: 'in-1:9092',
};
const SETTING = { cn: 'INGEST_ZONE_BROKERS_CN', ru: 'INGEST_ZONE_BROKERS_RU', in: 'INGEST_ZONE_BROKERS_IN' } as Record<Zone, string>;

/** The ConfigError `loadIngestConfig(env)` throws, or undefined when it starts. */
function refusal(env: Record<string, string>): ConfigError | undefined {
  try {
    loadIngestConfig(env);
    return undefined;
  } catch (e) {
    if (e instanceof ConfigError) return e;
    throw e;
  }
}

describe('residency zones', () => {
  it('are the zones the residency map assigns by SIM or region, without its fallback: cn, ru, in (row is bound to no country)', () => {
    expect(RESIDENCY_ZONES).toEqual(['cn', 'ru', 'in']);
    expect(RESIDENCY.fallback).toBe('row');
    expect(ZONES.filter((z) => !RESIDENCY_ZONES.includes(z))).toEqual(['row']);
  });
});

describe('a residency zone without a cluster of its own', () => {
  it('negative control: every bound zone on its own cluster starts, and each zone goes to its own brokers (row to the main cluster)', () => {
    expect(refusal(OWN)).toBeUndefined();
    expect(zoneBrokers(loadIngestConfig(OWN))).toEqual({
      cn: ['cn-1:9092', 'cn-2:9092'],
      ru: ['ru-1:9092'],
      in: ['in-1:9092'],
      row: ['main-1:9092', 'main-2:9092'],
    });
    expect(zonesSharingMainCluster(loadIngestConfig(OWN))).toEqual([]);
  });

  it.each(['cn', 'ru', 'in'] as const)('%s missing: refused with one line naming that zone and only that one', (zone) => {
    const env = { ...OWN };
    delete env[SETTING[zone]];
    const e = refusal(env);
    expect(e).toBeDefined();
    expect(e!.problems).toHaveLength(1);
    expect(e!.message).not.toContain('\n');
    expect(e!.problems[0]).toMatch(new RegExp(`^residency \\(policy section 6\\): ${SETTING[zone]} is empty \\(zone ${zone}, [A-Z][\\w ]+\\);`));
    for (const other of RESIDENCY_ZONES.filter((z) => z !== zone)) expect(e!.problems[0]).not.toContain(SETTING[other]);
    expect(e!.problems[0]).toContain('INGEST_ZONES_SHARE_MAIN_CLUSTER=true');
  });

  it('an empty value counts as missing', () => {
    expect(refusal({ ...OWN, INGEST_ZONE_BROKERS_RU: '' })?.problems[0]).toContain('INGEST_ZONE_BROKERS_RU is empty (zone ru, Russia)');
  });

  it('all missing (the old silent fallback): one line naming the three zones', () => {
    const e = refusal({ PIPELINE_KAFKA_BROKERS: MAIN });
    expect(e!.problems).toHaveLength(1);
    expect(e!.message).toContain(
      'INGEST_ZONE_BROKERS_CN is empty (zone cn, Mainland China), INGEST_ZONE_BROKERS_RU is empty (zone ru, Russia), INGEST_ZONE_BROKERS_IN is empty (zone in, India)',
    );
    // The defaults are the same: no setting at all is refused too.
    expect(refusal({})?.problems).toHaveLength(1);
  });

  it('a zone list naming a broker of the main cluster is the same fallback, copied: refused, naming the zone and the broker', () => {
    const e = refusal({ ...OWN, INGEST_ZONE_BROKERS_IN: 'in-1:9092,main-2:9092' });
    expect(e!.problems).toEqual([expect.stringContaining('INGEST_ZONE_BROKERS_IN names main-2:9092 of PIPELINE_KAFKA_BROKERS (zone in, India)')]);
    expect(e!.problems[0]).not.toMatch(/INGEST_ZONE_BROKERS_(CN|RU)/);
  });

  it('row is never refused: the policy binds no country to it, so it may live on the main cluster', () => {
    expect(refusal({ ...OWN, INGEST_ZONE_BROKERS_ROW: '' })).toBeUndefined();
    expect(zoneBrokers(loadIngestConfig({ ...OWN, INGEST_ZONE_BROKERS_ROW: 'row-1:9092' })).row).toEqual(['row-1:9092']);
  });
});

describe('INGEST_ZONES_SHARE_MAIN_CLUSTER (single-cluster development and test setups)', () => {
  it('lets every zone without its own list use the main cluster, and says which zones share it', () => {
    const cfg = loadIngestConfig({ PIPELINE_KAFKA_BROKERS: MAIN, INGEST_ZONES_SHARE_MAIN_CLUSTER: 'true' });
    expect(zoneBrokers(cfg)).toEqual(Object.fromEntries(ZONES.map((z) => [z, ['main-1:9092', 'main-2:9092']])));
    expect(zonesSharingMainCluster(cfg)).toEqual(['cn', 'ru', 'in']);
  });

  it('keeps a zone list that is set', () => {
    const cfg = loadIngestConfig({ PIPELINE_KAFKA_BROKERS: MAIN, INGEST_ZONE_BROKERS_CN: 'cn-1:9092', INGEST_ZONES_SHARE_MAIN_CLUSTER: 'true' });
    expect(zoneBrokers(cfg).cn).toEqual(['cn-1:9092']);
    expect(zonesSharingMainCluster(cfg)).toEqual(['ru', 'in']);
  });

  it('is off by default, and false refuses like unset', () => {
    expect(refusal({ PIPELINE_KAFKA_BROKERS: MAIN, INGEST_ZONES_SHARE_MAIN_CLUSTER: 'false' })?.problems[0]).toMatch(/^residency/);
  });
});

describe('zoneBrokers fails closed on its own', () => {
  it('a settings object that bypassed loadIngestConfig with a bound zone emptied throws instead of falling back', () => {
    const cfg = { ...loadIngestConfig(OWN), INGEST_ZONE_BROKERS_RU: [] };
    expect(() => zoneBrokers(cfg)).toThrow(/INGEST_ZONE_BROKERS_RU is empty \(zone ru, Russia\)/);
    expect(zoneBrokers({ ...cfg, INGEST_ZONES_SHARE_MAIN_CLUSTER: true }).ru).toEqual(['main-1:9092', 'main-2:9092']);
  });
});
