/**
 * The analyst's connection: the one set of `ANALYST_*` settings the query command (`npm run query`) and
 * the dashboard read, separate from the aggregator's `AGGREGATOR_CLICKHOUSE_*` on purpose: the
 * aggregator's credentials can read the raw uniqExact states (`daily_agg`), which merge into counts
 * below the k-anonymity threshold, so they never answer a question (ARCHITECTURE.md principle 11).
 * The analyst's credentials reach only the released views (aggregator/migrations/R_analyst_views.sql):
 * on ClickHouse 18.16 a user whose `allow_databases` is the views database only
 * (stack/clickhouse-users.ts), on a modern server a user granted the views only
 * (deploy/security/clickhouse-grants.sql). There is no k here: the threshold is baked into the views.
 */
import { readFileSync } from 'node:fs';
import { ConfigError, defineSettings, loadConfig, type ConfigOf } from '../runtime/config.ts';
import type { StoreOptions } from './store.ts';

export const analystSettings = defineSettings({
  ANALYST_CLICKHOUSE: {
    kind: 'enum',
    values: ['server', 'embedded'] as const,
    default: 'server',
    doc: '`server` = ClickHouse over HTTP; `embedded` = chdb at ANALYST_CHDB_PATH (a path no running aggregator holds).',
  },
  ANALYST_CLICKHOUSE_URL: { kind: 'url', default: 'http://127.0.0.1:18123', doc: 'ClickHouse HTTP endpoint the analyst reads.' },
  ANALYST_CLICKHOUSE_USER: {
    kind: 'string',
    default: 'analyst',
    doc: 'ClickHouse user of the analyst role: may read the released views only, never the aggregate tables. The plain local stack has only its admin user `default` (stack/README.md).',
  },
  ANALYST_CLICKHOUSE_PASSWORD: { kind: 'string', secret: true, default: '', doc: 'Its password; prefer ANALYST_CLICKHOUSE_PASSWORD_FILE. Never logged.' },
  ANALYST_CLICKHOUSE_PASSWORD_FILE: {
    kind: 'string',
    default: '',
    doc: 'File holding the password (trailing newline ignored); exclusive with ANALYST_CLICKHOUSE_PASSWORD.',
  },
  ANALYST_DATABASE: {
    kind: 'string',
    pattern: /^[A-Za-z_][A-Za-z0-9_]{0,62}$/,
    default: 'analytics',
    doc: 'Database holding the released views: the aggregator database itself, or on ClickHouse 18.16 the views database of proxies (`analytics_views`, stack/clickhouse-users.ts).',
  },
  ANALYST_CHDB_PATH: { kind: 'string', default: '.local/chdb', doc: 'Data folder of the embedded chdb (ANALYST_CLICKHOUSE=embedded).' },
});

export type AnalystConfig = Omit<ConfigOf<typeof analystSettings>, 'ANALYST_CLICKHOUSE'> & { readonly ANALYST_CLICKHOUSE: 'server' | 'embedded' };

/** Reads ANALYST_CLICKHOUSE_PASSWORD_FILE into the password; errors name the setting and file, never the content. */
export function withAnalystPassword<C extends AnalystConfig>(cfg: C): C {
  const file = cfg.ANALYST_CLICKHOUSE_PASSWORD_FILE;
  if (!file) return cfg;
  if (cfg.ANALYST_CLICKHOUSE_PASSWORD) throw new ConfigError(['ANALYST_CLICKHOUSE_PASSWORD and ANALYST_CLICKHOUSE_PASSWORD_FILE are both set: give one']);
  let password: string;
  try {
    password = readFileSync(file, 'utf8').replace(/\r?\n$/, '');
  } catch (e) {
    throw new ConfigError([`ANALYST_CLICKHOUSE_PASSWORD_FILE=${file}: cannot read it (${(e as NodeJS.ErrnoException).code ?? 'error'})`]);
  }
  return { ...cfg, ANALYST_CLICKHOUSE_PASSWORD: password };
}

export function loadAnalystConfig(env: NodeJS.ProcessEnv = process.env): AnalystConfig {
  return withAnalystPassword(loadConfig(analystSettings, { prefixes: ['ANALYST_'], env }) as AnalystConfig);
}

/**
 * Store options for reading as the analyst. The store is only ever queried (runReport); the migration
 * parameters are placeholders, since a reader never migrates (the analyst could not: readonly).
 */
export function analystStoreOptions(cfg: AnalystConfig): StoreOptions {
  return {
    kind: cfg.ANALYST_CLICKHOUSE,
    url: cfg.ANALYST_CLICKHOUSE_URL,
    user: cfg.ANALYST_CLICKHOUSE_USER,
    password: cfg.ANALYST_CLICKHOUSE_PASSWORD,
    chdbPath: cfg.ANALYST_CHDB_PATH,
    insertTimeoutMs: 30_000,
    database: cfg.ANALYST_DATABASE,
    minGroupDevices: 0,
  };
}
