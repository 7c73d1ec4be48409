// PostgreSQL 15 for the local stack: the engine of the per-zone key store (the device data keys of
// personal values). Debian's `postgresql-15` package run as a plain process under <home>/postgres/, with
// its own data folder (initdb once), settings we generate, listening on 127.0.0.1 only. It never reads
// /etc/postgresql and never touches a cluster the Debian package may have started on 5432.
//
// Who may connect, and how:
// - TCP (127.0.0.1): password authentication, scram-sha-256 only. One role, `keystore`, owns one database
//   per residency zone (keys_cn, keys_ru, keys_in, keys_row: schemas/contract.ts ZONES); its generated
//   password is in <home>/postgres/password (mode 0600). The server is only ever given a SCRAM verifier
//   computed here, never the password itself, and no password is ever on a command line.
// - The unix socket (a 0700 folder inside <home>/postgres): the superuser `postgres`, peer-authenticated
//   and mapped from the OS user running the stack only. The stack provisions the role and databases
//   through it; the superuser has no password and cannot log in over TCP.
//
// PostgreSQL refuses to run as root. A stack run by root (CI) runs initdb and the server as Debian's
// `postgres` OS user (the child is started with that uid/gid; the data folder belongs to it); otherwise
// as the current user.
import { createHash, createHmac, pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { chmodSync, chownSync, existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { userInfo } from 'node:os';
import path from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import pg from 'pg';
import { ZONES, type Zone } from '../schemas/contract.ts';
import type { StackConfig } from './config.ts';
import { StackError } from './errors.ts';
import { isOurProcess, liveRecord, spawnService, stopRecorded, tailOf, type PidRecord } from './proc.ts';

/** The role that owns the key databases; the only role that can log in over TCP. */
export const KEYSTORE_USER = 'keystore';
/** Bootstrap superuser: unix socket, peer authentication only. */
const ADMIN_USER = 'postgres';
/** The OS user Debian's package creates; a root stack runs PostgreSQL as this user. */
const SERVER_OS_USER = 'postgres';

/** Database of the key store of one residency zone. */
export function keyDatabase(zone: Zone): string {
  return `keys_${zone}`;
}

export function keyDatabases(): Record<Zone, string> {
  return Object.fromEntries(ZONES.map((z) => [z, keyDatabase(z)])) as Record<Zone, string>;
}

/** One PostgreSQL server: the stack's (`postgres`) or a test's own (`postgresInstance(config, name, port)`). */
export interface PostgresInstance {
  service: string;
  port: number;
  dir: string;
  dataDir: string;
  socketDir: string;
  logFile: string;
  pidFile: string;
  passwordFile: string;
}

export function postgresInstance(config: StackConfig, scratch?: { name: string; port: number }): PostgresInstance {
  if (scratch && !/^[\w.-]+$/.test(scratch.name))
    throw new StackError('STACK_CONFIG_INVALID', `postgres instance ${scratch.name}: letters, digits, . _ - only`);
  const dir = scratch ? path.join(config.home, 'postgres-scratch', scratch.name) : path.join(config.home, 'postgres');
  // A unix socket path may hold at most 107 bytes (sun_path): say so here rather than fail at start.
  if (path.join(dir, 'sock', '.s.PGSQL.65535').length > 107)
    throw new StackError(
      'STACK_CONFIG_INVALID',
      `${dir}: too long a path for PostgreSQL's unix socket (at most 107 bytes); use a shorter STACK_HOME or instance name`,
    );
  return {
    service: scratch ? `postgres ${scratch.name}` : 'postgres',
    port: scratch ? scratch.port : config.postgres.port,
    dir,
    dataDir: path.join(dir, 'data'),
    // The socket path must stay under the kernel's 107 bytes: keep this folder name short.
    socketDir: path.join(dir, 'sock'),
    logFile: path.join(dir, 'log', 'postgres.log'),
    pidFile: path.join(config.home, 'run', scratch ? `postgres-scratch-${scratch.name}.pid` : 'postgres.pid'),
    passwordFile: path.join(dir, 'password'),
  };
}

/** What a client needs to reach one zone's key database (the shape pg.Client / pg.Pool take). */
export interface PostgresConnection {
  host: string;
  port: number;
  user: string;
  password: string;
  database: string;
}

/** Connection settings for `zone`'s key database, password read from the instance's password file. */
export function postgresConnection(config: StackConfig, zone: Zone, inst: PostgresInstance = postgresInstance(config)): PostgresConnection {
  if (!ZONES.includes(zone)) throw new StackError('STACK_CONFIG_INVALID', `zone ${String(zone)}: expected one of ${ZONES.join(', ')}`);
  if (!existsSync(inst.passwordFile)) {
    throw new StackError('STACK_NOT_RUNNING', `no ${inst.passwordFile}: run npm run stack:up (it starts PostgreSQL and generates the key store's password)`);
  }
  return { host: config.host, port: inst.port, user: KEYSTORE_USER, password: readFileSync(inst.passwordFile, 'utf8').trim(), database: keyDatabase(zone) };
}

export interface PostgresBinaries {
  postgres: string;
  initdb: string;
}

/** Fails with a one-line STACK_POSTGRES_MISSING when Debian's postgresql-15 is not installed. */
export function resolvePostgres(config: StackConfig): PostgresBinaries {
  const bins = { postgres: path.join(config.postgres.bindir, 'postgres'), initdb: path.join(config.postgres.bindir, 'initdb') };
  if (!existsSync(bins.postgres) || !existsSync(bins.initdb)) {
    throw new StackError(
      'STACK_POSTGRES_MISSING',
      `PostgreSQL 15 not found (${bins.postgres}): install it (Debian: apt-get install -y postgresql-15; tools/setup.sh does) or set STACK_POSTGRES_BINDIR`,
    );
  }
  return bins;
}

interface OsUser {
  uid: number;
  gid: number;
  name: string;
}

/** The OS user the server runs as: Debian's `postgres` when we are root, else ourselves. */
export function serverOsUser(): OsUser {
  const me = userInfo();
  if (me.uid !== 0) return { uid: me.uid, gid: me.gid, name: me.username };
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${SERVER_OS_USER}:`));
  const f = line?.split(':');
  if (!f || f.length < 4) {
    throw new StackError(
      'STACK_POSTGRES_MISSING',
      `running as root, PostgreSQL needs the OS user ${SERVER_OS_USER} (it refuses to run as root); Debian's postgresql-15 package creates it: apt-get install -y postgresql-15`,
    );
  }
  return { uid: Number(f[2]), gid: Number(f[3]), name: SERVER_OS_USER };
}

function ownedBy(file: string, user: OsUser, mode: number): void {
  chownSync(file, user.uid, user.gid);
  chmodSync(file, mode);
}

/** A single-quoted postgresql.conf / SQL string literal. */
function quoted(s: string): string {
  return `'${s.replace(/'/g, "''")}'`;
}

/** postgresql.conf: loopback only, modest memory (a key store holds small rows), logs on stderr (our log file). */
export function postgresConf(inst: PostgresInstance): string {
  const settings: Record<string, string | number> = {
    listen_addresses: quoted('127.0.0.1'),
    port: inst.port,
    unix_socket_directories: quoted(inst.socketDir),
    unix_socket_permissions: '0700',
    password_encryption: quoted('scram-sha-256'),
    max_connections: 50,
    shared_buffers: quoted('32MB'),
    work_mem: quoted('4MB'),
    maintenance_work_mem: quoted('32MB'),
    effective_cache_size: quoted('128MB'),
    max_wal_size: quoted('256MB'),
    min_wal_size: quoted('32MB'),
    dynamic_shared_memory_type: 'posix',
    logging_collector: 'off',
    log_destination: quoted('stderr'),
    log_min_messages: 'warning',
    log_line_prefix: quoted('%m [%p] '),
    lc_messages: quoted('C'),
    timezone: quoted('UTC'),
    datestyle: quoted('iso, ymd'),
  };
  return `# Generated by stack/postgres.ts; rewritten (and reloaded) by every stack:up.\n${Object.entries(settings)
    .map(([k, v]) => `${k} = ${v}`)
    .join('\n')}\n`;
}

/** pg_hba.conf: superuser over the socket by peer only; everyone over TCP with scram-sha-256; nothing else. */
export function pgHbaConf(): string {
  return `# Generated by stack/postgres.ts.
# TYPE  DATABASE  USER        ADDRESS        METHOD
local   all       ${ADMIN_USER}    peer map=stack
host    all       ${ADMIN_USER}    127.0.0.1/32   reject
host    all       all         127.0.0.1/32   scram-sha-256
`;
}

/** pg_ident.conf: which OS users may be the superuser over the socket (the one running the stack, and the server's). */
export function pgIdentConf(server: OsUser, me = userInfo().username): string {
  const users = [...new Set([me, server.name])];
  return `# Generated by stack/postgres.ts.\n${users.map((u) => `stack  ${u}  ${ADMIN_USER}`).join('\n')}\n`;
}

/**
 * The SCRAM-SHA-256 verifier PostgreSQL stores for `password` (RFC 5802/7677, PostgreSQL's
 * `SCRAM-SHA-256$<iterations>:<salt>$<StoredKey>:<ServerKey>`). Handing the server this instead of the
 * password keeps the password out of SQL text and any server log.
 */
export function scramVerifier(password: string, salt: Buffer = randomBytes(16), iterations = 4096): string {
  const salted = pbkdf2Sync(password, salt, iterations, 32, 'sha256');
  const storedKey = createHash('sha256').update(createHmac('sha256', salted).update('Client Key').digest()).digest();
  const serverKey = createHmac('sha256', salted).update('Server Key').digest();
  return `SCRAM-SHA-256$${iterations}:${salt.toString('base64')}$${storedKey.toString('base64')}:${serverKey.toString('base64')}`;
}

/** Does a stored verifier belong to `password`? */
export function verifierMatches(verifier: string | null, password: string): boolean {
  const m = /^SCRAM-SHA-256\$(\d+):([^$]+)\$([^:]+):(.+)$/.exec(verifier ?? '');
  if (!m) return false;
  const again = scramVerifier(password, Buffer.from(m[2]!, 'base64'), Number(m[1]));
  return again.length === verifier!.length && timingSafeEqual(Buffer.from(again), Buffer.from(verifier!));
}

/** The instance's password, generated on the first call (mode 0600, owned by whoever runs the stack). */
function ensurePassword(inst: PostgresInstance): string {
  mkdirSync(path.dirname(inst.passwordFile), { recursive: true });
  if (!existsSync(inst.passwordFile)) {
    writeFileSync(inst.passwordFile, randomBytes(24).toString('base64url') + '\n', { mode: 0o600, flag: 'wx' });
  }
  chmodSync(inst.passwordFile, 0o600);
  const pw = readFileSync(inst.passwordFile, 'utf8').trim();
  if (pw.length < 16) throw new StackError('STACK_CONFIG_INVALID', `${inst.passwordFile}: too short a password; delete the file and run stack:up again`);
  return pw;
}

/** initdb once: a data folder with PG_VERSION is kept (the keys survive restarts). */
function initdbOnce(inst: PostgresInstance, bins: PostgresBinaries, user: OsUser): boolean {
  if (existsSync(path.join(inst.dataDir, 'PG_VERSION'))) return false;
  // A folder without PG_VERSION is a half-finished initdb (interrupted): start it again from empty.
  rmSync(inst.dataDir, { recursive: true, force: true });
  mkdirSync(inst.dataDir, { recursive: true });
  ownedBy(inst.dataDir, user, 0o700);
  const r = spawnSync(
    bins.initdb,
    ['-D', inst.dataDir, '-U', ADMIN_USER, '--auth-local=peer', '--auth-host=scram-sha-256', '--encoding=UTF8', '--locale=C', '--no-instructions'],
    { cwd: inst.dir, uid: user.uid, gid: user.gid, encoding: 'utf8', timeout: 120_000, env: { ...process.env, LC_ALL: 'C' } },
  );
  if (r.status !== 0) {
    const out = `${r.stderr ?? ''}${r.stdout ?? ''}`.trim().split('\n').slice(-3).join(' | ');
    rmSync(inst.dataDir, { recursive: true, force: true });
    throw new StackError('STACK_START_FAILED', `${inst.service}: initdb failed (${r.error?.message ?? `exit ${r.status}`}): ${out}`);
  }
  return true;
}

function writeConfigFiles(inst: PostgresInstance, user: OsUser): void {
  const files: Array<[string, string]> = [
    ['postgresql.conf', postgresConf(inst)],
    ['pg_hba.conf', pgHbaConf()],
    ['pg_ident.conf', pgIdentConf(user)],
  ];
  for (const [name, text] of files) {
    const file = path.join(inst.dataDir, name);
    writeFileSync(file, text);
    ownedBy(file, user, 0o600);
  }
}

/** A superuser connection over the unix socket (peer authentication). */
function adminClient(inst: PostgresInstance, database = 'postgres'): pg.Client {
  return new pg.Client({ host: inst.socketDir, port: inst.port, user: ADMIN_USER, database, connectionTimeoutMillis: 3000 });
}

/** The server's version (e.g. "15.14 (Debian 15.14-0+deb12u1)") when it answers, else undefined. */
export async function postgresVersion(inst: PostgresInstance): Promise<string | undefined> {
  if (!existsSync(inst.socketDir)) return undefined;
  const c = adminClient(inst);
  c.on('error', () => {});
  try {
    await c.connect();
    const r = await c.query<{ server_version: string }>('SHOW server_version');
    return r.rows[0]?.server_version;
  } catch {
    return undefined;
  } finally {
    await c.end().catch(() => {});
  }
}

/**
 * The role and the zone databases, idempotently: the `keystore` role with the password file's verifier
 * (rewritten only when it no longer matches the file), one database per zone owned by it and closed to
 * PUBLIC, and the maintenance databases closed to it. Also reloads the settings files.
 */
async function provision(inst: PostgresInstance, password: string): Promise<string> {
  const c = adminClient(inst);
  c.on('error', () => {});
  await c.connect();
  try {
    await c.query('SELECT pg_reload_conf()');
    const role = await c.query<{ rolpassword: string | null }>('SELECT rolpassword FROM pg_authid WHERE rolname = $1', [KEYSTORE_USER]);
    const verifier = quoted(scramVerifier(password));
    if (role.rowCount === 0) await c.query(`CREATE ROLE ${KEYSTORE_USER} LOGIN PASSWORD ${verifier}`);
    else if (!verifierMatches(role.rows[0]!.rolpassword, password)) await c.query(`ALTER ROLE ${KEYSTORE_USER} LOGIN PASSWORD ${verifier}`);
    for (const db of Object.values(keyDatabases())) {
      const exists = await c.query('SELECT 1 FROM pg_database WHERE datname = $1', [db]);
      if (exists.rowCount === 0) await c.query(`CREATE DATABASE ${db} OWNER ${KEYSTORE_USER}`);
      await c.query(`REVOKE ALL ON DATABASE ${db} FROM PUBLIC`);
    }
    for (const db of ['postgres', 'template1']) await c.query(`REVOKE CONNECT ON DATABASE ${db} FROM PUBLIC`);
    const v = await c.query<{ server_version: string }>('SHOW server_version');
    return v.rows[0]?.server_version ?? '?';
  } finally {
    await c.end().catch(() => {});
  }
}

export interface PostgresStartResult {
  started: boolean;
  initialised: boolean;
  version: string;
}

/**
 * Starts the instance unless ours runs (initdb first when there is no data folder), waits until it
 * answers, and provisions the role and zone databases (also when it was already running: a second `up`
 * re-applies the settings and repairs a missing database). The caller checks the port is free first.
 */
export async function startPostgres(config: StackConfig, inst: PostgresInstance = postgresInstance(config)): Promise<PostgresStartResult> {
  const bins = resolvePostgres(config);
  const user = serverOsUser();
  mkdirSync(inst.dir, { recursive: true });
  chmodSync(inst.dir, 0o755);
  mkdirSync(path.dirname(inst.logFile), { recursive: true });
  mkdirSync(inst.socketDir, { recursive: true });
  ownedBy(inst.socketDir, user, 0o700);
  const password = ensurePassword(inst);
  const running = liveRecord(inst.pidFile);
  if (running) {
    writeConfigFiles(inst, user);
    await waitReady(config, inst, running);
    return { started: false, initialised: false, version: await provision(inst, password) };
  }
  const initialised = initdbOnce(inst, bins, user);
  writeConfigFiles(inst, user);
  const rec = spawnService({
    service: inst.service,
    command: bins.postgres,
    args: ['-D', inst.dataDir],
    cwd: inst.dir,
    logFile: inst.logFile,
    pidFile: inst.pidFile,
    // The postmaster keeps its command line (only its children retitle themselves), so the data folder marks it.
    marker: inst.dataDir,
    ports: [inst.port],
    env: { ...process.env, LC_ALL: 'C' },
    ...(user.uid !== userInfo().uid ? { uid: user.uid, gid: user.gid } : {}),
  });
  try {
    await waitReady(config, inst, rec);
    return { started: true, initialised, version: await provision(inst, password) };
  } catch (e) {
    await stopRecorded(inst.pidFile, { signal: 'SIGINT', graceMs: 10_000 }).catch(() => {});
    throw e;
  }
}

async function waitReady(config: StackConfig, inst: PostgresInstance, rec: PidRecord): Promise<void> {
  const deadline = Date.now() + config.startTimeoutMs;
  for (;;) {
    if (!isOurProcess(rec.pid, rec.marker)) throw new StackError('STACK_START_FAILED', `${inst.service} exited during start: ${tailOf(inst.logFile, 3)}`);
    if ((await postgresVersion(inst)) !== undefined) return;
    if (Date.now() > deadline)
      throw new StackError(
        'STACK_START_TIMEOUT',
        `${inst.service} did not answer on ${inst.socketDir} within ${config.startTimeoutMs} ms: ${tailOf(inst.logFile, 3)}`,
      );
    await sleep(200);
  }
}

/** Fast shutdown (SIGINT: open sessions are ended, the data is checkpointed), SIGKILL only after 20 s. */
export function stopPostgres(config: StackConfig, inst: PostgresInstance = postgresInstance(config)): Promise<boolean> {
  return stopRecorded(inst.pidFile, { signal: 'SIGINT', graceMs: 20_000 });
}
