// The alert rules evaluated by Prometheus itself: `promtool check rules` parses them as Prometheus
// 2.42 does, and `promtool test rules` runs the unit tests in deploy/prometheus/tests/ (one file per
// alert group, each alert with a firing and a silent case). promtool comes with Debian's `prometheus`
// package (tools/setup.sh). Negative controls: a rule whose threshold is broken fails its unit test, and
// a rule with a PromQL error fails the check.
import { execFile } from 'node:child_process';
import { cpSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { afterAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { loadStackConfig } from '../stack/config.ts';
import { prometheusConfig, prometheusPaths } from '../stack/monitoring.ts';

const run = promisify(execFile);
const PROM = fileURLToPath(new URL('../deploy/prometheus/', import.meta.url));
const RULE_FILES = ['alerts.yml', 'alerts-k8s.yml'];
const TEST_FILES = readdirSync(join(PROM, 'tests')).filter((f) => f.endsWith('.test.yml'));

// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Obj = Record<string, any>;

async function promtool(args: string[], cwd: string): Promise<{ code: number; out: string }> {
  try {
    const r = await run('promtool', args, { cwd, timeout: 60_000 });
    return { code: 0, out: r.stdout + r.stderr };
  } catch (e) {
    const err = e as { code?: number | string; stdout?: string; stderr?: string };
    if (err.code === 'ENOENT') throw new Error('promtool not found: install Debian package prometheus (tools/setup.sh does)');
    return { code: typeof err.code === 'number' ? err.code : 1, out: `${err.stdout ?? ''}${err.stderr ?? ''}` };
  }
}

const scratch: string[] = [];
afterAll(() => {
  for (const d of scratch) rmSync(d, { recursive: true, force: true });
});

/** A copy of deploy/prometheus/ with `edit` applied to alerts.yml. */
function brokenCopy(edit: (text: string) => string): string {
  const dir = mkdtempSync(join(tmpdir(), 'prom-rules-'));
  scratch.push(dir);
  cpSync(PROM, dir, { recursive: true });
  const file = join(dir, 'alerts.yml');
  const before = readFileSync(file, 'utf8');
  const after = edit(before);
  expect(after).not.toBe(before);
  writeFileSync(file, after);
  return dir;
}

describe('Prometheus alert rules under promtool', () => {
  it('promtool check rules accepts every rule file', async () => {
    const r = await promtool(['check', 'rules', ...RULE_FILES], PROM);
    expect(r.out).not.toMatch(/FAILED/);
    expect(r.code).toBe(0);
    expect(r.out).toMatch(/SUCCESS: \d+ rules found/);
  });

  it('one unit-test file per alert group, and every alert in it has a firing and a silent case', () => {
    const groups = RULE_FILES.flatMap((f) => (YAML.parse(readFileSync(join(PROM, f), 'utf8')) as Obj).groups.map((g: Obj) => ({ file: f, g })));
    expect(groups.length).toBeGreaterThanOrEqual(4);
    expect(TEST_FILES.sort()).toEqual(groups.map(({ g }) => `${g.name}.test.yml`).sort());
    for (const { file, g } of groups) {
      const t = YAML.parse(readFileSync(join(PROM, 'tests', `${g.name}.test.yml`), 'utf8')) as Obj;
      expect(t.rule_files, g.name).toEqual([`../${file}`]);
      const cases = (t.tests as Obj[]).flatMap((c) => c.alert_rule_test as Obj[]);
      for (const r of g.rules as Obj[]) {
        const mine = cases.filter((c) => c.alertname === r.alert);
        expect(
          mine.some((c) => (c.exp_alerts ?? []).length > 0),
          `${r.alert} fires in some case`,
        ).toBe(true);
        expect(
          mine.some((c) => (c.exp_alerts ?? []).length === 0),
          `${r.alert} is silent in some case`,
        ).toBe(true);
      }
    }
  });

  it('promtool test rules: every case passes', async () => {
    const r = await promtool(['test', 'rules', ...TEST_FILES.map((f) => `tests/${f}`)], PROM);
    expect(r.out).not.toMatch(/FAILED/);
    expect(r.code).toBe(0);
    expect(r.out.match(/SUCCESS/g)).toHaveLength(TEST_FILES.length);
  });

  it('negative control: a rule that no longer fires (threshold broken) fails its unit test, naming the alert', async () => {
    const dir = brokenCopy((s) => s.replace('expr: min by (instance) (ingest_kafka_ready) == 0', 'expr: min by (instance) (ingest_kafka_ready) == 2'));
    const r = await promtool(['test', 'rules', 'tests/telemetry-ingest.test.yml'], dir);
    expect(r.code).not.toBe(0);
    expect(r.out).toMatch(/FAILED[\s\S]*alertname: IngestKafkaNotReady/);
  });

  it('negative control: the token-list alert watching the wrong result fails its unit test, naming the alert', async () => {
    const dir = brokenCopy((s) =>
      s.replace('increase(answers_tokens_reloads_total{result="failed"}[15m]) > 0', 'increase(answers_tokens_reloads_total{result="ok"}[15m]) > 0'),
    );
    const r = await promtool(['test', 'rules', 'tests/telemetry-answers.test.yml'], dir);
    expect(r.code).not.toBe(0);
    expect(r.out).toMatch(/FAILED[\s\S]*alertname: AnswersTokensReloadFailed/);
  });

  it('negative control: a rule that fires too eagerly fails its silent case', async () => {
    const dir = brokenCopy((s) =>
      s.replace('nodejs_eventloop_lag_p99_seconds{service=~"ingest|aggregator"}) > 0.5', 'nodejs_eventloop_lag_p99_seconds) > 0.5'),
    );
    const r = await promtool(['test', 'rules', 'tests/telemetry-processes.test.yml'], dir);
    expect(r.code).not.toBe(0);
    expect(r.out).toMatch(/FAILED[\s\S]*ServiceEventLoopLagHigh silent/);
  });

  it('promtool check config accepts the compose configuration and the one stack:up -- --monitoring generates', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'prom-config-'));
    scratch.push(dir);
    // The compose file loads the rules from the container's /etc/prometheus and the CA from the secrets
    // volume: pointed at the repo's copy and a scratch CA file here (promtool reads both).
    writeFileSync(join(dir, 'ca.pem'), '');
    const compose = readFileSync(join(PROM, 'prometheus.yml'), 'utf8')
      .replace('/etc/prometheus/alerts.yml', join(PROM, 'alerts.yml'))
      .replaceAll('/etc/prometheus/tls/ca.pem', join(dir, 'ca.pem'));
    // ingest and the answer service are scraped over HTTPS with the CA
    expect(compose.split(join(dir, 'ca.pem')).length - 1).toBe(2);
    writeFileSync(join(dir, 'compose.yml'), compose);
    writeFileSync(join(dir, 'local.yml'), prometheusConfig(prometheusPaths(loadStackConfig({ STACK_HOME: dir }))));
    for (const f of ['compose.yml', 'local.yml']) {
      const r = await promtool(['check', 'config', f], dir);
      expect(r.out, f).toMatch(/SUCCESS/);
      expect(r.code, f).toBe(0);
    }
    // negative control: a scrape job without a name is refused by the same check
    writeFileSync(join(dir, 'broken.yml'), compose.replace('job_name: ingest', 'job_nam: ingest'));
    expect((await promtool(['check', 'config', 'broken.yml'], dir)).code).not.toBe(0);
  });

  it('negative control: a rule with a PromQL error fails the check', async () => {
    const dir = brokenCopy((s) => s.replace('expr: max(aggregator_consumer_paused) == 1', 'expr: max(aggregator_consumer_paused == 1'));
    const r = await promtool(['check', 'rules', 'alerts.yml'], dir);
    expect(r.code).not.toBe(0);
    expect(r.out).toMatch(/FAILED/);
  });
});
