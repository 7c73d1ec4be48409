/**
 * Configuration of one ingest worker: environment variables with the `INGEST_` prefix, plus the
 * pipeline-wide `PIPELINE_` ones (Kafka, topic names) shared with the aggregator. Read once at start;
 * an unknown or invalid variable stops the process with one line (runtime/config.ts).
 *
 * Safety settings that are NOT configurable (they would need a code change, on purpose):
 * acks=all and the idempotent producer (produce.ts). The one switch that weakens acknowledgement,
 * `INGEST_UNSAFE_ACK_BEFORE_PRODUCE`, exists only so the fault tests can show they detect lost
 * acknowledged batches (their negative control); its name says what it does and it is off by default.
 *
 * Residency fails closed (policy section 6): the personal and rejects topics of a zone the residency
 * rule binds to a country (cn, ru, in) live on that zone's own cluster, INGEST_ZONE_BROKERS_<ZONE>. A
 * bound zone without one stops ingest and the topic plan at start (`zoneResidencyProblem`); only
 * INGEST_ZONES_SHARE_MAIN_CLUSTER=true, for single-cluster development and test setups, lets such a zone
 * use PIPELINE_KAFKA_BROKERS. The zone row (everywhere else) is bound to no country and defaults to it.
 */
import { readFileSync } from 'node:fs';
import os from 'node:os';
import type { SealingSpec } from '../rights/sealer.ts';
import { checkKafkaSecurity, ConfigError, defineSettings, loadConfig, pipelineSettings, type ConfigOf } from '../runtime/index.ts';
import { DAY_MS, KEY_DIR_MODES, RESIDENCY, ZONES, type Zone } from '../schemas/index.ts';

const MiB = 1024 * 1024;

/** A zone's key store: `host:port/database`, or empty (then sealing refuses to start: `sealingProblems`). */
const KEYSTORE_ADDRESS = { kind: 'string', pattern: /^$|^[A-Za-z0-9.-]+:\d{1,5}\/[A-Za-z0-9_]{1,63}$/, default: '' } as const;

export const ingestSettings = defineSettings({
  INGEST_HOST: { kind: 'string', default: '127.0.0.1', doc: 'Address to listen on; 0.0.0.0 in containers.' },
  INGEST_PORT: { kind: 'int', min: 0, max: 65535, default: 18080, doc: 'HTTP port (0 = any free port, for tests).' },

  // ---- Encryption in transit of the devices' connections (policy 4.1; ingest/README.md, "TLS") ----
  INGEST_TLS_CERT_FILE: {
    kind: 'string',
    default: '',
    doc: 'PEM certificate chain (server certificate first) ingest serves HTTPS with on INGEST_PORT, /metrics /healthz /readyz included. Re-read when it changes: new connections get the new certificate, open ones keep theirs. Set together with INGEST_TLS_KEY_FILE.',
  },
  INGEST_TLS_KEY_FILE: {
    kind: 'string',
    default: '',
    doc: 'PEM private key (unencrypted) of INGEST_TLS_CERT_FILE; a file only, never the key in the environment. Re-read together with the certificate.',
  },
  INGEST_UNSAFE_PLAINTEXT_HTTP: {
    kind: 'bool',
    default: false,
    doc: 'UNSAFE, DEVELOPMENT ONLY: serve plain HTTP when no TLS files are given (local stack, tests, demo, benches). Without it and without both TLS files ingest refuses to start; with them it is ignored.',
  },

  INGEST_MAX_BODY_BYTES: {
    kind: 'int',
    min: 1024,
    default: 2 * MiB,
    doc: 'Largest request body on the wire; larger is 413, decided from Content-Length before reading (or while streaming a chunked body).',
  },
  INGEST_MAX_DECOMPRESSED_BYTES: {
    kind: 'int',
    min: 1024,
    default: 8 * MiB,
    doc: 'Largest body after gunzip and after inflating Avro container blocks; larger is 413. Bounds what one worker task can allocate.',
  },
  INGEST_MAX_EVENTS_PER_BATCH: { kind: 'int', min: 1, default: 5000, doc: 'Most events one batch may hold (Avro array bomb guard).' },
  INGEST_MAX_STRING_BYTES: { kind: 'int', min: 64, default: 64 * 1024, doc: 'Longest string/bytes value inside a batch (Avro string bomb guard).' },

  INGEST_MAX_INFLIGHT_BYTES: {
    kind: 'int',
    min: 1024,
    default: 64 * MiB,
    doc: 'Sum of body sizes admitted and not yet answered; a request that would pass it gets 429 before its body is read.',
  },
  INGEST_MAX_QUEUED_BATCHES: {
    kind: 'int',
    min: 0,
    default: 256,
    doc: 'Batches waiting for a pool worker; past it new requests get 429 before their body is read. Above INGEST_MIX_MAX_BATCHES: a mix answers its batches together, and devices that post again at once must not bounce (memory stays bounded by INGEST_MAX_INFLIGHT_BYTES).',
  },
  INGEST_POOL_THREADS: { kind: 'int', min: 0, max: 64, default: 0, doc: 'Worker threads that decode, validate and split batches; 0 = one per available core.' },
  INGEST_TASK_TIMEOUT_MS: {
    kind: 'int',
    min: 10,
    default: 5000,
    doc: "Limit from a batch's hand-over to the pool. Past it the worker is terminated: the batch it was running is answered 400 if it ran for at least half the limit itself, 429 otherwise; the other batches of its group get 429 (retry).",
  },
  INGEST_POOL_GROUP_MAX_BATCHES: {
    kind: 'int',
    min: 1,
    max: 256,
    default: 16,
    doc: 'Most batches handed to a pool worker in one task: those read in one turn of the event loop go together, so the message, structured clone and worker wake-up are paid per group, not per batch. 1 = one batch per task.',
  },
  INGEST_POOL_GROUP_MAX_BYTES: {
    kind: 'int',
    min: 1024,
    default: 1 * MiB,
    doc: 'Most body bytes in one pool task; a body that would pass it starts the next group (a larger body goes alone). Bounds what one terminated worker takes with it.',
  },
  INGEST_TASK_MAX_HEAP_MB: {
    kind: 'int',
    min: 16,
    default: 256,
    doc: 'Heap limit of each worker thread (resourceLimits.maxOldGenerationSizeMb); the batch that exhausts it is answered 400, the other batches of its group 429, and the worker replaced.',
  },
  INGEST_TASK_INITIAL_HEAP_MB: {
    kind: 'int',
    min: 0,
    default: 64,
    doc: "Old generation a worker thread grows to before its first full GC (V8's --initial-old-space-size for the pool's isolates; at most half of INGEST_TASK_MAX_HEAP_MB; 0 = V8's own start). A batch's objects outlive a scavenge or two and die in the old generation, so from V8's small start each worker ran a full GC several times a second: 64 cut ingest's CPU per event by 16-20 % at 500-event batches (no change beyond the noise at 50) for 25-60 MB more peak RSS (ingest/README.md, \"CPU per event\").",
  },

  INGEST_PRODUCE_TIMEOUT_MS: {
    kind: 'int',
    min: 100,
    default: 10_000,
    doc: 'A batch not acknowledged by Kafka within this time is answered 503 (the device retries; duplicates are removed downstream by event_key).',
  },
  INGEST_KAFKA_COMPRESSION: {
    kind: 'enum',
    values: ['none', 'gzip'] as const,
    default: 'none',
    doc: 'Record batch compression. none: measured faster on one box (see README, bench); gzip for WAN links to a remote cluster.',
  },
  INGEST_KAFKA_CLIENT_ID: { kind: 'string', default: 'ingest', doc: 'Kafka client id (shown in broker logs and quotas).' },
  INGEST_KAFKA_RETRIES: { kind: 'int', min: 0, max: 20, default: 3, doc: 'kafkajs retries of one produce request before the batch is answered 503.' },
  INGEST_KAFKA_LINGER_MS: {
    kind: 'int',
    min: 0,
    max: 100,
    default: 0,
    doc: 'Extra wait to coalesce batches of concurrent requests into one produce call (0: only coalesce while a call is in flight).',
  },
  INGEST_KAFKA_PRODUCERS: {
    kind: 'int',
    min: 1,
    max: 16,
    default: 1,
    doc: "Idempotent producers per cluster, each with one coalesced call in flight (kafkajs serialises one producer's calls per broker).",
  },
  INGEST_KAFKA_MAX_RECORDS_PER_CALL: {
    kind: 'int',
    min: 1,
    default: 2000,
    doc: 'Most records in one coalesced produce call (whole batches are never split across calls).',
  },
  INGEST_KAFKA_START_TIMEOUT_MS: {
    kind: 'int',
    min: 0,
    default: 60_000,
    doc: 'At start, how long to wait for Kafka to answer and elect leaders before giving up with one line.',
  },
  INGEST_ZONE_BROKERS_CN: {
    kind: 'list',
    default: [],
    doc: "Kafka bootstrap servers of the Mainland China zone's own cluster, in-country (policy section 6), for its personal and rejects topics. Required: empty stops ingest and the topic plan at start, unless INGEST_ZONES_SHARE_MAIN_CLUSTER=true.",
  },
  INGEST_ZONE_BROKERS_RU: { kind: 'list', default: [], doc: 'As INGEST_ZONE_BROKERS_CN, for Russia (required likewise).' },
  INGEST_ZONE_BROKERS_IN: { kind: 'list', default: [], doc: 'As INGEST_ZONE_BROKERS_CN, for India (required likewise).' },
  INGEST_ZONE_BROKERS_ROW: {
    kind: 'list',
    default: [],
    doc: 'Kafka bootstrap servers of the rest-of-the-world zone; empty = PIPELINE_KAFKA_BROKERS (the policy binds no country to it, so the main cluster is its home).',
  },
  INGEST_ZONES_SHARE_MAIN_CLUSTER: {
    kind: 'bool',
    default: false,
    doc: 'DEVELOPMENT/TEST ONLY, single-cluster setups (local stack, tests, demo, benches, the one-host compose file): let the zones cn, ru and in without INGEST_ZONE_BROKERS_<ZONE> put their personal and rejects topics on PIPELINE_KAFKA_BROKERS. Off (production): ingest and the topic plan refuse to start with one line naming each such zone, and a zone list naming a broker of PIPELINE_KAFKA_BROKERS is refused too (policy section 6: personal data of Mainland China, Russia and India stays in-country). The zone row is never refused: the policy binds no country to it.',
  },

  INGEST_TOPICS: {
    kind: 'enum',
    values: ['create', 'verify'] as const,
    default: 'create',
    doc: 'At start: create missing topics with the settings below, or only verify they exist and refuse to start if one is missing.',
  },
  INGEST_TOPIC_PARTITIONS: { kind: 'int', min: 1, max: 10_000, default: 6, doc: 'Partitions of a created topic (events, personal and rejects).' },
  INGEST_TOPIC_REPLICATION: {
    kind: 'int',
    min: 1,
    max: 7,
    default: 1,
    doc: 'Replication factor of a created topic (1 on the single-node local stack; 3 in production).',
  },
  INGEST_EVENTS_RETENTION_MS: {
    kind: 'int',
    min: 60_000,
    default: 7 * DAY_MS,
    doc: 'retention.ms of the events topic: how far back the aggregator can replay.',
  },
  INGEST_REJECTS_RETENTION_MS: {
    kind: 'int',
    min: 60_000,
    default: 7 * DAY_MS,
    doc: 'retention.ms of the rejects topics (unclassified, so personal: kept briefly).',
  },

  INGEST_RETRY_AFTER_OVERLOAD_S: { kind: 'int', min: 1, max: 3600, default: 1, doc: 'Retry-After of a 429.' },
  INGEST_RETRY_AFTER_UNAVAILABLE_S: { kind: 'int', min: 1, max: 3600, default: 5, doc: 'Retry-After of a 503 (Kafka unavailable, shutting down).' },

  INGEST_HEADERS_TIMEOUT_MS: { kind: 'int', min: 100, default: 10_000, doc: 'Time a client has to send all request headers (slow-loris cut).' },
  INGEST_REQUEST_TIMEOUT_MS: { kind: 'int', min: 100, default: 30_000, doc: 'Time a client has to send the whole request.' },
  INGEST_KEEPALIVE_TIMEOUT_MS: {
    kind: 'int',
    min: 100,
    default: 65_000,
    doc: 'Idle keep-alive connection lifetime; above the usual 60 s load-balancer idle timeout so the balancer closes first.',
  },
  INGEST_MAX_CONNECTIONS: { kind: 'int', min: 1, default: 4096, doc: 'Open connections at most; further ones are closed at once.' },
  INGEST_MAX_HEADERS_COUNT: { kind: 'int', min: 8, max: 2000, default: 64, doc: 'Request headers at most.' },
  INGEST_SHUTDOWN_DRAIN_MS: {
    kind: 'int',
    min: 0,
    default: 20_000,
    doc: 'On SIGTERM, time allowed to finish in-flight batches and flush the producer before exiting.',
  },

  INGEST_TOKEN_KEY_DIR: {
    kind: 'string',
    default: '.local/token-keys',
    doc: 'Directory of the day secrets of the daily token (schemas FileKeySource), shared by every ingest copy of a zone (ARCHITECTURE.md principle 3).',
  },
  INGEST_TOKEN_KEYS_MODE: {
    kind: 'enum',
    values: KEY_DIR_MODES,
    default: 'manage' as const,
    doc: "manage: ingest creates a missing day secret and destroys expired ones hourly (one host or a shared writable volume). read-only: an outside rotation writes the directory (Kubernetes: a Secret mounted read-only); ingest never writes, a day without a secret has its events refused, /readyz is false without today's secret, and an expired secret left behind is never used.",
  },

  INGEST_LOG_LEVEL: { kind: 'enum', values: ['debug', 'info', 'warn', 'error'] as const, default: 'info', doc: 'Log level.' },
  INGEST_DEBUG_LOG_PERSONAL_DATA: {
    kind: 'bool',
    default: false,
    doc: 'DEBUG ONLY: log rejected payloads, which may hold personal data (policy 4.1). Never on in production.',
  },
  INGEST_UNSAFE_ACK_BEFORE_PRODUCE: {
    kind: 'bool',
    default: false,
    doc: 'UNSAFE, TESTS ONLY: answer 200 before Kafka acknowledged. Exists so fault tests can prove they catch lost batches.',
  },
  INGEST_UNSAFE_SKIP_DRAIN: {
    kind: 'bool',
    default: false,
    doc: 'UNSAFE, TESTS ONLY: on SIGTERM exit at once without finishing in-flight batches or flushing the producer (negative control of the SIGTERM test).',
  },

  // Unlinkable publishing of the events and personal records (ingest/mix.ts, policy section 1.1.4).
  INGEST_MIX_WINDOW_MS: {
    kind: 'int',
    min: 1,
    max: 1000,
    default: 50,
    doc: 'How long the records of concurrent batches are collected into one mix, published in a random order with coarse timestamps (ingest/mix.ts).',
  },
  INGEST_MIX_MIN_BATCHES: {
    kind: 'int',
    min: 1,
    max: 10_000,
    default: 96,
    doc: 'A mix with fewer batches stays open past INGEST_MIX_WINDOW_MS, up to INGEST_MIX_MAX_WAIT_MS: the smallest crowd an events record hides in under light load (an adversary who reads the country sees only its share of it; ingest/README.md, "Linkage of the topics").',
  },
  INGEST_MIX_MAX_WAIT_MS: {
    kind: 'int',
    min: 1,
    max: 30_000,
    default: 5000,
    doc: 'Longest a batch waits in an open mix, whatever its size (bounds the latency mixing adds under light load; devices upload in the background, so five seconds are cheap for them and buy a larger crowd: ingest/README.md, "Linkage of the topics").',
  },
  INGEST_MIX_MAX_BATCHES: {
    kind: 'int',
    min: 1,
    max: 10_000,
    default: 96,
    doc: 'A mix holding this many batches is published at once: under load mixes fill before the window ends, and past this a mix adds latency more than crowd (bench:ingest, 128 clients: 84k events/s, p99 166 ms at 96; with 64 clients a maximum of 256 held every client in one mix and fell to 45-47k events/s).',
  },
  INGEST_PERSONAL_RECENT_MAX: {
    kind: 'int',
    min: 0,
    max: 10_000_000,
    default: 250_000,
    doc: 'Content digests of the personal records written this UTC day kept in memory (about 100 bytes each), so a byte-equal record is written once per day instead of once per batch (ingest/mix.ts RecentRecords; 0 writes every copy).',
  },
  INGEST_UNSAFE_LINKABLE: {
    kind: 'bool',
    default: false,
    doc: "UNSAFE, TESTS ONLY: no mixing, producer timestamps, a batch's records in one call, every personal record written: the topics can be joined back to devices (negative control of bench/linkage.ts).",
  },

  // ---- Sealing of personal records (rights/README.md; policy 4.1, 5.2) ----
  INGEST_KEYSTORE_CN: {
    ...KEYSTORE_ADDRESS,
    doc: "Key store of the Mainland China zone, in-country (policy section 6): host:port/database of its PostgreSQL, holding each device's data key wrapped by the zone's key-encryption key. Required unless INGEST_UNSAFE_UNSEALED.",
  },
  INGEST_KEYSTORE_RU: { ...KEYSTORE_ADDRESS, doc: 'As INGEST_KEYSTORE_CN, for Russia.' },
  INGEST_KEYSTORE_IN: { ...KEYSTORE_ADDRESS, doc: 'As INGEST_KEYSTORE_CN, for India.' },
  INGEST_KEYSTORE_ROW: { ...KEYSTORE_ADDRESS, doc: 'As INGEST_KEYSTORE_CN, for the rest of the world.' },
  INGEST_KEYSTORE_USER: { kind: 'string', pattern: /^[A-Za-z0-9_]{1,63}$/, default: 'keystore', doc: 'PostgreSQL role of the key stores.' },
  INGEST_KEYSTORE_SCHEMA: {
    kind: 'string',
    pattern: /^[a-z_][a-z0-9_]{0,62}$/,
    default: 'rights',
    doc: "PostgreSQL schema of the key store's tables in each zone database (created when missing).",
  },
  INGEST_KEYSTORE_PASSWORD_FILE: {
    kind: 'string',
    default: '',
    doc: "File holding the key stores' password (trailing newline ignored); never the password itself in the environment.",
  },
  INGEST_RIGHTS_KEY_DIR: {
    kind: 'string',
    default: '',
    doc: "Directory of the zones' key material: <zone>/subject.key (the keyed hash naming a device on the personal topics) and <zone>/kek-v<N>.key (key-encryption keys). rights/zone-keys.ts.",
  },
  INGEST_RIGHTS_KEYS_MODE: {
    kind: 'enum',
    values: ['manage', 'read-only'] as const,
    default: 'manage',
    doc: 'manage: a missing subject key or first KEK is created (local stack, tests, one-host compose). read-only: provisioned from outside (Kubernetes Secret); missing keys stop ingest at start.',
  },
  INGEST_KEY_CACHE_TTL_MS: {
    kind: 'int',
    min: 0,
    max: 600_000,
    default: 30_000,
    doc: "How long a worker keeps a device's data key after fetching it from the key store; after an erasure, batches sealed meanwhile are unreadable like the older ones.",
  },
  INGEST_UNSAFE_UNSEALED: {
    kind: 'bool',
    default: false,
    doc: 'UNSAFE, TESTS ONLY: personal and reject records are written in clear, keyed by the device identity (no key store, no crypto-shredding; negative control of the rights tests).',
  },
});

export const ingestConfigSpec = { ...pipelineSettings, ...ingestSettings };
export type IngestConfig = ConfigOf<typeof ingestConfigSpec>;

export const INGEST_PREFIXES = ['INGEST_', 'PIPELINE_'] as const;

/** Throws `ConfigError` (one line per problem) on any unknown or invalid variable, or a zone without its own cluster. */
export function loadIngestConfig(env: NodeJS.ProcessEnv = process.env): IngestConfig {
  const cfg = loadConfig(ingestConfigSpec, { prefixes: INGEST_PREFIXES, env });
  checkKafkaSecurity(cfg); // sasl_ssl with missing credentials stops here, before any connection
  const residency = zoneResidencyProblem(cfg);
  if (residency) throw new ConfigError([residency]);
  return cfg;
}

/** The sealing settings as the workers take them (the password read from its file here, once). */
export function sealingSpec(cfg: IngestConfig): SealingSpec | undefined {
  if (cfg.INGEST_UNSAFE_UNSEALED) return undefined;
  return {
    keyDir: cfg.INGEST_RIGHTS_KEY_DIR,
    createKeys: cfg.INGEST_RIGHTS_KEYS_MODE === 'manage',
    stores: Object.fromEntries(ZONES.map((z) => [z, cfg[KEYSTORE_SETTING[z]]])) as Record<Zone, string>,
    user: cfg.INGEST_KEYSTORE_USER,
    schema: cfg.INGEST_KEYSTORE_SCHEMA,
    password: readFileSync(cfg.INGEST_KEYSTORE_PASSWORD_FILE, 'utf8').replace(/\r?\n$/, ''),
    cacheTtlMs: cfg.INGEST_KEY_CACHE_TTL_MS,
  };
}

export const KEYSTORE_SETTING = {
  cn: 'INGEST_KEYSTORE_CN',
  ru: 'INGEST_KEYSTORE_RU',
  in: 'INGEST_KEYSTORE_IN',
  row: 'INGEST_KEYSTORE_ROW',
} as const satisfies Record<Zone, keyof IngestConfig>;

/**
 * Sealing fails closed like residency: without a key store for every zone, a key directory and a
 * password file, ingest does not start (one line per missing setting), unless INGEST_UNSAFE_UNSEALED.
 */
export function sealingProblems(cfg: IngestConfig): string[] {
  if (cfg.INGEST_UNSAFE_UNSEALED) return [];
  const out: string[] = [];
  const missing = ZONES.filter((z) => !cfg[KEYSTORE_SETTING[z]]).map((z) => KEYSTORE_SETTING[z]);
  if (missing.length) out.push(`sealing (rights/README.md): ${missing.join(', ')} empty: every zone needs its key store (host:port/database)`);
  if (!cfg.INGEST_KEYSTORE_PASSWORD_FILE) out.push('sealing: INGEST_KEYSTORE_PASSWORD_FILE empty');
  if (!cfg.INGEST_RIGHTS_KEY_DIR) out.push("sealing: INGEST_RIGHTS_KEY_DIR empty (the zones' subject keys and key-encryption keys)");
  return out;
}

/**
 * Encryption in transit fails closed like sealing (policy 4.1): ingest serves HTTPS with both
 * INGEST_TLS_CERT_FILE and INGEST_TLS_KEY_FILE, plain HTTP only with INGEST_UNSAFE_PLAINTEXT_HTTP=true and
 * no TLS files, and otherwise refuses to start with one line naming the settings. Whether the files hold
 * a usable certificate and key is checked when they are read (ingest/tls.ts, `readTlsFiles`).
 */
export function tlsProblems(cfg: Pick<IngestConfig, 'INGEST_TLS_CERT_FILE' | 'INGEST_TLS_KEY_FILE' | 'INGEST_UNSAFE_PLAINTEXT_HTTP'>): string[] {
  const cert = cfg.INGEST_TLS_CERT_FILE !== '';
  const key = cfg.INGEST_TLS_KEY_FILE !== '';
  if (cert && !key) return ['TLS: INGEST_TLS_CERT_FILE is set but INGEST_TLS_KEY_FILE is empty: give both files (certificate chain and its key)'];
  if (key && !cert) return ['TLS: INGEST_TLS_KEY_FILE is set but INGEST_TLS_CERT_FILE is empty: give both files (certificate chain and its key)'];
  if (!cert && !cfg.INGEST_UNSAFE_PLAINTEXT_HTTP) {
    return [
      'TLS (policy 4.1): INGEST_TLS_CERT_FILE and INGEST_TLS_KEY_FILE are empty: devices must reach ingest over HTTPS; ' +
        'give the certificate chain and key files, or INGEST_UNSAFE_PLAINTEXT_HTTP=true on a development machine',
    ];
  }
  return [];
}

/** Pool size: INGEST_POOL_THREADS, or one thread per available core when 0. */
export function poolThreads(c: IngestConfig): number {
  return c.INGEST_POOL_THREADS > 0 ? c.INGEST_POOL_THREADS : Math.max(1, os.availableParallelism());
}

// ---- Residency: where each zone's personal and rejects topics live (policy section 6) -------------

/**
 * The zones the residency rule binds to a country: every zone the rule can assign (schemas RESIDENCY,
 * by SIM MCC or settings region) except its fallback. Derived from the map, not listed here
 * (ARCHITECTURE.md principle 1): cn, ru and in today. The fallback `row` is "everywhere else", bound to no
 * country, so its topics may live on the main cluster.
 */
export const RESIDENCY_ZONES: readonly Zone[] = (() => {
  const assigned = new Set<Zone>([...Object.values(RESIDENCY.byMcc), ...Object.values(RESIDENCY.byRegion)]);
  return ZONES.filter((z) => assigned.has(z) && z !== RESIDENCY.fallback);
})();

const ZONE_BROKER_SETTING = {
  cn: 'INGEST_ZONE_BROKERS_CN',
  ru: 'INGEST_ZONE_BROKERS_RU',
  in: 'INGEST_ZONE_BROKERS_IN',
  row: 'INGEST_ZONE_BROKERS_ROW',
} as const satisfies Record<Zone, keyof IngestConfig>;

const ZONE_NAME: Record<Zone, string> = { cn: 'Mainland China', ru: 'Russia', in: 'India', row: 'rest of the world' };

type ZoneSettings = Pick<IngestConfig, 'PIPELINE_KAFKA_BROKERS' | 'INGEST_ZONES_SHARE_MAIN_CLUSTER' | (typeof ZONE_BROKER_SETTING)[Zone]>;

/**
 * Why a zone bound by residency would have its personal data on the main cluster, as one line naming
 * each such zone, or undefined when every one has a cluster of its own (or INGEST_ZONES_SHARE_MAIN_CLUSTER
 * allows sharing). A zone has no cluster of its own when its list is empty (ingest used to fall back to
 * PIPELINE_KAFKA_BROKERS silently) or names a broker of PIPELINE_KAFKA_BROKERS (the same fallback, copied).
 * The one rule for ingest, the topic plan and the manifest check (tools/manifest-check.ts).
 */
export function zoneResidencyProblem(c: ZoneSettings): string | undefined {
  if (c.INGEST_ZONES_SHARE_MAIN_CLUSTER) return undefined;
  const main = new Set(c.PIPELINE_KAFKA_BROKERS);
  const why: string[] = [];
  for (const zone of RESIDENCY_ZONES) {
    const setting = ZONE_BROKER_SETTING[zone];
    const list = c[setting];
    const shared = list.filter((b) => main.has(b));
    if (list.length === 0) why.push(`${setting} is empty (zone ${zone}, ${ZONE_NAME[zone]})`);
    else if (shared.length > 0) why.push(`${setting} names ${shared.join(',')} of PIPELINE_KAFKA_BROKERS (zone ${zone}, ${ZONE_NAME[zone]})`);
  }
  if (why.length === 0) return undefined;
  return (
    `residency (policy section 6): ${why.join(', ')}; the personal data of a zone must stay on a cluster in its country: ` +
    'set its brokers, or INGEST_ZONES_SHARE_MAIN_CLUSTER=true on a single-cluster development or test setup'
  );
}

/** The zones bound by residency whose topics are on the main cluster, which only INGEST_ZONES_SHARE_MAIN_CLUSTER allows. */
export function zonesSharingMainCluster(c: ZoneSettings): Zone[] {
  const main = new Set(c.PIPELINE_KAFKA_BROKERS);
  return RESIDENCY_ZONES.filter((z) => {
    const list = c[ZONE_BROKER_SETTING[z]];
    return list.length === 0 || list.some((b) => main.has(b));
  });
}

/**
 * Bootstrap servers per zone: a zone bound by residency has its own cluster (policy section 6,
 * in-country storage); `row` without its own list is on the main cluster. Fails closed: a bound zone
 * without brokers of its own throws, unless INGEST_ZONES_SHARE_MAIN_CLUSTER allows the main cluster.
 */
export function zoneBrokers(c: IngestConfig): Record<Zone, string[]> {
  const residency = zoneResidencyProblem(c);
  if (residency) throw new ConfigError([residency]);
  const pick = (l: string[]) => (l.length > 0 ? l : c.PIPELINE_KAFKA_BROKERS);
  return {
    cn: pick(c.INGEST_ZONE_BROKERS_CN),
    ru: pick(c.INGEST_ZONE_BROKERS_RU),
    in: pick(c.INGEST_ZONE_BROKERS_IN),
    row: pick(c.INGEST_ZONE_BROKERS_ROW),
  };
}

export { ZONES };
