/**
 * Typed configuration of the aggregator, read once at start from `AGGREGATOR_*` (its own) and
 * `PIPELINE_*` (shared with ingest: brokers, topic names). Unknown `AGGREGATOR_*` variables stop the
 * process (runtime/config.ts). Settings whose defaults guard correctness (autoCommit off, commit only
 * after the insert) are not settings at all: they are fixed in consumer.ts.
 */
import { readFileSync } from 'node:fs';
import { ConfigError, defineSettings, loadConfig, type ConfigOf } from '../runtime/config.ts';
import { checkKafkaSecurity } from '../runtime/kafka.ts';
import { pipelineSettings } from '../runtime/pipeline-settings.ts';
import { CATEGORIES, DAY_MS, retentionDays } from '../schemas/index.ts';
import { clickhouseTransportProblems } from './clickhouse-tls.ts';
import { DEFAULT_CONTRIBUTION_BOUND, DEFAULT_DAILY_EPSILON, DEFAULT_EPSILON } from './migrate.ts';

/**
 * Default retention of the aggregates, from the policy's category map (schemas/categories.ts): the
 * longest retention of the non-personal categories the aggregates are built from (device_info etc.,
 * P25M: "aggregates compare a year with the previous one"), in days of the map's one calendar
 * (`retentionDays`: months of 30 days, years of 365, as ingest's topic retention), so the aggregates
 * are dropped no later than the map allows (25 months -> 750 days).
 */
export function policyRetentionDays(): number {
  let best = 0;
  for (const c of Object.values(CATEGORIES) as Array<{ personal: boolean; retention: string }>) {
    if (c.personal) continue;
    best = Math.max(best, retentionDays(c.retention));
  }
  return best > 0 ? best : 400;
}

export const AGGREGATOR_PREFIX = 'AGGREGATOR_';

export const aggregatorSettings = defineSettings({
  AGGREGATOR_HOST: {
    kind: 'string',
    default: '127.0.0.1',
    doc: 'Address the ops server (/metrics, /healthz, /readyz) listens on; 0.0.0.0 in containers so probes and Prometheus can reach it.',
  },
  AGGREGATOR_PORT: { kind: 'int', min: 0, max: 65535, default: 18081, doc: 'Port of /metrics, /healthz and /readyz (0 = any free port).' },
  AGGREGATOR_GROUP_ID: {
    kind: 'string',
    pattern: /^[A-Za-z0-9._-]{1,200}$/,
    default: 'telemetry-aggregator',
    doc: 'Kafka consumer group; every copy with the same group shares the partitions of the events topic.',
  },
  AGGREGATOR_SESSION_TIMEOUT_MS: {
    kind: 'int',
    min: 6000,
    max: 300_000,
    default: 10_000,
    doc: 'Kafka group session timeout: how soon the partitions of a member that died are handed to the others.',
  },
  AGGREGATOR_FROM_BEGINNING: {
    kind: 'bool',
    default: true,
    doc: 'Where a group with no committed offset starts: true = earliest retained event (no loss on first start).',
  },
  AGGREGATOR_CLICKHOUSE: {
    kind: 'enum',
    values: ['server', 'embedded'] as const,
    default: 'server',
    doc: 'Sink: `server` = ClickHouse over HTTP (@clickhouse/client), `embedded` = in-process chdb at AGGREGATOR_CHDB_PATH.',
  },
  AGGREGATOR_CLICKHOUSE_URL: {
    kind: 'url',
    default: 'http://127.0.0.1:18123',
    doc: 'ClickHouse HTTP(S) endpoint (server sink). The default is the local stack. `http://` is accepted to a loopback host only, unless AGGREGATOR_UNSAFE_PLAINTEXT_CLICKHOUSE=true (aggregator/clickhouse-tls.ts).',
  },
  AGGREGATOR_CLICKHOUSE_TLS_CA_FILE: {
    kind: 'string',
    default: '',
    doc: "PEM CA that signed the ClickHouse server's certificate (https:// URL with a private CA); empty = the system's CAs. The server certificate is always verified.",
  },
  AGGREGATOR_UNSAFE_PLAINTEXT_CLICKHOUSE: {
    kind: 'bool',
    default: false,
    doc: 'DEVELOPMENT ONLY: allow an http:// AGGREGATOR_CLICKHOUSE_URL to a host that is not loopback (password and data in clear on the network).',
  },
  AGGREGATOR_CLICKHOUSE_USER: { kind: 'string', default: 'default', doc: 'ClickHouse user (server sink).' },
  AGGREGATOR_CLICKHOUSE_PASSWORD: {
    kind: 'string',
    secret: true,
    default: '',
    doc: 'ClickHouse password (server sink); prefer AGGREGATOR_CLICKHOUSE_PASSWORD_FILE. Never logged.',
  },
  AGGREGATOR_CLICKHOUSE_PASSWORD_FILE: {
    kind: 'string',
    default: '',
    doc: 'File holding the ClickHouse password (a mounted secret; trailing newline ignored); exclusive with AGGREGATOR_CLICKHOUSE_PASSWORD. Read again when it changes (rotation without a restart).',
  },
  AGGREGATOR_CHDB_PATH: { kind: 'string', default: '.local/chdb', doc: 'Data folder of the embedded chdb sink (one process may open it at a time).' },
  AGGREGATOR_DATABASE: {
    kind: 'string',
    pattern: /^[A-Za-z_][A-Za-z0-9_]{0,62}$/,
    default: 'analytics',
    doc: 'ClickHouse database of the aggregate tables and analyst views (created by the migrations).',
  },
  AGGREGATOR_FLUSH_INTERVAL_MS: {
    kind: 'int',
    min: 10,
    max: 60_000,
    default: 500,
    doc: 'Flush buffered rows at least this often (bounds ingest-ack-to-visible delay).',
  },
  AGGREGATOR_FLUSH_MAX_ROWS: { kind: 'int', min: 1, max: 10_000_000, default: 50_000, doc: 'Flush early when this many rows are buffered.' },
  AGGREGATOR_MAX_BUFFERED_ROWS: {
    kind: 'int',
    min: 1,
    max: 50_000_000,
    default: 200_000,
    doc: 'Pause consuming when this many rows wait for ClickHouse (memory bound while it is down or slow; one fetch may overshoot).',
  },
  AGGREGATOR_MAX_LATENESS_DAYS: {
    kind: 'int',
    min: 0,
    max: 365,
    default: 3,
    doc: 'Events whose UTC day is older than today minus this many days are counted as late and kept out.',
  },
  AGGREGATOR_FUTURE_SKEW_MS: {
    kind: 'int',
    min: 0,
    max: DAY_MS,
    default: 600_000,
    doc: 'Events dated after now + this skew are counted as future and kept out.',
  },
  AGGREGATOR_MIN_GROUP_DEVICES: {
    kind: 'int',
    min: 1,
    max: 1_000_000,
    default: 5,
    doc: 'k-anonymity threshold: output groups with fewer distinct devices are suppressed (query command; baked into the views at migration time).',
  },
  AGGREGATOR_DP_DAILY_EPSILON: {
    kind: 'number',
    min: 0.01,
    max: 100,
    default: DEFAULT_DAILY_EPSILON,
    doc: "Differential-privacy budget per analyst (ClickHouse user) and UTC day, baked into the views (release_policy); the query command refuses a question once the day's charges would pass it. See aggregator/README.md, Differential privacy.",
  },
  AGGREGATOR_DP_DEFAULT_EPSILON: {
    kind: 'number',
    min: 0.01,
    max: 100,
    default: DEFAULT_EPSILON,
    doc: 'Epsilon a question costs when it names none (`npm run query -- ... --epsilon`), baked into the views (release_policy).',
  },
  AGGREGATOR_DP_CONTRIBUTION_BOUND: {
    kind: 'int',
    min: 1,
    max: 1000,
    default: DEFAULT_CONTRIBUTION_BOUND,
    doc: 'Sessions (and crashes) one device may add to a released cell per day on the differentially private path; more are not counted there (baked into the views; the noise on sessions and crashes grows with it).',
  },
  AGGREGATOR_RETENTION_DAYS: {
    kind: 'int',
    min: 1,
    max: 100_000,
    default: policyRetentionDays(),
    doc: 'Day partitions older than this are dropped. Default: the longest retention of the non-personal categories in the policy map (P25M -> 750 days).',
  },
  AGGREGATOR_RETENTION_INTERVAL_MS: { kind: 'int', min: 1000, max: DAY_MS, default: 3_600_000, doc: 'How often the retention sweep runs.' },
  AGGREGATOR_RETRY_INITIAL_MS: {
    kind: 'int',
    min: 1,
    max: 60_000,
    default: 200,
    doc: 'First back-off after a failed ClickHouse insert (doubles per attempt).',
  },
  AGGREGATOR_RETRY_MAX_MS: { kind: 'int', min: 1, max: 300_000, default: 5_000, doc: 'Cap of the insert back-off.' },
  AGGREGATOR_INSERT_TIMEOUT_MS: {
    kind: 'int',
    min: 100,
    max: 600_000,
    default: 30_000,
    doc: 'An insert taking longer is abandoned and retried (retry is harmless: states are idempotent).',
  },
  AGGREGATOR_LOG_LEVEL: { kind: 'enum', values: ['debug', 'info', 'warn', 'error'] as const, default: 'info', doc: 'Log level.' },
  AGGREGATOR_UNSAFE_COUNT_ROWS: {
    kind: 'bool',
    default: false,
    doc: 'TEST ONLY, never in production: negative control. Every delivered row gets a fresh random event key, so sessions and crashes become counts of delivered rows (what count() would give) and replays double count.',
  },
  AGGREGATOR_TEST_STALL_AT: {
    kind: 'enum',
    values: ['none', 'before_insert', 'during_insert', 'after_insert'] as const,
    default: 'none',
    doc: 'TEST ONLY: stall forever at this point of a flush (logs `test stall`), so a crash test can SIGKILL the process inside that failure window.',
  },
  AGGREGATOR_TEST_STALL_ON_FLUSH: {
    kind: 'int',
    min: 1,
    max: 1_000_000,
    default: 1,
    doc: 'TEST ONLY: which non-empty flush (1 = first) stalls when AGGREGATOR_TEST_STALL_AT is set.',
  },
});

/** Everything the aggregator reads: its own settings and the shared pipeline ones. */
export const aggregatorConfigSpec = { ...pipelineSettings, ...aggregatorSettings };

/**
 * ConfigOf infers an enum setting's type from its default as well as its values, which widens it to
 * string; the enum settings are narrowed back here (loadConfig has checked them against `values`).
 */
export type AggregatorConfig = Omit<ConfigOf<typeof aggregatorConfigSpec>, 'AGGREGATOR_CLICKHOUSE' | 'AGGREGATOR_LOG_LEVEL' | 'AGGREGATOR_TEST_STALL_AT'> & {
  readonly AGGREGATOR_CLICKHOUSE: 'server' | 'embedded';
  readonly AGGREGATOR_LOG_LEVEL: 'debug' | 'info' | 'warn' | 'error';
  readonly AGGREGATOR_TEST_STALL_AT: 'none' | 'before_insert' | 'during_insert' | 'after_insert';
};

export function loadAggregatorConfig(env: NodeJS.ProcessEnv = process.env): AggregatorConfig {
  const cfg = loadConfig(aggregatorConfigSpec, { prefixes: [AGGREGATOR_PREFIX, 'PIPELINE_'], env }) as AggregatorConfig;
  checkKafkaSecurity(cfg); // sasl_ssl with missing credentials stops here, before any connection
  if (cfg.AGGREGATOR_CLICKHOUSE === 'server') {
    const problems = clickhouseTransportProblems('AGGREGATOR_', {
      url: cfg.AGGREGATOR_CLICKHOUSE_URL,
      caFile: cfg.AGGREGATOR_CLICKHOUSE_TLS_CA_FILE,
      unsafePlaintext: cfg.AGGREGATOR_UNSAFE_PLAINTEXT_CLICKHOUSE,
    });
    if (problems.length > 0) throw new ConfigError(problems);
  }
  const file = cfg.AGGREGATOR_CLICKHOUSE_PASSWORD_FILE;
  if (!file) return cfg;
  // Errors name the setting and the file, never its content.
  if (cfg.AGGREGATOR_CLICKHOUSE_PASSWORD)
    throw new ConfigError(['AGGREGATOR_CLICKHOUSE_PASSWORD and AGGREGATOR_CLICKHOUSE_PASSWORD_FILE are both set: give one']);
  let password: string;
  try {
    password = readFileSync(file, 'utf8').replace(/\r?\n$/, '');
  } catch (e) {
    throw new ConfigError([`AGGREGATOR_CLICKHOUSE_PASSWORD_FILE=${file}: cannot read it (${(e as NodeJS.ErrnoException).code ?? 'error'})`]);
  }
  return { ...cfg, AGGREGATOR_CLICKHOUSE_PASSWORD: password };
}
