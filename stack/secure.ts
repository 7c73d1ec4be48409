// The secured local stack (`npm run stack:up -- --secure`): a SEPARATE Kafka (SASL_SSL with SCRAM-SHA-512
// principals, the KRaft StandardAuthorizer, ACLs from tools/security/acls.ts) and a SEPARATE ClickHouse
// (users.xml users with hashed passwords, stack/clickhouse-users.ts), on their own ports and
// under .local/secure/, so the plain stack every other suite uses is untouched.
//
// Everything secret is generated here, once per stack, into .local/secure/ with mode 0600: the CA and
// broker key, one password per principal/user. Nothing here prints a password; files are the interface
// (PIPELINE_KAFKA_SASL_PASSWORD_FILE=.local/secure/secrets/kafka-ingest.password).
import { execFile } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import { createClient, ClickHouseLogLevel, type ClickHouseClient } from '@clickhouse/client';
import kafkajs, { type Kafka as KafkaClient } from 'kafkajs';
import { runMigrations } from '../aggregator/migrate.ts';
import { ZONES } from '../schemas/contract.ts';
import { personalRetentionClasses } from '../schemas/categories.ts';
import { personalTopic, rejectsTopic, rightsTopic, pipelineSettings } from '../runtime/pipeline-settings.ts';
import { aclRules, applyAclRules, KAFKA_ROLES, type AclTopic, type KafkaRole } from '../tools/security/acls.ts';
import {
  analystClusterXml,
  CLICKHOUSE_USERS,
  DEFAULT_LAYOUT,
  E2E_LAYOUT,
  ledgerTableSql,
  personalTableSql,
  secureUsersXml,
  syncAnalystViews,
  type ClickHouseUser,
  type SqlClient,
} from './clickhouse-users.ts';
import { type StackConfig } from './config.ts';
import { StackError } from './errors.ts';
import { clickhouseAnswers, clickhousePaths, resolveClickHouseServer, startClickHouse, stopClickHouse, type ClickHouseTls } from './clickhouse.ts';
import { checkJava, fetchKafkaJars, kafkaBrokerIds, singleNode, startKafkaNodes, stopKafkaNodes, type KafkaNode, type KafkaProbeSecurity } from './kafka.ts';
import { liveRecord, portIsFree, stopRecorded } from './proc.ts';
import { createCertificateAuthority, issueServerCertificate, type CertificateAuthority } from './tls.ts';

const { Kafka, logLevel, AclOperationTypes, AclPermissionTypes, AclResourceTypes, ResourcePatternTypes } = kafkajs;
const run = promisify(execFile);

/** Analytics databases the secured server's users know: the pipeline's, and the e2e test's own. */
export const SECURE_LAYOUTS = [DEFAULT_LAYOUT, E2E_LAYOUT];

/** Principals only the brokers use: inter-broker (SCRAM) and broker-to-controller (PLAIN). */
const BROKER_PRINCIPALS = ['broker', 'controller'] as const;
type KafkaSecretName = KafkaRole | (typeof BROKER_PRINCIPALS)[number];

export interface SecureSecrets {
  kafka: Record<KafkaSecretName, string>;
  clickhouse: Record<ClickHouseUser, string>;
}

export interface SecurePaths {
  root: string;
  tlsDir: string;
  caKey: string;
  caCert: string;
  brokerKey: string;
  brokerCert: string;
  /** broker key + certificate chain, the broker's PEM keystore */
  brokerKeystore: string;
  /** The secured ClickHouse's server certificate and key (HTTPS and native TLS). */
  clickhouseCert: string;
  clickhouseKey: string;
  /** Ingest's server certificate and key (INGEST_TLS_CERT_FILE / INGEST_TLS_KEY_FILE in secureServiceEnv). */
  ingestCert: string;
  ingestKey: string;
  secretsDir: string;
  secretsJson: string;
}

export function securePaths(config: StackConfig): SecurePaths {
  const root = path.join(config.home, 'secure');
  const tlsDir = path.join(root, 'tls');
  const secretsDir = path.join(root, 'secrets');
  return {
    root,
    tlsDir,
    caKey: path.join(tlsDir, 'ca.key'),
    caCert: path.join(tlsDir, 'ca.pem'),
    brokerKey: path.join(tlsDir, 'broker.key'),
    brokerCert: path.join(tlsDir, 'broker.pem'),
    brokerKeystore: path.join(tlsDir, 'broker-keystore.pem'),
    clickhouseCert: path.join(tlsDir, 'clickhouse.pem'),
    clickhouseKey: path.join(tlsDir, 'clickhouse.key'),
    ingestCert: path.join(tlsDir, 'ingest.pem'),
    ingestKey: path.join(tlsDir, 'ingest.key'),
    secretsDir,
    secretsJson: path.join(secretsDir, 'secrets.json'),
  };
}

/**
 * The secured ClickHouse's TLS ports: HTTPS on its HTTP port (STACK_SECURE_CLICKHOUSE_HTTP_PORT, plain
 * HTTP is not served at all), native TLS on the native port + 300 (19301 by default; the plain native port
 * stays, loopback only, for the analyst proxies' own connection and a terminal's clickhouse-client).
 */
export function secureClickHousePorts(config: StackConfig): { https: number; nativeTls: number; native: number } {
  return { https: config.secure.httpPort, nativeTls: config.secure.tcpPort + 300, native: config.secure.tcpPort };
}

/** The secured stack as a StackConfig of its own: own home (.local/secure) and own ports. */
export function secureStackConfig(config: StackConfig): StackConfig {
  return {
    ...config,
    home: path.join(config.home, 'secure'),
    kafka: { ...config.kafka, port: config.secure.kafkaPort, controllerPort: config.secure.kafkaControllerPort, heap: '384m' },
    clickhouse: { ...config.clickhouse, httpPort: config.secure.httpPort, tcpPort: config.secure.tcpPort, interserverPort: config.secure.interserverPort },
  };
}

/** File a service reads its password from (PIPELINE_KAFKA_SASL_PASSWORD_FILE, ...). */
export function kafkaPasswordFile(config: StackConfig, role: KafkaRole): string {
  return path.join(securePaths(config).secretsDir, `kafka-${role}.password`);
}
export function clickhousePasswordFile(config: StackConfig, user: ClickHouseUser): string {
  return path.join(securePaths(config).secretsDir, `clickhouse-${user}.password`);
}

/** Writes a secret file atomically (temporary file 0600, then rename): a reader sees the old or the new content, never a part. */
export function writeSecret(file: string, content: string): void {
  writeFileSync(`${file}.tmp`, content, { mode: 0o600 });
  chmodSync(`${file}.tmp`, 0o600);
  renameSync(`${file}.tmp`, file);
}

export const newPassword = (): string => randomBytes(24).toString('base64url');

/** The stack's passwords: read, or generated once (then Kafka storage must be formatted with them). */
export function readSecrets(config: StackConfig): SecureSecrets | undefined {
  const p = securePaths(config);
  if (!existsSync(p.secretsJson)) return undefined;
  return JSON.parse(readFileSync(p.secretsJson, 'utf8')) as SecureSecrets;
}

function ensureSecrets(config: StackConfig): { secrets: SecureSecrets; fresh: boolean } {
  const p = securePaths(config);
  const have = readSecrets(config);
  if (have) {
    // A ClickHouse user added since the stack was made (answers) gets its password now; Kafka is untouched.
    const missing = CLICKHOUSE_USERS.filter((u) => !have.clickhouse[u]);
    for (const u of missing) writeSecret(clickhousePasswordFile(config, u), (have.clickhouse[u] = newPassword()) + '\n');
    if (missing.length) writeSecret(p.secretsJson, JSON.stringify(have, null, 2) + '\n');
    return { secrets: have, fresh: false };
  }
  mkdirSync(p.secretsDir, { recursive: true, mode: 0o700 });
  chmodSync(p.secretsDir, 0o700);
  const kafka = Object.fromEntries([...KAFKA_ROLES, ...BROKER_PRINCIPALS].map((r) => [r, newPassword()])) as Record<KafkaSecretName, string>;
  const clickhouse = Object.fromEntries(CLICKHOUSE_USERS.map((u) => [u, newPassword()])) as Record<ClickHouseUser, string>;
  const secrets = { kafka, clickhouse };
  writeSecret(p.secretsJson, JSON.stringify(secrets, null, 2) + '\n');
  for (const r of KAFKA_ROLES) writeSecret(kafkaPasswordFile(config, r), kafka[r] + '\n');
  for (const u of CLICKHOUSE_USERS) writeSecret(clickhousePasswordFile(config, u), clickhouse[u] + '\n');
  return { secrets, fresh: true };
}

async function openssl(args: string[]): Promise<void> {
  try {
    await run('openssl', args, { timeout: 60_000 });
  } catch (e) {
    const err = e as NodeJS.ErrnoException & { stderr?: string };
    if (err.code === 'ENOENT')
      throw new StackError(
        'STACK_START_FAILED',
        "openssl not found: install it (Debian: apt-get install -y openssl), needed to make the secured stack's certificates",
      );
    throw new StackError('STACK_START_FAILED', `openssl ${args[0]} failed: ${(err.stderr ?? err.message).trim().split('\n').pop()}`);
  }
}

async function certValidForADay(cert: string): Promise<boolean> {
  if (!existsSync(cert)) return false;
  try {
    await run('openssl', ['x509', '-checkend', '86400', '-noout', '-in', cert]);
    return true;
  } catch {
    return false;
  }
}

/**
 * A CA and the server certificates it signs for 127.0.0.1/localhost (30 days; remade when less than a day
 * is left): the broker's (PEM key store), the secured ClickHouse's (HTTPS, native TLS) and ingest's
 * (INGEST_TLS_*). A certificate missing from an older stack is issued by the CA it already has, so clients
 * that trust that CA keep working. Clients verify every server against the CA (`ca.pem`).
 */
async function ensureCertificates(config: StackConfig): Promise<void> {
  const p = securePaths(config);
  const caOk = (await certValidForADay(p.caCert)) && existsSync(p.caKey);
  const ca: CertificateAuthority = caOk ? { certFile: p.caCert, keyFile: p.caKey } : await createCertificateAuthority(p.tlsDir);
  mkdirSync(p.tlsDir, { recursive: true, mode: 0o700 });
  if (!caOk || !(await certValidForADay(p.brokerCert)) || !existsSync(p.brokerKeystore)) {
    const csr = path.join(p.tlsDir, 'broker.csr');
    const ext = path.join(p.tlsDir, 'broker.ext');
    await openssl(['req', '-newkey', 'rsa:2048', '-nodes', '-keyout', p.brokerKey, '-out', csr, '-subj', '/CN=localhost']);
    writeFileSync(
      ext,
      'subjectAltName=IP:127.0.0.1,DNS:localhost\nbasicConstraints=CA:FALSE\nkeyUsage=digitalSignature,keyEncipherment\nextendedKeyUsage=serverAuth,clientAuth\n',
    );
    await openssl(['x509', '-req', '-in', csr, '-CA', p.caCert, '-CAkey', p.caKey, '-CAcreateserial', '-out', p.brokerCert, '-days', '30', '-extfile', ext]);
    writeSecret(p.brokerKeystore, readFileSync(p.brokerKey, 'utf8') + readFileSync(p.brokerCert, 'utf8'));
    chmodSync(p.brokerKey, 0o600);
    rmSync(csr, { force: true });
  }
  for (const name of ['clickhouse', 'ingest'] as const) {
    const cert = name === 'clickhouse' ? p.clickhouseCert : p.ingestCert;
    const key = name === 'clickhouse' ? p.clickhouseKey : p.ingestKey;
    if (caOk && (await certValidForADay(cert)) && existsSync(key)) continue;
    await issueServerCertificate(ca, { dir: p.tlsDir, name });
  }
  chmodSync(p.caKey, 0o600);
}

/** kafkajs TLS + SCRAM options for one principal of the secured stack. */
export function secureKafkaOptions(config: StackConfig, role: KafkaRole, password?: string): KafkaProbeSecurity {
  const secrets = readSecrets(config);
  if (!secrets) throw new StackError('STACK_NOT_RUNNING', 'the secured stack has no secrets yet: run npm run stack:up -- --secure');
  const sasl = { mechanism: 'scram-sha-512' as const, username: role } as { mechanism: 'scram-sha-512'; username: string; password: string };
  Object.defineProperty(sasl, 'password', { value: password ?? secrets.kafka[role], enumerable: false });
  return { ssl: { ca: [readFileSync(securePaths(config).caCert, 'utf8')], rejectUnauthorized: true }, sasl };
}

function jaas(module: 'scram.ScramLoginModule' | 'plain.PlainLoginModule', user: string, password: string, extra = ''): string {
  return `org.apache.kafka.common.security.${module} required username="${user}" password="${password}"${extra};`;
}

/** The secured Kafka node: plain node layout under .local/secure, SASL_SSL listener, authorizer. */
export function secureKafkaNode(config: StackConfig, secrets: SecureSecrets): KafkaNode {
  const sc = secureStackConfig(config);
  const p = securePaths(config);
  const base = singleNode(sc);
  const host = config.host;
  return {
    ...base,
    service: 'secure kafka',
    secure: {
      properties: {
        listeners: `SASL_SSL://${host}:${sc.kafka.port},CONTROLLER://${host}:${sc.kafka.controllerPort}`,
        'advertised.listeners': `SASL_SSL://${host}:${sc.kafka.port}`,
        'listener.security.protocol.map': 'SASL_SSL:SASL_SSL,CONTROLLER:SASL_PLAINTEXT',
        'inter.broker.listener.name': 'SASL_SSL',
        'sasl.enabled.mechanisms': 'SCRAM-SHA-512',
        'sasl.mechanism.inter.broker.protocol': 'SCRAM-SHA-512',
        'listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config': jaas('scram.ScramLoginModule', 'broker', secrets.kafka.broker),
        // KRaft controllers cannot use SCRAM (credentials live in the metadata they serve): PLAIN with a
        // static controller user, on a loopback listener only the broker itself talks to.
        'sasl.mechanism.controller.protocol': 'PLAIN',
        'listener.name.controller.sasl.enabled.mechanisms': 'PLAIN',
        'listener.name.controller.plain.sasl.jaas.config': jaas(
          'plain.PlainLoginModule',
          'controller',
          secrets.kafka.controller,
          ` user_controller="${secrets.kafka.controller}"`,
        ),
        'ssl.keystore.type': 'PEM',
        'ssl.keystore.location': p.brokerKeystore,
        'ssl.truststore.type': 'PEM',
        'ssl.truststore.location': p.caCert,
        'ssl.client.auth': 'none',
        'ssl.endpoint.identification.algorithm': 'https',
        'authorizer.class.name': 'org.apache.kafka.metadata.authorizer.StandardAuthorizer',
        'allow.everyone.if.no.acl.found': 'false',
        'super.users': 'User:broker;User:controller;User:operator',
        'offsets.topic.num.partitions': '4',
      },
      scram: [{ name: 'broker', password: secrets.kafka.broker }, ...KAFKA_ROLES.map((r) => ({ name: r, password: secrets.kafka[r] }))],
      probe: secureKafkaOptions(config, 'operator'),
    },
  };
}

export function secureKafkaBrokers(config: StackConfig): string[] {
  return [`${config.host}:${config.secure.kafkaPort}`];
}
/** The secured ClickHouse's URL: HTTPS, verified against the stack's CA (securePaths().caCert). */
export function secureClickHouseUrl(config: StackConfig): string {
  return `https://${config.host}:${secureClickHousePorts(config).https}`;
}

/** The TLS part of the secured ClickHouse's config (stack/clickhouse.ts ClickHouseTls). */
export function secureClickHouseTls(config: StackConfig): ClickHouseTls {
  const p = securePaths(config);
  return { certFile: p.clickhouseCert, keyFile: p.clickhouseKey, caFile: p.caCert, tcpSecurePort: secureClickHousePorts(config).nativeTls };
}

/** A kafkajs client logged in as `role` on the secured Kafka (silent). */
export function secureKafka(config: StackConfig, role: KafkaRole, opts: { password?: string; clientId?: string } = {}): KafkaClient {
  return new Kafka({
    clientId: opts.clientId ?? `secure-${role}`,
    brokers: secureKafkaBrokers(config),
    ...secureKafkaOptions(config, role, opts.password),
    logLevel: logLevel.NOTHING,
    connectionTimeout: 5000,
    requestTimeout: 15_000,
    retry: { retries: 2, initialRetryTime: 100, maxRetryTime: 1000 },
  });
}

/** An @clickhouse/client logged in as `user` on the secured ClickHouse. */
export function secureClickHouse(config: StackConfig, user: ClickHouseUser, opts: { password?: string } = {}): ClickHouseClient {
  const secrets = readSecrets(config);
  if (!secrets) throw new StackError('STACK_NOT_RUNNING', 'the secured stack has no secrets yet: run npm run stack:up -- --secure');
  return createClient({
    url: secureClickHouseUrl(config),
    tls: { ca_cert: readFileSync(securePaths(config).caCert) },
    username: user,
    password: opts.password ?? secrets.clickhouse[user],
    request_timeout: 60_000,
    compression: { request: false, response: false },
    log: { level: ClickHouseLogLevel.OFF },
  });
}

export function sqlClient(ch: ClickHouseClient): SqlClient {
  return {
    exec: async (sql) => {
      await ch.command({ query: sql });
    },
    rows: async <T>(sql: string) => (await (await ch.query({ query: sql, format: 'JSONEachRow' })).json<T>()) as T[],
  };
}

/** The pipeline topics under the default PIPELINE_TOPIC_* names (what ingest and the aggregator use). */
export function defaultPipelineTopics(): AclTopic[] {
  const events = pipelineSettings.PIPELINE_TOPIC_EVENTS.default;
  const pp = pipelineSettings.PIPELINE_TOPIC_PERSONAL_PREFIX.default;
  const rp = pipelineSettings.PIPELINE_TOPIC_REJECTS_PREFIX.default;
  return [
    { topic: events, kind: 'events', zone: undefined },
    ...ZONES.flatMap((z): AclTopic[] => [
      ...personalRetentionClasses().map((c): AclTopic => ({ topic: personalTopic(pp, z, c.name), kind: 'personal', zone: z })),
      { topic: rejectsTopic(rp, z), kind: 'rejects', zone: z },
      { topic: rightsTopic(pipelineSettings.PIPELINE_TOPIC_RIGHTS_PREFIX.default, z), kind: 'rights', zone: z },
    ]),
  ];
}

/**
 * As the operator: creates the pipeline topics (ingest, which has no CREATE, runs with
 * INGEST_TOPICS=verify here) and the ACLs of tools/security/acls.ts for them.
 */
export async function provisionKafka(
  config: StackConfig,
  topics: readonly AclTopic[] = defaultPipelineTopics(),
  opts: { partitions?: number; aggregatorGroup?: string } = {},
): Promise<number> {
  const admin = secureKafka(config, 'operator').admin();
  await admin.connect();
  try {
    const existing = new Set(await admin.listTopics());
    const missing = topics.filter((t) => !existing.has(t.topic));
    if (missing.length > 0) {
      // Leaders are awaited here, not by kafkajs: its waitForLeaders fails with "does not host this
      // topic-partition" on a freshly started KRaft node (seen on a cold secured stack).
      await admin.createTopics({
        waitForLeaders: false,
        topics: missing.map((t) => ({ topic: t.topic, numPartitions: opts.partitions ?? 3, replicationFactor: 1 })),
      });
      const names = missing.map((t) => t.topic);
      const deadline = Date.now() + 30_000;
      for (;;) {
        const meta = await admin.fetchTopicMetadata({ topics: names }).catch(() => undefined);
        if (meta && meta.topics.length === names.length && meta.topics.every((t) => t.partitions.length > 0 && t.partitions.every((p) => p.leader >= 0))) break;
        if (Date.now() > deadline) throw new StackError('STACK_START_TIMEOUT', `secure kafka: topics ${names.join(', ')} have no leader after 30 s`);
        await new Promise((r) => setTimeout(r, 200));
      }
    }
    const n = await applyAclRules(admin, aclRules({ topics, ...(opts.aggregatorGroup ? { aggregatorGroup: opts.aggregatorGroup } : {}) }));
    // A fresh node creates __consumer_offsets on the first group lookup and answers
    // GROUP_COORDINATOR_NOT_AVAILABLE until it is loaded; do that here, so "up" means consumers can join.
    const deadline = Date.now() + 60_000;
    for (;;) {
      const ok = await admin.describeGroups(['secure-stack-warmup']).then(
        () => true,
        () => false,
      );
      if (ok) break;
      if (Date.now() > deadline) throw new StackError('STACK_START_TIMEOUT', 'secure kafka: the group coordinator did not become available within 60 s');
      await new Promise((r) => setTimeout(r, 300));
    }
    return n;
  } finally {
    await admin.disconnect();
  }
}

/**
 * As the operator: deletes the topics whose names start with `prefix`, and the ACL bindings on
 * resources whose names start with it. The secured stack keeps its data between runs (until its secrets
 * are made afresh), so a test that provisions topics named by its run removes them after itself: a
 * broker pays for every partition it holds on each fetch (ingest/README.md, "The aims"). Returns the
 * topics deleted.
 */
export async function deprovisionKafka(config: StackConfig, prefix: string): Promise<string[]> {
  if (prefix.length < 4) throw new Error(`deprovisionKafka: prefix "${prefix}" is too short to be one run's`);
  const admin = secureKafka(config, 'operator').admin();
  await admin.connect();
  try {
    const topics = (await admin.listTopics()).filter((t) => t.startsWith(prefix));
    if (topics.length > 0) await admin.deleteTopics({ topics, timeout: 30_000 });
    const { resources } = await admin.describeAcls({
      resourceType: AclResourceTypes.ANY,
      resourcePatternType: ResourcePatternTypes.ANY,
      operation: AclOperationTypes.ANY,
      permissionType: AclPermissionTypes.ANY,
    });
    const filters = resources
      .filter((r) => r.resourceName.startsWith(prefix))
      .flatMap((r) =>
        r.acls.map((a) => ({
          resourceType: r.resourceType,
          resourceName: r.resourceName,
          resourcePatternType: r.resourcePatternType,
          principal: a.principal,
          host: a.host,
          operation: a.operation,
          permissionType: a.permissionType,
        })),
      );
    if (filters.length > 0) await admin.deleteAcls({ filters });
    return topics;
  } finally {
    await admin.disconnect();
  }
}

/**
 * As the admin and the aggregator: the personal table, the analytics database migrated by the
 * aggregator user itself (so it is proven to suffice), and the analyst proxies over its views.
 */
export async function provisionClickHouse(config: StackConfig, opts: { analyticsDb?: string; minGroupDevices?: number } = {}): Promise<string[]> {
  const layout = { ...DEFAULT_LAYOUT, ...(opts.analyticsDb ? { analyticsDb: opts.analyticsDb } : {}) };
  const admin = secureClickHouse(config, 'default');
  const agg = secureClickHouse(config, 'aggregator');
  try {
    for (const sql of personalTableSql(layout)) await admin.command({ query: sql });
    await runMigrations(sqlClient(agg), { database: layout.analyticsDb, minGroupDevices: opts.minGroupDevices ?? 5 });
    for (const sql of ledgerTableSql(layout)) await admin.command({ query: sql });
    return await syncAnalystViews(sqlClient(admin), layout);
  } finally {
    await Promise.all([admin.close(), agg.close()]);
  }
}

export interface SecureUpResult {
  started: string[];
  kafkaBrokers: string[];
  clickhouseUrl: string;
  caFile: string;
  secretsDir: string;
}

/**
 * Brings the secured stack up (reusing running parts), then provisions topics, ACLs, the personal
 * table, migrations and analyst proxies. New secrets (first start, or secrets.json deleted) mean the
 * Kafka storage is formatted again: the SCRAM users live in its metadata.
 */
export async function upSecure(config: StackConfig, log: (l: string) => void = () => {}): Promise<SecureUpResult> {
  const sc = secureStackConfig(config);
  const chPaths = clickhousePaths(sc);
  const node0 = singleNode(sc);
  const kafkaRunning = liveRecord(node0.pidFile) !== undefined;
  let chRunning = liveRecord(chPaths.pidFile) !== undefined;
  // A secured ClickHouse started by an older version of this file (plain HTTP, no TLS) is restarted with
  // the config generated now: ports and TLS are read only at start. Its data is kept.
  if (chRunning && !(existsSync(chPaths.configFile) && readFileSync(chPaths.configFile, 'utf8').includes('<https_port>'))) {
    log('secure: the running secured ClickHouse predates HTTPS: restarting it with the current config');
    await stopRecorded(chPaths.pidFile, { graceMs: 20_000 });
    chRunning = false;
  }
  // Preflight before anything starts.
  if (!kafkaRunning) {
    await checkJava(config);
    for (const [what, port] of [
      ['secure kafka', sc.kafka.port],
      ['secure kafka controller', sc.kafka.controllerPort],
    ] as const) {
      if (!(await portIsFree(port, config.host)))
        throw new StackError(
          'STACK_PORT_IN_USE',
          `port ${port} (${what}) is already in use by another program: free it or choose another port with STACK_SECURE_KAFKA_PORT / STACK_SECURE_KAFKA_CONTROLLER_PORT`,
        );
    }
    await fetchKafkaJars(config);
  }
  if (!chRunning) {
    resolveClickHouseServer(config);
    for (const [what, port] of [
      ['secure clickhouse http', sc.clickhouse.httpPort],
      ['secure clickhouse tcp', sc.clickhouse.tcpPort],
      ['secure clickhouse interserver', sc.clickhouse.interserverPort],
      ['secure clickhouse native tls (tcp port + 300)', secureClickHousePorts(config).nativeTls],
    ] as const) {
      if (!(await portIsFree(port, config.host)))
        throw new StackError(
          'STACK_PORT_IN_USE',
          `port ${port} (${what}) is already in use by another program: free it or choose another port with STACK_SECURE_CLICKHOUSE_*_PORT`,
        );
    }
  }
  const { secrets, fresh } = ensureSecrets(config);
  // A running server re-reads users.xml by itself within seconds: keep it current with this code.
  if (chRunning) writeFileSync(chPaths.usersFile, secureUsersXml(secrets.clickhouse, SECURE_LAYOUTS), { mode: 0o600 });
  if (fresh && kafkaRunning)
    throw new StackError('STACK_START_FAILED', 'the secured stack runs without its secrets file: stop it (npm run stack:down -- --secure) and start it again');
  await ensureCertificates(config);
  const node = secureKafkaNode(config, secrets);
  if (fresh) rmSync(node.dataDir, { recursive: true, force: true });
  const started: string[] = [];
  const results = await Promise.allSettled([
    startKafkaNodes(sc, [node]).then((r) => {
      if (r.started.length) started.push('secure kafka');
    }),
    startClickHouse(sc, {
      usersXml: secureUsersXml(secrets.clickhouse, SECURE_LAYOUTS),
      extraConfigXml: analystClusterXml(config.host, sc.clickhouse.tcpPort, secrets.clickhouse.views_reader),
      tls: secureClickHouseTls(config),
    }).then((r) => {
      if (r.started) started.push('secure clickhouse');
    }),
  ]);
  const failed = results.find((r): r is PromiseRejectedResult => r.status === 'rejected');
  if (failed) {
    if (started.includes('secure kafka')) await stopKafkaNodes([node]).catch(() => {});
    if (started.includes('secure clickhouse')) await stopClickHouse(sc).catch(() => {});
    throw failed.reason;
  }
  const acls = await provisionKafka(config);
  const views = await provisionClickHouse(config);
  log(`secure: ${acls} ACL bindings, topics ${defaultPipelineTopics().length}, analyst views ${views.join(', ')}`);
  return {
    started,
    kafkaBrokers: secureKafkaBrokers(config),
    clickhouseUrl: secureClickHouseUrl(config),
    caFile: securePaths(config).caCert,
    secretsDir: securePaths(config).secretsDir,
  };
}

export async function downSecure(config: StackConfig): Promise<string[]> {
  const sc = secureStackConfig(config);
  const stopped: string[] = [];
  if ((await stopKafkaNodes([singleNode(sc)])) > 0) stopped.push('secure kafka');
  if (await stopClickHouse(sc)) stopped.push('secure clickhouse');
  return stopped;
}

export interface SecureStatus {
  kafka: { running: boolean; answers: boolean; address: string };
  clickhouse: { running: boolean; answers: boolean; address: string };
}

export async function statusSecure(config: StackConfig): Promise<SecureStatus> {
  const sc = secureStackConfig(config);
  const kRunning = liveRecord(singleNode(sc).pidFile) !== undefined;
  const cRunning = liveRecord(clickhousePaths(sc).pidFile) !== undefined;
  const kAnswers =
    kRunning && readSecrets(config) ? (await kafkaBrokerIds(secureKafkaBrokers(config), secureKafkaOptions(config, 'operator'))).length > 0 : false;
  return {
    kafka: { running: kRunning, answers: kAnswers, address: secureKafkaBrokers(config).join(',') },
    clickhouse: {
      running: cRunning,
      answers: existsSync(securePaths(config).caCert) && (await clickhouseAnswers(secureClickHouseUrl(config), 1000, readFileSync(securePaths(config).caCert))),
      address: secureClickHouseUrl(config),
    },
  };
}

/**
 * Environment for a service of the pipeline logged in as `role` on the secured stack (what a test or a
 * terminal passes to `npm run ingest` / `npm run aggregator`): file references, never password values.
 */
export function secureServiceEnv(config: StackConfig, role: 'ingest' | 'aggregator'): Record<string, string> {
  const env: Record<string, string> = {
    PIPELINE_KAFKA_BROKERS: secureKafkaBrokers(config).join(','),
    PIPELINE_KAFKA_SECURITY: 'sasl_ssl',
    PIPELINE_KAFKA_SASL_USERNAME: role,
    PIPELINE_KAFKA_SASL_PASSWORD_FILE: kafkaPasswordFile(config, role),
    PIPELINE_KAFKA_TLS_CA_FILE: securePaths(config).caCert,
  };
  if (role === 'ingest') {
    env.INGEST_TOPICS = 'verify';
    // Devices reach ingest over TLS: a server certificate from the stack's CA (ingest/README.md).
    env.INGEST_TLS_CERT_FILE = securePaths(config).ingestCert;
    env.INGEST_TLS_KEY_FILE = securePaths(config).ingestKey;
    // The secured local stack is one Kafka cluster: every zone's topics share it (development only;
    // production gives cn, ru and in clusters of their own, policy section 6, ingest/config.ts).
    env.INGEST_ZONES_SHARE_MAIN_CLUSTER = 'true';
  }
  if (role === 'aggregator') {
    env.AGGREGATOR_CLICKHOUSE_URL = secureClickHouseUrl(config);
    env.AGGREGATOR_CLICKHOUSE_TLS_CA_FILE = securePaths(config).caCert;
    env.AGGREGATOR_CLICKHOUSE_USER = 'aggregator';
    env.AGGREGATOR_CLICKHOUSE_PASSWORD_FILE = clickhousePasswordFile(config, 'aggregator');
  }
  return env;
}

/** Environment of the analyst's query command on the secured stack (file references, never password values). */
export function secureAnalystEnv(config: StackConfig, database = DEFAULT_LAYOUT.viewsDb): Record<string, string> {
  return {
    ANALYST_CLICKHOUSE_URL: secureClickHouseUrl(config),
    ANALYST_CLICKHOUSE_TLS_CA_FILE: securePaths(config).caCert,
    ANALYST_CLICKHOUSE_USER: 'analyst',
    ANALYST_CLICKHOUSE_PASSWORD_FILE: clickhousePasswordFile(config, 'analyst'),
    ANALYST_DATABASE: database,
  };
}

/**
 * A secured stack of a test's own: home `home` (its Kafka data, ClickHouse, secrets and certificates under
 * `<home>/secure`), the Kafka jars of `base`, and ports `portBase` .. `portBase + 4` (+ 300 for native
 * TLS), so a test can start it from nothing, rotate its passwords or stop it without touching the shared
 * secured stack. Stop it with downSecure(config) and remove `home`.
 */
export function scratchSecureConfig(base: StackConfig, home: string, portBase: number): StackConfig {
  return {
    ...base,
    home,
    kafka: { ...base.kafka, libs: base.kafka.libs },
    secure: {
      kafkaPort: portBase,
      kafkaControllerPort: portBase + 1,
      httpPort: portBase + 2,
      tcpPort: portBase + 3,
      interserverPort: portBase + 4,
    },
  };
}
