/**
 * The demo population's shape (zones, consent, crash rate by version, late/malformed shares), and that
 * what it plans is what the real compiled split of schemas/ does with it: every planned reject is rejected with
 * the planned reason, every other event is accepted, and no-consent batches are dropped whole.
 */
import { mkdtempSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { compileSplit, DAY_MS } from '../schemas/index.ts';
import { DailyTokenizer, FileKeySource } from '../schemas/tokenizer.ts';
import { ZONES } from '../schemas/contract.ts';
import { Ledger } from './ledger.ts';
import { APPS, Population, buildDevices, type PlannedBatch } from './population.ts';

// Noon UTC: sessions of the last 20 minutes stay inside today, so day arithmetic below is exact.
const NOW = Date.UTC(2026, 10, 29, 12, 0, 0);
const TODAY = Math.floor(NOW / DAY_MS);

function draw(n: number, seed = 7): { pop: Population; batches: PlannedBatch[] } {
  const pop = new Population({ devices: 3000, seed });
  return { pop, batches: Array.from({ length: n }, () => pop.next(NOW)) };
}

const { pop, batches } = draw(6000);

describe('demo population', () => {
  it('covers every residency zone and the countries behind them', () => {
    const zones = new Set(pop.devices.map((d) => d.zone));
    expect([...zones].sort()).toEqual([...ZONES].sort());
    const countries = new Set(pop.devices.map((d) => d.country));
    for (const c of ['CN', 'RU', 'IN', 'US', 'DE', 'BR', 'ZZ']) expect(countries).toContain(c);
    // Every zone gets a real share, not a token device.
    for (const z of ZONES) expect(pop.devices.filter((d) => d.zone === z).length / pop.devices.length).toBeGreaterThan(0.05);
  });

  it('has apps, versions, models and OS versions spread over devices', () => {
    for (const app of APPS) {
      for (const v of app.versions) expect(pop.devices.some((d) => d.appId === app.id && d.appVersion === v.version)).toBe(true);
    }
    expect(new Set(pop.devices.map((d) => d.model)).size).toBeGreaterThanOrEqual(6);
    expect(new Set(pop.devices.map((d) => d.osVersion)).size).toBe(4);
  });

  it('has the configured share of devices without analytics consent, and no ads consent without it', () => {
    const devices = buildDevices({ devices: 10_000, seed: 3, consentWithheldShare: 0.08 });
    const share = devices.filter((d) => !d.consentAnalytics).length / devices.length;
    expect(share).toBeGreaterThan(0.065);
    expect(share).toBeLessThan(0.095);
    expect(devices.some((d) => d.consentAnalytics && !d.consentAds)).toBe(true);
    expect(devices.every((d) => d.consentAnalytics || !d.consentAds)).toBe(true);
  });

  it('crash rate per session follows the version: the bad release stands out', () => {
    const per = new Map<string, { sessions: number; crashes: number }>();
    for (const b of batches) {
      if (b.kind !== 'current' && b.kind !== 'late') continue;
      const k = `${b.device.appId} ${b.device.appVersion}`;
      const s = per.get(k) ?? { sessions: 0, crashes: 0 };
      for (const e of b.events) {
        if (e.kind === 'session_start') s.sessions++;
        if (e.kind === 'crash') s.crashes++;
      }
      per.set(k, s);
    }
    const rate = (app: string, v: string) => {
      const s = per.get(`${app} ${v}`)!;
      return s.crashes / s.sessions;
    };
    expect(rate('com.example.mail', '4.3.0-beta')).toBeGreaterThan(0.08);
    expect(rate('com.example.mail', '4.3.0-beta')).toBeGreaterThan(4 * rate('com.example.mail', '4.2.0'));
    expect(rate('com.example.maps', '2.8.0')).toBeGreaterThan(rate('com.example.maps', '2.7.3'));
    expect(rate('com.example.weather', '13.1.0')).toBeLessThan(0.02);
  });

  it('mixes in late, too-late, resent and malformed batches at their shares', () => {
    const share = (k: PlannedBatch['kind']) => batches.filter((b) => b.kind === k).length / batches.length;
    expect(share('late')).toBeGreaterThan(0.12);
    expect(share('late')).toBeLessThan(0.18);
    expect(share('too_late')).toBeGreaterThan(0.004);
    expect(share('bad_event')).toBeGreaterThan(0.02);
    expect(share('bad_event')).toBeLessThan(0.04);
    expect(share('bad_body')).toBeGreaterThan(0.005);
    expect(share('bad_body')).toBeLessThan(0.016);
    const resent = batches.filter((b) => b.resends > 0).length / batches.length;
    expect(resent).toBeGreaterThan(0.02);
    expect(resent).toBeLessThan(0.04);
  });

  it('dates events plausibly: now-ish, yesterday or the day before when late, never in the future', () => {
    // One expect at the end (not one per event: ~100k events).
    const wrong: string[] = [];
    for (const b of batches) {
      for (const e of b.events) {
        const day = Math.floor(e.time / DAY_MS);
        const ok =
          e.time < NOW && (b.kind === 'late' ? day === TODAY - 1 || day === TODAY - 2 : b.kind === 'too_late' ? day === TODAY - 4 : NOW - e.time < 40 * 60_000);
        if (!ok) wrong.push(`${b.kind} batch ${b.seq}: event at ${new Date(e.time).toISOString()}`);
      }
    }
    expect(wrong.slice(0, 5)).toEqual([]);
    // Sessions: start, page views with durations in a plausible range, an end or a crash.
    const pageDurations = batches
      .filter((b) => b.kind !== 'bad_event')
      .flatMap((b) =>
        (b.value.events as Array<{ payload: Record<string, { duration_ms?: number }> }>).flatMap((e) =>
          Object.entries(e.payload)
            .filter(([k]) => k.endsWith('PageView'))
            .map(([, v]) => v.duration_ms!),
        ),
      );
    pageDurations.sort((a, b) => a - b);
    const median = pageDurations[pageDurations.length >> 1]!;
    expect(median).toBeGreaterThan(4000);
    expect(median).toBeLessThan(16_000);
    expect(pageDurations[0]!).toBeGreaterThanOrEqual(300);
  });

  it('never repeats an event id across batches (only a resend repeats a whole batch)', () => {
    const ids = batches.flatMap((b) => b.events.map((e) => e.eventId));
    expect(new Set(ids).size).toBe(ids.length);
  });

  it('is deterministic for a seed', () => {
    const a = draw(50, 11).batches.map((b) => b.events.map((e) => e.eventId).join());
    const b = draw(50, 11).batches.map((b) => b.events.map((e) => e.eventId).join());
    expect(a).toEqual(b);
  });
});

describe('demo population through the real compiled split of schemas/', () => {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'demo-keys-'));
  afterAll(() => rmSync(dir, { recursive: true, force: true }));

  it('ingest rejects exactly the planned events with the planned reasons; the ledger sees no surprise', () => {
    const split = compileSplit();
    const tokenizer = new DailyTokenizer(new FileKeySource(dir));
    const ledger = new Ledger();
    let checked = 0;
    for (const b of batches.slice(0, 1500)) {
      if (b.kind === 'bad_body') continue;
      // What ingest does after decoding the container: processBatch on the batch value.
      const r = split.processBatch(split.batchType.fromBuffer(split.batchType.toBuffer(b.value)), { receivedAt: NOW, tokenizer });
      ledger.record(b, 200, { accepted: r.accepted, dropped_consent: r.droppedConsent, rejected: r.rejects });
      checked++;
    }
    expect(checked).toBeGreaterThan(1400);
    expect(ledger.tally.surprises).toEqual([]);
    expect(ledger.tally.eventsRejected.TOKEN_TOO_LATE).toBeGreaterThan(0);
    expect(ledger.tally.eventsRejected.SCHEMA_BAD_FORMAT).toBeGreaterThan(0);
    expect(ledger.tally.eventsRejected.SCHEMA_STRING_TOO_LONG).toBeGreaterThan(0);
    expect(ledger.eventsDroppedNoConsent()).toBeGreaterThan(0);
    // Negative control: a ledger told a planned reject was accepted must notice.
    const b = batches.find((x) => x.kind === 'bad_event' && x.device.consentAnalytics)!;
    const wrong = new Ledger();
    wrong.record(b, 200, { accepted: b.events.length, dropped_consent: {}, rejected: [] });
    expect(wrong.tally.surprises.length).toBeGreaterThan(0);
  });

  it('malformed bodies are not batches', () => {
    const bad = batches.filter((b) => b.kind === 'bad_body');
    expect(bad.length).toBeGreaterThan(5);
    for (const b of bad) {
      if (b.contentType === 'application/json') expect(() => JSON.parse(b.body.toString())).toThrow();
      else expect(b.body.subarray(0, 4).toString('latin1')).toBe('Obj\x01');
    }
    expect(bad.some((b) => b.contentType === 'application/json')).toBe(true);
    expect(bad.some((b) => b.contentType === 'avro/binary')).toBe(true);
  });
});
