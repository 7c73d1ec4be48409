/**
 * The day-secret directory as ingest uses it, in both INGEST_TOKEN_KEYS_MODE values: the sweep, /readyz
 * and the key gauges, and a batch posted to a read-only worker without the day's key (refused events,
 * not a failed batch). Tests run as root, where chmod 0555 stops nothing, so "read-only" is the mode
 * flag, and "no write" is checked by the directory's entries, bytes and times staying the same.
 */
import { randomBytes } from 'node:crypto';
import { lstatSync, mkdirSync, mkdtempSync, readdirSync, readFileSync, statSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import type { ReadinessCheck } from '../runtime/ops.ts';
import { batch, containerOf } from '../testing/batches.ts';
import type { IngestAnswer } from '../testing/load.ts';
import { quietLogger } from '../testing/logger.ts';
import { RecordingSink } from '../testing/recording-sink.ts';
import { DAY_MS, isoOfDay } from '../schemas/index.ts';
import { loadIngestConfig } from './config.ts';
import { startIngest, type IngestService } from './http.ts';
import { createMetrics } from './metrics.ts';
import { TokenKeyWatch } from './token-keys.ts';
import { QUICK_MIX } from '../testing/mix.ts';

const today = () => Math.floor(Date.now() / DAY_MS);

function keyDir(days: number[]): string {
  const dir = mkdtempSync(join(tmpdir(), 'ingest-keys-'));
  for (const d of days) writeFileSync(join(dir, `${isoOfDay(d)}.key`), randomBytes(32), { mode: 0o600 });
  return dir;
}

function snapshot(dir: string): string {
  const d = statSync(dir);
  return [
    `. ${d.mtimeMs} ${d.ctimeMs}`,
    ...readdirSync(dir)
      .sort()
      .map((f) => {
        const st = lstatSync(join(dir, f));
        return `${f} ${st.mtimeMs} ${st.ctimeMs} ${st.isFile() ? readFileSync(join(dir, f)).toString('hex') : 'dir'}`;
      }),
  ].join('\n');
}

describe('TokenKeyWatch', () => {
  it('read-only sweep: keeps the expired key (reported, never destroyed), writes nothing, does not throw', () => {
    const t = today();
    const dir = keyDir([t - 3, t]);
    const before = snapshot(dir);
    const logged: string[] = [];
    const log = { ...quietLogger, warn: (m: string) => logged.push(m), error: (m: string) => logged.push(m) };
    const w = new TokenKeyWatch({ kind: 'file', dir, mode: 'read-only' });
    const r = w.sweep(Date.now(), log);
    expect(r).toEqual({ destroyed: [], expiredKept: [t - 3] });
    expect(logged).toEqual([expect.stringMatching(/expired day secrets are still in the key directory/)]);
    expect(snapshot(dir)).toBe(before);
    // manage mode destroys it (control: the same sweep does write when allowed to)
    expect(new TokenKeyWatch({ kind: 'file', dir, mode: 'manage' }).sweep(Date.now())).toEqual({ destroyed: [t - 3], expiredKept: [] });
    expect(readdirSync(dir)).toEqual([`${isoOfDay(t)}.key`]);
  });

  it('a delete that fails does not end the process: the sweep reports it (negative control: rotate alone throws)', () => {
    const t = today();
    const dir = keyDir([t]);
    // A directory where the expired key file would be: unlink fails (EISDIR) even for root.
    mkdirSync(join(dir, `${isoOfDay(t - 5)}.key`));
    const w = new TokenKeyWatch({ kind: 'file', dir, mode: 'manage' });
    const errors: string[] = [];
    const r = w.sweep(Date.now(), { ...quietLogger, error: (m: string) => errors.push(m) });
    expect(r.error).toMatch(/EISDIR|EPERM/);
    expect(r.expiredKept).toEqual([t - 5]);
    expect(errors).toHaveLength(1);
    expect(() => w.tokenizer.rotate(Date.now())).toThrow(/EISDIR|EPERM/);
  });

  it("readiness: read-only is ready only with today's key; manage creates it", () => {
    const t = today();
    const dir = keyDir([t - 1, t + 1]);
    const ro = new TokenKeyWatch({ kind: 'file', dir, mode: 'read-only' });
    expect(ro.readiness()).toEqual({ ok: false, detail: `missing today (${isoOfDay(t)}.key)` });
    expect(readdirSync(dir)).not.toContain(`${isoOfDay(t)}.key`);
    const manage = new TokenKeyWatch({ kind: 'file', dir, mode: 'manage' });
    expect(manage.readiness()).toEqual({ ok: true, detail: 'ok' });
    expect(readdirSync(dir)).toContain(`${isoOfDay(t)}.key`);
    expect(ro.readiness()).toEqual({ ok: true, detail: 'ok' });
    // an environment source cannot create: read-only by nature
    expect(new TokenKeyWatch({ kind: 'env', spec: '' }).readiness().ok).toBe(false);
  });

  it('gauges: newest and oldest usable day as UTC midnight seconds, expired keys held, labelled by mode', async () => {
    const t = today();
    const w = new TokenKeyWatch({ kind: 'file', dir: keyDir([t - 4, t - 1, t, t + 1]), mode: 'read-only' });
    const m = createMetrics({ defaultMetrics: false, tokenKeys: () => w.gauges() });
    const text = await m.registry.metrics();
    expect(text).toContain(`ingest_token_newest_key_day_seconds{mode="read-only"} ${((t + 1) * DAY_MS) / 1000}`);
    expect(text).toContain(`ingest_token_oldest_key_day_seconds{mode="read-only"} ${((t - 1) * DAY_MS) / 1000}`);
    expect(text).toContain('ingest_token_expired_keys{mode="read-only"} 1');
    const empty = new TokenKeyWatch({ kind: 'file', dir: keyDir([]), mode: 'read-only' });
    const m2 = createMetrics({ defaultMetrics: false, tokenKeys: () => empty.gauges() });
    expect(await m2.registry.metrics()).toContain('ingest_token_newest_key_day_seconds{mode="read-only"} 0');
  });
});

/** An answer's text, and its JSON when it is JSON (/readyz: a ReadinessCheck; /v1/batches: an IngestAnswer). */
type Answer = { status: number; text: string; json: (IngestAnswer & Partial<ReadinessCheck>) | undefined };

function call(port: number, path: string, body?: Buffer): Promise<Answer> {
  return new Promise((resolve, reject) => {
    const headers = body ? { 'content-type': 'avro/binary' } : {};
    const req = request({ host: '127.0.0.1', port, method: body ? 'POST' : 'GET', path, headers }, (res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('end', () => {
        const text = Buffer.concat(chunks).toString();
        resolve({ status: res.statusCode ?? 0, text, json: text.startsWith('{') ? (JSON.parse(text) as Answer['json']) : undefined });
      });
    });
    req.on('error', reject);
    req.end(body);
  });
}

describe('ingest with a read-only key directory', () => {
  let svc: IngestService | undefined;
  afterEach(async () => {
    await svc?.close();
    svc = undefined;
  });

  it("/readyz is false without today's key and turns true when the rotation adds it; batches meanwhile are answered, their events refused", async () => {
    const t = today();
    const dir = keyDir([t - 5]); // only an expired key: it must not be used
    const before = snapshot(dir);
    const cfg = loadIngestConfig({
      INGEST_PORT: '0',
      INGEST_POOL_THREADS: '1',
      INGEST_TOKEN_KEYS_MODE: 'read-only',
      INGEST_TOKEN_KEY_DIR: dir,
      INGEST_ZONES_SHARE_MAIN_CLUSTER: 'true',
      INGEST_UNSAFE_UNSEALED: 'true',
      INGEST_UNSAFE_PLAINTEXT_HTTP: 'true',
      ...QUICK_MIX, // testing/mix.ts: a lone batch need not wait for a crowd here
    });
    svc = await startIngest(cfg, { sink: new RecordingSink(), log: quietLogger, tokenKeys: { kind: 'file', dir, mode: cfg.INGEST_TOKEN_KEYS_MODE } });

    const notReady = await call(svc.port, '/readyz');
    expect(notReady.status).toBe(503);
    expect(notReady.json?.checks?.token_keys).toBe(`missing today (${isoOfDay(t)}.key)`);

    const refused = await call(svc.port, '/v1/batches', containerOf(batch({ events: 4 })));
    expect(refused.status).toBe(200);
    expect(refused.json?.accepted).toBe(0);
    expect(refused.json?.rejected?.map((r) => r.reason)).toEqual(Array(4).fill('TOKEN_TOO_LATE'));
    expect(snapshot(dir)).toBe(before); // nothing created in the read-only directory

    // The rotation adds today's key (and yesterday's, should the batch straddle midnight).
    for (const d of [t - 1, t, t + 1]) writeFileSync(join(dir, `${isoOfDay(d)}.key`), randomBytes(32));
    const ready = await call(svc.port, '/readyz');
    expect(ready.status).toBe(200);
    expect(ready.json?.checks?.token_keys).toBe('ok');
    const accepted = await call(svc.port, '/v1/batches', containerOf(batch({ events: 4 })));
    expect(accepted.json?.accepted).toBe(4);

    const metrics = (await call(svc.port, '/metrics')).text;
    expect(metrics).toContain(`ingest_token_newest_key_day_seconds{mode="read-only"} ${((t + 1) * DAY_MS) / 1000}`);
    expect(metrics).toContain('ingest_token_expired_keys{mode="read-only"} 1');
    expect(metrics).toContain('ingest_events_rejected_total{reason="TOKEN_TOO_LATE"} 4');
  });

  it("control: in manage mode the same empty directory is ready (today's key is created)", async () => {
    const dir = keyDir([]);
    const cfg = loadIngestConfig({
      INGEST_PORT: '0',
      INGEST_POOL_THREADS: '1',
      INGEST_TOKEN_KEY_DIR: dir,
      INGEST_ZONES_SHARE_MAIN_CLUSTER: 'true',
      INGEST_UNSAFE_UNSEALED: 'true',
      INGEST_UNSAFE_PLAINTEXT_HTTP: 'true',
      ...QUICK_MIX, // testing/mix.ts: a lone batch need not wait for a crowd here
    });
    expect(cfg.INGEST_TOKEN_KEYS_MODE).toBe('manage'); // the default (local stack, demo)
    svc = await startIngest(cfg, { sink: new RecordingSink(), log: quietLogger, tokenKeys: { kind: 'file', dir, mode: cfg.INGEST_TOKEN_KEYS_MODE } });
    const r = await call(svc.port, '/readyz');
    expect(r.status).toBe(200);
    expect(r.json?.checks?.token_keys).toBe('ok');
    expect(readdirSync(dir)).toEqual([`${isoOfDay(today())}.key`]);
  });
});
