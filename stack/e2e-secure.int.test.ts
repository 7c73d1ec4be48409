// The whole pipeline end to end in SECURED mode (stack/README.md, "Secured mode"): the same generated device
// population and oracle as aggregator/e2e.int.test.ts, posted over HTTPS (trusting the stack's CA) to the real ingest logged in as
// the `ingest` principal (TLS + SCRAM, topics made by the operator, INGEST_TOPICS=verify since ingest may
// not create), read by the aggregator as the `aggregator` principal into ClickHouse as the `aggregator`
// user, and queried by the `analyst` user through the analyst proxies. The query output equals the
// oracle exactly, and the analyst sees exactly what the admin sees in the k-suppressed views.
//
// A separate file rather than a third `describe.each` case in aggregator/e2e.int.test.ts: the secured
// run needs the secured stack, operator-made topics and ACLs, and its own analytics database; it reuses
// that test's population generator, oracle and harness.
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { containerOf } from '../testing/batches.ts';
import { startAggregator, type RunningAggregator } from '../aggregator/main.ts';
import { reportsVsOracle } from '../testing/compare.ts';
import { generateDeviceBatches, type PostedBatch } from '../testing/device-batches.ts';
import { aggregatorConfig, aggregatorEnv, groupProgress, waitAllCommitted } from '../testing/harness.ts';
import { quietLogger } from '../testing/logger.ts';
import { loadIngestConfig } from '../ingest/config.ts';
import { startIngest, type IngestService } from '../ingest/http.ts';
import { ZONES } from '../schemas/contract.ts';
import { personalRetentionClasses } from '../schemas/index.ts';
import { analystStoreOptions, loadAnalystConfig } from '../aggregator/analyst-config.ts';
import { openStore } from '../aggregator/store-open.ts';
import { loadStackConfig } from './config.ts';
import { toClickHouseError } from './clickhouse-errors.ts';
import { upSecureStack } from './stack.ts';
import {
  clickhousePasswordFile,
  deprovisionKafka,
  provisionKafka,
  secureClickHouse,
  secureClickHouseUrl,
  secureKafka,
  secureKafkaBrokers,
  securePaths,
  secureServiceEnv,
  sqlClient,
} from './secure.ts';
import type { AclTopic } from '../tools/security/acls.ts';
import { E2E_LAYOUT, syncAnalystViews } from './clickhouse-users.ts';
import { sealingEnv } from '../testing/sealing.ts';
import { requestTrusting } from '../testing/tls.ts';
import { QUICK_MIX } from '../testing/mix.ts';

const K = 5;
const config = loadStackConfig();
const run = `e2esec${Date.now().toString(36)}`;
const rowsOf = async <R>(c: ReturnType<typeof secureClickHouse>, query: string) =>
  (await (await c.query({ query, format: 'JSONEachRow', clickhouse_settings: { wait_end_of_query: 1 } as never })).json<R>()) as R[];

async function post(url: string, b: PostedBatch): Promise<{ status: number; json: { accepted: number } }> {
  const deadline = Date.now() + 60_000;
  for (;;) {
    // A device trusting the stack's CA: ingest serves HTTPS with the certificate secureServiceEnv gives it.
    const r = await requestTrusting(`${url}/v1/batches`, {
      ca: readFileSync(securePaths(config).caCert),
      method: 'POST',
      headers: { 'content-type': 'avro/binary' },
      body: containerOf(b.batch),
    });
    if ((r.status === 429 || r.status === 503) && Date.now() < deadline) {
      await new Promise((res) => setTimeout(res, 1000 * Number(r.headers['retry-after'] ?? 1)));
      continue;
    }
    return { status: r.status, json: r.text ? JSON.parse(r.text) : undefined };
  }
}

beforeAll(async () => {
  await upSecureStack(config);
}, 180_000);

const admin = () => secureClickHouse(config, 'default');

describe('secured: devices -> ingest (HTTPS, principal ingest) -> Kafka (SASL_SSL, ACLs) -> aggregator (principal aggregator) -> ClickHouse (user aggregator) -> analyst', () => {
  let svc: IngestService | undefined;
  let agg: RunningAggregator | undefined;
  const keysDir = mkdtempSync(path.join(tmpdir(), 'e2e-secure-keys-'));
  afterAll(async () => {
    await agg?.stop();
    await svc?.close();
    rmSync(keysDir, { recursive: true, force: true });
    // The secured stack keeps its topics between runs: this run's go with it (stack/secure.ts).
    await deprovisionKafka(config, run);
  }, 60_000);

  it('query output equals the oracle; the analyst reads the same k-suppressed views the admin sees', async () => {
    const pop = generateDeviceBatches({ seed: 21, devicesPerDay: 60 });
    const topics = { events: `${run}.events`, personal: `${run}.personal.`, rejects: `${run}.rejects.`, rights: `${run}.rights.` };
    const groupId = `${run}-aggregator`;
    const aclTopics: AclTopic[] = [
      { topic: topics.events, kind: 'events', zone: undefined },
      ...ZONES.flatMap((z): AclTopic[] => [
        ...personalRetentionClasses().map((c): AclTopic => ({ topic: `${topics.personal}${z}.${c.name}`, kind: 'personal', zone: z })),
        { topic: `${topics.rejects}${z}`, kind: 'rejects', zone: z },
        { topic: `${topics.rights}${z}`, kind: 'rights', zone: z },
      ]),
    ];
    // The operator makes the topics and the grants (ingest has no CREATE), the admin a fresh database.
    await provisionKafka(config, aclTopics, { aggregatorGroup: groupId, partitions: 3 });
    const ad = admin();
    try {
      await ad.command({ query: `DROP DATABASE IF EXISTS ${E2E_LAYOUT.viewsDb}` });
      await ad.command({ query: `DROP DATABASE IF EXISTS ${E2E_LAYOUT.analyticsDb}` });
    } finally {
      await ad.close();
    }

    const ingestCfg = loadIngestConfig({
      ...QUICK_MIX, // testing/mix.ts: a lone batch need not wait for a crowd here
      ...secureServiceEnv(config, 'ingest'),
      PIPELINE_TOPIC_EVENTS: topics.events,
      PIPELINE_TOPIC_PERSONAL_PREFIX: topics.personal,
      PIPELINE_TOPIC_REJECTS_PREFIX: topics.rejects,
      PIPELINE_TOPIC_RIGHTS_PREFIX: topics.rights,
      ...sealingEnv().env,
      INGEST_PORT: '0',
      INGEST_POOL_THREADS: '1',
    });
    expect(ingestCfg.INGEST_TOPICS).toBe('verify');
    expect(ingestCfg.INGEST_UNSAFE_PLAINTEXT_HTTP).toBe(false);
    // ACLs reach the authorizer through the metadata log; ingest verifies its topics at start.
    const startBy = Date.now() + 20_000;
    for (;;) {
      try {
        svc = await startIngest(ingestCfg, { log: quietLogger, tokenKeys: { kind: 'file', dir: keysDir } });
        break;
      } catch (e) {
        if (Date.now() > startBy) throw e;
        await new Promise((r) => setTimeout(r, 500));
      }
    }
    const env = aggregatorEnv(
      { kafkaBrokers: secureKafkaBrokers(config), clickhouseUrl: secureClickHouseUrl(config) },
      { topic: topics.events, groupId, database: E2E_LAYOUT.analyticsDb },
      {
        ...secureServiceEnv(config, 'aggregator'),
        AGGREGATOR_MIN_GROUP_DEVICES: String(K),
      },
    );
    const aggCfg = aggregatorConfig(env);
    expect([aggCfg.PIPELINE_KAFKA_SASL_USERNAME, aggCfg.AGGREGATOR_CLICKHOUSE_USER]).toEqual(['aggregator', 'aggregator']);
    agg = await startAggregator(aggCfg);

    let next = 0;
    const worker = async () => {
      while (next < pop.batches.length) {
        const b = pop.batches[next++]!;
        const r = await post(svc!.url, b);
        expect(r.status, JSON.stringify(r.json)).toBe(200);
        expect(r.json.accepted).toBe((b.batch.events as unknown[]).length - Object.values(b.refused).reduce((a, x) => a + x, 0));
      }
    };
    await Promise.all(Array.from({ length: 6 }, worker));

    const operator = secureKafka(config, 'operator');
    await waitAllCommitted(operator, groupId, topics.events, 90_000);
    const onTopic = (await groupProgress(operator, groupId, topics.events)).reduce((a, p) => a + Number(p.end), 0);
    expect(onTopic).toBeGreaterThanOrEqual(pop.acceptedRecords); // one record per (batch, day)

    // The analyst: the proxies over the views give exactly the admin's view rows, and nothing else.
    const ad2 = admin();
    const an = secureClickHouse(config, 'analyst');
    try {
      expect(await syncAnalystViews(sqlClient(ad2), E2E_LAYOUT)).toEqual([
        'crash_rates',
        'crash_rates_by_app_version',
        'daily_active_devices',
        'daily_active_devices_by_app',
        'release_policy',
      ]);
      // Exact, through the query command's code connected as the analyst (never the aggregator's
      // credentials) to the views database.
      const analystStore = await openStore(
        analystStoreOptions(
          loadAnalystConfig({
            ANALYST_CLICKHOUSE_URL: secureClickHouseUrl(config),
            ANALYST_CLICKHOUSE_TLS_CA_FILE: securePaths(config).caCert,
            ANALYST_CLICKHOUSE_PASSWORD_FILE: clickhousePasswordFile(config, 'analyst'),
            ANALYST_DATABASE: E2E_LAYOUT.viewsDb,
          }),
        ),
      );
      try {
        const results = await reportsVsOracle(analystStore, pop.counted, K);
        for (const r of results) {
          expect(r.want.length).toBeGreaterThan(0);
          expect(r.got, `${r.req.report} by ${r.req.by.join(',') || 'none'}`).toEqual(r.want);
        }
      } finally {
        await analystStore.close();
      }
      const q = (db: string) =>
        `SELECT toString(day) AS day, app_id, app_version, device_model, os_version, country, toString(active_devices) AS n FROM ${db}.daily_active_devices ORDER BY day, app_id, app_version, device_model, os_version, country`;
      const seenByAdmin = await rowsOf(ad2, q(E2E_LAYOUT.analyticsDb));
      const seenByAnalyst = await rowsOf(an, q(E2E_LAYOUT.viewsDb));
      expect(seenByAdmin.length).toBeGreaterThan(0);
      expect(seenByAnalyst).toEqual(seenByAdmin);
      expect(toClickHouseError(await rowsOf(an, `SELECT count() FROM ${E2E_LAYOUT.analyticsDb}.daily_agg`).catch((e: unknown) => e))?.type).toBe(
        'DATABASE_ACCESS_DENIED',
      );
      const crash = await rowsOf<{ c: string }>(an, `SELECT count() AS c FROM ${E2E_LAYOUT.viewsDb}.crash_rates`);
      expect(Number(crash[0]?.c)).toBeGreaterThan(0);
      // The dashboard's roll-up views reach the analyst through their proxies too, row for row.
      const byApp = (db: string) =>
        `SELECT toString(day) AS day, app_id, toString(active_devices) AS n FROM ${db}.daily_active_devices_by_app ORDER BY day, app_id`;
      const byAppAdmin = await rowsOf(ad2, byApp(E2E_LAYOUT.analyticsDb));
      expect(byAppAdmin.length).toBeGreaterThan(0);
      expect(await rowsOf(an, byApp(E2E_LAYOUT.viewsDb))).toEqual(byAppAdmin);
      const byVersion = (db: string) =>
        `SELECT toString(day) AS day, app_id, app_version, toString(active_devices) AS n, toString(sessions) AS s, toString(crashes) AS c, toString(crashed_devices) AS cd FROM ${db}.crash_rates_by_app_version ORDER BY day, app_id, app_version`;
      const byVersionAdmin = await rowsOf(ad2, byVersion(E2E_LAYOUT.analyticsDb));
      expect(byVersionAdmin.length).toBeGreaterThan(0);
      expect(await rowsOf(an, byVersion(E2E_LAYOUT.viewsDb))).toEqual(byVersionAdmin);
    } finally {
      await Promise.all([ad2.close(), an.close()]);
    }
  });
});
