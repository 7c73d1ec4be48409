import { describe, expect, it } from 'vitest';
import { loadIngestConfig } from '../../ingest/config.ts';
import { topicPlan } from '../../ingest/topics.ts';
import { aclPlan, formatPlan, parseArgs } from '../topic-plan.ts';
import { aclRules, formatAclRules, toKafkajsAcl, type AclRule, type AclTopic } from './acls.ts';

const plan = topicPlan(loadIngestConfig({ INGEST_ZONES_SHARE_MAIN_CLUSTER: 'true' }));
const topics: AclTopic[] = plan.map((t) => ({ topic: t.topic, kind: t.kind, zone: t.zone }));
const rules = aclRules({ topics });
const of = (principal: string) => rules.filter((r) => r.principal === `User:${principal}`);
const reads = (r: AclRule[]) =>
  r
    .filter((x) => x.operation === 'read' && x.resourceType === 'topic')
    .map((x) => x.resourceName)
    .sort();

describe('aclRules: one principal per role, each allowed exactly its part', () => {
  it('ingest writes and describes every pipeline topic but the rights topics, which it only reads (its own groups)', () => {
    const ingest = of('ingest');
    const rights = topics.filter((t) => t.kind === 'rights').map((t) => t.topic);
    expect(rights).toEqual(['cn', 'ru', 'in', 'row'].map((z) => `telemetry.rights.${z}`));
    expect(
      ingest
        .filter((r) => r.operation === 'write')
        .map((r) => r.resourceName)
        .sort(),
    ).toEqual(
      topics
        .filter((t) => t.kind !== 'rights')
        .map((t) => t.topic)
        .sort(),
    );
    expect(ingest.filter((r) => r.operation === 'read' && r.resourceType === 'topic').map((r) => r.resourceName)).toEqual(rights);
    expect(ingest.filter((r) => r.resourceType === 'group').map((r) => [r.resourceName, r.patternType])).toEqual([['telemetry-ingest-rights-', 'prefixed']]);
    expect(ingest).toContainEqual({
      principal: 'User:ingest',
      resourceType: 'cluster',
      patternType: 'literal',
      resourceName: 'kafka-cluster',
      operation: 'idempotent_write',
    });
  });

  it('the aggregator reads the events topic only, and its own group', () => {
    expect(reads(of('aggregator'))).toEqual(['telemetry.events.v1']);
    expect(of('aggregator').filter((r) => r.operation !== 'read')).toEqual([]);
    expect(
      of('aggregator')
        .filter((r) => r.resourceType === 'group')
        .map((r) => [r.resourceName, r.patternType]),
    ).toEqual([['telemetry-aggregator', 'literal']]);
  });

  it("each zone principal reads its zone's personal and rejects topics only, never events", () => {
    for (const z of ['cn', 'ru', 'in', 'row']) {
      expect(reads(of(`zone-${z}`))).toEqual([`telemetry.personal.${z}.p30d`, `telemetry.personal.${z}.p7d`, `telemetry.rejects.${z}`]);
      expect(
        of(`zone-${z}`)
          .filter((r) => r.resourceType === 'group')
          .map((r) => [r.resourceName, r.patternType]),
      ).toEqual([[`telemetry-personal-${z}`, 'prefixed']]);
      expect(of(`zone-${z}`).some((r) => r.operation !== 'read')).toBe(false);
    }
  });

  it('grants nothing to anyone else (operator is a super user by broker config) and only literal topic names', () => {
    expect(new Set(rules.map((r) => r.principal))).toEqual(
      new Set(['User:ingest', 'User:aggregator', 'User:zone-cn', 'User:zone-ru', 'User:zone-in', 'User:zone-row']),
    );
    expect(rules.filter((r) => r.resourceType === 'topic' && r.patternType !== 'literal')).toEqual([]);
  });

  it('maps to kafkajs ACL entries (ALLOW, any host)', () => {
    expect(toKafkajsAcl(of('aggregator')[0]!)).toEqual({
      resourceType: 2,
      resourceName: 'telemetry.events.v1',
      resourcePatternType: 3,
      principal: 'User:aggregator',
      host: '*',
      operation: 3,
      permissionType: 3,
    });
    expect(formatAclRules(of('zone-cn'))).toContain('READ             group telemetry-personal-cn*');
  });
});

describe('topics:plan --acls uses the same list, per cluster', () => {
  it('is off unless asked, and then lists the bindings', () => {
    expect(parseArgs([]).acls).toBeUndefined();
    expect(parseArgs(['--acls', '--aggregator-group', 'g1']).acls).toEqual({ aggregatorGroup: 'g1' });
    expect(formatPlan(plan)).toMatch(/ACLs: none planned/);
    expect(formatPlan(plan, { acls: {} })).toContain(`${rules.length} ACL binding(s) planned`);
  });

  it('a zone on its own cluster gets its grants there, plus the cluster-wide ingest grant', () => {
    const split = topicPlan(loadIngestConfig({ INGEST_ZONE_BROKERS_CN: 'cn1:9092', INGEST_ZONES_SHARE_MAIN_CLUSTER: 'true' }));
    const bindings = aclPlan(split);
    const onCn = bindings.filter((b) => b.brokers.join(',') === 'cn1:9092');
    expect(reads(onCn.filter((b) => b.principal === 'User:zone-cn'))).toEqual([
      'telemetry.personal.cn.p30d',
      'telemetry.personal.cn.p7d',
      'telemetry.rejects.cn',
    ]);
    expect(onCn.filter((b) => b.principal === 'User:aggregator' && b.resourceType === 'topic')).toEqual([]);
    expect(onCn).toContainEqual(expect.objectContaining({ principal: 'User:ingest', operation: 'idempotent_write' }));
    expect(bindings.filter((b) => b.brokers.join(',') !== 'cn1:9092' && b.principal === 'User:zone-cn')).toEqual([]);
  });
});
