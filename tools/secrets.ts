/**
 * `npm run secrets -- rotate kafka:<principal>` / `npm run secrets -- rotate clickhouse:<user>`: gives one
 * principal of the secured local stack (stack/README.md, "Secured mode") a new random password, without
 * restarting anything and without the password passing through a command line, an environment or an
 * output:
 *
 * - Kafka: the broker's SCRAM-SHA-512 credential is altered by Kafka's own ConfigCommand
 *   (`kafka-configs --alter --entity-type users --add-config-file`, the AlterUserScramCredentials admin
 *   call), logged in as the operator through a `--command-config` file; both files are 0600 in a folder of
 *   their own, removed right after. Open connections stay logged in; new ones need the new password.
 * - ClickHouse (18.16): users.xml gets the new password's SHA-256 (the server re-reads it by itself within
 *   seconds); the command waits until the server accepts the new password.
 *
 * Then the password file (`.local/secure/secrets/<kind>-<name>.password`) and secrets.json are replaced
 * atomically (rename). Services read the file again when it changed: ingest and the aggregator for each
 * new Kafka connection (runtime/kafka.ts), every ClickHouse client of the services for its next request
 * (aggregator/store-server.ts). For the moment between the server's change and the file's, a login with
 * the old password is refused: a Kafka client retries its connection, a ClickHouse request reads the file
 * again and is retried once (an insert by the aggregator's flush retry).
 *
 * Exit 0 rotated, 2 bad arguments, 1 the stack or a server failed (nothing secret in any message).
 * The same steps for a real deployment are in stack/README.md, "Rotation".
 */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { CodedError } from '../runtime/errors.ts';
import { CLICKHOUSE_USERS, secureUsersXml, type ClickHouseUser } from '../stack/clickhouse-users.ts';
import { clickhousePaths } from '../stack/clickhouse.ts';
import { loadStackConfig, type StackConfig } from '../stack/config.ts';
import { classpath, singleNode } from '../stack/kafka.ts';
import { liveRecord, withLock } from '../stack/proc.ts';
import {
  clickhousePasswordFile,
  kafkaPasswordFile,
  newPassword,
  readSecrets,
  SECURE_LAYOUTS,
  secureClickHouse,
  secureKafka,
  secureKafkaBrokers,
  securePaths,
  secureStackConfig,
  writeSecret,
  type SecureSecrets,
} from '../stack/secure.ts';
import { KAFKA_ROLES, type KafkaRole } from './security/acls.ts';

const run = promisify(execFile);

export type SecretsErrorCode = 'SECRETS_USAGE' | 'SECRETS_NOT_RUNNING' | 'SECRETS_ROTATE_FAILED';
export class SecretsError extends CodedError<SecretsErrorCode> {
  override readonly name = 'SecretsError';
}

export type RotationTarget = { kind: 'kafka'; name: KafkaRole } | { kind: 'clickhouse'; name: Exclude<ClickHouseUser, 'views_reader'> };

const USAGE = 'usage: npm run secrets -- rotate kafka:<principal> | clickhouse:<user>';
const CLICKHOUSE_ROTATABLE = CLICKHOUSE_USERS.filter((u): u is Exclude<ClickHouseUser, 'views_reader'> => u !== 'views_reader');

/** `kafka:ingest`, `clickhouse:aggregator`, ... Principals only the servers use (broker, controller, views_reader) are refused. */
export function parseTarget(arg: string | undefined): RotationTarget {
  const m = /^(kafka|clickhouse):(.+)$/.exec(arg ?? '');
  if (!m) throw new SecretsError('SECRETS_USAGE', `${USAGE} (got ${arg === undefined ? 'nothing' : JSON.stringify(arg)})`);
  const [, kind, name] = m as unknown as [string, 'kafka' | 'clickhouse', string];
  if (kind === 'kafka') {
    if ((KAFKA_ROLES as readonly string[]).includes(name)) return { kind, name: name as KafkaRole };
    throw new SecretsError(
      'SECRETS_USAGE',
      `kafka:${name}: not a principal of a service; rotatable: ${KAFKA_ROLES.join(', ')} (the broker's own principals change with a new stack: delete secrets.json, stack:down/up -- --secure)`,
    );
  }
  if ((CLICKHOUSE_ROTATABLE as readonly string[]).includes(name)) return { kind, name: name as Exclude<ClickHouseUser, 'views_reader'> };
  throw new SecretsError(
    'SECRETS_USAGE',
    `clickhouse:${name}: rotatable users: ${CLICKHOUSE_ROTATABLE.join(', ')} (views_reader's password is also in config.xml's remote_servers, which this command does not rewrite: it changes with a new stack)`,
  );
}

/** The stack's lock (stack/stack.ts takes the same file): a rotation never interleaves with a stack:up that rewrites users.xml. */
function lockFile(config: StackConfig): string {
  return path.join(config.home, 'run', 'stack.lock');
}

async function inSecretFolder<T>(files: Record<string, string>, fn: (paths: Record<string, string>) => Promise<T>): Promise<T> {
  const dir = mkdtempSync(path.join(tmpdir(), 'secrets-rotate-'));
  try {
    const paths: Record<string, string> = {};
    for (const [name, content] of Object.entries(files)) {
      paths[name] = path.join(dir, name);
      writeFileSync(paths[name], content, { mode: 0o600 });
    }
    return await fn(paths);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/** Changes `principal`'s SCRAM-SHA-512 credential on the secured broker, as the operator. */
async function alterScram(config: StackConfig, secrets: SecureSecrets, principal: KafkaRole, password: string): Promise<void> {
  const clientProps = [
    'security.protocol=SASL_SSL',
    'sasl.mechanism=SCRAM-SHA-512',
    `sasl.jaas.config=org.apache.kafka.common.security.scram.ScramLoginModule required username="operator" password="${secrets.kafka.operator}";`,
    'ssl.truststore.type=PEM',
    `ssl.truststore.location=${securePaths(config).caCert}`,
  ].join('\n');
  // ConfigCommand's properties file form of --add-config 'SCRAM-SHA-512=[iterations=8192,password=...]'.
  const add = `SCRAM-SHA-512=iterations=8192,password=${password}\n`;
  await inSecretFolder({ 'client.properties': clientProps + '\n', 'add.properties': add }, async (f) => {
    try {
      const { stdout } = await run(
        config.kafka.java,
        [
          '-XX:-UsePerfData',
          '-cp',
          classpath(config),
          'org.apache.kafka.tools.ConfigCommand',
          '--bootstrap-server',
          secureKafkaBrokers(config).join(','),
          '--command-config',
          f['client.properties']!,
          '--alter',
          '--entity-type',
          'users',
          '--entity-name',
          principal,
          '--add-config-file',
          f['add.properties']!,
        ],
        { timeout: 90_000 },
      );
      if (!/Completed updating config for user/.test(stdout)) throw new Error('no confirmation');
    } catch {
      // The tool echoes the credential property (the password) in some errors: its output is not shown.
      throw new SecretsError('SECRETS_ROTATE_FAILED', `kafka:${principal}: the broker did not accept the new credential (Kafka's ConfigCommand failed)`);
    }
  });
}

async function kafkaLoginWorks(config: StackConfig, principal: KafkaRole, password: string): Promise<boolean> {
  const admin = secureKafka(config, principal, { password, clientId: 'secrets-rotate-check' }).admin();
  try {
    await admin.connect();
    await admin.describeCluster();
    return true;
  } catch {
    return false;
  } finally {
    await admin.disconnect().catch(() => {});
  }
}

async function clickhouseLoginWorks(config: StackConfig, user: ClickHouseUser, password: string): Promise<boolean> {
  const ch = secureClickHouse(config, user, { password });
  try {
    await ch.query({ query: 'SELECT 1', format: 'JSONEachRow' }).then((r) => r.json());
    return true;
  } catch {
    return false;
  } finally {
    await ch.close();
  }
}

async function waitUntil(what: string, ok: () => Promise<boolean>, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    if (await ok()) return;
    if (Date.now() > deadline) throw new SecretsError('SECRETS_ROTATE_FAILED', `${what}: the new password is not accepted after ${timeoutMs / 1000} s`);
    await new Promise((r) => setTimeout(r, 100));
  }
}

function replaceFiles(config: StackConfig, secrets: SecureSecrets, target: RotationTarget, password: string): void {
  const next: SecureSecrets = {
    kafka: { ...secrets.kafka, ...(target.kind === 'kafka' ? { [target.name]: password } : {}) },
    clickhouse: { ...secrets.clickhouse, ...(target.kind === 'clickhouse' ? { [target.name]: password } : {}) },
  };
  const file = target.kind === 'kafka' ? kafkaPasswordFile(config, target.name) : clickhousePasswordFile(config, target.name);
  writeSecret(file, password + '\n');
  writeSecret(securePaths(config).secretsJson, JSON.stringify(next, null, 2) + '\n');
}

export interface RotationResult {
  target: string;
  passwordFile: string;
  ms: number;
}

/**
 * Rotates one password of the secured stack of `config` (see the top of this file). Takes the stack's
 * lock. `opts.password` is for tests only (a known new password).
 */
export function rotateSecret(config: StackConfig, target: RotationTarget, opts: { password?: string } = {}): Promise<RotationResult> {
  return withLock(lockFile(config), async () => {
    const t0 = Date.now();
    const secrets = readSecrets(config);
    if (!secrets) throw new SecretsError('SECRETS_NOT_RUNNING', 'the secured stack has no secrets: start it first (npm run stack:up -- --secure)');
    const sc = secureStackConfig(config);
    const password = opts.password ?? newPassword();
    const label = `${target.kind}:${target.name}`;
    if (target.kind === 'kafka') {
      if (!liveRecord(singleNode(sc).pidFile)) throw new SecretsError('SECRETS_NOT_RUNNING', 'the secured Kafka is not running: npm run stack:up -- --secure');
      await alterScram(config, secrets, target.name, password);
      // The file right after the broker, then the check: the moment a new connection can be refused is
      // the broker's metadata propagation plus one rename, not the check's round trips too.
      replaceFiles(config, secrets, target, password);
      await waitUntil(label, () => kafkaLoginWorks(config, target.name, password), 30_000);
    } else {
      const ch = clickhousePaths(sc);
      if (!liveRecord(ch.pidFile)) throw new SecretsError('SECRETS_NOT_RUNNING', 'the secured ClickHouse is not running: npm run stack:up -- --secure');
      const usersNow = secureUsersXml(secrets.clickhouse, SECURE_LAYOUTS);
      writeSecret(ch.usersFile, secureUsersXml({ ...secrets.clickhouse, [target.name]: password }, SECURE_LAYOUTS));
      try {
        await waitUntil(label, () => clickhouseLoginWorks(config, target.name, password), 30_000);
      } catch (e) {
        writeSecret(ch.usersFile, usersNow); // the server keeps the old password; so do the files
        throw e;
      }
      replaceFiles(config, secrets, target, password);
    }
    return {
      target: label,
      passwordFile: target.kind === 'kafka' ? kafkaPasswordFile(config, target.name) : clickhousePasswordFile(config, target.name),
      ms: Date.now() - t0,
    };
  });
}

async function main(argv: string[]): Promise<number> {
  const [command, arg, ...rest] = argv;
  try {
    if (command !== 'rotate' || rest.length > 0) throw new SecretsError('SECRETS_USAGE', USAGE);
    const target = parseTarget(arg);
    const r = await rotateSecret(loadStackConfig(), target);
    console.log(
      `rotated ${r.target} in ${(r.ms / 1000).toFixed(1)} s: new password in ${path.relative(process.cwd(), r.passwordFile)} (services read it on their next connection or request)`,
    );
    return 0;
  } catch (e) {
    const err = e as Error & { code?: string };
    console.error(`secrets: ${err.message}`);
    return err.code === 'SECRETS_USAGE' ? 2 : 1;
  }
}

if (process.argv[1] && path.resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  process.exitCode = await main(process.argv.slice(2));
}
