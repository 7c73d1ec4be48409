import { mkdtempSync, statSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { DailyTokenizer, FileKeySource, EnvKeySource, dayOfIso, DAY_MS } from './index.ts';

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
    a.keys(day - 3, NOW); // an old day (as if left over)
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
