/**
 * Differentially private counts: the two-sided geometric mechanism (discrete Laplace). A count whose
 * value one unit of privacy changes by at most `sensitivity` is released as `count + X`, with
 * P(X = x) proportional to alpha^|x|, alpha = exp(-epsilon / sensitivity). Whatever one unit did or did
 * not contribute, every released value is at most e^epsilon times more likely with it than without.
 *
 * The unit of privacy here is one device in one released cell (one UTC day x app x version x model x
 * OS x country; aggregator/migrations/R_analyst_views.sql): daily tokens change every day and cannot be
 * linked across days (policy 1.1.4), and a device is in one cell per app it used that day. Every output
 * group of a report is a disjoint set of cells, so one report costs epsilon once (parallel
 * composition), and a device active in m apps on a day can lose up to m x epsilon per report.
 *
 * Noise is drawn with the operating system's cryptographic randomness (node:crypto), never Math.random:
 * an analyst who could predict the noise could subtract it.
 */
import { randomBytes } from 'node:crypto';

/** Uniform in (0, 1], 53 random bits. */
export type Uniform = () => number;

export const cryptoUniform: Uniform = () => {
  const b = randomBytes(8);
  const hi = b.readUInt32BE(0) >>> 5; // 27 bits
  const lo = b.readUInt32BE(4) >>> 6; // 26 bits
  return (hi * 67108864 + lo + 1) / 9007199254740992;
};

/** alpha of the mechanism for a privacy loss `epsilon` and a `sensitivity` (both > 0). */
export function geometricAlpha(epsilon: number, sensitivity = 1): number {
  if (!(epsilon > 0) || !Number.isFinite(epsilon)) throw new RangeError(`epsilon must be a positive number, got ${epsilon}`);
  if (!(sensitivity > 0)) throw new RangeError(`sensitivity must be positive, got ${sensitivity}`);
  return Math.exp(-epsilon / sensitivity);
}

/** One draw of the two-sided geometric noise: the difference of two geometric draws on {0, 1, ...}. */
export function geometricNoise(epsilon: number, sensitivity = 1, u: Uniform = cryptoUniform): number {
  const alpha = geometricAlpha(epsilon, sensitivity);
  const lnA = Math.log(alpha);
  const g = () => Math.floor(Math.log(u()) / lnA);
  return g() - g();
}

/** Standard deviation of that noise: sqrt(2 alpha) / (1 - alpha). */
export function geometricSd(epsilon: number, sensitivity = 1): number {
  const a = geometricAlpha(epsilon, sensitivity);
  return Math.sqrt(2 * a) / (1 - a);
}

/** Expected absolute error of that noise: 2 alpha / (1 - alpha^2). */
export function geometricMeanAbsError(epsilon: number, sensitivity = 1): number {
  const a = geometricAlpha(epsilon, sensitivity);
  return (2 * a) / (1 - a * a);
}

/**
 * A rate from two noisy counts, with its expected error by the delta method:
 * crash-free % = 100 (1 - crashed / active). Counts below 0 are read as 0 (post-processing costs no
 * privacy). Returns null when there are no active devices to divide by.
 */
export function crashFreePct(active: number, crashed: number, sdActive: number, sdCrashed: number): { pct: number; sd: number } | null {
  const d = Math.max(0, active);
  const c = Math.min(Math.max(0, crashed), d);
  if (d === 0) return null;
  const sd = 100 * Math.sqrt((sdCrashed / d) ** 2 + ((c * sdActive) / (d * d)) ** 2);
  return { pct: 100 * (1 - c / d), sd };
}

/**
 * Crashes per 1,000 sessions from two noisy counts, with its delta-method error; null without sessions.
 * Negative counts are read as 0.
 */
export function crashesPer1000(crashes: number, sessions: number, sdCrashes: number, sdSessions: number): { rate: number; sd: number } | null {
  const s = Math.max(0, sessions);
  const c = Math.max(0, crashes);
  if (s === 0) return null;
  const sd = 1000 * Math.sqrt((sdCrashes / s) ** 2 + ((c * sdSessions) / (s * s)) ** 2);
  return { rate: (1000 * c) / s, sd };
}
