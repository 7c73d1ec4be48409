/**
 * People's rights end to end (policy section 5; rights/README.md), against the real local Kafka and the
 * real key store (the stack's PostgreSQL): ingest seals personal records per device, `npm run rights`
 * answers access, erases by destroying the device's key, and suppresses a device in every running
 * ingest copy. Each promise beside a negative control where the protection is switched off.
 */
import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadIngestConfig } from '../ingest/config.ts';
import { startIngest, type IngestService } from '../ingest/http.ts';
import { decodeEventFacts, ZONES } from '../schemas/index.ts';
import { batch, containerOf, type TestBatch } from '../testing/batches.ts';
import { quietLogger } from '../testing/logger.ts';
import { sealingEnv, sealingSpecOf } from '../testing/sealing.ts';
import { runScript } from '../testing/services.ts';
import { postgresConnection, readAll, stackInfo, uniqueName } from '../testing/stack.ts';
import { openRecords } from './open.ts';
import { ZoneStores } from './sealer.ts';
import { subjectOf } from './zone-keys.ts';
import { QUICK_MIX } from '../testing/mix.ts';

const REPO = join(import.meta.dirname, '..');
const sealing = sealingEnv();
const prefix = uniqueName('rights');
const env: Record<string, string> = {
  ...sealing.env,
  PIPELINE_KAFKA_BROKERS: stackInfo().kafkaBrokers.join(','),
  PIPELINE_TOPIC_EVENTS: `${prefix}_ev`,
  PIPELINE_TOPIC_PERSONAL_PREFIX: `${prefix}_p.`,
  PIPELINE_TOPIC_REJECTS_PREFIX: `${prefix}_r.`,
  PIPELINE_TOPIC_RIGHTS_PREFIX: `${prefix}_rt.`,
  INGEST_TOPIC_PARTITIONS: '2',
  INGEST_ZONES_SHARE_MAIN_CLUSTER: 'true',
  INGEST_TOKEN_KEY_DIR: mkdtempSync(join(tmpdir(), 'rights-token-keys-')),
  INGEST_KEY_CACHE_TTL_MS: '1000',
  // Plain HTTP on loopback: a test setup (ingest/README.md, "TLS"; ingest/tls.int.test.ts covers HTTPS).
  INGEST_UNSAFE_PLAINTEXT_HTTP: 'true',
  ...QUICK_MIX, // testing/mix.ts: a lone batch need not wait for a crowd here
};

/** `npm run rights -- ...` as an operator runs it (awaited: some requests reach the ingest running in this process). */
async function rights(args: string[], extra: Record<string, string> = {}) {
  const r = await runScript('tools/rights.ts', args, { ...env, ...extra }, 120_000);
  return { code: r.code, stdout: r.stdout, stderr: r.stderrLines.join('\n') };
}

async function post(url: string, b: TestBatch) {
  const res = await fetch(`${url}/v1/batches`, { method: 'POST', headers: { 'content-type': 'avro/binary' }, body: containerOf(b) });
  return { status: res.status, json: (await res.json()) as { accepted?: number; dropped_consent?: Record<string, number>; error?: { code: string } } };
}

/** Every record of the zone's personal and rejects topics, as kcat dumps them (a backup of the topics' bytes). */
function kcatDump(zone: string): Array<{ key: Buffer; value: Buffer }> {
  const out: Array<{ key: Buffer; value: Buffer }> = [];
  for (const topic of [`${prefix}_p.${zone}.p30d`, `${prefix}_p.${zone}.p7d`, `${prefix}_r.${zone}`]) {
    const raw = execFileSync('kcat', ['-b', stackInfo().kafkaBrokers[0]!, '-C', '-t', topic, '-e', '-q', '-f', '%K %S\n%k%s'], { timeout: 30_000 });
    let at = 0;
    while (at < raw.length) {
      const nl = raw.indexOf(0x0a, at);
      const [kl, vl] = raw.subarray(at, nl).toString().split(' ').map(Number) as [number, number];
      at = nl + 1;
      out.push({ key: raw.subarray(at, at + kl), value: raw.subarray(at + kl, at + kl + vl) });
      at += kl + vl;
    }
  }
  return out;
}

const found = (records: Array<{ key: Buffer | null; value: Buffer | null }>, needle: string) =>
  records.filter((r) => r.key?.includes(Buffer.from(needle)) || r.value?.includes(Buffer.from(needle))).length;

let svc: IngestService;
const stores = new ZoneStores(sealingSpecOf(sealing));

beforeAll(async () => {
  svc = await startIngest(loadIngestConfig({ ...env, INGEST_PORT: '0', INGEST_POOL_THREADS: '1' }), {
    log: quietLogger,
    tokenKeys: { kind: 'file', dir: env.INGEST_TOKEN_KEY_DIR! },
  });
}, 60_000);
afterAll(async () => {
  await svc?.close();
  await stores.close();
});

describe('access and erasure by crypto-shredding (policy 5.2)', () => {
  it('access finds a device by any identifier, opened; erase makes every copy unreadable, a kcat backup included; another device untouched', async () => {
    const a = batch({ zone: 'cn', events: 4 });
    // Another language, and a location it allows: its personal records differ from the first batch's (byte-equal ones
    // are written once per day, ingest/mix.ts RecentRecords), so each batch has its own.
    const a2 = {
      ...batch({ zone: 'cn', events: 3 }),
      device: { ...a.device, locale: 'zh-CN', location: { lat: 31.23, lon: 121.47, accuracy_m: 50 } },
      consent: { analytics: true, personalised_ads: false, location: true },
    };
    (a2.events[1] as { event_id: string }).event_id = 'not-a-uuid'; // one reject of device A
    const b = batch({ zone: 'cn', events: 2 });
    for (const x of [a, a2, b]) expect((await post(svc.url, x)).status).toBe(200);

    const backup = kcatDump('cn');
    expect(backup.length).toBe(2 + 2 + 1 + 2); // A: p30d + p7d per batch, one reject; B: p30d + p7d
    // Sealed and keyed by subjects: no identifier of either device in any byte.
    for (const needle of [a.device.device_id, a.device.imei!, b.device.device_id]) expect(found(backup, needle)).toBe(0);

    const outFile = join(mkdtempSync(join(tmpdir(), 'rights-access-')), 'a.jsonl');
    const access = await rights(['access', '--device-id', a.device.device_id, '--zone', 'cn', '--out', outFile]);
    expect(access.code, access.stderr).toBe(0);
    const lines = readFileSync(outFile, 'utf8').trim().split('\n');
    const summary = JSON.parse(access.stderr) as Record<string, { records: number; unreadable: number; first_day: string }>;
    expect(summary.cn).toMatchObject({ records: 5, unreadable: 0 });
    expect(lines).toHaveLength(5);
    expect(lines.every((l) => l.includes(a.device.device_id) || l.includes('"kind":"p7d"') || l.includes('"kind":"reject"'))).toBe(true);
    expect(lines.some((l) => l.includes(b.device.device_id))).toBe(false);
    // Found by another identifier it sent too.
    expect(JSON.parse((await rights(['access', '--imei', a.device.imei!, '--zone', 'cn', '--out', `${outFile}.2`])).stderr)).toMatchObject({
      cn: { records: 5 },
    });

    const erased = await rights(['erase', '--device-id', a.device.device_id]);
    expect(erased.code, erased.stderr).toBe(0);
    expect(erased.stdout).toMatch(/erased: \{"cn":1\}/);
    const after = await rights(['access', '--device-id', a.device.device_id]);
    expect([after.code, after.stderr]).toEqual([0, expect.stringMatching(/^nothing held for device_id/)]);
    // The backup taken before: with the KEK and this code, A's records no longer open; B's still do.
    const opened = await openRecords(stores, 'cn', backup);
    const subjectA = subjectOf(stores.keysOf('cn'), `device_id:${a.device.device_id}`).toString('hex');
    expect(opened.filter((r) => r.key.toString('hex') === subjectA).map((r) => r.opened)).toEqual([null, null, null, null, null]);
    const openB = opened.filter((r) => r.key.toString('hex') !== subjectA).map((r) => r.opened);
    expect(openB.length).toBe(2);
    expect(openB.filter((v) => v?.includes(Buffer.from(b.device.device_id)))).toHaveLength(1); // its p30d record
    // Erasing twice is harmless.
    expect(await rights(['erase', '--device-id', a.device.device_id])).toMatchObject({ code: 0, stdout: expect.stringMatching(/nothing held/) });
    const log = (await rights(['log', '--zone', 'cn'])).stdout;
    expect(log).toMatch(/"action":"erase".*"outcome":"erased"/);
    expect(log).not.toContain(a.device.device_id);
  }, 180_000);

  it('negative control: with sealing switched off (INGEST_UNSAFE_UNSEALED) the same backup reads in clear, whatever the key store does', async () => {
    const plainTopics = { PIPELINE_TOPIC_PERSONAL_PREFIX: `${prefix}_plain_p.`, PIPELINE_TOPIC_REJECTS_PREFIX: `${prefix}_plain_r.` };
    const plain = await startIngest(loadIngestConfig({ ...env, ...plainTopics, INGEST_PORT: '0', INGEST_POOL_THREADS: '1', INGEST_UNSAFE_UNSEALED: 'true' }), {
      log: quietLogger,
      tokenKeys: { kind: 'file', dir: env.INGEST_TOKEN_KEY_DIR! },
    });
    try {
      const c = batch({ zone: 'cn', events: 2 });
      expect((await post(plain.url, c)).status).toBe(200);
      const recs = await readAll(`${prefix}_plain_p.cn.p30d`, 1, 20_000);
      expect(found(recs, c.device.device_id)).toBeGreaterThan(0);
    } finally {
      await plain.close();
    }
  }, 120_000);
});

describe("the key store's own backups cannot undo an erasure (KEK rotation)", () => {
  it('a backed-up key row restored after erase + rotate + retire opens nothing; restored before retiring it does (negative control)', async () => {
    const d = batch({ zone: 'ru', events: 2 });
    expect((await post(svc.url, d)).status).toBe(200);
    const records = (await readAll(`${prefix}_p.ru.p30d`, 1, 20_000)).filter((r) => r.key);
    const subject = subjectOf(stores.keysOf('ru'), `device_id:${d.device.device_id}`);
    const db = new pg.Client(postgresConnection('ru'));
    await db.connect();
    try {
      // The store's backup: the device's key row as it was.
      const row = (
        await db.query<{ subject: Buffer; kek_version: number; wrapped_dek: Buffer }>(`SELECT * FROM ${sealing.schema}.rights_device_keys WHERE subject = $1`, [
          subject,
        ])
      ).rows[0]!;
      const restore = () =>
        db.query(`INSERT INTO ${sealing.schema}.rights_device_keys (subject, kek_version, wrapped_dek) VALUES ($1, $2, $3)`, [
          row.subject,
          row.kek_version,
          row.wrapped_dek,
        ]);
      expect((await rights(['erase', '--device-id', d.device.device_id, '--zone', 'ru'])).code).toBe(0);
      const rot = await rights(['rotate-kek', '--zone', 'ru']);
      expect(rot.code, rot.stderr).toBe(0);
      const fresh = () => new ZoneStores({ ...sealingSpecOf(sealing), createKeys: false });
      // Negative control: the old KEK still exists, so the restored backup row opens the erased records.
      await restore();
      let s = fresh();
      expect((await openRecords(s, 'ru', records)).some((r) => r.opened !== null)).toBe(true);
      await s.close();
      await db.query(`DELETE FROM ${sealing.schema}.rights_device_keys WHERE subject = $1`, [subject]);
      // Retire the old version (the backup window has passed), then restore the backup again: nothing opens.
      const retire = await rights(['retire-kek', '--zone', 'ru', '--version', String(row.kek_version)]);
      expect(retire.code, retire.stderr).toBe(0);
      await restore();
      s = fresh();
      expect((await openRecords(s, 'ru', records)).map((r) => r.opened)).toEqual(records.map(() => null));
      await s.close();
      await db.query(`DELETE FROM ${sealing.schema}.rights_device_keys WHERE subject = $1`, [subject]);
    } finally {
      await db.end();
    }
  }, 180_000);
});

describe('withdrawal and restriction in every ingest copy (policy 5.2, 5.3)', () => {
  const children: ChildProcess[] = [];
  afterAll(() => {
    for (const c of children) if (c.exitCode === null) c.kill('SIGTERM');
  });
  async function spawnIngest(): Promise<string> {
    const proc = spawn(process.execPath, ['--import', 'tsx', 'ingest/main.ts'], {
      cwd: REPO,
      env: { PATH: process.env.PATH ?? '', HOME: process.env.HOME ?? '', ...env, INGEST_PORT: '0', INGEST_POOL_THREADS: '1', INGEST_TOPICS: 'verify' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    children.push(proc);
    return new Promise<string>((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error('ingest did not start')), 60_000);
      createInterface({ input: proc.stdout! }).on('line', (l) => {
        const m = /"msg":"ingest listening".*"port":(\d+)/.exec(l);
        if (m) {
          clearTimeout(timer);
          resolve(`http://127.0.0.1:${m[1]}`);
        }
      });
      proc.once('exit', (c) => reject(new Error(`ingest exited ${c}`)));
    });
  }

  it('two running processes drop a withdrawn device within 60 s, a third started later from its first batch; consent lifts it', async () => {
    const urls = [await spawnIngest(), await spawnIngest()];
    const dev = batch({ zone: 'in', events: 3 }).device;
    const next = () => ({ ...batch({ zone: 'in', events: 3 }), device: dev });
    for (const u of urls) expect((await post(u, next())).json.accepted).toBe(3);
    const t0 = Date.now();
    expect((await rights(['withdraw', '--device-id', dev.device_id])).code).toBe(0);
    const applied: number[] = [];
    for (const u of urls) {
      for (;;) {
        const r = await post(u, next());
        if (r.json.dropped_consent?.dropped_withdrawn === 3) {
          expect(r.json.accepted).toBe(0);
          applied.push(Date.now() - t0);
          break;
        }
        if (Date.now() - t0 > 60_000) throw new Error('withdrawal not applied within 60 s');
        await new Promise((res) => setTimeout(res, 250));
      }
    }
    console.log(`withdrawal applied by both copies after ${applied.join(' and ')} ms`);
    const third = await spawnIngest();
    expect((await post(third, next())).json).toMatchObject({ accepted: 0, dropped_consent: { dropped_withdrawn: 3 } });
    // Another device is not affected (control).
    expect((await post(third, batch({ zone: 'in', events: 2 }))).json.accepted).toBe(2);
    // Nothing of the withdrawn device was stored meanwhile: its records on the topic are the two from before.
    const subject = subjectOf(stores.keysOf('in'), `device_id:${dev.device_id}`);
    const mine = (await readAll(`${prefix}_p.in.p30d`, 3, 20_000)).filter((r) => r.key?.equals(subject));
    expect(mine).toHaveLength(2);
    // Negative control: an ingest without the list (INGEST_UNSAFE_UNSEALED: no subjects, no follower) stores the withdrawn device's batch.
    const unguarded = await startIngest(loadIngestConfig({ ...env, INGEST_PORT: '0', INGEST_POOL_THREADS: '1', INGEST_UNSAFE_UNSEALED: 'true' }), {
      log: quietLogger,
      tokenKeys: { kind: 'file', dir: env.INGEST_TOKEN_KEY_DIR! },
    });
    try {
      expect((await post(unguarded.url, next())).json).toMatchObject({ accepted: 3, dropped_consent: {} });
    } finally {
      await unguarded.close();
    }
    expect((await rights(['consent', '--device-id', dev.device_id])).code).toBe(0);
    for (const u of [...urls, third]) {
      for (;;) {
        if ((await post(u, next())).json.accepted === 3) break;
        if (Date.now() - t0 > 120_000) throw new Error('consent not applied');
        await new Promise((res) => setTimeout(res, 250));
      }
    }
  }, 240_000);
});

describe('bad requests and faults', () => {
  it('unknown device: exit 0, nothing held; malformed identifier or zone: exit 2 with one line', async () => {
    expect(await rights(['access', '--device-id', 'never-seen-device'])).toMatchObject({ code: 0, stderr: expect.stringMatching(/^nothing held/) });
    expect(await rights(['erase', '--imei', 'abc'])).toMatchObject({ code: 2, stderr: expect.stringMatching(/--imei "abc": not a well-formed imei/) });
    expect(await rights(['access', '--device-id', 'x', '--zone', 'eu'])).toMatchObject({ code: 2, stderr: expect.stringMatching(/not a residency zone/) });
    expect(await rights(['access'])).toMatchObject({ code: 2, stderr: expect.stringMatching(/needs the device/) });
    // A zone that does not match the device's: nothing held there.
    const other = await rights(['access', '--device-id', 'never-seen-device', '--zone', 'ru']);
    expect(other).toMatchObject({ code: 0, stderr: expect.stringMatching(/^nothing held for device_id in ru/) });
  }, 60_000);

  it('Kafka down: a withdrawal fails with one line (exit 1), nothing half-done is reported as done', async () => {
    const r = await rights(['withdraw', '--device-id', 'someone', '--zone', 'row'], { PIPELINE_KAFKA_BROKERS: '127.0.0.1:1' });
    expect(r.code).toBe(1);
    expect(r.stderr.split('\n')).toEqual([expect.stringMatching(/^rights: withdraw failed: /)]);
    expect(r.stdout).toBe('');
  }, 120_000);

  it('key store down: the command fails with one line (exit 1); ingest answers 503 and writes nothing', async () => {
    const down = Object.fromEntries(ZONES.map((z) => [`INGEST_KEYSTORE_${z.toUpperCase()}`, `127.0.0.1:1/keys_${z}`]));
    const r = await rights(['erase', '--device-id', 'someone'], down);
    expect(r.code).toBe(1);
    expect(r.stderr.split('\n')).toEqual([expect.stringMatching(/^rights: erase failed: key store of zone cn unavailable/)]);
    const topics = { PIPELINE_TOPIC_PERSONAL_PREFIX: `${prefix}_down_p.`, PIPELINE_TOPIC_REJECTS_PREFIX: `${prefix}_down_r.` };
    const broken = await startIngest(loadIngestConfig({ ...env, ...down, ...topics, INGEST_PORT: '0', INGEST_POOL_THREADS: '1' }), {
      log: quietLogger,
      tokenKeys: { kind: 'file', dir: env.INGEST_TOKEN_KEY_DIR! },
    });
    try {
      const res = await post(broken.url, batch({ zone: 'row', events: 2 }));
      expect([res.status, res.json.error?.code]).toEqual([503, 'INGEST_KEYSTORE_UNAVAILABLE']);
      const dump = execFileSync('kcat', ['-b', stackInfo().kafkaBrokers[0]!, '-C', '-t', `${prefix}_down_p.row.p30d`, '-e', '-q', '-f', '%o\n'], {
        timeout: 30_000,
      });
      expect(dump.length).toBe(0);
    } finally {
      await broken.close();
    }
  }, 120_000);
});

describe('replay of rejects (npm run rejects -- replay)', () => {
  async function rejects(args: string[]) {
    const r = await runScript('tools/rejects.ts', args, env, 120_000);
    return { code: r.code, out: r.stdout.trim() ? (JSON.parse(r.stdout.trim()) as Record<string, unknown>) : {}, stderr: r.stderrLines.join('\n') };
  }
  const eventKeys = async () => {
    const n = Number(
      execFileSync('kcat', ['-b', stackInfo().kafkaBrokers[0]!, '-C', '-t', `${prefix}_ev`, '-e', '-q', '-f', '%o\n'], { timeout: 30_000 })
        .toString()
        .trim()
        .split('\n')
        .filter(Boolean).length,
    );
    const recs = await readAll(`${prefix}_ev`, n, 20_000);
    return recs.flatMap((r) => decodeEventFacts(r.value!).map((f) => f.event_key.toString('hex')));
  };

  it('events refused for a late day secret are sent again once it exists, counted once however often replayed; a still-invalid one stays; --dry-run sends nothing', async () => {
    // An ingest whose rotation is late: read-only day secrets, today's missing -> TOKEN_TOO_LATE.
    const lateDir = mkdtempSync(join(tmpdir(), 'rights-late-keys-'));
    const late = await startIngest(
      loadIngestConfig({ ...env, INGEST_PORT: '0', INGEST_POOL_THREADS: '1', INGEST_TOKEN_KEYS_MODE: 'read-only', INGEST_TOKEN_KEY_DIR: lateDir }),
      { log: quietLogger, tokenKeys: { kind: 'file', dir: lateDir, mode: 'read-only' } },
    );
    const b = batch({ zone: 'row', events: 4 });
    (b.events[3]!.payload as Record<string, unknown>) = { 'telemetry.v1.Nope': {} }; // invalid whatever the day secret
    try {
      // Avro-JSON: the invalid event cannot be written in a binary container.
      const res = await fetch(`${late.url}/v1/batches`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(b) });
      const r = (await res.json()) as { accepted: number; rejected: Array<{ reason: string }> };
      expect([res.status, r.accepted, r.rejected.map((x) => x.reason).sort()]).toEqual([
        200,
        0,
        ['SCHEMA_TYPE_MISMATCH', 'TOKEN_TOO_LATE', 'TOKEN_TOO_LATE', 'TOKEN_TOO_LATE'],
      ]);
    } finally {
      await late.close();
    }
    const before = await eventKeys();
    const dry = await rejects(['replay', '--zone', 'row', '--dry-run', '--ingest', svc.url]);
    expect(dry.code, dry.stderr).toBe(0);
    expect(dry.out).toMatchObject({ zone: 'row', dry_run: true, passes: 3, 'still failing SCHEMA_TYPE_MISMATCH': 1 });
    expect((await eventKeys()).sort()).toEqual([...before].sort()); // partitions come back in any order
    const first = await rejects(['replay', '--zone', 'row', '--reason', 'TOKEN_TOO_LATE', '--ingest', svc.url]);
    expect(first.code, first.stderr).toBe(0);
    expect(first.out).toMatchObject({ passes: 3, sent: 3, accepted: 3 });
    const again = await rejects(['replay', '--zone', 'row', '--reason', 'TOKEN_TOO_LATE', '--ingest', svc.url]);
    expect(again.out).toMatchObject({ sent: 3, accepted: 3 });
    const left = [...before];
    const added = (await eventKeys()).filter((k) => {
      const i = left.indexOf(k);
      if (i < 0) return true;
      left.splice(i, 1);
      return false;
    });
    expect(added).toHaveLength(6);
    expect(new Set(added).size).toBe(3); // the same event keys: the aggregator counts them once
    expect(await rejects(['replay', '--zone', 'mars'])).toMatchObject({ code: 2, stderr: expect.stringMatching(/not a residency zone/) });
  }, 180_000);
});
