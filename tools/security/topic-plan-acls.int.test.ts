// `npm run topics:plan -- --apply --acls` against a real secured cluster (the secured local stack, as
// the operator over SASL_SSL): it creates the topics and exactly the bindings of tools/security/acls.ts,
// and a second run changes nothing. The broker's own ACL listing is compared with the plan.
import { spawnSync } from 'node:child_process';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import kafkajs from 'kafkajs';
import { loadIngestConfig } from '../../ingest/config.ts';
import { DAY_MS } from '../../schemas/index.ts';
import { aclPlan, topicPlan } from '../topic-plan.ts';
import { loadStackConfig, REPO_ROOT } from '../../stack/config.ts';
import { upSecureStack } from '../../stack/stack.ts';
import { toKafkajsAcl } from './acls.ts';
import { deprovisionKafka, kafkaPasswordFile, secureKafka, secureKafkaBrokers, securePaths } from '../../stack/secure.ts';

const { AclResourceTypes, AclOperationTypes, AclPermissionTypes, ResourcePatternTypes } = kafkajs;
const config = loadStackConfig();
const run = `tp${Date.now().toString(36)}`;
const key = (principal: string, op: number, type: number, name: string, pattern: number) => `${principal} op=${op} type=${type} ${name} pattern=${pattern}`;

/** The bindings the broker holds on resources whose names start with `prefix`, as sorted keys. */
async function bindingsOf(admin: ReturnType<ReturnType<typeof secureKafka>['admin']>, prefix: string): Promise<string[]> {
  const described = await admin.describeAcls({
    resourceType: AclResourceTypes.ANY,
    resourcePatternType: ResourcePatternTypes.ANY,
    operation: AclOperationTypes.ANY,
    permissionType: AclPermissionTypes.ANY,
  });
  return described.resources
    .filter((r) => r.resourceName.startsWith(prefix))
    .flatMap((r) => r.acls.map((a) => key(a.principal, a.operation, r.resourceType, r.resourceName, r.resourcePatternType)))
    .sort();
}

beforeAll(async () => {
  await upSecureStack(config);
}, 180_000);

// The secured stack keeps its topics and ACLs between runs: this run's go with it (stack/secure.ts).
afterAll(async () => {
  await deprovisionKafka(config, run);
}, 60_000);

describe('topics:plan --apply --acls on a secured cluster', () => {
  it('creates the planned bindings, idempotently', async () => {
    const env = {
      PATH: process.env.PATH ?? '',
      HOME: process.env.HOME ?? '',
      PIPELINE_KAFKA_SECURITY: 'sasl_ssl',
      PIPELINE_KAFKA_SASL_USERNAME: 'operator',
      PIPELINE_KAFKA_SASL_PASSWORD_FILE: kafkaPasswordFile(config, 'operator'),
      PIPELINE_KAFKA_TLS_CA_FILE: securePaths(config).caCert,
      PIPELINE_TOPIC_EVENTS: `${run}.events`,
      PIPELINE_TOPIC_PERSONAL_PREFIX: `${run}.personal.`,
      PIPELINE_TOPIC_REJECTS_PREFIX: `${run}.rejects.`,
      PIPELINE_TOPIC_RIGHTS_PREFIX: `${run}.rights.`,
      // The secured local stack is one Kafka cluster: every zone's topics share it.
      INGEST_ZONES_SHARE_MAIN_CLUSTER: 'true',
    };
    const args = [
      '--import',
      'tsx',
      'tools/topic-plan.ts',
      '--apply',
      '--acls',
      '--aggregator-group',
      `${run}-agg`,
      '--brokers',
      secureKafkaBrokers(config).join(','),
      '--partitions',
      '1',
      '--replication',
      '1',
      '--min-insync',
      '1',
    ];
    const first = spawnSync(process.execPath, args, { cwd: REPO_ROOT, env, encoding: 'utf8', timeout: 90_000 });
    expect(first.status, first.stderr).toBe(0);
    expect(first.stdout).toMatch(/ACL binding\(s\) planned/);
    // events + per zone: personal p30d and p7d, rejects, rights.
    expect(first.stdout.match(/^create\s/gm)?.length).toBe(17);

    // What the broker holds for this run's resources equals the plan.
    const plan = aclPlan(
      topicPlan(loadIngestConfig({ ...env, PIPELINE_KAFKA_BROKERS: secureKafkaBrokers(config).join(',') }), {
        partitions: 1,
        replicationFactor: 1,
        minInsyncReplicas: 1,
        eventsRetentionMs: 7 * DAY_MS,
      }),
      { aggregatorGroup: `${run}-agg` },
    );
    const admin = secureKafka(config, 'operator').admin();
    await admin.connect();
    try {
      const planned = plan
        .filter((b) => b.resourceName.startsWith(run))
        .map(toKafkajsAcl)
        .map((a) => key(a.principal, a.operation, a.resourceType, a.resourceName, a.resourcePatternType))
        .sort();
      // The broker applies created bindings from its metadata log a moment after the controller
      // acknowledged them: read until it shows as many as the plan (15 s at most), then compare.
      const onBrokerNow = () => bindingsOf(admin, run);
      let onBroker = await onBrokerNow();
      for (const until = Date.now() + 15_000; onBroker.length < planned.length && Date.now() < until; onBroker = await onBrokerNow()) {
        await new Promise((r) => setTimeout(r, 250));
      }
      expect(planned.length).toBeGreaterThan(20);
      expect(onBroker).toEqual(planned);
    } finally {
      await admin.disconnect();
    }

    const second = spawnSync(process.execPath, args, { cwd: REPO_ROOT, env, encoding: 'utf8', timeout: 90_000 });
    expect(second.status, second.stderr).toBe(0);
    expect(second.stdout.match(/^unchanged\s/gm)?.length).toBe(17);
  });

  it("deprovisionKafka removes the run's topics and bindings, and nothing of the stack's own", async () => {
    const admin = secureKafka(config, 'operator').admin();
    await admin.connect();
    try {
      // The stack's own names (other files may make and delete theirs meanwhile, so only these are compared).
      const stackTopics = (await admin.listTopics()).filter((t) => t.startsWith('telemetry'));
      const stackBindings = await bindingsOf(admin, 'telemetry');
      expect((await admin.listTopics()).filter((t) => t.startsWith(run))).toHaveLength(17);
      expect(stackBindings.length).toBeGreaterThan(0);

      expect(await deprovisionKafka(config, run)).toHaveLength(17);
      // Deletions reach the broker's metadata a moment later, like creations above (15 s at most).
      const gone = async () => (await admin.listTopics()).every((t) => !t.startsWith(run)) && (await bindingsOf(admin, run)).length === 0;
      for (const until = Date.now() + 15_000; !(await gone()) && Date.now() < until;) await new Promise((r) => setTimeout(r, 250));
      expect((await admin.listTopics()).filter((t) => t.startsWith(run))).toEqual([]);
      expect(await bindingsOf(admin, run)).toEqual([]);
      // The control: the stack's own topics and bindings stay.
      expect((await admin.listTopics()).filter((t) => t.startsWith('telemetry')).sort()).toEqual(stackTopics.sort());
      expect(await bindingsOf(admin, 'telemetry')).toEqual(stackBindings);
    } finally {
      await admin.disconnect();
    }
  }, 60_000);
});
