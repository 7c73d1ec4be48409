/**
 * The suppression list (policy 5.2 restriction and objection, 5.3 withdrawal of consent): devices whose
 * later batches must be dropped, not stored. One compacted topic per residency zone on the zone's own
 * cluster (`PIPELINE_TOPIC_RIGHTS_PREFIX` + zone), keyed by `<kind>|<subject>`: the kind (`withdrawn`,
 * `restricted`) and the device's subject, a keyed hash (zone-keys.ts), never an identifier. A value
 * `on` sets an entry, a tombstone (null value) lifts it; compaction keeps the latest per key.
 *
 * Every ingest copy follows every zone's topic from its beginning (`followSuppressions`): it does not
 * start serving before it has read to the end (a copy started later has the whole list), then applies
 * new entries as they arrive (seconds; the promise is within a minute).
 */
import type { Kafka, Producer } from 'kafkajs';
import { follow } from './read.ts';
import type { Logger } from '../runtime/index.ts';
import type { Zone } from '../schemas/index.ts';

export const SUPPRESSION_KINDS = ['withdrawn', 'restricted'] as const;
/** Consumer groups of the ingest copies following the list (one each; the ACLs grant the prefix). */
export const INGEST_RIGHTS_GROUP_PREFIX = 'telemetry-ingest-rights-';
export type SuppressionKind = (typeof SUPPRESSION_KINDS)[number];

export function suppressionKey(kind: SuppressionKind, subject: Buffer): Buffer {
  return Buffer.concat([Buffer.from(`${kind}|`), subject]);
}

function parseKey(key: Buffer): { kind: SuppressionKind; subjectHex: string } | undefined {
  const bar = key.indexOf(0x7c);
  if (bar < 0) return undefined;
  const kind = key.subarray(0, bar).toString() as SuppressionKind;
  if (!SUPPRESSION_KINDS.includes(kind)) return undefined;
  return { kind, subjectHex: key.subarray(bar + 1).toString('hex') };
}

/** What every ingest copy holds: zone/subject -> the kinds in force. */
export class SuppressionList {
  private readonly entries = new Map<string, Set<SuppressionKind>>();

  apply(zone: Zone, key: Buffer | null, value: Buffer | null): void {
    if (!key) return;
    const k = parseKey(key);
    if (!k) return;
    const id = `${zone}/${k.subjectHex}`;
    const kinds = this.entries.get(id) ?? new Set<SuppressionKind>();
    if (value === null) kinds.delete(k.kind);
    else kinds.add(k.kind);
    if (kinds.size) this.entries.set(id, kinds);
    else this.entries.delete(id);
  }

  /** The kind a device's batches are dropped for (withdrawn before restricted), or undefined. */
  kindOf(zone: Zone, subjectHex: string): SuppressionKind | undefined {
    const kinds = this.entries.get(`${zone}/${subjectHex}`);
    if (!kinds) return undefined;
    return kinds.has('withdrawn') ? 'withdrawn' : kinds.has('restricted') ? 'restricted' : undefined;
  }

  get size(): number {
    return this.entries.size;
  }
}

export interface Follower {
  stop(): Promise<void>;
}

/**
 * Follows the rights topics of `zones` on one cluster into `list`; resolves once every partition was
 * read to the end offset it had at the start. Its consumer group is its own (`groupPrefix` + a random
 * suffix): every copy reads everything.
 */
export async function followSuppressions(opts: {
  kafka: Kafka;
  topics: Array<{ zone: Zone; topic: string }>;
  list: SuppressionList;
  groupPrefix: string;
  log: Logger;
  /** @default 30000 */
  catchUpTimeoutMs?: number;
}): Promise<Follower> {
  const zoneOf = new Map(opts.topics.map((t) => [t.topic, t.zone]));
  const f = await follow(
    opts.kafka,
    opts.topics.map((t) => t.topic),
    {
      groupPrefix: opts.groupPrefix,
      timeoutMs: opts.catchUpTimeoutMs ?? 30_000,
      onMessage: (m) => opts.list.apply(zoneOf.get(m.topic)!, m.key, m.value),
    },
  );
  await f.caughtUp.catch((e: unknown) => {
    throw new Error(`suppression list: ${(e as Error).message}`);
  });
  opts.log.info('suppression list read', { topics: opts.topics.map((t) => t.topic).join(','), entries: opts.list.size });
  return { stop: () => f.consumer.disconnect() };
}

/** Sets (`on`) or lifts a suppression entry; resolves when the zone's cluster acknowledged it. */
export async function writeSuppression(producer: Producer, topic: string, kind: SuppressionKind, subject: Buffer, on: boolean): Promise<void> {
  await producer.send({
    topic,
    acks: -1,
    messages: [{ key: suppressionKey(kind, subject), value: on ? Buffer.from(JSON.stringify({ kind, at: new Date().toISOString() })) : null }],
  });
}
