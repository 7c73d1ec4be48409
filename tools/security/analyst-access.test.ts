// One analyst role in every deployment artifact (ARCHITECTURE.md principle 11): the ClickHouse user that
// Grafana, `npm run query` and the dashboard log in as may SELECT the released views of
// aggregator/migrations/R_analyst_views.sql and read and append to the privacy ledger, nothing else; its password has no default; nothing
// analyst-facing holds the aggregator's credentials, and the aggregator holds no analyst's. No Docker or
// cluster runs here, so the files are parsed; the engines' own refusal is shown on ClickHouse 18.16 by
// stack/secure.int.test.ts. Each check runs on a broken copy too and must fail (negative control).
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { statements } from '../../aggregator/migrate.ts';
import { analystLedgerWriterProblems } from '../manifest-check.ts';

type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const read = (p: string) => readFileSync(new URL(`../../${p}`, import.meta.url), 'utf8');

/** The views the analyst may read: every view the views migration creates. */
const RELEASED_VIEWS = [...read('aggregator/migrations/R_analyst_views.sql').matchAll(/^\{create_view\} \{db\}\.(\w+) AS/gm)].map((m) => m[1]!);

interface Artifacts {
  usersXml: string;
  compose: Obj;
  datasources: Obj;
  grantsSql: string;
  k8s: Obj[];
  initScript: string;
}

function load(): Artifacts {
  const kustomization = YAML.parse(read('deploy/k8s/kustomization.yaml')) as Obj;
  return {
    usersXml: read('deploy/compose/clickhouse/users.d/analyst.xml'),
    compose: YAML.parse(read('deploy/compose/compose.yaml'), { merge: true }) as Obj,
    datasources: YAML.parse(read('deploy/grafana/provisioning/datasources/datasources.yaml')) as Obj,
    grantsSql: read('deploy/security/clickhouse-grants.sql'),
    k8s: (kustomization.resources as string[]).flatMap((f) => YAML.parseAllDocuments(read(`deploy/k8s/${f}`)).map((d) => d.toJS() as Obj)),
    initScript: read('deploy/compose/secrets/init.sh'),
  };
}

const sameSet = (a: readonly string[], b: readonly string[]) => JSON.stringify([...a].sort()) === JSON.stringify([...b].sort());

/** Every way the artifacts stray from the one analyst role; empty when they hold it. */
function analystProblems(a: Artifacts): string[] {
  const out: string[] = [];
  // compose users.d: the analyst's grants are exactly SELECT on each released view.
  const user = /<analyst>([\s\S]*?)<\/analyst>/.exec(a.usersXml.replace(/<profiles>[\s\S]*<\/profiles>/, ''))?.[1] ?? '';
  const grants = [...user.matchAll(/<query>([^<]*)<\/query>/g)].map((m) => m[1]!.trim());
  const want = [...RELEASED_VIEWS.map((v) => `GRANT SELECT ON analytics.${v}`), 'GRANT SELECT, INSERT ON analytics.privacy_ledger'];
  if (!sameSet(grants, want)) out.push(`users.d/analyst.xml grants ${JSON.stringify(grants)}, expected exactly ${JSON.stringify(want)}`);
  // No password in the committed file: compose's secrets one-shot writes the hash of a generated one beside it.
  if (/<password/.test(user)) out.push('users.d/analyst.xml: holds a password; the hash is generated (deploy/compose/secrets/init.sh)');
  if (!/<analyst><password_sha256_hex>%s<\/password_sha256_hex><\/analyst>/.test(a.initScript))
    out.push("deploy/compose/secrets/init.sh: does not write the analyst's password hash");
  // Its profile: readonly=0 (it appends to the ledger) with its settings pinned by constraints, INSERT on
  // the ledger only (tools/manifest-check.ts analystLedgerWriterProblems, tested in tools/manifests.test.ts).
  out.push(...analystLedgerWriterProblems(a));
  // SQL access control for a modern server: the same list.
  const toAnalyst = statements(a.grantsSql).filter((s) => /\bTO analyst$/.test(s));
  if (
    !sameSet(toAnalyst, [
      ...RELEASED_VIEWS.map((v) => `GRANT SELECT ON analytics.${v} TO analyst`),
      'GRANT SELECT, INSERT ON analytics.privacy_ledger TO analyst',
    ])
  )
    out.push(`clickhouse-grants.sql grants the analyst ${JSON.stringify(toAnalyst)}, not exactly the released views`);
  // Grafana logs in as the analyst, with the generated password as a file of its own secrets volume.
  const ch = (a.datasources.datasources as Obj[]).find((d) => d.type === 'grafana-clickhouse-datasource');
  if (ch?.jsonData?.username !== 'analyst') out.push(`Grafana's ClickHouse data source logs in as ${ch?.jsonData?.username}, not analyst`);
  if (ch?.secureJsonData?.password !== '$__file{/run/telemetry/grafana/analyst.password}')
    out.push("Grafana's ClickHouse password must be the file $__file{/run/telemetry/grafana/analyst.password}");
  for (const [name, svc] of Object.entries(a.compose.services as Obj)) {
    const env = ((svc as Obj).environment ?? {}) as Obj;
    if ('ANALYST_CLICKHOUSE_PASSWORD' in env) out.push(`compose ${name}: ANALYST_CLICKHOUSE_PASSWORD is a value; the analyst's password is a generated file`);
    const aggregatorCreds =
      Object.keys(env).some((k) => k.startsWith('AGGREGATOR_CLICKHOUSE_PASSWORD') || k === 'CLICKHOUSE_PASSWORD') ||
      (((svc as Obj).volumes ?? []) as string[]).some((v) => v.startsWith('secrets-aggregator:'));
    const analystCreds = (((svc as Obj).volumes ?? []) as string[]).some((v) => v.startsWith('secrets-grafana:'));
    // `secrets` (deploy/compose/secrets/init.sh) generates every password and runs nothing else.
    if (aggregatorCreds && analystCreds && name !== 'secrets') out.push(`compose ${name}: holds both the aggregator's and the analyst's ClickHouse password`);
    if (name === 'grafana' && aggregatorCreds) out.push("compose grafana: holds the aggregator's ClickHouse password");
  }
  const grafanaVolumes = (a.compose.services.grafana?.volumes ?? []) as string[];
  if (!grafanaVolumes.includes('secrets-grafana:/run/telemetry/grafana:ro'))
    out.push("compose grafana: needs its secrets volume (the analyst's password) at /run/telemetry/grafana");
  // Kubernetes runs no analyst-side workload; the aggregator must not be handed analyst settings.
  for (const d of a.k8s) {
    // The answer service's own objects connect with the ANALYST_* settings as its own user `answers`
    // (deploy/k8s/answers.yaml; tools/manifest-check.ts reports it when that user is the analyst).
    if (d.metadata?.labels?.['app.kubernetes.io/name'] === 'answers' || d.metadata?.name === 'telemetry-answers') continue;
    const text = JSON.stringify(d);
    if (/ANALYST_/.test(text))
      out.push(`k8s ${d.kind}/${d.metadata?.name}: carries ANALYST_* settings; the aggregator's workloads must not hold the analyst role`);
  }
  return out;
}

describe('one analyst role in the deployment artifacts', () => {
  const artifacts = load();

  it('the released views are the ones the migration creates', () => {
    expect(RELEASED_VIEWS).toEqual(['crash_rates', 'daily_active_devices', 'daily_active_devices_by_app', 'crash_rates_by_app_version', 'release_policy']);
  });

  it('compose, Grafana, the grants SQL and Kubernetes hold it', () => {
    expect(analystProblems(artifacts)).toEqual([]);
  });

  it('negative control: the raw table or a database-wide grant for the analyst fails the check', () => {
    const wide = { ...artifacts, usersXml: artifacts.usersXml.replace('</grants>', '<query>GRANT SELECT ON analytics.*</query></grants>') };
    expect(analystProblems(wide)).toContainEqual(expect.stringMatching(/users\.d\/analyst\.xml grants .*analytics\.\*/));
    const raw = { ...artifacts, grantsSql: `${artifacts.grantsSql}\nGRANT SELECT ON analytics.daily_agg TO analyst;\n` };
    expect(analystProblems(raw)).toContainEqual(expect.stringMatching(/clickhouse-grants\.sql grants the analyst .*daily_agg/));
  });

  it("negative control: Grafana as the aggregator, an analyst password as a value, or an analyst setting on the aggregator's pod fail", () => {
    const broken = structuredClone(artifacts);
    const ch = (broken.datasources.datasources as Obj[]).find((d) => d.type === 'grafana-clickhouse-datasource')!;
    ch.jsonData.username = 'aggregator';
    ch.secureJsonData.password = '$ANALYST_CLICKHOUSE_PASSWORD';
    broken.compose.services.grafana.environment.ANALYST_CLICKHOUSE_PASSWORD = '${ANALYST_CLICKHOUSE_PASSWORD:-analyst-local-only}';
    broken.compose.services.grafana.volumes.push('secrets-aggregator:/run/telemetry/aggregator:ro');
    broken.usersXml = broken.usersXml.replace('<profile>analyst</profile>', '<password>analyst</password><profile>analyst</profile>');
    const cm = broken.k8s.find((d) => d.kind === 'ConfigMap' && d.metadata.name === 'telemetry-aggregator')!;
    cm.data.ANALYST_CLICKHOUSE_USER = 'analyst';
    const p = analystProblems(broken);
    expect(p).toContainEqual(expect.stringMatching(/logs in as aggregator, not analyst/));
    expect(p).toContainEqual(expect.stringMatching(/Grafana's ClickHouse password must be the file/));
    expect(p).toContainEqual(expect.stringMatching(/compose grafana: ANALYST_CLICKHOUSE_PASSWORD is a value/));
    expect(p).toContainEqual(expect.stringMatching(/compose grafana: holds both the aggregator's and the analyst's ClickHouse password/));
    expect(p).toContainEqual(expect.stringMatching(/compose grafana: holds the aggregator's ClickHouse password/));
    expect(p).toContainEqual(expect.stringMatching(/users.d\/analyst.xml: holds a password/));
    expect(p).toContainEqual(expect.stringMatching(/k8s ConfigMap\/telemetry-aggregator: carries ANALYST_\* settings/));
  });
});
