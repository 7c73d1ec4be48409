import { afterEach, describe, expect, it } from 'vitest';
import { carriesRunTag, ownedNamesIn, RUN_TAG_ENV } from './leftovers.ts';
import { ownedByThisFile, uniqueName } from './stack.ts';

describe('uniqueName inside an integration run', () => {
  afterEach(() => {
    delete process.env[RUN_TAG_ENV];
  });

  it("carries the run tag and is recorded as this file's, so the file cleanup and the end-of-run check find it", () => {
    process.env[RUN_TAG_ENV] = 'rtest01';
    const name = uniqueName('ingest_p');
    expect(name).toMatch(/^ingest_p_rtest01_[a-z0-9]+_[a-z0-9]+$/);
    expect(carriesRunTag(name, 'rtest01')).toBe(true);
    expect(ownedNamesIn([`${name}_cn`, 'someone_elses'], ownedByThisFile().names)).toEqual([`${name}_cn`]);
  });

  it('outside a run (bench, demo) has no tag and records nothing', () => {
    const before = ownedByThisFile().names.size;
    const name = uniqueName('bench_agg');
    expect(name).toMatch(/^bench_agg_[a-z0-9]+_[a-z0-9]+$/);
    expect(ownedByThisFile().names.size).toBe(before);
  });
});
