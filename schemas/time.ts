/**
 * The day, as every part of the pipeline counts it: UTC days since 1970-01-01. Daily tokens and their
 * secrets, the EventFact's `day`, the aggregates' partitions and the retention sweeps all use these,
 * so "a day" means the same thing everywhere (services import them through schemas/index.ts).
 */

/** One day in milliseconds (UTC days have no leap seconds in JS time). */
export const DAY_MS = 86_400_000;

/** `2026-11-29` -> its day number. */
export function dayOfIso(iso: string): number {
  return Math.floor(Date.parse(`${iso}T00:00:00Z`) / DAY_MS);
}

/** Day number -> `2026-11-29`. */
export function isoOfDay(day: number): string {
  return new Date(day * DAY_MS).toISOString().slice(0, 10);
}
