// Vitest global setup of the integration project: makes sure a Kafka and a ClickHouse answer before any
// *.int.test.ts runs. KAFKA_BROKERS / CLICKHOUSE_URL point at existing services and skip starting the
// local one for that part. A local stack already running is reused. Nothing is stopped at the end: a
// developer keeps a warm stack between runs, and .ci/run calls `npm run stack:down` itself.
import { clickhouseAnswers } from '../stack/clickhouse.ts';
import { externalServices, loadStackConfig } from '../stack/config.ts';
import { StackError } from '../stack/errors.ts';
import { kafkaBrokerIds } from '../stack/kafka.ts';
import { up } from '../stack/stack.ts';

export default async function setup(): Promise<void> {
  const ext = externalServices();
  if (ext.kafkaBrokers && (await kafkaBrokerIds(ext.kafkaBrokers)).length === 0) {
    throw new StackError('STACK_NOT_RUNNING', `KAFKA_BROKERS=${ext.kafkaBrokers.join(',')}: no Kafka answers there`);
  }
  if (ext.clickhouseUrl && !(await clickhouseAnswers(ext.clickhouseUrl, 3000))) {
    throw new StackError('STACK_NOT_RUNNING', `CLICKHOUSE_URL=${ext.clickhouseUrl}: no ClickHouse answers there (GET /ping)`);
  }
  if (ext.kafkaBrokers && ext.clickhouseUrl) return;
  const r = await up({ brokers: 1, kafka: !ext.kafkaBrokers, clickhouse: !ext.clickhouseUrl }, loadStackConfig());
  if (r.started.length > 0) console.log(`[stack] started ${r.started.join(', ')} in ${(r.ms / 1000).toFixed(1)} s (left running; npm run stack:down stops it)`);
}
