import { describe, expect, it } from 'vitest';
import { carriesRunTag, leftoverMessage, leftoversOfRun, newRunTag, ownedNamesIn } from './leftovers.ts';

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
