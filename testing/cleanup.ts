// The I/O around testing/leftovers.ts: listing and deleting topics and databases on the stack's Kafka and
// ClickHouse. Used after each integration test file (testing/vitest-file-cleanup.ts) and at the end of
// the run (testing/vitest-global-setup.ts).
import pg from 'pg';
import { ZONES } from '../schemas/index.ts';
import kafkajs from 'kafkajs';
import { createClient, ClickHouseLogLevel } from '@clickhouse/client';
import { newRunTag, ownedNamesIn, RUN_TAG_ENV, type Listing } from './leftovers.ts';
import { ownedByThisFile, postgresConnection, stackInfo } from './stack.ts';

const { Kafka, logLevel } = kafkajs;

/** A quiet admin that gives up within seconds: cleanup must not hang a run whose broker is down. */
function quickAdmin(brokers: string[]) {
  return new Kafka({
    clientId: 'testing-cleanup',
    brokers,
    logLevel: logLevel.NOTHING,
    connectionTimeout: 3000,
    requestTimeout: 15_000,
    retry: { retries: 2, initialRetryTime: 200, maxRetryTime: 1000 },
  }).admin();
}

function quickClickHouse(url: string) {
  // Same 18.16-safe settings as createClickHouse() in testing/stack.ts.
  return createClient({ url, request_timeout: 15_000, compression: { request: false, response: false }, log: { level: ClickHouseLogLevel.OFF } });
}

export async function listTopics(brokers: string[]): Promise<string[]> {
  const admin = quickAdmin(brokers);
  await admin.connect();
  try {
    return await admin.listTopics();
  } finally {
    await admin.disconnect();
  }
}

export async function listDatabases(url: string): Promise<string[]> {
  const ch = quickClickHouse(url);
  try {
    const rs = await ch.query({ query: 'SHOW DATABASES', format: 'JSONEachRow' });
    return (await rs.json<{ name: string }>()).map((r) => r.name);
  } finally {
    await ch.close();
  }
}

/** Topics of the stack's Kafka and databases of its ClickHouse, as they are now. */
export async function listStack(): Promise<Listing & { kafka: string; clickhouse: string }> {
  const s = stackInfo();
  const [topics, databases] = await Promise.all([listTopics(s.kafkaBrokers), listDatabases(s.clickhouseUrl)]);
  return { topics, databases, kafka: s.kafkaBrokers.join(','), clickhouse: s.clickhouseUrl };
}

/** Deletes the named topics on `brokers`, in slices of 100, each given `timeoutMs` to be gone. */
export async function deleteTopics(brokers: string[], topics: readonly string[], timeoutMs = 15_000): Promise<void> {
  if (topics.length === 0) return;
  const admin = quickAdmin(brokers);
  await admin.connect();
  try {
    for (let i = 0; i < topics.length; i += 100) await admin.deleteTopics({ topics: topics.slice(i, i + 100), timeout: timeoutMs });
  } finally {
    await admin.disconnect();
  }
}

/** Drops the named databases on the ClickHouse at `url`. */
export async function dropDatabases(url: string, databases: readonly string[]): Promise<void> {
  if (databases.length === 0) return;
  const ch = quickClickHouse(url);
  try {
    for (const db of databases) await ch.command({ query: `DROP DATABASE IF EXISTS ${db}` });
  } finally {
    await ch.close();
  }
}

async function deleteOwnedTopics(brokers: string[], owned: ReadonlySet<string>): Promise<string[]> {
  const mine = ownedNamesIn(await listTopics(brokers), owned);
  await deleteTopics(brokers, mine);
  return mine;
}

async function dropOwnedDatabases(url: string, owned: ReadonlySet<string>): Promise<string[]> {
  const mine = ownedNamesIn(await listDatabases(url), owned);
  await dropDatabases(url, mine);
  return mine;
}

/**
 * Deletes every topic (on the single node, and on any other Kafka this file passed to createKafka) and
 * every ClickHouse database whose name is or starts with a name uniqueName() gave this file. A part
 * that does not answer is reported, not thrown: the test's own result matters more, and the end-of-run
 * check names whatever stayed behind.
 */
export async function deleteWhatThisFileMade(): Promise<{ topics: string[]; databases: string[]; problems: string[] }> {
  const { names, otherKafkas } = ownedByThisFile();
  const out = { topics: [] as string[], databases: [] as string[], problems: [] as string[] };
  if (names.size === 0) return out;
  const s = stackInfo();
  const kafkas = new Map([[s.kafkaBrokers.join(','), s.kafkaBrokers], ...otherKafkas.map((b) => [b.join(','), b] as const)]);
  for (const [key, brokers] of kafkas) {
    try {
      out.topics.push(...(await deleteOwnedTopics(brokers, names)));
    } catch (e) {
      out.problems.push(`Kafka ${key}: ${(e as Error).message}`);
    }
  }
  try {
    out.databases.push(...(await dropOwnedDatabases(s.clickhouseUrl, names)));
  } catch (e) {
    out.problems.push(`ClickHouse ${s.clickhouseUrl}: ${(e as Error).message}`);
  }
  if (s.postgres?.running) {
    try {
      out.databases.push(...(await dropOwnedKeySchemas(names)));
    } catch (e) {
      out.problems.push(`PostgreSQL: ${(e as Error).message}`);
    }
  }
  return out;
}

/** The key-store schemas testing/sealing.ts made from this file's names, in every zone database. */
async function dropOwnedKeySchemas(names: ReadonlySet<string>): Promise<string[]> {
  const wanted = new Set([...names].map(keySchemaOf));
  const dropped: string[] = [];
  for (const z of ZONES) {
    const c = new pg.Client(postgresConnection(z));
    await c.connect();
    try {
      const rows = (await c.query<{ s: string }>(`SELECT schema_name AS s FROM information_schema.schemata WHERE schema_name LIKE 't\\_%'`)).rows;
      for (const { s } of rows) {
        if (!wanted.has(s)) continue;
        await c.query(`DROP SCHEMA IF EXISTS ${s} CASCADE`);
        dropped.push(`${z}:${s}`);
      }
    } finally {
      await c.end();
    }
  }
  return dropped;
}

/** The key-store schema of a uniqueName() (testing/sealing.ts). */
export function keySchemaOf(name: string): string {
  return `t_${name.toLowerCase().replace(/[^a-z0-9_]/g, '_')}`.slice(0, 63);
}

/**
 * For a process outside vitest (a bench): from now on uniqueName() records the names it gives, so
 * deleteWhatThisFileMade() at the end removes this process's topics and databases like a test file's.
 */
export function trackNamesOfThisProcess(): void {
  process.env[RUN_TAG_ENV] ||= newRunTag();
}
