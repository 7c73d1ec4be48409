// The day-secret rotation script of the CronJob, run by /bin/sh against a fake `kubectl` that keeps the
// Secret in a file. What it must guarantee is checked against the tokenizer ingest uses: every key it
// keeps is one ingest may still use, today's and tomorrow's keys exist, and keys are 32 bytes.
import { chmodSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { execFileSync } from 'node:child_process';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import YAML from 'yaml';
import { DAY_MS, DailyTokenizer, EnvKeySource, dayOfIso } from '../schemas/index.ts';
import { TokenKeyWatch } from '../ingest/token-keys.ts';

const docs = YAML.parseAllDocuments(readFileSync(new URL('../deploy/k8s/token-key-rotation.yaml', import.meta.url), 'utf8')).map((d) => d.toJS());
const script = docs.find((d) => d.kind === 'ConfigMap').data['rotate.sh'] as string;

const dir = mkdtempSync(join(tmpdir(), 'key-rotation-'));
const state = join(dir, 'secret.json');
// A kubectl that understands exactly the calls the script makes, and fails on anything else.
writeFileSync(
  join(dir, 'kubectl'),
  `#!${process.execPath}
const fs = require('fs');
const a = process.argv.slice(2);
const s = JSON.parse(fs.readFileSync(${JSON.stringify(state)}, 'utf8'));
const data = s.data || {};
const fail = () => { process.stderr.write('fake kubectl: unexpected ' + a.join(' ') + '\\n'); process.exit(3); };
if (a[0] === 'get' && a[1] === 'secret' && a[2] === 'telemetry-token-keys' && a[3] === '-o') {
  const t = a[4];
  const idx = /index \\. "([^"]+)"/.exec(t);
  if (idx) process.stdout.write(data[idx[1]] ? 'yes' : '');
  else if (/range \\$k, \\$v := \\.data/.test(t)) process.stdout.write(Object.keys(data).map((k) => k + ' ').join(''));
  else fail();
} else if (a[0] === 'patch' && a[2] === 'telemetry-token-keys' && a[3] === '--type' && a[5] === '-p') {
  const p = JSON.parse(a[6]);
  if (a[4] === 'merge') s.data = { ...data, ...p.data };
  else if (a[4] === 'json' && p[0].op === 'remove') { const k = p[0].path.replace(/^\\/data\\//, ''); if (!(k in data)) fail(); delete data[k]; s.data = data; }
  else fail();
  fs.writeFileSync(${JSON.stringify(state)}, JSON.stringify(s));
} else fail();
`,
);
chmodSync(join(dir, 'kubectl'), 0o755);
writeFileSync(join(dir, 'rotate.sh'), script);
// Negative control: the same script keeping keys 50 h, past ingest's 48 h grace.
writeFileSync(join(dir, 'rotate-late.sh'), script.replace('47 * 3600', '50 * 3600'));

afterAll(() => rmSync(dir, { recursive: true, force: true }));

function run(nowMs: number, data: Record<string, string>, file = 'rotate.sh'): { data: Record<string, string>; out: string } {
  writeFileSync(state, JSON.stringify({ data }));
  const out = execFileSync('/bin/sh', [join(dir, file)], {
    env: { PATH: `${dir}:${process.env.PATH}`, NOW: String(Math.floor(nowMs / 1000)) },
    encoding: 'utf8',
  });
  return { data: (JSON.parse(readFileSync(state, 'utf8')) as { data: Record<string, string> }).data, out };
}

const key = (fill: number) => Buffer.alloc(32, fill).toString('base64');

describe('day-secret rotation script (CronJob)', () => {
  const now = Date.parse('2026-11-29T12:00:00Z');

  it("adds today's and tomorrow's keys to an empty Secret, 32 random bytes each", () => {
    const { data } = run(now, {});
    expect(Object.keys(data).sort()).toEqual(['2026-11-29.key', '2026-11-30.key']);
    const bytes = Object.values(data).map((v) => Buffer.from(v, 'base64'));
    for (const b of bytes) expect(b.length).toBe(32);
    expect(bytes[0]!.equals(bytes[1]!)).toBe(false);
  });

  it('keeps existing keys as they are, removes a key 47 h after its day ended, and is idempotent', () => {
    const start = { '2026-11-26.key': key(1), '2026-11-27.key': key(2), '2026-11-28.key': key(3), '2026-11-29.key': key(4) };
    const first = run(now, start);
    // 11-26 ended 11-27 00:00, 60 h ago: gone. 11-27 ended 36 h ago: kept (ingest's grace is 48 h).
    expect(Object.keys(first.data).sort()).toEqual(['2026-11-27.key', '2026-11-28.key', '2026-11-29.key', '2026-11-30.key']);
    expect(first.data['2026-11-29.key']).toBe(key(4));
    const again = run(now, first.data);
    expect(again.data).toEqual(first.data);
    expect(again.out).toBe('');
  });

  /** Runs the script every 6 h for three days from an empty Secret; returns what went wrong. */
  function simulate(file: string): string[] {
    // After each run: today's and tomorrow's keys exist; every day since the first run that ingest still
    // accepts events for (the tokenizer's own rule) has its key, except in the last hour of grace; no key
    // is past the grace (ingest, read-only, would refuse to use it but cannot destroy it: the day would
    // stay linkable by whoever reads the Secret). Each run spawns a shell
    // and a few node processes, so the exact 47 h boundary is the previous test's job.
    const tokenizer = new DailyTokenizer(new EnvKeySource(''));
    const firstDay = Math.floor(now / DAY_MS);
    const problems: string[] = [];
    let data: Record<string, string> = {};
    for (let h = 0; h < 72; h += 6) {
      const t = now + h * 3_600_000 + 7 * 60_000; // the CronJob runs at minute 7
      data = run(t, data, file).data;
      const days = Object.keys(data).map((k) => dayOfIso(k.slice(0, 10)));
      const today = Math.floor(t / DAY_MS);
      for (const d of [today, today + 1]) if (!days.includes(d)) problems.push(`hour ${h}: no key for day ${d}`);
      for (const d of days) if (tokenizer.refusal(d * DAY_MS, t) === 'too_late') problems.push(`hour ${h}: key of day ${d} kept past the grace`);
      for (let d = Math.max(firstDay, today - 3); d <= today; d++) {
        const accepted = tokenizer.refusal(d * DAY_MS + DAY_MS - 1, t) === undefined;
        const inLastHourOfGrace = t >= (d + 1) * DAY_MS + tokenizer.graceMs - 3_600_000;
        if (accepted && !inLastHourOfGrace && !days.includes(d)) problems.push(`hour ${h}: day ${d} still accepted but its key is gone`);
      }
    }
    return problems;
  }

  it('never leaves ingest without a key it needs, and never keeps one ingest would destroy', () => {
    expect(simulate('rotate.sh')).toEqual([]);
  });

  it('negative control: the same simulation catches a script that keeps keys past the grace', () => {
    expect(simulate('rotate-late.sh')).toContainEqual(expect.stringMatching(/kept past the grace/));
  });
});

// The alert on what ingest itself reads (deploy/prometheus/alerts.yml), evaluated on the gauge a
// read-only ingest reports for the Secret the script keeps: quiet while the rotation runs, firing once
// tomorrow's key is still missing two hours after midnight.
describe('TokenKeyRotationOverdue against the rotation', () => {
  const rules = (
    YAML.parse(readFileSync(new URL('../deploy/prometheus/alerts.yml', import.meta.url), 'utf8')).groups as { rules: { alert: string; expr: string }[] }[]
  ).flatMap((g) => g.rules);
  const expr = rules.find((r) => r.alert === 'TokenKeyRotationOverdue')!.expr.trim();

  /** The rule with one worker's gauge and the time put in; only arithmetic may be left. */
  function fires(newestDaySeconds: number, nowMs: number): boolean {
    const arithmetic = expr
      .replace(/^min by \(instance\) \(ingest_token_newest_key_day_seconds\{mode="read-only"\}\)/, String(newestDaySeconds))
      .replace('time()', String(nowMs / 1000));
    if (!/^[\d\s.+\-*<>]+$/.test(arithmetic)) throw new Error(`rule no longer has the shape this test evaluates: ${expr}`);
    return Function(`return (${arithmetic});`)() as boolean;
  }

  /** What a read-only ingest pod reports for a Secret's data mounted as files. */
  function newestSeen(data: Record<string, string>, nowMs: number): number {
    const mount = mkdtempSync(join(dir, 'mount-'));
    for (const [k, v] of Object.entries(data)) writeFileSync(join(mount, k), Buffer.from(v, 'base64'));
    return new TokenKeyWatch({ kind: 'file', dir: mount, mode: 'read-only' }).gauges(nowMs).newestDaySeconds;
  }

  const start = Date.parse('2026-11-29T12:07:00Z');

  it('stays quiet while the script runs (checked just after a run and 59 min later, before the next)', () => {
    let data: Record<string, string> = {};
    const loud: string[] = [];
    for (let h = 0; h < 48; h += 6) {
      const t = start + h * 3_600_000;
      data = run(t, data).data;
      for (const at of [t, t + 59 * 60_000]) if (fires(newestSeen(data, at), at)) loud.push(new Date(at).toISOString());
    }
    expect(loud).toEqual([]);
  });

  it("fires when the rotation stopped: tomorrow's key still missing at 02:00 UTC; and at once without any key", () => {
    const data = run(start, {}).data; // last successful run: 11-29 12:07 (keys 11-29, 11-30)
    expect(fires(newestSeen(data, Date.parse('2026-11-30T01:59:00Z')), Date.parse('2026-11-30T01:59:00Z'))).toBe(false);
    expect(fires(newestSeen(data, Date.parse('2026-11-30T02:01:00Z')), Date.parse('2026-11-30T02:01:00Z'))).toBe(true);
    expect(fires(newestSeen({}, start), start)).toBe(true);
  });
});
