// deploy/compose/secrets/init.sh, the one-shot that generates the compose deployment's secrets at first
// start, run here as it runs in its container (sh + openssl; no Docker on these machines), into a scratch
// folder standing for the named volumes. Each protection with a negative control.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { mkdtempSync, readdirSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { KAFKA_ROLES } from './security/acls.ts';

const COMPOSE = fileURLToPath(new URL('../deploy/compose/', import.meta.url));
const SCRIPT = join(COMPOSE, 'secrets/init.sh');
const read = (p: string) => readFileSync(join(COMPOSE, p), 'utf8');
type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const compose = YAML.parse(read('compose.yaml'), { merge: true }) as Obj;
const secretsService = compose.services.secrets as Obj;

function runInit(root: string, script = SCRIPT): { code: number; out: string } {
  const r = spawnSync('sh', [script, root], {
    encoding: 'utf8',
    env: {
      PATH: process.env.PATH,
      SECRETS_INIT_CHOWN: '0',
      KAFKA_CLUSTER_ID: secretsService.environment.KAFKA_CLUSTER_ID,
      CLICKHOUSE_USERS_TEMPLATES: join(COMPOSE, 'clickhouse/users.d'),
    },
  });
  return { code: r.status ?? -1, out: `${r.stdout}${r.stderr}` };
}

/** Every file under `dir`, relative, with its bytes. */
function snapshot(dir: string): Map<string, string> {
  const out = new Map<string, string>();
  const walk = (d: string, rel: string) => {
    for (const e of readdirSync(d, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(d, e.name), `${rel}${e.name}/`);
      else out.set(`${rel}${e.name}`, readFileSync(join(d, e.name), 'latin1'));
    }
  };
  walk(dir, '');
  return out;
}

const firstLine = (s: string) => s.split('\n')[0]!;
/** The secret values a run made: passwords and private keys. */
function secretsOf(files: Map<string, string>): string[] {
  return [...files]
    .filter(([f]) => f.endsWith('.password') || f.endsWith('/password') || f.endsWith('.key'))
    .map(([f, v]) => (f.endsWith('.key') ? v : firstLine(v)));
}

let root: string;
let first: { code: number; out: string };
const scratch: string[] = [];
beforeAll(() => {
  root = mkdtempSync(join(tmpdir(), 'compose-secrets-'));
  scratch.push(root);
  first = runInit(root);
});
afterAll(() => {
  for (const d of scratch) rmSync(d, { recursive: true, force: true });
});

describe('compose secrets one-shot (deploy/compose/secrets/init.sh)', () => {
  it('runs and makes a folder per volume the compose file mounts', () => {
    expect(first.out).toMatch(/secrets: ready/);
    expect(first.code).toBe(0);
    const mounted = (secretsService.volumes as string[]).filter((v) => v.startsWith('secrets-')).map((v) => v.split(':')[1]!.replace('/secrets/', ''));
    expect(readdirSync(root).sort()).toEqual(mounted.sort());
  });

  it('every path a service reads from its secrets volume exists in what the one-shot made', () => {
    // What each service reads: its environment and healthcheck, plus the files it is configured by.
    const configOf: Record<string, string[]> = {
      'kafka-1': ['kafka/server.properties', 'kafka/broker.sh'],
      clickhouse: ['clickhouse/config.d/tls.xml'],
      grafana: ['../grafana/provisioning/datasources/datasources.yaml'],
      prometheus: ['../prometheus/prometheus.yml'],
    };
    let checked = 0;
    for (const [name, svc] of Object.entries(compose.services as Obj)) {
      const text = [JSON.stringify(svc.environment ?? {}), JSON.stringify(svc.healthcheck ?? {}), ...(configOf[name] ?? []).map(read)].join('\n');
      for (const v of (svc.volumes ?? []) as string[]) {
        const [source, target] = v.split(':');
        if (!source!.startsWith('secrets-') || name === 'secrets') continue;
        for (const m of text.matchAll(new RegExp(`${target!.replace(/[/.]/g, '\\$&')}/([\\w.-]+)`, 'g'))) {
          expect(statSync(join(root, source!.replace('secrets-', ''), m[1]!)).isFile(), `${name}: ${m[0]}`).toBe(true);
          checked++;
        }
      }
    }
    expect(checked).toBeGreaterThan(20);
  });

  it('files are owner-only (0600) in owner-only folders (0700), except the public CA certificate; the CA key stays in ca/', () => {
    for (const [f] of snapshot(root)) {
      const mode = statSync(join(root, f)).mode & 0o777;
      expect(mode, f).toBe(f.endsWith('ca.pem') ? 0o644 : 0o600);
      if (f.endsWith('ca.key')) expect(f).toBe('ca/ca.key');
    }
    for (const d of readdirSync(root)) expect(statSync(join(root, d)).mode & 0o777, d).toBe(0o700);
  });

  it('certificates verify against the CA for the names the services use', () => {
    const ca = join(root, 'ca/ca.pem');
    for (const [cert, names] of [
      ['kafka/broker.pem', ['kafka-1', 'kafka-2', 'kafka-3']],
      ['ingest/tls.pem', ['ingest-1', 'ingest-2', 'localhost']],
      ['clickhouse-tls/server.pem', ['clickhouse', 'localhost']],
      ['grafana/tls.pem', ['grafana']],
    ] as const) {
      for (const n of names) {
        const r = spawnSync('openssl', ['verify', '-CAfile', ca, '-verify_hostname', n, join(root, cert)], { encoding: 'utf8' });
        expect(r.stdout + r.stderr, `${cert} ${n}`).toMatch(/: OK/);
      }
    }
    // negative control: a name the certificate does not carry
    const r = spawnSync('openssl', ['verify', '-CAfile', ca, '-verify_hostname', 'kafka-4', join(root, 'kafka/broker.pem')], { encoding: 'utf8' });
    expect(r.status).not.toBe(0);
  });

  it('the derived files carry the generated passwords: SCRAM users of every principal, broker JAAS, ClickHouse hashes', () => {
    const files = snapshot(root);
    const pw = (f: string) => firstLine(files.get(f)!);
    const args = files.get('kafka/format.args')!;
    for (const r of [...KAFKA_ROLES, 'broker']) {
      const f = r === 'broker' ? 'kafka/kafka-broker.password' : r.startsWith('zone-') ? `zones/kafka-${r}.password` : `${r}/kafka.password`;
      expect(args, r).toContain(`"SCRAM-SHA-512=[name=${r},password=${pw(f)}]"`);
    }
    expect(args).toContain(`"--cluster-id=${secretsService.environment.KAFKA_CLUSTER_ID}"`);
    expect(files.get('kafka/secrets.properties')).toContain(`username="broker" password="${pw('kafka/kafka-broker.password')}" user_broker=`);
    const sha = (s: string) => createHash('sha256').update(s).digest('hex');
    const users = files.get('clickhouse-users/passwords.xml')!;
    expect(users).toContain(`<aggregator><password_sha256_hex>${sha(pw('aggregator/clickhouse.password'))}</password_sha256_hex>`);
    expect(users).toContain(`<analyst><password_sha256_hex>${sha(pw('grafana/analyst.password'))}</password_sha256_hex>`);
    expect(users).toContain('<default remove="remove">');
    for (const f of ['aggregator.xml', 'analyst.xml']) expect(files.get(`clickhouse-users/${f}`)).toBe(read(`clickhouse/users.d/${f}`));
    // One password per principal: no two are the same.
    const all = secretsOf(files).filter((s) => !s.includes('PRIVATE KEY'));
    expect(new Set(all).size).toBe(all.length - 1); // the key store's two copies (PostgreSQL's and ingest's) are one password
    expect(pw('keystore/password')).toBe(pw('ingest/keystore.password'));
  });

  it('is idempotent: a second run keeps every file; a lost password is made again, alone', () => {
    const before = snapshot(root);
    expect(runInit(root).code).toBe(0);
    expect(snapshot(root)).toEqual(before);
    rmSync(join(root, 'aggregator/kafka.password'));
    expect(runInit(root).code).toBe(0);
    const after = snapshot(root);
    const changed = [...after].filter(([f, v]) => before.get(f) !== v).map(([f]) => f);
    expect(changed.sort()).toEqual(['aggregator/kafka.password', 'kafka/format.args']);
  });

  it('prints no secret', () => {
    const values = secretsOf(snapshot(root));
    expect(values.length).toBeGreaterThan(15);
    for (const v of values) expect(first.out.includes(v)).toBe(false);
  });

  it('negative control: a copy that prints a password is caught by the same check', () => {
    const dir = mkdtempSync(join(tmpdir(), 'compose-secrets-leak-'));
    scratch.push(dir);
    const leaky = join(dir, 'init.sh');
    writeFileSync(leaky, readFileSync(SCRIPT, 'utf8').replace('BROKER=$SECRET\n', 'BROKER=$SECRET\nsay "broker password $BROKER"\n'));
    const r = runInit(join(dir, 'out'), leaky);
    expect(r.code).toBe(0);
    expect(secretsOf(snapshot(join(dir, 'out'))).some((v) => r.out.includes(v))).toBe(true);
  });

  /** Lines that put a secret-holding variable into the arguments of a command other than the shell's builtins. */
  const argvLeaks = (script: string) =>
    script
      .split('\n')
      .map((l) => l.replace(/(^|\s)#\s.*$/, '')) // comments
      .filter((l) => /\$\{?(SECRET|BROKER)\b/.test(l))
      .filter((l) => !/^\s*(printf |[A-Z]+=\$SECRET$|unset )/.test(l.trim()) && !/^\s*printf '%s' "\$SECRET" \|/.test(l));

  it('puts no secret on a command line: secrets reach files through the builtins read and printf only', () => {
    expect(argvLeaks(readFileSync(SCRIPT, 'utf8'))).toEqual([]);
    expect(readFileSync(SCRIPT, 'utf8')).toMatch(/openssl rand -hex 32 >"\$1.tmp"/);
    // negative control: a password handed to openssl as an argument
    expect(argvLeaks('  openssl passwd -6 "$SECRET"\n')).toEqual(['  openssl passwd -6 "$SECRET"']);
  });
});
