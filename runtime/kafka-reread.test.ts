// The Kafka SASL password file is read again when it changes (runtime/kafka.ts): rotation without a
// restart. kafkajs reads `sasl.password` when a connection authenticates, so the getter is what a new
// connection sees. Negative control: with the re-read switched off the old password stays.
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadConfig } from './config.ts';
import { kafkaClientOptions } from './kafka.ts';
import { pipelineSettings } from './pipeline-settings.ts';

const dir = mkdtempSync(path.join(os.tmpdir(), 'kafka-reread-'));
const pwFile = path.join(dir, 'pw');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const replace = (content: string) => {
  writeFileSync(`${pwFile}.tmp`, content);
  renameSync(`${pwFile}.tmp`, pwFile);
};
const cfg = () =>
  loadConfig(pipelineSettings, {
    prefixes: ['PIPELINE_'],
    env: { PIPELINE_KAFKA_SECURITY: 'sasl_ssl', PIPELINE_KAFKA_SASL_USERNAME: 'ingest', PIPELINE_KAFKA_SASL_PASSWORD_FILE: pwFile },
  });
const passwordOf = (o: ReturnType<typeof kafkaClientOptions>) => (o.sasl as { password: string }).password;

describe('PIPELINE_KAFKA_SASL_PASSWORD_FILE is read again when it changes', () => {
  it('a replaced file gives the new password to the next authentication; an empty or missing file keeps the last good one', () => {
    replace('first-password\n');
    const o = kafkaClientOptions(cfg());
    expect(passwordOf(o)).toBe('first-password');
    replace('second-password\n');
    expect(passwordOf(o)).toBe('second-password');
    replace('');
    expect(passwordOf(o)).toBe('second-password');
    rmSync(pwFile);
    expect(passwordOf(o)).toBe('second-password');
    replace('third-password');
    expect(passwordOf(o)).toBe('third-password');
  });

  it('the password stays out of JSON and object dumps', () => {
    replace('hidden-password\n');
    const o = kafkaClientOptions(cfg());
    expect(JSON.stringify(o)).not.toContain('hidden-password');
    expect(Object.keys(o.sasl ?? {})).not.toContain('password');
  });

  it('negative control: with the re-read off, the password read at creation stays', () => {
    replace('old-password\n');
    const o = kafkaClientOptions(cfg(), { rereadPasswordFile: false });
    replace('new-password\n');
    expect(passwordOf(o)).toBe('old-password');
  });
});
