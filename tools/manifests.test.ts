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
  aclCoverageProblems,
  analystLedgerWriterProblems,
  answersLedgerProblems,
  answersUserProblems,
  ANSWERS_LEDGER_TABLE,
  checkCompose,
  checkComposeSecurity,
  checkEnv,
  checkK8s,
  checkK8sSecurity,
  clientSecurityProblems,
  composeEnv,
  documentedSecrets,
  FROM_SECRET,
  kafkaBrokerProblems,
  mergeCompose,
  parseProperties,
  checkPromql,
  containerEnv,
  exportedMetrics,
  opsServes,
  promqlMetricNames,
  residencyProblems,
  roleOf,
  ROLES,
  type EnvValue,
  type K8sDoc,
} from './manifest-check.ts';
import { aclPlan, parseArgs, topicPlan } from './topic-plan.ts';
import { aclRules, type AclRule } from './security/acls.ts';
import { ingestConfigSpec } from '../ingest/config.ts';
import { loadConfig } from '../runtime/config.ts';
import { loadStackConfig } from '../stack/config.ts';
import { defaultPipelineTopics, secureServiceEnv } from '../stack/secure.ts';
import { DEFAULT_LAYOUT, ledgerTableSql } from '../stack/clickhouse-users.ts';

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
const prometheusSchemes = new Map<string, string>((promConfig.scrape_configs as Obj[]).map((s) => [s.job_name, s.scheme ?? 'http']));
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
    for (const [name, v] of kafka) {
      // broker.sh builds each node's properties from this file (kafka/broker.sh), plus its id and host.
      const props = parseProperties(read(`compose/kafka/${(v as Obj).environment.KAFKA_PROPERTIES_FILE}`));
      expect(props['process.roles']).toMatch(/controller/);
      expect(props['controller.quorum.voters']!.split(',')).toEqual(['1@kafka-1:9093', '2@kafka-2:9093', '3@kafka-3:9093']);
      expect(props['min.insync.replicas']).toBe('2');
      expect((v as Obj).environment.KAFKA_ADVERTISED_HOST).toBe(name);
      expect((v as Obj).command).toEqual(['/bin/sh', '/etc/telemetry/kafka/broker.sh']);
    }
    expect(new Set(kafka.map(([, v]) => (v as Obj).environment.KAFKA_NODE_ID)).size).toBe(3);
    expect(Object.values(s).filter((v) => roleOf((v as Obj).command ?? []) === 'ingest')).toHaveLength(2);
    for (const want of ['clickhouse', 'aggregator', 'prometheus', 'grafana', 'topics']) expect(Object.keys(s)).toContain(want);
    expect(s.grafana.environment.GF_INSTALL_PLUGINS).toContain('grafana-clickhouse-datasource');
  });

  it('pass every check against the code: settings, ports, healthchecks, drain, scrape targets', () => {
    expect(checkCompose(compose, { jobs, prometheusTargets, prometheusSchemes })).toEqual([]);
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
    const p = checkCompose(broken, { jobs, prometheusTargets, prometheusSchemes }).filter((x) => x.includes('residency'));
    const zones =
      /INGEST_ZONE_BROKERS_CN is empty \(zone cn, Mainland China\), INGEST_ZONE_BROKERS_RU is empty \(zone ru, Russia\), INGEST_ZONE_BROKERS_IN is empty \(zone in, India\)/;
    expect(p).toEqual(['topics', 'ingest-1', 'ingest-2'].map((n) => expect.stringMatching(new RegExp(`^compose service ${n}: residency .*${zones.source}`))));
  });

  it('negative control: per-zone lists with one zone left out report that zone only', () => {
    const broken = structuredClone(compose);
    const { INGEST_ZONES_SHARE_MAIN_CLUSTER: _dropped, ...rest } = broken.services['ingest-1'].environment as Obj;
    broken.services['ingest-1'].environment = { ...rest, INGEST_ZONE_BROKERS_CN: 'kafka-cn:9092', INGEST_ZONE_BROKERS_IN: 'kafka-in:9092' };
    expect(checkCompose(broken, { jobs, prometheusTargets, prometheusSchemes }).filter((x) => x.includes('residency'))).toEqual([
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

// --- Secure by default ----------------------------------------------------------------------------
// What users deploy runs authenticated, authorised and encrypted (deploy/THREAT-MODEL.md): every check
// below also runs on a broken copy and must report it (negative control).
const composeText = read('compose/compose.yaml');
const readCompose = (rel: string) => read(`compose/${rel}`);
const devText = read('compose/compose.dev-plaintext.yaml');
const devOverride = YAML.parse(devText, { merge: true }) as Obj;
const k8sReadme = read('k8s/README.md');

describe('compose is secure by default', () => {
  const input = () => ({ doc: structuredClone(compose), text: composeText, readFile: readCompose });

  it('passes every security check: Kafka SASL_SSL/SCRAM-SHA-512 only with deny-by-default ACLs, TLS to ClickHouse and ingest, own principals, no default password', () => {
    expect(checkComposeSecurity(input())).toEqual([]);
  });

  it('negative controls: a plaintext client or controller listener, an open authorizer, an extra super user are reported', () => {
    const props = readCompose('kafka/server.properties');
    const withProps = (edit: (s: string) => string) => ({
      ...input(),
      readFile: (rel: string) => (rel === 'kafka/server.properties' ? edit(props) : readCompose(rel)),
    });
    const p1 = checkComposeSecurity(withProps((s) => s.replace('INTERNAL:SASL_SSL,CONTROLLER:SASL_SSL', 'INTERNAL:PLAINTEXT,CONTROLLER:SASL_PLAINTEXT')));
    expect(p1).toContainEqual(expect.stringMatching(/kafka-1 .*listener INTERNAL is PLAINTEXT/));
    expect(p1).toContainEqual(expect.stringMatching(/kafka-3 .*listener CONTROLLER is SASL_PLAINTEXT/));
    // A listener left out of the map is PLAINTEXT by its name.
    expect(checkComposeSecurity(withProps((s) => s.replace('listeners=INTERNAL://:9092,', 'listeners=PLAINTEXT://:9094,INTERNAL://:9092,')))).toContainEqual(
      expect.stringMatching(/listener PLAINTEXT is PLAINTEXT/),
    );
    const p2 = checkComposeSecurity(
      withProps((s) =>
        s
          .replace('allow.everyone.if.no.acl.found=false', 'allow.everyone.if.no.acl.found=true')
          .replace('super.users=User:broker;User:operator', 'super.users=User:broker;User:operator;User:ingest')
          .replace('sasl.enabled.mechanisms=SCRAM-SHA-512', 'sasl.enabled.mechanisms=SCRAM-SHA-512,PLAIN'),
      ),
    );
    expect(p2).toContainEqual(expect.stringMatching(/allow.everyone.if.no.acl.found=true, expected false/));
    expect(p2).toContainEqual(expect.stringMatching(/super.users names User:ingest/));
    expect(p2).toContainEqual(expect.stringMatching(/sasl.enabled.mechanisms=SCRAM-SHA-512,PLAIN, expected SCRAM-SHA-512 only/));
    expect(checkComposeSecurity(withProps((s) => s.replace(/^authorizer.class.name=.*$/m, '')))).toContainEqual(
      expect.stringMatching(/authorizer.class.name=\(unset\), expected the KRaft StandardAuthorizer/),
    );
    expect(kafkaBrokerProblems(parseProperties(`${props}\nlistener.name.internal.scram-sha-512.sasl.jaas.config=x password="p";`), 'x')).toContainEqual(
      expect.stringMatching(/holds a password/),
    );
  });

  it('negative controls: a default or literal password, an env-sourced secret are reported', () => {
    const bad = input();
    bad.text = `${composeText}\n# CLICKHOUSE_PASSWORD: \${CLICKHOUSE_AGGREGATOR_PASSWORD:-aggregator-local-only}\n`;
    bad.doc.services.grafana.environment.GF_SECURITY_ADMIN_PASSWORD = 'admin';
    bad.doc.secrets = { keystore_password: { environment: 'KEYSTORE_PASSWORD' } };
    const p = checkComposeSecurity(bad);
    expect(p).toContainEqual(
      expect.stringMatching(/\$\{CLICKHOUSE_AGGREGATOR_PASSWORD:-aggregator-local-only\} gives CLICKHOUSE_AGGREGATOR_PASSWORD a default value/),
    );
    expect(p).toContainEqual(expect.stringMatching(/grafana: GF_SECURITY_ADMIN_PASSWORD is given as a value/));
    expect(p).toContainEqual(expect.stringMatching(/secret keystore_password comes from the environment variable KEYSTORE_PASSWORD/));
    // compose's escape for the container's shell is no default.
    expect(checkComposeSecurity({ ...input(), text: 'test: ["CMD-SHELL", "x $${KAFKA_ADVERTISED_HOST:-y}"]' })).toEqual([]);
  });

  it('negative controls: plaintext Kafka or ClickHouse in a service, ingest without TLS, an unmounted password file, a shared password volume, no --acls', () => {
    const bad = input();
    const s = bad.doc.services;
    s.aggregator.environment.PIPELINE_KAFKA_SECURITY = 'plaintext';
    s.aggregator.environment.AGGREGATOR_CLICKHOUSE_URL = 'http://clickhouse:8123';
    delete s['ingest-1'].environment.INGEST_TLS_KEY_FILE;
    s['ingest-2'].environment = { ...s['ingest-2'].environment, PIPELINE_KAFKA_SASL_PASSWORD_FILE: '/run/telemetry/aggregator/kafka.password' };
    s['ingest-2'].volumes = [...s['ingest-2'].volumes, 'secrets-aggregator:/run/telemetry/aggregator:ro'];
    s.topics.environment.PIPELINE_KAFKA_SASL_PASSWORD_FILE = '/etc/operator.password';
    s.topics.command = ['dist/tools/topic-plan.js', '--apply', '--partitions', '6'];
    const p = checkComposeSecurity(bad);
    expect(p).toContainEqual(expect.stringMatching(/service aggregator: PIPELINE_KAFKA_SECURITY=plaintext, expected sasl_ssl/));
    expect(p).toContainEqual(expect.stringMatching(/service aggregator: AGGREGATOR_CLICKHOUSE_URL=http:\/\/clickhouse:8123 is not https/));
    expect(p).toContainEqual(expect.stringMatching(/service ingest-1: ingest does not serve HTTPS/));
    expect(p).toContainEqual(expect.stringMatching(/volume secrets-aggregator holds the Kafka password of (ingest and aggregator|aggregator and ingest)/));
    expect(p).toContainEqual(expect.stringMatching(/service topics: PIPELINE_KAFKA_SASL_PASSWORD_FILE=\/etc\/operator.password is on no mounted volume/));
    expect(p).toContainEqual(expect.stringMatching(/service topics: the topic plan runs without --acls/));
  });

  it('negative controls: ClickHouse with a published or plaintext port, image-made users, or on the outside network', () => {
    const bad = input();
    const ch = bad.doc.services.clickhouse;
    ch.ports = ['8123:8123'];
    ch.networks = ['backend', 'edge'];
    ch.environment = { CLICKHOUSE_PASSWORD: '' };
    const p = checkComposeSecurity({ ...bad, readFile: (rel: string) => readCompose(rel).replace('<http_port remove="1" />', '') });
    expect(p).toContainEqual(expect.stringMatching(/clickhouse: publishes \["8123:8123"\]/));
    expect(p).toContainEqual(expect.stringMatching(/clickhouse: must be on internal networks only/));
    expect(p).toContainEqual(expect.stringMatching(/clickhouse: CLICKHOUSE_PASSWORD makes the image write a user/));
    expect(p).toContainEqual(expect.stringMatching(/clickhouse: the plaintext http_port is not removed/));
  });

  it('negative control: an ingest healthcheck over plain HTTP is reported (ingest serves HTTPS only)', () => {
    const bad = structuredClone(compose);
    bad.services['ingest-1'].healthcheck.test = ['CMD', '/nodejs/bin/node', '-e', "fetch('http://127.0.0.1:18080/readyz')"];
    expect(checkCompose(bad, { jobs, prometheusTargets })).toContainEqual(
      expect.stringMatching(/ingest-1: ingest serves HTTPS .*the healthcheck asks over http/),
    );
  });

  it('Prometheus scrapes ingest over HTTPS with the CA, Grafana reads ClickHouse over HTTPS with the CA', () => {
    const ingestJob = (promConfig.scrape_configs as Obj[]).find((j) => j.job_name === 'ingest')!;
    expect(ingestJob.scheme).toBe('https');
    expect(composeMountOfTarget('prometheus', ingestJob.tls_config.ca_file)).toBe('secrets-prometheus');
    const ch = (datasources.datasources as Obj[]).find((d) => d.type === 'grafana-clickhouse-datasource')!;
    expect(ch.jsonData).toMatchObject({ port: 8443, secure: true, tlsAuthWithCACert: true });
    expect(ch.jsonData.tlsSkipVerify).not.toBe(true);
    const file = /^\$__file\{(.+)\}$/.exec(ch.secureJsonData.tlsCACert)?.[1];
    expect(file && composeMountOfTarget('grafana', file)).toBe('secrets-grafana');
  });
});

/** Which compose volume a service has mounted over a path. */
function composeMountOfTarget(service: string, path: string): string | undefined {
  const vols = ((compose.services as Obj)[service].volumes as string[]).map((v) => v.split(':'));
  return vols.filter(([, t]) => path.startsWith(`${t}/`)).sort((a, b) => b[1]!.length - a[1]!.length)[0]?.[0];
}

describe('the compose development switch (compose.dev-plaintext.yaml)', () => {
  const merged = mergeCompose(compose, devOverride);

  it('is named loudly, in itself and in compose.yaml', () => {
    expect(devText).toMatch(/^# !!! DEVELOPMENT SWITCH - INSECURE - NEVER FOR ANYTHING OTHERS CAN REACH !!!/);
    expect(composeText).toMatch(/!!! DEVELOPMENT SWITCH: compose.dev-plaintext.yaml turns Kafka into PLAINTEXT WITHOUT AUTHENTICATION/);
    expect(read('compose/kafka/server.dev-plaintext.properties')).toMatch(/^# !!! DEVELOPMENT ONLY .*PLAINTEXT Kafka, NO AUTHENTICATION, NO ACLS !!!/);
  });

  it('is where the plaintext setup lives: layered over compose.yaml, the security checks report it (and compose.yaml alone passes them)', () => {
    const p = checkComposeSecurity({ doc: merged, text: `${composeText}\n${devText}`, readFile: readCompose });
    expect(p).toContainEqual(expect.stringMatching(/kafka-1 \(kafka\/server.dev-plaintext.properties\): listener INTERNAL is PLAINTEXT/));
    expect(p).toContainEqual(expect.stringMatching(/allow.everyone.if.no.acl.found=\(unset\)/));
    expect(p).toContainEqual(expect.stringMatching(/service ingest-1: PIPELINE_KAFKA_SECURITY=plaintext, expected sasl_ssl/));
    expect(p).toContainEqual(expect.stringMatching(/service aggregator: AGGREGATOR_UNSAFE_PLAINTEXT_CLICKHOUSE=true/));
    expect(p).toContainEqual(expect.stringMatching(/service topics: the topic plan runs without --acls/));
  });

  it('keeps the generated secrets and ingest over HTTPS: no default password, no plaintext ingest', () => {
    expect(
      checkComposeSecurity({ doc: merged, text: devText, readFile: readCompose }).filter((x) =>
        /default value|given as a value|ingest does not serve HTTPS|INGEST_TLS/.test(x),
      ),
    ).toEqual([]);
    for (const name of ['ingest-1', 'ingest-2']) expect(merged.services[name].environment.INGEST_TLS_CERT_FILE).toBe('/run/telemetry/ingest/tls.pem');
  });

  it('negative control: the merge is compose’s (the override replaces what it names and keeps the rest)', () => {
    expect(merged.services['kafka-1'].environment).toMatchObject({ KAFKA_NODE_ID: '1', KAFKA_PROPERTIES_FILE: 'server.dev-plaintext.properties' });
    expect(merged.services.clickhouse.volumes).toContain('./clickhouse/config.d/tls.xml:/etc/clickhouse-server/config.d/tls.xml:ro');
    expect(merged.services.clickhouse.volumes).toContain('./clickhouse/config.d/dev-plaintext.xml:/etc/clickhouse-server/config.d/zz-dev-plaintext.xml:ro');
    expect(compose.services['kafka-1'].environment.KAFKA_PROPERTIES_FILE).toBe('server.properties');
  });
});

describe('Kubernetes is secure by default', () => {
  const brokenDocs = () => structuredClone(k8sDocs);
  const doc = (docs: K8sDoc[], kind: string, name: string) => docs.find((d) => d.doc.kind === kind && d.doc.metadata.name === name)!.doc;

  it('documents one `kubectl create secret` line per Secret it expects, and commits none with a value', () => {
    const secrets = documentedSecrets(k8sReadme);
    expect([...secrets.keys()].sort()).toEqual([
      'telemetry-answers-tls',
      'telemetry-answers-tokens',
      'telemetry-ca',
      'telemetry-clickhouse-aggregator',
      'telemetry-clickhouse-answers',
      'telemetry-ingest-tls',
      'telemetry-ingress-tls',
      'telemetry-kafka-aggregator',
      'telemetry-kafka-ingest',
      'telemetry-kafka-operator',
      'telemetry-keystore',
      'telemetry-rights-keys',
    ]);
    expect(k8sReadme.split('\n').filter((l) => l.startsWith('kubectl') && l.includes('--from-literal'))).toEqual([]);
    expect(existsSync(join(DEPLOY, 'k8s/secret-clickhouse.yaml'))).toBe(false);
  });

  it('passes every security check: Kafka SASL_SSL/SCRAM-SHA-512 per principal, files from Secrets, ClickHouse https, the Ingress with TLS, a default-deny NetworkPolicy', () => {
    expect(checkK8sSecurity(k8sDocs, k8sReadme)).toEqual([]);
  });

  it('negative controls: a committed Secret with a placeholder password, a secret in a ConfigMap or as an env value, an undocumented Secret', () => {
    const docs = brokenDocs();
    docs.push({
      file: 'secret-clickhouse.yaml',
      doc: { apiVersion: 'v1', kind: 'Secret', metadata: { name: 'telemetry-clickhouse' }, stringData: { AGGREGATOR_CLICKHOUSE_PASSWORD: '' } },
    });
    doc(docs, 'ConfigMap', 'telemetry-aggregator').data.AGGREGATOR_CLICKHOUSE_PASSWORD = 'changeme';
    const agg = doc(docs, 'Deployment', 'aggregator').spec.template.spec;
    agg.containers[0].env.push({ name: 'ANALYST_CLICKHOUSE_PASSWORD', value: 'x' });
    agg.volumes.find((v: Obj) => v.name === 'kafka').secret.secretName = 'telemetry-kafka-agregator';
    const p = checkK8sSecurity(docs, k8sReadme);
    expect(p).toContainEqual(expect.stringMatching(/Secret\/telemetry-clickhouse: committed with values \(AGGREGATOR_CLICKHOUSE_PASSWORD\)/));
    expect(p).toContainEqual(expect.stringMatching(/ConfigMap\/telemetry-aggregator: AGGREGATOR_CLICKHOUSE_PASSWORD is a secret given as a value/));
    expect(p).toContainEqual(expect.stringMatching(/aggregator: AGGREGATOR_CLICKHOUSE_PASSWORD is set: give the password as a file/));
    expect(p).toContainEqual(expect.stringMatching(/container aggregator: ANALYST_CLICKHOUSE_PASSWORD is given as a value/));
    expect(p).toContainEqual(
      expect.stringMatching(/mounts Secret telemetry-kafka-agregator, which is neither committed nor created by a line of deploy\/k8s\/README.md/),
    );
    // the README without a line: every Secret it created is reported where it is mounted
    const p2 = checkK8sSecurity(k8sDocs, k8sReadme.replace(/^kubectl .*telemetry-kafka-ingest.*$/m, ''));
    expect(p2).toContainEqual(expect.stringMatching(/Deployment\/ingest: volume kafka mounts Secret telemetry-kafka-ingest, which is neither/));
  });

  it('negative controls: plaintext Kafka, http ClickHouse, a password file on no Secret, a missing mechanism, the wrong principal, no --acls', () => {
    const docs = brokenDocs();
    doc(docs, 'ConfigMap', 'telemetry-pipeline').data.PIPELINE_KAFKA_SECURITY = 'plaintext';
    delete doc(docs, 'ConfigMap', 'telemetry-pipeline').data.PIPELINE_KAFKA_SASL_MECHANISM;
    doc(docs, 'ConfigMap', 'telemetry-aggregator').data.AGGREGATOR_CLICKHOUSE_URL = 'http://clickhouse.clickhouse:8123';
    const ingest = doc(docs, 'Deployment', 'ingest').spec.template.spec.containers[0];
    ingest.volumeMounts = ingest.volumeMounts.filter((m: Obj) => m.name !== 'kafka');
    const job = doc(docs, 'Job', 'telemetry-topics').spec.template.spec.containers[0];
    job.env.find((e: Obj) => e.name === 'PIPELINE_KAFKA_SASL_USERNAME').value = 'ingest';
    job.args = job.args.filter((a: string) => a !== '--acls');
    const p = checkK8sSecurity(docs, k8sReadme);
    for (const w of ['Deployment/ingest', 'Deployment/aggregator', 'Job/telemetry-topics'])
      expect(p).toContainEqual(expect.stringMatching(new RegExp(`${w} container \\S+: PIPELINE_KAFKA_SECURITY=plaintext, expected sasl_ssl`)));
    expect(p).toContainEqual(expect.stringMatching(/PIPELINE_KAFKA_SASL_MECHANISM=\(unset\), expected scram-sha-512/));
    expect(p).toContainEqual(expect.stringMatching(/aggregator: AGGREGATOR_CLICKHOUSE_URL=http:\/\/clickhouse.clickhouse:8123 is not https/));
    expect(p).toContainEqual(
      expect.stringMatching(/ingest: PIPELINE_KAFKA_SASL_PASSWORD_FILE=\/var\/run\/telemetry\/kafka\/password is on no mounted volume or Secret/),
    );
    expect(p).toContainEqual(expect.stringMatching(/topic-plan: PIPELINE_KAFKA_SASL_USERNAME=ingest, expected topics's own principal operator/));
    expect(p).toContainEqual(expect.stringMatching(/topic-plan: the topic plan runs without --acls/));
  });

  it('negative controls: the Ingress without TLS, with HTTP to the pods, unverified, or a body limit other than ingest’s; no default-deny policy', () => {
    const docs = brokenDocs();
    const ing = doc(docs, 'Ingress', 'ingest');
    ing.spec.tls = [];
    ing.metadata.annotations['nginx.ingress.kubernetes.io/backend-protocol'] = 'HTTP';
    ing.metadata.annotations['nginx.ingress.kubernetes.io/proxy-ssl-verify'] = 'off';
    ing.metadata.annotations['nginx.ingress.kubernetes.io/proxy-body-size'] = '1m';
    const withoutDeny = docs.filter((d) => d.doc.metadata?.name !== 'default-deny-ingress');
    const p = checkK8sSecurity(withoutDeny, k8sReadme);
    expect(p).toContainEqual(expect.stringMatching(/Ingress\/ingest: host telemetry.example.com has no TLS/));
    expect(p).toContainEqual(expect.stringMatching(/backend-protocol is not HTTPS/));
    expect(p).toContainEqual(expect.stringMatching(/proxy-ssl-verify is not on/));
    expect(p).toContainEqual(expect.stringMatching(/proxy-body-size 1m is not INGEST_MAX_BODY_BYTES 2097152/));
    expect(p).toContainEqual('k8s: no default-deny NetworkPolicy for ingress traffic');
    // the limit follows ingest's setting, not a number written twice
    const moved = brokenDocs();
    doc(moved, 'ConfigMap', 'telemetry-ingest').data.INGEST_MAX_BODY_BYTES = '4194304';
    expect(checkK8sSecurity(moved, k8sReadme)).toContainEqual(expect.stringMatching(/proxy-body-size 2097152 is not INGEST_MAX_BODY_BYTES 4194304/));
    expect(
      checkK8sSecurity(
        docs.filter((d) => d.doc.kind !== 'Ingress'),
        k8sReadme,
      ),
    ).toContainEqual('k8s: no Ingress in front of the ingest Service');
  });

  it('negative control: ingest probes or scrape annotation without HTTPS are reported', () => {
    const docs = brokenDocs();
    const pod = doc(docs, 'Deployment', 'ingest').spec.template;
    delete pod.spec.containers[0].readinessProbe.httpGet.scheme;
    delete pod.metadata.annotations['prometheus.io/scheme'];
    const p = checkK8s(docs, { jobs });
    expect(p).toContainEqual(expect.stringMatching(/readinessProbe asks over HTTP, but ingest serves HTTPS only/));
    expect(p).toContainEqual(expect.stringMatching(/annotate prometheus.io\/scheme: https/));
  });
});

// The ACL list: what the topic plan applies (`topic-plan --apply --acls`, tools/topic-plan.ts aclPlan over
// tools/security/acls.ts) from each manifest's own settings, equal to the one the secured local stack
// applies (stack/secure.ts), and covering every service's principal.
const ruleKey = (r: AclRule) => `${r.principal} ${r.operation} ${r.resourceType} ${r.patternType} ${r.resourceName}`;
/** The bindings `topic-plan <argv>` applies with this environment (every cluster's). */
function planRules(argv: readonly string[], env: Record<string, EnvValue>): AclRule[] {
  const args = parseArgs(argv.slice(1));
  const probe = Object.fromEntries(
    Object.entries(env).flatMap(([k, v]) => (typeof v === 'string' && ROLES.topics.prefixes.some((p) => k.startsWith(p)) ? [[k, v]] : [])),
  );
  const cfg = loadConfig(ingestConfigSpec, { prefixes: ROLES.topics.prefixes, env: probe });
  return aclPlan(topicPlan(cfg, args.options), args.acls ?? {});
}
const planAcls = (argv: readonly string[], env: Record<string, EnvValue>) => [...new Set(planRules(argv, env).map(ruleKey))].sort();
const secureStackAcls = [...new Set(aclRules({ topics: defaultPipelineTopics() }).map(ruleKey))].sort();

describe('the ACL list of what users deploy', () => {
  const composeTopics = compose.services.topics as Obj;
  const k8sJob = k8sDocs.find((d) => d.doc.kind === 'Job' && d.doc.metadata.name === 'telemetry-topics')!.doc.spec.template.spec.containers[0] as Obj;
  const k8sJobEnv = containerEnv(k8sDocs, k8sJob, 'job').env;

  it('compose and Kubernetes apply the same list as the secured local stack, derived from tools/security/acls.ts', () => {
    expect(secureStackAcls.length).toBeGreaterThan(10);
    expect(planAcls(composeTopics.command, composeEnv(composeTopics))).toEqual(secureStackAcls);
    expect(planAcls(k8sJob.args, k8sJobEnv)).toEqual(secureStackAcls);
  });

  it('negative control: a topics one-shot that names another events topic plans a different list', () => {
    const env = { ...composeEnv(composeTopics), PIPELINE_TOPIC_EVENTS: 'telemetry.events.v2' };
    expect(planAcls(composeTopics.command, env)).not.toEqual(secureStackAcls);
  });

  it("covers each service's principal and the aggregator's group, in compose and Kubernetes", () => {
    const rules = planRules;
    const composeServices = Object.entries(compose.services as Obj).flatMap(([name, s]) => {
      const role = roleOf((s as Obj).command ?? []);
      return role ? [{ role, env: composeEnv(s as Obj), where: `compose ${name}` }] : [];
    });
    expect(aclCoverageProblems(rules(composeTopics.command, composeEnv(composeTopics)), composeServices)).toEqual([]);
    const k8sServices = k8sDocs.flatMap(({ doc: d }) =>
      ((d.spec?.template?.spec?.containers ?? []) as Obj[]).flatMap((c) => {
        const role = roleOf([...(c.command ?? []), ...(c.args ?? [])]);
        return role ? [{ role, env: containerEnv(k8sDocs, c, d.metadata.name).env, where: `k8s ${d.metadata.name}` }] : [];
      }),
    );
    expect(aclCoverageProblems(rules(k8sJob.args, k8sJobEnv), k8sServices)).toEqual([]);
    // negative controls: the aggregator in another group than the plan grants; ingest under a principal the list does not know
    const moved = composeServices.map((s) =>
      s.role === 'aggregator'
        ? { ...s, env: { ...s.env, AGGREGATOR_GROUP_ID: 'telemetry-aggregator-2' } }
        : s.role === 'ingest'
          ? { ...s, env: { ...s.env, PIPELINE_KAFKA_SASL_USERNAME: 'ingest-1' } }
          : s,
    );
    const p = aclCoverageProblems(rules(composeTopics.command, composeEnv(composeTopics)), moved);
    expect(p).toContainEqual(
      expect.stringMatching(/compose aggregator: the ACL list grants User:aggregator no READ on its consumer group telemetry-aggregator-2/),
    );
    expect(p).toContainEqual(expect.stringMatching(/compose ingest-1: principal User:ingest-1 may write no topic/));
  });
});

// The secured local stack (npm run stack:up -- --secure, stack/secure.ts secureServiceEnv) is what the
// end-to-end secured test runs: it must give the services the same security settings as the manifests,
// so that test covers what users deploy. Paths differ; the shape (values, files set, URL schemes) must not.
const SHAPE: Record<'ingest' | 'aggregator', Record<string, 'value' | 'file' | 'scheme' | 'absent'>> = {
  ingest: {
    PIPELINE_KAFKA_SECURITY: 'value',
    PIPELINE_KAFKA_SASL_MECHANISM: 'value',
    PIPELINE_KAFKA_SASL_USERNAME: 'value',
    PIPELINE_KAFKA_SASL_PASSWORD: 'absent',
    PIPELINE_KAFKA_SASL_PASSWORD_FILE: 'file',
    PIPELINE_KAFKA_TLS_CA_FILE: 'file',
    INGEST_TLS_CERT_FILE: 'file',
    INGEST_TLS_KEY_FILE: 'file',
    INGEST_UNSAFE_PLAINTEXT_HTTP: 'value',
    INGEST_TOPICS: 'value',
  },
  aggregator: {
    PIPELINE_KAFKA_SECURITY: 'value',
    PIPELINE_KAFKA_SASL_MECHANISM: 'value',
    PIPELINE_KAFKA_SASL_USERNAME: 'value',
    PIPELINE_KAFKA_SASL_PASSWORD: 'absent',
    PIPELINE_KAFKA_SASL_PASSWORD_FILE: 'file',
    PIPELINE_KAFKA_TLS_CA_FILE: 'file',
    AGGREGATOR_CLICKHOUSE_URL: 'scheme',
    AGGREGATOR_CLICKHOUSE_TLS_CA_FILE: 'file',
    AGGREGATOR_CLICKHOUSE_USER: 'value',
    AGGREGATOR_CLICKHOUSE_PASSWORD: 'absent',
    AGGREGATOR_CLICKHOUSE_PASSWORD_FILE: 'file',
    AGGREGATOR_UNSAFE_PLAINTEXT_CLICKHOUSE: 'value',
  },
};
function securityShape(role: 'ingest' | 'aggregator', env: Record<string, EnvValue>): Record<string, string> {
  const spec = ROLES[role].spec;
  const out: Record<string, string> = {};
  for (const [k, how] of Object.entries(SHAPE[role])) {
    const raw = env[k];
    const v = raw === undefined || raw === '' ? (spec[k]?.default !== undefined ? String(spec[k]!.default) : '') : raw === FROM_SECRET ? 'secret' : raw;
    out[k] = how === 'value' ? v : how === 'scheme' ? v.split(':')[0]! : how === 'absent' ? (raw === undefined ? 'absent' : 'SET') : v ? 'file' : 'none';
  }
  return out;
}

describe('the secured local stack runs the settings the manifests use', () => {
  const stackConfig = loadStackConfig({});
  const composeOf = (name: string) => composeEnv((compose.services as Obj)[name]);
  const k8sOf = (name: string) => {
    const d = k8sDocs.find((x) => x.doc.kind === 'Deployment' && x.doc.metadata.name === name)!.doc;
    return containerEnv(k8sDocs, d.spec.template.spec.containers[0], name).env;
  };

  it.each(['ingest', 'aggregator'] as const)('%s: Kafka SASL_SSL, mechanism, own principal, password and CA as files', (role) => {
    const kafkaKeys = Object.keys(SHAPE[role]).filter((k) => k.startsWith('PIPELINE_'));
    const pick = (o: Record<string, string>) => Object.fromEntries(kafkaKeys.map((k) => [k, o[k]]));
    const stack = pick(securityShape(role, secureServiceEnv(stackConfig, role)));
    expect(pick(securityShape(role, composeOf(role === 'ingest' ? 'ingest-1' : 'aggregator')))).toEqual(stack);
    expect(pick(securityShape(role, k8sOf(role)))).toEqual(stack);
  });

  it.each(['ingest', 'aggregator'] as const)('%s: every security setting (TLS of ingest, ClickHouse over https with a CA and a password file)', (role) => {
    const stack = securityShape(role, secureServiceEnv(stackConfig, role));
    expect(securityShape(role, composeOf(role === 'ingest' ? 'ingest-1' : 'aggregator'))).toEqual(stack);
    expect(securityShape(role, k8sOf(role))).toEqual(stack);
  });

  it('negative control: another mechanism or a plaintext ClickHouse URL changes the shape', () => {
    const stack = securityShape('aggregator', secureServiceEnv(stackConfig, 'aggregator'));
    expect(securityShape('aggregator', { ...composeOf('aggregator'), PIPELINE_KAFKA_SASL_MECHANISM: 'scram-sha-256' })).not.toEqual(stack);
    expect(securityShape('aggregator', { ...composeOf('aggregator'), AGGREGATOR_CLICKHOUSE_URL: 'http://clickhouse:8123' })).not.toEqual(stack);
  });

  it('client checks agree with themselves: the secured stack env passes clientSecurityProblems for Kafka', () => {
    const env = secureServiceEnv(stackConfig, 'aggregator');
    const p = clientSecurityProblems('aggregator', { ...env, PIPELINE_KAFKA_SASL_MECHANISM: 'scram-sha-512' }, 'stack', () => 'file');
    expect(p.filter((x) => x.includes('PIPELINE_'))).toEqual([]);
  });
});

// The answer service is the people's path to the data (aggregator/answer-service.ts): noisy answers
// under a budget, bearer tokens instead of a ClickHouse password, HTTPS, its own ClickHouse user. The
// analyst user stays the privileged, exact path (deploy/THREAT-MODEL.md).
describe("the answer service is the people's path, in compose and Kubernetes", () => {
  const answersInput = () => ({
    usersXml: readCompose('clickhouse/users.d/answers.xml'),
    grantsSql: read('security/clickhouse-grants.sql'),
    initScript: readCompose('secrets/init.sh'),
  });
  const composeInput = () => ({ doc: structuredClone(compose), text: composeText, readFile: readCompose });
  const doc = (docs: K8sDoc[], kind: string, name: string) => docs.find((d) => d.doc.kind === kind && d.doc.metadata.name === name)!.doc;

  it('runs in both, over HTTPS, as the ClickHouse user answers, with generated or externally created secrets only', () => {
    expect(roleOf((compose.services as Obj).answers.command)).toBe('answers');
    expect(roleOf(doc(k8sDocs, 'Deployment', 'answers').spec.template.spec.containers[0].args)).toBe('answers');
    expect(checkCompose(structuredClone(compose), { jobs, prometheusTargets, prometheusSchemes })).toEqual([]);
    expect(checkComposeSecurity(composeInput())).toEqual([]);
    expect(checkK8s(k8sDocs, { jobs })).toEqual([]);
    expect(checkK8sSecurity(k8sDocs, k8sReadme)).toEqual([]);
  });

  it('its ClickHouse user may read the released views and read and append to the ledger, nothing else; its limits are pinned; no password is committed', () => {
    expect(answersUserProblems(answersInput())).toEqual([]);
  });

  it('negative controls: an extra grant, an unpinned limit, a committed password, no generated hash, an extra SQL grant are reported', () => {
    const a = answersInput();
    const p = answersUserProblems({
      usersXml: a.usersXml
        .replace(
          `<query>GRANT SELECT, INSERT ON ${ANSWERS_LEDGER_TABLE}</query>`,
          `<query>GRANT SELECT, INSERT, ALTER DELETE ON ${ANSWERS_LEDGER_TABLE}</query>`,
        )
        .replace('<max_memory_usage><const/></max_memory_usage>', '')
        .replace('<profile>answers</profile>', '<profile>answers</profile><password>changeme</password>'),
      grantsSql: `${a.grantsSql}\nGRANT SELECT ON analytics.daily_agg TO answers;\n`,
      initScript: a.initScript.replace(/^.*<answers><password_sha256_hex>.*$/m, ''),
    });
    expect(p).toContainEqual(expect.stringMatching(/users.d\/answers.xml grants .*ALTER DELETE/));
    expect(p).toContainEqual(expect.stringMatching(/max_memory_usage is not pinned by a constraint/));
    expect(p).toContainEqual(expect.stringMatching(/users.d\/answers.xml: holds a password/));
    expect(p).toContainEqual(expect.stringMatching(/init.sh: does not write the answer service's password hash/));
    expect(p).toContainEqual(expect.stringMatching(/clickhouse-grants.sql grants answers .*daily_agg/));
    expect(p).toHaveLength(5);
  });

  it("negative controls (compose): no answer service; the analyst's credential, plain HTTP, no TLS files, http ClickHouse, an http healthcheck", () => {
    const none = structuredClone(compose);
    delete none.services.answers;
    expect(checkCompose(none, { jobs, prometheusTargets, prometheusSchemes })).toContainEqual(expect.stringMatching(/compose: no answer service/));
    const bad = composeInput();
    const env = bad.doc.services.answers.environment;
    env.ANALYST_CLICKHOUSE_USER = 'analyst';
    env.ANALYST_CLICKHOUSE_URL = 'http://clickhouse:8123';
    env.ANSWERS_UNSAFE_PLAINTEXT_HTTP = 'true';
    delete env.ANSWERS_TLS_KEY_FILE;
    const p = checkComposeSecurity(bad);
    expect(p).toContainEqual(expect.stringMatching(/service answers: ANALYST_CLICKHOUSE_USER=analyst, expected the service's own user answers/));
    expect(p).toContainEqual(expect.stringMatching(/service answers: ANALYST_CLICKHOUSE_URL=http:\/\/clickhouse:8123 is not https/));
    expect(p).toContainEqual(expect.stringMatching(/service answers: the answer service does not serve HTTPS/));
    expect(p).toContainEqual(expect.stringMatching(/service answers: ANSWERS_UNSAFE_PLAINTEXT_HTTP=true serves bearer tokens and answers in plaintext/));
    const c = checkCompose(bad.doc, { jobs, prometheusTargets, prometheusSchemes });
    expect(c).toContainEqual(expect.stringMatching(/service answers: ANSWERS_UNSAFE_PLAINTEXT_HTTP is a test\/debug-only setting/));
    const hc = structuredClone(compose);
    hc.services.answers.healthcheck.test = ['CMD', 'x', "fetch('http://127.0.0.1:18095/readyz')"];
    expect(checkCompose(hc, { jobs, prometheusTargets, prometheusSchemes })).toContainEqual(
      expect.stringMatching(/service answers: answers serves HTTPS \(ANSWERS_TLS_\*\), the healthcheck asks over http/),
    );
  });

  it('negative controls (Kubernetes): no answers Deployment, a probe over HTTP, the analyst user, an undocumented tokens Secret', () => {
    const gone = structuredClone(k8sDocs).filter((d) => !(d.doc.kind === 'Deployment' && d.doc.metadata.name === 'answers'));
    expect(checkK8s(gone, { jobs })).toContainEqual(expect.stringMatching(/k8s: no Deployment runs the answer service/));
    const docs = structuredClone(k8sDocs);
    const c = doc(docs, 'Deployment', 'answers').spec.template.spec.containers[0];
    delete c.readinessProbe.httpGet.scheme;
    doc(docs, 'ConfigMap', 'telemetry-answers').data.ANALYST_CLICKHOUSE_USER = 'analyst';
    expect(checkK8s(docs, { jobs })).toContainEqual(
      expect.stringMatching(/Deployment\/answers container answers: readinessProbe asks over HTTP, but answers serves HTTPS only/),
    );
    const p = checkK8sSecurity(docs, k8sReadme.replace(/^kubectl .*telemetry-answers-tokens.*$/m, ''));
    expect(p).toContainEqual(
      expect.stringMatching(/Deployment\/answers container answers: ANALYST_CLICKHOUSE_USER=analyst, expected the service's own user answers/),
    );
    expect(p).toContainEqual(expect.stringMatching(/Deployment\/answers: volume tokens mounts Secret telemetry-answers-tokens, which is neither/));
  });
});

// The answer service keeps its own privacy ledger (database analytics_ledger) in compose and on Kubernetes:
// the analyst may INSERT into analytics.privacy_ledger (its --exact rows), and an INSERT cannot be limited
// to rows of one's own name, so a shared ledger would let it spend a token holder's budget or plant the
// answer their repeated question returns. tools/manifest-check.ts answersLedgerProblems, read from the
// files (no 24.8 server runs here; the 18.16 stack has the same split: stack/answers-user.int.test.ts).
describe("the answer service's ledger is a database the analyst cannot write, in compose and Kubernetes", () => {
  const ledgerInput = () => ({
    compose: structuredClone(compose),
    k8sDocs: structuredClone(k8sDocs),
    readCompose,
    usersDFiles: readdirSync(join(DEPLOY, 'compose/clickhouse/users.d')),
    grantsSql: read('security/clickhouse-grants.sql'),
    ledgerDdl: (db: string) => ledgerTableSql({ ...DEFAULT_LAYOUT, ledgerDb: db }),
  });
  const configMap = (docs: K8sDoc[]) => docs.find((d) => d.doc.kind === 'ConfigMap' && d.doc.metadata.name === 'telemetry-answers')!.doc;

  it('compose and Kubernetes set ANSWERS_LEDGER_DATABASE=analytics_ledger, the analyst has no grant there, the answer service appends there, and both create it from migration 002', () => {
    expect(answersLedgerProblems(ledgerInput())).toEqual([]);
    expect(composeEnv((compose.services as Obj).answers).ANSWERS_LEDGER_DATABASE).toBe('analytics_ledger');
    expect(configMap(k8sDocs).data.ANSWERS_LEDGER_DATABASE).toBe('analytics_ledger');
    // The one-shot runs the migration file itself, mounted read-only.
    expect((compose.services as Obj).ledger.volumes).toContain(
      '../../aggregator/migrations/002_privacy_ledger.sql:/etc/telemetry/ledger/002_privacy_ledger.sql:ro',
    );
  });

  it('negative control: the shared ledger of before (no ANSWERS_LEDGER_DATABASE, answers granted analytics.privacy_ledger) is reported in both deployments', () => {
    const a = ledgerInput();
    delete a.compose.services.answers.environment.ANSWERS_LEDGER_DATABASE;
    delete configMap(a.k8sDocs).data.ANSWERS_LEDGER_DATABASE;
    const p = answersLedgerProblems(a);
    expect(p).toContainEqual(
      expect.stringMatching(
        /^compose service answers: ANSWERS_LEDGER_DATABASE is not set, so the ledger is analytics.privacy_ledger, which the analyst may write/,
      ),
    );
    expect(p).toContainEqual(expect.stringMatching(/^Deployment\/answers container answers: ANSWERS_LEDGER_DATABASE is not set/));
    const same = ledgerInput();
    same.compose.services.answers.environment.ANSWERS_LEDGER_DATABASE = 'analytics';
    configMap(same.k8sDocs).data.ANSWERS_LEDGER_DATABASE = 'analytics';
    const q = answersLedgerProblems(same);
    expect(q).toContainEqual(expect.stringMatching(/^compose service answers: ANSWERS_LEDGER_DATABASE=analytics is the views database/));
    expect(q).toContainEqual(expect.stringMatching(/^users.d\/analyst.xml: the analyst has "GRANT SELECT, INSERT ON analytics.privacy_ledger"/));
    expect(q).toContainEqual(expect.stringMatching(/^clickhouse-grants.sql: the analyst has "GRANT SELECT, INSERT ON analytics.privacy_ledger TO analyst"/));
    expect(q).toContainEqual(expect.stringMatching(/^users.d\/answers.xml: the answer service's user has no SELECT, INSERT on analytics.privacy_ledger/));
  });

  it('negative controls: a grant of the analyst on the ledger database (or on *.*) in users.d or the grants SQL, the answer service without its grant', () => {
    const a = ledgerInput();
    const analystXml = readCompose('clickhouse/users.d/analyst.xml').replace(
      '<query>GRANT SELECT ON analytics.release_policy</query>',
      '<query>GRANT SELECT ON analytics.release_policy</query><query>GRANT INSERT ON analytics_ledger.privacy_ledger</query>',
    );
    const answersXml = readCompose('clickhouse/users.d/answers.xml').replace(`<query>GRANT SELECT, INSERT ON ${ANSWERS_LEDGER_TABLE}</query>`, '');
    a.readCompose = (rel: string) => (rel.endsWith('analyst.xml') ? analystXml : rel.endsWith('answers.xml') ? answersXml : readCompose(rel));
    a.grantsSql = `${a.grantsSql}\nGRANT SELECT ON *.* TO analyst;\n`.replace(`GRANT SELECT, INSERT ON ${ANSWERS_LEDGER_TABLE} TO answers;`, '');
    const p = answersLedgerProblems(a);
    expect(p).toContainEqual(
      expect.stringMatching(/^users.d\/analyst.xml: the analyst has "GRANT INSERT ON analytics_ledger.privacy_ledger": it must have no grant/),
    );
    expect(p).toContainEqual(expect.stringMatching(/^clickhouse-grants.sql: the analyst has "GRANT SELECT ON \*.\* TO analyst"/));
    expect(p).toContainEqual(
      expect.stringMatching(/^users.d\/answers.xml: the answer service's user has no SELECT, INSERT on analytics_ledger.privacy_ledger/),
    );
    expect(p).toContainEqual(
      expect.stringMatching(/^clickhouse-grants.sql: the answer service's user has no SELECT, INSERT on analytics_ledger.privacy_ledger/),
    );
    expect(p).toHaveLength(4);
  });

  it('negative controls: nobody creates the ledger (no one-shot, the answer service not waiting for it, no owner may create it, the SQL without it or drifted from migration 002)', () => {
    const a = ledgerInput();
    a.compose.services.answers.depends_on = { clickhouse: { condition: 'service_healthy' } };
    a.usersDFiles = a.usersDFiles.filter((f) => f !== 'ledger-owner.xml');
    a.grantsSql = a.grantsSql.replace('    epsilon Float64,\n', '');
    const p = answersLedgerProblems(a);
    expect(p).toContainEqual(expect.stringMatching(/^compose service answers: does not wait for the one-shot ledger/));
    expect(p).toContainEqual(expect.stringMatching(/^users.d: no user may CREATE TABLE in analytics_ledger/));
    expect(p).toContainEqual(
      expect.stringMatching(
        /^clickhouse-grants.sql: does not create the answer service's ledger: no "CREATE TABLE IF NOT EXISTS analytics_ledger.privacy_ledger/,
      ),
    );
    expect(p).toHaveLength(3);
    const b = ledgerInput();
    delete b.compose.services.ledger;
    expect(answersLedgerProblems(b)).toEqual([
      'compose: no one-shot creates analytics_ledger.privacy_ledger from aggregator/migrations/002_privacy_ledger.sql (LEDGER_DATABASE=analytics_ledger)',
    ]);
    // A migration that changes (a column added) and a grants file that did not follow it.
    const c = ledgerInput();
    c.ledgerDdl = (db) => ledgerTableSql({ ...DEFAULT_LAYOUT, ledgerDb: db }).map((s) => s.replace('answer String', 'answer String,\n    note String'));
    expect(answersLedgerProblems(c)).toEqual([expect.stringMatching(/^clickhouse-grants.sql: does not create the answer service's ledger/)]);
  });
});

// The answer service is operated like the other services (deploy/prometheus/alerts.yml, group
// telemetry-answers): scraped over HTTPS in compose and on Kubernetes under the job `answers`, its
// metrics (aggregator/answer-service.ts answersMetricNames: token list, certificate) known to the checks.
describe('the answer service is monitored', () => {
  const answersRules = (alerts.groups as Obj[]).find((g) => g.name === 'telemetry-answers')!.rules as Obj[];
  const doc = (docs: K8sDoc[], kind: string, name: string) => docs.find((d) => d.doc.kind === kind && d.doc.metadata.name === name)!.doc;

  it('alerts on it being down, its certificate ending within 14 days, a refused certificate and a refused token list, on exported metrics only', () => {
    expect(answersRules.map((r) => r.alert)).toEqual([
      'AnswersDown',
      'AnswersTlsCertificateExpiresSoon',
      'AnswersTlsReloadFailed',
      'AnswersTokensReloadFailed',
    ]);
    for (const n of ['answers_tokens_reloads_total', 'answers_tokens_listed', 'answers_tls_certificate_expiry_seconds', 'answers_tls_reloads_total'])
      expect(metrics.has(n), n).toBe(true);
    expect(answersRules.find((r) => r.alert === 'AnswersDown')!.expr).toBe('up{job="answers"} == 0');
    expect(checkAlerts({ groups: [{ rules: answersRules }] })).toEqual([]);
  });

  it('negative control: a rule on a misspelt answer-service metric or job fails the same check', () => {
    const broken = structuredClone(answersRules);
    broken[1]!.expr = 'min by (instance) (answer_tls_certificate_expiry_seconds) - time() < 14 * 86400';
    broken[3]!.expr = 'increase(answers_token_reloads_total{result="failed"}[15m]) > 0';
    broken[0]!.expr = 'up{job="answer"} == 0';
    const p = checkAlerts({ groups: [{ rules: broken }] });
    expect(p).toContainEqual(expect.stringMatching(/metric answer_tls_certificate_expiry_seconds is not exported/));
    expect(p).toContainEqual(expect.stringMatching(/metric answers_token_reloads_total is not exported/));
    expect(p).toContainEqual(expect.stringMatching(/job="answer" is not a scrape job/));
  });

  it('compose: prometheus.yml scrapes answers:18095 over HTTPS with the CA, as it does ingest', () => {
    const job = (promConfig.scrape_configs as Obj[]).find((j) => j.job_name === 'answers')!;
    expect(job).toMatchObject({ scheme: 'https', tls_config: { ca_file: '/etc/prometheus/tls/ca.pem' }, static_configs: [{ targets: ['answers:18095'] }] });
    expect(checkCompose(compose, { jobs, prometheusTargets, prometheusSchemes })).toEqual([]);
  });

  it('negative controls (compose): the answer service not scraped, or scraped over plain HTTP', () => {
    const unscraped = new Map(prometheusTargets);
    unscraped.delete('answers');
    expect(checkCompose(compose, { jobs, prometheusTargets: unscraped, prometheusSchemes })).toContainEqual(
      'prometheus.yml: compose service answers is not scraped',
    );
    const plain = new Map(prometheusSchemes);
    plain.set('answers', 'http');
    expect(checkCompose(compose, { jobs, prometheusTargets, prometheusSchemes: plain })).toContainEqual(
      expect.stringMatching(/job answers scrapes answers:18095 over http, but answers serves HTTPS only \(ANSWERS_TLS_\*\)/),
    );
    // the same check holds for ingest
    const ingestPlain = new Map(prometheusSchemes);
    ingestPlain.set('ingest', 'http');
    expect(checkCompose(compose, { jobs, prometheusTargets, prometheusSchemes: ingestPlain })).toContainEqual(
      expect.stringMatching(/job ingest scrapes ingest-1:18080 over http, but ingest serves HTTPS only/),
    );
  });

  it('Kubernetes: the answers pods are annotated for an HTTPS scrape under the job answers, and the NetworkPolicy admits Prometheus', () => {
    const ann = doc(k8sDocs, 'Deployment', 'answers').spec.template.metadata.annotations;
    expect(ann).toMatchObject({
      'prometheus.io/scrape': 'true',
      'prometheus.io/port': '18095',
      'prometheus.io/scheme': 'https',
      'prometheus.io/job': 'answers',
    });
    expect(checkK8s(k8sDocs, { jobs })).toEqual([]);
  });

  it('negative controls (Kubernetes): no scrape annotation, no https scheme, another job, a NetworkPolicy that keeps Prometheus out', () => {
    const where = /^answers.yaml Deployment\/answers container answers: /;
    const unannotated = structuredClone(k8sDocs);
    delete doc(unannotated, 'Deployment', 'answers').spec.template.metadata.annotations;
    expect(checkK8s(unannotated, { jobs })).toContainEqual(expect.stringMatching(new RegExp(`${where.source}not annotated for scraping`)));
    const bad = structuredClone(k8sDocs);
    const a = doc(bad, 'Deployment', 'answers').spec.template.metadata.annotations;
    delete a['prometheus.io/scheme'];
    a['prometheus.io/job'] = 'aggregator';
    const p = checkK8s(bad, { jobs });
    expect(p).toContainEqual(expect.stringMatching(new RegExp(`${where.source}answers serves HTTPS only; annotate prometheus.io/scheme: https`)));
    expect(p).toContainEqual(expect.stringMatching(new RegExp(`${where.source}prometheus.io/job aggregator is not the job of answers`)));
    const closed = structuredClone(k8sDocs);
    const np = doc(closed, 'NetworkPolicy', 'answers');
    np.spec.ingress[0].from = np.spec.ingress[0].from.filter((f: Obj) => f.namespaceSelector?.matchLabels?.['kubernetes.io/metadata.name'] !== 'monitoring');
    expect(checkK8s(closed, { jobs })).toEqual([
      expect.stringMatching(
        new RegExp(`${where.source}annotated for scraping, but no NetworkPolicy admits Prometheus \\(namespace monitoring\\) to port 18095`),
      ),
    ]);
  });
});

// The analyst's `--exact` path writes the privacy ledger in compose and on Kubernetes (ClickHouse 24.8):
// readonly=1 (and 2) refuse any INSERT there, so the analyst's profile is readonly=0 with readonly, DDL,
// the limits and the query log pinned by constraints, and its one write grant is INSERT on the ledger
// (tools/manifest-check.ts analystLedgerWriterProblems). Read from the files: no 24.8 server runs here.
describe('the analyst writes the privacy ledger and nothing else (compose users.d, the grants SQL)', () => {
  const input = () => ({ usersXml: readCompose('clickhouse/users.d/analyst.xml'), grantsSql: read('security/clickhouse-grants.sql') });

  it('users.d and the SQL give the analyst readonly=0 pinned by constraints, its limits and query log pinned, INSERT on the ledger only', () => {
    expect(analystLedgerWriterProblems(input())).toEqual([]);
  });

  it('negative control: the previous profile (readonly=1) and readonly=2 are reported: 24.8 refuses the ledger INSERT under both', () => {
    const a = input();
    for (const ro of ['1', '2']) {
      const p = analystLedgerWriterProblems({ ...a, usersXml: a.usersXml.replace('<readonly>0</readonly>', `<readonly>${ro}</readonly>`) });
      expect(p).toEqual([
        expect.stringMatching(
          new RegExp(`users.d/analyst.xml: the analyst profile has readonly=${ro}: ClickHouse refuses its INSERT into analytics.privacy_ledger`),
        ),
      ]);
    }
    const sql = analystLedgerWriterProblems({
      ...a,
      grantsSql: a.grantsSql.replace('analyst_limits SETTINGS readonly = 0 CONST', 'analyst_limits SETTINGS readonly = 1'),
    });
    expect(sql).toContainEqual(expect.stringMatching(/clickhouse-grants.sql: analyst_limits has readonly = 1: ClickHouse refuses the analyst's INSERT/));
    expect(sql).toContainEqual(expect.stringMatching(/clickhouse-grants.sql: analyst_limits does not pin readonly \(CONST\)/));
  });

  it('negative controls: readonly or the query log left changeable, DDL allowed, a write grant beyond the ledger, no ledger INSERT', () => {
    const a = input();
    const p = analystLedgerWriterProblems({
      usersXml: a.usersXml
        .replace('<readonly><const/></readonly>', '')
        .replace('<log_queries><const/></log_queries>', '')
        .replace('<allow_ddl>0</allow_ddl>', '<allow_ddl>1</allow_ddl>')
        .replace('</grants>', '<query>GRANT INSERT ON analytics.daily_agg</query></grants>'),
      grantsSql: a.grantsSql
        .replace('log_queries = 1 CONST', 'log_queries = 1')
        .replace(
          'GRANT SELECT, INSERT ON analytics.privacy_ledger TO analyst;',
          'GRANT SELECT ON analytics.privacy_ledger TO analyst;\nGRANT INSERT, ALTER DELETE ON analytics.* TO analyst;',
        ),
    });
    expect(p).toContainEqual(expect.stringMatching(/users.d\/analyst.xml: readonly is not pinned by a constraint/));
    expect(p).toContainEqual(expect.stringMatching(/users.d\/analyst.xml: log_queries is not pinned by a constraint/));
    expect(p).toContainEqual('users.d/analyst.xml: the analyst profile does not set allow_ddl=0');
    expect(p).toContainEqual(expect.stringMatching(/users.d\/analyst.xml: grants the analyst INSERT ON analytics.daily_agg/));
    expect(p).toContainEqual(expect.stringMatching(/clickhouse-grants.sql: analyst_limits does not pin log_queries/));
    expect(p).toContainEqual(expect.stringMatching(/clickhouse-grants.sql: grants the analyst INSERT, ALTER DELETE ON analytics\.\*/));
    expect(p).toContainEqual(expect.stringMatching(/clickhouse-grants.sql: the analyst has no INSERT on analytics.privacy_ledger/));
    expect(p).toHaveLength(7);
  });
});
