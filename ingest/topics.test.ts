import { describe, expect, it } from 'vitest';
import { CATEGORIES, compileSplit, DAY_MS, personalRetentionClasses, ZONES } from '../schemas/index.ts';
import { loadIngestConfig, type IngestConfig } from './config.ts';
import { DEFAULT_PLAN_OPTIONS, ingestPlanOptions, topicPlan } from './topics.ts';

const cfg = loadIngestConfig({
  PIPELINE_KAFKA_BROKERS: 'main:9092',
  INGEST_ZONE_BROKERS_CN: 'cn1:9092,cn2:9092',
  INGEST_ZONE_BROKERS_RU: 'ru1:9092',
  INGEST_ZONE_BROKERS_IN: 'in1:9092',
});

describe('topic plan', () => {
  const plan = topicPlan(cfg);

  it('has the events topic, one personal topic per residency zone and retention class, one rejects and one rights topic per zone', () => {
    expect(plan.map((t) => t.topic).sort()).toEqual(
      [
        'telemetry.events.v1',
        ...ZONES.flatMap((z) => [`telemetry.personal.${z}.p30d`, `telemetry.personal.${z}.p7d`]),
        ...ZONES.map((z) => `telemetry.rejects.${z}`),
        ...ZONES.map((z) => `telemetry.rights.${z}`),
      ].sort(),
    );
  });

  it('has a topic for every retention class the split writes (schemas/personal.ts), none the map lacks', () => {
    const planned = new Set(plan.filter((t) => t.kind === 'personal').map((t) => t.topic.split('.').pop()));
    expect([...planned].sort()).toEqual(
      personalRetentionClasses()
        .map((c) => c.name)
        .sort(),
    );
    for (const c of compileSplit().personalClasses) expect(planned.has(c.name), c.name).toBe(true);
  });

  it('puts each residency zone on its own cluster (policy section 6), row and the events on the main one', () => {
    const own: Record<string, string[]> = { cn: ['cn1:9092', 'cn2:9092'], ru: ['ru1:9092'], in: ['in1:9092'] };
    for (const t of plan) expect(t.brokers, t.topic).toEqual(t.zone === undefined ? ['main:9092'] : (own[t.zone] ?? ['main:9092']));
  });

  it('cannot place a residency zone on the main cluster silently: a settings object without its brokers throws, naming it', () => {
    const noRu: IngestConfig = { ...cfg, INGEST_ZONE_BROKERS_RU: [] };
    expect(() => topicPlan(noRu)).toThrow(/INGEST_ZONE_BROKERS_RU is empty \(zone ru, Russia\)/);
    // Negative control: the explicit single-cluster switch places it on the main cluster.
    const shared = topicPlan({ ...noRu, INGEST_ZONES_SHARE_MAIN_CLUSTER: true });
    expect(shared.filter((t) => t.zone === 'ru').map((t) => t.brokers)).toEqual([['main:9092'], ['main:9092'], ['main:9092'], ['main:9092']]);
  });

  it('takes retention from the category map: each personal topic its class (IP and precise location 7 days), rejects = unclassified', () => {
    const days = (t: { configs: Record<string, string> }) => Number(t.configs['retention.ms']) / DAY_MS;
    for (const z of ZONES) {
      expect(days(plan.find((t) => t.topic === `telemetry.personal.${z}.p7d`)!)).toBe(7);
      expect(days(plan.find((t) => t.topic === `telemetry.personal.${z}.p30d`)!)).toBe(30);
    }
    expect([CATEGORIES.ip_address.retention, CATEGORIES.precise_location.retention]).toEqual(['P7D', 'P7D']);
    expect(plan.find((t) => t.topic === 'telemetry.personal.cn.p7d')!.why).toMatch(/precise_location, ip_address/);
    for (const t of plan.filter((x) => x.kind === 'rejects'))
      expect(Number(t.configs['retention.ms'])).toBe(Number(/^P(\d+)D$/.exec(CATEGORIES.unclassified.retention)![1]) * DAY_MS);
    expect(plan.find((t) => t.kind === 'events')!.configs['retention.ms']).toBe(String(DEFAULT_PLAN_OPTIONS.eventsRetentionMs));
  });

  it('replicates 3 ways with min.insync.replicas 2 and no unclean election', () => {
    for (const t of plan) {
      expect(t.replicationFactor).toBe(3);
      expect(t.configs['min.insync.replicas']).toBe('2');
      expect(t.configs['unclean.leader.election.enable']).toBe('false');
    }
  });

  it('refuses settings that would make every acks=all produce fail, or keep facts past their category', () => {
    expect(() => topicPlan(cfg, { ...DEFAULT_PLAN_OPTIONS, replicationFactor: 1, minInsyncReplicas: 2 })).toThrow(/exceeds the replication factor/);
    expect(() => topicPlan(cfg, { ...DEFAULT_PLAN_OPTIONS, eventsRetentionMs: 800 * DAY_MS })).toThrow(/non-personal category retention/);
  });
});

describe('the plan ingest creates missing topics with (INGEST_TOPICS=create)', () => {
  it("takes ingest's own partitions, replication and retention settings, and sets only retention.ms, min.insync.replicas and CreateTime timestamps", () => {
    const own = loadIngestConfig({
      INGEST_TOPIC_PARTITIONS: '2',
      INGEST_TOPIC_REPLICATION: '1',
      INGEST_EVENTS_RETENTION_MS: String(3 * DAY_MS),
      INGEST_REJECTS_RETENTION_MS: String(2 * DAY_MS),
      INGEST_ZONES_SHARE_MAIN_CLUSTER: 'true',
    });
    const plan = topicPlan(own, ingestPlanOptions(own));
    const retention = (t: { kind: string; topic: string }) =>
      t.kind === 'personal' ? String((t.topic.endsWith('.p7d') ? 7 : 30) * DAY_MS) : String((t.kind === 'events' ? 3 : 2) * DAY_MS);
    // The rights topics: one partition, compacted, kept for good (the suppression list, rights/suppression.ts).
    for (const t of plan.filter((x) => x.kind === 'rights')) {
      expect([t.partitions, t.configs['cleanup.policy'], t.configs['retention.ms']]).toEqual([1, 'compact', '-1']);
    }
    for (const t of plan.filter((x) => x.kind !== 'rights')) {
      expect([t.partitions, t.replicationFactor]).toEqual([2, 1]);
      expect(t.configs).toEqual({ 'retention.ms': retention(t), 'min.insync.replicas': '1', 'message.timestamp.type': 'CreateTime' });
    }
  });

  it('requires two in-sync replicas from replication 3 on (acks=all is only as strong as the ISR), one below', () => {
    const isr = (replication: number) =>
      ingestPlanOptions(loadIngestConfig({ INGEST_TOPIC_REPLICATION: String(replication), INGEST_ZONES_SHARE_MAIN_CLUSTER: 'true' })).minInsyncReplicas;
    expect([1, 2, 3, 5].map(isr)).toEqual([1, 1, 2, 2]);
  });
});
