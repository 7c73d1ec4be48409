/**
 * `npm run topics:plan`: the Kafka topics of a real deployment (the plan is ingest/topics.ts, the same
 * one ingest creates missing topics from with INGEST_TOPICS=create), printed, and (with `--apply`)
 * created or brought back to the plan, idempotently.
 *
 *   npm run topics:plan                                   # print the plan (no broker contacted)
 *   npm run topics:plan -- --apply --brokers k1:9092,k2:9092,k3:9092
 *   npm run topics:plan -- --apply --acls ...               # also the ACL bindings (tools/security/acls.ts);
 *                                                            # connect as the operator with PIPELINE_KAFKA_SECURITY=sasl_ssl ...
 *   node dist/tools/topic-plan.js --apply ...    # the same from the image (compose, k8s Job)
 *
 * The zones cn, ru and in are planned on their own clusters (INGEST_ZONE_BROKERS_<ZONE>, policy section 6):
 * without them the command refuses with one line naming the zones, exactly as ingest does, unless
 * INGEST_ZONES_SHARE_MAIN_CLUSTER=true (single-cluster development and test setups) allows the main cluster.
 *
 * Ingest in production runs with INGEST_TOPICS=verify: it refuses to start when a topic is missing
 * instead of creating one with its single-node defaults. Retention, replication and min.insync.replicas
 * per topic, and why: ingest/topics.ts.
 */
import { pathToFileURL } from 'node:url';
import kafkajs, { type Admin, type ITopicConfig } from 'kafkajs';
import { ConfigError } from '../runtime/config.ts';
import { kafkaClientOptions } from '../runtime/kafka.ts';
import { aclRules, applyAclRules, formatAclRules, type AclRule } from './security/acls.ts';
import { loadIngestConfig, zonesSharingMainCluster, type IngestConfig } from '../ingest/config.ts';
import { DAY_MS } from '../schemas/index.ts';
import { days, DEFAULT_PLAN_OPTIONS, topicPlan, type PlannedTopic, type PlanOptions } from '../ingest/topics.ts';

export { DEFAULT_PLAN_OPTIONS, nonPersonalRetentionMs, rejectsRetentionMs, topicPlan } from '../ingest/topics.ts';
export type { PlannedTopic, PlanOptions, TopicKind } from '../ingest/topics.ts';

const { Kafka, logLevel, ConfigResourceTypes } = kafkajs;

/**
 * ACLs (`--acls`): the bindings of tools/security/acls.ts for the topics of each cluster (a zone's
 * cluster gets the grants of that zone's topics, plus ingest's cluster-wide IDEMPOTENT_WRITE). The
 * operator principal is a super user (broker `super.users`), so it needs no binding. Without `--acls`
 * the plan makes no ACL changes and says so.
 */
export interface AclBinding extends AclRule {
  brokers: string[];
}

export function aclPlan(topics: readonly PlannedTopic[], opts: { aggregatorGroup?: string } = {}): AclBinding[] {
  const clusters = new Map<string, PlannedTopic[]>();
  for (const t of topics) clusters.set(t.brokers.join(','), [...(clusters.get(t.brokers.join(',')) ?? []), t]);
  return [...clusters].flatMap(([key, ts]) =>
    aclRules({ topics: ts, ...(opts.aggregatorGroup ? { aggregatorGroup: opts.aggregatorGroup } : {}) }).map((r) => ({ ...r, brokers: key.split(',') })),
  );
}

export async function applyAcls(admin: Admin, bindings: readonly AclBinding[]): Promise<number> {
  return applyAclRules(admin, bindings);
}

export type TopicAction =
  | { topic: string; action: 'create' }
  | { topic: string; action: 'unchanged' }
  | { topic: string; action: 'alter_configs'; changes: string[] }
  | { topic: string; action: 'add_partitions'; from: number; to: number }
  | { topic: string; action: 'conflict'; problem: string };

/**
 * What `apply` would do to one cluster, from what the cluster reports. Pure, so the decisions are tested
 * without a broker. Configs the plan owns are compared as strings; configs it does not own are ignored.
 */
export function diffTopic(
  want: PlannedTopic,
  have: { partitions: number; replicationFactor: number; configs: Record<string, string> } | undefined,
  opts: { growPartitions: boolean },
): TopicAction[] {
  if (!have) return [{ topic: want.topic, action: 'create' }];
  const out: TopicAction[] = [];
  if (have.replicationFactor !== want.replicationFactor) {
    out.push({
      topic: want.topic,
      action: 'conflict',
      problem: `replication factor is ${have.replicationFactor}, plan says ${want.replicationFactor} (change it with kafka-reassign-partitions)`,
    });
  }
  if (have.partitions > want.partitions) {
    out.push({
      topic: want.topic,
      action: 'conflict',
      problem: `has ${have.partitions} partitions, plan says ${want.partitions} (Kafka cannot remove partitions)`,
    });
  } else if (have.partitions < want.partitions) {
    if (opts.growPartitions) out.push({ topic: want.topic, action: 'add_partitions', from: have.partitions, to: want.partitions });
    else
      out.push({
        topic: want.topic,
        action: 'conflict',
        problem: `has ${have.partitions} partitions, plan says ${want.partitions} (rerun with --grow-partitions; keys move to other partitions)`,
      });
  }
  // A topic in conflict is left exactly as it is: applying part of the plan can make it worse (raising
  // min.insync.replicas above the replication it really has would fail every acks=all produce).
  if (out.some((a) => a.action === 'conflict')) return out.filter((a) => a.action === 'conflict');
  const changes = Object.entries(want.configs)
    .filter(([k, v]) => have.configs[k] !== v)
    .map(([k, v]) => `${k}: ${have.configs[k] ?? '(unset)'} -> ${v}`);
  if (changes.length > 0) out.push({ topic: want.topic, action: 'alter_configs', changes });
  return out.length > 0 ? out : [{ topic: want.topic, action: 'unchanged' }];
}

export interface ApplyOptions {
  growPartitions: boolean;
  /** Also create the ACL bindings (tools/security/acls.ts) on each cluster. */
  acls?: { aggregatorGroup?: string } | undefined;
  /** Client factory (tests pass their own client id/log level). */
  admin?: (brokers: string[]) => Admin;
}

/** Brings every cluster to the plan. Returns what was done; conflicts are reported, not forced. */
export async function applyPlan(plan: readonly PlannedTopic[], opts: ApplyOptions): Promise<TopicAction[]> {
  const makeAdmin = opts.admin ?? ((brokers: string[]) => new Kafka({ clientId: 'topic-plan', brokers, logLevel: logLevel.WARN }).admin());
  const clusters = new Map<string, PlannedTopic[]>();
  for (const t of plan) {
    const key = t.brokers.join(',');
    clusters.set(key, [...(clusters.get(key) ?? []), t]);
  }
  const actions: TopicAction[] = [];
  for (const [key, topics] of clusters) {
    const admin = makeAdmin(key.split(','));
    await admin.connect();
    try {
      const existing = new Set(await admin.listTopics());
      const present = topics.filter((t) => existing.has(t.topic));
      const state = new Map<string, { partitions: number; replicationFactor: number; configs: Record<string, string> }>();
      if (present.length > 0) {
        const md = await admin.fetchTopicMetadata({ topics: present.map((t) => t.topic) });
        const described = await admin.describeConfigs({
          includeSynonyms: false,
          resources: present.map((t) => ({ type: ConfigResourceTypes.TOPIC, name: t.topic })),
        });
        for (const m of md.topics) {
          const r = described.resources.find((x) => x.resourceName === m.name);
          const configs: Record<string, string> = {};
          for (const e of r?.configEntries ?? []) configs[e.configName] = e.configValue;
          state.set(m.name, { partitions: m.partitions.length, replicationFactor: m.partitions[0]?.replicas.length ?? 0, configs });
        }
      }
      const todo = topics.flatMap((t) => diffTopic(t, state.get(t.topic), { growPartitions: opts.growPartitions }));
      const create = topics.filter((t) => todo.some((a) => a.topic === t.topic && a.action === 'create'));
      if (create.length > 0) {
        const spec: ITopicConfig[] = create.map((t) => ({
          topic: t.topic,
          numPartitions: t.partitions,
          replicationFactor: t.replicationFactor,
          configEntries: Object.entries(t.configs).map(([name, value]) => ({ name, value })),
        }));
        await admin.createTopics({ topics: spec, waitForLeaders: true });
      }
      const alter = todo.filter((a): a is Extract<TopicAction, { action: 'alter_configs' }> => a.action === 'alter_configs');
      if (alter.length > 0) {
        // kafkajs' alterConfigs is the non-incremental Kafka API: it replaces the topic's dynamic configs
        // with the entries given, so other topic overrides someone set by hand are reset. The plan owns
        // the topic configs; overrides belong in the plan, not on the cluster.
        await admin.alterConfigs({
          validateOnly: false,
          resources: alter.map((a) => ({
            type: ConfigResourceTypes.TOPIC,
            name: a.topic,
            configEntries: Object.entries(topics.find((t) => t.topic === a.topic)!.configs).map(([name, value]) => ({ name, value })),
          })),
        });
      }
      const grow = todo.filter((a): a is Extract<TopicAction, { action: 'add_partitions' }> => a.action === 'add_partitions');
      if (grow.length > 0) await admin.createPartitions({ topicPartitions: grow.map((g) => ({ topic: g.topic, count: g.to })) });
      if (opts.acls) await applyAcls(admin, aclPlan(topics, opts.acls));
      actions.push(...todo);
    } finally {
      await admin.disconnect();
    }
  }
  return actions;
}

export function formatPlan(plan: readonly PlannedTopic[], opts: { acls?: { aggregatorGroup?: string } | undefined } = {}): string {
  const lines = ['| Topic | Cluster | Partitions | Replication | min.insync | retention | Why |', '|---|---|---|---|---|---|---|'];
  for (const t of plan) {
    lines.push(
      `| ${t.topic} | ${t.brokers.join(',')} | ${t.partitions} | ${t.replicationFactor} | ${t.configs['min.insync.replicas']} | ${days(Number(t.configs['retention.ms']))} d | ${t.why} |`,
    );
  }
  if (!opts.acls) {
    lines.push('', 'ACLs: none planned (pass --acls to plan/apply the bindings of tools/security/acls.ts)');
  } else {
    const acls = aclPlan(plan, opts.acls);
    lines.push(
      '',
      `${acls.length} ACL binding(s) planned (brokers need StandardAuthorizer, allow.everyone.if.no.acl.found=false, super.users=User:operator):`,
      formatAclRules(acls),
    );
  }
  return lines.join('\n');
}

export interface CliArgs {
  apply: boolean;
  growPartitions: boolean;
  /** --acls [--aggregator-group G]: plan (and with --apply create) the ACL bindings. */
  acls: { aggregatorGroup?: string } | undefined;
  brokers: string[] | undefined;
  options: PlanOptions;
}

export function parseArgs(argv: readonly string[]): CliArgs {
  const out: CliArgs = { apply: false, growPartitions: false, acls: undefined, brokers: undefined, options: { ...DEFAULT_PLAN_OPTIONS } };
  const int = (flag: string, v: string | undefined, min: number): number => {
    const n = Number(v);
    if (v === undefined || !Number.isInteger(n) || n < min) throw new Error(`${flag} needs an integer >= ${min}`);
    return n;
  };
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    const next = () => argv[++i];
    switch (a) {
      case '--apply':
        out.apply = true;
        break;
      case '--grow-partitions':
        out.growPartitions = true;
        break;
      case '--acls':
        out.acls = { ...out.acls };
        break;
      case '--aggregator-group': {
        const v = next();
        if (!v) throw new Error('--aggregator-group needs the aggregator consumer group id');
        out.acls = { ...out.acls, aggregatorGroup: v };
        break;
      }
      case '--brokers': {
        const v = next();
        if (!v) throw new Error('--brokers needs host:port[,host:port...]');
        out.brokers = v
          .split(',')
          .map((s) => s.trim())
          .filter(Boolean);
        break;
      }
      case '--partitions':
        out.options.partitions = int(a, next(), 1);
        break;
      case '--replication':
        out.options.replicationFactor = int(a, next(), 1);
        break;
      case '--min-insync':
        out.options.minInsyncReplicas = int(a, next(), 1);
        break;
      case '--events-retention-days':
        out.options.eventsRetentionMs = int(a, next(), 1) * DAY_MS;
        break;
      default:
        throw new Error(
          `unknown argument ${a} (known: --apply --acls --aggregator-group --brokers --partitions --replication --min-insync --events-retention-days --grow-partitions)`,
        );
    }
  }
  return out;
}

async function main(): Promise<void> {
  let args: CliArgs;
  let cfg: IngestConfig;
  try {
    args = parseArgs(process.argv.slice(2));
    const env = args.brokers ? { ...process.env, PIPELINE_KAFKA_BROKERS: args.brokers.join(',') } : process.env;
    cfg = loadIngestConfig(env);
  } catch (e) {
    process.stderr.write(`topics:plan: ${e instanceof ConfigError ? e.problems.join('; ') : (e as Error).message}\n`);
    process.exit(2);
  }
  // A residency zone without brokers of its own stopped loadIngestConfig above (policy section 6), unless
  // the single-cluster switch allows it: then say so, every run.
  const sharing = zonesSharingMainCluster(cfg);
  if (sharing.length > 0) {
    process.stderr.write(
      `topics:plan: INGEST_ZONES_SHARE_MAIN_CLUSTER is on: zones ${sharing.join(', ')} are planned on the main cluster (development/test only, policy section 6)\n`,
    );
  }
  const plan = topicPlan(cfg, args.options);
  process.stdout.write(`${formatPlan(plan, { acls: args.acls })}\n`);
  if (!args.apply) return;
  const actions = await applyPlan(plan, {
    growPartitions: args.growPartitions,
    acls: args.acls,
    admin: (brokers) => new Kafka({ clientId: 'topic-plan', brokers, ...kafkaClientOptions(cfg), logLevel: logLevel.WARN }).admin(),
  });
  for (const a of actions) {
    const detail =
      a.action === 'alter_configs'
        ? ` ${a.changes.join(', ')}`
        : a.action === 'add_partitions'
          ? ` ${a.from} -> ${a.to}`
          : a.action === 'conflict'
            ? ` ${a.problem}`
            : '';
    process.stdout.write(`${a.action.padEnd(14)} ${a.topic}${detail}\n`);
  }
  if (actions.some((a) => a.action === 'conflict')) process.exit(1);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) {
  main().catch((e: unknown) => {
    process.stderr.write(`topics:plan: ${(e as Error).stack ?? String(e)}\n`);
    process.exit(1);
  });
}
