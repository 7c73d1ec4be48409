/**
 * Settings shared by every service of the pipeline (prefix `PIPELINE_`): where Kafka is and what the
 * topics are called. Ingest writes the topics, the aggregator reads the events topic, so the two must
 * agree; both load this spec alongside their own.
 */
import { defineSettings } from './config.ts';
import type { Zone } from '../schemas/contract.ts';

export const PIPELINE_PREFIX = 'PIPELINE_';

export const pipelineSettings = defineSettings({
  PIPELINE_KAFKA_BROKERS: {
    kind: 'list',
    minItems: 1,
    default: ['127.0.0.1:19092'],
    doc: 'Kafka bootstrap servers (comma-separated host:port). The default is the local stack (deploy/local).',
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
    doc: 'Prefix of the personal topics; the residency zone (cn, ru, in, row; policy section 6) is appended.',
  },
  PIPELINE_TOPIC_REJECTS_PREFIX: {
    kind: 'string',
    pattern: /^[A-Za-z0-9._-]{1,180}$/,
    default: 'telemetry.rejects.',
    doc: 'Prefix of the rejects topics (rejected events are unclassified, so treated as personal); the zone is appended.',
  },
});

export function personalTopic(prefix: string, zone: Zone): string {
  return `${prefix}${zone}`;
}
export function rejectsTopic(prefix: string, zone: Zone): string {
  return `${prefix}${zone}`;
}
