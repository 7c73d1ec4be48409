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
import { clickhouseTransportProblems } from './clickhouse-tls.ts';
import type { StoreOptions } from './store.ts';

export const analystSettings = defineSettings({
  ANALYST_CLICKHOUSE: {
    kind: 'enum',
    values: ['server', 'embedded'] as const,
    default: 'server',
    doc: '`server` = ClickHouse over HTTP; `embedded` = chdb at ANALYST_CHDB_PATH (a path no running aggregator holds).',
  },
  ANALYST_CLICKHOUSE_URL: {
    kind: 'url',
    default: 'http://127.0.0.1:18123',
    doc: 'ClickHouse HTTP(S) endpoint the analyst reads. `http://` is accepted to a loopback host only, unless ANALYST_UNSAFE_PLAINTEXT_CLICKHOUSE=true (aggregator/clickhouse-tls.ts).',
  },
  ANALYST_CLICKHOUSE_TLS_CA_FILE: {
    kind: 'string',
    default: '',
    doc: "PEM CA that signed the ClickHouse server's certificate (https:// URL with a private CA); empty = the system's CAs. The server certificate is always verified.",
  },
  ANALYST_UNSAFE_PLAINTEXT_CLICKHOUSE: {
    kind: 'bool',
    default: false,
    doc: 'DEVELOPMENT ONLY: allow an http:// ANALYST_CLICKHOUSE_URL to a host that is not loopback (password and answers in clear on the network).',
  },
  ANALYST_CLICKHOUSE_USER: {
    kind: 'string',
    default: 'analyst',
    doc: 'ClickHouse user of the analyst role: may read the released views only, never the aggregate tables. The plain local stack has only its admin user `default` (stack/README.md).',
  },
  ANALYST_CLICKHOUSE_PASSWORD: { kind: 'string', secret: true, default: '', doc: 'Its password; prefer ANALYST_CLICKHOUSE_PASSWORD_FILE. Never logged.' },
  ANALYST_CLICKHOUSE_PASSWORD_FILE: {
    kind: 'string',
    default: '',
    doc: 'File holding the password (trailing newline ignored); exclusive with ANALYST_CLICKHOUSE_PASSWORD. Read again when it changes (rotation without a restart).',
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

/**
 * Checks the transport (aggregator/clickhouse-tls.ts: https, or http to loopback only unless
 * ANALYST_UNSAFE_PLAINTEXT_CLICKHOUSE) and reads ANALYST_CLICKHOUSE_PASSWORD_FILE into the password;
 * errors name the setting and file, never the content.
 */
export function withAnalystPassword<C extends AnalystConfig>(cfg: C): C {
  if (cfg.ANALYST_CLICKHOUSE === 'server') {
    const problems = clickhouseTransportProblems('ANALYST_', {
      url: cfg.ANALYST_CLICKHOUSE_URL,
      caFile: cfg.ANALYST_CLICKHOUSE_TLS_CA_FILE,
      unsafePlaintext: cfg.ANALYST_UNSAFE_PLAINTEXT_CLICKHOUSE,
    });
    if (problems.length > 0) throw new ConfigError(problems);
  }
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
    passwordFile: cfg.ANALYST_CLICKHOUSE_PASSWORD_FILE,
    tlsCaFile: cfg.ANALYST_CLICKHOUSE_TLS_CA_FILE,
    chdbPath: cfg.ANALYST_CHDB_PATH,
    insertTimeoutMs: 30_000,
    database: cfg.ANALYST_DATABASE,
    minGroupDevices: 0,
  };
}
