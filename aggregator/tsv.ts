/**
 * FactRows -> one TabSeparated payload for `INSERT INTO facts_in FORMAT TabSeparated`.
 *
 * Why TabSeparated: it is the one compact text format that ClickHouse 18.16 and 26.x, the HTTP
 * interface and chdb's raw insert all read the same way, and a FixedString(16) column can carry the
 * raw 16 bytes (escaped) instead of 32 hex characters. bench/aggregate.ts measured it against
 * JSONEachRow (see README). The escape rules are ClickHouse's: backslash, tab, newline, carriage
 * return and NUL are written as \\ \t \n \r \0; every other byte is taken verbatim.
 */
import { dayToIso, type FactRow } from './facts.ts';

export const FACT_COLUMNS = ['day', 'app_id', 'app_version', 'device_model', 'os_version', 'country', 'kind', 'daily_token', 'event_key'] as const;

const BS = 0x5c;
const ESC: Record<number, number> = { 0x5c: 0x5c, 0x09: 0x74, 0x0a: 0x6e, 0x0d: 0x72, 0x00: 0x30 };

function needsEscape(b: number): boolean {
  return b === 0x5c || b === 0x09 || b === 0x0a || b === 0x0d || b === 0x00;
}

/** Writes `src` escaped into `out` at `pos`; returns the new position. `out` must have 2x room. */
function putEscaped(out: Buffer, pos: number, src: Buffer): number {
  for (let i = 0; i < src.length; i++) {
    const b = src[i]!;
    if (needsEscape(b)) {
      out[pos++] = BS;
      out[pos++] = ESC[b]!;
    } else {
      out[pos++] = b;
    }
  }
  return pos;
}

const dayCache = new Map<number, Buffer>();
function dayBytes(day: number): Buffer {
  let b = dayCache.get(day);
  if (!b) {
    b = Buffer.from(dayToIso(day), 'latin1');
    if (dayCache.size > 4096) dayCache.clear();
    dayCache.set(day, b);
  }
  return b;
}

export function encodeFactsTsv(rows: readonly FactRow[]): Buffer {
  // Upper bound per row: every string byte escaped (x2) plus separators.
  let size = 0;
  const strs: Buffer[][] = new Array(rows.length);
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i]!;
    const s = [
      Buffer.from(r.app_id, 'utf8'),
      Buffer.from(r.app_version, 'utf8'),
      Buffer.from(r.device_model, 'utf8'),
      Buffer.from(r.os_version, 'utf8'),
      Buffer.from(r.country, 'utf8'),
      Buffer.from(r.kind, 'latin1'),
    ];
    strs[i] = s;
    size += 10 + 9 + 64;
    for (const b of s) size += 2 * b.length;
  }
  const out = Buffer.allocUnsafe(size);
  let pos = 0;
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i]!;
    pos += dayBytes(r.day).copy(out, pos);
    for (const b of strs[i]!) {
      out[pos++] = 0x09;
      pos = putEscaped(out, pos, b);
    }
    out[pos++] = 0x09;
    pos = putEscaped(out, pos, r.daily_token);
    out[pos++] = 0x09;
    pos = putEscaped(out, pos, r.event_key);
    out[pos++] = 0x0a;
  }
  return out.subarray(0, pos);
}
