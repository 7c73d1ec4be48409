/**
 * ClickHouse users of the secured stack, for the server version we run (Debian's 18.16). That release
 * has no SQL access control (CREATE USER / GRANT arrived in 20.x), so the split is made of users.xml
 * users, each with a SHA-256 password hash, a loopback-only network list, a settings profile and an
 * `allow_databases` list (policy 4.1: special access controls; policy 1.1.4: personal and non-personal
 * data used separately). The SQL equivalent for a modern server is deploy/security/clickhouse-grants.sql.
 *
 * What 18.16 enforces, checked on the real server (stack/secure.int.test.ts):
 * - `allow_databases` is checked on EVERY table a query touches, including the tables a view reads.
 *   A view in another database therefore does not give a user access to less than its source database:
 *   an analyst allowed only `analytics_views` gets "Access denied to database analytics" from a plain
 *   view over `analytics`. So the analyst views are Distributed tables in `analytics_views` over the
 *   k-suppressed views of `analytics`, on a one-shard cluster whose connection logs in as `views_reader`
 *   (allowed `analytics`, readonly). The analyst can read those proxies and nothing in `analytics`,
 *   hence never the raw uniqExact states of `daily_agg`, which could be merged into counts below the
 *   k-anonymity threshold. `prefer_localhost_replica=0` in the analyst profile makes the Distributed
 *   table connect even though the shard is this server (else it would run the view as the analyst and
 *   be denied); readonly=1 stops the analyst from changing that setting, and from table functions
 *   (remote() with other credentials).
 * - readonly=1: no INSERT, no DDL, no SET. Limits: max_memory_usage, max_execution_time,
 *   max_result_rows (result_overflow_mode=throw), per query. log_queries=1: every query the analyst
 *   runs is in system.query_log, which readonly keeps it from turning off; that is where exact answers
 *   are logged here, since a read-only user cannot write the privacy ledger (aggregator/private-query.ts).
 * - `personal_row` (rights-request bookkeeping, policy 5.2) is in nobody's allow list but the admin's.
 * - The `system` database is readable by every user on 18.16 (not configurable there): system.tables
 *   lists names of all tables, system.processes/query_log show query texts. No personal VALUE is in
 *   them as long as no query carries one in its text (the aggregator inserts through a stream).
 */
import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { DEFAULT_PROFILE_XML, UNLIMITED_DEFAULT_QUOTA_XML } from './clickhouse.ts';

export const CLICKHOUSE_USERS = ['default', 'aggregator', 'analyst', 'views_reader', 'answers'] as const;
export type ClickHouseUser = (typeof CLICKHOUSE_USERS)[number];

export interface AnalystLimits {
  /** Bytes one query may use. @default 1 GB */
  maxMemoryUsage: number;
  /** Seconds one query may run. @default 30 */
  maxExecutionTime: number;
  /** Rows one result may have (more is an error, not a silent cut). @default 100000 */
  maxResultRows: number;
}

export const DEFAULT_ANALYST_LIMITS: AnalystLimits = { maxMemoryUsage: 1_000_000_000, maxExecutionTime: 30, maxResultRows: 100_000 };

export interface ClickHouseSecurityLayout {
  /** Database of the aggregate tables and k-suppressed views (AGGREGATOR_DATABASE). @default analytics */
  analyticsDb: string;
  /** Database of the analyst's Distributed proxies. @default analytics_views */
  viewsDb: string;
  /** Database of the personal table, readable by no analytics-side user. @default personal_row */
  personalDb: string;
  /** remote_servers cluster name the proxies use. @default analyst_views_source */
  cluster: string;
  /** Database of the answer service's privacy ledger, writable by the `answers` user only. @default analytics_ledger */
  ledgerDb: string;
}

export const DEFAULT_LAYOUT: ClickHouseSecurityLayout = {
  analyticsDb: 'analytics',
  viewsDb: 'analytics_views',
  personalDb: 'personal_row',
  cluster: 'analyst_views_source',
  ledgerDb: 'analytics_ledger',
};

/**
 * The layout the end-to-end test uses on the same server (stack/e2e-secure.int.test.ts): a
 * database of its own it may drop and rebuild, so its exact comparison never sees other runs' rows.
 */
export const E2E_LAYOUT: ClickHouseSecurityLayout = {
  ...DEFAULT_LAYOUT,
  analyticsDb: 'analytics_e2e',
  viewsDb: 'analytics_e2e_views',
  ledgerDb: 'analytics_e2e_ledger',
};

export function sha256Hex(password: string): string {
  return createHash('sha256').update(password, 'utf8').digest('hex');
}

function xmlEscape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

const LOOPBACK = '<networks><ip>127.0.0.1</ip><ip>::1</ip></networks>';

/** users.xml: only hashes of the passwords; every user reachable from loopback only. */
export function secureUsersXml(
  passwords: Record<ClickHouseUser, string>,
  layouts: readonly ClickHouseSecurityLayout[] = [DEFAULT_LAYOUT],
  limits: AnalystLimits = DEFAULT_ANALYST_LIMITS,
): string {
  const analyticsDbs = layouts.map((l) => l.analyticsDb);
  const viewsDbs = layouts.map((l) => l.viewsDb);
  const ledgerDbs = layouts.map((l) => l.ledgerDb);
  const user = (name: ClickHouseUser, profile: string, dbs: string[] | undefined, comment: string) => `
    <!-- ${comment} -->
    <${name}>
      <password_sha256_hex>${sha256Hex(passwords[name])}</password_sha256_hex>
      ${LOOPBACK}
      <profile>${profile}</profile>
      <quota>default</quota>${dbs ? `\n      <allow_databases>${dbs.map((d) => `<database>${xmlEscape(d)}</database>`).join('')}</allow_databases>` : ''}
    </${name}>`;
  // The people-facing limits, the same for the analyst and the answer service's user.
  const queryLimits = `      <max_memory_usage>${limits.maxMemoryUsage}</max_memory_usage>
      <max_execution_time>${limits.maxExecutionTime}</max_execution_time>
      <max_result_rows>${limits.maxResultRows}</max_result_rows>
      <result_overflow_mode>throw</result_overflow_mode>
      <prefer_localhost_replica>0</prefer_localhost_replica>
      <log_queries>1</log_queries>`;
  return `<?xml version="1.0"?>
<!-- Generated by stack/clickhouse-users.ts for the secured local stack. Hashes only. -->
<yandex>
  <profiles>
${DEFAULT_PROFILE_XML}
    <analyst>
      <readonly>1</readonly>
${queryLimits}
    </analyst>
    <answers>
      <readonly>0</readonly>
      <allow_ddl>0</allow_ddl>
      <insert_distributed_sync>1</insert_distributed_sync>
${queryLimits}
    </answers>
    <views_reader>
      <readonly>1</readonly>
      <max_memory_usage>${limits.maxMemoryUsage}</max_memory_usage>
    </views_reader>
  </profiles>
  <users>${user('default', 'default', undefined, 'administrator (operator): every database; migrations of the analyst proxies and the personal table')}${user(
    'aggregator',
    'default',
    analyticsDbs,
    'the aggregator: reads and writes the analytics database(s) only',
  )}${user('analyst', 'analyst', viewsDbs, 'analysts: read-only, the k-suppressed views (Distributed proxies) only, with query limits')}${user(
    'views_reader',
    'views_reader',
    analyticsDbs,
    'used only by the proxies in the views database (remote_servers), read-only',
  )}${user(
    'answers',
    'answers',
    [...viewsDbs, ...ledgerDbs],
    'the answer service (aggregator/answer-service.ts): reads the views, appends to the privacy ledger; no DDL',
  )}
  </users>
${UNLIMITED_DEFAULT_QUOTA_XML}</yandex>
`;
}

/**
 * config.xml addition: the one-shard cluster the analyst proxies read through. The Distributed engine
 * needs the views_reader password in clear here (config.xml is written 0600).
 */
export function analystClusterXml(host: string, tcpPort: number, viewsReaderPassword: string, layout: ClickHouseSecurityLayout = DEFAULT_LAYOUT): string {
  return `  <remote_servers>
    <${layout.cluster}>
      <shard>
        <replica>
          <host>${host}</host>
          <port>${tcpPort}</port>
          <user>views_reader</user>
          <password>${xmlEscape(viewsReaderPassword)}</password>
        </replica>
      </shard>
    </${layout.cluster}>
  </remote_servers>
`;
}

/**
 * The personal table: bookkeeping of data-subject requests (policy 5.2: access, rectification,
 * erasure), keyed by the device identifier the request is about, so it is personal. It exists here so
 * the tests can show that no analytics-side user can read a personal table on the same server; the
 * pipeline itself writes personal data only to the zone topics.
 */
export function personalTableSql(layout: ClickHouseSecurityLayout = DEFAULT_LAYOUT): string[] {
  return [
    `CREATE DATABASE IF NOT EXISTS ${layout.personalDb}`,
    `CREATE TABLE IF NOT EXISTS ${layout.personalDb}.rights_requests (request_id String, received_at DateTime, kind String, device_id String, status String) ENGINE = MergeTree() ORDER BY (received_at, request_id)`,
  ];
}

/**
 * The answer service's privacy ledger (aggregator/private-query.ts) in a database of its own: the
 * `answers` user may write there, and the read-only `analyst`, which is not allowed that database, keeps
 * its logged exact path (system.query_log). The table is the aggregator's migration 002, with `{db}`
 * the ledger database.
 */
export function ledgerTableSql(layout: ClickHouseSecurityLayout = DEFAULT_LAYOUT): string[] {
  const ddl = readFileSync(new URL('../aggregator/migrations/002_privacy_ledger.sql', import.meta.url), 'utf8')
    .replace(/^--.*$/gm, '')
    .replace(/\{db\}/g, layout.ledgerDb)
    .replace(/;\s*$/, '')
    .trim();
  return [`CREATE DATABASE IF NOT EXISTS ${layout.ledgerDb}`, ddl];
}

export interface SqlClient {
  exec(sql: string): Promise<void>;
  rows<T>(sql: string): Promise<T[]>;
}

/**
 * (Re)creates one Distributed proxy in the views database per view of the analytics database, with the
 * view's columns. Run as the admin after the aggregator's migrations (the views must exist); run again
 * when a view's columns change. Returns the proxy names.
 */
export async function syncAnalystViews(db: SqlClient, layout: ClickHouseSecurityLayout = DEFAULT_LAYOUT): Promise<string[]> {
  await db.exec(`CREATE DATABASE IF NOT EXISTS ${layout.viewsDb}`);
  const views = await db.rows<{ name: string }>(`SELECT name FROM system.tables WHERE database = '${layout.analyticsDb}' AND engine = 'View' ORDER BY name`);
  const out: string[] = [];
  for (const { name } of views) {
    // DESCRIBE lists the columns in their order (18.16's system.columns has no position column).
    const cols = await db.rows<{ name: string; type: string }>(`DESCRIBE TABLE ${layout.analyticsDb}.${name}`);
    const ddl = cols.map((c) => `\`${c.name}\` ${c.type}`).join(', ');
    await db.exec(`DROP TABLE IF EXISTS ${layout.viewsDb}.${name}`);
    await db.exec(`CREATE TABLE ${layout.viewsDb}.${name} (${ddl}) ENGINE = Distributed(${layout.cluster}, ${layout.analyticsDb}, ${name})`);
    out.push(name);
  }
  return out;
}
