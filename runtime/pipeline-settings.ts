/**
 * Settings shared by every service of the pipeline (prefix `PIPELINE_`): where Kafka is and what the
 * topics are called. Ingest writes the topics, the aggregator reads the events topic, so the two must
 * agree; both load this spec alongside their own.
 */
import { defineSettings } from './config.ts';

export const PIPELINE_PREFIX = 'PIPELINE_';

export const pipelineSettings = defineSettings({
  PIPELINE_KAFKA_BROKERS: {
    kind: 'list',
    minItems: 1,
    default: ['127.0.0.1:19092'],
    doc: 'Kafka bootstrap servers (comma-separated host:port). The default is the local stack (stack/).',
  },
  // Transport security of every Kafka client (policy 4.1: special access controls, encryption in
  // transit). Checked and turned into kafkajs options by runtime/kafka.ts; a service asked for sasl_ssl
  // with an incomplete set of these refuses to start.
  PIPELINE_KAFKA_SECURITY: {
    kind: 'enum',
    values: ['plaintext', 'sasl_ssl'] as const,
    default: 'plaintext',
    doc: 'Kafka transport: `plaintext` (local stack) or `sasl_ssl` (TLS + SASL/SCRAM; needs the PIPELINE_KAFKA_SASL_* settings).',
  },
  PIPELINE_KAFKA_SASL_MECHANISM: {
    kind: 'enum',
    values: ['scram-sha-512', 'scram-sha-256'] as const,
    default: 'scram-sha-512',
    doc: 'SASL mechanism with sasl_ssl.',
  },
  PIPELINE_KAFKA_SASL_USERNAME: {
    kind: 'string',
    default: '',
    doc: 'Kafka principal of this service with sasl_ssl (one per role: ingest, aggregator; deploy/THREAT-MODEL.md).',
  },
  PIPELINE_KAFKA_SASL_PASSWORD: {
    kind: 'string',
    secret: true,
    default: '',
    doc: 'Its password; prefer PIPELINE_KAFKA_SASL_PASSWORD_FILE (a mounted secret). Never logged.',
  },
  PIPELINE_KAFKA_SASL_PASSWORD_FILE: {
    kind: 'string',
    default: '',
    doc: 'File holding the password (trailing newline ignored); exclusive with PIPELINE_KAFKA_SASL_PASSWORD.',
  },
  PIPELINE_KAFKA_TLS_CA_FILE: {
    kind: 'string',
    default: '',
    doc: "PEM file of the CA(s) that signed the brokers' certificates; empty = the system trust store.",
  },
  PIPELINE_TOPIC_EVENTS: {
    kind: 'string',
    pattern: /^[A-Za-z0-9._-]{1,200}$/,
    default: 'telemetry.events.v1',
    doc: 'Topic of non-personal event facts (policy 1.1.4), keyed by daily token; the aggregator reads it.',
  },
  PIPELINE_TOPIC_PERSONAL_PREFIX: {
    kind: 'string',
    pattern: /^[A-Za-z0-9._-]{1,180}$/,
    default: 'telemetry.personal.',
    doc: 'Prefix of the personal topics; the residency zone (cn, ru, in, row; policy section 6) and the retention class (p7d, p30d: schemas/personal.ts) are appended: telemetry.personal.cn.p7d.',
  },
  PIPELINE_TOPIC_REJECTS_PREFIX: {
    kind: 'string',
    pattern: /^[A-Za-z0-9._-]{1,180}$/,
    default: 'telemetry.rejects.',
    doc: 'Prefix of the rejects topics (rejected events are unclassified, so treated as personal); the zone is appended.',
  },
  PIPELINE_TOPIC_RIGHTS_PREFIX: {
    kind: 'string',
    pattern: /^[A-Za-z0-9._-]{1,180}$/,
    default: 'telemetry.rights.',
    doc: "Prefix of the rights topics (compacted; the suppression list of withdrawn and restricted devices, keyed by keyed hashes: rights/suppression.ts); the zone is appended. On the zone's cluster.",
  },
});

/**
 * Personal topic of a residency zone (schemas/contract.ts ZONES) and retention class (schemas/personal.ts:
 * `p7d`, `p30d`): each class its own topic, so Kafka's retention.ms deletes each category on time.
 */
export function personalTopic(prefix: string, zone: string, retentionClass: string): string {
  return `${prefix}${zone}.${retentionClass}`;
}
/** Rights topic of a residency zone: the compacted suppression list (rights/suppression.ts). */
export function rightsTopic(prefix: string, zone: string): string {
  return `${prefix}${zone}`;
}
/** Rejects topic of a residency zone. */
export function rejectsTopic(prefix: string, zone: string): string {
  return `${prefix}${zone}`;
}
