// The answer service's own ClickHouse user on the secured stack (ClickHouse 18.16, users.xml only:
// stack/clickhouse-users.ts, profile `answers`: readonly=0, allow_ddl=0; allow_databases = the views
// database and the ledger database). It reads the released views and appends to the privacy ledger;
// every other action listed here is refused by the server, and the admin doing the same is the negative
// control. The answer service then serves the private path over HTTPS (a scratch CA) as that user, which
// the read-only analyst could not (AGG_NO_LEDGER). What 18.16 does NOT enforce for a user that may write
// is measured too (the last test): deploy/THREAT-MODEL.md and aggregator/README.md say what follows.
//
// Runs against the secured local stack (npm run stack:up -- --secure), started here if it is not running.
import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { ClickHouseClient, ClickHouseSettings } from '@clickhouse/client';
import { loadStackConfig } from './config.ts';
import { toClickHouseError } from './clickhouse-errors.ts';
import { DEFAULT_LAYOUT } from './clickhouse-users.ts';
import { upSecureStack } from './stack.ts';
import { clickhousePasswordFile, secureClickHouse, secureClickHouseUrl, securePaths } from './secure.ts';
import { analystStoreOptions, loadAnalystConfig } from '../aggregator/analyst-config.ts';
import { parseTokens, sha256Hex, startAnswerService, answersTls, type RunningAnswers } from '../aggregator/answer-service.ts';
import { dayToIso, utcDay } from '../aggregator/facts.ts';
import { runPrivateReport } from '../aggregator/private-query.ts';
import { openStore } from '../aggregator/store-open.ts';
import type { Store } from '../aggregator/store.ts';
import { requestTrusting, scratchCa, type ScratchCa } from '../testing/tls.ts';

const config = loadStackConfig();
const run = `ans${Date.now().toString(36)}${randomBytes(2).toString('hex')}`;
const app = `com.example.${run}`;
const { analyticsDb, viewsDb, ledgerDb } = DEFAULT_LAYOUT;
const today = utcDay(Date.now());

const clients: ClickHouseClient[] = [];
const keep = (c: ClickHouseClient) => (clients.push(c), c);
const answers = () => keep(secureClickHouse(config, 'answers'));
const admin = () => keep(secureClickHouse(config, 'default'));
const rows = async <T = Record<string, unknown>>(c: ClickHouseClient, query: string, settings?: ClickHouseSettings): Promise<T[]> =>
  (await (await c.query({ query, format: 'JSONEachRow', ...(settings ? { clickhouse_settings: settings } : {}) })).json()) as T[];
const exec = (c: ClickHouseClient, query: string, settings?: ClickHouseSettings) =>
  c.command({ query, ...(settings ? { clickhouse_settings: settings } : {}) });
/** The server's error code of a refused statement (undefined: it was not refused). */
const refused = async (p: Promise<unknown>): Promise<number | undefined> =>
  p.then(
    () => undefined,
    (e: unknown) => {
      const err = toClickHouseError(e);
      if (!err) throw e;
      return err.code;
    },
  );
const DATABASE_ACCESS_DENIED = 291;
const DDL_PROHIBITED = 392; // QUERY_IS_PROHIBITED: "DDL queries are prohibited for the user"
const NOT_IMPLEMENTED = 48; // "Method write is not supported by storage View"

const answersEnv = () => ({
  ANALYST_CLICKHOUSE_URL: secureClickHouseUrl(config),
  ANALYST_CLICKHOUSE_TLS_CA_FILE: securePaths(config).caCert,
  ANALYST_CLICKHOUSE_USER: 'answers',
  ANALYST_CLICKHOUSE_PASSWORD_FILE: clickhousePasswordFile(config, 'answers'),
  ANALYST_DATABASE: viewsDb,
});

beforeAll(async () => {
  await upSecureStack(config);
  // Six devices, one session each, in a cell of this run's own app: above k = 5.
  const agg = keep(secureClickHouse(config, 'aggregator'));
  await exec(
    agg,
    `INSERT INTO ${analyticsDb}.facts_in SELECT today(), '${app}', '1.0', 'm1', 'os1', 'CN', 'session_start', toFixedString(toString(number), 16), toFixedString(concat('k', toString(number)), 16) FROM system.numbers LIMIT 6`,
  );
}, 180_000);

afterAll(async () => {
  const ad = secureClickHouse(config, 'default');
  try {
    await exec(ad, `ALTER TABLE ${ledgerDb}.privacy_ledger DELETE WHERE position(analyst, '${run}') > 0`);
    const tables = await rows<{ table: string }>(ad, `SELECT DISTINCT table FROM system.columns WHERE database = '${analyticsDb}' AND name = 'app_id'`);
    const real = await rows<{ name: string }>(ad, `SELECT name FROM system.tables WHERE database = '${analyticsDb}' AND engine LIKE '%MergeTree'`);
    const names = new Set(real.map((r) => r.name));
    for (const { table } of tables) if (names.has(table)) await exec(ad, `ALTER TABLE ${analyticsDb}.${table} DELETE WHERE app_id = '${app}'`);
    for (const t of ['t_bypass']) await exec(ad, `DROP TABLE IF EXISTS ${ledgerDb}.${t}_${run}`);
  } finally {
    await ad.close();
    await Promise.all(clients.map((c) => c.close()));
  }
});

describe('the answers ClickHouse user (18.16 profile readonly=0, allow_ddl=0; the views and ledger databases only)', () => {
  it('reads the released views and appends to the privacy ledger', async () => {
    const an = answers();
    const got = await rows<{ active_devices: string }>(an, `SELECT active_devices FROM ${viewsDb}.daily_active_devices WHERE app_id = '${app}'`);
    expect(got.map((r) => Number(r.active_devices))).toEqual([6]);
    await exec(
      an,
      `INSERT INTO ${ledgerDb}.privacy_ledger (day, at, analyst, request, mode, epsilon, answer) VALUES (today(), now(), 'probe-${run}', '{}', 'probe', 0, '')`,
    );
    expect(await rows(an, `SELECT mode FROM ${ledgerDb}.privacy_ledger WHERE analyst = 'probe-${run}'`)).toEqual([{ mode: 'probe' }]);
  });

  it('cannot read the aggregate tables or the personal table', async () => {
    const an = answers();
    expect(await refused(rows(an, `SELECT count() FROM ${analyticsDb}.daily_agg`))).toBe(DATABASE_ACCESS_DENIED);
    expect(await refused(rows(an, `SELECT count() FROM ${analyticsDb}.daily_active_devices`))).toBe(DATABASE_ACCESS_DENIED);
    expect(await refused(rows(an, 'SELECT count() FROM personal_row.rights_requests'))).toBe(DATABASE_ACCESS_DENIED);
  });

  it('cannot run DDL: create, drop, truncate, alter (the ledger included), create a database, lift allow_ddl with SET, SYSTEM', async () => {
    const an = answers();
    for (const sql of [
      `CREATE TABLE ${ledgerDb}.t_${run} (x UInt8) ENGINE = Memory`,
      `CREATE TABLE ${viewsDb}.t_${run} (x UInt8) ENGINE = Memory`,
      `DROP TABLE ${ledgerDb}.privacy_ledger`,
      `TRUNCATE TABLE ${ledgerDb}.privacy_ledger`,
      `ALTER TABLE ${ledgerDb}.privacy_ledger DELETE WHERE 1`,
      `RENAME TABLE ${ledgerDb}.privacy_ledger TO ${ledgerDb}.moved_${run}`,
      `DETACH TABLE ${ledgerDb}.privacy_ledger`,
      `OPTIMIZE TABLE ${ledgerDb}.privacy_ledger`,
      `CREATE DATABASE db_${run}`,
      'SET allow_ddl = 1',
      'SYSTEM FLUSH LOGS',
    ])
      expect([sql, await refused(exec(an, sql))]).toEqual([sql, DDL_PROHIBITED]);
  });

  it('cannot insert into anything but the ledger: not the aggregate tables, not the views (even asynchronously)', async () => {
    const an = answers();
    expect(await refused(exec(an, `INSERT INTO ${analyticsDb}.facts_in SELECT * FROM ${analyticsDb}.facts_in LIMIT 0`))).toBe(DATABASE_ACCESS_DENIED);
    expect(await refused(exec(an, `INSERT INTO personal_row.rights_requests VALUES ('x', now(), 'access', 'x', 'open')`))).toBe(DATABASE_ACCESS_DENIED);
    const intoProxy = `INSERT INTO ${viewsDb}.release_policy SELECT * FROM ${viewsDb}.release_policy`;
    expect(await refused(exec(an, intoProxy))).toBe(NOT_IMPLEMENTED);
    expect(await refused(exec(an, intoProxy, { insert_distributed_sync: 0 }))).toBe(NOT_IMPLEMENTED);
  });

  it('negative control: the admin, with no profile restriction, does the DDL and reads the tables the answers user is refused', async () => {
    const ad = admin();
    await exec(ad, `CREATE TABLE ${ledgerDb}.t_bypass_${run} (x UInt8) ENGINE = Memory`);
    await exec(ad, `DROP TABLE ${ledgerDb}.t_bypass_${run}`);
    expect(Number((await rows<{ c: string }>(ad, `SELECT count() AS c FROM ${analyticsDb}.daily_agg WHERE app_id = '${app}'`))[0]?.c)).toBeGreaterThan(0);
  });

  it('measured limit of 18.16: allow_ddl given as an HTTP setting lifts the profile (and DDL reaches the aggregate tables through the proxies\u2019 cluster); a non-readonly user may KILL other users\u2019 queries', async () => {
    // The HTTP handler of 18.16 checks URL settings against `readonly` only (SET checks allow_ddl, above).
    // So whoever holds the answers password can run DDL, which is why that password stays with the
    // answer service (deploy/THREAT-MODEL.md). A server with SQL grants and settings constraints (compose,
    // Kubernetes: clickhouse/users.d/answers.xml) has no such gap.
    const an = answers();
    await exec(an, `CREATE TABLE ${ledgerDb}.t_bypass_${run} (x UInt8) ENGINE = Memory`, { allow_ddl: 1 });
    const ad = admin();
    expect(await rows(ad, `SELECT name FROM system.tables WHERE database = '${ledgerDb}' AND name = 't_bypass_${run}'`)).toHaveLength(1);
    await exec(ad, `DROP TABLE ${ledgerDb}.t_bypass_${run}`);
    // And DDL reaches the aggregate tables: a Distributed table over the proxies' cluster logs in as
    // views_reader, which may read them (the raw uniqExact states included).
    await exec(an, `CREATE TABLE ${ledgerDb}.t_bypass_${run} (app_id String) ENGINE = Distributed(${DEFAULT_LAYOUT.cluster}, ${analyticsDb}, daily_agg)`, {
      allow_ddl: 1,
    });
    expect(Number((await rows<{ c: string }>(an, `SELECT count() AS c FROM ${ledgerDb}.t_bypass_${run} WHERE app_id = '${app}'`))[0]?.c)).toBeGreaterThan(0);
    await exec(ad, `DROP TABLE ${ledgerDb}.t_bypass_${run}`);
    const an2 = keep(secureClickHouse(config, 'analyst'));
    const id = `kill-${run}`;
    const slow = an2.query({ query: 'SELECT sleep(3)', query_id: id, format: 'JSONEachRow' }).then(
      async (r) => `finished ${JSON.stringify(await r.json())}`,
      (e: unknown) => `refused ${toClickHouseError(e)?.code}`,
    );
    await new Promise((r) => setTimeout(r, 700));
    await rows(an, `KILL QUERY WHERE query_id = '${id}' SYNC`);
    expect(await slow).toBe('refused 394');
  });
});

describe('the answer service on the secured stack, over HTTPS, as the answers user', () => {
  let pki: ScratchCa;
  let store: Store;
  let svc: RunningAnswers;
  const alice = randomBytes(24).toString('hex');
  const aliceName = `alice-${run}`;

  beforeAll(async () => {
    pki = await scratchCa('answers-test-ca');
    const cert = await pki.issue('answers');
    store = await openStore(analystStoreOptions(loadAnalystConfig(answersEnv())));
    const tls = answersTls({ ANSWERS_TLS_CERT_FILE: cert.certFile, ANSWERS_TLS_KEY_FILE: cert.keyFile });
    svc = await startAnswerService({ ANSWERS_HOST: '127.0.0.1', ANSWERS_PORT: 0 }, parseTokens(`${aliceName} ${sha256Hex(alice)}\n`), store, {
      ...(tls ? { tls } : {}),
      ledgerDatabase: ledgerDb,
    });
  });
  afterAll(async () => {
    await svc?.close();
    await store?.close();
    pki?.remove();
  });

  const question = { args: ['dau', '--from', dayToIso(today), '--to', dayToIso(today), '--app', app, '--by', 'app_id'] };
  const ask = (token: string, ca?: Buffer | string) =>
    requestTrusting(`${svc.url}/v1/answers`, {
      method: 'POST',
      ...(ca ? { ca } : {}),
      headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
      body: JSON.stringify(question),
    });

  it('answers privately over HTTPS; the charge and the noisy answer are in the ledger database when the answer arrives', async () => {
    expect(svc.url).toMatch(/^https:/);
    const res = await ask(alice, readFileSync(pki.ca.certFile));
    expect(res.status).toBe(200);
    const body = JSON.parse(res.text) as { analyst: string; epsilon: number; rows: { app_id: string; device_days: number }[] };
    expect(body).toMatchObject({ analyst: aliceName, epsilon: 0.5, repeated: false });
    expect(body.rows.map((r) => r.app_id)).toEqual([app]);
    const ledger = await rows<{ mode: string; epsilon: number; answer: string }>(
      admin(),
      `SELECT mode, epsilon, answer FROM ${ledgerDb}.privacy_ledger WHERE analyst = '${aliceName}' ORDER BY at`,
    );
    expect(ledger).toEqual([{ mode: 'dp', epsilon: 0.5, answer: JSON.stringify(body.rows) }]);
  });

  it('/readyz is 200 with the ledger; negative control: a service pointed at a database without one is not ready (503)', async () => {
    expect((await requestTrusting(`${svc.url}/readyz`, { ca: readFileSync(pki.ca.certFile) })).status).toBe(200);
    const other = await startAnswerService({ ANSWERS_HOST: '127.0.0.1', ANSWERS_PORT: 0 }, parseTokens(`${aliceName} ${sha256Hex(alice)}\n`), store, {
      ledgerDatabase: viewsDb,
    });
    try {
      const r = await requestTrusting(`${other.url}/readyz`, {});
      expect([r.status, (JSON.parse(r.text) as { code: string }).code]).toEqual([503, 'AGG_NO_LEDGER']);
    } finally {
      await other.close();
    }
  });

  it('refuses a client that does not trust its CA, and a plain-HTTP client', async () => {
    await expect(ask(alice)).rejects.toThrow(/self[- ]signed|unable to (get|verify)|certificate/i);
    const plain = svc.url.replace(/^https:/, 'http:');
    const res = await requestTrusting(`${plain}/healthz`, {}).catch((e: unknown) => e as Error);
    expect(res).toBeInstanceOf(Error);
  });

  it('negative control: the same plain-HTTP request is answered by a service started without certificate files (ANSWERS_UNSAFE_PLAINTEXT_HTTP)', async () => {
    const plainSvc = await startAnswerService({ ANSWERS_HOST: '127.0.0.1', ANSWERS_PORT: 0 }, parseTokens(`${aliceName} ${sha256Hex(alice)}\n`), store);
    try {
      expect(plainSvc.url).toMatch(/^http:/);
      expect((await requestTrusting(`${plainSvc.url}/healthz`, {})).status).toBe(200);
    } finally {
      await plainSvc.close();
    }
  });

  it('negative control: the read-only analyst, not allowed the ledger database, still cannot answer privately (AGG_NO_LEDGER)', async () => {
    const analyst = await openStore(
      analystStoreOptions(
        loadAnalystConfig({ ...answersEnv(), ANALYST_CLICKHOUSE_USER: 'analyst', ANALYST_CLICKHOUSE_PASSWORD_FILE: clickhousePasswordFile(config, 'analyst') }),
      ),
    );
    try {
      const req = { report: 'dau', from: today, to: today, app, by: ['app_id'], format: 'json' } as const;
      // The query command has no ledger outside its views database, where the read-only analyst could not write one.
      await expect(runPrivateReport(analyst, { ...req, by: [...req.by] }, undefined)).rejects.toMatchObject({ code: 'AGG_NO_LEDGER' });
      // The ledger database exists (the answers user writes it): the analyst is not allowed it.
      expect(await refused(analyst.query(`SELECT count() FROM ${ledgerDb}.privacy_ledger`))).toBe(DATABASE_ACCESS_DENIED);
    } finally {
      await analyst.close();
    }
  });
});
