import { spawnSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { loadIngestConfig } from '../ingest/config.ts';
import { DAY_MS } from '../schemas/index.ts';
import { topicPlan } from '../ingest/topics.ts';
import { diffTopic, formatPlan, parseArgs } from './topic-plan.ts';

const cfg = loadIngestConfig({ PIPELINE_KAFKA_BROKERS: 'main:9092', INGEST_ZONE_BROKERS_CN: 'cn1:9092,cn2:9092', INGEST_ZONES_SHARE_MAIN_CLUSTER: 'true' });

describe('formatPlan', () => {
  const plan = topicPlan(cfg);

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
    expect(a).toMatchObject({
      apply: true,
      brokers: ['a:1', 'b:2'],
      options: { partitions: 6, replicationFactor: 1, minInsyncReplicas: 1, eventsRetentionMs: 3 * DAY_MS },
    });
    expect(() => parseArgs(['--partition', '6'])).toThrow(/unknown argument/);
    expect(() => parseArgs(['--partitions', 'x'])).toThrow(/integer/);
  });
});

describe('npm run topics:plan and residency (policy section 6)', () => {
  // Printing the plan contacts no broker; only the settings decide.
  const plan = (env: Record<string, string>) =>
    spawnSync(process.execPath, ['--import', 'tsx', 'tools/topic-plan.ts'], {
      cwd: fileURLToPath(new URL('..', import.meta.url)),
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', PIPELINE_KAFKA_BROKERS: 'main:9092', ...env },
      encoding: 'utf8',
      timeout: 60_000,
    });
  const errLines = (s: string) => s.split('\n').filter((l) => l.length > 0);

  it('refuses to plan a zone without brokers of its own: exit 2, one line naming it, no plan printed', () => {
    const r = plan({ INGEST_ZONE_BROKERS_CN: 'cn1:9092', INGEST_ZONE_BROKERS_RU: 'ru1:9092' });
    expect(r.status).toBe(2);
    expect(errLines(r.stderr)).toEqual([
      expect.stringMatching(/^topics:plan: residency \(policy section 6\): INGEST_ZONE_BROKERS_IN is empty \(zone in, India\);/),
    ]);
    expect(r.stderr).not.toMatch(/INGEST_ZONE_BROKERS_(CN|RU)/);
    expect(r.stdout).toBe('');
  });

  it('negative control: with every zone on its own cluster it prints the plan, each zone on its brokers', () => {
    const r = plan({ INGEST_ZONE_BROKERS_CN: 'cn1:9092', INGEST_ZONE_BROKERS_RU: 'ru1:9092', INGEST_ZONE_BROKERS_IN: 'in1:9092' });
    expect(r.status, r.stderr).toBe(0);
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/\| telemetry\.personal\.in\.p7d \| in1:9092 \|/);
    expect(r.stdout).toMatch(/\| telemetry\.personal\.row\.p30d \| main:9092 \|/);
  });

  it('the single-cluster switch plans the zones on the main cluster and says so on every run', () => {
    const r = plan({ INGEST_ZONES_SHARE_MAIN_CLUSTER: 'true' });
    expect(r.status, r.stderr).toBe(0);
    expect(errLines(r.stderr)).toEqual([expect.stringContaining('INGEST_ZONES_SHARE_MAIN_CLUSTER is on: zones cn, ru, in are planned on the main cluster')]);
    expect(r.stdout).toMatch(/\| telemetry\.personal\.cn\.p7d \| main:9092 \|/);
  });
});
