/**
 * Ingest (the events topic's retention ceiling) and the aggregator (how long the aggregates are kept)
 * read the same non-personal retentions of the category map with the same calendar
 * (schemas/categories.ts `retentionDays`: a year is 365 days on both sides, it used to be 360 in the
 * aggregator).
 */
import { describe, expect, it } from 'vitest';
import { policyRetentionDays } from '../aggregator/config.ts';
import { nonPersonalRetentionMs } from '../ingest/topics.ts';
import { CATEGORIES, DAY_MS, retentionDays } from '../schemas/index.ts';

describe('retention of non-personal data', () => {
  it('is the same period for the aggregates and the events topic', () => {
    const longest = Math.max(
      ...Object.values(CATEGORIES)
        .filter((c) => !c.personal)
        .map((c) => retentionDays(c.retention)),
    );
    expect(policyRetentionDays()).toBe(longest);
    expect(nonPersonalRetentionMs()).toBe(policyRetentionDays() * DAY_MS);
  });
});
