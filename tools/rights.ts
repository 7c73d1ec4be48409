/**
 * `npm run rights -- <command>`: people's rights over their data (policy section 5), for operators.
 *
 *   access     --device-id ID | --imei X | --oaid X | --gaid X | --imsi X  [--zone Z] [--out FILE]
 *              every personal record and reject of the device, opened, as JSON lines (5.2 access and
 *              portability), each as written: also by an older personal schema (schemas/doc.ts history);
 *              a summary (topics, counts, first and last day) on stderr
 *   erase      <identifier> [--zone Z]     destroys the device's data keys: every copy unreadable (5.2)
 *   withdraw   <identifier> [--zone Z]     consent withdrawn (5.3): later batches dropped by every ingest
 *   restrict   <identifier> [--zone Z]     processing restricted (5.2): likewise
 *   consent / unrestrict <identifier>      lift those
 *   log        [--zone Z]                  the audit trail of every request (no identifier in clear)
 *   rotate-kek --zone Z                    new key-encryption key; every live data key re-wrapped
 *   retire-kek --zone Z --version N        destroys an old KEK (after the key store's backup window)
 *
 * Settings: the ingest ones (PIPELINE_*, INGEST_ZONE_BROKERS_*, INGEST_KEYSTORE_*, INGEST_RIGHTS_KEY_DIR);
 * rights/README.md. Exit 0 done (also "nothing held"), 2 bad arguments or settings, 1 a store or
 * Kafka failed (one line).
 */
import { createWriteStream } from 'node:fs';
import { fileURLToPath } from 'node:url';
import kafkajs from 'kafkajs';
import { loadIngestConfig, sealingProblems, sealingSpec, zoneBrokers, type IngestConfig } from '../ingest/config.ts';
import { openRecords } from '../rights/open.ts';
import { readToEnd } from '../rights/read.ts';
import { ZoneStores } from '../rights/sealer.ts';
import { writeSuppression, type SuppressionKind } from '../rights/suppression.ts';
import { retireKek, rotateKek, subjectOf } from '../rights/zone-keys.ts';
import { ConfigError, kafkaClientOptions, personalTopic, rejectsTopic, rightsTopic } from '../runtime/index.ts';
import { historicalWriters } from '../schemas/doc.ts';
import {
  compileSplit,
  DAY_MS,
  fingerprintOf,
  isoOfDay,
  personalRetentionClasses,
  WriterRegistry,
  ZONES,
  type CompiledSplit,
  type Zone,
} from '../schemas/index.ts';
import type { AvroType } from '../schemas/wire.ts';

export const COMMANDS = ['access', 'erase', 'withdraw', 'restrict', 'consent', 'unrestrict', 'log', 'rotate-kek', 'retire-kek'] as const;
export type Command = (typeof COMMANDS)[number];

/** The identifiers a request may name, as ingest registers them (schemas/personal.ts `identifiers`). */
export const IDENTIFIER_FLAGS = { '--device-id': 'device_id', '--imei': 'imei', '--oaid': 'oaid', '--gaid': 'gaid', '--imsi': 'imsi' } as const;
const IDENTIFIER_FORMAT: Record<string, RegExp> = {
  device_id: /^[\x21-\x7e]{1,128}$/,
  imei: /^[0-9]{14,16}$/,
  imsi: /^[0-9]{6,15}$/,
  oaid: /^[\x21-\x7e]{1,128}$/,
  gaid: /^[0-9A-Fa-f-]{8,64}$/,
};

export class RightsUsageError extends Error {}

export interface RightsArgs {
  command: Command;
  /** `<field>:<value>` */
  identifier?: string;
  zones: Zone[];
  out?: string;
  version?: number;
}

export function parseRightsArgs(argv: string[]): RightsArgs {
  const [command, ...rest] = argv;
  if (!command || !(COMMANDS as readonly string[]).includes(command)) throw new RightsUsageError(`usage: npm run rights -- <${COMMANDS.join('|')}> [...]`);
  const a: RightsArgs = { command: command as Command, zones: [...ZONES] };
  for (let i = 0; i < rest.length; i++) {
    const flag = rest[i]!;
    const value = rest[i + 1];
    if (value === undefined) throw new RightsUsageError(`${flag} needs a value`);
    i++;
    if (flag in IDENTIFIER_FLAGS) {
      const field = IDENTIFIER_FLAGS[flag as keyof typeof IDENTIFIER_FLAGS];
      if (a.identifier) throw new RightsUsageError('name the device by one identifier');
      if (!IDENTIFIER_FORMAT[field]!.test(value)) throw new RightsUsageError(`${flag} ${JSON.stringify(value)}: not a well-formed ${field}`);
      a.identifier = `${field}:${value}`;
    } else if (flag === '--zone') {
      if (!(ZONES as readonly string[]).includes(value)) throw new RightsUsageError(`--zone ${value}: not a residency zone (${ZONES.join(', ')})`);
      a.zones = [value as Zone];
    } else if (flag === '--out') a.out = value;
    else if (flag === '--version') {
      if (!/^[1-9][0-9]*$/.test(value)) throw new RightsUsageError(`--version ${value}: a KEK version number`);
      a.version = Number(value);
    } else throw new RightsUsageError(`unknown option ${flag}`);
  }
  const needsDevice = !['log', 'rotate-kek', 'retire-kek'].includes(a.command);
  if (needsDevice && !a.identifier) throw new RightsUsageError(`${a.command} needs the device: ${Object.keys(IDENTIFIER_FLAGS).join(' | ')} <value>`);
  if ((a.command === 'rotate-kek' || a.command === 'retire-kek') && a.zones.length !== 1) throw new RightsUsageError(`${a.command} needs --zone`);
  if (a.command === 'retire-kek' && a.version === undefined) throw new RightsUsageError('retire-kek needs --version N');
  return a;
}

/** The older writer schemas of a personal class to read besides the current one (default: the repository's history, schemas/doc.ts). */
export type PersonalHistory = (cls: string, current: AvroType) => AvroType[];

/** A record as its writer wrote it, and that writer's fingerprint (hex, as the record's header names it). */
export interface AsWritten {
  record: unknown;
  schema: string;
  /** Written with the schema the current map generates (false: an older version from the history). */
  current: boolean;
}

/**
 * The readers of an access answer, by kind (`p30d`, `p7d`, `reject`): every writer schema of the kind,
 * the current one and, for the personal classes, each older version of the history. A record is decoded
 * with its own writer's schema, not resolved into the current one, so a field an older version had and
 * the current map no longer keeps (the p30d record's crash traces and app statuses, before the map
 * stopped storing them) is in the answer for as long as the record is held (policy 5.2: everything held
 * about the person). A writer the history lacks is `SCHEMA_UNKNOWN_FINGERPRINT`.
 */
export function accessReaders(split: CompiledSplit, history: PersonalHistory = historicalWriters): Map<string, (value: Buffer) => AsWritten> {
  const readerOf = (current: AvroType, older: AvroType[]) => {
    const registry = new WriterRegistry();
    const schemas = new Map<AvroType, string>();
    for (const t of [...older, current]) {
      registry.register(t);
      schemas.set(t, fingerprintOf(t).toString('hex'));
    }
    return (value: Buffer): AsWritten => {
      const { writer, bodyOffset } = registry.resolve(value);
      return { record: writer.fromBuffer(value.subarray(bodyOffset)), schema: schemas.get(writer)!, current: writer === current };
    };
  };
  return new Map([
    ...split.personalClasses.map((c) => [c.name, readerOf(c.type, history(c.name, c.type))] as const),
    ['reject', readerOf(split.rejectType, [])],
  ]);
}

/** Everything a command needs: settings, the key stores, Kafka per zone. */
export class Rights {
  readonly stores: ZoneStores;
  private readonly kafkas = new Map<string, kafkajs.Kafka>();

  constructor(
    readonly cfg: IngestConfig,
    private readonly err: (line: string) => void = (l) => process.stderr.write(`${l}\n`),
  ) {
    const spec = sealingSpec(cfg);
    if (!spec) throw new ConfigError(['rights: INGEST_UNSAFE_UNSEALED is on: records are not sealed, there are no keys to act on']);
    this.stores = new ZoneStores(spec);
  }

  kafkaOf(zone: Zone): kafkajs.Kafka {
    const brokers = zoneBrokers(this.cfg)[zone];
    const key = brokers.join(',');
    let k = this.kafkas.get(key);
    if (!k) {
      k = new kafkajs.Kafka({ clientId: 'telemetry-rights', brokers, ...kafkaClientOptions(this.cfg), logLevel: kafkajs.logLevel.NOTHING });
      this.kafkas.set(key, k);
    }
    return k;
  }

  /** The device's subjects in a zone: those its identifier was registered with by ingest. */
  subjects(zone: Zone, identifier: string): Promise<Buffer[]> {
    return this.stores.storeOf(zone).subjectsOf(identifier);
  }

  /** `history`: the older personal schemas to read (the tests' negative control passes none). */
  async access(a: RightsArgs, write: (line: string) => void, history?: PersonalHistory): Promise<Record<string, unknown>> {
    const readers = accessReaders(compileSplit(), history);
    const summary: Record<string, unknown> = {};
    for (const zone of a.zones) {
      const subjects = await this.subjects(zone, a.identifier!);
      if (subjects.length === 0) continue;
      const wanted = new Set(subjects.map((s) => s.toString('hex')));
      const topics = [
        ...personalRetentionClasses().map((c) => ({ topic: personalTopic(this.cfg.PIPELINE_TOPIC_PERSONAL_PREFIX, zone, c.name), kind: c.name })),
        { topic: rejectsTopic(this.cfg.PIPELINE_TOPIC_REJECTS_PREFIX, zone), kind: 'reject' },
      ];
      const counts: Record<string, number> = {};
      let unreadable = 0;
      let older = 0;
      let first = Infinity;
      let last = -Infinity;
      for (const t of topics) {
        const mine = (await readToEnd(this.kafkaOf(zone), t.topic, { groupPrefix: 'telemetry-rights-access-' })).filter(
          (m) => m.key && wanted.has(m.key.toString('hex')),
        );
        for (const r of await openRecords(this.stores, zone, mine)) {
          if (!r.opened) {
            unreadable++;
            continue;
          }
          const { record, schema, current } = readers.get(t.kind)!(r.opened);
          const receivedAt = (record as { received_at?: unknown }).received_at;
          if (typeof receivedAt === 'number') {
            first = Math.min(first, receivedAt);
            last = Math.max(last, receivedAt);
          }
          if (!current) older++;
          const at = Number(r.timestamp);
          write(JSON.stringify({ zone, topic: t.topic, partition: r.partition, offset: r.offset, kafka_timestamp: at, kind: t.kind, schema, record }));
          counts[t.topic] = (counts[t.topic] ?? 0) + 1;
        }
      }
      summary[zone] = {
        topics: counts,
        records: Object.values(counts).reduce((s, n) => s + n, 0),
        unreadable,
        older_schema: older,
        first_day: Number.isFinite(first) ? isoOfDay(Math.floor(first / DAY_MS)) : null,
        last_day: Number.isFinite(last) ? isoOfDay(Math.floor(last / DAY_MS)) : null,
      };
    }
    return summary;
  }

  async erase(a: RightsArgs): Promise<Record<string, number>> {
    const out: Record<string, number> = {};
    for (const zone of a.zones) {
      const subjects = await this.subjects(zone, a.identifier!);
      let n = 0;
      for (const s of subjects) if (await this.stores.storeOf(zone).erase(s)) n++;
      if (subjects.length) out[zone] = n;
      await this.stores.storeOf(zone).audit({ action: 'erase', zone, subjectRef: ref(subjects), outcome: n ? 'erased' : 'nothing held', counts: { keys: n } });
    }
    return out;
  }

  async suppress(a: RightsArgs, kind: SuppressionKind, on: boolean): Promise<string[]> {
    const done: string[] = [];
    for (const zone of a.zones) {
      const keys = this.stores.keysOf(zone);
      // The subject ingest gives the device (its identity is its device id when it sends one), and any registered.
      const subjects = new Map((await this.subjects(zone, a.identifier!)).map((s) => [s.toString('hex'), s]));
      if (a.identifier!.startsWith('device_id:') || a.identifier!.startsWith('imei:') || a.identifier!.startsWith('imsi:')) {
        const s = subjectOf(keys, a.identifier!);
        subjects.set(s.toString('hex'), s);
      }
      const producer = this.kafkaOf(zone).producer({ idempotent: true, maxInFlightRequests: 1 });
      await producer.connect();
      try {
        for (const s of subjects.values()) await writeSuppression(producer, rightsTopic(this.cfg.PIPELINE_TOPIC_RIGHTS_PREFIX, zone), kind, s, on);
      } finally {
        await producer.disconnect();
      }
      await this.stores
        .storeOf(zone)
        .audit({ action: on ? kind : `lift ${kind}`, zone, subjectRef: ref([...subjects.values()]), outcome: 'written', counts: { subjects: subjects.size } });
      done.push(zone);
    }
    return done;
  }

  async close(): Promise<void> {
    await this.stores.close();
  }
}

/** A short prefix of each subject: tells requests apart in the log without naming anyone. */
function ref(subjects: Buffer[]): string | null {
  return subjects.length ? subjects.map((s) => s.toString('hex').slice(0, 8)).join(',') : null;
}

export async function runRights(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let a: RightsArgs;
  let cfg: IngestConfig;
  try {
    a = parseRightsArgs(argv);
    cfg = loadIngestConfig(env);
    const problems = sealingProblems(cfg);
    if (problems.length) throw new ConfigError(problems);
  } catch (e) {
    if (e instanceof RightsUsageError || e instanceof ConfigError) {
      process.stderr.write(`rights: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
  const r = new Rights(cfg);
  try {
    switch (a.command) {
      case 'access': {
        const out = a.out ? createWriteStream(a.out, { mode: 0o600 }) : undefined;
        const summary = await r.access(a, (line) => (out ? out.write(`${line}\n`) : process.stdout.write(`${line}\n`)));
        if (out) await new Promise<void>((res) => out.end(res));
        for (const zone of a.zones) {
          await r.stores.storeOf(zone).audit({
            action: 'access',
            zone,
            subjectRef: null,
            outcome: summary[zone] ? 'answered' : 'nothing held',
            counts: { records: (summary[zone] as { records?: number } | undefined)?.records ?? 0 },
          });
        }
        process.stderr.write(
          `${Object.keys(summary).length ? JSON.stringify(summary) : `nothing held for ${a.identifier!.split(':')[0]} in ${a.zones.join(', ')}`}\n`,
        );
        return 0;
      }
      case 'erase': {
        const out = await r.erase(a);
        process.stdout.write(Object.keys(out).length ? `erased: ${JSON.stringify(out)}\n` : `nothing held in ${a.zones.join(', ')}\n`);
        return 0;
      }
      case 'withdraw':
      case 'restrict':
      case 'consent':
      case 'unrestrict': {
        const kind: SuppressionKind = a.command === 'withdraw' || a.command === 'consent' ? 'withdrawn' : 'restricted';
        const on = a.command === 'withdraw' || a.command === 'restrict';
        const zones = await r.suppress(a, kind, on);
        process.stdout.write(`${on ? kind : `${kind} lifted`} in ${zones.join(', ')}; every ingest copy applies it within seconds\n`);
        return 0;
      }
      case 'log': {
        for (const zone of a.zones) for (const e of await r.stores.storeOf(zone).auditLog()) process.stdout.write(`${JSON.stringify(e)}\n`);
        return 0;
      }
      case 'rotate-kek': {
        const zone = a.zones[0]!;
        const v = rotateKek(cfg.INGEST_RIGHTS_KEY_DIR, zone);
        const fresh = new ZoneStores(sealingSpec(cfg)!);
        try {
          const n = await fresh.storeOf(zone).rewrap();
          await fresh.storeOf(zone).audit({ action: 'rotate-kek', zone, subjectRef: null, outcome: `kek-v${v}`, counts: { rewrapped: n } });
          process.stdout.write(`zone ${zone}: kek-v${v} current, ${n} data key(s) re-wrapped; retire the older versions after the key store's backup window\n`);
        } finally {
          await fresh.close();
        }
        return 0;
      }
      case 'retire-kek': {
        const zone = a.zones[0]!;
        const inUse = await r.stores.storeOf(zone).kekVersionsInUse();
        if (inUse.includes(a.version!)) {
          process.stderr.write(`rights: kek-v${a.version} still wraps data keys in zone ${zone}: run rotate-kek first\n`);
          return 1;
        }
        retireKek(cfg.INGEST_RIGHTS_KEY_DIR, zone, a.version!);
        await r.stores.storeOf(zone).audit({ action: 'retire-kek', zone, subjectRef: null, outcome: `kek-v${a.version} destroyed`, counts: {} });
        process.stdout.write(`zone ${zone}: kek-v${a.version} destroyed\n`);
        return 0;
      }
    }
  } catch (e) {
    process.stderr.write(`rights: ${a.command} failed: ${(e as Error).message}\n`);
    return 1;
  } finally {
    await r.close().catch(() => {});
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  process.exitCode = await runRights(process.argv.slice(2));
}
