/**
 * deploy/ holds only deployment artifacts (Dockerfile, compose, k8s, prometheus, grafana, cluster SQL):
 * code lives in the folders ESLint checks (eslint.config.js), so a script in deploy/ would escape the
 * dependency rules. This test fails on any TypeScript or JavaScript file tracked under deploy/.
 */
import { execFileSync } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const CODE = /\.(?:[cm]?[jt]s|[jt]sx)$/;

/** The files of `list` that are code (TypeScript or JavaScript, any module flavour). */
function codeFiles(list: readonly string[]): string[] {
  return list.filter((p) => CODE.test(p));
}

/** The files git tracks under deploy/, relative to the repository root. */
function deployFiles(): string[] {
  const out = execFileSync('git', ['ls-files', '-z', '--', 'deploy'], { cwd: ROOT, encoding: 'utf8' });
  return out.split('\0').filter((p) => p.length > 0);
}

describe('deploy/ holds no code', () => {
  it('no tracked file under deploy/ is TypeScript or JavaScript', () => {
    const files = deployFiles();
    expect(files.length).toBeGreaterThan(0);
    expect(files.every((p) => p.startsWith('deploy/'))).toBe(true);
    expect(codeFiles(files)).toEqual([]);
  });

  it('control: the check flags code files in a made-up listing and lets artifacts through', () => {
    const fake = [
      'deploy/docker/Dockerfile',
      'deploy/docker/tsconfig.build.json',
      'deploy/k8s/ingest.yaml',
      'deploy/cluster/clickhouse-cluster.sql',
      'deploy/k8s/render.ts',
      'deploy/tools/check.mjs',
      'deploy/grafana/build.js',
      'deploy/x.cts',
      'deploy/x.tsx',
    ];
    expect(codeFiles(fake)).toEqual(['deploy/k8s/render.ts', 'deploy/tools/check.mjs', 'deploy/grafana/build.js', 'deploy/x.cts', 'deploy/x.tsx']);
  });
});
