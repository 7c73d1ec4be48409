// What deploy/compose/secrets/init.sh makes for the answer service (compose service `answers`), run as in
// its container (sh + openssl) into scratch folders standing for the volumes: the ClickHouse password of
// user `answers` with its hash in users.d, an HTTPS certificate from the deployment's CA, and a token
// list whose first analyst's token is random per deployment (never a default), kept on later runs with
// the lines an operator added. Negative control: a copy of the script with a fixed token makes the same
// token twice, which the generated-token check catches.
import { spawnSync } from 'node:child_process';
import { appendFileSync, mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { parseTokens, sha256Hex } from '../aggregator/answer-service.ts';

const COMPOSE = fileURLToPath(new URL('../deploy/compose/', import.meta.url));
const SCRIPT = join(COMPOSE, 'secrets/init.sh');
type Obj = Record<string, any>; // eslint-disable-line @typescript-eslint/no-explicit-any
const compose = YAML.parse(readFileSync(join(COMPOSE, 'compose.yaml'), 'utf8'), { merge: true }) as Obj;
const scratch: string[] = [];
afterAll(() => {
  for (const d of scratch) rmSync(d, { recursive: true, force: true });
});

function runInit(script = SCRIPT): { root: string; out: string; code: number } {
  const root = mkdtempSync(join(tmpdir(), 'compose-answers-'));
  scratch.push(root);
  const r = spawnSync('sh', [script, root], {
    encoding: 'utf8',
    env: {
      PATH: process.env.PATH,
      SECRETS_INIT_CHOWN: '0',
      KAFKA_CLUSTER_ID: (compose.services.secrets as Obj).environment.KAFKA_CLUSTER_ID,
      CLICKHOUSE_USERS_TEMPLATES: join(COMPOSE, 'clickhouse/users.d'),
    },
  });
  return { root, out: `${r.stdout}${r.stderr}`, code: r.status ?? -1 };
}
const rerun = (root: string) =>
  spawnSync('sh', [SCRIPT, root], {
    encoding: 'utf8',
    env: {
      PATH: process.env.PATH,
      SECRETS_INIT_CHOWN: '0',
      KAFKA_CLUSTER_ID: (compose.services.secrets as Obj).environment.KAFKA_CLUSTER_ID,
      CLICKHOUSE_USERS_TEMPLATES: join(COMPOSE, 'clickhouse/users.d'),
    },
  });
const token = (root: string) => readFileSync(join(root, 'answer-tokens/analyst-1.token'), 'utf8').split('\n')[0]!;

describe('compose secrets of the answer service', () => {
  const a = runInit();
  const b = runInit();

  it('a token list the service accepts, naming a first analyst whose token is random per deployment and never printed', () => {
    expect([a.code, b.code]).toEqual([0, 0]);
    const tokens = parseTokens(readFileSync(join(a.root, 'answers/tokens'), 'utf8'));
    expect([...tokens.entries()]).toEqual([[sha256Hex(token(a.root)), 'analyst-1']]);
    expect(token(a.root)).toMatch(/^[0-9a-f]{64}$/);
    expect(token(a.root)).not.toBe(token(b.root));
    expect(a.out).not.toContain(token(a.root));
    for (const f of ['answers/tokens', 'answer-tokens/analyst-1.token', 'answers/clickhouse.password', 'answers/tls.key'])
      expect([f, statSync(join(a.root, f)).mode & 0o777]).toEqual([f, 0o600]);
  });

  it("ClickHouse gets the hash of the answers password; the service's certificate is the deployment CA's, for the name answers", () => {
    const password = readFileSync(join(a.root, 'answers/clickhouse.password'), 'utf8').split('\n')[0]!;
    expect(readFileSync(join(a.root, 'clickhouse-users/passwords.xml'), 'utf8')).toContain(
      `<answers><password_sha256_hex>${sha256Hex(password)}</password_sha256_hex></answers>`,
    );
    expect(readFileSync(join(a.root, 'clickhouse-users/answers.xml'), 'utf8')).toContain('<answers>');
    const verify = spawnSync('openssl', ['verify', '-CAfile', join(a.root, 'answers/ca.pem'), join(a.root, 'answers/tls.pem')], { encoding: 'utf8' });
    expect(verify.stdout).toMatch(/OK/);
    const text = spawnSync('openssl', ['x509', '-noout', '-ext', 'subjectAltName', '-in', join(a.root, 'answers/tls.pem')], { encoding: 'utf8' }).stdout;
    expect(text).toContain('DNS:answers');
  });

  it('a later start keeps the list, and the analysts an operator added to it', () => {
    const line = `bob ${sha256Hex('a-token-of-bob-0123456789abcdef')}\n`;
    appendFileSync(join(a.root, 'answers/tokens'), line);
    const before = token(a.root);
    expect(rerun(a.root).status).toBe(0);
    expect(token(a.root)).toBe(before);
    expect([...parseTokens(readFileSync(join(a.root, 'answers/tokens'), 'utf8')).values()]).toEqual(['analyst-1', 'bob']);
  });

  it('negative control: a script that writes a fixed token makes the same token in two deployments', () => {
    const text = readFileSync(SCRIPT, 'utf8');
    const fixed = text.replace('password "$ROOT/answer-tokens/analyst-1.token" 0', 'printf default-token-0123456789 > "$ROOT/answer-tokens/analyst-1.token"');
    expect(fixed).not.toBe(text);
    const copy = join(mkdtempSync(join(tmpdir(), 'compose-answers-script-')), 'init.sh');
    scratch.push(join(copy, '..'));
    writeFileSync(copy, fixed);
    const [x, y] = [runInit(copy), runInit(copy)];
    expect([x.code, y.code]).toEqual([0, 0]);
    expect(token(x.root)).toBe(token(y.root));
  });
});
