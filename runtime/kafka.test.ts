import { mkdtempSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from './config.ts';
import { checkKafkaSecurity, kafkaClientOptions } from './kafka.ts';
import { pipelineSettings } from './pipeline-settings.ts';

const dir = mkdtempSync(path.join(os.tmpdir(), 'kafka-sec-'));
const SECRET = 'Zq9-unit-test-secret-value';
const pwFile = path.join(dir, 'pw');
writeFileSync(pwFile, `${SECRET}\n`);
const caFile = path.join(dir, 'ca.pem');
writeFileSync(caFile, '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n');

const load = (env: Record<string, string>) => loadConfig(pipelineSettings, { prefixes: ['PIPELINE_'], env });

function problems(env: Record<string, string>): string[] {
  try {
    checkKafkaSecurity(load(env));
    return [];
  } catch (e) {
    if (e instanceof ConfigError) return e.problems;
    throw e;
  }
}

describe('kafkaClientOptions', () => {
  it('adds nothing in plaintext mode (the default)', () => {
    expect(kafkaClientOptions(load({}))).toEqual({});
  });

  it('builds TLS with the CA file and a SCRAM-SHA-512 principal, password from a file without its newline', () => {
    const o = kafkaClientOptions(
      load({
        PIPELINE_KAFKA_SECURITY: 'sasl_ssl',
        PIPELINE_KAFKA_SASL_USERNAME: 'ingest',
        PIPELINE_KAFKA_SASL_PASSWORD_FILE: pwFile,
        PIPELINE_KAFKA_TLS_CA_FILE: caFile,
      }),
    );
    expect(o.ssl?.rejectUnauthorized).toBe(true);
    expect(o.ssl?.ca).toEqual([expect.stringContaining('BEGIN CERTIFICATE')]);
    expect(o.sasl?.mechanism).toBe('scram-sha-512');
    expect((o.sasl as { username: string }).username).toBe('ingest');
    expect((o.sasl as { password: string }).password).toBe(SECRET);
  });

  it('keeps the password out of anything that serialises or inspects the options', async () => {
    const o = kafkaClientOptions(load({ PIPELINE_KAFKA_SECURITY: 'sasl_ssl', PIPELINE_KAFKA_SASL_USERNAME: 'ingest', PIPELINE_KAFKA_SASL_PASSWORD: SECRET }));
    const { inspect } = await import('node:util');
    expect(JSON.stringify(o)).not.toContain(SECRET);
    expect(inspect(o, { depth: 10 })).not.toContain(SECRET);
    expect({ ...o.sasl }).not.toHaveProperty('password');
    // Negative control: the same object with an ordinary property does show it.
    expect(JSON.stringify({ ...o.sasl, password: (o.sasl as { password: string }).password })).toContain(SECRET);
  });
});

describe('checkKafkaSecurity refuses an incomplete secured mode with one line per problem', () => {
  it('sasl_ssl without username or password', () => {
    expect(problems({ PIPELINE_KAFKA_SECURITY: 'sasl_ssl' })).toEqual([
      'PIPELINE_KAFKA_SECURITY=sasl_ssl needs PIPELINE_KAFKA_SASL_USERNAME (the principal of this service)',
      'PIPELINE_KAFKA_SECURITY=sasl_ssl needs PIPELINE_KAFKA_SASL_PASSWORD_FILE (or PIPELINE_KAFKA_SASL_PASSWORD)',
    ]);
  });

  it('a password file that cannot be read or is empty, a CA file without a certificate', () => {
    const empty = path.join(dir, 'empty');
    writeFileSync(empty, '\n');
    expect(
      problems({ PIPELINE_KAFKA_SECURITY: 'sasl_ssl', PIPELINE_KAFKA_SASL_USERNAME: 'u', PIPELINE_KAFKA_SASL_PASSWORD_FILE: path.join(dir, 'nope') }),
    ).toEqual([`PIPELINE_KAFKA_SASL_PASSWORD_FILE=${path.join(dir, 'nope')}: cannot read it (ENOENT)`]);
    expect(problems({ PIPELINE_KAFKA_SECURITY: 'sasl_ssl', PIPELINE_KAFKA_SASL_USERNAME: 'u', PIPELINE_KAFKA_SASL_PASSWORD_FILE: empty })).toEqual([
      `PIPELINE_KAFKA_SASL_PASSWORD_FILE=${empty}: the file is empty`,
    ]);
    expect(
      problems({
        PIPELINE_KAFKA_SECURITY: 'sasl_ssl',
        PIPELINE_KAFKA_SASL_USERNAME: 'u',
        PIPELINE_KAFKA_SASL_PASSWORD: 'p',
        PIPELINE_KAFKA_TLS_CA_FILE: pwFile,
      }),
    ).toEqual([`PIPELINE_KAFKA_TLS_CA_FILE=${pwFile}: no PEM certificate in it`]);
  });

  it('both password sources, or credentials with plaintext (a forgotten PIPELINE_KAFKA_SECURITY)', () => {
    expect(
      problems({
        PIPELINE_KAFKA_SECURITY: 'sasl_ssl',
        PIPELINE_KAFKA_SASL_USERNAME: 'u',
        PIPELINE_KAFKA_SASL_PASSWORD: SECRET,
        PIPELINE_KAFKA_SASL_PASSWORD_FILE: pwFile,
      }),
    ).toEqual(['PIPELINE_KAFKA_SASL_PASSWORD and PIPELINE_KAFKA_SASL_PASSWORD_FILE are both set: give one']);
    expect(problems({ PIPELINE_KAFKA_SASL_USERNAME: 'u', PIPELINE_KAFKA_SASL_PASSWORD: SECRET })).toEqual([
      'PIPELINE_KAFKA_SASL_USERNAME, PIPELINE_KAFKA_SASL_PASSWORD set but PIPELINE_KAFKA_SECURITY=plaintext: set PIPELINE_KAFKA_SECURITY=sasl_ssl, or unset them',
    ]);
  });

  it('never puts the password or the file content into a message', () => {
    const all = [
      ...problems({ PIPELINE_KAFKA_SECURITY: 'sasl_ssl', PIPELINE_KAFKA_SASL_PASSWORD: SECRET }),
      ...problems({ PIPELINE_KAFKA_SASL_PASSWORD: SECRET }),
      ...problems({
        PIPELINE_KAFKA_SECURITY: 'sasl_ssl',
        PIPELINE_KAFKA_SASL_USERNAME: 'u',
        PIPELINE_KAFKA_SASL_PASSWORD_FILE: pwFile,
        PIPELINE_KAFKA_TLS_CA_FILE: pwFile,
      }),
    ];
    expect(all.length).toBeGreaterThan(2);
    expect(all.join('\n')).not.toContain(SECRET);
  });
});
