// tools/setup.sh without root: it must name the missing Debian packages in one copyable sudo line, exit
// non-zero and do nothing else. Fake `id`, `apt-get`, `sudo`, `npm`, `mvn` on PATH record any call, so
// the test is side-effect free even on a machine where it runs as root.
import { spawnSync } from 'node:child_process';
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { REPO_ROOT } from '../stack/config.ts';

const dirs: string[] = [];
afterAll(() => {
  for (const d of dirs) rmSync(d, { recursive: true, force: true });
});

function binDir(scripts: Record<string, string>): string {
  const dir = mkdtempSync(path.join(tmpdir(), 'setup-test-'));
  dirs.push(dir);
  for (const [name, body] of Object.entries(scripts)) {
    writeFileSync(path.join(dir, name), `#!/bin/sh\n${body}\n`);
    chmodSync(path.join(dir, name), 0o755);
  }
  return dir;
}

/** Runs setup.sh as uid 1000 with `installed` as the only programs it can find. */
function runSetup(installed: Record<string, string>) {
  const calls = path.join(binDir({}), 'calls.log');
  writeFileSync(calls, '');
  const record = (name: string) => `echo "${name} $*" >> ${calls}; exit 1`;
  const fakes = binDir({
    id: 'if [ "$1" = "-u" ]; then echo 1000; else echo "uid=1000(dev)"; fi',
    'apt-get': record('apt-get'),
    sudo: record('sudo'),
    npm: record('npm'),
    mvn: record('mvn'),
  });
  const installedDir = binDir(installed);
  const r = spawnSync('bash', [path.join(REPO_ROOT, 'tools', 'setup.sh')], {
    // PostgreSQL is looked for in its own folder (STACK_POSTGRES_BINDIR), here the same fake folder.
    env: { PATH: `${fakes}:/usr/bin:/bin`, HOME: tmpdir(), SETUP_PATH: installedDir, STACK_POSTGRES_BINDIR: installedDir },
    encoding: 'utf8',
    timeout: 20_000,
  });
  return { code: r.status, stdout: r.stdout, stderr: r.stderr, calls: readFileSync(calls, 'utf8') };
}

const ok = 'exit 0';
const java17 = 'echo \'openjdk version "17.0.9" 2023-10-17\' >&2';

describe('tools/setup.sh as a non-root user', () => {
  it('with nothing installed: prints the sudo line for every package, exits 1, runs nothing', () => {
    const r = runSetup({});
    expect(r.code).toBe(1);
    expect(r.stdout).toContain(
      'sudo apt-get update && sudo apt-get install -y --no-install-recommends clickhouse-server clickhouse-client kcat openjdk-17-jre-headless maven openssl chromium prometheus postgresql-15\n',
    );
    expect(r.calls).toBe('');
  });

  it('with a PATH lacking only clickhouse-server: names exactly that package', () => {
    const r = runSetup({ 'clickhouse-client': ok, kcat: ok, java: java17, mvn: ok, openssl: ok, chromium: ok, prometheus: ok, promtool: ok, postgres: ok });
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('setup: missing Debian packages: clickhouse-server\n');
    expect(r.stdout).toContain('sudo apt-get update && sudo apt-get install -y --no-install-recommends clickhouse-server\n');
    expect(r.calls).toBe('');
  });

  it('without PostgreSQL 15 in its folder (STACK_POSTGRES_BINDIR): names postgresql-15 only', () => {
    const r = runSetup({
      'clickhouse-server': ok,
      'clickhouse-client': ok,
      kcat: ok,
      java: java17,
      mvn: ok,
      openssl: ok,
      chromium: ok,
      prometheus: ok,
      promtool: ok,
    });
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('sudo apt-get update && sudo apt-get install -y --no-install-recommends postgresql-15\n');
    expect(r.calls).toBe('');
  });

  it('asks for Java 17 when the Java found is older', () => {
    const r = runSetup({
      'clickhouse-server': ok,
      'clickhouse-client': ok,
      kcat: ok,
      java: 'echo \'openjdk version "11.0.21" 2023-10-17\' >&2',
      mvn: ok,
      openssl: ok,
      chromium: ok,
      prometheus: ok,
      promtool: ok,
      postgres: ok,
    });
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('sudo apt-get install -y --no-install-recommends openjdk-17-jre-headless\n');
  });
});
