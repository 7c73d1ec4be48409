/**
 * A process that dies (SIGKILL) inside its first `fs.writeSync`, while creating the file `argv[3]`:
 * `once` with runtime/secret-file.ts `createFileOnce`, `in-place` the way day secrets and zone keys were
 * created before it (open with O_EXCL, then write). runtime/secret-file.test.ts reads what each leaves.
 */
import fs, { closeSync, openSync, writeSync, constants as fsc } from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { createFileOnce } from '../runtime/secret-file.ts';

const [mode, path] = process.argv.slice(2);
if (!path || (mode !== 'once' && mode !== 'in-place')) throw new Error('usage: killed-writer.ts once|in-place <path>');
fs.writeSync = () => {
  process.kill(process.pid, 'SIGKILL');
  throw new Error('unreachable');
};
// ES module imports of node:fs (this file's and secret-file.ts') see the replacement from here on.
syncBuiltinESMExports();
const bytes = Buffer.alloc(32, 7);
if (mode === 'once') createFileOnce(path, bytes);
else {
  const fd = openSync(path, fsc.O_CREAT | fsc.O_EXCL | fsc.O_WRONLY, 0o600);
  writeSync(fd, bytes);
  closeSync(fd);
}
