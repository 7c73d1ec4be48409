import { randomBytes } from 'node:crypto';
import { mkdtempSync, readdirSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
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
