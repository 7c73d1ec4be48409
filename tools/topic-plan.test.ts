import { describe, expect, it } from 'vitest';
import { loadIngestConfig } from '../ingest/config.ts';
import { CATEGORIES } from '../schemas/categories.ts';
import { ZONES } from '../schemas/contract.ts';
import { DEFAULT_PLAN_OPTIONS, diffTopic, formatPlan, parseArgs, topicPlan } from './topic-plan.ts';

const DAY = 86_400_000;
const cfg = loadIngestConfig({ PIPELINE_KAFKA_BROKERS: 'main:9092', INGEST_ZONE_BROKERS_CN: 'cn1:9092,cn2:9092' });

describe('topic plan', () => {
  const plan = topicPlan(cfg);

  it('has the events topic and one personal and one rejects topic per residency zone', () => {
    expect(plan.map((t) => t.topic).sort()).toEqual(
      ['telemetry.events.v1', ...ZONES.map((z) => `telemetry.personal.${z}`), ...ZONES.map((z) => `telemetry.rejects.${z}`)].sort(),
    );
  });

  it('puts a zone with its own cluster on that cluster (policy 6) and the rest on the main one', () => {
    for (const t of plan) {
      if (t.zone === 'cn') expect(t.brokers).toEqual(['cn1:9092', 'cn2:9092']);
      else expect(t.brokers).toEqual(['main:9092']);
    }
  });

  it('takes retention from the category map: personal = longest stored personal category, rejects = unclassified', () => {
    const personal = Object.values(CATEGORIES).filter((c) => c.personal && c.retention !== 'P0D').map((c) => c.retention);
    expect(personal).toContain('P30D');
    const longest = Math.max(...personal.map((r) => Number(/^P(\d+)D$/.exec(r)![1]) * DAY));
    for (const t of plan.filter((x) => x.kind === 'personal')) expect(Number(t.configs['retention.ms'])).toBe(longest);
    for (const t of plan.filter((x) => x.kind === 'rejects')) expect(Number(t.configs['retention.ms'])).toBe(Number(/^P(\d+)D$/.exec(CATEGORIES.unclassified.retention)![1]) * DAY);
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
    expect(() => topicPlan(cfg, { ...DEFAULT_PLAN_OPTIONS, eventsRetentionMs: 800 * DAY })).toThrow(/non-personal category retention/);
  });

  it('prints the ACL hook so nobody mistakes an empty ACL plan for a secured cluster', () => {
    expect(formatPlan(plan)).toMatch(/ACLs: none planned/);
  });
});

describe('diffTopic (what --apply does)', () => {
  const want = topicPlan(cfg)[0]!;
  const same = { partitions: want.partitions, replicationFactor: want.replicationFactor, configs: { ...want.configs, 'segment.bytes': '1' } };

  it('creates a missing topic and leaves a matching one alone (idempotent)', () => {
    expect(diffTopic(want, undefined, { growPartitions: false })).toEqual([{ topic: want.topic, action: 'create' }]);
    expect(diffTopic(want, same, { growPartitions: false })).toEqual([{ topic: want.topic, action: 'unchanged' }]);
  });

  it('restores a retention someone changed', () => {
    const a = diffTopic(want, { ...same, configs: { ...same.configs, 'retention.ms': '1' } }, { growPartitions: false });
    expect(a).toEqual([{ topic: want.topic, action: 'alter_configs', changes: [`retention.ms: 1 -> ${want.configs['retention.ms']}`] }]);
  });

  it('grows partitions only when asked, and reports what it cannot fix', () => {
    expect(diffTopic(want, { ...same, partitions: 3 }, { growPartitions: false })[0]!.action).toBe('conflict');
    expect(diffTopic(want, { ...same, partitions: 3 }, { growPartitions: true })).toEqual([{ topic: want.topic, action: 'add_partitions', from: 3, to: 12 }]);
    expect(diffTopic(want, { ...same, partitions: 24 }, { growPartitions: true })[0]!.action).toBe('conflict');
    expect(diffTopic(want, { ...same, replicationFactor: 1 }, { growPartitions: true })[0]!.action).toBe('conflict');
  });

  it('leaves a topic in conflict alone: min.insync.replicas 2 on a topic with one replica would stop every produce', () => {
    const rf1 = { ...same, replicationFactor: 1, configs: { ...same.configs, 'min.insync.replicas': '1' } };
    expect(diffTopic(want, rf1, { growPartitions: true }).map((a) => a.action)).toEqual(['conflict']);
  });
});

describe('parseArgs', () => {
  it('reads the flags and rejects unknown ones', () => {
    const a = parseArgs(['--apply', '--brokers', 'a:1,b:2', '--partitions', '6', '--replication', '1', '--min-insync', '1', '--events-retention-days', '3']);
    expect(a).toMatchObject({ apply: true, brokers: ['a:1', 'b:2'], options: { partitions: 6, replicationFactor: 1, minInsyncReplicas: 1, eventsRetentionMs: 3 * DAY } });
    expect(() => parseArgs(['--partition', '6'])).toThrow(/unknown argument/);
    expect(() => parseArgs(['--partitions', 'x'])).toThrow(/integer/);
  });
});
