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
import type { IncomingMessage, ServerResponse } from 'node:http';
import { aggregatorConfigSpec, AGGREGATOR_PREFIX } from '../aggregator/config.ts';
import { createAggregatorMetrics } from '../aggregator/metrics.ts';
import { INGEST_ERROR_CODES } from '../ingest/errors.ts';
import { ingestConfigSpec, INGEST_PREFIXES, sealingProblems, zoneResidencyProblem, type IngestConfig } from '../ingest/config.ts';
import { createMetrics } from '../ingest/metrics.ts';
import { ConfigError, loadConfig, type SettingsSpec } from '../runtime/config.ts';
import { handleOps } from '../runtime/ops.ts';
import type { Registry } from 'prom-client';

export type Role = 'ingest' | 'aggregator' | 'topics';

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
};

/** Every prefix any of our services owns: a variable with one of them is meant for one of them. */
const ALL_PREFIXES = ['INGEST_', 'AGGREGATOR_', 'PIPELINE_'];

/** Which service a container runs, from its command line (node dist/<service>/main.js). */
export function roleOf(argv: readonly string[]): Role | undefined {
  const line = argv.join(' ');
  if (/\bdist\/ingest\/main\.js\b/.test(line)) return 'ingest';
  if (/\bdist\/aggregator\/main\.js\b/.test(line)) return 'aggregator';
  if (/\bdist\/tools\/topic-plan\.js\b/.test(line)) return 'topics';
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
  const setting = role === 'ingest' ? 'INGEST_HOST' : role === 'aggregator' && 'AGGREGATOR_HOST' in ROLES.aggregator.spec ? 'AGGREGATOR_HOST' : undefined;
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

/** Metric series names the two services export (histograms expanded to _bucket/_sum/_count). */
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
    if (!ctx.metrics.has(name) && !PROMETHEUS_SYNTHETIC.has(name)) problems.push(`${where}: metric ${name} is not exported by ingest or the aggregator`);
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
        }
        if (c.readinessProbe?.httpGet && c.readinessProbe.httpGet.path !== '/readyz')
          problems.push(`${where}: readinessProbe should ask /readyz (dependencies), not ${c.readinessProbe.httpGet.path}`);
        if (c.livenessProbe?.httpGet && c.livenessProbe.httpGet.path !== '/healthz')
          problems.push(`${where}: livenessProbe should ask /healthz (a dependency outage must not restart the pod)`);
        const ann = pod.metadata?.annotations ?? {};
        if (ann['prometheus.io/scrape'] === 'true') {
          if (Number(ann['prometheus.io/port']) !== port)
            problems.push(`${where}: prometheus.io/port ${ann['prometheus.io/port']} is not the service port ${port}`);
          if (!opsServes(ann['prometheus.io/path'] ?? '/metrics')) problems.push(`${where}: prometheus.io/path is not served`);
          if (!opts.jobs.has(ann['prometheus.io/job']))
            problems.push(`${where}: prometheus.io/job ${ann['prometheus.io/job']} is not a job the alert rules know`);
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

export function checkCompose(doc: Obj, opts: { jobs: Set<string>; prometheusTargets: Map<string, string[]> }): string[] {
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
      const m = /http:\/\/127\.0\.0\.1:(\d+)(\/[\w/]*)/.exec(hc);
      if (!m) problems.push(`${where}: healthcheck does not ask the service over HTTP`);
      else {
        if (Number(m[1]) !== port) problems.push(`${where}: healthcheck port ${m[1]} is not the service port ${port}`);
        if (!opsServes(m[2]!)) problems.push(`${where}: healthcheck path ${m[2]} is not served`);
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
  // Prometheus must scrape every ingest and aggregator service at its port, under the job the alerts use.
  for (const [job, targets] of opts.prometheusTargets) {
    if (!opts.jobs.has(job)) problems.push(`prometheus.yml: job ${job} is not one the alert rules use`);
    for (const t of targets) {
      const [host, port] = t.split(':');
      const svc = roleByService.get(host!);
      if (!svc) problems.push(`prometheus.yml: target ${t} is no ingest/aggregator service of compose`);
      else if (svc.role !== job) problems.push(`prometheus.yml: target ${t} runs ${svc.role}, listed under job ${job}`);
      else if (Number(port) !== svc.port) problems.push(`prometheus.yml: target ${t} is not the service port ${svc.port}`);
    }
  }
  for (const [name, { role }] of roleByService) {
    if (role === 'topics') continue;
    if (![...opts.prometheusTargets.values()].some((ts) => ts.some((t) => t.split(':')[0] === name)))
      problems.push(`prometheus.yml: compose service ${name} is not scraped`);
  }
  return problems;
}
