// The engines enforce the split (deploy/THREAT-MODEL.md): each principal of the secured stack can do exactly what its
// role allows, and every forbidden action fails with an authorization or authentication error from Kafka
// or ClickHouse itself. Negative controls: with a grant-everything ACL added, the same Kafka reads
// succeed (so the denials come from the ACLs, not from a broken topic or client); the admin, who has no
// database restriction, reads the same ClickHouse tables the analyst is refused.
//
// Runs against the secured local stack (npm run stack:up -- --secure), started here if it is not running.
// Topics are this run's own (unique names) with ACLs from the same module the stack and topics:plan use.
import { randomBytes } from 'node:crypto';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import kafkajs, { type Kafka as KafkaClient, type LogEntry } from 'kafkajs';
import { loadStackConfig } from './config.ts';
import { toClickHouseError } from './clickhouse-errors.ts';
import { upSecureStack } from './stack.ts';
import {
  clickhousePasswordFile,
  deprovisionKafka,
  provisionKafka,
  readSecrets,
  secureClickHouse,
  secureClickHouseUrl,
  secureKafka,
  secureKafkaBrokers,
  securePaths,
} from './secure.ts';
import { analystStoreOptions, loadAnalystConfig } from '../aggregator/analyst-config.ts';
import { utcDay } from '../aggregator/facts.ts';
import { runLoggedExactReport, runPrivateReport } from '../aggregator/private-query.ts';
import { runReport } from '../aggregator/query.ts';
import { openStore } from '../aggregator/store-open.ts';
import { zoneGroup, type AclTopic } from '../tools/security/acls.ts';
import { readFileSync } from 'node:fs';

const { Kafka, logLevel, AclResourceTypes, AclOperationTypes, AclPermissionTypes, ResourcePatternTypes } = kafkajs;

const config = loadStackConfig();
const run = `sec${Date.now().toString(36)}${randomBytes(2).toString('hex')}`;
const T = {
  events: `${run}.events`,
  personalCn: `${run}.personal.cn`,
  rejectsCn: `${run}.rejects.cn`,
  personalRu: `${run}.personal.ru`,
  rejectsRu: `${run}.rejects.ru`,
};
const topics: AclTopic[] = [
  { topic: T.events, kind: 'events', zone: undefined },
  { topic: T.personalCn, kind: 'personal', zone: 'cn' },
  { topic: T.rejectsCn, kind: 'rejects', zone: 'cn' },
  { topic: T.personalRu, kind: 'personal', zone: 'ru' },
  { topic: T.rejectsRu, kind: 'rejects', zone: 'ru' },
];
const aggGroup = `${run}-aggregator`;

type ReadResult = { ok: true; values: string[] } | { ok: false; error: { name: string; type?: string | undefined; message: string }; logs: string };

/**
 * Consumes `topic` from the beginning as the client's principal until `expect` values arrived, or the
 * consumer fails. Returns the failure with the broker's error type; kafkajs reports a refused group as
 * "Failed to find group coordinator" and keeps the broker's GROUP_AUTHORIZATION_FAILED in its debug log,
 * so the log text is returned too.
 */
async function readAs(kafkaFor: (logs: string[]) => KafkaClient, groupId: string, topic: string, expected: number, timeoutMs = 20_000): Promise<ReadResult> {
  const logs: string[] = [];
  // Retries cover the retriable start-up states of a fresh broker (coordinator loading); authorization
  // errors are not retriable, so a refused read still fails at once.
  const consumer = kafkaFor(logs).consumer({
    groupId,
    maxWaitTimeInMs: 300,
    retry: { retries: 5, initialRetryTime: 200, restartOnFailure: async () => false },
  });
  const values: string[] = [];
  try {
    await consumer.connect();
    await consumer.subscribe({ topics: [topic], fromBeginning: true });
    const done = new Promise<ReadResult>((resolve) => {
      consumer.on(consumer.events.CRASH, (e) => {
        const err = e.payload.error as Error & { type?: string };
        resolve({ ok: false, error: { name: err.name, type: err.type, message: err.message }, logs: logs.join('\n') });
      });
      void consumer
        .run({
          eachMessage: async ({ message }) => {
            values.push(message.value?.toString() ?? '');
            if (values.length >= expected) resolve({ ok: true, values });
          },
        })
        .catch((err: Error & { type?: string }) =>
          resolve({ ok: false, error: { name: err.name, type: err.type, message: err.message }, logs: logs.join('\n') }),
        );
      setTimeout(
        () => resolve({ ok: false, error: { name: 'Timeout', message: `no ${expected} records within ${timeoutMs} ms` }, logs: logs.join('\n') }),
        timeoutMs,
      ).unref();
    });
    return await done;
  } catch (e) {
    const err = e as Error & { type?: string };
    return { ok: false, error: { name: err.name, type: err.type, message: err.message }, logs: logs.join('\n') };
  } finally {
    await consumer.disconnect().catch(() => {});
  }
}

/** A client for `role` that records kafkajs's debug log (where refused group lookups end up). */
const as = (role: Parameters<typeof secureKafka>[1]) => (logs: string[]) =>
  new Kafka({
    clientId: `${run}-${role}`,
    brokers: secureKafkaBrokers(config),
    ssl: { ca: [readFileSync(securePaths(config).caCert, 'utf8')] },
    sasl: { mechanism: 'scram-sha-512', username: role, password: readSecrets(config)!.kafka[role] },
    logLevel: logLevel.DEBUG,
    logCreator: () => (e: LogEntry) => {
      const err = (e.log as { error?: unknown }).error;
      if (err) logs.push(`${e.log.message}: ${typeof err === 'string' ? err : JSON.stringify(err)} ${(err as Error).message ?? ''}`);
    },
    connectionTimeout: 5000,
    retry: { retries: 1, initialRetryTime: 100 },
  });

async function produceAs(role: Parameters<typeof secureKafka>[1], topic: string, values: string[], idempotent = true): Promise<void> {
  const p = secureKafka(config, role).producer({ idempotent, maxInFlightRequests: 1 });
  await p.connect();
  try {
    await p.send({ topic, acks: -1, messages: values.map((v) => ({ key: v, value: v })) });
  } finally {
    await p.disconnect();
  }
}

/** Grant-everything ACLs (every principal may read every topic and group): the negative control. */
const allowAll = [
  {
    resourceType: AclResourceTypes.TOPIC,
    resourceName: '*',
    resourcePatternType: ResourcePatternTypes.LITERAL,
    principal: 'User:*',
    host: '*',
    operation: AclOperationTypes.READ,
    permissionType: AclPermissionTypes.ALLOW,
  },
  {
    resourceType: AclResourceTypes.GROUP,
    resourceName: '*',
    resourcePatternType: ResourcePatternTypes.LITERAL,
    principal: 'User:*',
    host: '*',
    operation: AclOperationTypes.READ,
    permissionType: AclPermissionTypes.ALLOW,
  },
];

// The secured stack keeps its topics between runs: this run's go with it (stack/secure.ts).
afterAll(async () => {
  await deprovisionKafka(config, run);
}, 60_000);

beforeAll(async () => {
  await upSecureStack(config);
  await provisionKafka(config, topics, { aggregatorGroup: aggGroup, partitions: 1 });
  // ACLs reach the authorizer through the metadata log: wait until one of them is in effect.
  const deadline = Date.now() + 15_000;
  for (;;) {
    try {
      await produceAs('ingest', T.events, ['e1', 'e2']);
      break;
    } catch (e) {
      if (Date.now() > deadline) throw e;
      await new Promise((r) => setTimeout(r, 300));
    }
  }
}, 180_000);

describe('Kafka: each principal can do exactly what its role allows', () => {
  it('ingest writes every pipeline topic (idempotent, acks=all)', async () => {
    for (const t of [T.personalCn, T.rejectsCn, T.personalRu, T.rejectsRu]) await produceAs('ingest', t, [`${t}-1`]);
  });

  it('the aggregator reads the events topic', async () => {
    const r = await readAs(as('aggregator'), aggGroup, T.events, 2);
    expect(r).toEqual({ ok: true, values: ['e1', 'e2'] });
  });

  it("a zone principal reads its zone's personal and rejects topics", async () => {
    expect(await readAs(as('zone-cn'), `${zoneGroup('cn')}-${run}`, T.personalCn, 1)).toEqual({ ok: true, values: [`${T.personalCn}-1`] });
    expect(await readAs(as('zone-cn'), `${zoneGroup('cn')}-${run}-r`, T.rejectsCn, 1)).toEqual({ ok: true, values: [`${T.rejectsCn}-1`] });
    expect(await readAs(as('zone-ru'), `${zoneGroup('ru')}-${run}`, T.personalRu, 1)).toEqual({ ok: true, values: [`${T.personalRu}-1`] });
  });
});

describe('Kafka: every forbidden action fails with an authorization error', () => {
  it('the aggregator reading a personal topic: TOPIC_AUTHORIZATION_FAILED', async () => {
    const r = await readAs(as('aggregator'), aggGroup, T.personalCn, 1);
    expect(r.ok).toBe(false);
    if (!r.ok) expect(r.error.type).toBe('TOPIC_AUTHORIZATION_FAILED');
  });

  it("zone-cn reading zone-ru's personal topic, or the events topic: TOPIC_AUTHORIZATION_FAILED", async () => {
    for (const t of [T.personalRu, T.events]) {
      const r = await readAs(as('zone-cn'), `${zoneGroup('cn')}-${run}-x`, t, 1);
      expect(r.ok).toBe(false);
      if (!r.ok) expect(r.error.type).toBe('TOPIC_AUTHORIZATION_FAILED');
    }
  });

  it('ingest reading the events topic: its group is refused (GROUP_AUTHORIZATION_FAILED)', async () => {
    const r = await readAs(as('ingest'), aggGroup, T.events, 1, 15_000);
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.error.name).toBe('KafkaJSGroupCoordinatorNotFound');
      expect(r.logs).toContain('GROUP_AUTHORIZATION_FAILED');
    }
  });

  it('the aggregator writing the events topic, a zone principal writing its own topic: refused', async () => {
    for (const [role, t] of [
      ['aggregator', T.events],
      ['zone-cn', T.personalCn],
    ] as const) {
      // Idempotent: InitProducerId needs IDEMPOTENT_WRITE on the cluster, which only ingest has.
      const idem = await produceAs(role, t, ['x']).then(
        () => undefined,
        (e: Error & { type?: string }) => e,
      );
      expect(idem?.type).toBe('CLUSTER_AUTHORIZATION_FAILED');
      // Plain producer: the write itself reaches the topic check.
      const plain = await produceAs(role, t, ['x'], false).then(
        () => undefined,
        (e: Error & { type?: string }) => e,
      );
      expect(plain?.message).toMatch(/Not authorized to access topics: \[Topic authorization failed\]/);
    }
  });

  it('a principal creating a topic or reading ACLs without being the operator: refused', async () => {
    const admin = secureKafka(config, 'ingest').admin();
    await admin.connect();
    try {
      const created = await admin.createTopics({ topics: [{ topic: `${run}.sneaky` }] }).then(
        () => 'created',
        (e: Error & { type?: string; errors?: Array<{ type?: string }> }) => e.errors?.[0]?.type ?? e.type ?? e.message,
      );
      expect(created).toBe('TOPIC_AUTHORIZATION_FAILED');
      const acls = await admin
        .describeAcls({
          resourceType: AclResourceTypes.ANY,
          resourcePatternType: ResourcePatternTypes.ANY,
          operation: AclOperationTypes.ANY,
          permissionType: AclPermissionTypes.ANY,
        })
        .then(
          () => 'listed',
          (e: Error & { type?: string }) => e.type,
        );
      expect(acls).toBe('CLUSTER_AUTHORIZATION_FAILED');
    } finally {
      await admin.disconnect();
    }
  });
});

describe('Kafka: a wrong password or a wrong transport fails to connect', () => {
  it('a wrong password: SASL authentication fails, and the error does not carry the password', async () => {
    const wrong = `wrong-${randomBytes(8).toString('hex')}`;
    const admin = secureKafka(config, 'aggregator', { password: wrong }).admin();
    const err = await admin.connect().then(
      () => undefined,
      (e: Error) => e,
    );
    await admin.disconnect().catch(() => {});
    expect(err?.name).toBe('KafkaJSSASLAuthenticationError');
    expect(err?.message).toMatch(/invalid credentials/);
    expect(`${err?.message} ${err?.stack}`).not.toContain(wrong);
  });

  it('plain text to the TLS listener, TLS without SASL, and TLS without trusting the CA: refused', async () => {
    const base = {
      clientId: `${run}-raw`,
      brokers: secureKafkaBrokers(config),
      logLevel: logLevel.NOTHING,
      connectionTimeout: 3000,
      requestTimeout: 5000,
      retry: { retries: 0 },
    };
    const plain = new Kafka(base).admin();
    const e1 = await plain
      .connect()
      .then(() => plain.listTopics())
      .then(
        () => undefined,
        (e: Error & { cause?: Error }) => e,
      );
    await plain.disconnect().catch(() => {});
    expect(e1?.cause?.name ?? e1?.name).toMatch(/KafkaJSConnectionClosedError|KafkaJSConnectionError/);

    // ApiVersions is answered before authentication (Kafka allows it); anything after is refused.
    const noSasl = new Kafka({ ...base, ssl: { ca: [readFileSync(securePaths(config).caCert, 'utf8')] } }).admin();
    const e2 = await noSasl
      .connect()
      .then(() => noSasl.listTopics())
      .then(
        () => undefined,
        (e: Error & { cause?: Error }) => e,
      );
    await noSasl.disconnect().catch(() => {});
    expect(e2).toBeDefined();

    const noCa = new Kafka({ ...base, ssl: true, sasl: { mechanism: 'scram-sha-512', username: 'operator', password: 'irrelevant' } }).admin();
    const e3 = await noCa.connect().then(
      () => undefined,
      (e: Error & { cause?: Error }) => e,
    );
    await noCa.disconnect().catch(() => {});
    expect(`${e3?.message} ${e3?.cause?.message}`).toMatch(/unable to verify the first certificate|self.signed/);
  });
});

describe('Kafka negative control: with a grant-everything ACL the same reads succeed', () => {
  it('aggregator reads personal, zone-cn reads zone-ru, ingest reads events once User:* may read everything', async () => {
    const admin = secureKafka(config, 'operator').admin();
    await admin.connect();
    try {
      await admin.createAcls({ acl: allowAll });
      const deadline = Date.now() + 15_000;
      let r = await readAs(as('aggregator'), aggGroup, T.personalCn, 1, 8000);
      while (!r.ok && Date.now() < deadline) r = await readAs(as('aggregator'), aggGroup, T.personalCn, 1, 8000);
      expect(r).toEqual({ ok: true, values: [`${T.personalCn}-1`] });
      expect(await readAs(as('zone-cn'), `${zoneGroup('cn')}-${run}-x`, T.personalRu, 1)).toEqual({ ok: true, values: [`${T.personalRu}-1`] });
      expect(await readAs(as('ingest'), `${run}-ingest-control`, T.events, 2)).toEqual({ ok: true, values: ['e1', 'e2'] });
    } finally {
      await admin.deleteAcls({ filters: allowAll });
      await admin.disconnect();
    }
  });
});

describe('ClickHouse: users.xml users enforce the split on 18.16', () => {
  const app = `app_${run}`;
  const chError = async (p: Promise<unknown>) => {
    const e = await p.then(
      () => undefined,
      (err: unknown) => err,
    );
    return toClickHouseError(e);
  };
  const admin = () => secureClickHouse(config, 'default');
  const aggregator = () => secureClickHouse(config, 'aggregator');
  const analyst = () => secureClickHouse(config, 'analyst');
  const clients: Array<ReturnType<typeof admin>> = [];
  const keep = <C extends ReturnType<typeof admin>>(c: C) => (clients.push(c), c);
  // wait_end_of_query=1 (an HTTP parameter, not a setting, so allowed under readonly=1): the server
  // buffers the result, so an error part-way (a limit) arrives as an HTTP error, not after streamed rows.
  const rows = async <R>(c: ReturnType<typeof admin>, query: string, settings: Record<string, unknown> = {}) =>
    (await (await c.query({ query, format: 'JSONEachRow', clickhouse_settings: { wait_end_of_query: 1, ...settings } as never })).json<R>()) as R[];

  afterAll(async () => {
    await Promise.all(clients.map((c) => c.close()));
  });

  it('the aggregator writes the analytics database; an analyst reads the k-suppressed view through analytics_views', async () => {
    const agg = keep(aggregator());
    // Six devices, one session each: above the k = 5 threshold the views were migrated with.
    await agg.command({
      query: `INSERT INTO analytics.facts_in SELECT today(), '${app}', '1.0', 'm1', 'os1', 'CN', 'session_start', toFixedString(toString(number), 16), toFixedString(concat('k', toString(number)), 16) FROM system.numbers LIMIT 6`,
    });
    const an = keep(analyst());
    const got = await rows<{ active_devices: string }>(an, `SELECT active_devices FROM analytics_views.daily_active_devices WHERE app_id = '${app}'`);
    expect(got.map((r) => Number(r.active_devices))).toEqual([6]);
  });

  it('an analyst cannot read the aggregate tables, the personal table, or write anything', async () => {
    const an = keep(analyst());
    expect((await chError(rows(an, 'SELECT count() FROM analytics.daily_agg')))?.type).toBe('DATABASE_ACCESS_DENIED');
    expect((await chError(rows(an, 'SELECT count() FROM analytics.daily_active_devices')))?.type).toBe('DATABASE_ACCESS_DENIED');
    expect((await chError(rows(an, 'SELECT * FROM personal_row.rights_requests')))?.type).toBe('DATABASE_ACCESS_DENIED');
    expect((await chError(an.command({ query: `INSERT INTO analytics_views.daily_active_devices (app_id) VALUES ('x')` })))?.type).toBe('READONLY');
    expect((await chError(an.command({ query: 'CREATE TABLE analytics_views.t (x UInt8) ENGINE = Memory' })))?.type).toBe('READONLY');
    // No way around through other credentials or settings: table functions and SET are refused.
    expect((await chError(rows(an, `SELECT * FROM remote('127.0.0.1:${config.secure.tcpPort}', analytics.daily_agg)`)))?.type).toBe('READONLY');
    // Turning prefer_localhost_replica back on would make the proxy run the view as the analyst (and be
    // denied anyway); readonly=1 refuses the change itself.
    expect((await chError(rows(an, 'SELECT 1', { prefer_localhost_replica: 1 })))?.type).toBe('READONLY');
  });

  it('analyst query limits: a result over max_result_rows is an error, not a silent cut', async () => {
    const an = keep(analyst());
    const e = await chError(rows(an, 'SELECT number FROM system.numbers LIMIT 200000'));
    expect(e?.type).toBe('TOO_MANY_ROWS_OR_BYTES');
    expect(e?.message).toMatch(/Limit for result exceeded, max rows: 100\.00 thousand/);
  });

  it('the aggregator cannot read the personal table or the analyst proxies', async () => {
    const agg = keep(aggregator());
    expect((await chError(rows(agg, 'SELECT * FROM personal_row.rights_requests')))?.type).toBe('DATABASE_ACCESS_DENIED');
    expect((await chError(rows(agg, 'SELECT * FROM analytics_views.daily_active_devices')))?.type).toBe('DATABASE_ACCESS_DENIED');
    expect((await chError(agg.command({ query: 'CREATE DATABASE sneaky' })))?.type).toBe('DATABASE_ACCESS_DENIED');
  });

  it('a wrong password and a password-less default user are refused', async () => {
    const wrong = `wrong-${randomBytes(8).toString('hex')}`;
    const bad = keep(secureClickHouse(config, 'analyst', { password: wrong }));
    const e = await chError(rows(bad, 'SELECT 1'));
    expect(e?.type).toBe('WRONG_PASSWORD');
    expect(e?.message).not.toContain(wrong);
    const none = keep(secureClickHouse(config, 'default', { password: '' }));
    expect((await chError(rows(none, 'SELECT 1')))?.type).toBe('REQUIRED_PASSWORD');
  });

  it('the query command connects as the analyst (ANALYST_*) and answers from the views database', async () => {
    const store = await openStore(
      analystStoreOptions(
        loadAnalystConfig({
          ANALYST_CLICKHOUSE_URL: secureClickHouseUrl(config),
          ANALYST_CLICKHOUSE_TLS_CA_FILE: securePaths(config).caCert,
          ANALYST_CLICKHOUSE_PASSWORD_FILE: clickhousePasswordFile(config, 'analyst'),
          ANALYST_DATABASE: 'analytics_views',
        }),
      ),
    );
    try {
      const today = utcDay(Date.now());
      const question = { report: 'crash-rate', from: today, to: today, app, by: ['app_id'], format: 'json' } as const;
      // Exact answers are logged: here by the server (log_queries=1 in the analyst's profile), since the
      // read-only analyst cannot write a privacy ledger; the private path says why it cannot answer.
      const answer = await runLoggedExactReport(store, { ...question, by: [...question.by] });
      await expect(runPrivateReport(store, { ...question, by: [...question.by] }, undefined)).rejects.toMatchObject({ code: 'AGG_NO_LEDGER' });
      const ad = keep(admin());
      await ad.command({ query: 'SYSTEM FLUSH LOGS' });
      const logged = await rows<{ user: string }>(
        ad,
        `SELECT user FROM system.query_log WHERE type = 2 AND position(query, 'analytics_views.crash_rates') > 0 AND position(query, '${app}') > 0`,
      );
      expect(logged.map((r) => r.user)).toContain('analyst');
      expect(answer).toEqual([
        { app_id: app, device_days: 6, sessions: 6, crashes: 0, crashed_device_days: 0, crash_free_devices_pct: 100, crashes_per_1000_sessions: 0 },
      ]);
      expect(await store.query(`SELECT min_group_devices FROM analytics_views.release_policy`)).toEqual([{ min_group_devices: 5 }]);
      // The same credentials pointed at the aggregate database, or at the raw states: refused.
      expect((await chError(store.query('SELECT count() FROM analytics.daily_agg')))?.type).toBe('DATABASE_ACCESS_DENIED');
      expect(
        (
          await chError(
            runReport({ database: 'analytics', query: (sql) => store.query(sql) }, { report: 'dau', from: today, to: today, by: [], format: 'json' }),
          )
        )?.type,
      ).toBe('DATABASE_ACCESS_DENIED');
    } finally {
      await store.close();
    }
  });

  it("negative control: the aggregator's credentials read the raw states the analyst is refused", async () => {
    const agg = keep(aggregator());
    const n = await rows<{ c: string }>(agg, `SELECT uniqExactMerge(devices) AS c FROM analytics.daily_agg WHERE app_id = '${app}'`);
    expect(Number(n[0]?.c)).toBe(6);
  });

  it('negative control: the admin, with no database restriction, reads the same tables', async () => {
    const ad = keep(admin());
    await ad.command({ query: `INSERT INTO personal_row.rights_requests VALUES ('${run}', now(), 'access', 'device-of-${run}', 'open')` });
    expect(
      (await rows<{ device_id: string }>(ad, `SELECT device_id FROM personal_row.rights_requests WHERE request_id = '${run}'`)).map((r) => r.device_id),
    ).toEqual([`device-of-${run}`]);
    const n = await rows<{ c: string }>(ad, `SELECT count() AS c FROM analytics.daily_agg WHERE app_id = '${app}'`);
    expect(Number(n[0]?.c)).toBeGreaterThan(0);
  });
});
