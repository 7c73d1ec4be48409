/**
 * Versioned, repeatable migrations, the same files on ClickHouse 18.16 and on chdb 26.x.
 *
 * - `NNN_name.sql` run once each, in order, and are recorded in `<db>.schema_migrations` with the
 *   checksum of their rendered text. Every statement is written to be harmless when run again
 *   (`IF NOT EXISTS`), so a crash between a statement and its record only repeats it. An applied file
 *   whose text changed is refused (write a new migration instead).
 * - `R_name.sql` are re-applied whenever their rendered text changes (views whose text depends on
 *   settings, such as the k-anonymity threshold).
 * Placeholders: `{db}` database, `{k}` AGGREGATOR_MIN_GROUP_DEVICES, `{daily_epsilon}` and
 * `{default_epsilon}` AGGREGATOR_DP_DAILY_EPSILON / AGGREGATOR_DP_DEFAULT_EPSILON, `{bound}`
 * AGGREGATOR_DP_CONTRIBUTION_BOUND, `{create_view}` the view-creating
 * statement this server version allows (CREATE OR REPLACE VIEW from 20.x; 18.16 lacks it).
 */
import { createHash } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { AggregatorError } from './errors.ts';

export interface SqlRunner {
  exec(sql: string): Promise<void>;
  rows<T>(sql: string): Promise<T[]>;
}

export interface MigrationParams {
  database: string;
  minGroupDevices: number;
  /** Differential-privacy budget per analyst and UTC day. @default DEFAULT_DAILY_EPSILON */
  dailyEpsilon?: number;
  /** Epsilon of a question that names none. @default DEFAULT_EPSILON */
  defaultEpsilon?: number;
  /** Sessions (and crashes) one device may add to a cell per day on the private path. @default DEFAULT_CONTRIBUTION_BOUND */
  contributionBound?: number;
}

/** The migration parameters a store's options carry (the optional ones only when set), for both stores. */
export function migrationParamsOf(o: MigrationParams): MigrationParams {
  return {
    database: o.database,
    minGroupDevices: o.minGroupDevices,
    ...(o.dailyEpsilon !== undefined ? { dailyEpsilon: o.dailyEpsilon } : {}),
    ...(o.defaultEpsilon !== undefined ? { defaultEpsilon: o.defaultEpsilon } : {}),
    ...(o.contributionBound !== undefined ? { contributionBound: o.contributionBound } : {}),
  };
}

/** Defaults of the release policy (aggregator/README.md, "Differential privacy"). */
export const DEFAULT_DAILY_EPSILON = 5;
export const DEFAULT_EPSILON = 0.5;
export const DEFAULT_CONTRIBUTION_BOUND = 5;

export interface Migration {
  name: string;
  repeatable: boolean;
  text: string;
}

const DIR = new URL('./migrations/', import.meta.url);

export function listMigrations(): Migration[] {
  const files = readdirSync(DIR)
    .filter((f) => f.endsWith('.sql'))
    .sort();
  const versioned = files.filter((f) => /^\d{3}_[a-z0-9_]+\.sql$/.test(f));
  const repeatable = files.filter((f) => /^R_[a-z0-9_]+\.sql$/.test(f));
  const stray = files.filter((f) => !versioned.includes(f) && !repeatable.includes(f));
  if (stray.length) throw new AggregatorError('AGG_MIGRATION_FAILED', `migration files must be NNN_name.sql or R_name.sql: ${stray.join(', ')}`);
  return [
    ...versioned.map((f) => ({ name: f.replace(/\.sql$/, ''), repeatable: false, text: readFileSync(new URL(f, DIR), 'utf8') })),
    ...repeatable.map((f) => ({ name: f.replace(/\.sql$/, ''), repeatable: true, text: readFileSync(new URL(f, DIR), 'utf8') })),
  ];
}

/** Major version of `SELECT version()`, e.g. 18 or 26. */
export function majorVersion(v: string): number {
  const m = /^(\d+)\./.exec(v.trim());
  return m ? Number(m[1]) : 0;
}

export function renderMigration(text: string, p: MigrationParams, serverMajor: number): string {
  return text
    .replace(/\{db\}/g, p.database)
    .replace(/\{k\}/g, String(p.minGroupDevices))
    .replace(/\{daily_epsilon\}/g, String(p.dailyEpsilon ?? DEFAULT_DAILY_EPSILON))
    .replace(/\{default_epsilon\}/g, String(p.defaultEpsilon ?? DEFAULT_EPSILON))
    .replace(/\{bound\}/g, String(p.contributionBound ?? DEFAULT_CONTRIBUTION_BOUND))
    .replace(/\{create_view\}/g, serverMajor >= 20 ? 'CREATE OR REPLACE VIEW' : 'CREATE VIEW');
}

/** Statements of a rendered file: comments removed, split at `;` that end a line. */
export function statements(sql: string): string[] {
  return sql
    .split('\n')
    .filter((l) => !/^\s*--/.test(l))
    .join('\n')
    .split(/;\s*(?:\n|$)/)
    .map((s) => s.trim())
    .filter((s) => s.length > 0);
}

export function checksum(s: string): string {
  return createHash('sha256').update(s).digest('hex').slice(0, 16);
}

const VIEW_NAME = /^CREATE (?:OR REPLACE )?VIEW (\S+)/;

export async function runMigrations(db: SqlRunner, p: MigrationParams): Promise<string[]> {
  const applied: string[] = [];
  // A reader's store options carry no threshold (aggregator/analyst-config.ts); views baked with k < 1
  // would release every cell, so such a migration is refused outright.
  if (!Number.isInteger(p.minGroupDevices) || p.minGroupDevices < 1)
    throw new AggregatorError(
      'AGG_MIGRATION_FAILED',
      `refusing to migrate ${p.database} with a k-anonymity threshold of ${p.minGroupDevices}: it must be 1 or more`,
    );
  try {
    const [{ v }] = (await db.rows<{ v: string }>('SELECT version() AS v')) as [{ v: string }];
    const major = majorVersion(v);
    await db.exec(`CREATE DATABASE IF NOT EXISTS ${p.database}`);
    await db.exec(
      `CREATE TABLE IF NOT EXISTS ${p.database}.schema_migrations (name String, checksum String, applied_at DateTime) ENGINE = MergeTree() ORDER BY (name, applied_at)`,
    );
    const done = new Map<string, string>();
    for (const r of await db.rows<{ name: string; checksum: string }>(
      `SELECT name, argMax(checksum, applied_at) AS checksum FROM ${p.database}.schema_migrations GROUP BY name`,
    )) {
      done.set(r.name, r.checksum);
    }
    for (const m of listMigrations()) {
      const sql = renderMigration(m.text, p, major);
      const sum = checksum(sql);
      const prev = done.get(m.name);
      if (prev === sum) continue;
      if (prev !== undefined && !m.repeatable) {
        throw new AggregatorError(
          'AGG_MIGRATION_CHANGED',
          `migration ${m.name} was applied with checksum ${prev} but its text now renders to ${sum}: add a new migration instead of editing an applied one`,
        );
      }
      for (const stmt of statements(sql)) {
        // 18.16 has no CREATE OR REPLACE VIEW: drop first. A reader in between sees no view for a moment.
        const view = major < 20 && m.repeatable ? VIEW_NAME.exec(stmt) : null;
        if (view) await db.exec(`DROP TABLE IF EXISTS ${view[1]}`);
        await db.exec(stmt);
      }
      await db.exec(`INSERT INTO ${p.database}.schema_migrations (name, checksum, applied_at) VALUES ('${m.name}', '${sum}', now())`);
      applied.push(m.name);
    }
    return applied;
  } catch (cause) {
    if (cause instanceof AggregatorError) throw cause;
    throw new AggregatorError('AGG_MIGRATION_FAILED', `migrating database ${p.database} failed: ${(cause as Error).message}`, { cause });
  }
}
