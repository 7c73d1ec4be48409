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

/** Escaped UTF-8 of one string column. */
function escapedUtf8(s: string): Buffer {
  const raw = Buffer.from(s, 'utf8');
  const out = Buffer.allocUnsafe(2 * raw.length);
  return out.subarray(0, putEscaped(out, 0, raw));
}

/** `day\tapp_id\tapp_version\tdevice_model\tos_version\tcountry\t` of a row, escaped. */
export function dimsTsv(r: Pick<FactRow, 'day' | 'app_id' | 'app_version' | 'device_model' | 'os_version' | 'country'>): Buffer {
  const tab = Buffer.from([0x09]);
  return Buffer.concat([
    dayBytes(r.day),
    tab,
    escapedUtf8(r.app_id),
    tab,
    escapedUtf8(r.app_version),
    tab,
    escapedUtf8(r.device_model),
    tab,
    escapedUtf8(r.os_version),
    tab,
    escapedUtf8(r.country),
    tab,
  ]);
}

const KIND_TSV = new Map<string, Buffer>();
function kindBytes(kind: string): Buffer {
  let b = KIND_TSV.get(kind);
  if (!b) {
    b = escapedUtf8(kind);
    KIND_TSV.set(kind, b);
  }
  return b;
}

/**
 * One payload for all rows. Rows from FactReader carry their dimensions pre-encoded (`dims_tsv`,
 * shared per group), so a row costs two 16-byte escapes and three copies.
 */
export function encodeFactsTsv(rows: readonly FactRow[]): Buffer {
  const dims: Buffer[] = new Array(rows.length);
  let size = 0;
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i]!;
    const d = r.dims_tsv ?? dimsTsv(r);
    dims[i] = d;
    // kind + tab + two escaped 16-byte keys (at most 32 bytes each) + tab + newline.
    size += d.length + kindBytes(r.kind).length + 1 + 64 + 2;
  }
  const out = Buffer.allocUnsafe(size);
  let pos = 0;
  for (let i = 0; i < rows.length; i++) {
    const r = rows[i]!;
    pos += dims[i]!.copy(out, pos);
    pos += kindBytes(r.kind).copy(out, pos);
    out[pos++] = 0x09;
    pos = putEscaped(out, pos, r.daily_token);
    out[pos++] = 0x09;
    pos = putEscaped(out, pos, r.event_key);
    out[pos++] = 0x0a;
  }
  return out.subarray(0, pos);
}
