import { describe, expect, it } from 'vitest';
import { carriesRunTag, leftoverMessage, leftoversOfRun, madeAt, newRunTag, ownedNamesIn, RUN_TAG_ENV, staleMadeNames } from './leftovers.ts';
import { uniqueName } from './stack.ts';

describe('ownedNamesIn (what a file deletes after itself)', () => {
  const owned = new Set(['ingest_p_rabc123_mx4tx2k8_67j2b52c44_', 'agg_events_rabc123_mx4twjq3_4vk21c69e8']);
  it('takes exact names and names an owned prefix starts (ingest appends the zone)', () => {
    const present = [
      '__consumer_offsets',
      'agg_events_rabc123_mx4twjq3_4vk21c69e8',
      'ingest_p_rabc123_mx4tx2k8_67j2b52c44_cn',
      'ingest_p_rabc123_mx4tx2k8_67j2b52c44_row',
      'telemetry.events.v1',
    ];
    expect(ownedNamesIn(present, owned)).toEqual([
      'agg_events_rabc123_mx4twjq3_4vk21c69e8',
      'ingest_p_rabc123_mx4tx2k8_67j2b52c44_cn',
      'ingest_p_rabc123_mx4tx2k8_67j2b52c44_row',
    ]);
  });
  it('takes nothing when the file made no names, or only names of others', () => {
    expect(ownedNamesIn(['a', 'b'], new Set())).toEqual([]);
    expect(ownedNamesIn(['agg_events_rabc123_mx4twjq3_other', 'demo_events'], owned)).toEqual([]);
  });
});

describe('leftoversOfRun (the end-of-run check)', () => {
  const tag = 'rabc123';
  const atStart = { topics: ['__consumer_offsets', 'old_topic_of_yesterday'], databases: ['default', 'system'] };

  it("reports nothing when only the stack's own names and names from before the run are there", () => {
    const r = leftoversOfRun({ topics: ['__consumer_offsets', 'old_topic_of_yesterday'], databases: ['default', 'system'] }, atStart, tag);
    expect(r).toEqual({ ofThisRun: { topics: [], databases: [] }, othersNew: { topics: [], databases: [] } });
    expect(leftoverMessage(r, { kafka: 'k', clickhouse: 'c' })).toBeUndefined();
  });

  it('negative control: a topic and a database this run left are named, and the message fails the run', () => {
    const r = leftoversOfRun(
      {
        topics: ['__consumer_offsets', `kafka_int_events_${tag}_mx4txyl7_73j3ed91db`, `ingest_p_${tag}_mx4tx2k8_67j2b52c44_cn`],
        databases: ['default', 'system', `agg_${tag}_mx4twjq3_4vk1`],
      },
      atStart,
      tag,
    );
    expect(r.ofThisRun).toEqual({
      topics: [`ingest_p_${tag}_mx4tx2k8_67j2b52c44_cn`, `kafka_int_events_${tag}_mx4txyl7_73j3ed91db`],
      databases: [`agg_${tag}_mx4twjq3_4vk1`],
    });
    const msg = leftoverMessage(r, { kafka: '127.0.0.1:19092', clickhouse: 'http://127.0.0.1:18123' });
    expect(msg).toContain(`2 Kafka topic(s) on 127.0.0.1:19092: ingest_p_${tag}_mx4tx2k8_67j2b52c44_cn, kafka_int_events_${tag}_mx4txyl7_73j3ed91db`);
    expect(msg).toContain(`1 ClickHouse database(s) on http://127.0.0.1:18123: agg_${tag}_mx4twjq3_4vk1`);
  });

  it('a name of this run counts even if it already existed at the start (a tag is never reused)', () => {
    const r = leftoversOfRun({ topics: [`x_${tag}_1`], databases: [] }, { topics: [`x_${tag}_1`], databases: [] }, tag);
    expect(r.ofThisRun.topics).toEqual([`x_${tag}_1`]);
  });

  it("new names without this run's tag (a demo, another run) are listed apart, never as this run's", () => {
    const r = leftoversOfRun({ topics: ['demo_mx4_events', 'ingest_ev_rzzz999_mx4_1'], databases: ['demo_mx4'] }, atStart, tag);
    expect(r.ofThisRun).toEqual({ topics: [], databases: [] });
    expect(r.othersNew).toEqual({ topics: ['demo_mx4_events', 'ingest_ev_rzzz999_mx4_1'], databases: ['demo_mx4'] });
    expect(leftoverMessage(r, { kafka: 'k', clickhouse: 'c' })).toBeUndefined();
  });
});

describe('run tags', () => {
  it('are valid inside a topic name and an unquoted ClickHouse identifier, and matched only between underscores', () => {
    for (let i = 0; i < 200; i++) {
      const t = newRunTag();
      expect(t).toMatch(/^r[a-z0-9]{6}$/);
      expect(carriesRunTag(`agg_${t}_mx4`, t)).toBe(true);
      expect(carriesRunTag(`agg_${t}mx4`, t)).toBe(false);
    }
  });
});

describe('staleMadeNames (npm run stack:clean)', () => {
  const HOUR = 3_600_000;
  const at = (ms: number) => ms.toString(36);
  const now = Date.UTC(2026, 11, 2, 12);
  it("takes names a tracked run made more than the age ago, with what ingest appended, and reads uniqueName's own names", () => {
    const old = `bench_ingest_p_rxxe97b_${at(now - 3 * HOUR)}_16jab12cd_cn_p30d`;
    const oldDb = `agg_rabc123_${at(now - 30 * HOUR)}_4vk21c69e8`;
    const fresh = `bench_ingest_ev_rxxe97b_${at(now - 10 * 60_000)}_16jab12cd`;
    expect(staleMadeNames([old, oldDb, fresh], now, 2 * HOUR)).toEqual([old, oldDb]);
    const saved = process.env[RUN_TAG_ENV];
    process.env[RUN_TAG_ENV] = 'rabc123';
    try {
      const made = uniqueName('dashtest');
      expect(madeAt(made, Date.now() + 1000)).toBeGreaterThan(Date.now() - 60_000);
      expect(staleMadeNames([made], Date.now() + 3 * HOUR, 2 * HOUR)).toEqual([made]);
    } finally {
      if (saved === undefined) delete process.env[RUN_TAG_ENV];
      else process.env[RUN_TAG_ENV] = saved;
    }
  });

  it("never takes the stack's own names, names made without a run tag, or look-alikes whose time part is not a time", () => {
    const names = [
      '__consumer_offsets',
      'default',
      'telemetry.events.v1',
      'ingest.personal.cn.p30d',
      `bench_agg_events_${at(now - 30 * HOUR)}_g072f2ff43`, // no run tag: made some other way, left alone
      'app_reports_zzzzzzzz_x', // the shape, but "zzzzzzzz" is after now
      'app_reports_abcdefgh_x', // the shape, but before 2024
    ];
    expect(staleMadeNames(names, now, 2 * HOUR)).toEqual([]);
  });
});
