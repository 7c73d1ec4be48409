// The transport rule of the services' ClickHouse connections (aggregator/clickhouse-tls.ts): https, or
// plain http to a loopback host only; anything else needs the loudly named development switch.
// Negative control: with AGGREGATOR_/ANALYST_UNSAFE_PLAINTEXT_CLICKHOUSE=true the same URL is accepted.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { loadAnalystConfig } from './analyst-config.ts';
import { clickhouseTransportProblems, isLoopbackHost } from './clickhouse-tls.ts';
import { loadAggregatorConfig } from './config.ts';
import { ConfigError } from '../runtime/config.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'ch-tls-unit-'));
const ca = path.join(dir, 'ca.pem');
writeFileSync(ca, '-----BEGIN CERTIFICATE-----\nMIIB\n-----END CERTIFICATE-----\n');
const notPem = path.join(dir, 'not.pem');
writeFileSync(notPem, 'hello\n');
afterAll(() => rmSync(dir, { recursive: true, force: true }));

function problems(env: Record<string, string>): string[] {
  try {
    loadAggregatorConfig(env);
    return [];
  } catch (e) {
    if (e instanceof ConfigError) return e.problems;
    throw e;
  }
}

describe('ClickHouse transport rule', () => {
  it('loopback hosts', () => {
    for (const h of ['127.0.0.1', '127.1.2.3', 'localhost', '[::1]', 'db.localhost']) expect(isLoopbackHost(h), h).toBe(true);
    for (const h of ['10.0.0.1', 'clickhouse', 'clickhouse.clickhouse', '128.0.0.1', '[::2]', 'localhost.example.com'])
      expect(isLoopbackHost(h), h).toBe(false);
  });

  it('plain http to a host that is not loopback is refused, naming the settings', () => {
    const p = problems({ AGGREGATOR_CLICKHOUSE_URL: 'http://clickhouse:8123' });
    expect(p).toEqual([expect.stringMatching(/AGGREGATOR_CLICKHOUSE_URL=http:\/\/clickhouse:8123: plain http .* AGGREGATOR_UNSAFE_PLAINTEXT_CLICKHOUSE=true/)]);
    expect(() => loadAnalystConfig({ ANALYST_CLICKHOUSE_URL: 'http://10.1.2.3:8123' })).toThrow(/ANALYST_UNSAFE_PLAINTEXT_CLICKHOUSE=true/);
  });

  it('negative control: the development switch lets the same URL through', () => {
    expect(problems({ AGGREGATOR_CLICKHOUSE_URL: 'http://clickhouse:8123', AGGREGATOR_UNSAFE_PLAINTEXT_CLICKHOUSE: 'true' })).toEqual([]);
    expect(loadAnalystConfig({ ANALYST_CLICKHOUSE_URL: 'http://10.1.2.3:8123', ANALYST_UNSAFE_PLAINTEXT_CLICKHOUSE: 'true' }).ANALYST_CLICKHOUSE_URL).toBe(
      'http://10.1.2.3:8123',
    );
  });

  it('http to loopback, and https with or without a CA file, are accepted', () => {
    expect(problems({})).toEqual([]); // the default, http://127.0.0.1:18123
    expect(problems({ AGGREGATOR_CLICKHOUSE_URL: 'http://localhost:18123' })).toEqual([]);
    expect(problems({ AGGREGATOR_CLICKHOUSE_URL: 'https://clickhouse:8443' })).toEqual([]);
    expect(problems({ AGGREGATOR_CLICKHOUSE_URL: 'https://clickhouse:8443', AGGREGATOR_CLICKHOUSE_TLS_CA_FILE: ca })).toEqual([]);
  });

  it('a CA file that cannot be read or holds no certificate, or a CA with an http URL, is refused', () => {
    expect(problems({ AGGREGATOR_CLICKHOUSE_URL: 'https://clickhouse:8443', AGGREGATOR_CLICKHOUSE_TLS_CA_FILE: path.join(dir, 'missing.pem') })).toEqual([
      expect.stringMatching(/AGGREGATOR_CLICKHOUSE_TLS_CA_FILE=.*missing\.pem: cannot read it \(ENOENT\)/),
    ]);
    expect(problems({ AGGREGATOR_CLICKHOUSE_URL: 'https://clickhouse:8443', AGGREGATOR_CLICKHOUSE_TLS_CA_FILE: notPem })).toEqual([
      expect.stringMatching(/no PEM certificate in it/),
    ]);
    expect(clickhouseTransportProblems('ANALYST_', { url: 'http://127.0.0.1:18123', caFile: ca, unsafePlaintext: false })).toEqual([
      'ANALYST_CLICKHOUSE_TLS_CA_FILE is set but ANALYST_CLICKHOUSE_URL is http://: use https://',
    ]);
  });

  it('the embedded store has no transport to check', () => {
    expect(problems({ AGGREGATOR_CLICKHOUSE: 'embedded', AGGREGATOR_CLICKHOUSE_URL: 'http://clickhouse:8123' })).toEqual([]);
  });
});
