/**
 * Daily tokens (DESIGN principle 3; policy 1.1.4 "we may only need the number of users who are active
 * in a day; and we don't need to know in that day who is active").
 *
 * Each UTC day has a random 32-byte secret. From it:
 *   daily_token = HMAC-SHA256(HMAC(secret, "daily_token"), device identity)[0..16]
 *   event_key   = AES-128(k, AES-128(k, uuid(event_id)) XOR daily_token),  k = HMAC(secret, "event_key")[0..16]
 * The event key is a two-block CBC-MAC over fixed-length input (a PRF), computed for a whole batch with
 * two ECB passes: HMAC per event costs ~4 us in Node, which alone would break the 3x budget of the split.
 * Because the key is secret, a client that builds its event ids from an identifier (IMEI + counter) still
 * leaks nothing through event_key; the raw event_id never leaves ingest.
 *
 * Failure windows: an event can be tokenised only while its day's secret exists: from the start of the
 * day (minus the allowed clock skew) until `graceMs` after the day ends (default 48 h). Later events are
 * dropped as `too_late` (counted, reported to the device); events further in the future than the skew
 * are `from_future`. Once a secret is destroyed nobody, including us, can recompute that day's tokens.
 */
import { createCipheriv, createHmac, randomBytes, type Cipher } from 'node:crypto';
import { closeSync, mkdirSync, openSync, readdirSync, readFileSync, unlinkSync, writeSync, constants as fsc } from 'node:fs';
import { join } from 'node:path';

export const DAY_MS = 86_400_000;

/** Where day secrets live. Synchronous on purpose: the split runs synchronously inside a worker. */
export interface KeySource {
  /** Secret of `day` (days since epoch, UTC); creates it when `create` is set and the source can. */
  secretFor(day: number, create: boolean): Buffer | undefined;
  /** Destroys the secret of `day` (no-op when the source cannot, e.g. the environment). */
  destroy(day: number): void;
  /** Days this source currently holds a secret for. */
  days(): number[];
}

/** `TOKEN_KEYS=2026-11-29:<base64>,2026-11-28:<base64>`: secrets provisioned by the operator. */
export class EnvKeySource implements KeySource {
  private readonly keys = new Map<number, Buffer>();
  constructor(spec: string = process.env.TOKEN_KEYS ?? '') {
    for (const part of spec.split(',').map((s) => s.trim()).filter(Boolean)) {
      const m = /^(\d{4}-\d{2}-\d{2}):([A-Za-z0-9+/=]+)$/.exec(part);
      if (!m) throw new Error(`TOKEN_KEYS entry "${part.slice(0, 11)}..." is not YYYY-MM-DD:<base64>`);
      const key = Buffer.from(m[2]!, 'base64');
      if (key.length < 16) throw new Error(`TOKEN_KEYS secret for ${m[1]} must be at least 16 bytes, got ${key.length}`);
      this.keys.set(dayOfIso(m[1]!), key);
    }
  }
  secretFor(day: number): Buffer | undefined {
    return this.keys.get(day);
  }
  /** The environment cannot be erased from here: the operator must stop provisioning the old key. */
  destroy(day: number): void {
    this.keys.delete(day);
  }
  days(): number[] {
    return [...this.keys.keys()];
  }
}

/**
 * One file per day (`YYYY-MM-DD.key`, 32 random bytes, mode 0600) in a directory shared by every ingest
 * copy of a zone. Creation uses O_CREAT|O_EXCL: when two copies race, exactly one write wins and both
 * then read the same bytes, so the same device on the same day gets the same token on every copy.
 */
export class FileKeySource implements KeySource {
  constructor(private readonly dir: string) {
    mkdirSync(dir, { recursive: true, mode: 0o700 });
  }
  secretFor(day: number, create: boolean): Buffer | undefined {
    const file = join(this.dir, `${isoOfDay(day)}.key`);
    const existing = readKey(file);
    if (existing || !create) return existing;
    try {
      // Write to the O_EXCL file directly: a reader that sees a short file retries below.
      const fd = openSync(file, fsc.O_CREAT | fsc.O_EXCL | fsc.O_WRONLY, 0o600);
      try {
        writeSync(fd, randomBytes(32));
      } finally {
        closeSync(fd);
      }
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'EEXIST') throw e;
    }
    // Whoever won, everyone uses what is on disk. A racing writer may not have written yet: retry briefly.
    for (let i = 0; i < 100; i++) {
      const k = readKey(file);
      if (k) return k;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
    }
    throw new Error(`day secret ${file} stayed incomplete`);
  }
  destroy(day: number): void {
    try {
      unlinkSync(join(this.dir, `${isoOfDay(day)}.key`));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
  }
  days(): number[] {
    return readdirSync(this.dir)
      .map((f) => /^(\d{4}-\d{2}-\d{2})\.key$/.exec(f)?.[1])
      .filter((d): d is string => !!d)
      .map(dayOfIso);
  }
}

function readKey(file: string): Buffer | undefined {
  try {
    const b = readFileSync(file);
    return b.length === 32 ? b : undefined;
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
    throw e;
  }
}

export function dayOfIso(iso: string): number {
  return Math.floor(Date.parse(`${iso}T00:00:00Z`) / DAY_MS);
}
export function isoOfDay(day: number): string {
  return new Date(day * DAY_MS).toISOString().slice(0, 10);
}

export interface TokenizerOptions {
  /** How long after a day ends its secret is kept. @default 48 h */
  graceMs?: number;
  /** How far ahead of the receive time an event may be. @default 10 min */
  skewMs?: number;
}

export type TokenRefusal = 'too_late' | 'from_future' | 'no_day_secret';

interface DayKeys {
  day: number;
  tokenKey: Buffer;
  ecb: Cipher;
}

export class DailyTokenizer {
  readonly graceMs: number;
  readonly skewMs: number;
  private readonly cache = new Map<number, DayKeys>();

  constructor(
    readonly source: KeySource,
    opts: TokenizerOptions = {},
  ) {
    this.graceMs = opts.graceMs ?? 48 * 3_600_000;
    this.skewMs = opts.skewMs ?? 10 * 60_000;
  }

  /** Why an event at `timeMs`, received at `nowMs`, cannot be tokenised; undefined when it can. */
  refusal(timeMs: number, nowMs: number): TokenRefusal | undefined {
    if (timeMs > nowMs + this.skewMs) return 'from_future';
    const day = Math.floor(timeMs / DAY_MS);
    if (nowMs >= (day + 1) * DAY_MS + this.graceMs) return 'too_late';
    return undefined;
  }

  /** Keys of `day`, or undefined when its secret is unavailable. Call `refusal` first. */
  keys(day: number, nowMs: number): DayKeys | undefined {
    let k = this.cache.get(day);
    if (k) return k;
    // Only today and earlier days may be created: a secret for tomorrow would exist before it is needed.
    const today = Math.floor((nowMs + this.skewMs) / DAY_MS);
    const secret = this.source.secretFor(day, day <= today);
    if (!secret) return undefined;
    const tokenKey = createHmac('sha256', secret).update('daily_token').digest();
    const aesKey = createHmac('sha256', secret).update('event_key').digest().subarray(0, 16);
    const ecb = createCipheriv('aes-128-ecb', aesKey, null);
    ecb.setAutoPadding(false);
    k = { day, tokenKey, ecb };
    this.cache.set(day, k);
    return k;
  }

  /** daily_token of a device identity on `day` (16 bytes). */
  dailyToken(keys: DayKeys, identity: string): Buffer {
    return createHmac('sha256', keys.tokenKey).update(identity).digest().subarray(0, 16);
  }

  /**
   * event_key for n events at once: `ids` holds n 16-byte event ids, `tokens` the n daily tokens (same
   * layout). ECB is stateless between blocks, so one long-lived cipher serves every call (never final()).
   */
  eventKeys(keys: DayKeys, ids: Buffer, tokens: Buffer): Buffer {
    const first = keys.ecb.update(ids);
    for (let i = 0; i < first.length; i++) first[i]! ^= tokens[i]!;
    return keys.ecb.update(first);
  }

  /**
   * `eventKeys` for n events that share one daily token (one device, one day: the usual batch), without
   * building the repeated token buffer; XOR by 32-bit words.
   */
  eventKeysOf(keys: DayKeys, ids: Buffer, token: Buffer): Buffer {
    const first = keys.ecb.update(ids);
    const f = new DataView(first.buffer, first.byteOffset, first.length);
    const t0 = token.readUInt32BE(0);
    const t1 = token.readUInt32BE(4);
    const t2 = token.readUInt32BE(8);
    const t3 = token.readUInt32BE(12);
    for (let i = 0; i + 16 <= first.length; i += 16) {
      f.setUint32(i, f.getUint32(i) ^ t0);
      f.setUint32(i + 4, f.getUint32(i + 4) ^ t1);
      f.setUint32(i + 8, f.getUint32(i + 8) ^ t2);
      f.setUint32(i + 12, f.getUint32(i + 12) ^ t3);
    }
    return keys.ecb.update(first);
  }

  /** Destroys secrets whose grace has passed; returns the destroyed days. Run it periodically. */
  rotate(nowMs: number): number[] {
    const gone: number[] = [];
    const days = new Set([...this.source.days(), ...this.cache.keys()]);
    for (const day of days) {
      if (nowMs >= (day + 1) * DAY_MS + this.graceMs) {
        this.source.destroy(day);
        this.cache.delete(day);
        gone.push(day);
      }
    }
    return gone;
  }
}
