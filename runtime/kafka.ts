/**
 * Kafka client security from the shared `PIPELINE_KAFKA_*` settings: TLS to the brokers and a SASL/SCRAM
 * principal per role (policy 4.1: special access controls and encryption in transit; policy 1.1.4: each
 * role reaches only its own kind of data, which the brokers enforce with ACLs, tools/security/acls.ts).
 *
 * `kafkaClientOptions` is what every `new Kafka({...})` of ingest and the aggregator spreads in.
 * `checkKafkaSecurity` runs at config load, so a service asked for `sasl_ssl` with an incomplete set of
 * settings stops with one line naming what is missing, before it opens any connection.
 *
 * Secrets: the password is read from the environment or a file, and never put into an error message
 * (errors name the setting or the file, never its content). In the returned options it is a
 * non-enumerable property: kafkajs reads it, but JSON.stringify, console.log or a log line that dumps
 * the client options cannot show it.
 *
 * Rotation (`npm run secrets -- rotate kafka:<principal>`, stack/README.md): with
 * PIPELINE_KAFKA_SASL_PASSWORD_FILE the password is a getter that reads the file again whenever the
 * file changed. kafkajs keeps the `sasl` object it is given and reads `sasl.password` each time a new
 * connection authenticates (its SCRAM authenticator, node_modules/kafkajs/src/broker/saslAuthenticator),
 * so connections opened after a rotation log in with the new password, and the ones already open
 * (authenticated once, at connect) keep running: no restart.
 */
import { readFileSync } from 'node:fs';
import type { ConnectionOptions } from 'node:tls';
import type { SASLOptions } from 'kafkajs';
import { ConfigError } from './config.ts';
import { passwordFileReader } from './file-watch.ts';

/** The settings this module reads (any config object that includes pipelineSettings fits). */
export interface KafkaSecuritySettings {
  readonly PIPELINE_KAFKA_SECURITY: string;
  readonly PIPELINE_KAFKA_SASL_MECHANISM: string;
  readonly PIPELINE_KAFKA_SASL_USERNAME: string;
  readonly PIPELINE_KAFKA_SASL_PASSWORD: string;
  readonly PIPELINE_KAFKA_SASL_PASSWORD_FILE: string;
  readonly PIPELINE_KAFKA_TLS_CA_FILE: string;
}

export interface KafkaSecurityOptions {
  ssl?: ConnectionOptions;
  sasl?: SASLOptions;
}

type Resolved = { ok: true; options: KafkaSecurityOptions } | { ok: false; problems: string[] };

function readFileSetting(name: string, file: string, problems: string[]): string | undefined {
  try {
    return readFileSync(file, 'utf8');
  } catch (e) {
    // The path is configuration, not a secret; the content never appears.
    problems.push(`${name}=${file}: cannot read it (${(e as NodeJS.ErrnoException).code ?? 'error'})`);
    return undefined;
  }
}

function resolve(cfg: KafkaSecuritySettings, reread = true): Resolved {
  const problems: string[] = [];
  const sec = cfg.PIPELINE_KAFKA_SECURITY;
  const user = cfg.PIPELINE_KAFKA_SASL_USERNAME;
  const pw = cfg.PIPELINE_KAFKA_SASL_PASSWORD;
  const pwFile = cfg.PIPELINE_KAFKA_SASL_PASSWORD_FILE;
  const caFile = cfg.PIPELINE_KAFKA_TLS_CA_FILE;
  if (sec === 'plaintext') {
    // Credentials with plaintext would be silently unused: most likely PIPELINE_KAFKA_SECURITY was
    // forgotten, and the service would talk to a plaintext listener the operator meant to close.
    const given = [
      user && 'PIPELINE_KAFKA_SASL_USERNAME',
      pw && 'PIPELINE_KAFKA_SASL_PASSWORD',
      pwFile && 'PIPELINE_KAFKA_SASL_PASSWORD_FILE',
      caFile && 'PIPELINE_KAFKA_TLS_CA_FILE',
    ].filter(Boolean);
    if (given.length > 0) problems.push(`${given.join(', ')} set but PIPELINE_KAFKA_SECURITY=plaintext: set PIPELINE_KAFKA_SECURITY=sasl_ssl, or unset them`);
    return problems.length ? { ok: false, problems } : { ok: true, options: {} };
  }
  if (sec !== 'sasl_ssl') return { ok: false, problems: [`PIPELINE_KAFKA_SECURITY=${sec}: expected plaintext or sasl_ssl`] };
  if (!user) problems.push('PIPELINE_KAFKA_SECURITY=sasl_ssl needs PIPELINE_KAFKA_SASL_USERNAME (the principal of this service)');
  if (pw && pwFile) problems.push('PIPELINE_KAFKA_SASL_PASSWORD and PIPELINE_KAFKA_SASL_PASSWORD_FILE are both set: give one');
  let password = pw;
  if (!pw && !pwFile) problems.push('PIPELINE_KAFKA_SECURITY=sasl_ssl needs PIPELINE_KAFKA_SASL_PASSWORD_FILE (or PIPELINE_KAFKA_SASL_PASSWORD)');
  if (!pw && pwFile) {
    const content = readFileSetting('PIPELINE_KAFKA_SASL_PASSWORD_FILE', pwFile, problems);
    if (content !== undefined) {
      password = content.replace(/\r?\n$/, '');
      if (!password) problems.push(`PIPELINE_KAFKA_SASL_PASSWORD_FILE=${pwFile}: the file is empty`);
    }
  }
  const mech = cfg.PIPELINE_KAFKA_SASL_MECHANISM;
  if (mech !== 'scram-sha-512' && mech !== 'scram-sha-256') problems.push(`PIPELINE_KAFKA_SASL_MECHANISM=${mech}: expected scram-sha-512 or scram-sha-256`);
  const ssl: ConnectionOptions = { rejectUnauthorized: true };
  if (caFile) {
    const ca = readFileSetting('PIPELINE_KAFKA_TLS_CA_FILE', caFile, problems);
    if (ca !== undefined) {
      if (!ca.includes('-----BEGIN CERTIFICATE-----')) problems.push(`PIPELINE_KAFKA_TLS_CA_FILE=${caFile}: no PEM certificate in it`);
      else ssl.ca = [ca];
    }
  }
  if (problems.length > 0) return { ok: false, problems };
  const sasl = { mechanism: mech, username: user } as { mechanism: 'scram-sha-512' | 'scram-sha-256'; username: string; password: string };
  if (pwFile && reread) Object.defineProperty(sasl, 'password', { get: passwordFileReader(pwFile, password), enumerable: false });
  else Object.defineProperty(sasl, 'password', { value: password, enumerable: false, writable: false });
  return { ok: true, options: { ssl, sasl } };
}

/** Throws ConfigError (one problem per missing or inconsistent setting) unless the settings are usable. */
export function checkKafkaSecurity(cfg: KafkaSecuritySettings): void {
  const r = resolve(cfg);
  if (!r.ok) throw new ConfigError(r.problems);
}

/**
 * `ssl` and `sasl` for `new Kafka({...})`: `{}` with plaintext. Throws ConfigError like
 * checkKafkaSecurity. With a password file, every new connection of the client reads the file again if it
 * changed (see the top of this file). `opts.rereadPasswordFile: false` is for tests only: the negative
 * control of the rotation test (stack/secrets-rotation.int.test.ts), a client that keeps the password
 * it read at creation.
 */
export function kafkaClientOptions(cfg: KafkaSecuritySettings, opts: { rereadPasswordFile?: boolean } = {}): KafkaSecurityOptions {
  const r = resolve(cfg, opts.rereadPasswordFile ?? true);
  if (!r.ok) throw new ConfigError(r.problems);
  return r.options;
}
