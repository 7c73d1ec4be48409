// No secret on a command line, in an environment or in a log, at any moment of the secured stack's start
// (stack/README.md, "Secrets"; deploy/THREAT-MODEL.md). A secured stack of this test's own (own home, own
// ports: the shared one is never touched) is started from nothing while a sampler reads every process's
// /proc/<pid>/cmdline and environ every 20 ms; then every password of secrets.json and every private key
// is looked for in what the sampler saw, in what the start printed, and in every file the stack wrote but
// the few meant to hold them (secrets/, keys, server.properties and config.xml, all 0600).
// Negative controls: the same sampler catches a password on the command line of a process that lives
// 200 ms (a tenth of the storage tool's life), in the storage tool's old argument shape, and in an
// environment; the same file grep catches a password written into a log.
import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { CLICKHOUSE_USERS } from './clickhouse-users.ts';
import { loadStackConfig } from './config.ts';
import { classpath } from './kafka.ts';
import { downSecure, readSecrets, scratchSecureConfig, securePaths, upSecure } from './secure.ts';
import { secretHits, startSampler, type SampleReport } from './secrets-sampler.ts';
import { KAFKA_ROLES } from '../tools/security/acls.ts';

const base = loadStackConfig();
const home = mkdtempSync(path.join(tmpdir(), 'secrets-hygiene-'));
const config = scratchSecureConfig(base, home, 19700);

let report: SampleReport;
let started: string[] = [];
const printed: string[] = [];
let secrets: Record<string, string> = {};

/** Files the stack writes on purpose with a secret inside (each 0600; stack/README.md, "Secured mode"). */
function holdsSecretsOnPurpose(file: string): boolean {
  const p = securePaths(config);
  const rel = path.relative(p.root, file);
  return (
    rel.startsWith(`secrets${path.sep}`) ||
    /^tls\/.*\.key$/.test(rel) ||
    file === p.brokerKeystore ||
    rel === path.join('kafka', 'single', 'server.properties') ||
    rel === path.join('clickhouse', 'config.xml') ||
    rel === path.join('clickhouse', 'data', 'preprocessed_configs', 'config.xml')
  );
}

function filesUnder(dir: string): string[] {
  const out: string[] = [];
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    const f = path.join(dir, e.name);
    if (e.isDirectory()) out.push(...filesUnder(f));
    else if (e.isFile()) out.push(f);
  }
  return out;
}

function fileHits(files: string[], wanted: Record<string, string>): string[] {
  const hits: string[] = [];
  for (const f of files) {
    if (statSync(f).size > 256 * 1024 * 1024) continue;
    const body = readFileSync(f);
    for (const [label, s] of Object.entries(wanted)) if (body.includes(s)) hits.push(`${label} in ${path.relative(home, f)}`);
  }
  return hits;
}

/** A distinctive piece of a PEM private key: the longest base64 line of its body. */
function keyMarker(file: string): string {
  const lines = readFileSync(file, 'utf8')
    .split('\n')
    .filter((l) => /^[A-Za-z0-9+/=]{40,}$/.test(l));
  return lines[Math.floor(lines.length / 2)] ?? '';
}

beforeAll(async () => {
  const sampler = startSampler({ intervalMs: 20 });
  try {
    const r = await upSecure(config, (l) => printed.push(l));
    started = r.started;
  } finally {
    report = await sampler.stop();
  }
  const s = readSecrets(config)!;
  const p = securePaths(config);
  secrets = {
    ...Object.fromEntries(Object.entries(s.kafka).map(([k, v]) => [`kafka ${k} password`, v])),
    ...Object.fromEntries(Object.entries(s.clickhouse).map(([k, v]) => [`clickhouse ${k} password`, v])),
    'CA key': keyMarker(p.caKey),
    'broker key': keyMarker(p.brokerKey),
    'clickhouse key': keyMarker(p.clickhouseKey),
    'ingest key': keyMarker(p.ingestKey),
  };
}, 240_000);

afterAll(async () => {
  await downSecure(config).catch(() => {});
  rmSync(home, { recursive: true, force: true });
}, 120_000);

describe("the secured stack's start puts no secret on a command line, in an environment or in a log", () => {
  it('started from nothing, sampled every 20 ms', () => {
    expect(started.sort()).toEqual(['secure clickhouse', 'secure kafka']);
    // every ClickHouse user, every service principal + broker + controller, 4 private keys
    expect(Object.keys(secrets)).toHaveLength(CLICKHOUSE_USERS.length + KAFKA_ROLES.length + 2 + 4);
    for (const [label, s] of Object.entries(secrets)) expect(s.length, label).toBeGreaterThanOrEqual(24);
    expect(report.samples).toBeGreaterThan(100);
    // No blind spot as long as the JVM tools that could carry a password live (the storage tool runs ~2 s);
    // on a quiet machine the gap stays near 20 ms, and the negative control below catches a 200 ms process.
    // The two cores are shared with other test runs, which can delay the sampler's thread now and then.
    expect(report.maxGapMs, `${report.samples} samples`).toBeLessThan(1000);
    // The moment that used to leak: the storage tool formatting the SCRAM users was seen, by its argument file.
    expect(report.cmdlines.some((c) => c.includes('@') && c.includes('stack-java-args-'))).toBe(true);
  });

  it('no password and no private key in any command line or environment seen', () => {
    expect(secretHits(report, secrets)).toEqual([]);
  });

  it('none in what the start printed, nor in any file the stack wrote but the ones meant to hold them', () => {
    for (const [label, s] of Object.entries(secrets)) expect(printed.join('\n').includes(s), `${label} in what the start printed`).toBe(false);
    const files = filesUnder(home).filter((f) => !holdsSecretsOnPurpose(f));
    const logs = files.filter((f) => /\/logs?\//.test(f) || f.endsWith('.log'));
    // Kafka's server.log and stdout.log, ClickHouse's server log, error log and stdout.log at least.
    expect(logs.map((f) => path.basename(f))).toEqual(
      expect.arrayContaining(['server.log', 'clickhouse-server.log', 'clickhouse-server.err.log', 'stdout.log']),
    );
    expect(fileHits(files, secrets)).toEqual([]);
  });

  it('negative control: the sampler catches a password on the command line of a 200 ms process, in the old storage-tool shape, and in an environment', async () => {
    const onArgv = `neg-${randomBytes(18).toString('base64url')}`;
    const oldShape = `neg-${randomBytes(18).toString('base64url')}`;
    const inEnv = `neg-${randomBytes(18).toString('base64url')}`;
    const sampler = startSampler({ intervalMs: 20 });
    const exited = (cmd: string, args: string[], env?: NodeJS.ProcessEnv) =>
      new Promise<void>((resolve) => spawn(cmd, args, { stdio: 'ignore', ...(env ? { env } : {}) }).once('exit', () => resolve()));
    const t0 = Date.now();
    await exited('sh', ['-c', 'sleep 0.2', 'sh', onArgv]);
    const shortMs = Date.now() - t0;
    await exited('sh', ['-c', 'sleep 0.2'], { ...process.env, NEG_SECRET: inEnv });
    // What formatting the storage looked like before: the SCRAM users on the java command line.
    await exited(base.kafka.java, [
      '-cp',
      classpath(base),
      'kafka.tools.StorageTool',
      'format',
      '--cluster-id=AAAAAAAAAAAAAAAAAAAAAA',
      '--config',
      path.join(home, 'no-such.properties'),
      '--add-scram',
      `SCRAM-SHA-512=[name=ingest,password=${oldShape}]`,
    ]);
    const neg = await sampler.stop();
    expect(shortMs).toBeLessThan(1000);
    expect(
      secretHits(neg, { 'argv secret': onArgv, 'old storage-tool secret': oldShape, 'environment secret': inEnv }).map((h) => h.split(' in the ')[0]),
    ).toEqual(expect.arrayContaining(['argv secret', 'old storage-tool secret', 'environment secret']));
  }, 60_000);

  it('negative control: the file grep catches a password written into a log', () => {
    const log = path.join(securePaths(config).root, 'kafka', 'single', 'logs', 'negative-control.log');
    writeFileSync(log, `oops ${secrets['kafka ingest password']}\n`);
    try {
      expect(fileHits([log], secrets)).toEqual([`kafka ingest password in ${path.relative(home, log)}`]);
    } finally {
      rmSync(log, { force: true });
    }
  });
});
