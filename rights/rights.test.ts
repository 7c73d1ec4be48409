import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { describe, expect, it } from 'vitest';
import { parseRightsArgs } from '../tools/rights.ts';
import { EnvelopeError, isSealed, newKey, seal, unseal, unwrapDek, wrapDek } from './envelope.ts';
import { SuppressionList, suppressionKey } from './suppression.ts';
import { identifierHash, openZoneKeys, retireKek, rotateKek, subjectOf } from './zone-keys.ts';

describe('envelope (AES-256-GCM, context bound)', () => {
  it('seals and opens; another key, another record key or a flipped byte does not open', () => {
    const dek = newKey();
    const subject = Buffer.from('0123456789abcdef');
    const v = Buffer.from('\xc3\x01personal value');
    const s = seal(dek, v, subject);
    expect(isSealed(s)).toBe(true);
    expect(s.includes(Buffer.from('personal value'))).toBe(false);
    expect(unseal(dek, s, subject)).toEqual(v);
    expect(() => unseal(newKey(), s, subject)).toThrowError(EnvelopeError);
    expect(() => unseal(dek, s, Buffer.from('fedcba9876543210'))).toThrowError(/does not authenticate/);
    const flipped = Buffer.from(s);
    flipped[20]! ^= 1;
    expect(() => unseal(dek, flipped, subject)).toThrowError(EnvelopeError);
    expect(() => unseal(dek, v, subject)).toThrowError(/not sealed/);
  });
  it('draws every seal a fresh IV, also across refills of the IV buffer', () => {
    const dek = randomBytes(32);
    const seen = new Set<string>();
    // 1,000 seals pass the 340-IV buffer twice; the IV is bytes 1-12 of the sealed value.
    for (let i = 0; i < 1000; i++) seen.add(seal(dek, Buffer.from('v'), Buffer.from('k')).subarray(1, 13).toString('hex'));
    expect(seen.size).toBe(1000);
  });

  it('a wrapped data key opens only with its KEK, zone and subject', () => {
    const kek = newKey();
    const dek = newKey();
    const subject = Buffer.alloc(16, 7);
    const w = wrapDek(kek, dek, 'cn', subject);
    expect(unwrapDek(kek, w, 'cn', subject)).toEqual(dek);
    expect(() => unwrapDek(newKey(), w, 'cn', subject)).toThrowError(EnvelopeError);
    expect(() => unwrapDek(kek, w, 'ru', subject)).toThrowError(EnvelopeError);
  });
});

describe('zone keys', () => {
  it('made once (racing opens agree), rotated, retired; the current version is never retired', () => {
    const dir = mkdtempSync(join(tmpdir(), 'zone-keys-'));
    const a = openZoneKeys(dir, 'cn', { create: true });
    const b = openZoneKeys(dir, 'cn', { create: true });
    expect(a.subjectKey).toEqual(b.subjectKey);
    expect(subjectOf(a, 'device_id:x')).toEqual(subjectOf(b, 'device_id:x'));
    expect(subjectOf(a, 'device_id:x')).not.toEqual(identifierHash(a, 'device_id:x'));
    expect(() => openZoneKeys(dir, 'ru', { create: false })).toThrowError(/no subject key/);
    expect(rotateKek(dir, 'cn')).toBe(2);
    expect(openZoneKeys(dir, 'cn', { create: false }).current).toBe(2);
    expect(() => retireKek(dir, 'cn', 2)).toThrowError(/current key/);
    retireKek(dir, 'cn', 1);
    expect(readdirSync(join(dir, 'cn')).sort()).toEqual(['kek-v2.key', 'subject.key']);
  });
});

const RACER = new URL('../testing/zone-keys-racer.ts', import.meta.url).href;

describe('zone keys made by several processes at once', () => {
  it('every racer on a fresh directory reads the one complete subject key, never a half-written one', async () => {
    // Four threads open the keys of 150 fresh directories together (testing/zone-keys-racer.ts). Before
    // the keys were linked into place whole, a racer could read the file another had just created and
    // not yet written: RIGHTS_KEYS_BAD, 0 bytes.
    const racers = 4;
    const root = mkdtempSync(join(tmpdir(), 'zone-keys-race-'));
    const dirs = Array.from({ length: 150 }, (_, i) => join(root, String(i)));
    const counters = new Int32Array(new SharedArrayBuffer(4 * dirs.length));
    const results = await Promise.all(
      Array.from(
        { length: racers },
        () =>
          new Promise<string[]>((resolve, reject) => {
            // A worker thread does not inherit vitest's TypeScript loader: it registers tsx, then loads the racer.
            const w = new Worker(`import('tsx/esm/api').then((t) => { t.register(); return import(${JSON.stringify(RACER)}); })`, {
              eval: true,
              workerData: { dirs, racers, counters },
            });
            w.once('message', resolve);
            w.once('error', reject);
          }),
      ),
    );
    for (let i = 0; i < dirs.length; i++) {
      const seen = new Set(results.map((r) => r[i]));
      expect([...seen].filter((x) => x!.startsWith('error'))).toEqual([]);
      expect(seen.size).toBe(1);
      // Only the two key files: no temporary file is left behind.
      expect(readdirSync(join(dirs[i]!, 'row')).sort()).toEqual(['kek-v1.key', 'subject.key']);
    }
    rmSync(root, { recursive: true, force: true });
  }, 60_000);
});

describe('suppression list', () => {
  it('applies entries per zone and kind; a tombstone lifts one kind only', () => {
    const l = new SuppressionList();
    const s = Buffer.alloc(16, 1);
    l.apply('cn', suppressionKey('restricted', s), Buffer.from('{}'));
    l.apply('cn', suppressionKey('withdrawn', s), Buffer.from('{}'));
    expect(l.kindOf('cn', s.toString('hex'))).toBe('withdrawn');
    expect(l.kindOf('ru', s.toString('hex'))).toBeUndefined();
    l.apply('cn', suppressionKey('withdrawn', s), null);
    expect(l.kindOf('cn', s.toString('hex'))).toBe('restricted');
    l.apply('cn', suppressionKey('restricted', s), null);
    expect([l.kindOf('cn', s.toString('hex')), l.size]).toEqual([undefined, 0]);
    l.apply('cn', Buffer.from('nonsense'), Buffer.from('x'));
    expect(l.size).toBe(0);
  });
});

describe('npm run rights arguments', () => {
  it('takes one identifier, checks its form and the zone', () => {
    expect(parseRightsArgs(['access', '--imei', '861234567890123', '--zone', 'cn'])).toMatchObject({ identifier: 'imei:861234567890123', zones: ['cn'] });
    expect(() => parseRightsArgs(['erase', '--imei', '12ab'])).toThrowError(/not a well-formed imei/);
    expect(() => parseRightsArgs(['erase'])).toThrowError(/needs the device/);
    expect(() => parseRightsArgs(['erase', '--device-id', 'a', '--imei', '861234567890123'])).toThrowError(/one identifier/);
    expect(() => parseRightsArgs(['retire-kek', '--zone', 'cn'])).toThrowError(/--version/);
    expect(() => parseRightsArgs(['shred'])).toThrowError(/usage/);
  });
});
