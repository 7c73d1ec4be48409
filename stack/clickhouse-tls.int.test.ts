// The secured ClickHouse (18.16) over TLS (stack/README.md, "ClickHouse over TLS"): on a secured stack of
// this test's own, the HTTP port serves HTTPS only, with the stack CA's certificate; the services' and
// the analyst's clients (aggregator/store-server.ts through their settings) verify it with the CA; a client
// without the CA, or trusting another CA, is refused; plain HTTP gets no answer; TLS below 1.2 is refused;
// the native TLS port works with the CA and refuses a client without it.
// Negative controls: the same plain-HTTP probe answers on a server that serves plain HTTP (the plain
// stack's), and the same client that is refused without the CA answers with it.
import { execFile } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { connect as tlsConnect, type SecureVersion } from 'node:tls';
import { promisify } from 'node:util';
import { ClickHouseLogLevel, createClient as createClientLoud } from '@clickhouse/client';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { analystStoreOptions, loadAnalystConfig } from '../aggregator/analyst-config.ts';
import { loadAggregatorConfig } from '../aggregator/config.ts';
import { openStore, storeOptionsFrom } from '../aggregator/store-open.ts';
import { clickhouseAnswers, clickhousePaths, clickhouseUrl, resolveClickHouseServer } from './clickhouse.ts';
import { loadStackConfig } from './config.ts';
import {
  downSecure,
  readSecrets,
  scratchSecureConfig,
  secureAnalystEnv,
  secureClickHousePorts,
  secureClickHouseUrl,
  securePaths,
  secureServiceEnv,
  secureStackConfig,
  upSecure,
} from './secure.ts';
import { createCertificateAuthority } from './tls.ts';

const run = promisify(execFile);
/** Clients that keep quiet: the refusals below are expected. */
const createClient = (o: Parameters<typeof createClientLoud>[0]) => createClientLoud({ ...o, log: { level: ClickHouseLogLevel.OFF } });
const base = loadStackConfig();
const home = mkdtempSync(path.join(tmpdir(), 'clickhouse-tls-'));
const config = scratchSecureConfig(base, home, 19740);
const ports = secureClickHousePorts(config);

beforeAll(async () => {
  await upSecure(config);
}, 240_000);

afterAll(async () => {
  await downSecure(config).catch(() => {});
  rmSync(home, { recursive: true, force: true });
}, 120_000);

async function select1(client: ReturnType<typeof createClient>): Promise<unknown> {
  try {
    return await (await client.query({ query: 'SELECT 1 AS n', format: 'JSONEachRow' })).json();
  } finally {
    await client.close();
  }
}

/** The TLS version a handshake with `maxVersion` ends with, or the error code. */
function handshake(version: SecureVersion): Promise<string> {
  return new Promise((resolve) => {
    const s = tlsConnect({
      host: config.host,
      port: ports.https,
      ca: readFileSync(securePaths(config).caCert),
      minVersion: version === 'TLSv1.3' ? 'TLSv1.3' : 'TLSv1',
      maxVersion: version,
      // TLS 1.0/1.1 are off in Node's default security level too; allow them on this side so the refusal seen is the server's.
      ciphers: 'DEFAULT@SECLEVEL=0',
    });
    s.once('secureConnect', () => {
      resolve(s.getProtocol() ?? 'unknown');
      s.end();
    });
    s.once('error', (e: NodeJS.ErrnoException) => resolve(`refused (${e.code ?? e.message})`));
  });
}

/** clickhouse-client over the native TLS port with a 0600 config file holding user, password and (or not) the CA. */
async function nativeClient(withCa: boolean): Promise<{ ok: boolean; output: string }> {
  const dir = mkdtempSync(path.join(tmpdir(), 'ch-native-tls-'));
  const cfg = path.join(dir, 'client.xml');
  const ca = withCa ? `<caConfig>${securePaths(config).caCert}</caConfig>` : '';
  writeFileSync(
    cfg,
    `<config><user>analyst</user><password>${readSecrets(config)!.clickhouse.analyst}</password><secure>true</secure><openSSL><client>${ca}<loadDefaultCAFile>false</loadDefaultCAFile><verificationMode>strict</verificationMode><invalidCertificateHandler><name>RejectCertificateHandler</name></invalidCertificateHandler></client></openSSL></config>`,
    { mode: 0o600 },
  );
  const client = path.join(path.dirname(resolveClickHouseServer(base)), 'clickhouse-client');
  const bin = (await run('sh', ['-c', `command -v clickhouse-client || echo ${client}`])).stdout.trim();
  try {
    const { stdout } = await run(bin, ['--config-file', cfg, '--host', config.host, '--port', String(ports.nativeTls), '--query', 'SELECT 40 + 2'], {
      timeout: 30_000,
    });
    return { ok: true, output: stdout.trim() };
  } catch (e) {
    const err = e as { stdout?: string; stderr?: string; message: string };
    return { ok: false, output: `${err.stdout ?? ''}${err.stderr ?? ''}`.trim() };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

describe('the secured ClickHouse over TLS', () => {
  it('answers over HTTPS to the services and the analyst, who verify it with the stack CA', async () => {
    expect(secureClickHouseUrl(config)).toBe(`https://127.0.0.1:${ports.https}`);
    const aggCfg = loadAggregatorConfig({ ...secureServiceEnv(config, 'aggregator'), AGGREGATOR_PORT: '0' });
    expect(aggCfg.AGGREGATOR_CLICKHOUSE_TLS_CA_FILE).toBe(securePaths(config).caCert);
    const agg = await openStore(storeOptionsFrom(aggCfg));
    try {
      expect(await agg.query('SELECT 1 AS n')).toEqual([{ n: 1 }]);
    } finally {
      await agg.close();
    }
    const analyst = await openStore(analystStoreOptions(loadAnalystConfig(secureAnalystEnv(config))));
    try {
      expect(await analyst.query('SELECT min_group_devices FROM analytics_views.release_policy')).toEqual([{ min_group_devices: 5 }]);
    } finally {
      await analyst.close();
    }
  });

  it('a client without the CA, or trusting another CA, is refused (negative control: the same client with the CA answers)', async () => {
    const password = readSecrets(config)!.clickhouse.analyst;
    const url = secureClickHouseUrl(config);
    const noCa = await select1(createClient({ url, username: 'analyst', password })).catch((e: NodeJS.ErrnoException) => e);
    expect((noCa as NodeJS.ErrnoException).code).toMatch(/SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT_LOCALLY/);
    const other = await createCertificateAuthority(path.join(home, 'other-ca'), { name: 'not-the-stack-ca' });
    const wrongCa = await select1(createClient({ url, username: 'analyst', password, tls: { ca_cert: readFileSync(other.certFile) } })).catch(
      (e: NodeJS.ErrnoException) => e,
    );
    expect((wrongCa as NodeJS.ErrnoException).code).toMatch(/SELF_SIGNED_CERT_IN_CHAIN|UNABLE_TO_VERIFY_LEAF_SIGNATURE|UNABLE_TO_GET_ISSUER_CERT_LOCALLY/);
    expect(await select1(createClient({ url, username: 'analyst', password, tls: { ca_cert: readFileSync(securePaths(config).caCert) } }))).toEqual([{ n: 1 }]);
  });

  it('plain HTTP is not served at all: no http_port in its config, no answer on its port (negative control: the probe answers on a plain-HTTP server)', async () => {
    const xml = readFileSync(clickhousePaths(secureStackConfig(config)).configFile, 'utf8');
    expect(xml).toContain(`<https_port>${ports.https}</https_port>`);
    expect(xml).not.toContain('<http_port>');
    const plainUrl = `http://${config.host}:${ports.https}`;
    expect(await clickhouseAnswers(plainUrl, 2000)).toBe(false);
    const raw = await fetch(new URL('/?query=SELECT%201', plainUrl), { signal: AbortSignal.timeout(3000) }).then(
      async (r) => `${r.status} ${await r.text()}`,
      (e: Error) => `failed: ${e.message}`,
    );
    expect(raw).toMatch(/^failed/);
    // The same probe does see a server that serves plain HTTP: the plain stack's (loopback, no passwords).
    expect(await clickhouseAnswers(clickhouseUrl(base), 2000)).toBe(true);
  });

  it('TLS 1.2 and 1.3 only', async () => {
    expect(await handshake('TLSv1.3')).toBe('TLSv1.3');
    expect(await handshake('TLSv1.2')).toBe('TLSv1.2');
    expect(await handshake('TLSv1.1')).toMatch(/^refused/);
    expect(await handshake('TLSv1')).toMatch(/^refused/);
  });

  it('the native protocol over TLS (clickhouse-client --secure): works with the CA, refused without it', async () => {
    const withCa = await nativeClient(true);
    expect(withCa).toEqual({ ok: true, output: '42' });
    const without = await nativeClient(false);
    expect(without.ok).toBe(false);
    expect(without.output).toMatch(/certificate verify failed/);
    expect(without.output).not.toContain(readSecrets(config)!.clickhouse.analyst);
  });
});
