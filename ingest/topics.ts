/**
 * The Kafka topics of a deployment, one plan for everyone who creates them: the operator command
 * (`npm run topics:plan`, tools/topic-plan.ts: print, `--apply`, `--acls`) and ingest itself when it
 * starts with INGEST_TOPICS=create (produce.ts, with `ingestPlanOptions`). Pure: reads settings and the
 * category map, contacts nothing.
 *
 * Topic names and where each zone's topics live come from the settings ingest reads (PIPELINE_TOPIC_*,
 * PIPELINE_KAFKA_BROKERS, INGEST_ZONE_BROKERS_*), so the plan cannot name a topic ingest does not write.
 *
 * Retention per topic (policy 4.4, values from schemas/categories.ts):
 * - personal.<zone>.<class>: one topic per retention class of the stored personal categories (`p30d`
 *   for the device record, `p7d` for IP addresses and precise location; schemas/personal.ts writes one
 *   record per class), its retention.ms that class: Kafka deletes each category on time, none is kept
 *   as long as the longest-kept field beside it;
 * - rejects.<zone>: the `unclassified` category (a rejected event cannot be trusted to be what its
 *   categories say, so it is personal and kept briefly);
 * - events: a replay window for the aggregator (its facts are non-personal, policy 1.1.4); it may not
 *   exceed the retention of the non-personal categories it carries.
 * Personal and rejects topics of a zone are on that zone's cluster (policy section 6, residency): for
 * cn, ru and in the plan throws rather than use the main cluster, unless INGEST_ZONES_SHARE_MAIN_CLUSTER
 * says a single-cluster setup may (config.ts, `zoneBrokers`).
 *
 * Safety (the operator's defaults): replication 3 with min.insync.replicas 2 (ingest produces with
 * acks=all, so an acknowledged batch is on two brokers), and unclean leader election off (an out-of-sync
 * replica becoming leader would silently drop acknowledged records).
 */
import { personalTopic, rejectsTopic, rightsTopic } from '../runtime/index.ts';
import { CATEGORIES, DAY_MS, personalRetentionClasses, retentionMs, ZONES, type Zone } from '../schemas/index.ts';
import { zoneBrokers, type IngestConfig } from './config.ts';

export type TopicKind = 'events' | 'personal' | 'rejects' | 'rights';

export interface PlannedTopic {
  topic: string;
  kind: TopicKind;
  /** Residency zone of a personal/rejects topic; undefined for events. */
  zone: Zone | undefined;
  /** Bootstrap servers of the cluster that must hold the topic. */
  brokers: string[];
  partitions: number;
  replicationFactor: number;
  /** Topic-level configs the plan owns; `--apply` sets exactly these, ingest creates topics with them. */
  configs: Record<string, string>;
  /** Where the retention comes from, for the printed plan. */
  why: string;
}

export interface PlanOptions {
  /** @default 12 (events: the aggregator's parallelism ceiling; personal/rejects follow ingest load) */
  partitions: number;
  /** @default 3 */
  replicationFactor: number;
  /** @default 2 */
  minInsyncReplicas: number;
  /** Replay window of the events topic. @default 7 days (INGEST_EVENTS_RETENTION_MS's default) */
  eventsRetentionMs: number;
  /** retention.ms of the rejects topics. @default the `unclassified` category's retention */
  rejectsRetentionMs?: number;
  /**
   * Also set Kafka's own defaults `cleanup.policy=delete` and `unclean.leader.election.enable=false` as
   * topic configs, so `--apply` restores them when someone changed them by hand. @default true
   */
  pinKafkaDefaults?: boolean;
}

export const DEFAULT_PLAN_OPTIONS: PlanOptions = {
  partitions: 12,
  replicationFactor: 3,
  minInsyncReplicas: 2,
  eventsRetentionMs: 7 * DAY_MS,
};

/**
 * What ingest creates a missing topic with (INGEST_TOPICS=create): its own partition, replication and
 * retention settings (INGEST_TOPIC_*, INGEST_*_RETENTION_MS), and only retention.ms and
 * min.insync.replicas as topic configs. Production creates topics with the operator command instead and
 * runs ingest with INGEST_TOPICS=verify.
 */
export function ingestPlanOptions(cfg: IngestConfig): PlanOptions {
  return {
    partitions: cfg.INGEST_TOPIC_PARTITIONS,
    replicationFactor: cfg.INGEST_TOPIC_REPLICATION,
    // acks=all is only as strong as the ISR it waits for: with replication >= 3 require 2.
    minInsyncReplicas: Math.max(1, Math.min(2, cfg.INGEST_TOPIC_REPLICATION - 1)),
    eventsRetentionMs: cfg.INGEST_EVENTS_RETENTION_MS,
    rejectsRetentionMs: cfg.INGEST_REJECTS_RETENTION_MS,
    pinKafkaDefaults: false,
  };
}

/** Longest retention allowed for the non-personal facts of the events topic. */
export function nonPersonalRetentionMs(): number {
  let max = 0;
  for (const e of Object.values(CATEGORIES)) if (!e.personal) max = Math.max(max, retentionMs(e.retention));
  return max;
}

/** The stored personal categories kept for `retention` (the fields one class's topic holds). */
function personalCategoriesOf(retention: string): string[] {
  return Object.entries(CATEGORIES)
    .filter(([name, e]) => e.personal && e.retention === retention && name !== 'unclassified')
    .map(([name]) => name);
}

export function rejectsRetentionMs(): number {
  return retentionMs(CATEGORIES.unclassified.retention);
}

/** The topics of a deployment. Pure: reads settings and the category map, contacts nothing. */
export function topicPlan(cfg: IngestConfig, opts: PlanOptions = DEFAULT_PLAN_OPTIONS): PlannedTopic[] {
  if (opts.minInsyncReplicas > opts.replicationFactor) {
    throw new Error(
      `min.insync.replicas ${opts.minInsyncReplicas} exceeds the replication factor ${opts.replicationFactor}: every acks=all produce would fail`,
    );
  }
  const ceiling = nonPersonalRetentionMs();
  if (opts.eventsRetentionMs > ceiling) {
    throw new Error(`events retention ${opts.eventsRetentionMs} ms exceeds the longest non-personal category retention (${ceiling} ms)`);
  }
  // CreateTime always: a topic or broker on LogAppendTime would stamp every record with its exact
  // arrival time again, undoing the coarse timestamps of ingest/mix.ts (policy section 1.1.4).
  const configs = (retentionMs: number): Record<string, string> =>
    opts.pinKafkaDefaults === false
      ? { 'retention.ms': String(retentionMs), 'min.insync.replicas': String(opts.minInsyncReplicas), 'message.timestamp.type': 'CreateTime' }
      : {
          'retention.ms': String(retentionMs),
          'cleanup.policy': 'delete',
          'message.timestamp.type': 'CreateTime',
          'min.insync.replicas': String(opts.minInsyncReplicas),
          'unclean.leader.election.enable': 'false',
        };
  const placed = { partitions: opts.partitions, replicationFactor: opts.replicationFactor };
  const byZone = zoneBrokers(cfg);
  const plan: PlannedTopic[] = [
    {
      topic: cfg.PIPELINE_TOPIC_EVENTS,
      kind: 'events',
      zone: undefined,
      brokers: cfg.PIPELINE_KAFKA_BROKERS,
      ...placed,
      configs: configs(opts.eventsRetentionMs),
      why: `aggregator replay window (non-personal facts, category ceiling ${days(ceiling)} d)`,
    },
  ];
  const rejectsMs = opts.rejectsRetentionMs ?? rejectsRetentionMs();
  for (const zone of ZONES) {
    for (const cls of personalRetentionClasses()) {
      plan.push({
        topic: personalTopic(cfg.PIPELINE_TOPIC_PERSONAL_PREFIX, zone, cls.name),
        kind: 'personal',
        zone,
        brokers: byZone[zone],
        ...placed,
        configs: configs(cls.ms),
        why: `retention class ${cls.name}: ${personalCategoriesOf(cls.retention).join(', ')} (schemas/categories.ts)`,
      });
    }
    plan.push({
      topic: rejectsTopic(cfg.PIPELINE_TOPIC_REJECTS_PREFIX, zone),
      kind: 'rejects',
      zone,
      brokers: byZone[zone],
      ...placed,
      configs: configs(rejectsMs),
      why: opts.rejectsRetentionMs === undefined ? 'category `unclassified` (rejected input is treated as personal)' : 'INGEST_REJECTS_RETENTION_MS',
    });
    // The suppression list: compacted (the latest entry per device and kind is kept for good; a lifted
    // entry is a tombstone, deleted after delete.retention.ms), read whole by every ingest copy.
    plan.push({
      topic: rightsTopic(cfg.PIPELINE_TOPIC_RIGHTS_PREFIX, zone),
      kind: 'rights',
      zone,
      brokers: byZone[zone],
      ...placed,
      partitions: 1,
      configs: { ...configs(0), 'cleanup.policy': 'compact', 'retention.ms': '-1' },
      why: 'suppression list of withdrawn and restricted devices (compacted, rights/suppression.ts)',
    });
  }
  return plan;
}

/** Whole days of a retention in ms, for printed plans. */
export function days(ms: number): number {
  return Math.round(ms / DAY_MS);
}
