// The answer service re-reads ANSWERS_TOKENS_FILE when it changes (answer-service.ts, TokenList): a
// revoked token is refused (401) and a newly added one accepted without a restart; a new file that does
// not parse keeps the previous list, logs an error naming the line (never a hash) and counts
// answers_tokens_reloads_total{result="failed"}. Negative control: with the reload off (reloadTokens:
// false, how the service behaved before) the revoked token still works.
//
// A request is "accepted" when it gets past the token check: the question below is malformed, so an
// accepted token gets 400 (AGG_BAD_DAY) and an unknown one 401, and ClickHouse is never asked (the store
// is a stub that fails if used).
import { randomBytes } from 'node:crypto';
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, afterEach, describe, expect, it } from 'vitest';
import { createLogger } from '../runtime/log.ts';
import { parseTokens, sha256Hex, startAnswerService, TokenList, type RunningAnswers } from './answer-service.ts';
import type { LedgerSource } from './private-query.ts';

const dir = mkdtempSync(path.join(tmpdir(), 'answers-tokens-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

const alice = randomBytes(24).toString('hex');
const bob = randomBytes(24).toString('hex');
const carol = randomBytes(24).toString('hex');
const line = (name: string, token: string) => `${name} ${sha256Hex(token)}\n`;

const unusedStore = {
  database: 'analytics',
  query: () => Promise.reject(new Error('ClickHouse is not asked in this test')),
  command: () => Promise.reject(new Error('ClickHouse is not asked in this test')),
} as unknown as LedgerSource;

let running: RunningAnswers[] = [];
afterEach(async () => {
  for (const s of running) await s.close();
  running = [];
});

const CHECK_MS = 20;

async function start(file: string, reloadTokens = true) {
  const logs: Record<string, unknown>[] = [];
  const log = createLogger({ service: 'answers', write: (l) => logs.push(JSON.parse(l) as Record<string, unknown>) });
  const { tokens, stamp } = TokenList.read(file);
  const svc = await startAnswerService({ ANSWERS_HOST: '127.0.0.1', ANSWERS_PORT: 0 }, tokens, unusedStore, {
    log,
    tokensFile: file,
    tokensStamp: stamp,
    tokensCheckMs: CHECK_MS,
    reloadTokens,
  });
  running.push(svc);
  return { svc, logs };
}

/** 401 = refused at the token check; 400 = accepted, then refused for the malformed question. */
async function statusOf(svc: RunningAnswers, token: string): Promise<number> {
  const res = await fetch(`${svc.url}/v1/answers`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
    body: JSON.stringify({ args: ['dau', '--from', 'yesterday'] }),
  });
  await res.arrayBuffer();
  return res.status;
}

async function reloads(svc: RunningAnswers): Promise<{ ok: number; failed: number }> {
  const text = await (await fetch(`${svc.url}/metrics`)).text();
  const n = (r: string) => Number(new RegExp(`^answers_tokens_reloads_total\\{result="${r}"\\} (\\d+)$`, 'm').exec(text)?.[1] ?? NaN);
  return { ok: n('ok'), failed: n('failed') };
}

/** Waits until the reload counters reach `want` (or the deadline: the caller's expect then fails). */
async function until(svc: RunningAnswers, want: (r: { ok: number; failed: number }) => boolean, deadlineMs = 3000) {
  const end = Date.now() + deadlineMs;
  let r = await reloads(svc);
  while (!want(r) && Date.now() < end) {
    await new Promise((ok) => setTimeout(ok, CHECK_MS));
    r = await reloads(svc);
  }
  return r;
}

describe('answer service: the token list is re-read when its file changes', () => {
  it('a revoked token is refused and a newly added one accepted, without a restart (file rewritten in place)', async () => {
    const file = path.join(dir, 'in-place');
    writeFileSync(file, line('alice', alice) + line('bob', bob), { mode: 0o600 });
    const { svc, logs } = await start(file);
    expect([await statusOf(svc, alice), await statusOf(svc, bob), await statusOf(svc, carol)]).toEqual([400, 400, 401]);
    expect(await reloads(svc)).toEqual({ ok: 0, failed: 0 });

    writeFileSync(file, `# bob left\n${line('alice', alice)}${line('carol', carol)}`);
    expect(await until(svc, (r) => r.ok === 1)).toEqual({ ok: 1, failed: 0 });
    expect([await statusOf(svc, alice), await statusOf(svc, bob), await statusOf(svc, carol)]).toEqual([400, 401, 400]);
    expect(svc.tokens.size).toBe(2);
    const reloaded = logs.find((l) => l.msg === 'token list reloaded');
    expect(reloaded).toMatchObject({ level: 'info', analysts: 2, added: 'carol', removed: 'bob' });
    expect(JSON.stringify(logs)).not.toContain(sha256Hex(bob));
  });

  it('a file replaced by rename (how a Kubernetes Secret volume updates) is picked up the same way', async () => {
    const file = path.join(dir, 'renamed');
    writeFileSync(file, line('alice', alice) + line('bob', bob), { mode: 0o600 });
    const { svc } = await start(file);
    const next = path.join(dir, 'renamed.next');
    writeFileSync(next, line('bob', bob), { mode: 0o600 });
    renameSync(next, file);
    expect(await until(svc, (r) => r.ok === 1)).toEqual({ ok: 1, failed: 0 });
    expect([await statusOf(svc, alice), await statusOf(svc, bob)]).toEqual([401, 400]);
  });

  it('a new file that does not parse keeps the previous list, logs the line and counts the failure; the next good file is used', async () => {
    const file = path.join(dir, 'bad');
    writeFileSync(file, line('alice', alice) + line('bob', bob), { mode: 0o600 });
    const { svc, logs } = await start(file);
    // bob's line cut half way (a file caught while being written, or a typo): not installed.
    writeFileSync(file, line('alice', alice) + `bob ${sha256Hex(bob).slice(0, 20)}\n`);
    expect(await until(svc, (r) => r.failed === 1)).toEqual({ ok: 0, failed: 1 });
    expect([await statusOf(svc, alice), await statusOf(svc, bob)]).toEqual([400, 400]);
    const err = logs.find((l) => l.level === 'error');
    expect(err).toMatchObject({ msg: 'token list not reloaded: the previous list stays in use', analysts: 2 });
    expect(String(err?.reason)).toMatch(/ANSWERS_TOKENS_FILE line 2: expected "name sha256hex"/);
    expect(JSON.stringify(logs)).not.toContain(sha256Hex(bob).slice(0, 20));
    // An empty list is refused as well (nobody could ask); a missing file too.
    writeFileSync(file, '# nobody\n');
    expect(await until(svc, (r) => r.failed === 2)).toEqual({ ok: 0, failed: 2 });
    rmSync(file);
    expect(await until(svc, (r) => r.failed === 3)).toEqual({ ok: 0, failed: 3 });
    expect(await statusOf(svc, bob)).toBe(400);
    // Fixed: used at the next change.
    writeFileSync(file, line('alice', alice), { mode: 0o600 });
    expect(await until(svc, (r) => r.ok === 1)).toEqual({ ok: 1, failed: 3 });
    expect([await statusOf(svc, alice), await statusOf(svc, bob)]).toEqual([400, 401]);
  });

  it('negative control: with the reload off, the revoked token still works after the same wait', async () => {
    const file = path.join(dir, 'off');
    writeFileSync(file, line('alice', alice) + line('bob', bob), { mode: 0o600 });
    const { svc } = await start(file, false);
    writeFileSync(file, line('alice', alice));
    // Fifty looks' worth of time: the reloading service above needs two.
    await new Promise((ok) => setTimeout(ok, 50 * CHECK_MS));
    expect(await reloads(svc)).toEqual({ ok: 0, failed: 0 });
    expect(await statusOf(svc, bob)).toBe(400);
  });

  it('a fixed list (no file given) exports the same metrics and never reloads', async () => {
    const svc = await startAnswerService({ ANSWERS_HOST: '127.0.0.1', ANSWERS_PORT: 0 }, parseTokens(line('alice', alice)), unusedStore, {
      log: createLogger({ service: 'answers', write: () => {} }),
    });
    running.push(svc);
    expect(await reloads(svc)).toEqual({ ok: 0, failed: 0 });
    expect(await (await fetch(`${svc.url}/metrics`)).text()).toMatch(/^answers_tokens_listed 1$/m);
  });
});
