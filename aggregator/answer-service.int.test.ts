/**
 * The answer service against the real ClickHouse 18.16 server: people hold bearer tokens, not the
 * ClickHouse credential; each has a budget of their own in the ledger, named by the token's entry
 * (a name in the request body changes nothing); an unknown token, --exact and a spent budget are
 * refused with their status. Negative control: without the service, the same ClickHouse credential reads
 * the exact released cells directly, which is why people who should see noisy answers only get a token.
 */
import { randomBytes } from 'node:crypto';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dayToIso, utcDay, type FactRow } from './facts.ts';
import { openStore } from './store-open.ts';
import type { Store } from './store.ts';
import { createClickHouse, stackInfo, uniqueName } from '../testing/stack.ts';
import { parseTokens, sha256Hex, startAnswerService, TokenList, type RunningAnswers } from './answer-service.ts';

const database = uniqueName('answers');
const today = utcDay(Date.now());
const key = (s: string) => Buffer.from(s.padEnd(16, '.').slice(0, 16));
const facts: FactRow[] = [];
for (let i = 0; i < 25; i++) {
  facts.push({
    day: today,
    app_id: 'com.example.mail',
    app_version: '1.0',
    device_model: 'm1',
    os_version: '13',
    country: 'DE',
    kind: 'session_start',
    daily_token: key(`d${i}`),
    event_key: key(`s${i}`),
  });
}
const alice = randomBytes(24).toString('hex');
const bob = randomBytes(24).toString('hex');

let store: Store;
let svc: RunningAnswers;

beforeAll(async () => {
  store = await openStore({
    kind: 'server',
    url: stackInfo().clickhouseUrl,
    user: 'default',
    password: '',
    chdbPath: '',
    insertTimeoutMs: 30_000,
    database,
    minGroupDevices: 5,
    dailyEpsilon: 1,
  });
  await store.migrate();
  await store.insertFacts(facts);
  const tokens = parseTokens(`# analysts\nalice ${sha256Hex(alice)}\nbob ${sha256Hex(bob)}\n`);
  svc = await startAnswerService({ ANSWERS_HOST: '127.0.0.1', ANSWERS_PORT: 0 }, tokens, store);
});

afterAll(async () => {
  await svc?.close();
  await store?.close();
  const c = createClickHouse();
  await c.command({ query: `DROP DATABASE IF EXISTS ${database}` });
  await c.close();
});

const ask = async (token: string | undefined, body: unknown) => {
  const res = await fetch(`${svc.url}/v1/answers`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...(token ? { authorization: `Bearer ${token}` } : {}) },
    body: JSON.stringify(body),
  });
  return { status: res.status, body: (await res.json()) as Record<string, unknown> };
};
const q = (...extra: string[]) => ({ args: ['dau', '--from', dayToIso(today), '--to', dayToIso(today), '--by', 'app_id', ...extra] });

describe('answer service', () => {
  it('answers a token holder privately, and keeps each person to a budget of their own', async () => {
    const first = await ask(alice, q('--epsilon', '0.5'));
    expect(first.status).toBe(200);
    expect(first.body).toMatchObject({ analyst: 'alice', epsilon: 0.5, spent_today: 0.5, daily_epsilon: 1, repeated: false });
    expect(first.body.columns).toEqual(['app_id', 'device_days', 'device_days_sd']);
    // The same question again: the same answer, free.
    const again = await ask(alice, q('--epsilon', '0.5'));
    expect(again.body).toMatchObject({ repeated: true, spent_today: 0.5, rows: first.body.rows });
    // A new question, with another name in the body: still alice's budget.
    const spoof = await ask(alice, { args: ['dau', '--from', dayToIso(today), '--to', dayToIso(today), '--by', 'day', '--epsilon', '0.5'], analyst: 'bob' });
    expect(spoof.body).toMatchObject({ analyst: 'alice', spent_today: 1, repeated: false });
    const spent = await ask(alice, { args: ['dau', '--from', dayToIso(today - 1), '--to', dayToIso(today), '--epsilon', '0.5'] });
    expect(spent.status).toBe(429);
    expect(spent.body).toMatchObject({ code: 'AGG_PRIVACY_BUDGET_SPENT' });
    expect(String(spent.body.message)).toMatch(/alice has used 1 of 1/);
    // Bob's budget is his own.
    expect((await ask(bob, q('--epsilon', '1'))).body).toMatchObject({ analyst: 'bob', spent_today: 1 });
    const ledger = await store.query<{ analyst: string; mode: string }>(`SELECT analyst, mode FROM ${database}.privacy_ledger ORDER BY at, analyst, mode`);
    expect(new Set(ledger.map((r) => r.analyst))).toEqual(new Set(['alice', 'bob']));
  });

  it('refuses an unknown token, a missing one, --exact and a bad question, each with its status', async () => {
    expect((await ask(randomBytes(24).toString('hex'), q())).status).toBe(401);
    expect((await ask(undefined, q())).body).toMatchObject({ code: 'AGG_UNAUTHORIZED' });
    expect((await ask(bob, q('--exact'))).body).toMatchObject({ code: 'AGG_EXACT_REFUSED' });
    expect((await ask(bob, q('--exact'))).status).toBe(403);
    expect((await ask(bob, { args: ['dau', '--from', 'yesterday'] })).status).toBe(400);
    expect((await ask(bob, { nope: true })).status).toBe(400);
  });

  it('negative control: the ClickHouse credential the service holds reads the exact cells directly', async () => {
    const rows = await store.query<{ n: string }>(`SELECT toString(active_devices) AS n FROM ${database}.daily_active_devices`);
    expect(rows).toEqual([{ n: '25' }]);
  });

  it('a person added to the tokens file gets a private answer, and one removed gets 401, without a restart', async () => {
    const dir = mkdtempSync(path.join(tmpdir(), 'answers-int-tokens-'));
    const file = path.join(dir, 'tokens');
    const carol = randomBytes(24).toString('hex');
    writeFileSync(file, `bob ${sha256Hex(bob)}\n`, { mode: 0o600 });
    const { tokens, stamp } = TokenList.read(file);
    const live = await startAnswerService({ ANSWERS_HOST: '127.0.0.1', ANSWERS_PORT: 0 }, tokens, store, {
      tokensFile: file,
      tokensStamp: stamp,
      tokensCheckMs: 20,
    });
    try {
      const askLive = async (token: string) => {
        const res = await fetch(`${live.url}/v1/answers`, {
          method: 'POST',
          headers: { 'content-type': 'application/json', authorization: `Bearer ${token}` },
          body: JSON.stringify(q('--epsilon', '0.25')),
        });
        return { status: res.status, body: (await res.json()) as Record<string, unknown> };
      };
      expect((await askLive(carol)).status).toBe(401);
      writeFileSync(file, `carol ${sha256Hex(carol)}\n`);
      const deadline = Date.now() + 5000;
      while (live.tokens.analystOf(carol) === undefined && Date.now() < deadline) await new Promise((ok) => setTimeout(ok, 20));
      const answered = await askLive(carol);
      expect(answered.status).toBe(200);
      expect(answered.body).toMatchObject({ analyst: 'carol', epsilon: 0.25, spent_today: 0.25, repeated: false });
      expect((await askLive(bob)).status).toBe(401);
    } finally {
      await live.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });

  it('a tokens file with a malformed line or a shared token is refused at start', () => {
    expect(() => parseTokens('alice abc')).toThrow(/line 1: expected "name sha256hex"/);
    expect(() => parseTokens(`a ${sha256Hex(alice)}\nb ${sha256Hex(alice)}`)).toThrow(/line 2: a token already given to a/);
    expect(() => parseTokens('# nobody')).toThrow(/no analyst listed/);
  });
});
