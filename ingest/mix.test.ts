import { describe, expect, it } from 'vitest';
import { eventsTimestamp, Mixer, personalTimestamp, planMixCalls, RecentRecords, separateOwners, shuffle, type MixedRecord } from './mix.ts';
import { DAY_MS } from '../schemas/index.ts';

const rec = (owner: number, cluster = 'main', topic = 'ev', bytes = 10): MixedRecord => ({
  owner,
  cluster,
  topic,
  message: { key: Buffer.from(`k${owner}`), value: Buffer.alloc(bytes - 2) },
  bytes,
});

describe('coarse timestamps', () => {
  it('events records carry the start of the UTC day, personal records the start of the hour', () => {
    const t = Date.UTC(2026, 11, 1, 16, 42, 7, 123);
    expect(eventsTimestamp(t)).toBe(String(Date.UTC(2026, 11, 1)));
    expect(personalTimestamp(t)).toBe(String(Date.UTC(2026, 11, 1, 16)));
  });
});

describe('shuffle and separateOwners', () => {
  it('shuffle is a permutation', () => {
    const xs = Array.from({ length: 100 }, (_, i) => i);
    const s = shuffle(xs.slice());
    expect(s.slice().sort((a, b) => a - b)).toEqual(xs);
    expect(s).not.toEqual(xs); // 1 in 100! to fail
  });

  it('no two records of one batch are neighbours when a separation exists; negative control: the input had them', () => {
    for (let round = 0; round < 200; round++) {
      const list = shuffle([rec(1), rec(1), rec(2), rec(2), rec(3), rec(4), rec(5), rec(5)]);
      separateOwners(list);
      expect(list.some((r, i) => i > 0 && list[i - 1]!.owner === r.owner)).toBe(false);
      expect(list.map((r) => r.owner).sort()).toEqual([1, 1, 2, 2, 3, 4, 5, 5]);
    }
    const adjacent = [rec(1), rec(1), rec(2), rec(3)];
    expect(adjacent[0]!.owner).toBe(adjacent[1]!.owner);
    expect(separateOwners(adjacent).some((r, i) => i > 0 && adjacent[i - 1]!.owner === r.owner)).toBe(false);
  });
});

describe('planMixCalls', () => {
  it('events and personal records go in separate calls per cluster, under the caps, none lost', () => {
    const events = Array.from({ length: 30 }, (_, i) => rec(i % 12));
    const personal = Array.from({ length: 12 }, (_, i) => rec(i, i % 2 ? 'zoneA' : 'main', `p${i % 3}`));
    const calls = planMixCalls({ events, personal }, { maxRecords: 8, maxBytes: 1000 });
    expect(calls.every((c) => c.count <= 8)).toBe(true);
    expect(calls.filter((c) => c.kind === 'events').reduce((s, c) => s + c.count, 0)).toBe(30);
    expect(calls.filter((c) => c.kind === 'personal').reduce((s, c) => s + c.count, 0)).toBe(12);
    for (const c of calls) {
      const topics = [...c.byTopic.keys()];
      if (c.kind === 'events') expect(topics).toEqual(['ev']);
      else expect(topics.every((t) => t.startsWith('p'))).toBe(true);
      expect([...c.byTopic.values()].reduce((s, m) => s + m.length, 0)).toBe(c.count);
    }
    const bytesCapped = planMixCalls({ events, personal: [] }, { maxRecords: 100, maxBytes: 25 });
    expect(bytesCapped.every((c) => c.bytes <= 25)).toBe(true);
  });

  it('the order of events records is not the order of the batches (negative control: identity rand keeps it)', () => {
    const events = Array.from({ length: 64 }, (_, i) => rec(i));
    const order = (rand?: (n: number) => number) =>
      planMixCalls({ events: events.slice(), personal: [] }, { maxRecords: 1000, maxBytes: 1 << 20 }, rand)[0]!
        .byTopic.get('ev')!
        .map((m) => String(m.key));
    expect(order((n) => n - 1)).toEqual(events.map((e) => String(e.message.key)));
    expect(order()).not.toEqual(events.map((e) => String(e.message.key)));
  });
});

describe('Mixer', () => {
  const settings = { windowMs: 20, minBatches: 3, maxWaitMs: 80, maxBatches: 5 };

  it('publishes a full mix at once, and settles every batch with its mix', async () => {
    const mixes: number[][] = [];
    const m = new Mixer<number>(settings, async (xs) => void mixes.push(xs));
    await Promise.all([1, 2, 3, 4, 5].map((x) => m.add(x)));
    expect(mixes).toEqual([[1, 2, 3, 4, 5]]);
  });

  it('waits past the window for the minimum, but never past the longest wait', async () => {
    const sizes: number[] = [];
    const m = new Mixer<number>(
      settings,
      async () => {},
      (n) => sizes.push(n),
    );
    const t0 = performance.now();
    await m.add(1);
    const waited = performance.now() - t0;
    expect(sizes).toEqual([1]);
    expect(waited).toBeGreaterThanOrEqual(75);
    expect(waited).toBeLessThan(400);
  });

  it('past the window, closes on the add that reaches the minimum, not at its next look; inside the window it waits (control)', async () => {
    const sizes: number[] = [];
    const m = new Mixer<number>(
      { windowMs: 20, minBatches: 2, maxWaitMs: 1000, maxBatches: 50 },
      async () => {},
      (n) => sizes.push(n),
    );
    const first = m.add(1);
    await new Promise((r) => setTimeout(r, 30)); // past the window, one batch short
    const second = m.add(2);
    expect(sizes).toEqual([2]); // closed within that add, before any timer ran
    await Promise.all([first, second]);

    const held: number[] = [];
    const w = new Mixer<number>(
      { windowMs: 10_000, minBatches: 2, maxWaitMs: 10_000, maxBatches: 50 },
      async () => {},
      (n) => held.push(n),
    );
    const both = [w.add(1), w.add(2)];
    expect(held).toEqual([]); // the minimum, but inside the window: still collecting
    await w.drain();
    await Promise.all(both);
    expect(held).toEqual([2]);
  });

  it('a failed publish fails every batch of its mix, none of the next', async () => {
    let fail = true;
    const m = new Mixer<number>({ ...settings, maxBatches: 2 }, async () => {
      if (fail) throw new Error('kafka down');
    });
    const a = m.add(1);
    const b = m.add(2);
    await expect(a).rejects.toThrow('kafka down');
    await expect(b).rejects.toThrow('kafka down');
    fail = false;
    await expect(Promise.all([m.add(3), m.add(4)])).resolves.toBeDefined();
  });

  it('drain publishes the open mix and waits for it', async () => {
    const done: number[] = [];
    const m = new Mixer<number>({ ...settings, windowMs: 10_000, maxWaitMs: 10_000 }, async (xs) => {
      await new Promise((r) => setTimeout(r, 20));
      done.push(...xs);
    });
    const p = m.add(7);
    await m.drain();
    expect(done).toEqual([7]);
    await p;
  });
});

describe('RecentRecords', () => {
  it('remembers digests for the current UTC day only, and forgets the oldest past its bound', () => {
    let now = 10 * DAY_MS + 5;
    const r = new RecentRecords(2, () => now);
    expect(r.has('a')).toBe(false);
    r.remember(['a', 'b']);
    expect([r.has('a'), r.has('b')]).toEqual([true, true]);
    r.remember(['c']);
    // Bounded: 'a' was the oldest.
    expect([r.has('a'), r.has('b'), r.has('c'), r.size]).toEqual([false, true, true, 2]);
    // Remembering again refreshes: 'b' is now newer than 'c'.
    r.remember(['b', 'd']);
    expect([r.has('b'), r.has('c'), r.has('d')]).toEqual([true, false, true]);
    now += DAY_MS - 10;
    expect([r.has('b'), r.has('d')]).toEqual([true, true]);
    now += 10;
    expect([r.has('b'), r.has('d'), r.size]).toEqual([false, false, 0]);
  });

  it('a bound of 0 remembers nothing (every copy is written)', () => {
    const r = new RecentRecords(0);
    r.remember(['a']);
    expect(r.has('a')).toBe(false);
  });
});
