/**
 * Checks deployment manifests against the code, without Docker or a cluster (none runs on these
 * machines): every variable a manifest sets is a declared setting with a valid value, every port and
 * probe path is one the service serves, every metric an alert or dashboard uses is exported, and every
 * container that runs ingest or the topic plan gives each residency zone a cluster of its own or says
 * explicitly that it shares one (policy section 6).
 *
 * The knowledge comes from the code itself, not from lists kept here: the config specs
 * (ingest/config.ts, aggregator/config.ts), the metric registries the services build (constructed
 * here without starting a server), and runtime/ops.ts's route handler (asked with a fake request).
 * Every check returns a list of problems, so a test can run the same check on a broken copy of a
 * manifest and see it fail (the negative control).
 */
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { analystSettings } from '../aggregator/analyst-config.ts';
import { answersMetricNames, answersSettings } from '../aggregator/answer-service.ts';
import { aggregatorConfigSpec, AGGREGATOR_PREFIX } from '../aggregator/config.ts';
import { statements } from '../aggregator/migrate.ts';
import { createAggregatorMetrics } from '../aggregator/metrics.ts';
import { INGEST_ERROR_CODES } from '../ingest/errors.ts';
import { ingestConfigSpec, INGEST_PREFIXES, sealingProblems, zoneResidencyProblem, type IngestConfig } from '../ingest/config.ts';
import { createMetrics } from '../ingest/metrics.ts';
import { tlsMetricNames } from '../runtime/tls.ts';
import { ConfigError, loadConfig, type SettingsSpec } from '../runtime/config.ts';
import { handleOps } from '../runtime/ops.ts';
import type { Registry } from 'prom-client';
import type { AclRule, KafkaRole } from './security/acls.ts';

export type Role = 'ingest' | 'aggregator' | 'topics' | 'answers';

export interface RoleModel {
  role: Role;
  spec: SettingsSpec;
  /** Variable prefixes the service owns: an undeclared variable with one of them stops it at start. */
  prefixes: readonly string[];
  /** Setting that holds the listening port, if the role serves HTTP. */
  portSetting: string | undefined;
}

export const ROLES: Record<Role, RoleModel> = {
  ingest: { role: 'ingest', spec: ingestConfigSpec, prefixes: INGEST_PREFIXES, portSetting: 'INGEST_PORT' },
  aggregator: { role: 'aggregator', spec: aggregatorConfigSpec, prefixes: [AGGREGATOR_PREFIX, 'PIPELINE_'], portSetting: 'AGGREGATOR_PORT' },
  // The topic plan reads the ingest settings (topic names, zone clusters) and serves nothing.
  topics: { role: 'topics', spec: ingestConfigSpec, prefixes: INGEST_PREFIXES, portSetting: undefined },
  // The answer service (aggregator/answer-service.ts): the people's path to noisy answers; no Kafka.
  answers: { role: 'answers', spec: { ...answersSettings, ...analystSettings }, prefixes: ['ANSWERS_', 'ANALYST_'], portSetting: 'ANSWERS_PORT' },
};

/** Every prefix any of our services owns: a variable with one of them is meant for one of them. */
const ALL_PREFIXES = ['INGEST_', 'AGGREGATOR_', 'PIPELINE_', 'ANSWERS_', 'ANALYST_'];

/** Which service a container runs, from its command line (node dist/<service>/main.js). */
export function roleOf(argv: readonly string[]): Role | undefined {
  const line = argv.join(' ');
  if (/\bdist\/ingest\/main\.js\b/.test(line)) return 'ingest';
  if (/\bdist\/aggregator\/main\.js\b/.test(line)) return 'aggregator';
  if (/\bdist\/tools\/topic-plan\.js\b/.test(line)) return 'topics';
  if (/\bdist\/aggregator\/answer-service\.js\b/.test(line)) return 'answers';
  return undefined;
}

/** A variable whose value the manifest does not show (a Secret reference): checked by name only. */
export const FROM_SECRET = Symbol('from-secret');
export type EnvValue = string | typeof FROM_SECRET;

/**
 * Problems with the environment a container of `role` gets: unknown or misplaced variables, values the
 * service would refuse at start, and test-only switches in a deployment.
 */
export function checkEnv(role: Role, env: Record<string, EnvValue>, where: string): string[] {
  const model = ROLES[role];
  const problems: string[] = [];
  for (const name of Object.keys(env)) {
    const ours = ALL_PREFIXES.some((p) => name.startsWith(p));
    if (ours && !model.prefixes.some((p) => name.startsWith(p))) {
      problems.push(`${where}: ${name} is set on a ${role} container, which does not read it`);
    }
    // Switches that exist only for tests' negative controls, or that log personal data, never belong in
    // a deployment manifest, whatever their value.
    if (name in model.spec && /UNSAFE|_TEST_|DEBUG_LOG_PERSONAL/.test(name)) {
      problems.push(`${where}: ${name} is a test/debug-only setting and must not appear in a deployment`);
    }
  }
  // Let the service's own loader judge names and values, exactly as at start.
  try {
    loadConfig(model.spec, { prefixes: model.prefixes, env: probeEnv(model, env) });
  } catch (e) {
    if (!(e instanceof ConfigError)) throw e;
    for (const p of e.problems) problems.push(`${where}: ${p}`);
  }
  return problems;
}

/**
 * Residency (policy section 6): a container that runs ingest or the topic plan either sets a broker list
 * of its own for every zone the residency rule binds (INGEST_ZONE_BROKERS_CN/RU/IN), or sets
 * INGEST_ZONES_SHARE_MAIN_CLUSTER=true explicitly (a single-cluster development setup). The rule is
 * ingest's own (`zoneResidencyProblem`, what stops ingest and the topic plan at start), so the check
 * cannot pass a manifest the service would refuse, nor the reverse. Invalid values are checkEnv's to report.
 */
export function residencyProblems(role: Role, env: Record<string, EnvValue>, where: string): string[] {
  if (role !== 'ingest' && role !== 'topics') return [];
  let cfg: IngestConfig;
  try {
    cfg = loadConfig(ingestConfigSpec, { prefixes: ROLES[role].prefixes, env: probeEnv(ROLES[role], env) });
  } catch (e) {
    if (e instanceof ConfigError) return [];
    throw e;
  }
  const problem = zoneResidencyProblem(cfg);
  // Sealing fails closed too (ingest only: the topic plan needs no key store).
  const sealing = role === 'ingest' ? sealingProblems(cfg) : [];
  return [...(problem ? [`${where}: ${problem}`] : []), ...sealing.map((p) => `${where}: ${p}`)];
}

/**
 * The variables of `env` the role reads, as its loader gets them at start. Secret values are not in the
 * manifest; a placeholder the setting accepts stands in for them.
 */
function probeEnv(model: RoleModel, env: Record<string, EnvValue>): Record<string, string> {
  const probe: Record<string, string> = {};
  for (const [name, v] of Object.entries(env)) {
    if (model.prefixes.some((p) => name.startsWith(p))) probe[name] = v === FROM_SECRET ? placeholderFor(model.spec, name) : v;
  }
  return probe;
}

function placeholderFor(spec: SettingsSpec, name: string): string {
  const s = spec[name];
  if (!s) return 'x';
  switch (s.kind) {
    case 'int':
    case 'number':
      return String(s.min ?? 1);
    case 'bool':
      return 'false';
    case 'enum':
      return s.values[0] ?? 'x';
    case 'url':
      return 'http://secret.invalid';
    case 'list':
      return 'x';
    default:
      return 'secret';
  }
}

/** The port a container of `role` listens on, given its environment (the spec's default otherwise). */
export function listenPort(role: Role, env: Record<string, EnvValue>): number | undefined {
  const setting = ROLES[role].portSetting;
  if (!setting) return undefined;
  const v = env[setting];
  if (typeof v === 'string' && v !== '') return Number(v);
  return ROLES[role].spec[setting]!.default as number;
}

/**
 * Address a container of `role` binds, when the service has a setting for it. In a container it must
 * not be loopback: the kubelet's probes and Prometheus connect to the pod's address.
 * (The aggregator binds 127.0.0.1 in code today and has no setting; see the deploy report.)
 */
export function bindProblems(role: Role, env: Record<string, EnvValue>, where: string): string[] {
  const setting =
    role === 'ingest'
      ? 'INGEST_HOST'
      : role === 'answers'
        ? 'ANSWERS_HOST'
        : role === 'aggregator' && 'AGGREGATOR_HOST' in ROLES.aggregator.spec
          ? 'AGGREGATOR_HOST'
          : undefined;
  if (!setting) return [];
  const v = env[setting];
  const host = typeof v === 'string' && v !== '' ? v : String(ROLES[role].spec[setting]!.default);
  return /^(127\.|localhost$|::1$)/.test(host)
    ? [`${where}: ${setting}=${host} is loopback; probes and scrapes from outside the container cannot connect`]
    : [];
}

/** Whether the services' ops handler (runtime/ops.ts) answers `GET path`, asked without a server. */
export function opsServes(path: string): boolean {
  const registry = { metrics: () => Promise.resolve(''), contentType: 'text/plain' } as unknown as Registry;
  const req = { method: 'GET', url: path } as IncomingMessage;
  const res = { headersSent: false, writeHead: () => res, end: () => res } as unknown as ServerResponse;
  return handleOps({ registry, ready: () => ({ ok: true, checks: {} }) }, req, res);
}

/** Metric series names the services export (histograms expanded to _bucket/_sum/_count). */
export async function exportedMetrics(): Promise<Set<string>> {
  const names = new Set<string>();
  const registries = [createMetrics({ defaultMetrics: true }).registry, createAggregatorMetrics({ defaultMetrics: true }).registry];
  for (const r of registries) {
    for (const m of await r.getMetricsAsJSON()) {
      names.add(m.name);
      if (String(m.type) === 'histogram') for (const s of ['_bucket', '_sum', '_count']) names.add(`${m.name}${s}`);
      if (String(m.type) === 'summary') for (const s of ['_sum', '_count']) names.add(`${m.name}${s}`);
    }
    r.clear();
  }
  // Registered only when ingest serves HTTPS (its TLS reloader), so not in a fresh registry.
  for (const n of Object.values(tlsMetricNames('INGEST'))) names.add(n);
  // The answer service builds its registry when it starts (aggregator/answer-service.ts): its token
  // list's metrics and, serving HTTPS, its certificate's, from the same lists the service registers.
  for (const n of answersMetricNames()) names.add(n);
  return names;
}

/** Series Prometheus itself makes for every target. */
export const PROMETHEUS_SYNTHETIC = new Set(['up', 'scrape_duration_seconds', 'scrape_samples_scraped']);

const PROMQL_KEYWORDS = new Set([
  'and',
  'or',
  'unless',
  'bool',
  'offset',
  'by',
  'without',
  'on',
  'ignoring',
  'group_left',
  'group_right',
  'inf',
  'nan',
  'Inf',
  'NaN',
]);

/**
 * Metric names in a PromQL expression: identifiers that are not functions, keywords, label names or
 * durations. Grafana's `$__rate_interval`-style variables sit inside [] and are removed with them.
 */
export function promqlMetricNames(expr: string): string[] {
  let s = expr.replace(/"(?:[^"\\]|\\.)*"|'(?:[^'\\]|\\.)*'/g, '""');
  s = s.replace(/\{[^}]*\}/g, ' ');
  s = s.replace(/\[[^\]]*\]/g, ' ');
  s = s.replace(/\b(by|without|on|ignoring|group_left|group_right)\s*\([^)]*\)/g, ' ');
  s = s.replace(/\boffset\s+\d+[smhdwy]\b/g, ' ');
  const out: string[] = [];
  for (const m of s.matchAll(/(?<![0-9.\w$])[a-zA-Z_:][a-zA-Z0-9_:]*/g)) {
    const after = s.slice(m.index + m[0].length);
    if (/^\s*\(/.test(after)) continue; // a function
    if (PROMQL_KEYWORDS.has(m[0])) continue;
    out.push(m[0]);
  }
  return [...new Set(out)];
}

/** Label matchers `name="value"` in an expression (for values the code defines, such as error codes). */
export function promqlMatchers(expr: string): { label: string; value: string }[] {
  const out: { label: string; value: string }[] = [];
  for (const block of expr.matchAll(/\{([^}]*)\}/g)) {
    for (const m of block[1]!.matchAll(/(\w+)\s*=~?\s*"([^"]*)"/g)) out.push({ label: m[1]!, value: m[2]! });
  }
  return out;
}

/** Problems with one PromQL expression: unknown metrics, unknown error codes, unknown scrape jobs or services. */
export function checkPromql(expr: string, where: string, ctx: { metrics: Set<string>; jobs: Set<string> }): string[] {
  const problems: string[] = [];
  for (const name of promqlMetricNames(expr)) {
    if (!ctx.metrics.has(name) && !PROMETHEUS_SYNTHETIC.has(name))
      problems.push(`${where}: metric ${name} is not exported by ingest, the aggregator or the answer service`);
  }
  for (const { label, value } of promqlMatchers(expr)) {
    if (label === 'code' && !(INGEST_ERROR_CODES as readonly string[]).includes(value))
      problems.push(`${where}: code="${value}" is not an ingest error code (ingest/errors.ts)`);
    if (label === 'job' && !ctx.jobs.has(value)) problems.push(`${where}: job="${value}" is not a scrape job (${[...ctx.jobs].join(', ')})`);
    // The default process metrics' `service` label (ingest/metrics.ts) names a service as the jobs do.
    if (label === 'service' && value.split('|').some((v) => !ctx.jobs.has(v)))
      problems.push(`${where}: service="${value}" names a service that is not a scrape job (${[...ctx.jobs].join(', ')})`);
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------------
// Kubernetes (deploy/k8s): plain objects as parsed from YAML.

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any

export interface K8sDoc {
  file: string;
  doc: Obj;
}

interface PodRef {
  where: string;
  owner: Obj;
  pod: Obj;
}

function podsOf(docs: readonly K8sDoc[]): PodRef[] {
  const out: PodRef[] = [];
  for (const { file, doc } of docs) {
    const pod =
      doc.kind === 'CronJob'
        ? doc.spec?.jobTemplate?.spec?.template
        : ['Deployment', 'StatefulSet', 'DaemonSet', 'Job'].includes(doc.kind)
          ? doc.spec?.template
          : undefined;
    if (pod) out.push({ where: `${file} ${doc.kind}/${doc.metadata?.name}`, owner: doc, pod });
  }
  return out;
}

function find(docs: readonly K8sDoc[], kind: string, name: string): Obj | undefined {
  return docs.find((d) => d.doc.kind === kind && d.doc.metadata?.name === name)?.doc;
}

/** The environment a container gets from envFrom ConfigMaps/Secrets and env entries. */
export function containerEnv(docs: readonly K8sDoc[], c: Obj, where: string): { env: Record<string, EnvValue>; problems: string[] } {
  const env: Record<string, EnvValue> = {};
  const problems: string[] = [];
  for (const from of c.envFrom ?? []) {
    if (from.configMapRef) {
      const cm = find(docs, 'ConfigMap', from.configMapRef.name);
      if (!cm) problems.push(`${where}: envFrom ConfigMap ${from.configMapRef.name} is not among the manifests`);
      for (const [k, v] of Object.entries(cm?.data ?? {})) env[k] = String(v);
    }
    if (from.secretRef) {
      const s = find(docs, 'Secret', from.secretRef.name);
      if (!s) problems.push(`${where}: envFrom Secret ${from.secretRef.name} is not among the manifests`);
      for (const k of Object.keys({ ...(s?.data ?? {}), ...(s?.stringData ?? {}) })) env[k] = FROM_SECRET;
    }
  }
  for (const e of c.env ?? []) {
    if (e.valueFrom?.secretKeyRef) {
      const ref = e.valueFrom.secretKeyRef;
      const s = find(docs, 'Secret', ref.name);
      if (!s) problems.push(`${where}: Secret ${ref.name} (for ${e.name}) is not among the manifests`);
      else if (!(ref.key in { ...(s.data ?? {}), ...(s.stringData ?? {}) }))
        problems.push(`${where}: Secret ${ref.name} has no key ${ref.key} (for ${e.name})`);
      env[e.name] = FROM_SECRET;
    } else if (e.valueFrom?.configMapKeyRef) {
      const ref = e.valueFrom.configMapKeyRef;
      const v = find(docs, 'ConfigMap', ref.name)?.data?.[ref.key];
      if (v === undefined) problems.push(`${where}: ConfigMap ${ref.name} has no key ${ref.key} (for ${e.name})`);
      env[e.name] = String(v ?? '');
    } else {
      env[e.name] = String(e.value ?? '');
    }
  }
  return { env, problems };
}

/** Namespace Prometheus runs in on Kubernetes (deploy/k8s/networkpolicies.yaml admits it by this name). */
export const MONITORING_NAMESPACE = 'monitoring';

/**
 * Why Prometheus cannot reach a scraped pod's port under the NetworkPolicies of `docs`, or undefined: once
 * any policy exists (the default-deny one), some policy selecting the pod must admit the monitoring
 * namespace on that port, or every scrape is dropped and the pod's Down alert fires for good.
 */
function scrapeBlocked(docs: readonly K8sDoc[], pod: Obj, port: number): string | undefined {
  const policies = docs.filter((d) => d.doc.kind === 'NetworkPolicy').map((d) => d.doc);
  if (policies.length === 0) return undefined;
  const admits = policies.some(
    (np) =>
      labelsMatch(np.spec?.podSelector?.matchLabels, pod.metadata?.labels) &&
      ((np.spec?.ingress ?? []) as Obj[]).some(
        (r) =>
          ((r.from ?? []) as Obj[]).some((f) => f.namespaceSelector?.matchLabels?.['kubernetes.io/metadata.name'] === MONITORING_NAMESPACE) &&
          ((r.ports ?? []) as Obj[]).some((p) => Number(p.port) === port),
      ),
  );
  return admits ? undefined : `no NetworkPolicy admits Prometheus (namespace ${MONITORING_NAMESPACE}) to port ${port}`;
}

function labelsMatch(selector: Obj | undefined, labels: Obj | undefined): boolean {
  const want = selector ?? {};
  return Object.keys(want).length > 0 && Object.entries(want).every(([k, v]) => labels?.[k] === v);
}

/** Every check on the Kubernetes manifests; `jobs` are the scrape job names the alert rules use. */
export function checkK8s(docs: readonly K8sDoc[], opts: { jobs: Set<string> }): string[] {
  const problems: string[] = [];
  let ours = 0;
  for (const { where: podWhere, owner, pod } of podsOf(docs)) {
    const spec = pod.spec ?? {};
    for (const c of [...(spec.initContainers ?? []), ...(spec.containers ?? [])] as Obj[]) {
      const where = `${podWhere} container ${c.name}`;
      // Pod Security "restricted": non-root, no escalation, read-only root, no capabilities.
      if (!(c.securityContext?.runAsNonRoot ?? spec.securityContext?.runAsNonRoot)) problems.push(`${where}: runAsNonRoot is not set`);
      if (c.securityContext?.readOnlyRootFilesystem !== true) problems.push(`${where}: readOnlyRootFilesystem is not true`);
      if (c.securityContext?.allowPrivilegeEscalation !== false) problems.push(`${where}: allowPrivilegeEscalation is not false`);
      if (!(c.securityContext?.capabilities?.drop ?? []).includes('ALL')) problems.push(`${where}: capabilities are not dropped`);
      if (!c.resources?.requests?.memory || !c.resources?.limits?.memory || !c.resources?.requests?.cpu)
        problems.push(`${where}: cpu/memory requests and a memory limit are required`);

      const role = roleOf([...(c.command ?? []), ...(c.args ?? [])]);
      if (!role) continue;
      ours++;
      const { env, problems: envProblems } = containerEnv(docs, c, where);
      problems.push(...envProblems, ...checkEnv(role, env, where), ...bindProblems(role, env, where), ...residencyProblems(role, env, where));
      const port = listenPort(role, env);
      const ports = new Map<string | number, number>();
      for (const p of c.ports ?? []) {
        ports.set(p.containerPort, p.containerPort);
        if (p.name) ports.set(p.name, p.containerPort);
      }
      if (port !== undefined) {
        if (![...ports.values()].includes(port)) problems.push(`${where}: the service listens on ${port}, which no containerPort declares`);
        for (const [i, o] of owner.kind === 'Deployment' || owner.kind === 'StatefulSet'
          ? ([
              ['livenessProbe', 1],
              ['readinessProbe', 1],
            ] as const)
          : []) {
          if (!c[i]) problems.push(`${where}: ${i} is required (${o})`);
        }
        for (const probe of ['startupProbe', 'livenessProbe', 'readinessProbe'] as const) {
          const h = c[probe]?.httpGet;
          if (!h) continue;
          const p = ports.get(h.port);
          if (p !== port) problems.push(`${where}: ${probe} port ${h.port} is not the port the service listens on (${port})`);
          if (!opsServes(h.path)) problems.push(`${where}: ${probe} path ${h.path} is not served (runtime/ops.ts)`);
          const tlsPrefix = TLS_PREFIX[role];
          if (tlsPrefix && servesTls(env, tlsPrefix) && h.scheme !== 'HTTPS')
            problems.push(`${where}: ${probe} asks over ${h.scheme ?? 'HTTP'}, but ${role} serves HTTPS only (${tlsPrefix}_TLS_*): scheme: HTTPS`);
        }
        if (c.readinessProbe?.httpGet && c.readinessProbe.httpGet.path !== '/readyz')
          problems.push(`${where}: readinessProbe should ask /readyz (dependencies), not ${c.readinessProbe.httpGet.path}`);
        if (c.livenessProbe?.httpGet && c.livenessProbe.httpGet.path !== '/healthz')
          problems.push(`${where}: livenessProbe should ask /healthz (a dependency outage must not restart the pod)`);
        const ann = pod.metadata?.annotations ?? {};
        const scrapeTls = TLS_PREFIX[role];
        if (scrapeTls && servesTls(env, scrapeTls) && ann['prometheus.io/scheme'] !== 'https')
          problems.push(`${where}: ${role} serves HTTPS only; annotate prometheus.io/scheme: https`);
        // Every service with a port is scraped under the job its alert rules use (the answer service too:
        // AnswersDown, its certificate, its token list).
        if (ann['prometheus.io/scrape'] === 'true') {
          if (Number(ann['prometheus.io/port']) !== port)
            problems.push(`${where}: prometheus.io/port ${ann['prometheus.io/port']} is not the service port ${port}`);
          if (!opsServes(ann['prometheus.io/path'] ?? '/metrics')) problems.push(`${where}: prometheus.io/path is not served`);
          if (!opts.jobs.has(ann['prometheus.io/job']))
            problems.push(`${where}: prometheus.io/job ${ann['prometheus.io/job']} is not a job the alert rules know`);
          else if (ann['prometheus.io/job'] !== role)
            problems.push(`${where}: prometheus.io/job ${ann['prometheus.io/job']} is not the job of ${role} (the alert rules select up{job="${role}"})`);
          const why = scrapeBlocked(docs, pod, port);
          if (why) problems.push(`${where}: annotated for scraping, but ${why}`);
        } else {
          problems.push(`${where}: not annotated for scraping (prometheus.io/scrape)`);
        }
      }
      if (role === 'ingest') {
        // SIGTERM drain must finish before the kubelet's SIGKILL.
        const drainS =
          Number(typeof env.INGEST_SHUTDOWN_DRAIN_MS === 'string' ? env.INGEST_SHUTDOWN_DRAIN_MS : ROLES.ingest.spec.INGEST_SHUTDOWN_DRAIN_MS!.default) / 1000;
        const preStopS = Number(c.lifecycle?.preStop?.sleep?.seconds ?? 0);
        const grace = Number(spec.terminationGracePeriodSeconds ?? 30);
        if (!(grace > drainS + preStopS))
          problems.push(`${where}: terminationGracePeriodSeconds ${grace} is not longer than preStop ${preStopS} s + drain ${drainS} s`);
        const keyDir = env.INGEST_TOKEN_KEY_DIR;
        const mount = (c.volumeMounts ?? []).find((m: Obj) => m.mountPath === keyDir);
        const vol = mount && (spec.volumes ?? []).find((v: Obj) => v.name === mount.name);
        if (!vol?.secret?.secretName || !find(docs, 'Secret', vol.secret.secretName))
          problems.push(`${where}: INGEST_TOKEN_KEY_DIR ${String(keyDir)} is not a mounted Secret (every pod must share the day secrets)`);
      }
    }
  }
  if (ours === 0) problems.push('no container runs ingest or the aggregator');
  if (!podsOf(docs).some(({ pod }) => ((pod.spec?.containers ?? []) as Obj[]).some((c) => roleOf([...(c.command ?? []), ...(c.args ?? [])]) === 'answers')))
    problems.push("k8s: no Deployment runs the answer service (the people's path to noisy answers, aggregator/answer-service.ts)");
  for (const { file, doc } of docs) {
    const where = `${file} ${doc.kind}/${doc.metadata?.name}`;
    if (doc.kind === 'HorizontalPodAutoscaler' && !find(docs, doc.spec?.scaleTargetRef?.kind, doc.spec?.scaleTargetRef?.name))
      problems.push(`${where}: scale target is not among the manifests`);
    if (doc.kind === 'PodDisruptionBudget' || doc.kind === 'Service') {
      const selector = doc.kind === 'Service' ? doc.spec?.selector : doc.spec?.selector?.matchLabels;
      const targets = podsOf(docs).filter((p) => labelsMatch(selector, p.pod.metadata?.labels));
      if (targets.length === 0) problems.push(`${where}: selector matches no pod template`);
      if (doc.kind === 'Service') {
        for (const sp of doc.spec?.ports ?? []) {
          const ok = targets.some((t) =>
            (t.pod.spec?.containers ?? []).some((c: Obj) => (c.ports ?? []).some((p: Obj) => p.name === sp.targetPort || p.containerPort === sp.targetPort)),
          );
          if (!ok) problems.push(`${where}: targetPort ${sp.targetPort} is no port of the selected pods`);
        }
      }
    }
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------------
// Compose (deploy/compose/compose.yaml), parsed with YAML merge keys.

export function composeEnv(svc: Obj): Record<string, EnvValue> {
  const e = svc.environment ?? {};
  if (Array.isArray(e)) return Object.fromEntries(e.map((x: string) => [x.split('=')[0]!, x.slice(x.indexOf('=') + 1)]));
  return Object.fromEntries(Object.entries(e).map(([k, v]) => [k, /\$\{/.test(String(v)) ? FROM_SECRET : String(v)]));
}

export function checkCompose(
  doc: Obj,
  opts: {
    jobs: Set<string>;
    prometheusTargets: Map<string, string[]>;
    /** Each scrape job's scheme (`http` when unset), to check that a service serving HTTPS is scraped over it. */
    prometheusSchemes?: Map<string, string>;
  },
): string[] {
  const problems: string[] = [];
  const services: Obj = doc.services ?? {};
  const roleByService = new Map<string, { role: Role; port: number | undefined }>();
  for (const [name, svc] of Object.entries(services) as [string, Obj][]) {
    const role = roleOf(svc.command ?? []);
    if (!role) continue;
    const where = `compose service ${name}`;
    const env = composeEnv(svc);
    problems.push(...checkEnv(role, env, where), ...bindProblems(role, env, where), ...residencyProblems(role, env, where));
    const port = listenPort(role, env);
    roleByService.set(name, { role, port });
    if (port !== undefined) {
      const hc = (svc.healthcheck?.test ?? []).join(' ');
      const m = /(https?):\/\/127\.0\.0\.1:(\d+)(\/[\w/]*)/.exec(hc);
      if (!m) problems.push(`${where}: healthcheck does not ask the service over HTTP`);
      else {
        if (Number(m[2]) !== port) problems.push(`${where}: healthcheck port ${m[2]} is not the service port ${port}`);
        if (!opsServes(m[3]!)) problems.push(`${where}: healthcheck path ${m[3]} is not served`);
        // A service serving HTTPS answers nothing in plaintext: the check must speak TLS.
        const tlsPrefix = TLS_PREFIX[role];
        if (tlsPrefix && servesTls(env, tlsPrefix) && m[1] !== 'https')
          problems.push(`${where}: ${role} serves HTTPS (${tlsPrefix}_TLS_*), the healthcheck asks over ${m[1]}`);
      }
      for (const p of svc.ports ?? []) {
        const container = Number(String(p).split(':').pop());
        if (container !== port) problems.push(`${where}: published container port ${container} is not the service port ${port}`);
      }
    }
    if (role === 'ingest') {
      const drainS =
        Number(typeof env.INGEST_SHUTDOWN_DRAIN_MS === 'string' ? env.INGEST_SHUTDOWN_DRAIN_MS : ROLES.ingest.spec.INGEST_SHUTDOWN_DRAIN_MS!.default) / 1000;
      const grace = Number(/^(\d+)s$/.exec(String(svc.stop_grace_period ?? '10s'))?.[1] ?? 10);
      if (!(grace > drainS)) problems.push(`${where}: stop_grace_period ${grace} s is not longer than the drain ${drainS} s`);
    }
  }
  const roles = [...roleByService.values()].map((r) => r.role);
  if (roles.filter((r) => r === 'ingest').length < 2) problems.push('compose: two ingest workers are required');
  if (!roles.includes('aggregator')) problems.push('compose: no aggregator');
  if (!roles.includes('answers')) problems.push("compose: no answer service (the people's path to noisy answers, aggregator/answer-service.ts)");
  // Prometheus must scrape every ingest, aggregator and answer service at its port, under the job the alerts use.
  for (const [job, targets] of opts.prometheusTargets) {
    if (!opts.jobs.has(job)) problems.push(`prometheus.yml: job ${job} is not one the alert rules use`);
    for (const t of targets) {
      const [host, port] = t.split(':');
      const svc = roleByService.get(host!);
      if (!svc) problems.push(`prometheus.yml: target ${t} is no ingest/aggregator/answers service of compose`);
      else if (svc.role !== job) problems.push(`prometheus.yml: target ${t} runs ${svc.role}, listed under job ${job}`);
      else if (Number(port) !== svc.port) problems.push(`prometheus.yml: target ${t} is not the service port ${svc.port}`);
      else if (opts.prometheusSchemes) {
        const tlsPrefix = TLS_PREFIX[svc.role];
        const scheme = opts.prometheusSchemes.get(job) ?? 'http';
        if (tlsPrefix && servesTls(composeEnv(services[host!]), tlsPrefix) && scheme !== 'https')
          problems.push(`prometheus.yml: job ${job} scrapes ${t} over ${scheme}, but ${svc.role} serves HTTPS only (${tlsPrefix}_TLS_*): scheme: https`);
      }
    }
  }
  for (const [name, { role }] of roleByService) {
    if (role === 'topics') continue;
    if (![...opts.prometheusTargets.values()].some((ts) => ts.some((t) => t.split(':')[0] === name)))
      problems.push(`prometheus.yml: compose service ${name} is not scraped`);
  }
  return problems;
}

// ---------------------------------------------------------------------------------------------------
// Security: what users deploy is authenticated, authorised and encrypted by default (deploy/THREAT-MODEL.md).
// Each check returns problems, so a test can break a copy of a manifest and see it reported.

/** Prefix of the TLS settings of the roles that serve HTTPS themselves (runtime/tls.ts). */
export const TLS_PREFIX: Partial<Record<Role, string>> = { ingest: 'INGEST', answers: 'ANSWERS' };

/** Whether the service serves HTTPS with this environment (both <P>_TLS_* files set, as runtime/tls.ts tlsSettingProblems reads them). */
export function servesTls(env: Record<string, EnvValue>, prefix = 'INGEST'): boolean {
  const set = (k: string) => env[k] === FROM_SECRET || (typeof env[k] === 'string' && env[k] !== '');
  return set(`${prefix}_TLS_CERT_FILE`) && set(`${prefix}_TLS_KEY_FILE`);
}

/**
 * The Kafka principal each role logs in as (tools/security/acls.ts KAFKA_ROLES): the topic plan as the
 * operator, the super user. The answer service has none.
 */
export const ROLE_PRINCIPAL: Record<Exclude<Role, 'answers'>, KafkaRole> = { ingest: 'ingest', aggregator: 'aggregator', topics: 'operator' };

/**
 * The answer service's own ClickHouse user (never the analyst's, whose holder reads the released views
 * exactly, nor the aggregator's): deploy/compose/clickhouse/users.d/answers.xml, stack/clickhouse-users.ts.
 */
export const ANSWERS_CLICKHOUSE_USER = 'answers';

/** Names of settings whose value is a secret: given only as a file (`..._FILE`), never as a value. */
export function isSecretValueName(name: string): boolean {
  return /(PASSWORD|SECRET|TOKEN|PRIVATE_KEY)$/i.test(name);
}

/**
 * Where a file path comes from in a container: the volume (compose) or Secret/ConfigMap (Kubernetes)
 * mounted over it, or undefined when nothing is mounted there.
 */
export type MountOf = (path: string) => string | undefined;

/**
 * Problems of one service container's client security: Kafka over SASL_SSL with SCRAM-SHA-512 as the
 * role's own principal, the password and CA as mounted files; ingest serving HTTPS only; the aggregator
 * reaching ClickHouse over HTTPS with a CA and a password file. No secret is a value.
 */
export function clientSecurityProblems(role: Role, env: Record<string, EnvValue>, where: string, mountOf: MountOf): string[] {
  const problems: string[] = [];
  const val = (k: string): string | undefined => (typeof env[k] === 'string' && env[k] !== '' ? (env[k] as string) : undefined);
  const file = (k: string, what: string) => {
    const v = val(k);
    if (!v) problems.push(`${where}: ${k} is not set (${what})`);
    else if (!mountOf(v)) problems.push(`${where}: ${k}=${v} is on no mounted volume or Secret`);
  };
  if (role === 'answers') {
    // HTTPS for the people who ask (bearer tokens, answers), ClickHouse over HTTPS as its own user.
    if (!servesTls(env, 'ANSWERS'))
      problems.push(`${where}: the answer service does not serve HTTPS: ANSWERS_TLS_CERT_FILE and ANSWERS_TLS_KEY_FILE must both be set`);
    file('ANSWERS_TLS_CERT_FILE', 'the HTTPS certificate chain');
    file('ANSWERS_TLS_KEY_FILE', 'the HTTPS key');
    file('ANSWERS_TOKENS_FILE', "the analysts' token hashes");
    if (env.ANSWERS_UNSAFE_PLAINTEXT_HTTP === 'true')
      problems.push(`${where}: ANSWERS_UNSAFE_PLAINTEXT_HTTP=true serves bearer tokens and answers in plaintext`);
    if ((env.ANALYST_CLICKHOUSE ?? 'server') === 'server') {
      const url = val('ANALYST_CLICKHOUSE_URL');
      if (!url?.startsWith('https://')) problems.push(`${where}: ANALYST_CLICKHOUSE_URL=${url ?? '(unset)'} is not https://`);
      file('ANALYST_CLICKHOUSE_TLS_CA_FILE', "the CA of ClickHouse's certificate");
      file('ANALYST_CLICKHOUSE_PASSWORD_FILE', 'the ClickHouse password as a file');
      if ('ANALYST_CLICKHOUSE_PASSWORD' in env)
        problems.push(`${where}: ANALYST_CLICKHOUSE_PASSWORD is set: give the password as a file (ANALYST_CLICKHOUSE_PASSWORD_FILE)`);
      if (env.ANALYST_UNSAFE_PLAINTEXT_CLICKHOUSE === 'true')
        problems.push(`${where}: ANALYST_UNSAFE_PLAINTEXT_CLICKHOUSE=true sends the ClickHouse password in clear`);
      if (env.ANALYST_CLICKHOUSE_USER !== ANSWERS_CLICKHOUSE_USER)
        problems.push(
          `${where}: ANALYST_CLICKHOUSE_USER=${String(env.ANALYST_CLICKHOUSE_USER ?? '(unset: analyst)')}, expected the service's own user ${ANSWERS_CLICKHOUSE_USER} (the analyst's credential reads the released views exactly)`,
        );
    }
    return problems;
  }
  if (env.PIPELINE_KAFKA_SECURITY !== 'sasl_ssl')
    problems.push(`${where}: PIPELINE_KAFKA_SECURITY=${String(env.PIPELINE_KAFKA_SECURITY ?? '(unset: plaintext)')}, expected sasl_ssl`);
  if (env.PIPELINE_KAFKA_SASL_MECHANISM !== 'scram-sha-512')
    problems.push(`${where}: PIPELINE_KAFKA_SASL_MECHANISM=${String(env.PIPELINE_KAFKA_SASL_MECHANISM ?? '(unset)')}, expected scram-sha-512 set explicitly`);
  if (env.PIPELINE_KAFKA_SASL_USERNAME !== ROLE_PRINCIPAL[role])
    problems.push(
      `${where}: PIPELINE_KAFKA_SASL_USERNAME=${String(env.PIPELINE_KAFKA_SASL_USERNAME ?? '(unset)')}, expected ${role}'s own principal ${ROLE_PRINCIPAL[role]}`,
    );
  if ('PIPELINE_KAFKA_SASL_PASSWORD' in env)
    problems.push(`${where}: PIPELINE_KAFKA_SASL_PASSWORD is set: give the password as a file (PIPELINE_KAFKA_SASL_PASSWORD_FILE)`);
  file('PIPELINE_KAFKA_SASL_PASSWORD_FILE', 'the Kafka password as a file');
  file('PIPELINE_KAFKA_TLS_CA_FILE', "the CA of the brokers' certificates");
  if (role === 'ingest') {
    if (!servesTls(env)) problems.push(`${where}: ingest does not serve HTTPS: INGEST_TLS_CERT_FILE and INGEST_TLS_KEY_FILE must both be set`);
    file('INGEST_TLS_CERT_FILE', 'the HTTPS certificate chain');
    file('INGEST_TLS_KEY_FILE', 'the HTTPS key');
    if (env.INGEST_UNSAFE_PLAINTEXT_HTTP === 'true') problems.push(`${where}: INGEST_UNSAFE_PLAINTEXT_HTTP=true serves devices in plaintext`);
  }
  if (role === 'aggregator' && (env.AGGREGATOR_CLICKHOUSE ?? 'server') === 'server') {
    const url = val('AGGREGATOR_CLICKHOUSE_URL');
    if (!url?.startsWith('https://')) problems.push(`${where}: AGGREGATOR_CLICKHOUSE_URL=${url ?? '(unset)'} is not https://`);
    file('AGGREGATOR_CLICKHOUSE_TLS_CA_FILE', "the CA of ClickHouse's certificate");
    file('AGGREGATOR_CLICKHOUSE_PASSWORD_FILE', 'the ClickHouse password as a file');
    if ('AGGREGATOR_CLICKHOUSE_PASSWORD' in env)
      problems.push(`${where}: AGGREGATOR_CLICKHOUSE_PASSWORD is set: give the password as a file (AGGREGATOR_CLICKHOUSE_PASSWORD_FILE)`);
    if (env.AGGREGATOR_UNSAFE_PLAINTEXT_CLICKHOUSE === 'true')
      problems.push(`${where}: AGGREGATOR_UNSAFE_PLAINTEXT_CLICKHOUSE=true sends the ClickHouse password in clear`);
  }
  return problems;
}

/** A Java properties file as a map (no continuation lines: the brokers' files have none). */
export function parseProperties(text: string): Record<string, string> {
  const out: Record<string, string> = {};
  for (const line of text.split('\n')) {
    const l = line.trim();
    if (!l || l.startsWith('#') || l.startsWith('!')) continue;
    const i = l.search(/[=:]/);
    if (i > 0) out[l.slice(0, i).trim()] = l.slice(i + 1).trim();
  }
  return out;
}

/** Principals that may be Kafka super users: the brokers' own (inter-broker and controller traffic) and the operator. */
export const ALLOWED_SUPER_USERS = ['User:broker', 'User:operator'];

/**
 * Problems of a broker's properties: a listener that is PLAINTEXT or SASL_PLAINTEXT (the controller's
 * included), a SASL mechanism other than SCRAM-SHA-512 for clients, an authorizer that is missing or allows
 * what no ACL grants, a super user beyond the broker and the operator.
 */
export function kafkaBrokerProblems(props: Record<string, string>, where: string): string[] {
  const problems: string[] = [];
  const map = new Map(
    (props['listener.security.protocol.map'] ?? '')
      .split(',')
      .filter(Boolean)
      .map((e) => e.split(':').map((x) => x.trim()) as [string, string]),
  );
  const listeners = (props.listeners ?? '').split(',').filter(Boolean);
  if (listeners.length === 0) problems.push(`${where}: no listeners`);
  for (const l of listeners) {
    const name = l.split('://')[0]!.trim();
    // Without a map entry Kafka takes the listener's name as its protocol (PLAINTEXT://...).
    const protocol = map.get(name) ?? name;
    if (!['SASL_SSL', 'SSL'].includes(protocol)) problems.push(`${where}: listener ${name} is ${protocol}: every listener must be SASL_SSL (or SSL)`);
  }
  for (const [name, protocol] of map) if (/PLAINTEXT/.test(protocol)) problems.push(`${where}: listener.security.protocol.map maps ${name} to ${protocol}`);
  if (props['sasl.enabled.mechanisms'] !== 'SCRAM-SHA-512')
    problems.push(`${where}: sasl.enabled.mechanisms=${props['sasl.enabled.mechanisms'] ?? '(unset)'}, expected SCRAM-SHA-512 only`);
  if (props['sasl.mechanism.inter.broker.protocol'] !== 'SCRAM-SHA-512')
    problems.push(`${where}: sasl.mechanism.inter.broker.protocol=${props['sasl.mechanism.inter.broker.protocol'] ?? '(unset)'}, expected SCRAM-SHA-512`);
  if (props['authorizer.class.name'] !== 'org.apache.kafka.metadata.authorizer.StandardAuthorizer')
    problems.push(`${where}: authorizer.class.name=${props['authorizer.class.name'] ?? '(unset)'}, expected the KRaft StandardAuthorizer`);
  if (props['allow.everyone.if.no.acl.found'] !== 'false')
    problems.push(`${where}: allow.everyone.if.no.acl.found=${props['allow.everyone.if.no.acl.found'] ?? '(unset)'}, expected false (deny what no ACL grants)`);
  const supers = (props['super.users'] ?? '').split(';').filter(Boolean);
  for (const u of supers)
    if (!ALLOWED_SUPER_USERS.includes(u)) problems.push(`${where}: super.users names ${u}; only ${ALLOWED_SUPER_USERS.join(' and ')} may be`);
  if (!supers.includes('User:operator')) problems.push(`${where}: super.users lacks User:operator (topics and ACLs are applied as the operator)`);
  for (const [k, v] of Object.entries(props))
    if (/password/i.test(k) || /password=/i.test(v)) problems.push(`${where}: ${k} holds a password: it belongs in the secrets volume`);
  return problems;
}

/**
 * Default or literal secrets in compose text: `${VAR:-default}` / `${VAR-default}` anywhere (a value that
 * silently stands in when nobody set one), and a secret-named variable given a value instead of a file.
 * `$${...}` is compose's escape for the container's own shell and not a substitution.
 */
export function composeDefaultSecretProblems(text: string, doc: Obj): string[] {
  const problems: string[] = [];
  for (const m of text.matchAll(/(?<!\$)\$\{(\w+)(:?-)([^}]*)\}/g)) problems.push(`compose: \${${m[1]}${m[2]}${m[3]}} gives ${m[1]} a default value`);
  for (const [name, svc] of Object.entries((doc.services ?? {}) as Obj)) {
    const e = (svc as Obj).environment ?? {};
    const entries: [string, string][] = Array.isArray(e)
      ? e.map((x: string) => [x.split('=')[0]!, x.slice(x.indexOf('=') + 1)])
      : Object.entries(e).map(([k, v]) => [k, String(v)]);
    for (const [k, v] of entries)
      if (isSecretValueName(k) && v !== '') problems.push(`compose service ${name}: ${k} is given as a value; give it as a file (${k}_FILE)`);
  }
  for (const [name, sec] of Object.entries((doc.secrets ?? {}) as Obj)) {
    if ((sec as Obj).environment)
      problems.push(`compose secret ${name} comes from the environment variable ${(sec as Obj).environment}; generate it (secrets/init.sh)`);
  }
  return problems;
}

/** The compose volume mounted over `path` in `svc`, if any (longest mount target that contains it). */
export function composeMountOf(svc: Obj): MountOf {
  const mounts = ((svc.volumes ?? []) as (string | Obj)[]).map((v) =>
    typeof v === 'string' ? { source: v.split(':')[0]!, target: v.split(':')[1]! } : { source: String(v.source), target: String(v.target) },
  );
  return (path) =>
    mounts.filter((m) => path === m.target || path.startsWith(`${m.target.replace(/\/$/, '')}/`)).sort((a, b) => b.target.length - a.target.length)[0]?.source;
}

export interface ComposeSecurityInput {
  /** compose.yaml as parsed with merge keys */
  doc: Obj;
  /** its text (for `${VAR:-default}`) */
  text: string;
  /** reads a file relative to the compose folder (broker properties, ClickHouse config) */
  readFile: (relative: string) => string;
}

/**
 * Every security problem of the compose deployment: Kafka's listeners, authorizer and super users; no
 * Kafka or ClickHouse port published or reachable from outside the internal network; ClickHouse with TLS
 * only and without the open `default` user; each service its own principal and secrets volume; no
 * default or literal password.
 */
export function checkComposeSecurity(input: ComposeSecurityInput): string[] {
  const { doc, text, readFile } = input;
  const problems: string[] = [...composeDefaultSecretProblems(text, doc)];
  const services: Obj = doc.services ?? {};
  const networks: Obj = doc.networks ?? {};
  const internalOnly = (svc: Obj) => {
    const ns = (Array.isArray(svc.networks) ? svc.networks : Object.keys(svc.networks ?? {})) as string[];
    return ns.length > 0 && ns.every((n) => networks[n]?.internal === true);
  };
  const secretVolumesByRole = new Map<string, Set<Role>>();
  for (const [name, svc] of Object.entries(services) as [string, Obj][]) {
    const where = `compose service ${name}`;
    const image = String(svc.image ?? '');
    if (image.startsWith('apache/kafka')) {
      const file = svc.environment?.KAFKA_PROPERTIES_FILE as string | undefined;
      if (!file) problems.push(`${where}: KAFKA_PROPERTIES_FILE names no properties file of deploy/compose/kafka`);
      else problems.push(...kafkaBrokerProblems(parseProperties(readFile(`kafka/${file}`)), `${where} (kafka/${file})`));
      if ((svc.ports ?? []).length > 0) problems.push(`${where}: publishes ${JSON.stringify(svc.ports)}; Kafka is reached on the internal network only`);
      if (!internalOnly(svc)) problems.push(`${where}: must be on internal networks only`);
    }
    // The server (a service of the image that sets no entrypoint of its own); the one-shot `ledger` runs
    // the image's client over TLS (deploy/compose/ledger/ledger-init.sh) and has no server config.
    if (image.startsWith('clickhouse/clickhouse-server') && svc.entrypoint === undefined) {
      if ((svc.ports ?? []).length > 0) problems.push(`${where}: publishes ${JSON.stringify(svc.ports)}; ClickHouse is reached on the internal network only`);
      if (!internalOnly(svc)) problems.push(`${where}: must be on internal networks only`);
      const env = (svc.environment ?? {}) as Obj;
      for (const k of ['CLICKHOUSE_USER', 'CLICKHOUSE_PASSWORD', 'CLICKHOUSE_DEFAULT_ACCESS_MANAGEMENT'])
        if (k in env) problems.push(`${where}: ${k} makes the image write a user with a plaintext password; users come from the users.d volume`);
      const configs = ((svc.volumes ?? []) as string[]).filter((v) => /\/config\.d\/[^:]+\.xml/.test(v)).map((v) => v.split(':')[0]!.replace(/^\.\//, ''));
      const xml = configs.map((c) => readFile(c)).join('\n');
      if (!/<https_port>\d+<\/https_port>/.test(xml)) problems.push(`${where}: no https_port in its config.d`);
      for (const port of ['http_port', 'tcp_port', 'mysql_port', 'postgresql_port', 'interserver_http_port'])
        if (!new RegExp(`<${port} remove="1"\\s*/>`).test(xml) || new RegExp(`<${port}>`).test(xml))
          problems.push(`${where}: the plaintext ${port} is not removed by its config.d`);
      const usersMount = ((svc.volumes ?? []) as string[]).find((v) => v.split(':')[1] === '/etc/clickhouse-server/users.d');
      if (!usersMount) problems.push(`${where}: users.d is not the generated users volume`);
    }
    const role = roleOf(svc.command ?? []);
    if (!role) continue;
    const env = composeEnv(svc);
    const mountOf = composeMountOf(svc);
    problems.push(...clientSecurityProblems(role, env, where, mountOf));
    const pw = env.PIPELINE_KAFKA_SASL_PASSWORD_FILE;
    const vol = typeof pw === 'string' ? mountOf(pw) : undefined;
    if (vol) secretVolumesByRole.set(vol, new Set([...(secretVolumesByRole.get(vol) ?? []), role]));
  }
  // Least privilege: one role's Kafka password volume is mounted by services of that role only.
  for (const [vol, roles] of secretVolumesByRole)
    if (roles.size > 1) problems.push(`compose: volume ${vol} holds the Kafka password of ${[...roles].join(' and ')}`);
  const topics = Object.entries(services).filter(([, s]) => roleOf((s as Obj).command ?? []) === 'topics');
  if (topics.length === 0) problems.push('compose: no topics one-shot (it creates the topics and the ACLs)');
  for (const [name, s] of topics)
    if (!((s as Obj).command as string[]).includes('--acls')) problems.push(`compose service ${name}: the topic plan runs without --acls: no ACL is applied`);
  return problems;
}

/**
 * Secrets a Kubernetes deployment expects to be created from outside, as documented in deploy/k8s/README.md:
 * one `kubectl -n telemetry create secret generic|tls NAME ...` line each, with the keys it creates.
 */
export function documentedSecrets(readme: string): Map<string, Set<string>> {
  const out = new Map<string, Set<string>>();
  for (const m of readme.matchAll(/^kubectl -n telemetry create secret (generic|tls) ([\w.-]+)(.*)$/gm)) {
    const keys = m[1] === 'tls' ? ['tls.crt', 'tls.key'] : [...m[3]!.matchAll(/--from-file=([\w.-]+)=/g)].map((k) => k[1]!);
    out.set(m[2]!, new Set(keys));
  }
  return out;
}

/**
 * Every security problem of the Kubernetes manifests: each service container's client security
 * (clientSecurityProblems, files resolved through its mounts), Secrets committed with values, Secrets
 * mounted but neither committed nor documented, secret-named settings given as values, the Ingress in
 * front of ingest (TLS, HTTPS to the pods, the body limit equal to INGEST_MAX_BODY_BYTES), a default-deny
 * NetworkPolicy, and the topic plan applying the ACLs.
 */
export function checkK8sSecurity(docs: readonly K8sDoc[], readme: string): string[] {
  const problems: string[] = [];
  const expected = documentedSecrets(readme);
  const committed = (name: string) => find(docs, 'Secret', name);
  const known = (name: string, key?: string) => {
    const c = committed(name);
    if (c) return key === undefined || key in { ...(c.data ?? {}), ...(c.stringData ?? {}) };
    const e = expected.get(name);
    return e !== undefined && (key === undefined || e.has(key));
  };
  for (const { file, doc } of docs) {
    const where = `${file} ${doc.kind}/${doc.metadata?.name}`;
    if (doc.kind === 'Secret') {
      const values = { ...(doc.data ?? {}), ...(doc.stringData ?? {}) };
      if (Object.keys(values).length > 0)
        problems.push(`${where}: committed with values (${Object.keys(values).join(', ')}); create it with the line of deploy/k8s/README.md instead`);
    }
    if (doc.kind === 'ConfigMap')
      for (const k of Object.keys(doc.data ?? {})) if (isSecretValueName(k)) problems.push(`${where}: ${k} is a secret given as a value; mount it as a file`);
  }
  let ingestEnv: Record<string, EnvValue> | undefined;
  for (const { where: podWhere, pod } of podsOf(docs)) {
    const spec = pod.spec ?? {};
    const volumes = new Map<string, Obj>(((spec.volumes ?? []) as Obj[]).map((v) => [v.name as string, v]));
    for (const v of volumes.values()) {
      const refs: { name: string; keys: string[] }[] = [];
      if (v.secret) refs.push({ name: v.secret.secretName, keys: ((v.secret.items ?? []) as Obj[]).map((i) => i.key as string) });
      for (const src of (v.projected?.sources ?? []) as Obj[])
        if (src.secret) refs.push({ name: src.secret.name, keys: ((src.secret.items ?? []) as Obj[]).map((i) => i.key as string) });
      for (const r of refs) {
        if (!known(r.name))
          problems.push(`${podWhere}: volume ${v.name} mounts Secret ${r.name}, which is neither committed nor created by a line of deploy/k8s/README.md`);
        else for (const k of r.keys) if (!known(r.name, k)) problems.push(`${podWhere}: Secret ${r.name} has no key ${k} (deploy/k8s/README.md)`);
      }
    }
    for (const c of [...(spec.initContainers ?? []), ...(spec.containers ?? [])] as Obj[]) {
      const where = `${podWhere} container ${c.name}`;
      for (const e of (c.env ?? []) as Obj[])
        if (isSecretValueName(e.name) && e.value !== undefined) problems.push(`${where}: ${e.name} is given as a value; mount it as a file`);
      const role = roleOf([...(c.command ?? []), ...(c.args ?? [])]);
      if (!role) continue;
      const { env } = containerEnv(docs, c, where);
      const mounts = ((c.volumeMounts ?? []) as Obj[]).map((m) => ({ target: m.mountPath as string, volume: volumes.get(m.name) }));
      const mountOf: MountOf = (path) => {
        const m = mounts.filter((x) => path.startsWith(`${x.target.replace(/\/$/, '')}/`)).sort((a, b) => b.target.length - a.target.length)[0];
        const v = m?.volume;
        if (!v) return undefined;
        if (v.secret) return `secret ${v.secret.secretName}`;
        if (v.projected) return `projected ${v.name}`;
        if (v.configMap) return `configMap ${v.configMap.name}`;
        return undefined;
      };
      problems.push(...clientSecurityProblems(role, env, where, mountOf));
      if (role === 'ingest') ingestEnv = env;
      if (role === 'topics' && ![...(c.command ?? []), ...(c.args ?? [])].includes('--acls'))
        problems.push(`${where}: the topic plan runs without --acls: no ACL is applied`);
    }
  }
  // Devices reach ingest through an Ingress with TLS, which speaks HTTPS to the pods and limits bodies as ingest does.
  const ingresses = docs.filter((d) => d.doc.kind === 'Ingress');
  const toIngest = ingresses.filter(({ doc }) =>
    ((doc.spec?.rules ?? []) as Obj[]).some((r) => ((r.http?.paths ?? []) as Obj[]).some((p) => p.backend?.service?.name === 'ingest')),
  );
  if (toIngest.length === 0) problems.push('k8s: no Ingress in front of the ingest Service');
  const bodyLimit =
    typeof ingestEnv?.INGEST_MAX_BODY_BYTES === 'string' && ingestEnv.INGEST_MAX_BODY_BYTES !== ''
      ? Number(ingestEnv.INGEST_MAX_BODY_BYTES)
      : (ROLES.ingest.spec.INGEST_MAX_BODY_BYTES!.default as number);
  for (const { file, doc } of toIngest) {
    const where = `${file} Ingress/${doc.metadata?.name}`;
    const ann = (doc.metadata?.annotations ?? {}) as Obj;
    const hosts = ((doc.spec?.rules ?? []) as Obj[]).map((r) => r.host as string);
    const tlsHosts = ((doc.spec?.tls ?? []) as Obj[]).flatMap((t) => (t.hosts ?? []) as string[]);
    for (const h of hosts) if (!tlsHosts.includes(h)) problems.push(`${where}: host ${h} has no TLS`);
    for (const t of (doc.spec?.tls ?? []) as Obj[])
      if (!known(t.secretName)) problems.push(`${where}: TLS Secret ${t.secretName} is not created by a line of deploy/k8s/README.md`);
    if (ann['nginx.ingress.kubernetes.io/backend-protocol'] !== 'HTTPS') problems.push(`${where}: backend-protocol is not HTTPS (ingest serves HTTPS only)`);
    if (ann['nginx.ingress.kubernetes.io/proxy-ssl-verify'] !== 'on')
      problems.push(`${where}: proxy-ssl-verify is not on (the pods' certificate is not checked)`);
    const caSecret = String(ann['nginx.ingress.kubernetes.io/proxy-ssl-secret'] ?? '')
      .split('/')
      .pop()!;
    if (!known(caSecret, 'ca.crt')) problems.push(`${where}: proxy-ssl-secret ${caSecret} holds no ca.crt (deploy/k8s/README.md)`);
    const size = ann['nginx.ingress.kubernetes.io/proxy-body-size'];
    if (Number(size) !== bodyLimit) problems.push(`${where}: proxy-body-size ${String(size)} is not INGEST_MAX_BODY_BYTES ${bodyLimit}`);
  }
  const denyAll = docs.some(
    ({ doc }) =>
      doc.kind === 'NetworkPolicy' &&
      Object.keys(doc.spec?.podSelector ?? {}).length === 0 &&
      (doc.spec?.policyTypes ?? []).includes('Ingress') &&
      (doc.spec?.ingress ?? []).length === 0,
  );
  if (!denyAll) problems.push('k8s: no default-deny NetworkPolicy for ingress traffic');
  return problems;
}

/**
 * compose's own merge of an override file over a base (`docker compose -f base -f override`), for what
 * these files use: mappings merged key by key, `volumes` merged by container path, other lists and
 * scalars replaced.
 */
export function mergeCompose(base: Obj, override: Obj): Obj {
  const target = (v: unknown) => (typeof v === 'string' ? v.split(':')[1] : String((v as Obj).target));
  const merge = (a: unknown, b: unknown, key: string): unknown => {
    if (key === 'volumes' && Array.isArray(a) && Array.isArray(b)) {
      const out = new Map<string, unknown>(a.map((v) => [target(v)!, v]));
      for (const v of b) out.set(target(v)!, v);
      return [...out.values()];
    }
    if (a && b && typeof a === 'object' && typeof b === 'object' && !Array.isArray(a) && !Array.isArray(b)) {
      const out: Obj = { ...(a as Obj) };
      for (const [k, v] of Object.entries(b as Obj)) out[k] = k in out ? merge(out[k], v, k) : structuredClone(v);
      return out;
    }
    return structuredClone(b);
  };
  return merge(structuredClone(base), override, '') as Obj;
}

/**
 * The ACL list covers the services as they are deployed: each service's principal (its
 * PIPELINE_KAFKA_SASL_USERNAME) holds the grants of its role in `plan` (the list the topic plan applies,
 * tools/topic-plan.ts aclPlan over tools/security/acls.ts), and the aggregator's group is the one granted.
 */
export function aclCoverageProblems(plan: readonly AclRule[], services: readonly { role: Role; env: Record<string, EnvValue>; where: string }[]): string[] {
  const problems: string[] = [];
  for (const { role, env, where } of services) {
    const user = `User:${String(env.PIPELINE_KAFKA_SASL_USERNAME ?? '')}`;
    const mine = plan.filter((r) => r.principal === user);
    if (role === 'ingest' && !mine.some((r) => r.resourceType === 'topic' && r.operation === 'write'))
      problems.push(`${where}: principal ${user} may write no topic in the ACL list`);
    if (role === 'aggregator') {
      const group = typeof env.AGGREGATOR_GROUP_ID === 'string' ? env.AGGREGATOR_GROUP_ID : String(ROLES.aggregator.spec.AGGREGATOR_GROUP_ID!.default);
      if (!mine.some((r) => r.resourceType === 'topic' && r.operation === 'read'))
        problems.push(`${where}: principal ${user} may read no topic in the ACL list`);
      if (!mine.some((r) => r.resourceType === 'group' && r.resourceName === group && r.operation === 'read'))
        problems.push(`${where}: the ACL list grants ${user} no READ on its consumer group ${group} (--aggregator-group of the topic plan)`);
    }
  }
  return problems;
}

/** The views the analyst and the answer service may read: every view the views migration creates. */
export const RELEASED_VIEWS = [
  ...readFileSync(new URL('../aggregator/migrations/R_analyst_views.sql', import.meta.url), 'utf8').matchAll(/^\{create_view\} \{db\}\.(\w+) AS/gm),
].map((m) => m[1]!);

export interface AnswersUserInput {
  /** deploy/compose/clickhouse/users.d/answers.xml */
  usersXml: string;
  /** deploy/security/clickhouse-grants.sql */
  grantsSql: string;
  /** deploy/compose/secrets/init.sh */
  initScript: string;
}

const sameSet = (a: readonly string[], b: readonly string[]) => JSON.stringify([...a].sort()) === JSON.stringify([...b].sort());

/**
 * The answer service's own privacy ledger on the modern server of compose and Kubernetes: a database the
 * analyst has no grant on (ANSWERS_LEDGER_DATABASE; deploy/compose/ledger/ledger-init.sh makes it in
 * compose, deploy/security/clickhouse-grants.sql on Kubernetes), so the analyst, which may INSERT into
 * analytics.privacy_ledger, cannot write rows in a token holder's name.
 */
export const ANSWERS_LEDGER_DATABASE = 'analytics_ledger';
export const ANSWERS_LEDGER_TABLE = `${ANSWERS_LEDGER_DATABASE}.privacy_ledger`;

/**
 * The answer service's ClickHouse user in what users deploy: SELECT on the released views and SELECT,
 * INSERT on its own privacy ledger (ANSWERS_LEDGER_TABLE), nothing else (no DDL, no ALTER/DELETE of ledger rows, no access
 * management); its limits pinned by constraints since it is not readonly; no committed password, its hash
 * generated by compose's secrets one-shot; the same grants in the SQL file for Kubernetes' ClickHouse.
 */
export function answersUserProblems(a: AnswersUserInput): string[] {
  const out: string[] = [];
  const want = [...RELEASED_VIEWS.map((v) => `GRANT SELECT ON analytics.${v}`), `GRANT SELECT, INSERT ON ${ANSWERS_LEDGER_TABLE}`];
  const user = /<users>[\s\S]*?<answers>([\s\S]*?)<\/answers>[\s\S]*?<\/users>/.exec(a.usersXml)?.[1] ?? '';
  const grants = [...user.matchAll(/<query>([^<]*)<\/query>/g)].map((m) => m[1]!.trim());
  if (!sameSet(grants, want)) out.push(`users.d/answers.xml grants ${JSON.stringify(grants)}, expected exactly ${JSON.stringify(want)}`);
  if (!/<access_management>0<\/access_management>/.test(user)) out.push('users.d/answers.xml: access_management must be 0');
  if (/<password/.test(user)) out.push('users.d/answers.xml: holds a password; the hash is generated (deploy/compose/secrets/init.sh)');
  const profile = /<profiles>[\s\S]*?<answers>([\s\S]*?)<\/answers>[\s\S]*?<\/profiles>/.exec(a.usersXml)?.[1] ?? '';
  const constraints = /<constraints>([\s\S]*?)<\/constraints>/.exec(profile)?.[1] ?? '';
  for (const [setting, value] of [
    ['allow_ddl', '0'],
    ['max_memory_usage', undefined],
    ['max_execution_time', undefined],
    ['max_result_rows', undefined],
  ] as const) {
    if (!new RegExp(`<${setting}>${value ?? '\\d+'}</${setting}>`).test(profile.replace(constraints, '')))
      out.push(`users.d/answers.xml: the answers profile does not set ${setting}${value ? `=${value}` : ''}`);
    if (!new RegExp(`<${setting}><(const|readonly)/></${setting}>`).test(constraints))
      out.push(`users.d/answers.xml: ${setting} is not pinned by a constraint (the user is not readonly, it could change it)`);
  }
  if (!/<answers><password_sha256_hex>%s<\/password_sha256_hex><\/answers>/.test(a.initScript))
    out.push("deploy/compose/secrets/init.sh: does not write the answer service's password hash");
  const toAnswers = statements(a.grantsSql).filter((s) => /^GRANT .* TO answers$/.test(s));
  const wantSql = want.map((g) => `${g} TO answers`);
  if (!sameSet(toAnswers, wantSql)) out.push(`clickhouse-grants.sql grants answers ${JSON.stringify(toAnswers)}, expected exactly ${JSON.stringify(wantSql)}`);
  return out;
}

export interface AnalystUserInput {
  /** deploy/compose/clickhouse/users.d/analyst.xml */
  usersXml: string;
  /** deploy/security/clickhouse-grants.sql */
  grantsSql: string;
}

/** The privacy ledger, the one table the analyst may write (aggregator/migrations/002_privacy_ledger.sql). */
export const LEDGER_TABLE = 'analytics.privacy_ledger';

/**
 * What the analyst's profile pins, each by a constraint: readonly=0 (an INSERT needs it), no DDL, the
 * limits, and the query log (every `--exact` answer is logged there too). `undefined`: any number.
 */
const ANALYST_PINNED: readonly (readonly [string, string | undefined])[] = [
  ['readonly', '0'],
  ['allow_ddl', '0'],
  ['max_memory_usage', undefined],
  ['max_execution_time', undefined],
  ['max_result_rows', undefined],
  ['result_overflow_mode', 'throw'],
  ['log_queries', '1'],
];

/** Privileges of a grant (`SELECT(a, b), INSERT` -> SELECT, INSERT), column lists dropped. */
const privilegesOf = (list: string) =>
  list
    .replace(/\([^)]*\)/g, '')
    .split(',')
    .map((p) => p.trim().toUpperCase())
    .filter(Boolean);

/** Problems of one analyst grant (`GRANT privs ON target`): anything but SELECT, and SELECT, INSERT on the ledger. */
function analystGrantProblems(grant: string, where: string): string[] {
  const m = /^GRANT (.+?) ON (\S+)/.exec(grant);
  if (!m) return [`${where}: cannot read the grant ${JSON.stringify(grant)}`];
  const allowed = m[2] === LEDGER_TABLE ? ['SELECT', 'INSERT'] : ['SELECT'];
  const extra = privilegesOf(m[1]!).filter((p) => !allowed.includes(p));
  return extra.length
    ? [
        `${where}: grants the analyst ${extra.join(', ')} ON ${m[2]}; with readonly=0 the grants are all that limit it: SELECT on the released views, INSERT on ${LEDGER_TABLE} only`,
      ]
    : [];
}

/**
 * The analyst can write the privacy ledger and nothing else, on the modern server of compose and
 * Kubernetes (ClickHouse 24.8): every `--exact` answer is a ledger row, and 24.8 refuses any INSERT
 * under readonly=1 or readonly=2 (2 adds SET and temporary tables, not writes), whatever the grants. So
 * the analyst's profile must be readonly=0 with readonly, allow_ddl, the limits and log_queries pinned
 * by constant constraints (users.d `<const/>`, SQL `CONST`), and its only write grant INSERT on the
 * ledger table. Checked by reading the files: no 24.8 server runs here (the local one is 18.16, whose
 * analyst stays readonly=1 and cannot write a ledger: stack/clickhouse-users.ts).
 */
export function analystLedgerWriterProblems(a: AnalystUserInput): string[] {
  const out: string[] = [];
  const xml = 'users.d/analyst.xml';
  const profile = /<profiles>[\s\S]*?<analyst>([\s\S]*?)<\/analyst>[\s\S]*?<\/profiles>/.exec(a.usersXml)?.[1] ?? '';
  const constraints = /<constraints>([\s\S]*?)<\/constraints>/.exec(profile)?.[1] ?? '';
  const settings = profile.replace(/<constraints>[\s\S]*?<\/constraints>/, '');
  const readonly = /<readonly>\s*(\d+)\s*<\/readonly>/.exec(settings)?.[1];
  if (readonly !== undefined && readonly !== '0')
    out.push(
      `${xml}: the analyst profile has readonly=${readonly}: ClickHouse refuses its INSERT into ${LEDGER_TABLE}, so --exact answers cannot be logged in the ledger (readonly=2 allows SET, not writes)`,
    );
  for (const [setting, value] of ANALYST_PINNED) {
    if (setting === 'readonly' && readonly !== undefined && readonly !== '0') continue;
    if (!new RegExp(`<${setting}>${value ?? '\\d+'}</${setting}>`).test(settings))
      out.push(`${xml}: the analyst profile does not set ${setting}${value ? `=${value}` : ''}`);
    if (!new RegExp(`<${setting}>\\s*<(const|readonly)/>\\s*</${setting}>`).test(constraints))
      out.push(`${xml}: ${setting} is not pinned by a constraint (<const/>): the analyst could change it with SET or a client setting`);
  }
  const user = /<users>[\s\S]*?<analyst>([\s\S]*?)<\/analyst>[\s\S]*?<\/users>/.exec(a.usersXml)?.[1] ?? '';
  if (!/<profile>analyst<\/profile>/.test(user)) out.push(`${xml}: the analyst user does not use the analyst profile`);
  const grants = [...user.matchAll(/<query>([^<]*)<\/query>/g)].map((m) => m[1]!.trim());
  for (const g of grants) out.push(...analystGrantProblems(g, xml));
  if (!grants.some((g) => /^GRANT (.+) ON (\S+)$/.exec(g)?.[2] === LEDGER_TABLE && privilegesOf(g.slice(6, g.lastIndexOf(' ON '))).includes('INSERT')))
    out.push(`${xml}: the analyst has no INSERT on ${LEDGER_TABLE}: --exact answers cannot be logged in the ledger`);

  // The same rules in the SQL access control of deploy/security/clickhouse-grants.sql.
  const sql = 'clickhouse-grants.sql';
  const stmts = statements(a.grantsSql);
  const profileSql = stmts.find((s) => /^CREATE SETTINGS PROFILE (IF NOT EXISTS )?analyst_limits\b/.test(s)) ?? '';
  if (!profileSql) out.push(`${sql}: no settings profile analyst_limits`);
  else
    for (const [setting, value] of ANALYST_PINNED) {
      const m = new RegExp(`\\b${setting} = '?([\\w.]+)'?( (CONST|READONLY))?(,|$)`).exec(profileSql);
      if (!m) out.push(`${sql}: analyst_limits does not set ${setting}`);
      else {
        if (value !== undefined && m[1] !== value)
          out.push(
            setting === 'readonly'
              ? `${sql}: analyst_limits has readonly = ${m[1]}: ClickHouse refuses the analyst's INSERT into ${LEDGER_TABLE} (readonly = 2 allows SET, not writes)`
              : `${sql}: analyst_limits sets ${setting} = ${m[1]}, expected ${value}`,
          );
        if (!m[2]) out.push(`${sql}: analyst_limits does not pin ${setting} (CONST): the analyst could change it`);
      }
    }
  if (!stmts.some((s) => /^CREATE USER (IF NOT EXISTS )?analyst .*SETTINGS PROFILE 'analyst_limits'$/.test(s)))
    out.push(`${sql}: the analyst user does not take the profile analyst_limits`);
  const toAnalyst = stmts.filter((s) => /^GRANT .* TO analyst$/.test(s));
  for (const g of toAnalyst) out.push(...analystGrantProblems(g, sql));
  if (!toAnalyst.some((g) => g === `GRANT SELECT, INSERT ON ${LEDGER_TABLE} TO analyst`))
    out.push(`${sql}: the analyst has no INSERT on ${LEDGER_TABLE}: --exact answers cannot be logged in the ledger`);
  return out;
}

export interface AnswersLedgerInput {
  /** deploy/compose/compose.yaml, parsed (merge keys resolved) */
  compose: Obj;
  /** the Kubernetes documents of deploy/k8s */
  k8sDocs: readonly K8sDoc[];
  /** reads a file relative to deploy/compose (the users.d XML) */
  readCompose: (relative: string) => string;
  /** the file names in deploy/compose/clickhouse/users.d */
  usersDFiles: readonly string[];
  /** deploy/security/clickhouse-grants.sql */
  grantsSql: string;
  /** the ledger's DDL for a database (stack/clickhouse-users.ts ledgerTableSql: the aggregator's migration 002) */
  ledgerDdl: (db: string) => string[];
}

/** The database part of a grant's target (`db.table`, `db.*`, `*.*`). */
const grantDatabase = (grant: string) => /\bON (\S+?)\.\S+/.exec(grant)?.[1];

/** Grants of `user` in a users.d XML text (its <grants><query> lines). */
const xmlGrantsOf = (xml: string, user: string) =>
  [...(new RegExp(`<users>[\\s\\S]*?<${user}>([\\s\\S]*?)</${user}>`).exec(xml)?.[1] ?? '').matchAll(/<query>([^<]*)<\/query>/g)].map((m) => m[1]!.trim());

/**
 * The answer service's ledger database, in compose and in Kubernetes, is one the analyst cannot write:
 * ANSWERS_LEDGER_DATABASE is set (empty means the views database, analytics, whose privacy_ledger the
 * analyst may INSERT into: it could spend a token holder's budget or plant the answer their repeated
 * question returns, the earliest row for name + question); the analyst has no grant there (users.d
 * analyst.xml, the grants SQL; `*.*` counts); the answer service reads and appends to that database's
 * privacy_ledger; and whoever deploys creates it from the aggregator's migration: compose's one-shot
 * `ledger` (mounting migration 002 itself, run before the answer service) and the grants SQL (statements
 * equal to ledgerDdl, so the copy cannot drift). Read from the files: no 24.8 server runs here.
 */
export function answersLedgerProblems(a: AnswersLedgerInput): string[] {
  const out: string[] = [];
  const analystXml = xmlGrantsOf(a.readCompose('clickhouse/users.d/analyst.xml'), 'analyst');
  const answersXml = xmlGrantsOf(a.readCompose('clickhouse/users.d/answers.xml'), 'answers');
  const stmts = statements(a.grantsSql);
  const grantsTo = (user: string) => stmts.filter((s) => new RegExp(`^GRANT .* TO (.*, )?${user}(,|$)`).test(s));
  const norm = (s: string) => s.replace(/\s+/g, ' ').trim();
  const analystWrites = (db: string, grants: readonly string[], where: string) => {
    for (const g of grants) {
      const gdb = grantDatabase(g);
      if (gdb === db || gdb === '*')
        out.push(`${where}: the analyst has ${JSON.stringify(g)}: it must have no grant on the answer service's ledger database ${db}`);
    }
  };
  const answersAppends = (db: string, grants: readonly string[], where: string) => {
    if (
      !grants.some(
        (g) =>
          new RegExp(`^GRANT (.+) ON ${db}\\.privacy_ledger( TO answers)?$`).test(g) &&
          ['SELECT', 'INSERT'].every((p) => privilegesOf(/^GRANT (.+?) ON /.exec(g)![1]!).includes(p)),
      )
    )
      out.push(`${where}: the answer service's user has no SELECT, INSERT on ${db}.privacy_ledger, its ledger`);
  };
  const ledgerDb = (env: Record<string, EnvValue>, where: string): string | undefined => {
    const db = env.ANSWERS_LEDGER_DATABASE;
    const views = typeof env.ANALYST_DATABASE === 'string' ? env.ANALYST_DATABASE : 'analytics';
    if (typeof db !== 'string' || db === '') {
      out.push(
        `${where}: ANSWERS_LEDGER_DATABASE is not set, so the ledger is ${views}.privacy_ledger, which the analyst may write (rows in a token holder's name): set it to the answer service's own database`,
      );
      return undefined;
    }
    if (db === views) out.push(`${where}: ANSWERS_LEDGER_DATABASE=${db} is the views database, whose privacy_ledger the analyst may write`);
    return db;
  };

  // compose
  const answers = (a.compose.services ?? {}).answers as Obj | undefined;
  if (!answers) out.push('compose: no answer service');
  else {
    const db = ledgerDb(composeEnv(answers), 'compose service answers');
    if (db) {
      analystWrites(db, analystXml, 'users.d/analyst.xml');
      answersAppends(db, answersXml, 'users.d/answers.xml');
      const makers = Object.entries((a.compose.services ?? {}) as Obj).filter(
        ([, s]) =>
          (s as Obj).environment?.LEDGER_DATABASE === db &&
          ((s as Obj).volumes ?? []).some((v: string) => v.split(':')[0]!.endsWith('aggregator/migrations/002_privacy_ledger.sql')),
      );
      if (makers.length === 0)
        out.push(`compose: no one-shot creates ${db}.privacy_ledger from aggregator/migrations/002_privacy_ledger.sql (LEDGER_DATABASE=${db})`);
      for (const [name] of makers)
        if ((answers.depends_on ?? {})[name]?.condition !== 'service_completed_successfully')
          out.push(`compose service answers: does not wait for the one-shot ${name} (service_completed_successfully) that creates its ledger`);
      const owners = a.usersDFiles
        .filter((f) => f.endsWith('.xml'))
        .flatMap((f) => [...a.readCompose(`clickhouse/users.d/${f}`).matchAll(/<query>([^<]*)<\/query>/g)].map((m) => m[1]!.trim()))
        .filter((g) => grantDatabase(g) === db && /CREATE TABLE/.test(g));
      if (owners.length === 0) out.push(`users.d: no user may CREATE TABLE in ${db}: the one-shot cannot create the ledger`);
    }
  }

  // Kubernetes
  const dep = a.k8sDocs.find((d) => d.doc.kind === 'Deployment' && d.doc.metadata?.name === 'answers');
  if (!dep) out.push('k8s: no Deployment answers');
  else {
    const c = (dep.doc.spec.template.spec.containers as Obj[])[0]!;
    const { env } = containerEnv(a.k8sDocs, c, 'Deployment/answers');
    const db = ledgerDb(env, 'Deployment/answers container answers');
    if (db) {
      analystWrites(db, grantsTo('analyst'), 'clickhouse-grants.sql');
      answersAppends(db, grantsTo('answers'), 'clickhouse-grants.sql');
      for (const want of a.ledgerDdl(db))
        if (!stmts.some((s) => norm(s) === norm(want)))
          out.push(
            `clickhouse-grants.sql: does not create the answer service's ledger: no ${JSON.stringify(norm(want).slice(0, 80))} (the aggregator's migration 002 for ${db})`,
          );
    }
  }
  return out;
}
