import { spawnSync } from 'node:child_process';
import fs from 'node:fs';
import { syncBuiltinESMExports } from 'node:module';
import { existsSync, mkdtempSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { createFileOnce, PENDING_SUFFIX } from './secret-file.ts';

const ROOT = fileURLToPath(new URL('..', import.meta.url));

/** Runs testing/killed-writer.ts, which dies by SIGKILL inside its first write while creating `path`. */
function killedWhileCreating(mode: 'once' | 'in-place', path: string): void {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'testing/killed-writer.ts', mode, path], { cwd: ROOT, encoding: 'utf8' });
  expect(r.signal).toBe('SIGKILL');
}

describe('createFileOnce', () => {
  it('creates the file whole with the mode asked, once: a second call leaves the first bytes, and no pending name stays', () => {
    const dir = mkdtempSync(join(tmpdir(), 'secret-file-'));
    const path = join(dir, 'x.key');
    expect(createFileOnce(path, Buffer.alloc(32, 1))).toBe(true);
    expect(createFileOnce(path, Buffer.alloc(32, 2))).toBe(false);
    expect(readFileSync(path)).toEqual(Buffer.alloc(32, 1));
    expect(statSync(path).mode & 0o777).toBe(0o600);
    expect(readdirSync(dir)).toEqual(['x.key']);
  });

  it('a writer killed while creating leaves no file of that name, and the next one creates it; control: created in place, an empty file stays', () => {
    const dir = mkdtempSync(join(tmpdir(), 'secret-file-'));
    killedWhileCreating('once', join(dir, 'a.key'));
    expect(existsSync(join(dir, 'a.key'))).toBe(false);
    expect(readdirSync(dir).every((f) => f.endsWith(PENDING_SUFFIX))).toBe(true);
    expect(createFileOnce(join(dir, 'a.key'), Buffer.alloc(32, 3))).toBe(true);
    expect(readFileSync(join(dir, 'a.key'))).toEqual(Buffer.alloc(32, 3));

    killedWhileCreating('in-place', join(dir, 'b.key'));
    expect(statSync(join(dir, 'b.key')).size).toBe(0);
  });

  it('a write that fails (a full disk) throws and leaves no pending name behind', () => {
    const dir = mkdtempSync(join(tmpdir(), 'secret-file-'));
    const write = fs.writeSync;
    fs.writeSync = () => {
      throw Object.assign(new Error('no space left on device'), { code: 'ENOSPC' });
    };
    syncBuiltinESMExports();
    try {
      expect(() => createFileOnce(join(dir, 'c.key'), Buffer.alloc(32, 4))).toThrow(/no space/);
    } finally {
      fs.writeSync = write;
      syncBuiltinESMExports();
    }
    expect(readdirSync(dir)).toEqual([]);
  });
});
