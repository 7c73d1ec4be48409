// What a test run left behind on the shared Kafka and ClickHouse, as pure functions (no I/O), so the
// rule is unit-tested on its own (testing/leftovers.test.ts) and the I/O around it stays thin
// (testing/cleanup.ts).
//
// The rule: every name a test makes comes from uniqueName() (testing/stack.ts), and during an
// integration run that name carries the run's tag (`_<tag>_`, set once by testing/vitest-global-setup.ts
// in TESTING_RUN_TAG). A topic or database that still carries this run's tag when the run ends was
// created by one of its tests and not removed: that fails the run. Names without the tag that appeared
// during the run may belong to someone else on the same machine (a demo, a bench, another developer's
// test run), so they are reported, never counted as this run's fault.
import { randomBytes } from 'node:crypto';

/** The environment variable through which the global setup hands the run's tag to every test worker. */
export const RUN_TAG_ENV = 'TESTING_RUN_TAG';

/** Names the stack and the servers make themselves; never a test's leftover. */
export const STACK_OWN_NAMES: ReadonlySet<string> = new Set([
  // Kafka's internal topics (the plain stack runs no transactions, but a broker may still create it).
  '__consumer_offsets',
  '__transaction_state',
  // ClickHouse's own databases (18.16 has the first two; newer servers and chdb also the last two).
  'default',
  'system',
  'information_schema',
  'INFORMATION_SCHEMA',
]);

/** A fresh run tag: `r` and six base-36 characters, valid inside a topic name and a ClickHouse identifier. */
export function newRunTag(): string {
  return `r${(randomBytes(4).readUInt32BE(0) % 36 ** 6).toString(36).padStart(6, '0')}`;
}

/**
 * When uniqueName() made `name` inside a tracked run (a test run, or a bench after
 * trackNamesOfThisProcess): its `_<run tag>_<Date.now() in base 36>_` part, in ms since the epoch.
 * Undefined for any other name, and for a time part that cannot be one (before 2024 or ahead of `now`).
 */
export function madeAt(name: string, now: number): number | undefined {
  for (const m of name.matchAll(/_r[0-9a-z]{6}_([0-9a-z]{8})_/g)) {
    const t = parseInt(m[1]!, 36);
    if (t >= Date.UTC(2024, 0, 1) && t <= now) return t;
  }
  return undefined;
}

/**
 * The names a tracked run made more than `maxAgeMs` before `now`: what a killed test or bench run left
 * (no run lasts that long). Names of the stack itself and names made any other way are never in it.
 */
export function staleMadeNames(names: readonly string[], now: number, maxAgeMs: number): string[] {
  return names.filter((n) => {
    if (STACK_OWN_NAMES.has(n)) return false;
    const t = madeAt(n, now);
    return t !== undefined && now - t > maxAgeMs;
  });
}

/** True when `name` was made by uniqueName() during the run tagged `runTag`. */
export function carriesRunTag(name: string, runTag: string): boolean {
  return name.includes(`_${runTag}_`);
}

/**
 * The names in `present` that are `owned` or start with an owned name: a test hands a uniqueName()
 * as a topic prefix to ingest, which appends the residency zone (`<prefix>cn`, `<prefix>row`, ...).
 */
export function ownedNamesIn(present: readonly string[], owned: ReadonlySet<string>): string[] {
  if (owned.size === 0) return [];
  return present.filter((name) => {
    if (owned.has(name)) return true;
    for (const o of owned) if (name.startsWith(o)) return true;
    return false;
  });
}

export interface Listing {
  topics: readonly string[];
  databases: readonly string[];
}

export interface LeftoverReport {
  /** Names carrying this run's tag: left by this run's tests. */
  ofThisRun: { topics: string[]; databases: string[] };
  /** Names that appeared during the run without its tag (another user of the machine, or a name not made by uniqueName). */
  othersNew: { topics: string[]; databases: string[] };
}

/** Compares the listing at the end of a run with the one at its start. */
export function leftoversOfRun(atEnd: Listing, atStart: Listing, runTag: string): LeftoverReport {
  const split = (end: readonly string[], start: readonly string[]) => {
    const before = new Set(start);
    const mine: string[] = [];
    const others: string[] = [];
    for (const name of [...end].sort()) {
      if (STACK_OWN_NAMES.has(name)) continue;
      if (carriesRunTag(name, runTag)) mine.push(name);
      else if (!before.has(name)) others.push(name);
    }
    return { mine, others };
  };
  const t = split(atEnd.topics, atStart.topics);
  const d = split(atEnd.databases, atStart.databases);
  return { ofThisRun: { topics: t.mine, databases: d.mine }, othersNew: { topics: t.others, databases: d.others } };
}

/** The failure message for leftovers of this run, or undefined when there are none. */
export function leftoverMessage(r: LeftoverReport, where: { kafka: string; clickhouse: string }): string | undefined {
  const parts: string[] = [];
  if (r.ofThisRun.topics.length > 0) parts.push(`${r.ofThisRun.topics.length} Kafka topic(s) on ${where.kafka}: ${r.ofThisRun.topics.join(', ')}`);
  if (r.ofThisRun.databases.length > 0)
    parts.push(`${r.ofThisRun.databases.length} ClickHouse database(s) on ${where.clickhouse}: ${r.ofThisRun.databases.join(', ')}`);
  if (parts.length === 0) return undefined;
  return (
    `integration tests left behind ${parts.join('; ')}. ` +
    'Each suite must delete what it creates: names from uniqueName() are deleted after each file by testing/vitest-file-cleanup.ts, ' +
    'so a leftover means that cleanup could not run or the name was made another way (testing/README.md, "Cleaning up").'
  );
}
