// --apply against the real broker of the local stack: creates, is a no-op when run again, restores a
// config changed by hand. The local broker is a single node, so the plan runs with replication 1.
import kafkajs from 'kafkajs';
import { afterAll, describe, expect, it } from 'vitest';
import { loadIngestConfig } from '../ingest/config.ts';
import { createKafka, stackInfo, uniqueName } from '../testing/stack.ts';
import { DEFAULT_PLAN_OPTIONS, topicPlan } from '../ingest/topics.ts';
import { applyPlan } from './topic-plan.ts';

const { ConfigResourceTypes } = kafkajs;

describe('topic plan --apply on a real broker', () => {
  const prefix = uniqueName('topicplan');
  const cfg = loadIngestConfig({
    PIPELINE_KAFKA_BROKERS: stackInfo().kafkaBrokers.join(','),
    PIPELINE_TOPIC_EVENTS: `${prefix}.events`,
    PIPELINE_TOPIC_PERSONAL_PREFIX: `${prefix}.personal.`,
    PIPELINE_TOPIC_REJECTS_PREFIX: `${prefix}.rejects.`,
    PIPELINE_TOPIC_RIGHTS_PREFIX: `${prefix}.rights.`,
    // The local stack is one Kafka cluster: every zone's topics share it.
    INGEST_ZONES_SHARE_MAIN_CLUSTER: 'true',
  });
  const plan = topicPlan(cfg, { ...DEFAULT_PLAN_OPTIONS, partitions: 2, replicationFactor: 1, minInsyncReplicas: 1 });
  const admin = () => createKafka('topic-plan-test').admin();

  afterAll(async () => {
    const a = admin();
    await a.connect();
    await a.deleteTopics({ topics: plan.map((t) => t.topic) }).catch(() => undefined);
    await a.disconnect();
  });

  it('creates every topic, then changes nothing, then restores a retention changed by hand', async () => {
    const first = await applyPlan(plan, { growPartitions: false, admin });
    expect(first.map((a) => a.action)).toEqual(plan.map(() => 'create'));

    const a = admin();
    await a.connect();
    try {
      const md = await a.fetchTopicMetadata({ topics: plan.map((t) => t.topic) });
      const partitions = new Map(md.topics.map((t) => [t.name, t.partitions.length]));
      expect(plan.map((t) => partitions.get(t.topic))).toEqual(plan.map((t) => (t.kind === 'rights' ? 1 : 2)));

      // Retention per class, as the broker holds it: IP addresses and precise location (p7d) 7 days, the device record 30.
      const personalTopics = plan.filter((t) => t.kind === 'personal').map((t) => t.topic);
      const described = await a.describeConfigs({
        includeSynonyms: false,
        resources: personalTopics.map((name) => ({ type: ConfigResourceTypes.TOPIC, name })),
      });
      const days = Object.fromEntries(
        described.resources.map((r) => [r.resourceName, Number(r.configEntries.find((e) => e.configName === 'retention.ms')!.configValue) / 86_400_000]),
      );
      expect(Object.keys(days).sort()).toEqual(
        ['cn', 'in', 'row', 'ru'].flatMap((z) => [`${prefix}.personal.${z}.p30d`, `${prefix}.personal.${z}.p7d`]).sort(),
      );
      for (const [topic, d] of Object.entries(days)) expect(d, topic).toBe(topic.endsWith('.p7d') ? 7 : 30);

      const again = await applyPlan(plan, { growPartitions: false, admin });
      expect(again.map((x) => x.action)).toEqual(plan.map(() => 'unchanged'));

      const personal = plan.find((t) => t.kind === 'personal')!;
      await a.alterConfigs({
        validateOnly: false,
        resources: [{ type: ConfigResourceTypes.TOPIC, name: personal.topic, configEntries: [{ name: 'retention.ms', value: '3600000' }] }],
      });
      // The broker answers describeConfigs from its metadata, which takes the change a moment after the
      // controller acknowledged it (a run read the old value and the plan found nothing to restore).
      const retentionNow = async () =>
        (
          await a.describeConfigs({ includeSynonyms: false, resources: [{ type: ConfigResourceTypes.TOPIC, name: personal.topic }] })
        ).resources[0]!.configEntries.find((e) => e.configName === 'retention.ms')?.configValue;
      for (let i = 0; i < 100 && (await retentionNow()) !== '3600000'; i++) await new Promise((r) => setTimeout(r, 100));
      const fixed = await applyPlan(plan, { growPartitions: false, admin });
      expect(fixed.filter((x) => x.action !== 'unchanged')).toEqual([
        {
          topic: personal.topic,
          action: 'alter_configs',
          changes: expect.arrayContaining([`retention.ms: 3600000 -> ${personal.configs['retention.ms']}`]) as unknown as string[],
        },
      ]);
      const d = await a.describeConfigs({ includeSynonyms: false, resources: [{ type: ConfigResourceTypes.TOPIC, name: personal.topic }] });
      const entry = d.resources[0]!.configEntries.find((e) => e.configName === 'retention.ms');
      expect(entry?.configValue).toBe(personal.configs['retention.ms']);
    } finally {
      await a.disconnect();
    }
  });
});
