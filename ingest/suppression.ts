/**
 * Ingest's copy of the suppression list (rights/suppression.ts; policy 5.2 restriction, 5.3 withdrawal):
 * one follower per Kafka cluster holding rights topics (each zone's on its own cluster), started before
 * the service accepts batches, so a copy started after a withdrawal drops the device's batches from its
 * first one. A batch of a listed device is answered 200 with its events counted as
 * `dropped_withdrawn` / `dropped_restricted` and nothing is written (batches.ts).
 */
import kafkajs from 'kafkajs';
import { followSuppressions, INGEST_RIGHTS_GROUP_PREFIX, SuppressionList, type Follower } from '../rights/suppression.ts';
import { kafkaClientOptions, rightsTopic, type Logger } from '../runtime/index.ts';
import { ZONES, type Zone } from '../schemas/index.ts';
import { zoneBrokers, type IngestConfig } from './config.ts';

export interface Suppression {
  list: SuppressionList;
  stop(): Promise<void>;
}

export async function startSuppression(cfg: IngestConfig, log: Logger): Promise<Suppression> {
  const list = new SuppressionList();
  const byCluster = new Map<string, Zone[]>();
  const brokers = zoneBrokers(cfg);
  for (const z of ZONES) {
    const key = brokers[z].join(',');
    byCluster.set(key, [...(byCluster.get(key) ?? []), z]);
  }
  const followers: Follower[] = [];
  try {
    for (const [cluster, zones] of byCluster) {
      const kafka = new kafkajs.Kafka({
        clientId: `${cfg.INGEST_KAFKA_CLIENT_ID}-rights`,
        brokers: cluster.split(','),
        ...kafkaClientOptions(cfg),
        logLevel: kafkajs.logLevel.NOTHING,
      });
      followers.push(
        await followSuppressions({
          kafka,
          topics: zones.map((zone) => ({ zone, topic: rightsTopic(cfg.PIPELINE_TOPIC_RIGHTS_PREFIX, zone) })),
          list,
          groupPrefix: INGEST_RIGHTS_GROUP_PREFIX,
          log,
        }),
      );
    }
  } catch (e) {
    await Promise.all(followers.map((f) => f.stop().catch(() => {})));
    throw e;
  }
  return { list, stop: async () => void (await Promise.all(followers.map((f) => f.stop()))) };
}
