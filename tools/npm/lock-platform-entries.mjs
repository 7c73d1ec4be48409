// Re-adds the platform-only optional packages the local registry does not serve (see README.md here).
import { readFileSync, writeFileSync } from 'node:fs';

const file = new URL('../../package-lock.json', import.meta.url);
const lock = JSON.parse(readFileSync(file, 'utf8'));
const chdb = lock.packages['node_modules/chdb']?.optionalDependencies ?? {};
const entries = {
  'node_modules/@chdb/lib-darwin-arm64': { version: chdb['@chdb/lib-darwin-arm64'], optional: true, os: ['darwin'], cpu: ['arm64'] },
  'node_modules/@chdb/lib-darwin-x64': { version: chdb['@chdb/lib-darwin-x64'], optional: true, os: ['darwin'], cpu: ['x64'] },
  'node_modules/@chdb/lib-linux-arm64-gnu': { version: chdb['@chdb/lib-linux-arm64-gnu'], optional: true, os: ['linux'], cpu: ['arm64'] },
  'node_modules/napi-windows-process-start-time': { version: '0.1.0', dev: true, optional: true, os: ['win32'] },
};
let added = 0;
for (const [key, entry] of Object.entries(entries)) {
  if (lock.packages[key] || !entry.version) continue;
  lock.packages[key] = entry;
  added++;
}
writeFileSync(file, JSON.stringify(lock, null, 2) + '\n');
console.log(`added ${added} platform entr${added === 1 ? 'y' : 'ies'}`);
