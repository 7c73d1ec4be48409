/**
 * The transport rule of every ClickHouse connection the services make (the aggregator's
 * AGGREGATOR_CLICKHOUSE_*, the analyst's ANALYST_CLICKHOUSE_*): policy 4.1 promises encryption in transit,
 * so a password and query results never cross a network in clear.
 *
 * - `https://` is the normal case; `<PREFIX>CLICKHOUSE_TLS_CA_FILE` names the PEM CA that signed the
 *   server's certificate (a private CA, as the secured local stack's `.local/secure/tls/ca.pem`); without it
 *   the system's CAs are used. The server certificate is always verified (no "insecure" switch).
 * - `http://` is allowed to a loopback host only (127.0.0.0/8, ::1, localhost: the traffic never leaves
 *   the machine); to any other host only with `<PREFIX>UNSAFE_PLAINTEXT_CLICKHOUSE=true`, the loudly named
 *   development switch (a compose network on one laptop).
 *
 * Errors name settings and files, never a file's content.
 */
import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';

export interface ClickHouseTransport {
  url: string;
  caFile: string;
  unsafePlaintext: boolean;
}

/** True for 127.0.0.0/8, ::1 and localhost (the names a connection cannot leave the machine with). */
export function isLoopbackHost(hostname: string): boolean {
  const h = hostname.replace(/^\[|\]$/g, '').toLowerCase();
  if (h === 'localhost' || h.endsWith('.localhost')) return true;
  if (isIP(h) === 4) return h.startsWith('127.');
  if (isIP(h) === 6) return h === '::1' || h === '0:0:0:0:0:0:0:1' || /^::ffff:127\./.test(h);
  return false;
}

/** Problems of one ClickHouse transport configuration (empty when usable). `prefix` is AGGREGATOR_ or ANALYST_. */
export function clickhouseTransportProblems(prefix: 'AGGREGATOR_' | 'ANALYST_', t: ClickHouseTransport): string[] {
  const problems: string[] = [];
  let u: URL;
  try {
    u = new URL(t.url);
  } catch {
    return [`${prefix}CLICKHOUSE_URL=${t.url}: not a URL`];
  }
  if (u.protocol === 'http:') {
    if (t.caFile) problems.push(`${prefix}CLICKHOUSE_TLS_CA_FILE is set but ${prefix}CLICKHOUSE_URL is http://: use https://`);
    else if (!isLoopbackHost(u.hostname) && !t.unsafePlaintext)
      problems.push(
        `${prefix}CLICKHOUSE_URL=${t.url}: plain http to a host that is not loopback sends the password and the data in clear; use https:// (with ${prefix}CLICKHOUSE_TLS_CA_FILE for a private CA), or set ${prefix}UNSAFE_PLAINTEXT_CLICKHOUSE=true (development only)`,
      );
  } else if (u.protocol !== 'https:') {
    problems.push(`${prefix}CLICKHOUSE_URL=${t.url}: expected http:// or https://`);
  }
  if (t.caFile) {
    const ca = readPemCa(t.caFile);
    if (!ca.ok) problems.push(`${prefix}CLICKHOUSE_TLS_CA_FILE=${t.caFile}: ${ca.problem}`);
  }
  return problems;
}

export function readPemCa(file: string): { ok: true; pem: Buffer } | { ok: false; problem: string } {
  let pem: Buffer;
  try {
    pem = readFileSync(file);
  } catch (e) {
    return { ok: false, problem: `cannot read it (${(e as NodeJS.ErrnoException).code ?? 'error'})` };
  }
  if (!pem.includes('-----BEGIN CERTIFICATE-----')) return { ok: false, problem: 'no PEM certificate in it' };
  return { ok: true, pem };
}
