/**
 * xorshift32: a small seeded generator of numbers in [0, 1), so a generated population is the same for
 * the same seed. For shaping test data only, never for secrets.
 */
export function rng(seed: number): () => number {
  let s = seed >>> 0 || 1;
  return () => {
    s ^= s << 13;
    s >>>= 0;
    s ^= s >>> 17;
    s ^= s << 5;
    s >>>= 0;
    return s / 0x1_0000_0000;
  };
}
