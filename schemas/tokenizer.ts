/**
 * Daily tokens (ARCHITECTURE.md principle 3; policy 1.1.4 "we may only need the number of users who are active
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
import { mkdirSync, readdirSync, readFileSync, unlinkSync } from 'node:fs';
import { join } from 'node:path';
import { DAY_MS, dayOfIso, isoOfDay } from './time.ts';
import { createFileOnce } from '../runtime/secret-file.ts';

/** Where day secrets live. Synchronous on purpose: the split runs synchronously inside a worker. */
export interface KeySource {
  /** Secret of `day` (days since epoch, UTC); creates it when `create` is set and the source can. */
  secretFor(day: number, create: boolean): Buffer | undefined;
  /**
   * Destroys the secret of `day`. Returns false when this source may not destroy it (a read-only
   * directory: the operator's rotation removes it), so nobody reports as destroyed a key still there.
   */
  destroy(day: number): boolean;
  /** Days this source currently holds a secret for. */
  days(): number[];
}

/** `TOKEN_KEYS=2026-11-29:<base64>,2026-11-28:<base64>`: secrets provisioned by the operator. */
export class EnvKeySource implements KeySource {
  private readonly keys = new Map<number, Buffer>();
  constructor(spec: string = process.env.TOKEN_KEYS ?? '') {
    for (const part of spec
      .split(',')
      .map((s) => s.trim())
      .filter(Boolean)) {
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
  /** Forgets the key in this process; the environment itself cannot be erased from here: the operator
   *  must stop provisioning the old key. */
  destroy(day: number): boolean {
    return this.keys.delete(day);
  }
  days(): number[] {
    return [...this.keys.keys()];
  }
}

/**
 * What ingest may do in the key directory (`INGEST_TOKEN_KEYS_MODE`).
 * - `manage`: ingest is the rotation. It creates a missing key for today (or an earlier day) and
 *   destroys keys past their grace. For one host or a shared writable volume (local stack, compose).
 * - `read-only`: someone else rotates (on Kubernetes a CronJob writes a Secret mounted read-only into
 *   every pod). Ingest never writes: a missing key means that day's events are refused (counted as
 *   TOKEN_TOO_LATE, the reason for "no secret for this day") and /readyz is false when today's is
 *   missing; an expired key left in the directory is never used (DailyTokenizer checks the grace itself)
 *   and never deleted.
 */
export const KEY_DIR_MODES = ['manage', 'read-only'] as const;
export type KeyDirMode = (typeof KEY_DIR_MODES)[number];

/**
 * One file per day (`YYYY-MM-DD.key`, 32 random bytes, mode 0600) in a directory shared by every ingest
 * copy of a zone. Created with runtime/secret-file.ts `createFileOnce` (written whole, then linked into
 * place): when two copies race, exactly one wins and both then read the same bytes, so the same device
 * on the same day gets the same token on every copy, and a copy killed while creating it leaves no
 * empty key file behind.
 *
 * In `read-only` mode no call makes a write system call (no mkdir, open for writing or unlink): on a
 * read-only mount each would fail, and a failed unlink used to end the process in the hourly sweep.
 * A Kubernetes Secret volume holds `YYYY-MM-DD.key` as symlinks into a `..data` directory that the
 * kubelet swaps atomically; readFileSync follows them and days() ignores the `..`-prefixed entries.
 */
export class FileKeySource implements KeySource {
  readonly mode: KeyDirMode;
  constructor(
    private readonly dir: string,
    opts: { mode?: KeyDirMode } = {},
  ) {
    this.mode = opts.mode ?? 'manage';
    if (this.mode === 'manage') mkdirSync(dir, { recursive: true, mode: 0o700 });
  }
  secretFor(day: number, create: boolean): Buffer | undefined {
    const file = join(this.dir, `${isoOfDay(day)}.key`);
    const existing = readKey(file);
    if (existing || !create || this.mode === 'read-only') return existing;
    // Whoever wins, everyone uses what is on disk: the file appears whole or not at all.
    createFileOnce(file, randomBytes(32));
    // A short file can still come from a copy of an older version, which created the file in place and
    // then wrote it: retry briefly.
    for (let i = 0; i < 100; i++) {
      const k = readKey(file);
      if (k) return k;
      Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, 1);
    }
    throw new Error(`day secret ${file} stayed incomplete`);
  }
  destroy(day: number): boolean {
    if (this.mode === 'read-only') return false;
    try {
      unlinkSync(join(this.dir, `${isoOfDay(day)}.key`));
    } catch (e) {
      if ((e as NodeJS.ErrnoException).code !== 'ENOENT') throw e;
    }
    return true;
  }
  days(): number[] {
    let names: string[];
    try {
      names = readdirSync(this.dir);
    } catch (e) {
      // Read-only: a directory that is not there (Secret not mounted yet) holds no keys; that is
      // reported by /readyz and the key gauges, not a crash. Manage mode created it in the constructor.
      if (this.mode === 'read-only' && (e as NodeJS.ErrnoException).code === 'ENOENT') return [];
      throw e;
    }
    return names
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

  /** Whether the secret of `day` is past its grace at `nowMs`: destroyed or not, it must not be used. */
  expired(day: number, nowMs: number): boolean {
    return nowMs >= (day + 1) * DAY_MS + this.graceMs;
  }

  /** Keys of `day`, or undefined when its secret is unavailable or past its grace. Call `refusal` first. */
  keys(day: number, nowMs: number): DayKeys | undefined {
    // Checked here too, not only in `refusal`: in read-only mode an expired key file can outlive its
    // grace (the operator's rotation is late), and a long-lived worker keeps its cache; neither may
    // make a day linkable past the grace the policy promises (ARCHITECTURE.md principle 3).
    if (this.expired(day, nowMs)) {
      this.cache.delete(day);
      return undefined;
    }
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

  /**
   * Destroys secrets whose grace has passed; returns the destroyed days. Run it periodically. Expired
   * days leave the cache either way; a source that may not destroy (read-only) keeps its file, which
   * `keys` then refuses, and such days are not reported as destroyed (see `status().expiredDays`).
   */
  rotate(nowMs: number): number[] {
    const gone: number[] = [];
    const days = new Set([...this.source.days(), ...this.cache.keys()]);
    for (const day of days) {
      if (this.expired(day, nowMs)) {
        this.cache.delete(day);
        if (this.source.destroy(day)) gone.push(day);
      }
    }
    return gone;
  }

  /**
   * What the source holds at `nowMs`, read from the source (not the cache) and without creating
   * anything: for /readyz and the key gauges. Never throws: a key that cannot be read is reported as
   * not readable, with the error in `errors`.
   */
  status(nowMs: number): TokenKeyStatus {
    const today = Math.floor(nowMs / DAY_MS);
    const errors: string[] = [];
    const readable = (day: number): boolean => {
      try {
        return this.source.secretFor(day, false) !== undefined;
      } catch (e) {
        errors.push(`${isoOfDay(day)}: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
        return false;
      }
    };
    let days: number[] = [];
    try {
      days = this.source.days();
    } catch (e) {
      errors.push(`list: ${(e as NodeJS.ErrnoException).code ?? (e as Error).message}`);
    }
    const usable: number[] = [];
    const expiredDays: number[] = [];
    for (const d of days.sort((a, b) => a - b)) {
      if (this.expired(d, nowMs)) expiredDays.push(d);
      else if (d !== today && readable(d)) usable.push(d); // today is read once, below
    }
    const todayReadable = readable(today);
    if (todayReadable) usable.push(today);
    usable.sort((a, b) => a - b);
    const out: TokenKeyStatus = { today, todayReadable, expiredDays, errors };
    if (usable.length > 0) {
      out.oldestDay = usable[0]!;
      out.newestDay = usable[usable.length - 1]!;
    }
    return out;
  }
}

/** Day secrets a source holds at one instant (`DailyTokenizer.status`). Days are days since epoch, UTC. */
export interface TokenKeyStatus {
  /** The UTC day of the instant asked about. */
  today: number;
  /** Today's secret can be read (without creating it). */
  todayReadable: boolean;
  /** Oldest and newest day whose secret is readable and inside its grace; absent when there is none. */
  oldestDay?: number;
  newestDay?: number;
  /** Days whose secret is still held although past the grace: never used, destruction overdue. */
  expiredDays: number[];
  /** Read errors other than "not there" (e.g. `2026-11-29: EACCES`), for logs and /readyz. */
  errors: string[];
}
