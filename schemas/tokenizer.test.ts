import { spawnSync } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { lstatSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, statSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { describe, expect, it } from 'vitest';
import { DailyTokenizer, FileKeySource, EnvKeySource, dayOfIso, isoOfDay, DAY_MS, type KeyDirMode } from './index.ts';

const NOW = Date.UTC(2026, 10, 29, 0, 5);

describe('DailyTokenizer', () => {
  it('refuses too late (after the 48 h grace) and too far in the future (10 min skew)', () => {
    const t = new DailyTokenizer(new EnvKeySource(''));
    const today = Math.floor(NOW / DAY_MS);
    expect(t.refusal(NOW - 60_000, NOW)).toBeUndefined(); // yesterday, 1 min before midnight
    expect(t.refusal((today - 2) * DAY_MS + 1, NOW)).toBeUndefined(); // day ended < 48 h ago
    expect(t.refusal((today - 3) * DAY_MS, NOW)).toBe('too_late');
    expect(t.refusal(NOW + 9 * 60_000, NOW)).toBeUndefined();
    expect(t.refusal(NOW + 11 * 60_000, NOW)).toBe('from_future');
  });

  it('file key source: two ingest copies agree on the secret; files are 0600; rotation destroys old days', () => {
    const dir = mkdtempSync(join(tmpdir(), 'keys-'));
    const a = new DailyTokenizer(new FileKeySource(dir));
    const b = new DailyTokenizer(new FileKeySource(dir));
    const day = Math.floor(NOW / DAY_MS);
    const ka = a.keys(day, NOW)!;
    const kb = b.keys(day, NOW)!;
    expect(a.dailyToken(ka, 'device_id:x').equals(b.dailyToken(kb, 'device_id:x'))).toBe(true);
    expect(a.dailyToken(ka, 'device_id:x').equals(a.dailyToken(ka, 'device_id:y'))).toBe(false);
    expect(statSync(join(dir, '2026-11-29.key')).mode & 0o777).toBe(0o600);
    expect(a.keys(day + 1, NOW)).toBeUndefined(); // tomorrow's secret is not created early
    writeFileSync(join(dir, '2026-11-26.key'), randomBytes(32)); // an old day, left over (keys() no longer makes one)
    expect(readdirSync(dir).sort()).toEqual(['2026-11-26.key', '2026-11-29.key']);
    expect(a.rotate(NOW)).toEqual([day - 3]);
    expect(readdirSync(dir)).toEqual(['2026-11-29.key']);
  });

  it('event keys: same inputs same key, any change a different key', () => {
    const t = new DailyTokenizer(new EnvKeySource(`2026-11-29:${Buffer.alloc(32, 9).toString('base64')}`));
    const k = t.keys(dayOfIso('2026-11-29'), NOW)!;
    const ids = Buffer.alloc(32, 1);
    ids[16] = 2;
    const tok = Buffer.alloc(32, 5);
    const x = t.eventKeys(k, ids, tok);
    expect(x.equals(t.eventKeys(k, ids, tok))).toBe(true);
    expect(x.subarray(0, 16).equals(x.subarray(16))).toBe(false);
    const tok2 = Buffer.from(tok);
    tok2[0] = 6;
    expect(t.eventKeys(k, ids, tok2).subarray(0, 16).equals(x.subarray(0, 16))).toBe(false);
  });
});

/** Every entry of a directory with its bytes and times: any write system call changes one of them. */
function snapshot(dir: string): string {
  const d = statSync(dir);
  const out = [`. ${d.mtimeMs} ${d.ctimeMs} ${d.mode}`];
  const walk = (rel: string) => {
    for (const name of readdirSync(join(dir, rel)).sort()) {
      const p = join(dir, rel, name);
      const st = lstatSync(p);
      const body = st.isFile() ? readFileSync(p).toString('hex') : st.isDirectory() ? 'dir' : 'link';
      out.push(`${join(rel, name)} ${st.mtimeMs} ${st.ctimeMs} ${st.mode} ${body}`);
      if (st.isDirectory()) walk(join(rel, name));
    }
  };
  walk('');
  return out.join('\n');
}

describe('FileKeySource modes (INGEST_TOKEN_KEYS_MODE)', () => {
  const today = Math.floor(NOW / DAY_MS);
  /** A key directory as the rotation leaves it: yesterday, an expired day (3 days ago), tomorrow; no today. */
  function keyDir(): string {
    const dir = mkdtempSync(join(tmpdir(), 'keys-mode-'));
    for (const d of [today - 3, today - 1, today + 1]) writeFileSync(join(dir, `${isoOfDay(d)}.key`), randomBytes(32), { mode: 0o600 });
    return dir;
  }
  /** Everything ingest does with a key directory: start, tokenise today/yesterday/expired/tomorrow, sweep, report. */
  function exercise(dir: string, mode: KeyDirMode): { today: boolean; yesterday: boolean; expired: boolean; destroyed: number[] } {
    const t = new DailyTokenizer(new FileKeySource(dir, { mode }));
    const r = {
      today: t.keys(today, NOW) !== undefined,
      yesterday: t.keys(today - 1, NOW) !== undefined,
      expired: t.keys(today - 3, NOW) !== undefined,
      destroyed: t.rotate(NOW),
    };
    t.keys(today + 1, NOW);
    t.status(NOW);
    t.rotate(NOW + 3_600_000);
    return r;
  }

  it("manage: creates today's missing key and destroys the expired one", () => {
    const dir = keyDir();
    const r = exercise(dir, 'manage');
    expect(r).toEqual({ today: true, yesterday: true, expired: false, destroyed: [today - 3] });
    expect(readdirSync(dir).sort()).toEqual(['2026-11-28.key', '2026-11-29.key', '2026-11-30.key']);
  });

  it('read-only: never creates or deletes (contents and mtimes unchanged), a missing today is refused, not an error', () => {
    const dir = keyDir();
    const before = snapshot(dir);
    let r: ReturnType<typeof exercise> | undefined;
    expect(() => (r = exercise(dir, 'read-only'))).not.toThrow();
    expect(r).toEqual({ today: false, yesterday: true, expired: false, destroyed: [] });
    expect(snapshot(dir)).toBe(before);
    // negative control: the same sequence in manage mode writes (today created, expired removed)
    const control = keyDir();
    const c0 = snapshot(control);
    exercise(control, 'manage');
    expect(snapshot(control)).not.toBe(c0);
  });

  it('read-only: a missing directory holds no keys and is not created', () => {
    const dir = join(mkdtempSync(join(tmpdir(), 'keys-absent-')), 'not-mounted');
    const t = new DailyTokenizer(new FileKeySource(dir, { mode: 'read-only' }));
    expect(t.keys(today, NOW)).toBeUndefined();
    expect(t.rotate(NOW)).toEqual([]);
    expect(t.status(NOW)).toEqual({ today, todayReadable: false, expiredDays: [], errors: [] });
    expect(() => statSync(dir)).toThrow(/ENOENT/);
  });

  it('a key past its grace is never used even though its file is still there (either mode), and leaves the cache', () => {
    for (const mode of ['read-only', 'manage'] as const) {
      const dir = keyDir();
      const source = new FileKeySource(dir, { mode });
      const t = new DailyTokenizer(source);
      expect(source.secretFor(today - 3, false)).toHaveLength(32); // readable on disk
      expect(t.keys(today - 3, NOW)).toBeUndefined();
      // a key fetched while inside its grace and cached by a long-lived worker stops at the grace too
      const lastMs = (today - 1 + 1) * DAY_MS + t.graceMs - 1;
      expect(t.keys(today - 1, lastMs)).toBeDefined();
      expect(t.keys(today - 1, lastMs + 1)).toBeUndefined();
      expect(readdirSync(dir)).toContain(`${isoOfDay(today - 1)}.key`);
    }
    // negative control: with the grace check switched off, the same file yields keys
    class NoGraceCheck extends DailyTokenizer {
      override expired(): boolean {
        return false;
      }
    }
    expect(new NoGraceCheck(new FileKeySource(keyDir(), { mode: 'read-only' })).keys(today - 3, NOW)).toBeDefined();
  });

  it('status: oldest and newest usable day, expired days held, today readable; without creating anything', () => {
    const dir = keyDir();
    const t = new DailyTokenizer(new FileKeySource(dir, { mode: 'manage' }));
    expect(t.status(NOW)).toEqual({ today, todayReadable: false, oldestDay: today - 1, newestDay: today + 1, expiredDays: [today - 3], errors: [] });
    expect(readdirSync(dir)).not.toContain('2026-11-29.key');
    writeFileSync(join(dir, '2026-11-29.key'), Buffer.alloc(5)); // short file: not a key
    expect(t.status(NOW).todayReadable).toBe(false);
    writeFileSync(join(dir, '2026-11-29.key'), randomBytes(32));
    expect(t.status(NOW)).toMatchObject({ todayReadable: true, oldestDay: today - 1, newestDay: today + 1 });
    // two days later: 11-28 ended 48 h ago (expired now), 11-29 is the oldest, today (12-01) has no key
    expect(t.status(NOW + 2 * DAY_MS)).toEqual({
      today: today + 2,
      todayReadable: false,
      oldestDay: today,
      newestDay: today + 1,
      expiredDays: [today - 3, today - 1],
      errors: [],
    });
  });

  it('read-only: reads a Kubernetes Secret volume (key files are symlinks into ..data, swapped by the kubelet)', () => {
    const dir = mkdtempSync(join(tmpdir(), 'keys-secret-'));
    const rev = '..2026_11_29_00_07_00.000000001';
    mkdirSync(join(dir, rev));
    const key = randomBytes(32);
    writeFileSync(join(dir, rev, '2026-11-29.key'), key);
    writeFileSync(join(dir, rev, '2026-11-30.key'), randomBytes(32));
    symlinkSync(rev, join(dir, '..data'));
    for (const f of ['2026-11-29.key', '2026-11-30.key']) symlinkSync(join('..data', f), join(dir, f));
    const before = snapshot(dir);
    const source = new FileKeySource(dir, { mode: 'read-only' });
    expect(source.days().sort()).toEqual([today, today + 1]);
    expect(source.secretFor(today, true)!.equals(key)).toBe(true);
    const t = new DailyTokenizer(source);
    expect(t.status(NOW)).toMatchObject({ todayReadable: true, oldestDay: today, newestDay: today + 1 });
    t.rotate(NOW + 5 * DAY_MS);
    expect(snapshot(dir)).toBe(before);
  });
});

/** Runs testing/killed-writer.ts, which dies by SIGKILL inside its first write while creating `path` with createFileOnce. */
function killedWhileCreating(path: string): void {
  const r = spawnSync(process.execPath, ['--import', 'tsx', 'testing/killed-writer.ts', 'once', path], {
    cwd: fileURLToPath(new URL('..', import.meta.url)),
    encoding: 'utf8',
  });
  expect(r.signal).toBe('SIGKILL');
}

describe('FileKeySource creation (runtime/secret-file.ts)', () => {
  it("day secrets: after a copy was killed creating today's, the next creates it; an empty one (what in-place creation left) fails the day", () => {
    const dir = mkdtempSync(join(tmpdir(), 'secret-file-days-'));
    const day = dayOfIso('2026-12-02');
    killedWhileCreating(join(dir, '2026-12-02.key'));
    const keys = new FileKeySource(dir);
    expect(keys.days()).toEqual([]); // the pending name is not taken for a day
    expect(keys.secretFor(day, true)?.length).toBe(32);
    expect(keys.days()).toEqual([day]);

    writeFileSync(join(dir, '2026-12-03.key'), Buffer.alloc(0), { mode: 0o600 });
    expect(() => keys.secretFor(day + 1, true)).toThrow(/stayed incomplete/);
  });
});
