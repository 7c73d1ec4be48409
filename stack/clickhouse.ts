// ClickHouse server for the local stack: Debian's clickhouse-server (18.16) run as a plain process with a
// config file we generate, so it never reads /etc/clickhouse-server, never needs systemd, and never
// shares data or ports with a service the Debian package may have started on the default ports.
import { accessSync, chmodSync, constants, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { get as httpsGet } from 'node:https';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { StackConfig } from './config.ts';
import { StackError } from './errors.ts';
import { isOurProcess, liveRecord, spawnService, stopRecorded, tailOf, type PidRecord } from './proc.ts';

export interface ClickHousePaths {
  dir: string;
  configFile: string;
  usersFile: string;
  dataDir: string;
  tmpDir: string;
  logDir: string;
  userFilesDir: string;
  formatSchemasDir: string;
  pidFile: string;
}

export function clickhousePaths(config: StackConfig): ClickHousePaths {
  const dir = path.join(config.home, 'clickhouse');
  return {
    dir,
    configFile: path.join(dir, 'config.xml'),
    usersFile: path.join(dir, 'users.xml'),
    dataDir: path.join(dir, 'data') + path.sep,
    tmpDir: path.join(dir, 'tmp') + path.sep,
    logDir: path.join(dir, 'log'),
    userFilesDir: path.join(dir, 'user_files') + path.sep,
    formatSchemasDir: path.join(dir, 'format_schemas') + path.sep,
    pidFile: path.join(config.home, 'run', 'clickhouse.pid'),
  };
}

export function clickhouseUrl(config: StackConfig): string {
  return `http://${config.host}:${config.clickhouse.httpPort}`;
}

function xmlEscape(s: string): string {
  return s.replace(/&/g, '&amp;').replace(/</g, '&lt;').replace(/>/g, '&gt;');
}

/**
 * users.xml `<default>` profile (inside `<profiles>`): the settings of the administrator and of the
 * aggregator. Shared by the plain stack and the secured one (stack/clickhouse-users.ts).
 */
export const DEFAULT_PROFILE_XML = `    <default>
      <max_memory_usage>2000000000</max_memory_usage>
      <use_uncompressed_cache>0</use_uncompressed_cache>
      <load_balancing>random</load_balancing>
    </default>`;

/**
 * users.xml `<quotas>` block: the `default` quota counts but never limits. Shared by the plain stack and
 * the secured one (stack/clickhouse-users.ts); limits live in profiles, not quotas.
 */
export const UNLIMITED_DEFAULT_QUOTA_XML = `  <quotas>
    <default>
      <interval>
        <duration>3600</duration>
        <queries>0</queries>
        <errors>0</errors>
        <result_rows>0</result_rows>
        <read_rows>0</read_rows>
        <execution_time>0</execution_time>
      </interval>
    </default>
  </quotas>
`;

/**
 * config.xml for 18.16 (root element <yandex>, as that release expects). Caches are capped well below
 * the package defaults (5 GiB mark cache, 8 GiB uncompressed cache) because this server shares a small
 * machine with Kafka and the test runs; they are allocated on demand, so the cap only bounds growth.
 */
/**
 * TLS of a server (the secured stack's, stack/secure.ts): its HTTP port serves HTTPS only (no plain
 * `http_port` at all), and the native protocol gets a TLS port (`tcp_port_secure`) beside the plain one.
 * 18.16 (Debian) links the system's Poco NetSSL and OpenSSL 3, so the `openSSL` section is Poco's: TLS 1.2
 * and 1.3 only, ECDHE ciphers with AEAD for 1.2, no client certificates (users log in with passwords).
 */
export interface ClickHouseTls {
  /** PEM certificate chain of the server. */
  certFile: string;
  /** PEM private key (unencrypted; mode 0600). */
  keyFile: string;
  /** PEM CA the server trusts as a client (its Distributed connections over TLS). */
  caFile: string;
  /** Native TLS port (`tcp_port_secure`). */
  tcpSecurePort: number;
}

const TLS_DISABLED_PROTOCOLS = 'sslv2,sslv3,tlsv1,tlsv1_1';
/** TLS 1.2 suites (1.3 has its own, all AEAD): forward secrecy and AEAD only. */
export const CLICKHOUSE_TLS12_CIPHERS = 'ECDHE+AESGCM:ECDHE+CHACHA20:!aNULL:!eNULL';

function openSslXml(tls: ClickHouseTls): string {
  return `  <tcp_port_secure>${tls.tcpSecurePort}</tcp_port_secure>
  <openSSL>
    <server>
      <certificateFile>${xmlEscape(tls.certFile)}</certificateFile>
      <privateKeyFile>${xmlEscape(tls.keyFile)}</privateKeyFile>
      <verificationMode>none</verificationMode>
      <loadDefaultCAFile>false</loadDefaultCAFile>
      <cacheSessions>true</cacheSessions>
      <disableProtocols>${TLS_DISABLED_PROTOCOLS}</disableProtocols>
      <cipherList>${CLICKHOUSE_TLS12_CIPHERS}</cipherList>
      <preferServerCiphers>true</preferServerCiphers>
    </server>
    <client>
      <caConfig>${xmlEscape(tls.caFile)}</caConfig>
      <loadDefaultCAFile>false</loadDefaultCAFile>
      <verificationMode>strict</verificationMode>
      <disableProtocols>${TLS_DISABLED_PROTOCOLS}</disableProtocols>
      <invalidCertificateHandler>
        <name>RejectCertificateHandler</name>
      </invalidCertificateHandler>
    </client>
  </openSSL>
`;
}

export function clickhouseConfigXml(config: StackConfig, p: ClickHousePaths, extra = '', tls?: ClickHouseTls): string {
  const c = config.clickhouse;
  return `<?xml version="1.0"?>
<!-- Generated by stack/clickhouse.ts; edits are overwritten on the next start. -->
<yandex>
  <logger>
    <level>information</level>
    <log>${xmlEscape(path.join(p.logDir, 'clickhouse-server.log'))}</log>
    <errorlog>${xmlEscape(path.join(p.logDir, 'clickhouse-server.err.log'))}</errorlog>
    <size>50M</size>
    <count>2</count>
  </logger>
  <listen_host>${config.host}</listen_host>
  ${tls ? `<https_port>${c.httpPort}</https_port>` : `<http_port>${c.httpPort}</http_port>`}
  <tcp_port>${c.tcpPort}</tcp_port>
  <interserver_http_port>${c.interserverPort}</interserver_http_port>
  <interserver_http_host>${config.host}</interserver_http_host>
  <path>${xmlEscape(p.dataDir)}</path>
  <tmp_path>${xmlEscape(p.tmpDir)}</tmp_path>
  <user_files_path>${xmlEscape(p.userFilesDir)}</user_files_path>
  <format_schema_path>${xmlEscape(p.formatSchemasDir)}</format_schema_path>
  <users_config>${xmlEscape(p.usersFile)}</users_config>
  <default_profile>default</default_profile>
  <default_database>default</default_database>
  <timezone>UTC</timezone>
  <max_connections>1024</max_connections>
  <keep_alive_timeout>10</keep_alive_timeout>
  <max_concurrent_queries>100</max_concurrent_queries>
  <mark_cache_size>268435456</mark_cache_size>
  <uncompressed_cache_size>268435456</uncompressed_cache_size>
  <mlock_executable>false</mlock_executable>
  <builtin_dictionaries_reload_interval>3600</builtin_dictionaries_reload_interval>
  <max_session_timeout>3600</max_session_timeout>
  <default_session_timeout>60</default_session_timeout>
${tls ? openSslXml(tls) : ''}${extra}</yandex>
`;
}

/** users.xml: one passwordless `default` user reachable from loopback only; `profileExtra` adds settings to its profile. */
export function clickhouseUsersXml(profileExtra = ''): string {
  return `<?xml version="1.0"?>
<!-- Generated by stack/clickhouse.ts. Loopback only: this server is for local development and tests. -->
<yandex>
  <profiles>
${profileExtra ? DEFAULT_PROFILE_XML.replace('    </default>', `${profileExtra}\n    </default>`) : DEFAULT_PROFILE_XML}
  </profiles>
  <users>
    <default>
      <password></password>
      <networks>
        <ip>127.0.0.1</ip>
        <ip>::1</ip>
      </networks>
      <profile>default</profile>
      <quota>default</quota>
    </default>
  </users>
${UNLIMITED_DEFAULT_QUOTA_XML}</yandex>
`;
}

/**
 * Finds the clickhouse-server executable. Debian installs it in /usr/sbin, which is not on a normal
 * user's PATH, so that folder is searched too.
 */
export function resolveClickHouseServer(config: StackConfig, envPath = process.env.PATH ?? ''): string {
  const name = config.clickhouse.server;
  const candidates = name.includes('/') ? [name] : [...envPath.split(':').filter(Boolean), '/usr/sbin', '/usr/bin'].map((d) => path.join(d, name));
  for (const c of candidates) {
    try {
      accessSync(c, constants.X_OK);
      return c;
    } catch {
      // next
    }
  }
  throw new StackError(
    'STACK_CLICKHOUSE_MISSING',
    `clickhouse-server not found (${name}): install it (Debian: apt-get install -y clickhouse-server) or set STACK_CLICKHOUSE_SERVER`,
  );
}

/** ClickHouse's own health answer: GET /ping says "Ok." once the server accepts queries. `ca` (PEM) verifies an https:// server. */
export async function clickhouseAnswers(url: string, timeoutMs = 1000, ca?: string | Buffer): Promise<boolean> {
  if (new URL(url).protocol === 'https:') {
    return new Promise<boolean>((resolve) => {
      const req = httpsGet(new URL('/ping', url), { ...(ca ? { ca } : {}), timeout: timeoutMs }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => (body += d));
        res.on('end', () => resolve(res.statusCode === 200 && body.trim() === 'Ok.'));
        res.on('error', () => resolve(false));
      });
      req.on('timeout', () => req.destroy(new Error('timeout')));
      req.on('error', () => resolve(false));
    });
  }
  try {
    const res = await fetch(new URL('/ping', url), { signal: AbortSignal.timeout(timeoutMs) });
    return res.ok && (await res.text()).trim() === 'Ok.';
  } catch {
    return false;
  }
}

export async function clickhouseVersion(url: string): Promise<string | undefined> {
  try {
    const u = new URL('/', url);
    u.searchParams.set('query', 'SELECT version()');
    const res = await fetch(u, { signal: AbortSignal.timeout(2000) });
    return res.ok ? (await res.text()).trim() : undefined;
  } catch {
    return undefined;
  }
}

/** Starts the server unless our recorded one runs, and waits until it answers. */
export interface ClickHouseFiles {
  /** users.xml to write instead of the passwordless default (the secured server's users). */
  usersXml?: string;
  /** Extra config.xml elements (the secured server's remote_servers). */
  extraConfigXml?: string;
  /** HTTPS instead of HTTP on the HTTP port, and a native TLS port (the secured server). */
  tls?: ClickHouseTls;
}

export async function startClickHouse(config: StackConfig, files: ClickHouseFiles = {}): Promise<{ url: string; started: boolean; pid: number }> {
  const p = clickhousePaths(config);
  const url = files.tls ? clickhouseUrl(config).replace(/^http:/, 'https:') : clickhouseUrl(config);
  const ca = files.tls ? readFileSync(files.tls.caFile) : undefined;
  const running = liveRecord(p.pidFile);
  if (running) {
    await waitClickHouseReady(config, p, running, url, ca);
    return { url, started: false, pid: running.pid };
  }
  const server = resolveClickHouseServer(config);
  for (const d of [p.dataDir, p.tmpDir, p.logDir, p.userFilesDir, p.formatSchemasDir]) mkdirSync(d, { recursive: true });
  // Owner-only: the secured server's config holds the password its analyst views connect with.
  writeFileSync(p.configFile, clickhouseConfigXml(config, p, files.extraConfigXml, files.tls), { mode: 0o600 });
  writeFileSync(p.usersFile, files.usersXml ?? clickhouseUsersXml(), { mode: 0o600 });
  chmodSync(p.configFile, 0o600);
  chmodSync(p.usersFile, 0o600);
  // 18.16 runs as root without complaint (newer releases refuse unless told otherwise); it runs in the
  // foreground without --daemon, so the pid we record is the server itself.
  const rec = spawnService({
    service: 'clickhouse',
    command: server,
    args: [`--config-file=${p.configFile}`],
    cwd: p.dir,
    logFile: path.join(p.logDir, 'stdout.log'),
    pidFile: p.pidFile,
    marker: p.configFile,
    ports: [config.clickhouse.httpPort, config.clickhouse.tcpPort, config.clickhouse.interserverPort, ...(files.tls ? [files.tls.tcpSecurePort] : [])],
  });
  try {
    await waitClickHouseReady(config, p, rec, url, ca);
  } catch (e) {
    await stopRecorded(p.pidFile, { graceMs: 5000 }).catch(() => {});
    throw e;
  }
  return { url, started: true, pid: rec.pid };
}

async function waitClickHouseReady(config: StackConfig, p: ClickHousePaths, rec: PidRecord, url: string, ca?: Buffer): Promise<void> {
  const deadline = Date.now() + config.startTimeoutMs;
  for (;;) {
    if (!isOurProcess(rec.pid, rec.marker)) {
      const why = tailOf(path.join(p.logDir, 'clickhouse-server.err.log'), 3) || tailOf(path.join(p.logDir, 'stdout.log'), 3);
      throw new StackError('STACK_START_FAILED', `clickhouse-server exited during start${why ? `: ${why}` : ''}`);
    }
    if (await clickhouseAnswers(url, 1000, ca)) return;
    if (Date.now() > deadline) {
      throw new StackError('STACK_START_TIMEOUT', `clickhouse-server did not answer at ${url} within ${config.startTimeoutMs} ms (log: ${p.logDir})`);
    }
    await sleep(200);
  }
}

export async function stopClickHouse(config: StackConfig): Promise<boolean> {
  return stopRecorded(clickhousePaths(config).pidFile, { graceMs: 20_000 });
}

export function clickhouseInstalled(config: StackConfig): boolean {
  try {
    return existsSync(resolveClickHouseServer(config));
  } catch {
    return false;
  }
}
