// Secrets never appear in a service's output (deploy/THREAT-MODEL.md): ingest and the aggregator are started as real
// processes against the secured stack with a WRONG password, at debug log level, and fail; neither the
// wrong password nor the right ones (which sit in files the services read) may appear in anything they
// print. The output must still say what failed (authentication), or the test would pass on silence.
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadStackConfig } from './config.ts';
import { upSecureStack } from './stack.ts';
import { readSecrets, secureServiceEnv } from './secure.ts';
import { runService } from '../testing/services.ts';
import { sealingEnv } from '../testing/sealing.ts';

const config = loadStackConfig();
const keysDir = mkdtempSync(path.join(tmpdir(), 'secrets-int-keys-'));
let realSecrets: string[] = [];

beforeAll(async () => {
  await upSecureStack(config);
  const s = readSecrets(config)!;
  realSecrets = [...Object.values(s.kafka), ...Object.values(s.clickhouse)];
}, 180_000);
afterAll(() => rmSync(keysDir, { recursive: true, force: true }));

function expectNoSecret(output: string, wrong: string): void {
  expect(output).not.toContain(wrong);
  for (const s of realSecrets) expect(output.includes(s), 'a real password of the stack is in the output').toBe(false);
}

describe('a service with a wrong password fails without printing any password', () => {
  it('ingest, wrong Kafka password', async () => {
    const wrong = `wrong-${randomBytes(12).toString('base64url')}`;
    const env = secureServiceEnv(config, 'ingest');
    delete env.PIPELINE_KAFKA_SASL_PASSWORD_FILE;
    const r = await runService('ingest', {
      ...env,
      PIPELINE_KAFKA_SASL_PASSWORD: wrong,
      INGEST_LOG_LEVEL: 'debug',
      INGEST_PORT: '0',
      INGEST_TOKEN_KEY_DIR: keysDir,
      INGEST_KAFKA_START_TIMEOUT_MS: '5000',
      ...sealingEnv().env,
    });
    expect(r.timedOut).toBe(false);
    expect(r.code).toBe(1);
    expect(r.output).toMatch(/SASL SCRAM SHA512 authentication failed|invalid credentials/);
    expectNoSecret(r.output, wrong);
  });

  it('the aggregator, wrong Kafka password (right ClickHouse password from its file)', async () => {
    const wrong = `wrong-${randomBytes(12).toString('base64url')}`;
    const env = secureServiceEnv(config, 'aggregator');
    delete env.PIPELINE_KAFKA_SASL_PASSWORD_FILE;
    const r = await runService('aggregator', {
      ...env,
      PIPELINE_KAFKA_SASL_PASSWORD: wrong,
      AGGREGATOR_LOG_LEVEL: 'debug',
      AGGREGATOR_PORT: '0',
    });
    expect(r.timedOut).toBe(false);
    expect(r.code).toBe(1);
    expect(r.output).toMatch(/SASL SCRAM SHA512 authentication failed|invalid credentials/);
    expectNoSecret(r.output, wrong);
  });

  it('the aggregator, wrong ClickHouse password', async () => {
    const wrong = `wrong-${randomBytes(12).toString('base64url')}`;
    const env = secureServiceEnv(config, 'aggregator');
    delete env.AGGREGATOR_CLICKHOUSE_PASSWORD_FILE;
    const r = await runService('aggregator', { ...env, AGGREGATOR_CLICKHOUSE_PASSWORD: wrong, AGGREGATOR_LOG_LEVEL: 'debug', AGGREGATOR_PORT: '0' });
    expect(r.timedOut).toBe(false);
    expect(r.code).toBe(1);
    expect(r.output).toMatch(/Wrong password for user aggregator/);
    expectNoSecret(r.output, wrong);
  });

  it('negative control: a value the services do print (a non-secret setting) is caught by the same check', async () => {
    const marker = `scram-${randomBytes(6).toString('hex')}`;
    const r = await runService('ingest', { ...secureServiceEnv(config, 'ingest'), PIPELINE_KAFKA_SASL_MECHANISM: marker });
    expect(r.code).toBe(2);
    expect(() => expectNoSecret(r.output, marker)).toThrow();
  });
});
