/**
 * Kafka ACLs of the pipeline, derived from the topic list: one principal per role, each allowed exactly
 * what its role needs (policy 1.1.4: personal and non-personal data are used separately; policy 4.1:
 * special access controls on personal data; policy 6: a residency zone's personal data is reached by
 * that zone's principal only). Everything not granted here is denied: the brokers run the KRaft
 * StandardAuthorizer with `allow.everyone.if.no.acl.found=false`.
 *
 * Used by the secured local stack (stack/secure.ts) and by `npm run topics:plan -- --acls` for a
 * real cluster (tools/topic-plan.ts), so both enforce the same list.
 *
 * | principal   | may                                                                   |
 * | ----------- | --------------------------------------------------------------------- |
 * | ingest      | WRITE + DESCRIBE every pipeline topic; IDEMPOTENT_WRITE on the cluster; reads nothing |
 * | aggregator  | READ the events topic; READ its consumer group                         |
 * | zone-<z>    | READ personal.<z>.<class> (every retention class) and rejects.<z>; READ groups starting `<zoneGroupPrefix><z>` |
 * | operator    | everything, as a super user (broker config `super.users`, not an ACL)  |
 *
 * Topics are named literally (a new topic gets no grant by accident); zone groups are prefixed so a
 * zone's tools can use several group ids.
 */
import { INGEST_RIGHTS_GROUP_PREFIX } from '../../rights/suppression.ts';
import kafkajs, { type AclEntry, type Admin } from 'kafkajs';
import type { Zone } from '../../schemas/contract.ts';

const { AclOperationTypes, AclPermissionTypes, AclResourceTypes, ResourcePatternTypes } = kafkajs;

export const ZONE_ROLES = ['zone-cn', 'zone-ru', 'zone-in', 'zone-row'] as const;
/** Every Kafka principal of the pipeline, by role. */
export const KAFKA_ROLES = ['ingest', 'aggregator', ...ZONE_ROLES, 'operator'] as const;
export type KafkaRole = (typeof KAFKA_ROLES)[number];

export function zoneRole(zone: Zone): (typeof ZONE_ROLES)[number] {
  return `zone-${zone}`;
}

export type AclOperation = 'read' | 'write' | 'describe' | 'idempotent_write';
export type AclResource = 'topic' | 'group' | 'cluster';

/** One ALLOW binding (the plan never needs DENY: no grant means denied). */
export interface AclRule {
  /** `User:<role>` */
  principal: string;
  resourceType: AclResource;
  patternType: 'literal' | 'prefixed';
  resourceName: string;
  operation: AclOperation;
}

/** What the ACLs are derived from: the topics (kind and zone) and the consumer groups. */
export interface AclTopic {
  topic: string;
  kind: 'events' | 'personal' | 'rejects' | 'rights';
  zone: Zone | undefined;
}

export interface AclPlanInput {
  topics: readonly AclTopic[];
  /** AGGREGATOR_GROUP_ID. @default 'telemetry-aggregator' */
  aggregatorGroup?: string;
  /** A zone principal may use consumer groups starting with `<prefix><zone>`. @default 'telemetry-personal-' */
  zoneGroupPrefix?: string;
}

export const DEFAULT_AGGREGATOR_GROUP = 'telemetry-aggregator';
export const DEFAULT_ZONE_GROUP_PREFIX = 'telemetry-personal-';

export function zoneGroup(zone: Zone, prefix = DEFAULT_ZONE_GROUP_PREFIX): string {
  return `${prefix}${zone}`;
}

const user = (role: KafkaRole) => `User:${role}`;

/** The ACL list. Pure; order is stable (by principal, then topic list order). */
export function aclRules(input: AclPlanInput): AclRule[] {
  const group = input.aggregatorGroup ?? DEFAULT_AGGREGATOR_GROUP;
  const zonePrefix = input.zoneGroupPrefix ?? DEFAULT_ZONE_GROUP_PREFIX;
  const rules: AclRule[] = [];
  const topic = (role: KafkaRole, name: string, operation: AclOperation): AclRule => ({
    principal: user(role),
    resourceType: 'topic',
    patternType: 'literal',
    resourceName: name,
    operation,
  });
  // ingest: produce everywhere, consume nowhere. DESCRIBE lets it verify the topics exist at start
  // (INGEST_TOPICS=verify); it has no CREATE, so in secured mode the operator creates the topics.
  // The rights topics (the suppression list) it only reads, each copy in a group of its own.
  for (const t of input.topics) rules.push(topic('ingest', t.topic, t.kind === 'rights' ? 'read' : 'write'), topic('ingest', t.topic, 'describe'));
  rules.push({ principal: user('ingest'), resourceType: 'cluster', patternType: 'literal', resourceName: 'kafka-cluster', operation: 'idempotent_write' });
  if (input.topics.some((t) => t.kind === 'rights'))
    rules.push({ principal: user('ingest'), resourceType: 'group', patternType: 'prefixed', resourceName: INGEST_RIGHTS_GROUP_PREFIX, operation: 'read' });
  // aggregator: the non-personal events topic only (policy 1.1.4).
  for (const t of input.topics.filter((x) => x.kind === 'events')) rules.push(topic('aggregator', t.topic, 'read'));
  rules.push({ principal: user('aggregator'), resourceType: 'group', patternType: 'literal', resourceName: group, operation: 'read' });
  // zone principals: their own zone's personal and rejects topics (policy 6).
  const zones = [...new Set(input.topics.flatMap((t) => (t.zone ? [t.zone] : [])))];
  for (const zone of zones) {
    for (const t of input.topics.filter((x) => x.zone === zone && x.kind !== 'rights')) rules.push(topic(zoneRole(zone), t.topic, 'read'));
    rules.push({
      principal: user(zoneRole(zone)),
      resourceType: 'group',
      patternType: 'prefixed',
      resourceName: zoneGroup(zone, zonePrefix),
      operation: 'read',
    });
  }
  return rules;
}

const RESOURCE = { topic: AclResourceTypes.TOPIC, group: AclResourceTypes.GROUP, cluster: AclResourceTypes.CLUSTER } as const;
const OPERATION = {
  read: AclOperationTypes.READ,
  write: AclOperationTypes.WRITE,
  describe: AclOperationTypes.DESCRIBE,
  idempotent_write: AclOperationTypes.IDEMPOTENT_WRITE,
} as const;

export function toKafkajsAcl(r: AclRule): AclEntry {
  return {
    resourceType: RESOURCE[r.resourceType],
    resourceName: r.resourceName,
    resourcePatternType: r.patternType === 'literal' ? ResourcePatternTypes.LITERAL : ResourcePatternTypes.PREFIXED,
    principal: r.principal,
    host: '*',
    operation: OPERATION[r.operation],
    permissionType: AclPermissionTypes.ALLOW,
  };
}

/** `kafka-acls`-style lines, for the printed plan and the README. */
export function formatAclRules(rules: readonly AclRule[]): string {
  return rules
    .map(
      (r) =>
        `ALLOW ${r.principal.padEnd(16)} ${r.operation.toUpperCase().padEnd(16)} ${r.resourceType} ${r.patternType === 'prefixed' ? `${r.resourceName}*` : r.resourceName}`,
    )
    .join('\n');
}

/**
 * Creates the bindings through an admin connected as a super user (operator). CreateAcls is idempotent
 * on the broker: an existing binding is left as it is, so this can run on every deploy. Bindings not in
 * the list are not removed (a hand-made grant is for the operator to review, not for a deploy to drop).
 */
export async function applyAclRules(admin: Admin, rules: readonly AclRule[]): Promise<number> {
  if (rules.length === 0) return 0;
  await admin.createAcls({ acl: rules.map(toKafkajsAcl) });
  return rules.length;
}
