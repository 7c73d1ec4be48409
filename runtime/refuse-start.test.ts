// Both services refuse to start with one clear line when the secured mode is asked for and its settings
// are incomplete (stack/README.md, "Secured mode"), before opening any connection: nothing listens on the broker address used.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { copyFileSync, readFileSync } from 'node:fs';
import path from 'node:path';
import { runService } from '../testing/services.ts';
import { scratchCa, type IssuedCertificate, type ScratchCa } from '../testing/tls.ts';

const SECRET = 'Q7-refuse-start-secret';
const nowhere = { PIPELINE_KAFKA_BROKERS: '127.0.0.1:1' };
// Ingest also refuses a residency zone without a cluster of its own, a zone without a key store and a
// start without TLS files (below); these tests are about the other settings, so their ingest runs allow
// the single cluster, unsealed records and plain HTTP explicitly.
const plainHttp = { INGEST_UNSAFE_PLAINTEXT_HTTP: 'true' };
const oneCluster = { INGEST_ZONES_SHARE_MAIN_CLUSTER: 'true', INGEST_UNSAFE_UNSEALED: 'true', ...plainHttp };

describe.each(['ingest', 'aggregator'] as const)('%s with PIPELINE_KAFKA_SECURITY=sasl_ssl', (service) => {
  const unreachable = { ...nowhere, ...(service === 'ingest' ? oneCluster : {}) };
  it('and no credentials: exits 2 with one line naming what is missing', async () => {
    const r = await runService(service, { ...unreachable, PIPELINE_KAFKA_SECURITY: 'sasl_ssl', PIPELINE_KAFKA_SASL_USERNAME: service });
    expect(r.code).toBe(2);
    expect(r.stderrLines).toEqual([
      expect.stringMatching(
        new RegExp(`^${service}: .*PIPELINE_KAFKA_SECURITY=sasl_ssl needs PIPELINE_KAFKA_SASL_PASSWORD_FILE \\(or PIPELINE_KAFKA_SASL_PASSWORD\\)$`),
      ),
    ]);
  });

  it('and an unreadable password file: exits 2, names the file, never a secret given alongside', async () => {
    const r = await runService(service, {
      ...unreachable,
      PIPELINE_KAFKA_SECURITY: 'sasl_ssl',
      PIPELINE_KAFKA_SASL_USERNAME: service,
      PIPELINE_KAFKA_SASL_PASSWORD_FILE: '/nonexistent/pw',
      AGGREGATOR_CLICKHOUSE_PASSWORD: service === 'aggregator' ? SECRET : '',
    });
    expect(r.code).toBe(2);
    expect(r.stderrLines).toEqual([expect.stringContaining('PIPELINE_KAFKA_SASL_PASSWORD_FILE=/nonexistent/pw: cannot read it (ENOENT)')]);
    expect(r.output).not.toContain(SECRET);
  });

  it('credentials with plaintext are refused too (a forgotten PIPELINE_KAFKA_SECURITY), without echoing them', async () => {
    const r = await runService(service, { ...unreachable, PIPELINE_KAFKA_SASL_PASSWORD: SECRET });
    expect(r.code).toBe(2);
    expect(r.stderrLines.join('\n')).toContain('PIPELINE_KAFKA_SASL_PASSWORD set but PIPELINE_KAFKA_SECURITY=plaintext');
    expect(r.output).not.toContain(SECRET);
  });

  it('negative control: a complete plaintext setup gets past the config check (fails later, on the unreachable broker)', async () => {
    const r = await runService(service, {
      ...unreachable,
      INGEST_KAFKA_START_TIMEOUT_MS: service === 'ingest' ? '1000' : '',
      AGGREGATOR_CLICKHOUSE_URL: service === 'aggregator' ? 'http://127.0.0.1:1' : '',
      INGEST_TOKEN_KEY_DIR: service === 'ingest' ? '/tmp/refuse-start-token-keys' : '',
      INGEST_UNSAFE_UNSEALED: service === 'ingest' ? 'true' : '',
      INGEST_UNSAFE_PLAINTEXT_HTTP: service === 'ingest' ? 'true' : '',
    });
    expect(r.code).toBe(1);
    expect(r.output).not.toMatch(/invalid configuration|PIPELINE_KAFKA_SECURITY/);
  });
});

describe('ingest without a cluster for a residency zone (policy section 6)', () => {
  const zones = {
    INGEST_ZONE_BROKERS_CN: '127.0.0.2:1',
    INGEST_ZONE_BROKERS_RU: '127.0.0.3:1',
    INGEST_ZONE_BROKERS_IN: '127.0.0.4:1',
    INGEST_KAFKA_START_TIMEOUT_MS: '1000',
    INGEST_TOKEN_KEY_DIR: '/tmp/refuse-start-token-keys',
    INGEST_UNSAFE_UNSEALED: 'true',
    ...plainHttp,
  };

  it('no zone brokers and no INGEST_ZONES_SHARE_MAIN_CLUSTER: exits 2 with one line naming the three zones', async () => {
    const r = await runService('ingest', nowhere);
    expect(r.code).toBe(2);
    expect(r.stderrLines).toEqual([
      expect.stringMatching(
        /^ingest: invalid configuration: residency \(policy section 6\): INGEST_ZONE_BROKERS_CN is empty \(zone cn, Mainland China\), INGEST_ZONE_BROKERS_RU is empty \(zone ru, Russia\), INGEST_ZONE_BROKERS_IN is empty \(zone in, India\);/,
      ),
    ]);
  });

  it('one zone without brokers: exits 2 with one line naming that zone only', async () => {
    const r = await runService('ingest', { ...nowhere, ...zones, INGEST_ZONE_BROKERS_RU: '' });
    expect(r.code).toBe(2);
    expect(r.stderrLines).toEqual([expect.stringMatching(/^ingest: invalid configuration: residency .*INGEST_ZONE_BROKERS_RU is empty \(zone ru, Russia\);/)]);
    expect(r.output).not.toMatch(/INGEST_ZONE_BROKERS_(CN|IN)/);
  });

  it('with INGEST_ZONES_SHARE_MAIN_CLUSTER=true: gets past the config check and warns, naming the zones on the main cluster', async () => {
    const { INGEST_KAFKA_START_TIMEOUT_MS, INGEST_TOKEN_KEY_DIR } = zones;
    const r = await runService('ingest', {
      ...nowhere,
      INGEST_KAFKA_START_TIMEOUT_MS,
      INGEST_TOKEN_KEY_DIR,
      INGEST_ZONES_SHARE_MAIN_CLUSTER: 'true',
      INGEST_UNSAFE_UNSEALED: 'true',
      ...plainHttp,
    });
    expect(r.code).toBe(1);
    expect(r.output).not.toMatch(/invalid configuration/);
    expect(r.output).toMatch(/INGEST_ZONES_SHARE_MAIN_CLUSTER is on: personal data of residency zones goes to the main cluster.*cn,ru,in/);
  });

  it('negative control: every zone on brokers of its own gets past the config check (fails later, on the unreachable brokers)', async () => {
    const r = await runService('ingest', { ...nowhere, ...zones });
    expect(r.code).toBe(1);
    expect(r.output).not.toMatch(/invalid configuration|residency/);
  });
});

describe('aggregator ClickHouse password file', () => {
  it('unreadable, or given together with the password: exits 2 with one line, no secret', async () => {
    const a = await runService('aggregator', { ...nowhere, AGGREGATOR_CLICKHOUSE_PASSWORD_FILE: '/nonexistent/ch' });
    expect(a.code).toBe(2);
    expect(a.stderrLines).toEqual([expect.stringContaining('AGGREGATOR_CLICKHOUSE_PASSWORD_FILE=/nonexistent/ch: cannot read it (ENOENT)')]);
    const b = await runService('aggregator', { ...nowhere, AGGREGATOR_CLICKHOUSE_PASSWORD_FILE: '/nonexistent/ch', AGGREGATOR_CLICKHOUSE_PASSWORD: SECRET });
    expect(b.code).toBe(2);
    expect(b.stderrLines).toEqual([expect.stringContaining('AGGREGATOR_CLICKHOUSE_PASSWORD and AGGREGATOR_CLICKHOUSE_PASSWORD_FILE are both set: give one')]);
    expect(b.output).not.toContain(SECRET);
  });
});

describe('ingest without key stores for sealing personal records (rights/README.md)', () => {
  const base = {
    ...nowhere,
    INGEST_ZONES_SHARE_MAIN_CLUSTER: 'true',
    INGEST_KAFKA_START_TIMEOUT_MS: '1000',
    INGEST_TOKEN_KEY_DIR: '/tmp/refuse-start-token-keys',
    ...plainHttp,
  };
  it('exits 2 with one line naming every missing setting', async () => {
    const r = await runService('ingest', base);
    expect(r.code).toBe(2);
    expect(r.stderrLines).toEqual([
      expect.stringMatching(
        /INGEST_KEYSTORE_CN, INGEST_KEYSTORE_RU, INGEST_KEYSTORE_IN, INGEST_KEYSTORE_ROW empty.*INGEST_KEYSTORE_PASSWORD_FILE empty.*INGEST_RIGHTS_KEY_DIR empty/,
      ),
    ]);
  });
  it('negative control: with every key store named it gets past the config check (fails later, on the unreachable broker)', async () => {
    const r = await runService('ingest', {
      ...base,
      INGEST_KEYSTORE_CN: '127.0.0.1:1/keys_cn',
      INGEST_KEYSTORE_RU: '127.0.0.1:1/keys_ru',
      INGEST_KEYSTORE_IN: '127.0.0.1:1/keys_in',
      INGEST_KEYSTORE_ROW: '127.0.0.1:1/keys_row',
      INGEST_KEYSTORE_PASSWORD_FILE: '/etc/hostname',
      INGEST_RIGHTS_KEY_DIR: '/tmp/refuse-start-rights-keys',
    });
    expect(r.code).toBe(1);
    expect(r.output).not.toMatch(/invalid configuration/);
  });
});

describe('ingest without TLS (policy 4.1: devices reach ingest encrypted; ingest/README.md, "TLS")', () => {
  // Everything else complete, so the TLS settings are the only thing the config check can stop on.
  const base = {
    ...nowhere,
    INGEST_ZONES_SHARE_MAIN_CLUSTER: 'true',
    INGEST_UNSAFE_UNSEALED: 'true',
    INGEST_KAFKA_START_TIMEOUT_MS: '1000',
    INGEST_TOKEN_KEY_DIR: '/tmp/refuse-start-token-keys',
  };
  let tls: ScratchCa;
  let server: IssuedCertificate;
  let other: IssuedCertificate;
  beforeAll(async () => {
    tls = await scratchCa();
    server = await tls.issue('server');
    other = await tls.issue('other');
  });
  afterAll(() => tls.remove());

  it('neither TLS files nor INGEST_UNSAFE_PLAINTEXT_HTTP=true: exits 2 with one line naming the three settings', async () => {
    const r = await runService('ingest', base);
    expect(r.code).toBe(2);
    expect(r.stderrLines).toEqual([
      expect.stringMatching(
        /^ingest: invalid configuration: TLS \(policy 4\.1\): INGEST_TLS_CERT_FILE and INGEST_TLS_KEY_FILE are empty: .*INGEST_UNSAFE_PLAINTEXT_HTTP=true/,
      ),
    ]);
  });

  it('INGEST_UNSAFE_PLAINTEXT_HTTP=false refuses like unset', async () => {
    const r = await runService('ingest', { ...base, INGEST_UNSAFE_PLAINTEXT_HTTP: 'false' });
    expect(r.code).toBe(2);
    expect(r.stderrLines).toEqual([expect.stringContaining('INGEST_TLS_CERT_FILE and INGEST_TLS_KEY_FILE are empty')]);
  });

  it('a certificate without its key, or a key without its certificate: exits 2 naming the missing one', async () => {
    const a = await runService('ingest', { ...base, INGEST_TLS_CERT_FILE: server.certFile });
    expect(a.code).toBe(2);
    expect(a.stderrLines).toEqual([expect.stringContaining('INGEST_TLS_CERT_FILE is set but INGEST_TLS_KEY_FILE is empty: give both')]);
    // The plaintext switch does not make half a TLS setup acceptable.
    const b = await runService('ingest', { ...base, ...plainHttp, INGEST_TLS_KEY_FILE: server.keyFile });
    expect(b.code).toBe(2);
    expect(b.stderrLines).toEqual([expect.stringContaining('INGEST_TLS_KEY_FILE is set but INGEST_TLS_CERT_FILE is empty: give both')]);
  });

  it('an unreadable certificate file, a key of another certificate, a key file in the certificate setting: exits 2 naming the setting, never the key', async () => {
    const missing = path.join(tls.dir, 'nope.pem');
    const a = await runService('ingest', { ...base, INGEST_TLS_CERT_FILE: missing, INGEST_TLS_KEY_FILE: server.keyFile });
    expect(a.code).toBe(2);
    expect(a.stderrLines).toEqual([`ingest: invalid configuration: INGEST_TLS_CERT_FILE=${missing}: cannot read it (ENOENT)`]);

    const b = await runService('ingest', { ...base, INGEST_TLS_CERT_FILE: server.certFile, INGEST_TLS_KEY_FILE: other.keyFile });
    expect(b.code).toBe(2);
    expect(b.stderrLines).toEqual([expect.stringContaining(`INGEST_TLS_KEY_FILE=${other.keyFile}: the key does not belong to the certificate`)]);

    const swapped = path.join(tls.dir, 'swapped.pem');
    copyFileSync(server.keyFile, swapped);
    const c = await runService('ingest', { ...base, INGEST_TLS_CERT_FILE: swapped, INGEST_TLS_KEY_FILE: server.keyFile });
    expect(c.code).toBe(2);
    expect(c.stderrLines).toEqual([expect.stringContaining(`INGEST_TLS_CERT_FILE=${swapped}: no PEM certificate in it`)]);
    // Not one line of either key's base64 body in anything ingest printed.
    for (const keyFile of [server.keyFile, other.keyFile]) {
      const body = readFileSync(keyFile, 'utf8')
        .split('\n')
        .filter((l) => l.length > 20 && !l.startsWith('-----'));
      for (const r of [a, b, c]) for (const l of body) expect(r.output.includes(l), 'a line of a private key is in the output').toBe(false);
    }
  });

  it('negative control: INGEST_UNSAFE_PLAINTEXT_HTTP=true gets past the check, with a warning (fails later, on the unreachable broker)', async () => {
    const r = await runService('ingest', { ...base, ...plainHttp });
    expect(r.code).toBe(1);
    expect(r.output).not.toMatch(/invalid configuration/);
    expect(r.output).toContain('UNSAFE: INGEST_UNSAFE_PLAINTEXT_HTTP is on');
  });

  it('negative control: a certificate and its key get past the check (fails later, on the unreachable broker)', async () => {
    const r = await runService('ingest', { ...base, INGEST_TLS_CERT_FILE: server.certFile, INGEST_TLS_KEY_FILE: server.keyFile });
    expect(r.code).toBe(1);
    expect(r.output).not.toMatch(/invalid configuration|INGEST_TLS_|PLAINTEXT/);
  });
});
