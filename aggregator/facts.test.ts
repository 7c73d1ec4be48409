import { describe, expect, it } from 'vitest';
import { DAY_MS, type EventFact } from '../schemas/index.ts';
import { dayToIso, isoToDay, judgeFact } from './facts.ts';

const now = Date.parse('2026-03-10T12:00:00Z');
const today = Math.floor(now / DAY_MS);
const fact = (day: number): EventFact => ({
  event_key: Buffer.alloc(16, 1),
  daily_token: Buffer.alloc(16, 2),
  day,
  kind: 'session_start',
  app_id: 'a',
  app_version: '1',
  device_model: 'm',
  os_version: '13',
  country: 'DE',
  duration_ms: null,
  crash_signature: null,
  exception_type: null,
});
const w = { nowMs: now, maxLatenessDays: 3, futureSkewMs: 600_000 };

describe('judgeFact: the lateness window', () => {
  it('counts today and up to maxLatenessDays back, in their own day', () => {
    for (const d of [today, today - 1, today - 3]) {
      const v = judgeFact(fact(d), w);
      expect(v.kind).toBe('ok');
      if (v.kind === 'ok') expect(v.row.day).toBe(d);
    }
  });
  it('keeps out older and future days', () => {
    expect(judgeFact(fact(today - 4), w).kind).toBe('late');
    expect(judgeFact(fact(today + 1), w).kind).toBe('future');
  });
  it('lets the skew reach into tomorrow only near midnight', () => {
    const nearMidnight = (today + 1) * DAY_MS - 60_000;
    expect(judgeFact(fact(today + 1), { ...w, nowMs: nearMidnight }).kind).toBe('ok');
  });
  it('negative-control switch replaces the dedup key with a random one', () => {
    const a = judgeFact(fact(today), { ...w, unsafeCountRows: true });
    const b = judgeFact(fact(today), { ...w, unsafeCountRows: true });
    expect(a.kind === 'ok' && b.kind === 'ok' && !a.row.event_key.equals(b.row.event_key)).toBe(true);
  });
});

describe('days', () => {
  it('round-trips ISO days and refuses non-days', () => {
    expect(dayToIso(isoToDay('2024-02-29')!)).toBe('2024-02-29');
    expect(isoToDay('2023-02-29')).toBeUndefined();
    expect(isoToDay('2024-2-1')).toBeUndefined();
  });
});
