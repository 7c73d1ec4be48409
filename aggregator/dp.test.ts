import { describe, expect, it } from 'vitest';
import { crashFreePct, cryptoUniform, geometricAlpha, geometricMeanAbsError, geometricNoise, geometricSd } from './dp.ts';
import { rng } from '../testing/rng.ts';

describe('two-sided geometric mechanism', () => {
  it('draws integers whose mean is 0 and whose spread matches sqrt(2 alpha) / (1 - alpha)', () => {
    const r = rng(7);
    const u = () => 1 - r(); // (0, 1]
    for (const eps of [0.25, 0.5, 1, 2]) {
      const n = 40_000;
      let sum = 0;
      let sq = 0;
      let abs = 0;
      for (let i = 0; i < n; i++) {
        const x = geometricNoise(eps, 1, u);
        expect(Number.isInteger(x)).toBe(true);
        sum += x;
        sq += x * x;
        abs += Math.abs(x);
      }
      const sd = geometricSd(eps);
      expect(Math.abs(sum / n)).toBeLessThan((4 * sd) / Math.sqrt(n));
      expect(Math.sqrt(sq / n) / sd).toBeGreaterThan(0.95);
      expect(Math.sqrt(sq / n) / sd).toBeLessThan(1.05);
      expect(abs / n / geometricMeanAbsError(eps)).toBeGreaterThan(0.95);
      expect(abs / n / geometricMeanAbsError(eps)).toBeLessThan(1.05);
    }
  });

  it('is epsilon-DP in its frequencies: P(x) / P(x + 1) stays within e^epsilon (and reaches it)', () => {
    const r = rng(11);
    const u = () => 1 - r();
    const eps = 1;
    const counts = new Map<number, number>();
    const n = 200_000;
    for (let i = 0; i < n; i++) {
      const x = geometricNoise(eps, 1, u);
      counts.set(x, (counts.get(x) ?? 0) + 1);
    }
    for (let x = -2; x < 2; x++) {
      const ratio = (counts.get(x) ?? 0) / (counts.get(x + 1) ?? 1);
      const want = x < 0 ? Math.exp(-eps) : Math.exp(eps);
      expect(Math.abs(ratio / want - 1)).toBeLessThan(0.06);
    }
  });

  it('scales with the sensitivity and refuses a non-positive epsilon', () => {
    expect(geometricAlpha(1, 2)).toBeCloseTo(Math.exp(-0.5));
    expect(geometricSd(0.5, 4)).toBeCloseTo(geometricSd(0.125, 1));
    expect(() => geometricNoise(0)).toThrow(/epsilon must be a positive number/);
    expect(() => geometricNoise(Number.NaN)).toThrow(RangeError);
  });

  it('uses cryptographic uniforms in (0, 1]', () => {
    for (let i = 0; i < 1000; i++) {
      const x = cryptoUniform();
      expect(x).toBeGreaterThan(0);
      expect(x).toBeLessThanOrEqual(1);
    }
  });

  it('negative control: averaging many fresh draws of one count converges to it, which is why a repeated question must not get fresh noise', () => {
    const r = rng(3);
    const u = () => 1 - r();
    const truth = 1;
    const mean = Array.from({ length: 5000 }, () => truth + geometricNoise(0.5, 1, u)).reduce((a, b) => a + b, 0) / 5000;
    expect(Math.round(mean)).toBe(truth);
  });
});

describe('crash-free % from noisy counts', () => {
  it('computes the rate and its delta-method error, clamping negative counts', () => {
    const r = crashFreePct(1000, 20, 2, 2)!;
    expect(r.pct).toBeCloseTo(98);
    expect(r.sd).toBeCloseTo(100 * Math.sqrt((2 / 1000) ** 2 + ((20 * 2) / 1e6) ** 2));
    expect(crashFreePct(-3, 1, 2, 2)).toBeNull();
    expect(crashFreePct(10, -2, 2, 2)!.pct).toBe(100);
    expect(crashFreePct(10, 12, 2, 2)!.pct).toBe(0);
  });
});
