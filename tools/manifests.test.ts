// Every deployment manifest checked against the code (no Docker engine or cluster runs here): settings,
// ports, probe paths, metrics. Each check also runs on a broken copy and must fail (negative control).
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Session } from 'chdb';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { runMigrations } from '../aggregator/migrate.ts';
import { aggregatorSettings } from '../aggregator/config.ts';
import { createAggregatorMetrics } from '../aggregator/metrics.ts';
import { createMetrics } from '../ingest/metrics.ts';
import {
  checkCompose,
  checkEnv,
  checkK8s,
  checkPromql,
  containerEnv,
  exportedMetrics,
  opsServes,
  promqlMetricNames,
  residencyProblems,
  roleOf,
  type K8sDoc,
} from './manifest-check.ts';

const DEPLOY = fileURLToPath(new URL('../deploy/', import.meta.url));
const ROOT = join(DEPLOY, '..');
const read = (p: string) => readFileSync(join(DEPLOY, p), 'utf8');
// eslint-disable-next-line @typescript-eslint/no-explicit-any
type Obj = Record<string, any>;

let metrics: Set<string>;
beforeAll(async () => {
  metrics = await exportedMetrics();
});

// --- Prometheus -----------------------------------------------------------------------------------
const promConfig = YAML.parse(read('prometheus/prometheus.yml')) as Obj;
const jobs = new Set<string>((promConfig.scrape_configs as Obj[]).map((s) => s.job_name as string));
const prometheusTargets = new Map<string, string[]>(
  (promConfig.scrape_configs as Obj[]).map((s) => [s.job_name, (s.static_configs as Obj[]).flatMap((c) => c.targets as string[])]),
);
const alerts = YAML.parse(read('prometheus/alerts.yml')) as Obj;
const rules = (alerts.groups as Obj[]).flatMap((g) => g.rules as Obj[]);

function checkAlerts(doc: Obj): string[] {
  return (doc.groups as Obj[]).flatMap((g) => (g.rules as Obj[]).flatMap((r) => checkPromql(r.expr, `alert ${r.alert}`, { metrics, jobs })));
}

// Metrics of kube-state-metrics the Kubernetes-only rules use (not ours: listed here by name, each one a
// documented kube-state-metrics series).
const KUBE_STATE_METRICS = new Set(['kube_cronjob_status_last_successful_time']);
const k8sAlerts = YAML.parse(read('prometheus/alerts-k8s.yml')) as Obj;

describe('Prometheus alert rules', () => {
  it('the Kubernetes-only rules watch the day-secret rotation CronJob with kube-state-metrics series only', () => {
    const rs = (k8sAlerts.groups as Obj[]).flatMap((g) => g.rules as Obj[]);
    expect(rs.map((r) => r.alert)).toContain('TokenKeyRotationOverdue');
    for (const r of rs) {
      const unknown = checkPromql(r.expr, r.alert, { metrics: KUBE_STATE_METRICS, jobs });
      expect(unknown).toEqual([]);
      expect(r.expr).toContain('cronjob="token-key-rotation"');
    }
  });

  it('sanity: the metric set comes from the real registries and the PromQL reader finds names', () => {
    expect(metrics.has('ingest_events_rejected_total')).toBe(true);
    expect(metrics.has('ingest_kafka_produce_duration_seconds_bucket')).toBe(true);
    expect(metrics.has('aggregator_consumer_lag')).toBe(true);
    expect(promqlMetricNames('histogram_quantile(0.99, sum by (le, cluster) (rate(a_b_bucket{x="y"}[5m]))) > 1e-9 and on(z) c offset 1d')).toEqual([
      'a_b_bucket',
      'c',
    ]);
  });

  it('default process and Node.js metrics have their standard names and a service label naming the scrape job', async () => {
    for (const [service, registry] of [
      ['ingest', createMetrics({ defaultMetrics: true }).registry],
      ['aggregator', createAggregatorMetrics({ defaultMetrics: true }).registry],
    ] as const) {
      const text = await registry.metrics();
      registry.clear();
      expect(jobs.has(service)).toBe(true);
      expect(text).toMatch(new RegExp(`^process_resident_memory_bytes\\{service="${service}"\\} \\d+`, 'm'));
      expect(text).toMatch(new RegExp(`^nodejs_heap_size_used_bytes\\{service="${service}"\\} \\d+`, 'm'));
      // No doubled prefix (ingest_process_process_...), and every default series carries the label.
      expect(text).not.toMatch(/^\w*process_process_/m);
      const defaults = text.split('\n').filter((l) => /^(process|nodejs)_/.test(l));
      expect(defaults.length).toBeGreaterThan(10);
      for (const l of defaults) expect(l).toContain(`service="${service}"`);
    }
    expect(metrics.has('process_resident_memory_bytes') && metrics.has('nodejs_eventloop_lag_p99_seconds')).toBe(true);
  });

  it('cover the failure modes of README.md "Operations", each with a severity and a summary', () => {
    const names = rules.map((r) => r.alert as string);
    for (const want of ['IngestRejectRateSpike', 'IngestProduceErrors', 'AggregatorConsumerLagGrowing', 'AggregatorClickHouseErrors'])
      expect(names).toContain(want);
    for (const r of rules) {
      expect(['warning', 'critical'], r.alert).toContain(r.labels?.severity);
      expect(r.annotations?.summary, r.alert).toBeTruthy();
      expect(r.for, r.alert).toMatch(/^\d+[smh]$/);
    }
    expect(new Set(names).size).toBe(names.length);
  });

  it('use only exported metrics, real error codes and real scrape jobs', () => {
    expect(checkAlerts(alerts)).toEqual([]);
  });

  it('negative control: a rule on a misspelt metric, error code or job fails the same check', () => {
    const broken = structuredClone(alerts);
    broken.groups[0].rules[0].expr = 'sum(rate(ingest_events_rejectd_total[5m])) > 0';
    broken.groups[0].rules[1].expr = 'sum(rate(ingest_requests_total{code="INGEST_KAFKA_DOWN"}[5m])) > 0';
    broken.groups[0].rules[2].expr = 'up{job="ingest-workers"} == 0';
    broken.groups[0].rules[3].expr = 'max(nodejs_eventloop_lag_p99_seconds{service=~"ingest|ingester"}) > 1';
    const p = checkAlerts(broken);
    expect(p).toContainEqual(expect.stringMatching(/metric ingest_events_rejectd_total is not exported/));
    expect(p).toContainEqual(expect.stringMatching(/code="INGEST_KAFKA_DOWN" is not an ingest error code/));
    expect(p).toContainEqual(expect.stringMatching(/job="ingest-workers" is not a scrape job/));
    expect(p).toContainEqual(expect.stringMatching(/service="ingest\|ingester" names a service that is not a scrape job/));
  });
});

// --- Grafana --------------------------------------------------------------------------------------
const dashboards = readdirSync(join(DEPLOY, 'grafana/dashboards')).filter((f) => f.endsWith('.json'));
const dash = new Map(dashboards.map((f) => [f, JSON.parse(read(`grafana/dashboards/${f}`)) as Obj]));
const datasources = YAML.parse(read('grafana/provisioning/datasources/datasources.yaml')) as Obj;
const dsUids = new Map<string, string>((datasources.datasources as Obj[]).map((d) => [d.uid, d.type]));

function panelsOf(d: Obj): Obj[] {
  return (d.panels as Obj[]).flatMap((p) => (p.type === 'row' ? (p.panels ?? []) : [p]));
}

function checkDashboard(d: Obj, name: string): string[] {
  const problems: string[] = [];
  for (const p of panelsOf(d)) {
    for (const t of p.targets ?? []) {
      const ds = t.datasource ?? p.datasource;
      if (dsUids.get(ds?.uid) !== ds?.type) problems.push(`${name} panel "${p.title}": data source ${ds?.uid}/${ds?.type} is not provisioned`);
      if (ds?.type === 'prometheus') problems.push(...checkPromql(t.expr ?? '', `${name} panel "${p.title}"`, { metrics, jobs }));
    }
  }
  return problems;
}

describe('Grafana', () => {
  it('provisions Prometheus and ClickHouse (the grafana-clickhouse-datasource plugin) and loads the dashboards folder', () => {
    expect([...dsUids.values()].sort()).toEqual(['grafana-clickhouse-datasource', 'prometheus']);
    const providers = YAML.parse(read('grafana/provisioning/dashboards/dashboards.yaml')) as Obj;
    expect(providers.providers[0].options.path).toBe('/var/lib/grafana/dashboards');
  });

  it('dashboards are valid JSON with unique uids and the panels operators and analysts need', () => {
    const titles = [...dash.values()].flatMap((d) => panelsOf(d).map((p) => p.title as string));
    for (const want of [
      'Ingest throughput',
      'Rejects by reason',
      'Produce latency',
      'Consumer lag',
      'Daily active devices by app',
      'Crash-free devices by app version (%)',
      'Crashes per 1,000 sessions by app version',
    ]) {
      expect(titles).toContain(want);
    }
    const uids = [...dash.values()].map((d) => d.uid);
    expect(new Set(uids).size).toBe(uids.length);
    for (const d of dash.values()) expect(new Set(panelsOf(d).map((p) => p.id)).size).toBe(panelsOf(d).length);
  });

  it('Prometheus panels use only exported metrics', () => {
    for (const [f, d] of dash) expect(checkDashboard(d, f)).toEqual([]);
  });

  it('negative control: a panel on a metric that does not exist fails the same check', () => {
    const [f, d] = [...dash].find(([, x]) => panelsOf(x).some((p) => p.datasource?.type === 'prometheus'))!;
    const broken = structuredClone(d);
    panelsOf(broken).find((p) => p.datasource?.type === 'prometheus')!.targets[0].expr = 'sum(rate(ingest_bytes_total[5m]))';
    expect(checkDashboard(broken, f)).toContainEqual(expect.stringMatching(/metric ingest_bytes_total is not exported/));
  });

  describe('ClickHouse panels run against the aggregator schema (migrations applied in chdb)', () => {
    let dir: string;
    let session: Session;
    const db = aggregatorSettings.AGGREGATOR_DATABASE.default;
    beforeAll(async () => {
      dir = mkdtempSync(join(tmpdir(), 'grafana-sql-'));
      session = new Session(dir);
      await runMigrations(
        {
          exec: async (sql) => void session.query(sql, 'TabSeparated'),
          rows: async <T>(sql: string) =>
            session
              .query(sql, 'JSONEachRow')
              .split('\n')
              .filter(Boolean)
              .map((l) => JSON.parse(l) as T),
        },
        { database: db, minGroupDevices: 5 },
      );
    });
    afterAll(() => {
      session?.cleanup?.();
      rmSync(dir, { recursive: true, force: true });
    });
    // The plugin's macro, expanded as the plugin would for a 30-day range.
    const expand = (sql: string) => sql.replace(/\$__dateFilter\((\w+)\)/g, "$1 >= toDate('2026-11-01') AND $1 <= toDate('2026-11-30')");
    const run = (sql: string): string => {
      try {
        session.query(expand(sql), 'JSONEachRow');
        return '';
      } catch (e) {
        return (e as Error).message;
      }
    };

    it('every SQL target runs (tables, views and columns exist)', () => {
      const sqls = [...dash.values()].flatMap((d) =>
        panelsOf(d).flatMap((p) => (p.targets ?? []).filter((t: Obj) => t.rawSql).map((t: Obj) => t.rawSql as string)),
      );
      expect(sqls.length).toBeGreaterThanOrEqual(3);
      for (const s of sqls) {
        expect(s).toMatch(new RegExp(`FROM ${db}\\.(daily_active_devices_by_app|crash_rates_by_app_version)\\b`));
        expect(run(s), s).toBe('');
      }
    });

    it('negative control: a query on a column the views do not have fails', () => {
      expect(run(`SELECT sum(active_users) FROM ${db}.daily_active_devices WHERE $__dateFilter(day)`)).toMatch(/active_users/);
    });
  });
});

// --- Kubernetes -----------------------------------------------------------------------------------
const kustomization = YAML.parse(read('k8s/kustomization.yaml')) as Obj;
const k8sDocs: K8sDoc[] = (kustomization.resources as string[]).flatMap((f) =>
  YAML.parseAllDocuments(read(`k8s/${f}`)).map((d) => {
    if (d.errors.length) throw new Error(`k8s/${f}: ${d.errors[0]!.message}`);
    return { file: f, doc: d.toJS() as Obj };
  }),
);

describe('Kubernetes manifests', () => {
  it('every manifest file is listed in the kustomization (none is forgotten by kubectl apply -k)', () => {
    const files = readdirSync(join(DEPLOY, 'k8s')).filter((f) => f.endsWith('.yaml') && f !== 'kustomization.yaml');
    expect([...(kustomization.resources as string[])].sort()).toEqual(files.sort());
    for (const { file, doc } of k8sDocs) {
      expect(doc.apiVersion, file).toBeTruthy();
      expect(doc.kind, file).toBeTruthy();
      expect(doc.metadata?.name, file).toBeTruthy();
    }
  });

  it('have what a deployment needs: ingest Deployment + Service + HPA + PDB, aggregator, ConfigMaps, the day-secret Secret', () => {
    const kinds = k8sDocs.map((d) => `${d.doc.kind}/${d.doc.metadata.name}`);
    for (const want of [
      'Deployment/ingest',
      'Service/ingest',
      'HorizontalPodAutoscaler/ingest',
      'PodDisruptionBudget/ingest',
      'Deployment/aggregator',
      'Service/aggregator-metrics',
      'Secret/telemetry-token-keys',
      'ConfigMap/telemetry-ingest',
      'ConfigMap/telemetry-aggregator',
      'ConfigMap/telemetry-pipeline',
      'CronJob/token-key-rotation',
      'Job/telemetry-topics',
    ]) {
      expect(kinds).toContain(want);
    }
  });

  it('pass every check against the code: settings, ports, probe paths, drain time, security context, selectors', () => {
    expect(checkK8s(k8sDocs, { jobs })).toEqual([]);
  });

  it('negative control: a ConfigMap naming a setting that does not exist fails the same check', () => {
    const broken = structuredClone(k8sDocs);
    broken.find((d) => d.doc.kind === 'ConfigMap' && d.doc.metadata.name === 'telemetry-ingest')!.doc.data.INGEST_MAX_BODY_BYTE = '1048576';
    expect(checkK8s(broken, { jobs })).toContainEqual(
      expect.stringMatching(/INGEST_MAX_BODY_BYTE is not a known setting \(did you mean INGEST_MAX_BODY_BYTES\?\)/),
    );
  });

  it('negative controls: an invalid value, a wrong probe path or port, a short grace period, a test-only switch', () => {
    const broken = structuredClone(k8sDocs);
    const cm = broken.find((d) => d.doc.metadata.name === 'telemetry-aggregator')!.doc;
    cm.data.AGGREGATOR_CLICKHOUSE = 'embeded';
    const ingest = broken.find((d) => d.doc.kind === 'Deployment' && d.doc.metadata.name === 'ingest')!.doc;
    const c = ingest.spec.template.spec.containers[0];
    c.readinessProbe.httpGet.path = '/ready';
    c.livenessProbe.httpGet.port = 8080;
    ingest.spec.template.spec.terminationGracePeriodSeconds = 20;
    c.env = [
      { name: 'INGEST_UNSAFE_ACK_BEFORE_PRODUCE', value: 'false' },
      { name: 'INGEST_HOST', value: '127.0.0.1' },
    ];
    const p = checkK8s(broken, { jobs });
    expect(p).toContainEqual(expect.stringMatching(/AGGREGATOR_CLICKHOUSE="embeded": expected one of server, embedded/));
    expect(p).toContainEqual(expect.stringMatching(/readinessProbe path \/ready is not served/));
    expect(p).toContainEqual(expect.stringMatching(/livenessProbe port 8080 is not the port the service listens on/));
    expect(p).toContainEqual(expect.stringMatching(/terminationGracePeriodSeconds 20 is not longer than preStop 5 s \+ drain 20 s/));
    expect(p).toContainEqual(expect.stringMatching(/INGEST_UNSAFE_ACK_BEFORE_PRODUCE is a test\/debug-only setting/));
    expect(p).toContainEqual(expect.stringMatching(/INGEST_HOST=127.0.0.1 is loopback/));
  });

  it('give cn, ru and in a cluster of their own in every container that runs ingest or the topic plan, never the single-cluster switch', () => {
    const runs = k8sDocs.flatMap(({ file, doc }) =>
      ((doc.spec?.template?.spec?.containers ?? []) as Obj[]).flatMap((c) => {
        const role = roleOf([...(c.command ?? []), ...(c.args ?? [])]);
        return role === 'ingest' || role === 'topics'
          ? [{ where: `${file} ${doc.kind}/${doc.metadata.name}`, role, env: containerEnv(k8sDocs, c, file).env }]
          : [];
      }),
    );
    expect(runs.map((r) => `${r.where} ${r.role}`).sort()).toEqual(['ingest.yaml Deployment/ingest ingest', 'topics-job.yaml Job/telemetry-topics topics']);
    for (const r of runs) {
      for (const zone of ['CN', 'RU', 'IN']) expect(String(r.env[`INGEST_ZONE_BROKERS_${zone}`]), `${r.where} ${zone}`).toMatch(/^\S+:\d+(,\S+:\d+)*$/);
      expect(r.env.INGEST_ZONES_SHARE_MAIN_CLUSTER, r.where).toBeUndefined();
      expect(residencyProblems(r.role, r.env, r.where)).toEqual([]);
    }
  });

  it.each(['CN', 'RU', 'IN'])(
    'negative control: the ingest ConfigMap without INGEST_ZONE_BROKERS_%s is reported, naming that zone, for ingest and the topic plan',
    (zone) => {
      const broken = structuredClone(k8sDocs);
      delete broken.find((d) => d.doc.kind === 'ConfigMap' && d.doc.metadata.name === 'telemetry-ingest')!.doc.data[`INGEST_ZONE_BROKERS_${zone}`];
      const p = checkK8s(broken, { jobs }).filter((x) => x.includes('residency'));
      const named = new RegExp(`residency \\(policy section 6\\): INGEST_ZONE_BROKERS_${zone} is empty \\(zone ${zone.toLowerCase()}, `);
      expect(p).toEqual([
        expect.stringMatching(new RegExp(`^topics-job.yaml Job/telemetry-topics container topic-plan: ${named.source}`)),
        expect.stringMatching(new RegExp(`^ingest.yaml Deployment/ingest container ingest: ${named.source}`)),
      ]);
      for (const other of ['CN', 'RU', 'IN'].filter((z) => z !== zone)) expect(p.join('\n')).not.toContain(`INGEST_ZONE_BROKERS_${other}`);
    },
  );

  it('ingest seals personal records in every manifest: each zone has its key store; without one the manifest is reported (negative control)', () => {
    expect(checkK8s(k8sDocs, { jobs }).filter((x) => x.includes('sealing'))).toEqual([]);
    const broken = structuredClone(k8sDocs);
    delete broken.find((d) => d.doc.kind === 'ConfigMap' && d.doc.metadata.name === 'telemetry-ingest')!.doc.data.INGEST_KEYSTORE_RU;
    expect(checkK8s(broken, { jobs }).filter((x) => x.includes('sealing'))).toEqual([
      expect.stringMatching(/^ingest.yaml Deployment\/ingest container ingest: sealing .*INGEST_KEYSTORE_RU empty/),
    ]);
  });

  it('negative control: a zone list pointed at the main cluster is the same silent fallback, and is reported', () => {
    const broken = structuredClone(k8sDocs);
    const main = broken.find((d) => d.doc.metadata.name === 'telemetry-pipeline')!.doc.data.PIPELINE_KAFKA_BROKERS as string;
    broken.find((d) => d.doc.metadata.name === 'telemetry-ingest')!.doc.data.INGEST_ZONE_BROKERS_IN = main;
    expect(checkK8s(broken, { jobs })).toContainEqual(
      expect.stringMatching(
        /^ingest.yaml Deployment\/ingest container ingest: residency .*INGEST_ZONE_BROKERS_IN names kafka-0\.kafka:9092,.* \(zone in, India\)/,
      ),
    );
  });

  it("the key-rotation script keeps keys one hour inside ingest's grace, and ingest mounts them read-only", () => {
    const script = k8sDocs.find((d) => d.doc.kind === 'ConfigMap' && d.doc.metadata.name === 'token-key-rotation')!.doc.data['rotate.sh'] as string;
    expect(script).toMatch(/47 \* 3600/);
    expect(script).toMatch(/head -c 32 \/dev\/urandom/); // schemas/tokenizer.ts reads exactly 32 bytes
    const role = k8sDocs.find((d) => d.doc.kind === 'Role' && d.doc.metadata.name === 'token-key-rotation')!.doc;
    expect(role.rules).toEqual([{ apiGroups: [''], resources: ['secrets'], resourceNames: ['telemetry-token-keys'], verbs: ['get', 'patch'] }]);
    const ingest = k8sDocs.find((d) => d.doc.kind === 'Deployment' && d.doc.metadata.name === 'ingest')!.doc;
    expect(ingest.spec.template.spec.containers[0].volumeMounts).toContainEqual(expect.objectContaining({ name: 'token-keys', readOnly: true }));
  });
});

// --- Compose --------------------------------------------------------------------------------------
const compose = YAML.parse(read('compose/compose.yaml'), { merge: true }) as Obj;

describe('compose', () => {
  it('has a three-broker KRaft Kafka, ClickHouse, two ingest workers, the aggregator, Prometheus and Grafana', () => {
    const s = compose.services as Obj;
    const kafka = Object.entries(s).filter(([, v]) => String((v as Obj).image).startsWith('apache/kafka:4'));
    expect(kafka.map(([k]) => k).sort()).toEqual(['kafka-1', 'kafka-2', 'kafka-3']);
    for (const [, v] of kafka) {
      expect((v as Obj).environment.KAFKA_PROCESS_ROLES).toMatch(/controller/);
      expect((v as Obj).environment.KAFKA_CONTROLLER_QUORUM_VOTERS.split(',')).toHaveLength(3);
      expect((v as Obj).environment.KAFKA_MIN_INSYNC_REPLICAS).toBe(2);
    }
    expect(new Set(kafka.map(([, v]) => (v as Obj).environment.KAFKA_NODE_ID)).size).toBe(3);
    expect(Object.values(s).filter((v) => roleOf((v as Obj).command ?? []) === 'ingest')).toHaveLength(2);
    for (const want of ['clickhouse', 'aggregator', 'prometheus', 'grafana', 'topics']) expect(Object.keys(s)).toContain(want);
    expect(s.grafana.environment.GF_INSTALL_PLUGINS).toContain('grafana-clickhouse-datasource');
  });

  it('pass every check against the code: settings, ports, healthchecks, drain, scrape targets', () => {
    expect(checkCompose(compose, { jobs, prometheusTargets })).toEqual([]);
  });

  it('a single-cluster setup: ingest and the topic plan share the one cluster only through the explicit switch', () => {
    const s = compose.services as Obj;
    const runs = Object.entries(s).filter(([, v]) => ['ingest', 'topics'].includes(roleOf((v as Obj).command ?? []) ?? ''));
    expect(runs.map(([k]) => k).sort()).toEqual(['ingest-1', 'ingest-2', 'topics']);
    for (const [name, v] of runs) {
      expect((v as Obj).environment.INGEST_ZONES_SHARE_MAIN_CLUSTER, name).toBe('true');
      expect(
        Object.keys((v as Obj).environment).filter((k) => k.startsWith('INGEST_ZONE_BROKERS_')),
        name,
      ).toEqual([]);
    }
    // ...said loudly in the file itself.
    expect(read('compose/compose.yaml')).toMatch(/SINGLE-CLUSTER DEVELOPMENT SETUP: THE RESIDENCY OF POLICY SECTION 6 IS NOT KEPT HERE/);
  });

  it('negative control: without the switch, each worker and the topic plan are reported, naming the three zones', () => {
    const broken = structuredClone(compose);
    for (const name of ['ingest-1', 'ingest-2', 'topics']) {
      const { INGEST_ZONES_SHARE_MAIN_CLUSTER: _dropped, ...rest } = broken.services[name].environment as Obj;
      broken.services[name].environment = name === 'ingest-2' ? { ...rest, INGEST_ZONES_SHARE_MAIN_CLUSTER: 'false' } : rest;
    }
    const p = checkCompose(broken, { jobs, prometheusTargets }).filter((x) => x.includes('residency'));
    const zones =
      /INGEST_ZONE_BROKERS_CN is empty \(zone cn, Mainland China\), INGEST_ZONE_BROKERS_RU is empty \(zone ru, Russia\), INGEST_ZONE_BROKERS_IN is empty \(zone in, India\)/;
    expect(p).toEqual(['topics', 'ingest-1', 'ingest-2'].map((n) => expect.stringMatching(new RegExp(`^compose service ${n}: residency .*${zones.source}`))));
  });

  it('negative control: per-zone lists with one zone left out report that zone only', () => {
    const broken = structuredClone(compose);
    const { INGEST_ZONES_SHARE_MAIN_CLUSTER: _dropped, ...rest } = broken.services['ingest-1'].environment as Obj;
    broken.services['ingest-1'].environment = { ...rest, INGEST_ZONE_BROKERS_CN: 'kafka-cn:9092', INGEST_ZONE_BROKERS_IN: 'kafka-in:9092' };
    expect(checkCompose(broken, { jobs, prometheusTargets }).filter((x) => x.includes('residency'))).toEqual([
      expect.stringMatching(/^compose service ingest-1: residency \(policy section 6\): INGEST_ZONE_BROKERS_RU is empty \(zone ru, Russia\);/),
    ]);
  });

  it('mounts files that exist', () => {
    for (const [name, svc] of Object.entries(compose.services as Obj)) {
      for (const v of ((svc as Obj).volumes ?? []) as string[]) {
        const src = v.split(':')[0]!;
        if (src.startsWith('.')) expect(existsSync(join(DEPLOY, 'compose', src)), `${name}: ${src}`).toBe(true);
      }
    }
  });

  it('negative control: a setting that does not exist, an unscraped worker and a wrong target port fail the same check', () => {
    const broken = structuredClone(compose);
    broken.services['ingest-2'].environment = { ...broken.services['ingest-2'].environment, INGEST_TOPIC: 'verify' };
    broken.services['ingest-3'] = structuredClone(broken.services['ingest-1']);
    const targets = new Map(prometheusTargets);
    targets.set('aggregator', ['aggregator:18080']);
    const p = checkCompose(broken, { jobs, prometheusTargets: targets });
    expect(p).toContainEqual(expect.stringMatching(/ingest-2: INGEST_TOPIC is not a known setting/));
    expect(p).toContainEqual(expect.stringMatching(/compose service ingest-3 is not scraped/));
    expect(p).toContainEqual(expect.stringMatching(/target aggregator:18080 is not the service port 18081/));
  });
});

// --- Dockerfile -----------------------------------------------------------------------------------
describe('Dockerfile', () => {
  const text = read('docker/Dockerfile');
  const lines = text.split('\n').filter((l) => !l.trimStart().startsWith('#'));
  const body = lines.join('\n').replace(/\\\n/g, ' ');

  it('is multi-stage, runs as a non-root user, and leaves chdb and the dev tools out of the runtime', () => {
    expect(body.match(/^FROM /gm)!.length).toBeGreaterThanOrEqual(2);
    const user = /^USER (\S+)/m.exec(body)?.[1];
    expect(user).toBeDefined();
    expect(user!.split(':')[0]).not.toMatch(/^(0|root)$/);
    expect(body).toMatch(/npm ci --omit=dev --omit=optional/);
    expect(body).toMatch(/rm -rf [^\n]*node_modules\/chdb/);
  });

  it('copies the non-TypeScript files the compiled code reads next to itself', () => {
    expect(body).toMatch(/cp -r schemas\/avro\/\. dist\/schemas\/avro\//);
    expect(body).toMatch(/cp aggregator\/migrations\/\*\.sql dist\/aggregator\/migrations\//);
  });

  it('every command it names is compiled by the build config, and every ENV it sets is a known setting', () => {
    const build = readFileSync(join(DEPLOY, 'docker/tsconfig.build.json'), 'utf8');
    const include = (JSON.parse(build.replace(/^\s*\/\/.*$/gm, '')) as Obj).include as string[];
    const commands = [/^CMD \[(.*)\]/m.exec(body)![1]!, ...Object.values(compose.services as Obj).map((s) => ((s as Obj).command ?? []).join(' '))];
    for (const cmd of commands) {
      for (const m of cmd.matchAll(/dist\/([\w/.-]+)\.js/g)) {
        const src = `${m[1]}.ts`;
        expect(existsSync(join(ROOT, src)), src).toBe(true);
        expect(
          include.some((i) => src.startsWith(i.replace(/^\.\.\/\.\.\//, ''))),
          src,
        ).toBe(true);
      }
    }
    const env: Record<string, string> = {};
    for (const m of body.matchAll(/^ENV (.*)$/gm)) for (const kv of m[1]!.matchAll(/(\w+)=(\S+)/g)) env[kv[1]!] = kv[2]!;
    expect(Object.keys(env)).toContain('INGEST_HOST');
    expect(checkEnv('ingest', Object.fromEntries(Object.entries(env).filter(([k]) => k.startsWith('INGEST_'))), 'Dockerfile ENV')).toEqual([]);
    const exposed = /^EXPOSE (.*)$/m.exec(body)![1]!.split(/\s+/).map(Number).sort();
    expect(exposed).toEqual([18080, 18081]);
  });
});

describe('checker self-tests', () => {
  it('opsServes answers for the ops routes only', () => {
    expect(['/healthz', '/readyz', '/metrics'].map(opsServes)).toEqual([true, true, true]);
    expect(['/ready', '/health', '/v1/batches'].map(opsServes)).toEqual([false, false, false]);
  });
  it('checkEnv flags a variable meant for the other service', () => {
    expect(checkEnv('aggregator', { INGEST_PORT: '1' }, 'x')).toContainEqual(expect.stringMatching(/INGEST_PORT is set on a aggregator container/));
  });
});
