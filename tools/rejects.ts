/**
 * `npm run rejects -- replay --zone Z [--reason R] [--since YYYY-MM-DD] [--dry-run] [--ingest URL]`:
 * re-validates a zone's rejected events against the current schemas and sends those that now pass
 * through the normal path (POST /v1/batches of a running ingest), e.g. after a late day-secret rotation
 * (TOKEN_TOO_LATE) or a schema that now accepts a value.
 *
 * A reject holds the raw event without its never-stored fields and the batch's context (sent_at,
 * device, consent: schemas/avro/reject.avsc), sealed under the device's key (rights/README.md). The
 * replayed event's id is derived from the reject's own place (topic, partition, offset), so replaying
 * the same reject twice gives the same event key and is counted once downstream. Prints counts per
 * reason (`passes`/`still failing <reason>`/`sent`/`accepted`); `--dry-run` sends nothing.
 * Exit 0 done, 2 bad arguments or settings, 1 a store, Kafka or ingest failed.
 */
import { createHash, randomUUID } from 'node:crypto';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type avro from 'avsc';
import { loadIngestConfig, sealingProblems } from '../ingest/config.ts';
import { openRecords } from '../rights/open.ts';
import { readToEnd } from '../rights/read.ts';
import { ConfigError, rejectsTopic } from '../runtime/index.ts';
import { compileSplit, DailyTokenizer, dayOfIso, DAY_MS, FileKeySource, RecordCodec, ZONES, type Zone } from '../schemas/index.ts';
import { Rights } from './rights.ts';

export interface ReplayArgs {
  zone: Zone;
  reason?: string;
  sinceMs?: number;
  dryRun: boolean;
  ingest: string;
}

export class ReplayUsageError extends Error {}

export function parseReplayArgs(argv: string[]): ReplayArgs {
  const [command, ...rest] = argv;
  if (command !== 'replay')
    throw new ReplayUsageError('usage: npm run rejects -- replay --zone Z [--reason R] [--since YYYY-MM-DD] [--dry-run] [--ingest URL]');
  const a: Partial<ReplayArgs> = { dryRun: false, ingest: 'http://127.0.0.1:18080' };
  for (let i = 0; i < rest.length; i++) {
    const flag = rest[i]!;
    if (flag === '--dry-run') {
      a.dryRun = true;
      continue;
    }
    const value = rest[++i];
    if (value === undefined) throw new ReplayUsageError(`${flag} needs a value`);
    if (flag === '--zone') {
      if (!(ZONES as readonly string[]).includes(value)) throw new ReplayUsageError(`--zone ${value}: not a residency zone (${ZONES.join(', ')})`);
      a.zone = value as Zone;
    } else if (flag === '--reason') {
      if (!/^[A-Z][A-Z0-9_]{2,63}$/.test(value)) throw new ReplayUsageError(`--reason ${value}: a reject reason code, e.g. TOKEN_TOO_LATE`);
      a.reason = value;
    } else if (flag === '--since') {
      if (!/^\d{4}-\d{2}-\d{2}$/.test(value)) throw new ReplayUsageError(`--since ${value}: a UTC day, YYYY-MM-DD`);
      a.sinceMs = dayOfIso(value) * DAY_MS;
    } else if (flag === '--ingest') a.ingest = value.replace(/\/$/, '');
    else throw new ReplayUsageError(`unknown option ${flag}`);
  }
  if (!a.zone) throw new ReplayUsageError('replay needs --zone');
  return a as ReplayArgs;
}

interface RejectRecord {
  received_at: number;
  reason: string;
  raw_event: string;
  batch_context: string;
}

/** The replayed event's id: a UUID derived from the reject's place, stable across replays. */
export function replayEventId(topic: string, partition: number, offset: string): string {
  const h = createHash('sha256').update(`replay|${topic}|${partition}|${offset}`).digest('hex');
  return `${h.slice(0, 8)}-${h.slice(8, 12)}-4${h.slice(13, 16)}-8${h.slice(17, 20)}-${h.slice(20, 32)}`;
}

function parseEvent(eventType: avro.Type, text: string): Record<string, unknown> | undefined {
  try {
    return JSON.parse(JSON.stringify(eventType.fromString(text))) as Record<string, unknown>;
  } catch {
    try {
      return JSON.parse(text) as Record<string, unknown>;
    } catch {
      return undefined;
    }
  }
}

export async function replay(a: ReplayArgs, env: NodeJS.ProcessEnv, out: (line: string) => void): Promise<Record<string, number>> {
  const cfg = loadIngestConfig(env);
  const problems = sealingProblems(cfg);
  if (problems.length) throw new ConfigError(problems);
  const split = compileSplit();
  const eventType = (split.batchType as avro.types.RecordType).field('events').type as avro.types.ArrayType;
  const codec = new RecordCodec<RejectRecord>(split.rejectType);
  // Local re-validation only (the schema checks); day secrets are ingest's, so a throwaway directory here.
  const tokenizer = new DailyTokenizer(new FileKeySource(mkdtempSync(join(tmpdir(), 'replay-check-'))));
  const r = new Rights(cfg);
  const counts: Record<string, number> = {};
  const count = (k: string) => (counts[k] = (counts[k] ?? 0) + 1);
  try {
    const topic = rejectsTopic(cfg.PIPELINE_TOPIC_REJECTS_PREFIX, a.zone);
    const records = await openRecords(r.stores, a.zone, await readToEnd(r.kafkaOf(a.zone), topic, { groupPrefix: 'telemetry-rejects-replay-' }));
    for (const m of records) {
      if (!m.opened) {
        count('unreadable (erased device)');
        continue;
      }
      const rej = codec.decode(m.opened);
      if (a.reason && rej.reason !== a.reason) continue;
      if (a.sinceMs !== undefined && rej.received_at < a.sinceMs) continue;
      const ev = parseEvent(eventType.itemsType, rej.raw_event);
      if (!ev || !rej.batch_context) {
        count('not replayable (no batch context)');
        continue;
      }
      const head = JSON.parse(rej.batch_context) as Record<string, unknown>;
      const batch = {
        batch_id: randomUUID(),
        ...head,
        events: [{ ...ev, event_id: replayEventId(topic, m.partition, m.offset), session_id: 'replayed' }],
      };
      const check = split.processBatch(batch, { receivedAt: Date.now(), tokenizer });
      const schemaFailure = check.rejects.find((x) => !x.reason.startsWith('TOKEN_'));
      if (schemaFailure) {
        count(`still failing ${schemaFailure.reason}`);
        continue;
      }
      count('passes');
      if (a.dryRun) continue;
      const res = await fetch(`${a.ingest}/v1/batches`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(batch) });
      const body = (await res.json()) as { accepted?: number; rejected?: Array<{ reason: string }>; error?: { code: string; message: string } };
      if (res.status !== 200) throw new Error(`ingest answered ${res.status} ${body.error?.code ?? ''}: ${body.error?.message ?? ''}`);
      count('sent');
      if (body.accepted === 1) count('accepted');
      for (const x of body.rejected ?? []) count(`rejected again ${x.reason}`);
    }
  } finally {
    await r.close();
  }
  out(JSON.stringify({ zone: a.zone, dry_run: a.dryRun, ...counts }));
  return counts;
}

export async function runRejects(argv: string[], env: NodeJS.ProcessEnv = process.env): Promise<number> {
  let a: ReplayArgs;
  try {
    a = parseReplayArgs(argv);
  } catch (e) {
    if (e instanceof ReplayUsageError) {
      process.stderr.write(`rejects: ${e.message}\n`);
      return 2;
    }
    throw e;
  }
  try {
    await replay(a, env, (l) => process.stdout.write(`${l}\n`));
    return 0;
  } catch (e) {
    if (e instanceof ConfigError) {
      process.stderr.write(`rejects: ${e.message}\n`);
      return 2;
    }
    process.stderr.write(`rejects: replay failed: ${(e as Error).message}\n`);
    return 1;
  }
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) {
  process.exitCode = await runRejects(process.argv.slice(2));
}
