/** The demo's report and cleanup summary as a new user reads them at the end of `npm run demo`. */
import { dayToIso } from '../aggregator/facts.ts';
import { formatReport, reportColumns } from '../aggregator/query.ts';
import type { DemoReport } from './report.ts';
import type { CleanupResult } from './run.ts';

const n = (x: number) => Math.round(x).toLocaleString('en-US');

function list(r: Record<string, number>): string {
  const e = Object.entries(r)
    .filter(([, v]) => v > 0)
    .sort((a, b) => b[1] - a[1]);
  return e.length ? e.map(([k, v]) => `${k} ${n(v)}`).join(', ') : 'none';
}

/** The report as a new user reads it at the end of `npm run demo`. */
export function formatDemoReport(r: DemoReport): string {
  const t = r.ledger.tally;
  const out: string[] = [];
  const batches = Object.values(t.batches).reduce((a, b) => a + b, 0);
  const rejected = Object.values(t.eventsRejected).reduce((a, b) => a + b, 0);
  const dropped = r.ledger.eventsDroppedNoConsent();
  const stripped = Object.entries(t.droppedConsent).filter(([k]) => k.startsWith('stripped_'));
  out.push('', '== What went where ==');
  out.push(
    `devices    ${n(batches)} batches posted (${list(t.batches as unknown as Record<string, number>)}), ${n(t.resends)} sent twice (lost answer), ${n(t.retries)} retried after 429/503`,
  );
  const p50 = r.ledger.latency(50);
  const p99 = r.ledger.latency(99);
  out.push(
    `           ${n(t.eventsSent)} events in ${r.simulated.elapsedS.toFixed(1)} s (${n(r.simulated.eventsPerSec)} events/s); HTTP answers: ${list(t.posts)}; latency p50 ${p50?.toFixed(0) ?? '-'} ms, p99 ${p99?.toFixed(0) ?? '-'} ms`,
  );
  out.push(`ingest     accepted ${n(t.eventsAccepted)} events · dropped ${n(dropped)} events of devices without analytics consent (policy 1.2/5.3)`);
  if (stripped.length)
    out.push(
      `           stripped for a missing consent (personalised ads, location): ${stripped.map(([k, v]) => `${k.replace(/^stripped_no_/, '').replace(':', ' -> ')} in ${n(v)} batches`).join(', ')}`,
    );
  out.push(`           rejected ${n(rejected)}: ${list(t.eventsRejected)}`);
  out.push(`           (per-event reasons are SCHEMA_*/TOKEN_*; INGEST_* = the whole batch was refused, its events counted)`);
  for (const w of r.ingest) {
    out.push(
      `           ${w.url.replace('/metrics', '')} /metrics: ${n(w.accepted)} accepted, ${n(Object.values(w.rejected).reduce((a, b) => a + b, 0))} rejected (per event), ${n(w.droppedConsent.no_analytics_consent ?? 0)} dropped for consent`,
    );
  }
  if (t.surprises.length) out.push(`           UNEXPECTED answers (${t.surprises.length}): ${t.surprises.slice(0, 5).join('; ')}`);
  out.push('kafka      records per topic (end offset - start offset):');
  const w = Math.max(...r.topics.map((x) => x.topic.length));
  for (const c of r.topics) {
    const kind = c.topic.endsWith('.events')
      ? "non-personal event facts, one record per accepted batch and UTC day holding its events' facts (twice for a batch sent twice)"
      : c.topic.includes('.personal.')
        ? c.topic.endsWith('.p7d')
          ? 'personal data kept 7 days (IP address, precise location), one record per accepted batch, in its residency zone'
          : 'personal data kept 30 days (the device record; activity as hours and sets), one record per accepted batch, in its residency zone'
        : 'rejected events (unclassified, kept in their zone)';
    out.push(`           ${c.topic.padEnd(w)}  ${n(c.records).padStart(8)}  ${kind}`);
  }
  if (r.aggregator) {
    out.push(
      `aggregator read ${n(r.aggregator.read)} event facts, inserted ${n(r.aggregator.aggregated)} fact rows, ${n(r.aggregator.redundantDropped)} redundant (repeats, non-counted kinds) dropped in memory, ${n(r.aggregator.late)} too late; lag ${n(r.aggregator.lag)}${r.caughtUp ? '' : ' (NOT caught up: tables below may be short)'}`,
    );
  }
  // Exact sums of released cells (the demo checks them against the phones' own count); an analyst's
  // `npm run query` answers with noise unless --exact (aggregator/README.md, "Privacy of the answers").
  const dauCmd = `npm run query -- dau --from ${dayToIso(r.dau.req.from)} --to ${dayToIso(r.dau.req.to)} --by day,app_id --exact`;
  const crashCmd = `npm run query -- crash-rate --from ${dayToIso(r.crash.req.from)} --to ${dayToIso(r.crash.req.to)} --by app_id,app_version --exact`;
  out.push(
    '',
    `== Daily active devices, exact sums of released cells (database ${r.database}; with --keep, run it yourself: ANALYST_CLICKHOUSE_USER=default ANALYST_DATABASE=${r.database} ${dauCmd}) ==`,
  );
  out.push(formatReport(r.dau.rows, 'table', reportColumns(r.dau.req)));
  out.push('', `== Crash rates by app version, last 3 days as device-days (${crashCmd}) ==`);
  out.push(formatReport(r.crash.rows, 'table', reportColumns(r.crash.req)));
  out.push('');
  if (r.queryError) out.push(`ClickHouse could not be queried for the tables (retried 30 s): ${r.queryError}`);
  if (t.unacknowledged > 0) {
    out.push(`note: ${n(t.unacknowledged)} batches were never acknowledged (${list(t.unacknowledgedByCode)}) when the devices gave up retrying;`);
    out.push('      some of their events may have reached Kafka before the answer failed, so the check below is a bound.');
  }
  if (r.check.kind === 'exact') {
    out.push(
      r.matches
        ? 'check: both tables equal what the simulated devices were told was accepted, counted with plain sets (exact, duplicates counted once).'
        : `check: MISMATCH between ClickHouse and the devices' own count (${r.check.problems.join('; ')}): expected ${JSON.stringify({ dau: r.dau.oracle, crash: r.crash.oracle })}`,
    );
  } else if (r.check.kind === 'bounds') {
    out.push(
      r.matches
        ? 'check: every count lies between what the devices were told was accepted and everything they sent (exact check impossible, see note).'
        : `check: OUT OF BOUNDS: ${r.check.problems.slice(0, 5).join('; ')}`,
    );
  } else out.push('check: not possible without the tables.');
  out.push('', `dashboard  ${r.urls.dashboard}`);
  out.push(`metrics    ${r.urls.metrics.join('  ')}`);
  return out.join('\n');
}

export function formatCleanup(c: CleanupResult): string {
  const slow = Object.entries(c.timings).filter(([, ms]) => ms >= 2000);
  const lines = [
    `demo: stopped ${c.stopped.join(', ') || 'nothing'}; removed ${c.removed.join(', ') || 'nothing'}${slow.length ? ` (slow: ${slow.map(([k, ms]) => `${k} ${(ms / 1000).toFixed(1)} s`).join(', ')})` : ''}`,
  ];
  if (c.leftRunning.length) lines.push(`demo: left running: ${c.leftRunning.join(', ')} (npm run stack:down stops it)`);
  for (const p of c.problems) lines.push(`demo: PROBLEM during cleanup: ${p}`);
  return lines.join('\n');
}
