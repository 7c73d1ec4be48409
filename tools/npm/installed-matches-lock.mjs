// Exit 0 when node_modules holds what package-lock.json asks for, 1 (with the reason) when `npm ci` is
// due; tools/setup.sh asks this before reinstalling. Compares contents, not file times: `npm install`
// writes node_modules/.package-lock.json (npm's record of what is installed) before package-lock.json,
// so a time check would call every fresh install stale, and `npm ci` is minutes here (chdb is ~540 MB).
import { readFileSync } from 'node:fs';

const read = (rel) => JSON.parse(readFileSync(new URL(`../../${rel}`, import.meta.url), 'utf8'));

function staleReason() {
  let lock, installed, pkg;
  try {
    lock = read('package-lock.json').packages;
    pkg = read('package.json');
  } catch (e) {
    return `cannot read package.json / package-lock.json: ${e.message}`;
  }
  try {
    installed = read('node_modules/.package-lock.json').packages;
  } catch {
    return 'node_modules is not installed';
  }
  // package.json changed without the lock: leave it to npm ci, which says so clearly.
  const root = lock[''] ?? {};
  for (const field of ['dependencies', 'devDependencies']) {
    for (const [name, range] of Object.entries(pkg[field] ?? {})) {
      if (root[field]?.[name] !== range) return `package.json ${field}.${name} (${range}) differs from package-lock.json`;
    }
  }
  for (const [key, want] of Object.entries(lock)) {
    if (key === '') continue;
    const have = installed[key];
    // Optional packages of other platforms are never installed (tools/npm/README.md).
    if (!have && want.optional) continue;
    if (have?.version !== want.version) return `${key}: installed ${have?.version ?? 'nothing'}, lock wants ${want.version}`;
  }
  for (const key of Object.keys(installed)) if (!lock[key]) return `${key} is installed but not in package-lock.json`;
  return undefined;
}

const reason = staleReason();
if (reason) {
  console.log(`node_modules is stale: ${reason}`);
  process.exit(1);
}
